"""Streaming chat through the Ollama host against the fake server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from app.core.errors import CapabilityMissing, ModelNotFound, StreamInterrupted
from app.core.hosts.base import (
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ContentChunk,
    FinalChunk,
    HostConfig,
    ThinkingChunk,
    ToolCallChunk,
)
from app.core.hosts.ollama import OllamaHost
from tests.fakes.ollama import FakeOllama
from tests.support.tools import WEATHER_TOOL


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(host="127.0.0.2", port=0) as server:
        yield server


@pytest.fixture
async def host(fake: FakeOllama) -> AsyncIterator[OllamaHost]:
    h = OllamaHost(HostConfig("t", "Test host", fake.url))
    yield h
    await h.aclose()


def ask(model: str, text: str = "Hello", **kw: object) -> ChatRequest:
    return ChatRequest(model=model, messages=(ChatMessage("user", text),), **kw)  # type: ignore[arg-type]


async def collect(host: OllamaHost, request: ChatRequest) -> list[ChatChunk]:
    return [chunk async for chunk in host.chat(request)]


async def test_reply_streams_in_order_with_final_stats(host: OllamaHost, fake: FakeOllama) -> None:
    chunks = await collect(host, ask("llama3.2"))
    text = "".join(c.text for c in chunks if isinstance(c, ContentChunk))
    assert text == fake.chat_reply
    assert sum(isinstance(c, ContentChunk) for c in chunks) > 3  # token by token
    final = chunks[-1]
    assert isinstance(final, FinalChunk)
    s = final.stats
    assert s.done_reason == "stop"
    assert s.output_tokens and s.prompt_tokens and s.tokens_per_s and s.tokens_per_s > 0
    assert s.time_to_first_token_ms is not None and s.total_ms is not None
    assert 0 <= s.time_to_first_token_ms <= s.total_ms


async def test_thinking_comes_first(host: OllamaHost, fake: FakeOllama) -> None:
    chunks = await collect(host, ask("qwen3:0.6b", think=True))
    kinds = [type(c).__name__ for c in chunks]
    assert kinds.index("ThinkingChunk") < kinds.index("ContentChunk")
    thinking = "".join(c.text for c in chunks if isinstance(c, ThinkingChunk))
    assert thinking == fake.thinking_reply


async def test_tool_calls_arrive_with_parsed_arguments_and_full_schema(
    host: OllamaHost, fake: FakeOllama
) -> None:
    chunks = await collect(host, ask("llama3.2", "Weather?", tools=(WEATHER_TOOL,)))
    calls = [c.call for c in chunks if isinstance(c, ToolCallChunk)]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert calls[0].arguments == {"city": "test"} and calls[0].id.startswith("call_")
    sent = next(b for m, p, b in fake.requests if p == "/api/chat")
    assert sent is not None
    props = sent["tools"][0]["function"]["parameters"]["properties"]
    assert props["city"]["default"] == "Oslo" and "anyOf" in props["units"]  # nothing dropped


async def test_model_errors_are_typed(host: OllamaHost) -> None:
    with pytest.raises(ModelNotFound):
        await collect(host, ask("nope"))
    with pytest.raises(CapabilityMissing) as info:
        await collect(host, ask("llava:7b", tools=(WEATHER_TOOL,)))
    assert info.value.capability == "tools"


async def test_host_dying_mid_reply_keeps_what_arrived(host: OllamaHost, fake: FakeOllama) -> None:
    fake.faults.drop_after = 3
    got: list[ChatChunk] = []
    with pytest.raises(StreamInterrupted, match="closed the connection"):
        async for chunk in host.chat(ask("llama3.2")):
            got.append(chunk)
    assert len(got) == 3 and all(isinstance(c, ContentChunk) for c in got)


async def test_a_finished_reply_leaves_its_connection_for_the_next(
    host: OllamaHost, fake: FakeOllama
) -> None:
    await collect(host, ask("llama3.2"))
    after_first = fake.accepted
    for _ in range(3):
        chunks = await collect(host, ask("llama3.2"))
        assert isinstance(chunks[-1], FinalChunk)
    assert fake.accepted == after_first  # no new connection: the next reply starts sooner
