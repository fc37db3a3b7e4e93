"""The side of the MCP manager that talks to the ``mcp`` SDK: transports, the client, OAuth
glue, and what SDK values become in :mod:`app.core.mcp.types`.

The only module of the app that imports ``mcp``. The SDK (with its HTTP client) takes tens
of megabytes and most of a second to import, so :mod:`app.core.mcp.manager` does not import
this module until a server is about to be connected (in a worker thread, so that the
event loop, and with it the UI, keeps running meanwhile). Nothing here runs a server or
keeps state: the manager owns the sessions; this module opens them and translates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Self
from urllib.parse import urlsplit

import anyio
import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp import types as mcp_types
from mcp.client import Transport as SdkTransport
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, OAuthFlowError
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from app import __version__
from app.core.mcp.oauth import (
    CALLBACK_PATH,
    BrowserOpener,
    BrowserSignIn,
    LoopbackCallback,
    OAuthTokenStore,
)
from app.core.mcp.stdio import StderrTail, child_environment
from app.core.mcp.types import (
    AudioPart,
    ContentPart,
    ImagePart,
    ResourcePart,
    ServerConfig,
    TextPart,
    ToolInfo,
    ToolResult,
    Transport,
)

# Logged under the manager's name: to whoever reads the log, this is the manager at work.
log = logging.getLogger("app.core.mcp.manager")

__all__ = [
    "CONNECTION_CLOSED",
    "REQUEST_TIMEOUT",
    "Client",
    "ConnectOptions",
    "KeyringTokenStorage",
    "MCPError",
    "ValidationError",
    "describe",
    "is_oauth_failure",
    "list_tools",
    "open_client",
    "server_version",
    "tool_result",
]

CONNECTION_CLOSED: Final = mcp_types.CONNECTION_CLOSED
REQUEST_TIMEOUT: Final = mcp_types.REQUEST_TIMEOUT

# Guard against a server whose tools/list never stops paginating.
_MAX_TOOL_PAGES: Final = 100
# An SSE stream or a long tool call may stay silent for this long at the HTTP level.
_HTTP_READ_TIMEOUT_S: Final = 300.0


@dataclass(frozen=True)
class ConnectOptions:
    """What a connection needs from the manager's settings (read when it connects)."""

    connect_timeout_s: float
    call_timeout_s: float
    oauth_store: Callable[[str], OAuthTokenStore]
    open_browser: BrowserOpener
    sign_in_timeout_s: float
    oauth_client_metadata_url: str | None


async def open_client(
    config: ServerConfig,
    stack: contextlib.AsyncExitStack,
    tail: StderrTail,
    options: ConnectOptions,
    *,
    on_waiting: Callable[[str], None] | None = None,
    on_closed: Callable[[], None] | None = None,
    on_tools_changed: Callable[[], None] | None = None,
) -> Client:
    """Connect to the server of ``config`` and initialize a session with it.

    Everything the session needs (the stderr pipe, the HTTP client, the OAuth callback,
    the client itself) is entered into ``stack``, so it closes when the stack does.
    ``on_closed`` is called once when the transport's read stream ends (the server went
    away); ``on_tools_changed`` on each ``tools/list_changed`` notification.
    """
    transport = await _open_transport(config, stack, tail, options, on_waiting)
    if on_closed is not None:
        transport = _watched(transport, on_closed)
    return await stack.enter_async_context(_client(transport, options, on_tools_changed))


async def list_tools(client: Client, server: str) -> tuple[ToolInfo, ...]:
    tools: list[ToolInfo] = []
    cursor: str | None = None
    for _ in range(_MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(_tool_info(server, tool) for tool in page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tuple(tools)


def server_version(client: Client) -> str:
    info = client.server_info
    if info is None:
        return ""
    return f"{info.name} {info.version}".strip()


def is_oauth_failure(exc: BaseException) -> bool:
    """Whether the SDK's OAuth flow failed (signing in again will not happen by itself)."""
    return isinstance(exc, OAuthFlowError)


def describe(exc: BaseException, where: str, connect_timeout_s: float) -> str | None:
    """Why a connection failed, in a few plain words, for an SDK or HTTP error (None: not
    one of those)."""
    if isinstance(exc, OAuthFlowError):
        return f"signing in with OAuth failed ({exc})"
    if isinstance(exc, httpx2.ConnectTimeout):
        return f"{where} did not accept a connection within {connect_timeout_s:g} s"
    if isinstance(exc, httpx2.ConnectError):
        return f"nothing answers at {where}"
    if isinstance(exc, httpx2.HTTPStatusError):
        code = exc.response.status_code
        hint = " (check the headers or the token)" if code in (401, 403) else ""
        return f"{where} answered HTTP {code}{hint}"
    if isinstance(exc, httpx2.HTTPError):
        return f"the connection to {where} failed ({exc})"
    if isinstance(exc, MCPError):
        if exc.code == mcp_types.CONNECTION_CLOSED:
            return "the connection was closed"
        if exc.code == mcp_types.REQUEST_TIMEOUT:
            return "it did not answer in time"
        return f"it answered with an error: {exc.message}"
    if isinstance(exc, ValidationError):
        return "it sent a message that does not follow the MCP protocol"
    return None


def tool_result(result: mcp_types.CallToolResult) -> ToolResult:
    parts: list[ContentPart] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(TextPart(block.text))
        elif isinstance(block, mcp_types.ImageContent):
            parts.append(ImagePart(block.mime_type, block.data))
        elif isinstance(block, mcp_types.AudioContent):
            parts.append(AudioPart(block.mime_type, block.data))
        elif isinstance(block, mcp_types.ResourceLink):
            parts.append(ResourcePart(str(block.uri), mime_type=block.mime_type or ""))
        elif isinstance(block, mcp_types.EmbeddedResource):
            res = block.resource
            text = res.text if isinstance(res, mcp_types.TextResourceContents) else ""
            parts.append(ResourcePart(str(res.uri), text=text, mime_type=res.mime_type or ""))
    structured: Mapping[str, Any] | None
    raw = result.structured_content
    if raw is None:
        structured = None
    elif isinstance(raw, Mapping):
        structured = dict(raw)
    else:  # any JSON value is allowed from 2026-07-28 on
        structured = {"result": raw}
    return ToolResult(tuple(parts), structured, bool(result.is_error))


# -- connecting ----------------------------------------------------------------------------
async def _open_transport(
    config: ServerConfig,
    stack: contextlib.AsyncExitStack,
    tail: StderrTail,
    options: ConnectOptions,
    on_waiting: Callable[[str], None] | None,
) -> SdkTransport:
    """The SDK transport for ``config`` (checked by the manager already); what it needs
    (stderr pipe, HTTP client, OAuth callback) is entered into ``stack`` so that it closes
    after the session."""
    if config.transport is Transport.STDIO:
        errlog = await stack.enter_async_context(tail.capture(config.name))
        params = StdioServerParameters(
            command=config.command,
            args=list(config.args),
            env=child_environment(config.env),
            cwd=config.cwd or None,
        )
        return stdio_client(params, errlog=errlog)
    call_timeout = max(options.call_timeout_s, config.timeout_s or 0.0)
    read_timeout = max(_HTTP_READ_TIMEOUT_S, call_timeout + 5.0)
    auth = await _oauth(config, stack, options, on_waiting)
    if config.transport is Transport.SSE:
        return sse_client(
            config.url,
            headers=dict(config.headers),
            timeout=options.connect_timeout_s,
            sse_read_timeout=read_timeout,
            auth=auth,
        )
    http = httpx2.AsyncClient(
        headers=dict(config.headers),
        timeout=httpx2.Timeout(options.connect_timeout_s, read=read_timeout),
        auth=auth,
    )
    await stack.enter_async_context(http)
    return streamable_http_client(config.url, http_client=http)


def _client(
    transport: SdkTransport,
    options: ConnectOptions,
    on_tools_changed: Callable[[], None] | None,
) -> Client:
    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            if on_tools_changed is not None:
                on_tools_changed()
        elif isinstance(message, Exception):
            log.debug("MCP transport reported %r", message)

    return Client(
        transport,
        mode="legacy",
        read_timeout_seconds=options.connect_timeout_s,
        message_handler=on_message,
        client_info=mcp_types.Implementation(name="corral", version=__version__),
        cache=None,
    )


class _WatchedReadStream:
    """The transport's read stream, reporting its end (the server went away) once."""

    def __init__(self, inner: Any, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end
        self._ended = False

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._on_end()

    async def receive(self) -> SessionMessage | Exception:
        try:
            item: SessionMessage | Exception = await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._end()
            raise
        return item

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@contextlib.asynccontextmanager
async def _watched(
    transport: SdkTransport, on_end: Callable[[], None]
) -> AsyncIterator[tuple[Any, Any]]:
    async with transport as (read_stream, write_stream):
        yield _WatchedReadStream(read_stream, on_end), write_stream


# -- OAuth ---------------------------------------------------------------------------------
async def _oauth(
    config: ServerConfig,
    stack: contextlib.AsyncExitStack,
    options: ConnectOptions,
    on_waiting: Callable[[str], None] | None,
) -> OAuthClientProvider | None:
    """The OAuth provider for an HTTP/SSE server (None where an Authorization header is
    configured); its loopback callback listens until the session closes."""
    if any(key.strip().lower() == "authorization" for key in config.headers):
        return None
    storage = KeyringTokenStorage(options.oauth_store(config.name))
    port = await storage.registered_port()
    callback = await stack.enter_async_context(LoopbackCallback(port))
    storage.redirect_uri = callback.redirect_uri
    sign_in = BrowserSignIn(
        callback,
        open_browser=options.open_browser,
        timeout_s=options.sign_in_timeout_s,
        on_waiting=on_waiting,
    )

    async def callback_handler() -> AuthorizationCodeResult:
        result = await sign_in.wait()
        return AuthorizationCodeResult(code=result.code, state=result.state, iss=result.iss)

    metadata = OAuthClientMetadata(
        client_name="Corral",
        redirect_uris=[callback.redirect_uri],  # type: ignore[list-item]
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
    )
    return OAuthClientProvider(
        config.url,
        metadata,
        storage,
        redirect_handler=sign_in.redirect,
        callback_handler=callback_handler,
        client_metadata_url=options.oauth_client_metadata_url,
    )


class KeyringTokenStorage:
    """The SDK's ``TokenStorage`` over an :class:`OAuthTokenStore` (keyring I/O off the loop).

    A stored client registration made for another loopback redirect address is not
    offered (the client registers again), since the authorization server would refuse it.
    """

    def __init__(self, store: OAuthTokenStore) -> None:
        self._store = store
        self.redirect_uri = ""

    async def _load(self, what: str) -> str | None:
        return await asyncio.to_thread(self._store.load, what)

    async def _save(self, what: str, value: str) -> None:
        await asyncio.to_thread(self._store.save, what, value)

    async def _client(self) -> OAuthClientInformationFull | None:
        raw = await self._load("client")
        if not raw:
            return None
        try:
            return OAuthClientInformationFull.model_validate_json(raw)
        except ValidationError:
            log.warning("the stored OAuth client of %s is not valid; ignored", self._store.server)
            return None

    async def registered_port(self) -> int:
        """The loopback port of the stored client registration (0: none)."""
        info = await self._client()
        for uri in (info.redirect_uris or []) if info is not None else []:
            parts = urlsplit(str(uri))
            if parts.hostname == "127.0.0.1" and parts.path == CALLBACK_PATH and parts.port:
                return parts.port
        return 0

    async def get_tokens(self) -> OAuthToken | None:
        raw = await self._load("tokens")
        if not raw:
            return None
        try:
            return OAuthToken.model_validate_json(raw)
        except ValidationError:
            log.warning("the stored OAuth tokens of %s are not valid; ignored", self._store.server)
            return None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        await self._save("tokens", tokens.model_dump_json(exclude_none=True))

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        info = await self._client()
        if info is None or not info.redirect_uris or not self.redirect_uri:
            return info
        registered = {str(uri) for uri in info.redirect_uris}
        return info if self.redirect_uri in registered else None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        await self._save("client", client_info.model_dump_json(exclude_none=True))


# -- conversions ---------------------------------------------------------------------------
def _tool_info(server: str, tool: mcp_types.Tool) -> ToolInfo:
    notes = tool.annotations
    return ToolInfo(
        server=server,
        name=tool.name,
        title=tool.title or (notes.title if notes is not None else None) or "",
        description=tool.description or "",
        input_schema=dict(tool.input_schema),
        output_schema=dict(tool.output_schema) if tool.output_schema is not None else None,
        read_only=notes.read_only_hint if notes is not None else None,
        destructive=notes.destructive_hint if notes is not None else None,
        idempotent=notes.idempotent_hint if notes is not None else None,
        open_world=notes.open_world_hint if notes is not None else None,
    )
