"""Command line of the benchmark harness."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line description)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "host-ops": (
        "bench.host_ops",
        "list + ps + show through Corral's Ollama host vs the raw ollama.AsyncClient",
    ),
    "scan": ("bench.scan", "scan of a /24 x 4 ports for 8 fake hosts vs a plain TCP connect sweep"),
    "idle": ("bench.idle", "the app's CPU while idle, hardware panel open, 4 hosts polled"),
    "redraw": ("bench.redraw", "hardware panel tick, 6 plots x 900 points vs plain pyqtgraph"),
    "sample": ("bench.sample", "one LocalSampler sample of this machine vs the same psutil calls"),
    "chat-throughput": ("bench.chat_throughput", "tokens/s through ChatEngine + SQLite vs raw"),
    "append-cost": (
        "bench.append_cost",
        "per-token append cost in the chat view at token 100 vs 10,000",
    ),
    "ui-lag": ("bench.ui_lag", "UI timer lateness p99 while 300 tokens/s stream into the chat"),
    "open-conversation": ("bench.open_conversation", "time to open a 2,000-message conversation"),
    "startup": (
        "bench.startup",
        "cold start to the first painted main window, and memory, vs a bare PySide6 window",
    ),
    "mcp": (
        "bench.mcp",
        "MCP connect+initialize per transport, tool-call overhead vs a bare SDK session",
    ),
    "engine": (
        "bench.engine",
        "built-in engine with the demo model: load time; tokens/s, TTFT via ChatEngine vs bare",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", nargs="?", help="benchmark to run")
    parser.add_argument("--list", action="store_true", help="list the benchmarks")
    args, rest = parser.parse_known_args(argv)
    if args.list or not args.name:
        for name, (_, text) in BENCHMARKS.items():
            print(f"{name:12} {text}")
        return 0 if args.list else 2
    if args.name not in BENCHMARKS:
        print(f"unknown benchmark {args.name!r}; try --list", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[args.name][0])
    result = module.run(rest)
    print(result.json_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
