"""A server that closes a kept-alive connection just as it is reused (llama.cpp's server
does so after some streamed replies): the request goes again, once, on a new connection,
and the user sees no error. A server that never answers still fails with a clear message."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from typing import BinaryIO

import pytest

from app.core.errors import StreamInterrupted
from app.core.hosts.base import HostConfig, HostKind, Timeouts
from app.core.hosts.openai import OpenAIHost

MODELS = json.dumps({"object": "list", "data": [{"id": "tiny", "object": "model"}]}).encode()


def read_head(reader: BinaryIO) -> bytes | None:
    """A request's line and headers, up to the blank line (None: the client left)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        if not line:
            return None
        head += line
    return head


def models_reply(extra_headers: bytes = b"") -> bytes:
    """An HTTP response carrying the model list."""
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + extra_headers
        + b"Content-Length: "
        + str(len(MODELS)).encode()
        + b"\r\n\r\n"
        + MODELS
    )


class ClosingServer:
    """Answers the first request of each connection (keeping it open) and closes the
    connection, unanswered, when a second request arrives on it; with ``answer=False``
    it closes every connection unanswered."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.connections = 0
        self.requests = 0
        self.dropped = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            reader = conn.makefile("rb")
            served = 0
            while True:
                head = read_head(reader)
                if head is None:
                    return
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                reader.read(length)
                self.requests += 1
                if served or not self.answer:
                    self.dropped += 1
                    return  # closed without a word, as a server with an idle timeout does
                served += 1
                conn.sendall(models_reply())

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # shutdown wakes the accept(); a close does not
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._accepting.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def closing() -> Iterator[ClosingServer]:
    server = ClosingServer()
    yield server
    server.stop()


def host_on(url: str) -> OpenAIHost:
    config = HostConfig("box", "Box", url, HostKind.OPENAI)
    return OpenAIHost(config, timeouts=Timeouts(connect=2.0, request=5.0))


async def test_a_request_on_a_connection_the_server_closed_goes_again(
    closing: ClosingServer,
) -> None:
    host = host_on(closing.url)
    try:
        for _ in range(3):
            assert [m.name for m in await host.list_models()] == ["tiny"]
    finally:
        await host.aclose()
    # the second and third requests each met a closed connection and went again
    assert (closing.requests, closing.dropped, closing.connections) == (5, 2, 3)


async def test_a_server_that_never_answers_still_fails_plainly() -> None:
    server = ClosingServer(answer=False)
    host = host_on(server.url)
    try:
        with pytest.raises(StreamInterrupted, match="Box closed the connection"):
            await host.list_models()
    finally:
        await host.aclose()
        server.stop()
    assert server.requests == 2  # once, and once more: never a loop


class RecordingProxy(ClosingServer):
    """An HTTP proxy on loopback that answers every request itself and keeps the request
    lines (absolute URLs, as a proxy receives them)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = read_head(conn.makefile("rb"))
            if head is None:
                return
            self.lines.append(head.decode("latin-1").split("\r\n", 1)[0])
            conn.sendall(models_reply(b"Connection: close\r\n"))


async def test_the_environments_proxy_settings_still_apply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = RecordingProxy()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    host = host_on("http://127.0.0.77:9")  # nothing listens there: only the proxy answers
    try:
        assert [m.name for m in await host.list_models()] == ["tiny"]
    finally:
        await host.aclose()
        proxy.stop()
    assert proxy.lines == ["GET http://127.0.0.77:9/v1/models HTTP/1.1"]
