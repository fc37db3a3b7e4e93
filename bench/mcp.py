"""mcp: MCP connect + initialize per transport, and what McpManager adds to a tool call.

Against the in-repo MCP server (tests/fakes/mcp_server.py):

- connect + initialize + tools/list, over stdio (a fresh child process each time) and over
  streamable HTTP (a fresh session with one server process on loopback): McpManager from
  start() to the server's ready status, against a bare SDK ``mcp.Client`` from entering
  the client to the end of its first tools/list. Measured alternately, medians reported.
- per-call time of ``echo``: McpManager.call_tool against a bare ``mcp.Client.call_tool``
  on a session with the same server (stdio: its own child of the same program; HTTP: the
  very same process), in interleaved blocks (A, B, B, A, ...) so that drift in the
  machine's load hits both alike. The difference of the medians is what the manager adds
  (timeout, concurrency slot, conversion of the result).

Target: the manager adds < 1 ms per call (both transports).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from app.core.mcp.manager import McpManager
from app.core.mcp.types import ServerConfig, ServerState, ServerStatus, Transport
from bench import Result
from tests.fakes.mcp_server import ROOT, FakeMcpProcess

TARGET_ADDED_MS = 1.0
ARGS = {"text": "hello"}


def _stdio_config() -> ServerConfig:
    return ServerConfig(
        name="bench",
        command=sys.executable,
        args=("-m", "tests.fakes.mcp_server"),
        cwd=str(ROOT),
    )


_DEVNULL = open(os.devnull, "w")  # noqa: SIM115 (the bare children's stderr, for the run)


def _bare(config: ServerConfig) -> Client:
    if config.transport is Transport.STDIO:
        params = StdioServerParameters(
            command=config.command, args=list(config.args), cwd=config.cwd or None
        )
        return Client(stdio_client(params, errlog=_DEVNULL), mode="legacy", cache=None)
    return Client(config.url, mode="legacy", cache=None)


async def _manager_ready(manager: McpManager, name: str) -> None:
    ready = asyncio.Event()

    def on_change(status: ServerStatus) -> None:
        if status.name == name and status.state in (ServerState.READY, ServerState.FAILED):
            ready.set()

    manager.changed.connect(on_change)
    try:
        await manager.start()
        async with asyncio.timeout(60):
            await ready.wait()
    finally:
        manager.changed.disconnect(on_change)
    status = manager.status(name)
    if status.state is not ServerState.READY:
        raise RuntimeError(f"the bench server did not start: {status.reason}")


async def _connect_times(config: ServerConfig, rounds: int) -> tuple[list[float], list[float]]:
    corral: list[float] = []
    bare: list[float] = []

    async def corral_once() -> float:
        manager = McpManager([config])
        t0 = time.perf_counter()
        await _manager_ready(manager, config.name)
        elapsed = time.perf_counter() - t0
        await manager.aclose()
        return elapsed

    async def bare_once() -> float:
        t0 = time.perf_counter()
        async with _bare(config) as client:
            await client.list_tools()
            elapsed = time.perf_counter() - t0
        return elapsed

    for i in range(rounds + 1):  # the first pair warms the imports and caches up
        order = (corral_once, bare_once) if i % 2 == 0 else (bare_once, corral_once)
        for fn in order:
            elapsed = await fn()
            if i:
                (corral if fn is corral_once else bare).append(elapsed * 1000)
    return corral, bare


async def _call_times(
    config: ServerConfig, blocks: int, per_block: int
) -> tuple[list[float], list[float]]:
    corral: list[float] = []
    bare: list[float] = []
    manager = McpManager([config])
    await _manager_ready(manager, config.name)
    try:
        async with _bare(config) as client:
            await client.list_tools()

            async def corral_call() -> None:
                await manager.call_tool(config.name, "echo", ARGS)

            async def bare_call() -> None:
                await client.call_tool("echo", ARGS)

            async def block(fn: Callable[[], Awaitable[None]], into: list[float] | None) -> None:
                for _ in range(per_block):
                    t0 = time.perf_counter()
                    await fn()
                    if into is not None:
                        into.append((time.perf_counter() - t0) * 1000)

            await block(corral_call, None)  # warm both paths up
            await block(bare_call, None)
            for i in range(blocks):
                if i % 2 == 0:
                    await block(corral_call, corral)
                    await block(bare_call, bare)
                else:
                    await block(bare_call, bare)
                    await block(corral_call, corral)
    finally:
        await manager.aclose()
    return corral, bare


def _median(values: list[float]) -> float:
    return statistics.median(values)


def run(argv: list[str]) -> Result:
    parser = argparse.ArgumentParser(prog="python -m bench mcp")
    parser.add_argument("--connects", type=int, default=6, help="connects per transport")
    parser.add_argument("--blocks", type=int, default=20, help="blocks of calls per side")
    parser.add_argument("--calls", type=int, default=50, help="calls per block")
    args = parser.parse_args(argv)

    figures: dict[str, float | int] = {"connects": args.connects, "calls": args.blocks * args.calls}
    baseline: dict[str, float] = {}
    ratios: dict[str, float] = {}
    added: dict[str, float] = {}
    with FakeMcpProcess("http") as fake:
        configs = {
            "stdio": _stdio_config(),
            "http": ServerConfig(name="bench", transport=Transport.HTTP, url=fake.url),
        }
        print(
            "mcp: the in-repo MCP server; connect = connect + initialize + tools/list; "
            "call = echo, interleaved blocks"
        )
        for label, config in configs.items():
            c_conn, b_conn = asyncio.run(_connect_times(config, args.connects))
            c_call, b_call = asyncio.run(_call_times(config, args.blocks, args.calls))
            cc, bc = _median(c_conn), _median(b_conn)
            ck, bk = _median(c_call), _median(b_call)
            added[label] = ck - bk
            figures[f"{label}_connect_ms"] = round(cc, 2)
            figures[f"{label}_call_ms"] = round(ck, 4)
            figures[f"{label}_added_ms_per_call"] = round(ck - bk, 4)
            figures[f"{label}_call_p90_ms"] = round(statistics.quantiles(c_call, n=10)[-1], 4)
            baseline[f"{label}_connect_ms"] = round(bc, 2)
            baseline[f"{label}_call_ms"] = round(bk, 4)
            baseline[f"{label}_call_p90_ms"] = round(statistics.quantiles(b_call, n=10)[-1], 4)
            ratios[f"{label}_call"] = round(ck / bk, 3)
            ratios[f"{label}_connect"] = round(cc / bc, 3)
            print(f"  {label}")
            print(f"    connect  McpManager {cc:8.2f} ms   bare mcp.Client {bc:8.2f} ms")
            print(
                f"    call     McpManager {ck:8.4f} ms   bare mcp.Client {bk:8.4f} ms   "
                f"added {ck - bk:+.4f} ms (target < {TARGET_ADDED_MS} ms)"
            )
    met = all(value < TARGET_ADDED_MS for value in added.values())
    return Result(
        bench="mcp",
        figures=figures,
        baseline=baseline,
        ratios=ratios,
        targets={f"{label}_added_ms_per_call": f"< {TARGET_ADDED_MS}" for label in added},
        met=met,
    )
