"""A tiny TCP forwarder: one more loopback address in front of a server.

It stands for a second route to the same machine (its LAN address, a host name), so tests
can reach one server through two addresses::

    async with TcpForwarder("127.0.0.3", fake.port, host="127.0.0.9") as fwd:
        await identify_url(fwd.url)

It runs on the test's event loop and copies bytes both ways until either side closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from typing import Any


class TcpForwarder:
    """Accept on ``host:port`` (port 0 picks one) and pipe every connection to the target.

    Attributes:
        host, port: where it listens (``port`` is the real one after :meth:`start`).
        connections: number of connections accepted so far.
    """

    def __init__(
        self, target_host: str, target_port: int, *, host: str = "127.0.0.9", port: int = 0
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the forwarder listens on loopback addresses only, not {host!r}")
        self.target = (target_host, target_port)
        self.host = host
        self.port = port
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> TcpForwarder:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> TcpForwarder:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.close()
                return
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            self._tasks.discard(task)
            writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                if writer.can_write_eof():
                    writer.write_eof()
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
