"""An MCP test server built with the SDK's ``MCPServer``, over stdio, streamable HTTP or SSE.

By hand or from a test::

    python -m tests.fakes.mcp_server                      # stdio
    python -m tests.fakes.mcp_server http --host 127.0.0.1 --port 0
    python -m tests.fakes.mcp_server sse --host 127.0.0.1 --port 0

In tests, :class:`FakeMcpProcess` runs it as a child process over HTTP or SSE::

    with FakeMcpProcess("http") as fake:
        fake.url          # http://127.0.0.1:PORT/mcp, listening already

Over HTTP and SSE it binds a loopback address only (anything else is refused), and prints
its endpoint URL (``http://127.0.0.1:PORT/mcp`` or ``.../sse``) as the first line of
stdout once the socket listens: a client may connect as soon as that line is read. Every
transport writes ``fake-mcp: starting (<transport>)`` to stderr first.

Tools:

- ``echo(text)``: the text back (annotated read-only and idempotent, titled "Echo").
- ``add(a, b)``: the sum as structured content ``{"sum": a + b}`` (with an output schema).
- ``fail(message)``: raises, so the result has ``is_error``.
- ``hang(seconds)``: sleeps (an hour by default). If the client cancels the call, it
  writes ``cancelled`` to stderr and counts it. Also counts the calls running at once.
- ``stats()``: ``{"cancelled", "in_flight", "max_in_flight", "calls"}`` of ``hang``.
- ``crash(code)``: writes ``crashing now`` to stderr and exits the process at once.
- ``image()``: a 1x1 PNG as image content.
- ``toggle_extra()``: adds the tool ``extra`` (or removes it if present) and sends
  ``notifications/tools/list_changed``.
- ``pid()``: ``{"pid": <the server's process id>}``.
- ``environment()``: the server's environment variables (structured).
- ``headers()``: the HTTP request's headers (empty over stdio).
- ``plan_trip(...)``: a schema-rich tool (``anyOf``, a nested object, defaults, an enum)
  for tool-calling tests of the chat.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import os
import queue
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import anyio
from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

# A 1x1 red PNG.
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


class Sum(BaseModel):
    sum: float


class DateRange(BaseModel):
    start: str = Field(description="first day, YYYY-MM-DD")
    end: str = Field(description="last day, YYYY-MM-DD")


class Traveller(BaseModel):
    name: str
    age: int | None = None


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def build_server() -> MCPServer:
    """The server with all its tools (state lives in the closure: one per process)."""
    mcp = MCPServer("corral-fake-mcp", version="1.2.3", log_level="WARNING")
    counters = {"cancelled": 0, "in_flight": 0, "max_in_flight": 0, "calls": 0}

    @mcp.tool(
        title="Echo",
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True),
    )
    def echo(text: str) -> str:
        """Say the text back."""
        return text

    @mcp.tool()
    def add(a: float, b: float) -> Sum:
        """Add two numbers."""
        return Sum(sum=a + b)

    @mcp.tool()
    def fail(message: str = "it failed on purpose") -> str:
        """Always fails (the result is an error result)."""
        raise ToolError(message)

    @mcp.tool()
    async def hang(seconds: float = 3600.0) -> str:
        """Sleep; report a cancellation on stderr."""
        counters["calls"] += 1
        counters["in_flight"] += 1
        counters["max_in_flight"] = max(counters["max_in_flight"], counters["in_flight"])
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            counters["cancelled"] += 1
            _say("cancelled")
            raise
        finally:
            counters["in_flight"] -= 1
        return f"slept {seconds:g} s"

    @mcp.tool()
    def stats() -> dict[str, int]:
        """Counters of the hang tool."""
        return dict(counters)

    @mcp.tool()
    def crash(code: int = 3) -> str:
        """Exit the server process at once."""
        _say("crashing now")
        sys.stdout.flush()
        os._exit(code)

    @mcp.tool()
    def image() -> Image:
        """A tiny PNG."""
        return Image(data=PNG_1X1, format="png")

    def extra() -> str:
        """A tool that comes and goes."""
        return "extra"

    @mcp.tool()
    async def toggle_extra(ctx: Context) -> str:
        """Add or remove the tool ``extra`` and tell the client the list changed."""
        names = {tool.name for tool in await mcp.list_tools()}
        if "extra" in names:
            mcp.remove_tool("extra")
            state = "removed"
        else:
            mcp.add_tool(extra, name="extra")
            state = "added"
        await ctx.session.send_tool_list_changed()
        return state

    @mcp.tool()
    def pid() -> dict[str, int]:
        """The server's process id."""
        return {"pid": os.getpid()}

    @mcp.tool()
    def environment() -> dict[str, str]:
        """The server's environment variables."""
        return dict(os.environ)

    @mcp.tool()
    def headers(ctx: Context) -> dict[str, str]:
        """The headers of the HTTP request that carried this call."""
        return {k.lower(): v for k, v in (ctx.headers or {}).items()}

    @mcp.tool(title="Plan a trip")
    def plan_trip(
        destination: str,
        dates: DateRange,
        travellers: list[Traveller] | None = None,
        budget: float | str | None = None,
        mode: Literal["train", "plane", "car"] = "train",
        flexible: bool = False,
    ) -> str:
        """Plan a trip (a schema with anyOf, nested objects, an enum and defaults)."""
        who = ", ".join(t.name for t in travellers or []) or "nobody named"
        return (
            f"{mode} to {destination} from {dates.start} to {dates.end} for {who}; "
            f"budget {budget if budget is not None else 'open'}; flexible={flexible}"
        )

    return mcp


ROOT = Path(__file__).resolve().parents[2]


class FakeMcpProcess:
    """The fake server as a child process over HTTP or SSE, for tests and benchmarks.

    Attributes:
        transport: "http" or "sse". host, port: where it listens (``port`` is the real
        one after :meth:`start`). url: its endpoint. process: the child, while it runs.
    """

    def __init__(self, transport: str = "http", host: str = "127.0.0.1", port: int = 0) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.url = ""
        self.process: subprocess.Popen[str] | None = None

    def start(self, ready_timeout_s: float = 30.0) -> str:
        """Start it; return its URL once its socket listens."""
        command = [sys.executable, "-m", "tests.fakes.mcp_server", self.transport]
        command += ["--host", self.host, "--port", str(self.port)]
        self.process = process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            first = lines.get(timeout=ready_timeout_s).strip()
        except queue.Empty:
            self.stop()
            raise RuntimeError(
                f"the fake MCP server did not start in {ready_timeout_s:g} s"
            ) from None
        if not first:
            code = process.wait()
            raise RuntimeError(f"the fake MCP server exited with code {code} before listening")
        self.url = first
        self.port = int(first.rsplit(":", 1)[1].split("/", 1)[0])
        return first

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _loopback(host: str) -> str:
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise SystemExit(f"refusing to listen on {host!r}: loopback addresses only")


async def _serve_http(mcp: MCPServer, transport: str, host: str, port: int) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    bound = sock.getsockname()[1]
    if transport == "http":
        app: Any = mcp.streamable_http_app(host=host)
        path = "/mcp"
    else:
        app = mcp.sse_app(host=host)
        path = "/sse"
    shown = f"[{host}]" if ":" in host else host
    # The socket listens already: a client connecting now waits in the backlog.
    print(f"http://{shown}:{bound}{path}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.mcp_server", description=__doc__)
    parser.add_argument("transport", nargs="?", default="stdio", choices=["stdio", "http", "sse"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    _say(f"fake-mcp: starting ({args.transport})")
    mcp = build_server()
    if args.transport == "stdio":
        mcp.run("stdio")
    else:
        anyio.run(_serve_http, mcp, args.transport, _loopback(args.host), args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
