"""The agent's HTTP server: JSON telemetry, Prometheus metrics, a health check.

Routes (GET; HEAD answers the same headers):

``/v1/telemetry[?history_s=N]``
    ``{"agent": "corral-agent", "version", "host_id", "hostname", "interval_s",
    "window_s", "snapshot": <sample>, "history": {metric: [[t, value], ...]},
    "history_s", "markers": []}``; a sample is written by
    :func:`app.core.telemetry.codec.sample_to_json`, metric names are those of
    :mod:`app.core.telemetry.store`. ``history_s`` (default 300, at most the window)
    chooses how much history comes with the snapshot; 0 for none.
``/metrics``
    Prometheus text format (OpenMetrics when the scraper asks for it), see
    :mod:`app.agent.metrics`.
``/healthz``
    ``ok``.

Token rule: only ``127.0.0.1`` and ``::1`` count as loopback. Bound to any other address
(``127.0.0.2`` included) the agent requires a bearer token and refuses to start without
one; every request must then carry ``Authorization: Bearer <token>`` or gets 401 with
``WWW-Authenticate: Bearer``. On ``127.0.0.1`` / ``::1`` a token is checked only if one
was given.

A thread takes a sample every ``interval_s`` with :class:`LocalSampler` and keeps
``window_s`` of history; requests read the latest sample (they never sample themselves).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from app import __version__
from app.agent.metrics import SampleCollector
from app.core.errors import CorralError, InvalidInput
from app.core.telemetry.codec import history_to_json, sample_to_json
from app.core.telemetry.local import LocalSampler
from app.core.telemetry.sources import AGENT_PATH, DEFAULT_AGENT_PORT
from app.core.telemetry.store import TelemetryStore
from app.core.telemetry.types import HostSample

log = logging.getLogger(__name__)

LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "::1"})
DEFAULT_HISTORY_S = 300.0
FIRST_SAMPLE_WAIT_S = 10.0
_SELF = "self"


def needs_token(address: str) -> bool:
    """True unless ``address`` is 127.0.0.1 or ::1 (any other, 127.0.0.2 too, needs one)."""
    return address.strip("[]") not in LOOPBACK_ADDRESSES


class AgentServerError(CorralError):
    """The agent could not start (no token for a non-loopback address, port taken)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], agent: AgentServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.agent = agent
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"corral-agent/{__version__}"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _not_allowed(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            _json_body({"error": "only GET is served"}),
            "application/json",
            extra={"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

    def _dispatch(self, head: bool) -> None:
        agent = self.server.agent
        if not agent.authorized(self.headers.get("Authorization")):
            given = bool(self.headers.get("Authorization"))
            challenge = 'Bearer realm="corral-agent"'
            if given:
                challenge += ', error="invalid_token"'
            self._send(
                HTTPStatus.UNAUTHORIZED,
                _json_body({"error": "a valid bearer token is required"}),
                "application/json",
                extra={"WWW-Authenticate": challenge},
                head=head,
            )
            return
        parts = urlsplit(self.path)
        try:
            if parts.path == AGENT_PATH:
                query = parse_qs(parts.query)
                history_s = _history_param(query.get("history_s", [""])[0])
                body = _json_body(agent.telemetry(history_s))
                self._send(HTTPStatus.OK, body, "application/json", head=head)
            elif parts.path == "/metrics":
                body, content_type = agent.metrics(self.headers.get("Accept"))
                self._send(HTTPStatus.OK, body, content_type, head=head)
            elif parts.path == "/healthz":
                self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8", head=head)
            else:
                self._send(
                    HTTPStatus.NOT_FOUND,
                    _json_body({"error": f"no such path: {parts.path}"}),
                    "application/json",
                    head=head,
                )
        except ValueError as exc:
            self._send(
                HTTPStatus.BAD_REQUEST,
                _json_body({"error": str(exc)}),
                "application/json",
                head=head,
            )
        except _NoSample as exc:
            self._send(
                HTTPStatus.SERVICE_UNAVAILABLE,
                _json_body({"error": str(exc)}),
                "application/json",
                extra={"Retry-After": "1"},
                head=head,
            )

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        *,
        extra: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


class _NoSample(Exception):
    pass


def _json_body(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


def _history_param(text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError("history_s must be a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError("history_s must be a number of seconds, 0 or more")
    return value


class AgentServer:
    """This machine's telemetry over HTTP.

    ``host`` / ``port`` is where to listen (port 0: any free port; see :attr:`port`).
    ``token`` is required unless ``host`` is 127.0.0.1 or ::1 (see :func:`needs_token`).
    ``sampler`` replaces the :class:`LocalSampler` made on the sampling thread.

    Attributes:
        host, port, url: where it listens (after :meth:`start`).
        host_id: the stable id it reports (and announces).
        hostname: this machine's name.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_AGENT_PORT,
        token: str | None = None,
        host_id: str = "",
        hostname: str | None = None,
        sampler: LocalSampler | None = None,
        interval_s: float = 1.0,
        window_s: float = 900.0,
    ) -> None:
        host = host.strip("[]")
        if needs_token(host) and not token:
            raise AgentServerError(
                f"The agent listens on {host}, which is not 127.0.0.1 or ::1: it needs a "
                "token (--token, or let it make one)."
            )
        if token is not None and (not token.strip() or any(c.isspace() for c in token)):
            raise InvalidInput("The token must be text without spaces.")
        if interval_s <= 0 or window_s <= 0:
            raise InvalidInput("The interval and the window must be positive.")
        self.host = host
        self.port = port
        self.host_id = host_id
        self.hostname = hostname or socket.gethostname()
        self.interval_s = float(interval_s)
        self._token = token.encode("utf-8") if token else None
        self._sampler = sampler
        self._store = TelemetryStore(window_s=window_s, rate_hz=1.0 / self.interval_s)
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(
            SampleCollector(
                self.latest,
                {"version": __version__, "host_id": host_id, "hostname": self.hostname},
            )
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def token_required(self) -> bool:
        return self._token is not None

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> AgentServer:
        """Bind, start sampling and serving. Raises AgentServerError if it cannot bind."""
        if self._server is not None:
            return self
        try:
            server = _Server((self.host, self.port), self)
        except OSError as exc:
            raise AgentServerError(
                f"The agent cannot listen on {self.host}:{self.port}: {exc.strerror or exc}."
            ) from exc
        self._server = server
        self.port = server.server_address[1]
        sampling = threading.Thread(target=self._sample_loop, name="agent-sampler", daemon=True)
        serving = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="agent-http",
            daemon=True,
        )
        self._threads = [sampling, serving]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and sampling; wait for both threads."""
        self._stop.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=10.0)
        self._threads = []

    def __enter__(self) -> AgentServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _sample_loop(self) -> None:
        sampler = self._sampler or LocalSampler()
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    sample = sampler.sample()
                except Exception:  # a bug in the sampler must not end the agent
                    log.exception("taking a sample failed")
                else:
                    with self._lock:
                        self._store.record(_SELF, sample)
                    self._first.set()
                self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
        finally:
            sampler.close()

    # -- answers ----------------------------------------------------------------------
    def authorized(self, header: str | None) -> bool:
        if self._token is None:
            return True
        if not header:
            return False
        scheme, _, given = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode("utf-8"), self._token)

    def latest(self) -> HostSample | None:
        with self._lock:
            return self._store.latest(_SELF)

    def _wait_first(self) -> HostSample:
        if not self._first.wait(FIRST_SAMPLE_WAIT_S):
            raise _NoSample("no sample has been taken yet; try again in a moment")
        latest = self.latest()
        if latest is None:
            raise _NoSample("no sample has been taken yet; try again in a moment")
        return latest

    def telemetry(self, history_s: float | None = None) -> dict[str, Any]:
        """The body of /v1/telemetry."""
        snapshot = self._wait_first()
        window = self._store.window_s
        span = min(DEFAULT_HISTORY_S if history_s is None else history_s, window)
        with self._lock:
            history = self._store.history(_SELF, snapshot.t - span) if span > 0 else {}
        return {
            "agent": "corral-agent",
            "version": __version__,
            "host_id": self.host_id,
            "hostname": self.hostname,
            "interval_s": self.interval_s,
            "window_s": window,
            "history_s": span,
            "snapshot": sample_to_json(snapshot),
            "history": history_to_json(history),
            "markers": [],
        }

    def metrics(self, accept: str | None) -> tuple[bytes, str]:
        """The body and content type of /metrics."""
        self._wait_first()
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self._registry), content_type
