"""chat-throughput: tokens/s through ChatEngine (saving to SQLite) vs the raw ollama client.

Both stream the same long reply from the same fake Ollama on loopback, sending as fast as
it can (no token delay). Replies are interleaved (A, B, B, A, ...) so drift in the
machine's load hits both alike; every Corral reply goes to a fresh conversation, so the
request is the same size on both sides. Figures are medians over the measured replies.
The connections the fake accepted during each reply are counted too: a side that does not
keep its connection between replies pays for a new one in its time to first token.

Targets: Corral's tokens/s >= 0.95 x the raw client's; added time to first token < 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import ollama

from app.core.chat import ChatEngine, ChatStore
from app.core.hosts.base import ContentChunk
from app.core.hosts.registry import HostRegistry
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from bench import Result
from tests.fakes.ollama import FakeOllama
from tests.support.memory_keyring import MemoryKeyring

TARGET_RATIO = 0.95
TARGET_ADDED_TTFT_MS = 2.0
MODEL = "llama3.2:latest"
PROMPT = "Count for me."


def _reply(words: int) -> str:
    return " ".join(f"w{i}" for i in range(words))


class _Sample:
    def __init__(self, tokens: int, ttft_s: float, total_s: float) -> None:
        self.tokens = tokens
        self.ttft_ms = ttft_s * 1000.0
        self.tokens_per_s = tokens / total_s
        self.connections = 0  # connections the fake accepted during the reply


class _Connections:
    """Counts the connections a fake server accepts (it only looks)."""

    def __init__(self, fake: FakeOllama) -> None:
        self.count = 0
        self._lock = threading.Lock()
        register = fake._register

        def counted(handler: Any) -> None:
            with self._lock:
                self.count += 1
            register(handler)

        fake._register = counted  # type: ignore[method-assign]


async def _measure(
    url: str, workdir: Path, rounds: int, warmup: int, connections: _Connections
) -> tuple[list[_Sample], list[_Sample]]:
    registry = HostRegistry(
        SettingsStore(workdir / "settings.json"), SecretStore(MemoryKeyring()), env={}
    )
    registry.remove("local")
    host = registry.add(url, "bench")
    raw = ollama.AsyncClient(host=url, timeout=httpx.Timeout(60.0))
    corral: list[_Sample] = []
    baseline: list[_Sample] = []
    async with ChatStore(workdir / "chat.db") as store:
        engine = ChatEngine(registry, store)

        async def corral_reply() -> _Sample:
            conversation = await store.create_conversation(MODEL, host_id=host.id)
            t0 = time.perf_counter()
            first: float | None = None
            tokens = 0
            async for event in await engine.send(conversation.id, PROMPT):
                if isinstance(event, ContentChunk):
                    first = first if first is not None else time.perf_counter()
                    tokens += 1
            end = time.perf_counter()
            assert first is not None
            return _Sample(tokens, first - t0, end - t0)

        async def raw_reply() -> _Sample:
            t0 = time.perf_counter()
            first: float | None = None
            tokens = 0
            stream = await raw.chat(
                MODEL, messages=[{"role": "user", "content": PROMPT}], stream=True
            )
            async for part in stream:
                if part.message.content:
                    first = first if first is not None else time.perf_counter()
                    tokens += 1
            end = time.perf_counter()
            assert first is not None
            return _Sample(tokens, first - t0, end - t0)

        try:
            for i in range(warmup + rounds):
                order = (corral_reply, raw_reply) if i % 2 == 0 else (raw_reply, corral_reply)
                for fn in order:
                    before = connections.count
                    sample = await fn()
                    sample.connections = connections.count - before
                    if i >= warmup:
                        (corral if fn is corral_reply else baseline).append(sample)
        finally:
            await engine.aclose()
            await registry.aclose()
            await raw._client.aclose()
    return corral, baseline


def run(argv: list[str]) -> Result:
    parser = argparse.ArgumentParser(prog="python -m bench chat-throughput")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--words", type=int, default=4000, help="tokens in each reply")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp,
        FakeOllama(host="127.0.0.1", port=0, chat_reply=_reply(args.words)) as fake,
    ):
        connections = _Connections(fake)
        corral, baseline = asyncio.run(
            _measure(fake.url, Path(tmp), args.rounds, args.warmup, connections)
        )
    c_tps = statistics.median(s.tokens_per_s for s in corral)
    b_tps = statistics.median(s.tokens_per_s for s in baseline)
    c_ttft = statistics.median(s.ttft_ms for s in corral)
    b_ttft = statistics.median(s.ttft_ms for s in baseline)
    c_conn = statistics.mean(s.connections for s in corral)
    b_conn = statistics.mean(s.connections for s in baseline)
    ratio = c_tps / b_tps
    added = c_ttft - b_ttft
    tokens = corral[0].tokens
    print(
        f"chat-throughput: {args.rounds} replies of {tokens} tokens each side, "
        "fake Ollama on loopback, no token delay"
    )
    print(f"  Corral ChatEngine + SQLite  {c_tps:10.0f} tokens/s   TTFT {c_ttft:7.3f} ms")
    print(f"  raw ollama client           {b_tps:10.0f} tokens/s   TTFT {b_ttft:7.3f} ms")
    print(f"  ratio (Corral / raw, tokens/s) {ratio:.3f}   target >= {TARGET_RATIO}")
    print(f"  added time to first token {added:+.3f} ms   target < {TARGET_ADDED_TTFT_MS} ms")
    print(f"  new connections per reply: Corral {c_conn:.2f}, raw {b_conn:.2f}")
    return Result(
        bench="chat-throughput",
        figures={
            "rounds": args.rounds,
            "tokens_per_reply": tokens,
            "tokens_per_s": round(c_tps, 1),
            "ttft_ms": round(c_ttft, 3),
            "added_ttft_ms": round(added, 3),
            "connections_per_reply": round(c_conn, 2),
        },
        baseline={
            "tokens_per_s": round(b_tps, 1),
            "ttft_ms": round(b_ttft, 3),
            "connections_per_reply": round(b_conn, 2),
        },
        ratios={"tokens_per_s": round(ratio, 3)},
        targets={
            "tokens_per_s": f">= {TARGET_RATIO}",
            "added_ttft_ms": f"< {TARGET_ADDED_TTFT_MS}",
        },
        met=ratio >= TARGET_RATIO and added < TARGET_ADDED_TTFT_MS,
    )
