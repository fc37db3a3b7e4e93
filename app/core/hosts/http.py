"""What every host reached over HTTP shares: the client, deadlines, error translation.

A subclass adds its API and one hook, :meth:`HttpHost._translate_reply`, for the errors its
server answers with (Ollama's ``{"error": ...}``, the OpenAI error object). Everything
below HTTP (refused connections, timeouts, dropped streams, garbage) is translated here,
the same way for every kind of host, with the foreign exception kept as the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx

from app.core.errors import (
    BadResponse,
    CorralError,
    HostTimeout,
    HostUnreachable,
    InvalidInput,
    StreamInterrupted,
)
from app.core.hosts.base import HostConfig, Timeouts

T = TypeVar("T")

#: What httpx says when a server closed a kept-alive connection just as it was reused.
_STALE_CONNECTION = "without sending a response"


class RetryStaleConnection(httpx.AsyncClient):
    """An HTTP client that sends a request once more, on a new connection, when the
    server closed the kept-alive connection it went out on before answering anything.

    Servers close idle connections on their own schedule (llama.cpp's server sometimes
    right after a streamed reply), and a request that leaves on such a connection fails
    at once with "Server disconnected without sending a response". Nothing of it was
    answered, so it is sent again, once; any other failure, or a second one, is the
    caller's to see. (A client, not a transport: the environment's proxy settings and
    everything else httpx does per request stay as they are.)
    """

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        try:
            return await super().send(request, **kwargs)
        except httpx.RemoteProtocolError as exc:
            if _STALE_CONNECTION not in str(exc) or not isinstance(
                request.stream, httpx.ByteStream
            ):
                raise
        return await super().send(request, **kwargs)


async def drain_lines(lines: AsyncIterator[str], limit_s: float = 1.0) -> None:
    """Read what is left of a finished streamed reply (the end of its chunked body), so
    that the connection goes back to the pool instead of being dropped; a server that
    keeps the reply open longer than ``limit_s`` after its last event loses it."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit_s):
            async for _ in lines:
                pass


class HttpHost:
    """Base of the hosts reached over HTTP.

    Attributes:
        config: how to reach the host.
        timeouts: deadlines for its calls.
        in_flight: operations running on it right now (requests, pulls, chats).
    """

    def __init__(
        self,
        config: HostConfig,
        *,
        timeouts: Timeouts | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.config = config
        self.timeouts = timeouts or Timeouts()
        self._clock = clock
        self._http: httpx.AsyncClient | None = None
        self.in_flight = 0

    # -- client (created lazily, inside the running loop) ----------------------------
    def _httpx_timeout(self) -> httpx.Timeout:
        """Connect short; reads bounded by each call's own deadline (or a stream's idle)."""
        t = self.timeouts
        return httpx.Timeout(connect=t.connect, read=None, write=t.request, pool=t.connect)

    def _stream_timeout(self) -> httpx.Timeout:
        t = self.timeouts
        return httpx.Timeout(connect=t.connect, read=t.stream_idle, write=t.request, pool=t.connect)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = RetryStaleConnection(
                base_url=self.config.url,
                headers=self.config.header_dict(),
                timeout=self._httpx_timeout(),
            )
        return self._http

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    # -- errors -----------------------------------------------------------------------
    def _translate_reply(
        self, exc: BaseException, *, action: str, model: str
    ) -> CorralError | None:
        """The subclass's view of an error its server answered with; None if not one."""
        return None

    def _translate(
        self, exc: BaseException, *, action: str, model: str = "", deadline: float | None = None
    ) -> CorralError:
        name, url = self.config.name, self.config.url
        if isinstance(exc, CorralError):
            return exc
        reply = self._translate_reply(exc, action=action, model=model)
        if reply is not None:
            return reply
        if isinstance(exc, httpx.ConnectTimeout):
            return HostUnreachable(
                f"{name} at {url} did not accept a connection within {self.timeouts.connect:g} s.",
                host=name,
            )
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            limit = deadline if deadline is not None else self.timeouts.request
            return HostTimeout(
                f"{name} did not answer within {limit:g} s while {action}.", host=name
            )
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            return StreamInterrupted(f"{name} closed the connection while {action}.", host=name)
        if isinstance(exc, httpx.ConnectError | ConnectionError | httpx.UnsupportedProtocol):
            return HostUnreachable(
                f"Cannot connect to {name} at {url}: is the server running and reachable?",
                host=name,
            )
        if isinstance(exc, httpx.HTTPError | OSError):
            return HostUnreachable(f"Network error talking to {name}: {exc}.", host=name)
        if isinstance(exc, ValueError | KeyError | TypeError):  # JSON and schema errors too
            return BadResponse(
                f"{name} sent a reply Corral does not understand while {action}.", host=name
            )
        return CorralError(f"Unexpected error while {action} on {name}: {exc!r}.", host=name)

    async def _call(
        self,
        action: str,
        fn: Callable[[], Awaitable[T]],
        *,
        model: str = "",
        deadline: float | None = None,
    ) -> T:
        """Run one request under a total deadline, counted in ``in_flight``, translated."""
        limit = deadline if deadline is not None else self.timeouts.request
        self.in_flight += 1
        try:
            async with asyncio.timeout(limit):
                return await fn()
        except CorralError:
            raise
        except Exception as exc:
            raise self._translate(exc, action=action, model=model, deadline=limit) from exc
        finally:
            self.in_flight -= 1

    @staticmethod
    def _require_model(model: str, hint: str = "") -> str:
        name = (model or "").strip()
        if not name:
            raise InvalidInput(hint or "Enter a model name.")
        return name
