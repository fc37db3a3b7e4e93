"""Where samples come from: this machine, a Corral agent, or an existing exporter.

Every source has the same two coroutines (:class:`TelemetrySource`). ``sample()`` raises
only :class:`CorralError` subclasses (a host that cannot be reached, a timeout, a token
refused, garbage); it never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx

from app import __version__
from app.core.errors import (
    BadResponse,
    CorralError,
    HostRequestFailed,
    HostTimeout,
    HostUnreachable,
)
from app.core.telemetry.codec import history_from_json, sample_from_json
from app.core.telemetry.exposition import ExpositionReader
from app.core.telemetry.local import LocalSampler
from app.core.telemetry.types import HostSample

log = logging.getLogger(__name__)

AGENT_PATH = "/v1/telemetry"
DEFAULT_AGENT_PORT = 9101
PROMETHEUS_ACCEPT = "text/plain;version=0.0.4;q=1.0, */*;q=0.1"

History = dict[str, list[tuple[float, float]]]


@runtime_checkable
class TelemetrySource(Protocol):
    """Something that gives samples of one machine."""

    async def sample(self) -> HostSample:
        """One sample; raises CorralError when none can be had."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class HistorySource(Protocol):
    """A source that can also give what it saw before Corral asked (an agent)."""

    def take_history(self) -> History | None:
        """Older points once, after the first sample (then None)."""
        ...


class LocalSource:
    """This machine, through a :class:`LocalSampler` on one worker thread.

    Callers that ask while a sample is being taken get that sample: two samples are never
    taken at once, and a sampler that hangs does not pile up work behind it.
    """

    def __init__(self, sampler: LocalSampler | None = None) -> None:
        self._sampler = sampler
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="corral-sampler")
        self._pending: asyncio.Future[HostSample] | None = None
        self._closed = False

    def _sample_blocking(self) -> HostSample:
        if self._sampler is None:  # made on the worker thread: NVML lives there
            self._sampler = LocalSampler()
        return self._sampler.sample()

    async def sample(self) -> HostSample:
        if self._closed:
            raise CorralError("This machine's sampler was closed.")
        pending = self._pending
        if pending is None or pending.done():
            loop = asyncio.get_running_loop()
            pending = self._pending = asyncio.ensure_future(
                loop.run_in_executor(self._executor, self._sample_blocking)
            )
        return await asyncio.shield(pending)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        pending = self._pending
        if pending is not None and not pending.done():
            with contextlib.suppress(Exception, asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(5.0):
                    await asyncio.shield(pending)
        sampler = self._sampler
        if sampler is not None:
            loop = asyncio.get_running_loop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await loop.run_in_executor(self._executor, sampler.close)
        self._executor.shutdown(wait=False, cancel_futures=True)


def _where(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def _translate(exc: httpx.HTTPError, what: str, url: str) -> CorralError:
    where = _where(url)
    if isinstance(exc, httpx.TimeoutException):
        error: CorralError = HostTimeout(f"The {what} at {where} did not answer in time.")
    elif isinstance(exc, httpx.TransportError):
        error = HostUnreachable(f"Cannot connect to the {what} at {where}: {_reason(exc)}.")
    else:
        error = BadResponse(f"The {what} at {where} answered with something unusable: {exc}.")
    error.__cause__ = exc
    return error


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    if "refused" in text.lower():
        return "connection refused (is it running, and on this port?)"
    return text or type(exc).__name__


def _status_error(response: httpx.Response, what: str, url: str, token: bool) -> CorralError:
    where = _where(url)
    status = response.status_code
    if status == 401:
        message = (
            f"The {what} at {where} refused the token: enter the token it printed when it "
            "first started."
            if token
            else f"The {what} at {where} wants a token: enter the token it printed when it "
            "first started."
        )
    elif status == 404:
        message = f"The {what} at {where} has no {urlsplit(str(response.url)).path} (HTTP 404)."
    else:
        message = f"The {what} at {where} answered HTTP {status}."
    return HostRequestFailed(message, status=status)


class _HttpSource:
    what = "server"

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float,
        connect_timeout: float,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token or None
        headers = {"User-Agent": f"corral/{__version__}"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
            transport=transport,
            follow_redirects=False,
        )

    async def _get(self, url: str, params: dict[str, str] | None = None, accept: str = "") -> str:
        headers = {"Accept": accept} if accept else None
        try:
            async with asyncio.timeout(self._timeout + 1.0):
                response = await self._http.get(url, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise _translate(exc, self.what, url) from exc
        except TimeoutError as exc:
            raise HostTimeout(f"The {self.what} at {_where(url)} did not answer in time.") from exc
        if response.status_code != 200:
            raise _status_error(response, self.what, url, self._token is not None)
        return response.text

    async def aclose(self) -> None:
        await self._http.aclose()


class AgentSource(_HttpSource):
    """A Corral host agent (``python -m app agent``) on another machine.

    The first request asks for ``history_s`` seconds of history (see :meth:`take_history`);
    later ones only for the snapshot. Sample times are moved onto this machine's clock (the
    other machine's clock may be off), and so is the history.

    Attributes:
        url: the agent's base URL.
        host_id, hostname, version: what the agent said about itself (after a sample).
    """

    what = "Corral agent"

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 5.0,
        connect_timeout: float = 3.0,
        history_s: float = 900.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            url, token, timeout=timeout, connect_timeout=connect_timeout, transport=transport
        )
        self._history_s = history_s
        self._clock = clock
        self._history: History | None = None
        self._asked_history = False
        self.host_id = ""
        self.hostname = ""
        self.version = ""

    async def sample(self) -> HostSample:
        history_s = 0.0 if self._asked_history else self._history_s
        url = self.url + AGENT_PATH
        text = await self._get(url, params={"history_s": f"{history_s:g}"})
        received = self._clock()
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("the reply is not a JSON object")
            sample = sample_from_json(data.get("snapshot"))
            history = history_from_json(data.get("history")) if history_s > 0 else {}
        except ValueError as exc:
            raise BadResponse(
                f"The Corral agent at {_where(url)} answered with something unusable: {exc}."
            ) from exc
        self.host_id = str(data.get("host_id", ""))
        self.hostname = str(data.get("hostname", ""))
        self.version = str(data.get("version", ""))
        offset = received - sample.t
        if history_s > 0:
            self._asked_history = True
            self._history = {
                metric: [(t + offset, v) for t, v in points if t < sample.t]
                for metric, points in history.items()
            }
        return replace(sample, t=received)

    def take_history(self) -> History | None:
        history, self._history = self._history, None
        return history


class ExporterSource(_HttpSource):
    """One or more Prometheus exporters of a host (node_exporter, dcgm-exporter,
    nvitop-exporter, a Corral agent's /metrics), read with :class:`ExpositionReader`.

    A URL without a path gets ``/metrics``. ``token``, when given, is sent as a bearer
    token. ``cost_ms`` of its samples is what fetching and parsing took.
    """

    what = "exporter"

    def __init__(
        self,
        urls: str | Sequence[str],
        token: str | None = None,
        *,
        timeout: float = 5.0,
        connect_timeout: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        listed = split_urls(urls) if isinstance(urls, str) else list(urls)
        if not listed:
            raise ValueError("an exporter source needs at least one URL")
        self.urls = [_with_metrics_path(u) for u in listed]
        super().__init__(
            self.urls[0],
            token,
            timeout=timeout,
            connect_timeout=connect_timeout,
            transport=transport,
        )
        self._clock = clock
        self._reader = ExpositionReader()

    async def sample(self) -> HostSample:
        started = time.perf_counter()
        texts = await asyncio.gather(*(self._get(u, accept=PROMETHEUS_ACCEPT) for u in self.urls))
        t = self._clock()
        try:
            sample = self._reader.read(texts, t)
        except ValueError as exc:
            raise BadResponse(
                f"The exporter at {_where(self.urls[0])} answered with something unusable: {exc}."
            ) from exc
        return replace(sample, cost_ms=(time.perf_counter() - started) * 1000.0)


def split_urls(text: str) -> list[str]:
    """The URLs of a field that may list several, separated by spaces or commas."""
    return [u for u in text.replace(",", " ").split() if u]


def _with_metrics_path(url: str) -> str:
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        return url.rstrip("/") + "/metrics"
    return url
