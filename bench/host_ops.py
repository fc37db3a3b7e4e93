"""host-ops: the cost of Corral's Ollama host over the raw ollama client.

One round = list models + list loaded models + show one model. Both sides talk to the
same fake Ollama server on loopback, rounds are interleaved (A, B, B, A, ...) so drift
in the machine's load hits both alike, and the medians are compared.
Target: Corral's median round time <= 1.10 x the raw client's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
import ollama

from app.core.hosts.base import HostConfig
from app.core.hosts.ollama import OllamaHost
from bench import Result
from tests.fakes.ollama import FakeOllama

TARGET_RATIO = 1.10
MODEL = "llama3.2:latest"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(url: str, rounds: int, warmup: int) -> tuple[list[float], list[float]]:
    host = OllamaHost(HostConfig("bench", "bench", url))
    raw = ollama.AsyncClient(host=url, timeout=httpx.Timeout(30.0))
    await host.load(MODEL)  # something in ps

    async def corral_round() -> None:
        await host.list_models()
        await host.running_models()
        await host.show(MODEL)

    async def raw_round() -> None:
        await raw.list()
        await raw.ps()
        await raw.show(MODEL)

    corral: list[float] = []
    baseline: list[float] = []
    try:
        for i in range(warmup + rounds):
            order = (corral_round, raw_round) if i % 2 == 0 else (raw_round, corral_round)
            for fn in order:
                t0 = time.perf_counter()
                await fn()
                dt = (time.perf_counter() - t0) * 1000.0
                if i >= warmup:
                    (corral if fn is corral_round else baseline).append(dt)
    finally:
        await host.aclose()
        await raw._client.aclose()
    return corral, baseline


def run(argv: list[str]) -> Result:
    parser = argparse.ArgumentParser(prog="python -m bench host-ops")
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=40)
    args = parser.parse_args(argv)
    with FakeOllama(host="127.0.0.1", port=0) as fake:
        corral, baseline = asyncio.run(_measure(fake.url, args.rounds, args.warmup))
    c_med, b_med = statistics.median(corral), statistics.median(baseline)
    ratio = c_med / b_med
    print(f"host-ops: {args.rounds} rounds of list + ps + show against a fake Ollama on loopback")
    print(f"  Corral OllamaHost   median {c_med:7.3f} ms   p95 {_pct(corral, 0.95):7.3f} ms")
    print(f"  raw ollama client   median {b_med:7.3f} ms   p95 {_pct(baseline, 0.95):7.3f} ms")
    print(f"  ratio (Corral / raw, medians) {ratio:.3f}   target <= {TARGET_RATIO}")
    return Result(
        bench="host-ops",
        figures={
            "rounds": args.rounds,
            "median_ms": round(c_med, 3),
            "p95_ms": round(_pct(corral, 0.95), 3),
        },
        baseline={"median_ms": round(b_med, 3), "p95_ms": round(_pct(baseline, 0.95), 3)},
        ratios={"median": round(ratio, 3)},
        targets={"median": f"<= {TARGET_RATIO}"},
        met=ratio <= TARGET_RATIO,
    )
