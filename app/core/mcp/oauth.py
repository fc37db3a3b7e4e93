"""Signing in to remote MCP servers with OAuth: where the tokens are kept and how the
browser hands the authorization code back.

* :class:`OAuthTokenStore` keeps one server's tokens and its registered client information
  as JSON in the OS keyring (keys ``corral-mcp-oauth/<server>/tokens`` and
  ``.../client``), never in a plain file. Without a keyring they live for this session
  only, and :attr:`OAuthTokenStore.not_kept` says so.
* :class:`LoopbackCallback` is a tiny HTTP server on ``127.0.0.1`` (a free port, or the one
  the client was registered with) that receives ``?code=&state=`` once per sign-in, checks
  the state and answers a small "you can close this tab" page.
* :class:`BrowserSignIn` ties both to a browser opener (``webbrowser.open`` by default).

The SDK glue (the ``TokenStorage`` protocol and the ``OAuthClientProvider``) lives in
:mod:`app.core.mcp.session`, the only module that imports ``mcp``.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import inspect
import logging
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, urlsplit

from app.core.errors import SecretNotStored
from app.core.mcp.types import McpError
from app.core.secrets import SecretStore

log = logging.getLogger(__name__)

KEY_PREFIX: Final = "corral-mcp-oauth"
CALLBACK_PATH: Final = "/callback"
WAITING_REASON: Final = "waiting for you to sign in in the browser"
_MAX_REQUEST_BYTES: Final = 16 * 1024
_REQUEST_READ_TIMEOUT_S: Final = 10.0

BrowserOpener = Callable[[str], object]


class SignInError(McpError):
    """Signing in to an MCP server did not work (timed out, denied, or the browser failed)."""


class OAuthTokenStore:
    """One server's OAuth tokens and client registration, as JSON text.

    Kept in the OS keyring through :class:`SecretStore`; where the keyring cannot keep
    them, they are held in memory for this session and :attr:`not_kept` says why.
    """

    def __init__(self, server: str, secrets: SecretStore | None = None) -> None:
        self.server = server
        self._secrets = secrets if secrets is not None else SecretStore()
        self._session: dict[str, str] = {}
        self.not_kept = ""

    def key(self, what: str) -> str:
        return f"{KEY_PREFIX}/{self.server}/{what}"

    def load(self, what: str) -> str | None:
        if what in self._session:
            return self._session[what]
        return self._secrets.get(self.key(what))

    def save(self, what: str, value: str) -> None:
        try:
            self._secrets.set(self.key(what), value)
        except SecretNotStored as exc:
            self._session[what] = value
            self.not_kept = (
                f"{exc} The sign-in to {self.server} lasts until Corral closes; it cannot be kept."
            )
            return
        self._session.pop(what, None)

    def clear(self) -> None:
        """Forget the tokens and the client registration (sign out)."""
        self._session.clear()
        for what in ("tokens", "client"):
            self._secrets.delete(self.key(what))


@dataclass(frozen=True)
class CallbackResult:
    code: str
    state: str | None = None
    iss: str | None = None


_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>Corral</title></head>"
    "<body style='font-family:sans-serif;margin:3em'><h1>{title}</h1><p>{text}</p></body></html>"
)


class LoopbackCallback:
    """An HTTP server on 127.0.0.1 that receives the authorization redirect.

    :meth:`expect` arms it for one sign-in (with the ``state`` sent to the authorization
    server); :meth:`wait` returns the code once a request with that state arrives.
    Requests with another state are answered 400 and ignored.
    """

    def __init__(self, port: int = 0, *, path: str = CALLBACK_PATH) -> None:
        self._wanted_port = port
        self.path = path
        self.port = 0
        self._server: asyncio.Server | None = None
        self._state: str | None = None
        self._result: asyncio.Future[CallbackResult] | None = None

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    async def start(self) -> None:
        """Listen on the wanted port, or on a free one if that one is taken."""
        try:
            server = await asyncio.start_server(self._handle, "127.0.0.1", self._wanted_port)
        except OSError:
            if self._wanted_port == 0:
                raise
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self._server = server
        self.port = server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        if self._result is not None and not self._result.done():
            self._result.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> LoopbackCallback:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def expect(self, state: str | None) -> None:
        """Wait for a new redirect carrying ``state`` (None: any state is taken)."""
        if self._result is not None and not self._result.done():
            self._result.cancel()
        self._state = state
        self._result = asyncio.get_running_loop().create_future()

    async def wait(self, timeout_s: float) -> CallbackResult:
        """The code of the redirect :meth:`expect` was armed for.

        Raises:
            SignInError: nothing came within ``timeout_s``, or the server reported an error.
        """
        if self._result is None:
            self.expect(None)
        assert self._result is not None
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(self._result)
        except TimeoutError:
            raise SignInError(
                f"the sign-in in the browser was not finished within {timeout_s:g} s"
            ) from None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        try:
            status, title, text = self._answer(head[:_MAX_REQUEST_BYTES])
            body = _PAGE.format(title=html.escape(title), text=html.escape(text)).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, head: bytes) -> tuple[str, str, str]:
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "GET":
            return "405 Method Not Allowed", "Not here", "Only the sign-in redirect comes here."
        target = urlsplit(parts[1])
        if target.path != self.path:
            return "404 Not Found", "Not here", "Only the sign-in redirect comes here."
        query = {k: v[0] for k, v in parse_qs(target.query, keep_blank_values=True).items()}
        result = self._result
        if result is None or result.done():
            return "410 Gone", "Nothing to sign in", "Corral is not waiting for a sign-in."
        if self._state is not None and query.get("state") != self._state:
            return "400 Bad Request", "Wrong sign-in", "This is not the sign-in Corral asked for."
        if "error" in query:
            why = query.get("error_description") or query["error"]
            result.set_exception(SignInError(f"the sign-in was refused ({why})"))
            return "200 OK", "Sign-in refused", f"{why}. You can close this tab."
        code = query.get("code", "")
        if not code:
            return "400 Bad Request", "No code", "The redirect carries no authorization code."
        result.set_result(CallbackResult(code, query.get("state"), query.get("iss")))
        return "200 OK", "Signed in", "Corral is signed in. You can close this tab."


class BrowserSignIn:
    """The browser half of a sign-in: open the authorization URL, wait for the redirect.

    ``on_waiting`` is called with a short text while the user is expected in the browser,
    and with "" once that is over.
    """

    def __init__(
        self,
        callback: LoopbackCallback,
        *,
        open_browser: BrowserOpener = webbrowser.open,
        timeout_s: float = 300.0,
        on_waiting: Callable[[str], None] | None = None,
    ) -> None:
        self.callback = callback
        self.open_browser = open_browser
        self.timeout_s = timeout_s
        self.on_waiting = on_waiting

    def _note(self, text: str) -> None:
        if self.on_waiting is not None:
            self.on_waiting(text)

    async def redirect(self, authorization_url: str) -> None:
        """Arm the callback with the URL's state and open the URL in the browser."""
        state = parse_qs(urlsplit(authorization_url).query).get("state", [None])[0]
        self.callback.expect(state)
        self._note(WAITING_REASON)
        opener = self.open_browser
        if inspect.iscoroutinefunction(opener):
            opened: object = await opener(authorization_url)
        else:
            opened = await asyncio.to_thread(opener, authorization_url)
            if inspect.isawaitable(opened):
                opened = await opened
        if opened is False:
            self._note(f"{WAITING_REASON}; no browser could be opened, so open {authorization_url}")

    async def wait(self) -> CallbackResult:
        try:
            return await self.callback.wait(self.timeout_s)
        finally:
            self._note("")


async def follow_in_http_client(url: str) -> None:
    """A stand-in browser for tests and the conformance suite: GET ``url`` and follow the
    redirects to the loopback callback (no user involved)."""
    import httpx2

    async with httpx2.AsyncClient(follow_redirects=True, timeout=30.0) as http:
        await http.get(url)
