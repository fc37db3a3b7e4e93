"""The HTTP machinery the fake servers share; each fake adds only its own API.

A :class:`FakeServer` binds a ``ThreadingHTTPServer`` to a loopback address and serves it
from a daemon thread: HTTP/1.1 with keep-alive, request bodies read whole (chunked or
``Content-Length``), every request logged with its headers. ``stop`` is quick even while
requests hang or streams are open: it wakes sleeping handlers and shuts every connection.

A subclass answers requests with :class:`Reply` objects from :meth:`FakeServer._answer`
and says how its streams are framed (:attr:`FakeServer.stream_headers`,
:meth:`FakeServer._frame`), how it encodes JSON, and what its failures look like.
:class:`Faults` apply to every fake the same way: ``hang`` and ``latency`` before routing,
``fail_status`` through :meth:`FakeServer._failure`, ``drop_after`` on streamed replies.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import selectors
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import urlsplit

__all__ = [
    "JSON_CT",
    "TEXT_CT",
    "FakeHandler",
    "FakeServer",
    "Faults",
    "Reply",
    "add_fault_args",
    "add_listen_args",
    "check_loopback",
    "dumps",
    "name_list",
    "serve_until_signalled",
]

JSON_CT = "application/json; charset=utf-8"
TEXT_CT = "text/plain; charset=utf-8"


@dataclass
class Faults:
    """Misbehaviour switched on from tests; all off by default, all changeable at run time.

    - ``latency``: seconds added before every response.
    - ``token_delay``: seconds between streamed pieces of a generated reply (on a
      schedule from the first piece, so ``1 / token_delay`` pieces a second on average).
    - ``drop_after``: streamed replies write this many lines (or events), then close the
      socket without the final chunk terminator.
    - ``fail_status``: requests get this status with the fake's own error body (the fake
      Ollama fails only ``/api/*`` paths, with ``{"error": "fake failure N"}``).
    - ``hang``: read the request, never answer (until the server stops).
    - ``paths``: if set, the faults apply only to these paths.
    """

    latency: float = 0.0
    token_delay: float = 0.0
    drop_after: int | None = None
    fail_status: int | None = None
    hang: bool = False
    paths: set[str] | None = None

    def applies(self, path: str) -> bool:
        return self.paths is None or path in self.paths


@dataclass
class Reply:
    """What a fake answers to one request."""

    status: int = 200
    json: Any = None  # a JSON reply
    text: str | None = None  # a text/plain reply
    empty: bool = False  # an empty body
    stream: Iterator[Any] | None = None  # a chunked stream, one item a chunk (FakeServer._frame)
    delay: Callable[[], float] | None = None  # seconds between stream items
    cleanup: Callable[[], None] | None = None  # run once the stream ends, however it ends
    hang: bool = False
    content_type: str | None = None  # overrides the default for json/text


class _Stop(Exception):
    """The server is stopping: abandon the request."""


class _ClientGone(ConnectionError):
    """The client closed its end while we were writing."""


def dumps(obj: object) -> bytes:
    """Compact JSON, non-ASCII characters kept as they are."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"the fake Ollama server binds to loopback addresses only, not {host!r}")


def _shutdown_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    timeout = 0.05  # handle_request() gives up after this if the connection went away

    def __init__(self, address: tuple[str, int], fake: FakeServer) -> None:
        self.fake = fake
        super().__init__(address, fake.handler_class)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError | ValueError) or self.fake._stopping.is_set():
            return  # client went away or we are shutting down: nothing worth printing
        super().handle_error(request, client_address)


class FakeHandler(BaseHTTPRequestHandler):
    """Reads a request, hands it to the fake, writes its :class:`Reply`."""

    protocol_version = "HTTP/1.1"
    server: _Server

    # -- plumbing

    def setup(self) -> None:
        super().setup()
        # Small writes (a header block, one stream line) must not wait for delayed ACKs.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._register(self)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.fake._unregister(self)

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())
        for name, value in self.server.fake._server_headers():
            self.send_header(name, value)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size_line = self.rfile.readline(1024)
                if not size_line:
                    break
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        path = urlsplit(self.path).path
        raw = self._read_body()
        fake._log_request(method, path, raw, dict(self.headers.items()))
        self._head = method == "HEAD"
        self._started = False
        try:
            self._send(fake._handle(method, path, raw))
        except (_ClientGone, _Stop, OSError):
            self._abort()
        except Exception:
            if not fake._stopping.is_set():
                traceback.print_exc()
            if self._started:
                self._abort()
            else:
                self._send(fake._internal_error())

    # -- writing

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except (OSError, ValueError) as exc:
            raise _ClientGone from exc

    def _abort(self) -> None:
        """Close the connection at once (no chunk terminator, no further responses)."""
        self.close_connection = True
        _shutdown_socket(self.connection)

    def _end_headers(self) -> None:
        self._started = True
        try:
            self.end_headers()
        except (OSError, ValueError) as exc:
            raise _ClientGone from exc

    def _send_body(self, status: int, content_type: str | None, body: bytes) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self._end_headers()
        if body and not self._head:
            self._write(body)

    def _send(self, reply: Reply) -> None:
        fake = self.server.fake
        if reply.hang:
            fake._stopping.wait()
            raise _Stop
        if reply.stream is not None:
            try:
                self._send_stream(reply.stream, reply.delay)
            finally:
                if reply.cleanup is not None:
                    reply.cleanup()
        elif reply.text is not None:
            self._send_body(reply.status, reply.content_type or TEXT_CT, reply.text.encode())
        elif reply.empty:
            self._send_body(reply.status, reply.content_type, b"")
        else:
            self._send_body(reply.status, reply.content_type or JSON_CT, fake._dumps(reply.json))

    def _send_stream(self, items: Iterator[Any], delay: Callable[[], float] | None) -> None:
        fake = self.server.fake
        path = urlsplit(self.path).path
        self.send_response(200)
        for name, value in fake.stream_headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self._end_headers()
        written = 0
        due = time.monotonic()  # pieces are paced on a schedule: late ones catch up
        try:
            for index, item in enumerate(items):
                if index and delay is not None:
                    due += delay()
                    fake._sleep(due - time.monotonic())
                if fake._drop_due(path, written):
                    self._abort()
                    return
                data = fake._frame(item)
                self._write(b"%x\r\n%s\r\n" % (len(data), data))
                written += 1
            if fake._drop_due(path, written):
                self._abort()
                return
            self._write(b"0\r\n\r\n")
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()


class FakeServer(ABC):
    """A fake server's life: bind, serve from a daemon thread, log requests, stop quickly.

    Attributes: ``url``, ``host``, ``port`` (the real one after ``start``), ``faults``,
    ``requests`` (``(method, path, parsed JSON body or None)``) and ``request_headers``
    (names lower-cased, in the order of ``requests``), ``accepted`` (connections accepted).
    """

    handler_class: ClassVar[type[FakeHandler]] = FakeHandler
    # headers of a streamed reply, before Transfer-Encoding
    stream_headers: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, host: str, port: int) -> None:
        check_loopback(host)
        self.host = host
        self.port = port
        self.faults = Faults()
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        # headers of each request (names lower-cased), in the same order as `requests`
        self.request_headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._conns: dict[FakeHandler, threading.Thread] = {}
        self.accepted = 0  # connections accepted so far (keep-alive reuse shows here)
        self._stopped = False

    # -- what a fake defines

    @abstractmethod
    def _label(self) -> str:
        """What the serving thread is named after (``fake-<label>-<host>:<port>``)."""

    @abstractmethod
    def _answer(self, method: str, path: str, raw: bytes) -> Reply:
        """The reply to a request that no fault intercepted."""

    @abstractmethod
    def _failure(self, path: str, status: int) -> Reply | None:
        """The reply ``faults.fail_status`` gives on ``path``; None: answer as usual."""

    @abstractmethod
    def _internal_error(self) -> Reply:
        """The reply when answering raised before anything was written."""

    @abstractmethod
    def _frame(self, item: Any) -> bytes:
        """One item of a streamed reply as the bytes of its chunk."""

    def _dumps(self, obj: object) -> bytes:
        """The body of a JSON reply."""
        return dumps(obj)

    def _server_headers(self) -> list[tuple[str, str]]:
        """Headers sent after ``Date`` on every response."""
        return []

    # -- lifecycle

    def start(self) -> Self:
        """Bind (port 0 picks a free port) and serve from a daemon thread."""
        if self._httpd is not None or self._stopped:
            raise RuntimeError(f"a {type(self).__name__} can be started once")
        self._httpd = _Server((self.host, self.port), self)
        self.port = int(self._httpd.server_address[1])
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(
            target=self._serve, name=f"fake-{self._label()}-{self.host}:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def _serve(self) -> None:
        """Accept connections until stopped; a byte on the wake socket ends the wait at once."""
        httpd = self._httpd
        assert httpd is not None and self._wake_r is not None
        with selectors.DefaultSelector() as selector:
            selector.register(httpd, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is httpd and not self._stopping.is_set():
                        httpd.handle_request()  # the listener is readable: accepts at once

    def stop(self) -> None:
        """Stop serving: wake hung requests, close every connection, join the threads."""
        with self._lock:
            if self._httpd is None or self._stopped:
                self._stopped = True
                return
            self._stopped = True
            self._stopping.set()
            conns = list(self._conns.items())
        deadline = time.monotonic() + 1.0
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self._httpd.server_close()
        for handler, _ in conns:
            _shutdown_socket(handler.connection)
        for _, thread in conns:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _register(self, handler: FakeHandler) -> None:
        with self._lock:
            self.accepted += 1
            self._conns[handler] = threading.current_thread()
            stopping = self._stopping.is_set()
        if stopping:
            _shutdown_socket(handler.connection)

    def _unregister(self, handler: FakeHandler) -> None:
        with self._lock:
            self._conns.pop(handler, None)

    def _sleep(self, seconds: float) -> None:
        """Wait, but give up at once when the server stops."""
        if seconds > 0 and self._stopping.wait(seconds):
            raise _Stop
        if self._stopping.is_set():
            raise _Stop

    # -- requests

    def _handle(self, method: str, path: str, raw: bytes) -> Reply:
        faults = self.faults
        if faults.applies(path):
            if faults.hang:
                return Reply(hang=True)
            if faults.latency > 0:
                self._sleep(faults.latency)
            if faults.fail_status is not None:
                failure = self._failure(path, faults.fail_status)
                if failure is not None:
                    return failure
        return self._answer(method, path, raw)

    def _drop_due(self, path: str, written: int) -> bool:
        f = self.faults
        return f.drop_after is not None and f.applies(path) and written >= f.drop_after

    def _log_request(
        self, method: str, path: str, raw: bytes, headers: dict[str, str] | None = None
    ) -> None:
        body: dict[str, Any] | None = None
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            body = parsed if isinstance(parsed, dict) else None
        with self._lock:
            self.requests.append((method, path, body))
            self.request_headers.append({k.lower(): v for k, v in (headers or {}).items()})


# --------------------------------------------------------------------------- command line

_F = TypeVar("_F", bound=FakeServer)


def add_listen_args(parser: argparse.ArgumentParser, port: int) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=port, help="port (0: any free port)")


def add_fault_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between tokens")


def name_list(text: str | None) -> list[str] | None:
    """A comma-separated command-line list (empty items dropped); None stays None."""
    if text is None:
        return None
    return [m.strip() for m in text.split(",") if m.strip()]


def serve_until_signalled(
    args: argparse.Namespace, build: Callable[[], _F], banner: Callable[[_F], str]
) -> int:
    """Start the fake ``build`` makes and serve until SIGINT or SIGTERM.

    The URL is the first line of stdout; ``banner`` goes to stderr. ``args.latency`` and
    ``args.token_delay`` become its faults. Returns 2 if it cannot be made or bound.
    """
    try:
        fake = build()
        fake.faults.latency = args.latency
        fake.faults.token_delay = args.token_delay
        fake.start()
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print(fake.url, flush=True)
    print(banner(fake), file=sys.stderr, flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0
