"""OAuth for remote MCP servers: tokens in the keyring, the loopback callback, the sign-in
as the manager shows it (waiting in the browser, then timed out)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx2
import pytest
from keyring.backends import fail
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from app.core.mcp.manager import McpManager
from app.core.mcp.oauth import (
    WAITING_REASON,
    BrowserSignIn,
    LoopbackCallback,
    OAuthTokenStore,
    SignInError,
)
from app.core.mcp.session import KeyringTokenStorage
from app.core.mcp.types import ServerConfig, ServerState, ServerStatus, Transport
from app.core.secrets import SERVICE, SecretStore
from tests.support.memory_keyring import MemoryKeyring


# -- token storage --------------------------------------------------------------------------
async def test_tokens_kept_in_the_keyring_and_read_back(tmp_path: Path) -> None:
    backend = MemoryKeyring()
    store = OAuthTokenStore("remote", SecretStore(backend))
    storage = KeyringTokenStorage(store)
    await storage.set_tokens(OAuthToken(access_token="at-1", refresh_token="rt-1", expires_in=60))
    await storage.set_client_info(
        OAuthClientInformationFull(
            client_id="cid",
            redirect_uris=["http://127.0.0.1:4567/callback"],  # type: ignore[list-item]
        )
    )
    assert set(backend.store) == {
        (SERVICE, "corral-mcp-oauth/remote/tokens"),
        (SERVICE, "corral-mcp-oauth/remote/client"),
    }
    assert json.loads(backend.store[(SERVICE, "corral-mcp-oauth/remote/tokens")])[
        "access_token"
    ] == ("at-1")
    assert store.not_kept == ""

    again = KeyringTokenStorage(OAuthTokenStore("remote", SecretStore(backend)))
    tokens = await again.get_tokens()
    assert tokens is not None and tokens.access_token == "at-1" and tokens.refresh_token == "rt-1"
    assert await again.registered_port() == 4567
    again.redirect_uri = "http://127.0.0.1:4567/callback"
    info = await again.get_client_info()
    assert info is not None and info.client_id == "cid"
    again.redirect_uri = "http://127.0.0.1:9999/callback"  # registered for another port
    assert await again.get_client_info() is None
    # Nothing of it on disk (the test's whole home is under tmp_path).
    assert not _files_containing(tmp_path, b"at-1")

    store.clear()
    assert backend.store == {}


async def test_without_a_keyring_tokens_live_for_the_session_only() -> None:
    store = OAuthTokenStore("remote", SecretStore(fail.Keyring()))  # type: ignore[no-untyped-call]
    storage = KeyringTokenStorage(store)
    assert await storage.get_tokens() is None
    await storage.set_tokens(OAuthToken(access_token="at-2"))
    tokens = await storage.get_tokens()
    assert tokens is not None and tokens.access_token == "at-2"
    assert "cannot be kept" in store.not_kept


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


# -- the loopback callback ------------------------------------------------------------------
async def test_callback_receives_code_and_state() -> None:
    async with LoopbackCallback() as callback:
        assert callback.redirect_uri.startswith("http://127.0.0.1:")
        callback.expect("s-1")
        async with httpx2.AsyncClient() as http:
            wait = asyncio.ensure_future(callback.wait(10))
            page = await http.get(f"{callback.redirect_uri}?code=c-1&state=s-1")
        result = await wait
    assert page.status_code == 200 and "close this tab" in page.text
    assert (result.code, result.state) == ("c-1", "s-1")


async def test_callback_rejects_a_wrong_state_and_keeps_waiting() -> None:
    async with LoopbackCallback() as callback, httpx2.AsyncClient() as http:
        callback.expect("right")
        wait = asyncio.ensure_future(callback.wait(10))
        wrong = await http.get(f"{callback.redirect_uri}?code=c-x&state=wrong")
        assert wrong.status_code == 400
        assert not wait.done()
        other = await http.get(f"http://127.0.0.1:{callback.port}/elsewhere?code=c&state=right")
        assert other.status_code == 404
        right = await http.get(f"{callback.redirect_uri}?code=c-2&state=right")
        assert right.status_code == 200
        assert (await wait).code == "c-2"
        late = await http.get(f"{callback.redirect_uri}?code=c-3&state=right")
        assert late.status_code == 410


async def test_callback_reports_a_refusal() -> None:
    async with LoopbackCallback() as callback, httpx2.AsyncClient() as http:
        callback.expect("s")
        wait = asyncio.ensure_future(callback.wait(10))
        await http.get(f"{callback.redirect_uri}?error=access_denied&state=s")
        with pytest.raises(SignInError, match="access_denied"):
            await wait


async def test_callback_times_out() -> None:
    async with LoopbackCallback() as callback:
        callback.expect("s")
        with pytest.raises(SignInError, match=r"not finished within 0\.05 s"):
            await callback.wait(0.05)


async def test_browser_sign_in_opens_the_url_and_waits_for_the_redirect() -> None:
    notes: list[str] = []
    opened: list[str] = []

    async def browser(url: str) -> None:  # the user signs in at once
        opened.append(url)
        async with httpx2.AsyncClient() as http:
            await http.get(f"{callback.redirect_uri}?code=c-9&state=st-9")

    async with LoopbackCallback() as callback:
        sign_in = BrowserSignIn(callback, open_browser=browser, on_waiting=notes.append)
        url = "https://auth.example/authorize?" + urlencode({"state": "st-9", "client_id": "x"})
        await sign_in.redirect(url)
        result = await sign_in.wait()
    assert opened == [url]
    assert result.code == "c-9"
    assert notes == [WAITING_REASON, ""]


# -- the manager: waiting for the user, then a clear timeout --------------------------------
@contextlib.asynccontextmanager
async def _oauth_server() -> AsyncIterator[str]:
    """A resource server that answers 401 and an authorization server beside it (loopback)."""
    base = ""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        method, target = head.split(" ")[:2]
        length = 0
        for line in head.split("\r\n")[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        if length:
            await reader.readexactly(length)
        path = target.split("?")[0]
        status, extra, body = "404 Not Found", "", {}
        if method == "POST" and path == "/mcp":
            prm = f"{base}/.well-known/oauth-protected-resource/mcp"
            status = "401 Unauthorized"
            extra = f'WWW-Authenticate: Bearer resource_metadata="{prm}"\r\n'
            body = {"error": "invalid_token"}
        elif path == "/.well-known/oauth-protected-resource/mcp":
            status, body = "200 OK", {"resource": f"{base}/mcp", "authorization_servers": [base]}
        elif path == "/.well-known/oauth-authorization-server":
            status = "200 OK"
            body = {
                "issuer": base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "registration_endpoint": f"{base}/register",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
            }
        elif path == "/register":
            status, body = "201 Created", {"client_id": "cid", "redirect_uris": []}
        data = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield base
    finally:
        server.close()
        await server.wait_closed()


async def test_manager_shows_the_sign_in_and_times_out() -> None:
    async with _oauth_server() as base:
        opened: list[str] = []
        seen: list[ServerStatus] = []
        failed = asyncio.Event()
        manager = McpManager(
            [ServerConfig("remote", Transport.HTTP, url=f"{base}/mcp")],
            connect_timeout_s=10,
            oauth_secrets=SecretStore(MemoryKeyring()),
            open_browser=opened.append,
            sign_in_timeout_s=0.5,
        )

        def on_change(status: ServerStatus) -> None:
            seen.append(status)
            if status.state is ServerState.FAILED:
                failed.set()

        manager.changed.connect(on_change)
        try:
            await manager.start()
            async with asyncio.timeout(20):
                await failed.wait()
        finally:
            await manager.aclose()
        assert len(opened) == 1 and opened[0].startswith(f"{base}/authorize?")
        assert any(s.state is ServerState.STARTING and s.reason == WAITING_REASON for s in seen), (
            seen
        )
        final = next(s for s in seen if s.state is ServerState.FAILED)
        assert "could not sign in" in final.reason
        assert "not finished within 0.5 s" in final.reason
        assert final.breaker_open  # not restarted by itself: a new sign-in is asked for
