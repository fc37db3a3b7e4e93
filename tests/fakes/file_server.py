"""A small threaded HTTP file server on a loopback address, for download tests.

It serves byte strings at paths, honours ``Range`` (and ``If-Range`` against its strong
ETag) unless told to ignore it, and misbehaves on request: cut the connection after N
body bytes, hold the body after N bytes until released, or send slowly. Every request's
path and headers are kept in :attr:`FileServer.requests`.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["FileServer", "Request"]

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")
_PIECE = 64 * 1024


@dataclass
class Request:
    """One request as the server saw it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.owner._get(self)

    def do_HEAD(self) -> None:
        self.server.owner._get(self, head=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: FileServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-body is what these tests do on purpose


class FileServer:
    """Serves files from memory; start it with ``with FileServer() as server``.

    Knobs (change them at any time):
        cuts: body byte counts; each GET with a body takes the first one and closes the
            connection after sending that many bytes.
        ignore_range: answer every GET with the whole file (200), as some servers do.
        hold_after: pause the body after this many bytes until :meth:`release`.
        bytes_per_s: send no faster than this (None: as fast as possible).
        content_type: the Content-Type of every file.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the file server binds to loopback addresses only, not {host!r}")
        self.host = host
        self.port = 0
        self.files: dict[str, bytes] = {}
        self.requests: list[Request] = []
        self.cuts: list[int] = []
        self.ignore_range = False
        self.hold_after: int | None = None
        self.bytes_per_s: float | None = None
        self.content_type = "application/octet-stream"
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()

    # -- set-up

    def serve(self, path: str, data: bytes) -> str:
        """Serve ``data`` at ``path``; return its URL."""
        self.files[path] = data
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def release(self) -> None:
        """Let held bodies go on."""
        self._released.set()

    def get_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == "GET"]

    # -- life

    def start(self) -> Self:
        self._httpd = _Server((self.host, 0), self)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._released.set()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answering

    def etag(self, path: str) -> str:
        return '"' + hashlib.sha256(self.files[path]).hexdigest()[:16] + '"'

    def _get(self, handler: _Handler, *, head: bool = False) -> None:
        request = Request(
            handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()}
        )
        with self._lock:
            self.requests.append(request)
            self._sockets.add(handler.connection)
        try:
            self._answer(handler, request, head)
        except OSError:
            handler.close_connection = True
        finally:
            with self._lock:
                self._sockets.discard(handler.connection)

    def _answer(self, handler: _Handler, request: Request, head: bool) -> None:
        path = request.path.split("?", 1)[0]  # a query (?download=true) names no other file
        data = self.files.get(path)
        if data is None:
            self._reply(handler, request, 404, b"not found", {"Content-Type": "text/plain"})
            return
        etag = self.etag(path)
        headers = {"Content-Type": self.content_type, "ETag": etag, "Accept-Ranges": "bytes"}
        start, status = 0, 200
        wanted = _RANGE.fullmatch(request.headers.get("range", "").strip())
        if_range = request.headers.get("if-range")
        if wanted and not self.ignore_range and (if_range is None or if_range == etag):
            start = int(wanted.group(1))
            end = int(wanted.group(2)) + 1 if wanted.group(2) else len(data)
            if start >= len(data):
                headers["Content-Range"] = f"bytes */{len(data)}"
                self._reply(handler, request, 416, b"", headers)
                return
            total = len(data)
            data = data[start:end]
            headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{total}"
            status = 206
        if head:
            self._reply(handler, request, status, b"", headers, length=len(data))
            return
        self._reply(handler, request, status, data, headers)

    def _reply(
        self,
        handler: _Handler,
        request: Request,
        status: int,
        body: bytes,
        headers: dict[str, str],
        *,
        length: int | None = None,
    ) -> None:
        request.status = status
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body) if length is None else length))
        handler.end_headers()
        with self._lock:
            cut = self.cuts.pop(0) if body and self.cuts else None
        for sent, piece in self._pieces(body):
            if self._stopping.is_set():
                break
            if cut is not None and sent + len(piece) >= cut:
                handler.wfile.write(piece[: cut - sent])
                handler.wfile.flush()
                handler.close_connection = True
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(socket.SHUT_RDWR)
                return
            hold = self.hold_after
            if hold is not None and sent + len(piece) > hold and not self._released.is_set():
                handler.wfile.write(piece[: max(0, hold - sent)])
                handler.wfile.flush()
                self._released.wait(30)
                piece = piece[max(0, hold - sent) :]
            handler.wfile.write(piece)
            if self.bytes_per_s:
                time.sleep(len(piece) / self.bytes_per_s)
        handler.wfile.flush()

    @staticmethod
    def _pieces(body: bytes) -> Iterator[tuple[int, bytes]]:
        for offset in range(0, len(body), _PIECE):
            yield offset, body[offset : offset + _PIECE]
