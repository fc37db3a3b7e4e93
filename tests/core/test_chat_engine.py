"""The chat engine against real fake servers on 127.0.0.x and a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import pytest

from app.core.chat import (
    AUTO,
    ChatEngine,
    ChatOptions,
    ChatStore,
    HostSwitched,
    MessageStatus,
    ReplyEvent,
    ReplyFailed,
    ReplyFinished,
    ReplyStarted,
    ReplyStopped,
    RetryKind,
)
from app.core.errors import HostRequestFailed, ModelNotFound, StreamInterrupted
from app.core.hosts.base import (
    ChatRequest,
    ChatStats,
    ContentChunk,
    FinalChunk,
    HostConfig,
    HostKind,
    ThinkingChunk,
)
from app.core.hosts.registry import HostRegistry
from app.core.metrics.latency import LatencyBook
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture
def registry(chat_registry: HostRegistry) -> HostRegistry:
    return chat_registry


@pytest.fixture
async def engine(registry: HostRegistry, store: ChatStore) -> AsyncIterator[ChatEngine]:
    eng = ChatEngine(registry, store, latency=LatencyBook(), flush_interval_s=0.05)
    yield eng
    await eng.aclose()
    await registry.aclose()


async def collect(handle: AsyncIterable[ReplyEvent]) -> list[ReplyEvent]:
    return [e async for e in handle]


def text_of(events: list[ReplyEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, ContentChunk))


def chat_bodies(fake: FakeOllama) -> list[dict[str, Any]]:
    return [b for m, p, b in fake.requests if p == "/api/chat" and b is not None]


async def test_reply_streams_in_order_and_is_saved(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry, box_a: FakeOllama
) -> None:
    a = registry.add(box_a.url, "Box A")
    conv = await store.create_conversation("llama3.2", host_id=a.id, system_prompt="Be brief.")
    events = await collect(await engine.send(conv.id, "Hello there"))

    assert isinstance(events[0], ReplyStarted) and events[0].host_name == "Box A"
    chunks = [e for e in events if isinstance(e, ContentChunk)]
    assert len(chunks) > 3 and text_of(events) == box_a.chat_reply
    end = events[-1]
    assert isinstance(end, ReplyFinished)
    assert end.stats.output_tokens and end.stats.time_to_first_token_ms is not None
    assert end.message.status is MessageStatus.COMPLETE and end.message.content == box_a.chat_reply

    body = chat_bodies(box_a)[-1]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello there"},
    ]
    saved = await store.messages(conv.id)
    assert [(m.role, m.status) for m in saved] == [
        ("user", MessageStatus.COMPLETE),
        ("assistant", MessageStatus.COMPLETE),
    ]
    assert saved[1].content == box_a.chat_reply and saved[1].host_id == a.id
    assert saved[1].stats == end.stats
    assert (await store.conversation(conv.id)).title == "Hello there"  # named by the message

    # the next turn carries the history
    await collect(await engine.send(conv.id, "And again"))
    roles = [m["role"] for m in chat_bodies(box_a)[-1]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


async def test_thinking_comes_first_and_is_saved(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry, box_a: FakeOllama
) -> None:
    a = registry.add(box_a.url, "Box A")
    conv = await store.create_conversation(
        "qwen3:0.6b", host_id=a.id, options=ChatOptions(think=True)
    )
    events = await collect(await engine.send(conv.id, "Why?"))
    kinds = [type(e) for e in events]
    assert kinds.index(ThinkingChunk) < kinds.index(ContentChunk)
    end = events[-1]
    assert isinstance(end, ReplyFinished) and end.message.thinking == box_a.thinking_reply


async def test_options_reach_the_server(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry, box_a: FakeOllama
) -> None:
    a = registry.add(box_a.url, "Box A")
    options = ChatOptions(
        temperature=0.2, top_p=0.9, top_k=20, num_ctx=8192, seed=7, keep_alive="10m", think="high"
    )
    conv = await store.create_conversation("qwen3:0.6b", host_id=a.id, options=options)
    await collect(await engine.send(conv.id, "Hi"))
    body = chat_bodies(box_a)[-1]
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 20,
        "num_ctx": 8192,
        "seed": 7,
    }
    assert body["keep_alive"] == "10m" and body["think"] == "high"


async def test_openai_compatible_host_streams_too(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry
) -> None:
    with FakeOpenAI("127.0.0.4", flavor="vllm", models=["qwen"]) as fake:
        h = registry.add(fake.url, "vLLM box", kind=HostKind.VLLM)
        conv = await store.create_conversation(
            "qwen", host_id=h.id, options=ChatOptions(temperature=0.5)
        )
        events = await collect(await engine.send(conv.id, "Hi"))
        assert text_of(events) == fake.reply and isinstance(events[-1], ReplyFinished)
        body = next(b for m, p, b in fake.requests if p == "/v1/chat/completions")
        assert body is not None and body["temperature"] == 0.5


async def test_stop_mid_stream_keeps_the_partial_text(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry, box_a: FakeOllama
) -> None:
    box_a.faults.token_delay = 0.05
    a = registry.add(box_a.url, "Box A")
    conv = await store.create_conversation("llama3.2", host_id=a.id)
    handle = await engine.send(conv.id, "Tell me")
    events: list[ReplyEvent] = []
    async for event in handle:
        events.append(event)
        if sum(isinstance(e, ContentChunk) for e in events) == 3:
            handle.stop()
    end = events[-1]
    assert isinstance(end, ReplyStopped)
    partial = text_of(events)
    assert partial and box_a.chat_reply.startswith(partial) and partial != box_a.chat_reply
    assert end.message.status is MessageStatus.STOPPED and end.message.content == partial
    saved = (await store.messages(conv.id))[-1]
    assert saved.status is MessageStatus.STOPPED and saved.content == partial


async def test_host_dying_mid_stream_keeps_partial_and_offers_retries(
    engine: ChatEngine,
    store: ChatStore,
    registry: HostRegistry,
    box_a: FakeOllama,
    box_b: FakeOllama,
) -> None:
    a = registry.add(box_a.url, "Box A")
    b = registry.add(box_b.url, "Box B")
    box_a.faults.drop_after = 3
    conv = await store.create_conversation("llama3.2", host_id=a.id)
    events = await collect(await engine.send(conv.id, "Go"))
    end = events[-1]
    assert isinstance(end, ReplyFailed)
    assert isinstance(end.error, StreamInterrupted)
    assert "Box A closed the connection" in end.error.message
    partial = text_of(events)
    assert partial and box_a.chat_reply.startswith(partial)
    assert end.message.status is MessageStatus.FAILED and end.message.content == partial
    assert end.message.error == end.error.message
    assert [(o.kind, o.host_id) for o in end.retry] == [
        (RetryKind.RETRY, a.id),
        (RetryKind.OTHER_HOST, b.id),
    ]
    assert end.retry[1].label == "Retry on Box B"

    # retry on the other host: the failed reply is replaced by a whole one
    retried = await collect(await engine.retry(conv.id, host_id=end.retry[1].host_id))
    done = retried[-1]
    assert isinstance(done, ReplyFinished) and done.message.host_id == b.id
    saved = await store.messages(conv.id)
    assert [(m.role, m.status) for m in saved] == [
        ("user", MessageStatus.COMPLETE),
        ("assistant", MessageStatus.COMPLETE),
    ]
    assert saved[1].content == box_b.chat_reply
    assert chat_bodies(box_b)[-1]["messages"] == [{"role": "user", "content": "Go"}]


async def test_auto_fails_over_before_the_first_token(
    engine: ChatEngine,
    store: ChatStore,
    registry: HostRegistry,
    box_a: FakeOllama,
    box_b: FakeOllama,
) -> None:
    registry.add(box_a.url, "Box A")
    b = registry.add(box_b.url, "Box B")
    box_a.load("llama3.2")  # loaded on A: A is ranked first
    box_a.faults.fail_status = 500
    box_a.faults.paths = {"/api/chat"}
    conv = await store.create_conversation("llama3.2", host_id=AUTO)
    events = await collect(await engine.send(conv.id, "Hi"))
    started = events[0]
    assert isinstance(started, ReplyStarted) and started.host_name == "Box A"
    switched = next(e for e in events if isinstance(e, HostSwitched))
    assert isinstance(switched.error, HostRequestFailed) and switched.host_id == b.id
    assert switched.text.startswith("llama3.2 on Box A failed: ")
    assert switched.text.endswith("; answering on Box B")
    end = events[-1]
    assert isinstance(end, ReplyFinished) and end.message.host_id == b.id
    assert text_of(events) == box_b.chat_reply


async def test_auto_prefers_the_host_with_the_model_loaded(
    engine: ChatEngine,
    store: ChatStore,
    registry: HostRegistry,
    box_a: FakeOllama,
    box_b: FakeOllama,
) -> None:
    registry.add(box_a.url, "Box A")
    b = registry.add(box_b.url, "Box B")
    box_b.load("llama3.2")
    box_a.remove_model("qwen3:0.6b")
    conv = await store.create_conversation("llama3.2", host_id=AUTO)
    end = (await collect(await engine.send(conv.id, "Hi")))[-1]
    assert isinstance(end, ReplyFinished) and end.message.host_id == b.id

    conv2 = await store.create_conversation("qwen3:0.6b", host_id=AUTO)  # only B has it
    end2 = (await collect(await engine.send(conv2.id, "Hi")))[-1]
    assert isinstance(end2, ReplyFinished) and end2.message.host_id == b.id


async def test_auto_with_no_host_having_the_model_fails_plainly(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry, box_a: FakeOllama
) -> None:
    registry.add(box_a.url, "Box A")
    conv = await store.create_conversation("mistral", host_id=AUTO)
    end = (await collect(await engine.send(conv.id, "Hi")))[-1]
    assert isinstance(end, ReplyFailed) and isinstance(end.error, ModelNotFound)
    assert "No host that is up has mistral" in end.error.message
    assert [o.kind for o in end.retry] == [RetryKind.RETRY]


async def test_a_stopped_host_fails_with_retry_on_the_other(
    engine: ChatEngine,
    store: ChatStore,
    registry: HostRegistry,
    box_a: FakeOllama,
    box_b: FakeOllama,
) -> None:
    a = registry.add(box_a.url, "Box A")
    b = registry.add(box_b.url, "Box B")
    box_a.stop()
    conv = await store.create_conversation("llama3.2", host_id=a.id)
    end = (await collect(await engine.send(conv.id, "Hi")))[-1]
    assert isinstance(end, ReplyFailed)
    assert "Cannot connect to Box A" in end.error.message
    assert [o.host_id for o in end.retry] == [a.id, b.id]


async def test_finished_replies_feed_the_latency_book(
    registry: HostRegistry, store: ChatStore, box_a: FakeOllama
) -> None:
    book = LatencyBook()
    engine = ChatEngine(registry, store, latency=book)
    a = registry.add(box_a.url, "Box A")
    conv = await store.create_conversation("llama3.2", host_id=a.id)
    for _ in range(2):
        await collect(await engine.send(conv.id, "Hi"))
    summary = book.model_summary(a.id, "llama3.2")
    assert summary.replies == 2 and summary.ttft_ms is not None
    assert summary.tokens_per_s is not None and summary.tokens_per_s.p50 > 0
    await registry.aclose()


async def test_consumer_leaving_early_stops_the_reply(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry, box_a: FakeOllama
) -> None:
    box_a.faults.token_delay = 0.05
    a = registry.add(box_a.url, "Box A")
    conv = await store.create_conversation("llama3.2", host_id=a.id)
    handle = await engine.send(conv.id, "Hi")
    async for event in handle:
        if isinstance(event, ContentChunk):
            break
    end = await handle.wait()
    assert isinstance(end, ReplyStopped) and end.message.status is MessageStatus.STOPPED


async def test_stop_before_the_reply_begins(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry, box_a: FakeOllama
) -> None:
    a = registry.add(box_a.url, "Box A")
    conv = await store.create_conversation("llama3.2", host_id=a.id)
    handle = await engine.send(conv.id, "Hi")
    handle.stop()
    events = await collect(handle)
    assert len(events) == 1 and isinstance(events[0], ReplyStopped)
    assert events[0].message.content == ""


class _BurstHost:
    """A host whose whole reply is there at once, as when one network read brings many
    lines; ``given`` counts the pieces handed out so far."""

    def __init__(self, pieces: int) -> None:
        self.pieces = pieces
        self.given = 0
        self.closed = False
        self.config = HostConfig("burst", "Burst box", "http://127.0.0.1:9")

    async def chat(self, request: ChatRequest) -> AsyncIterator[ContentChunk | FinalChunk]:
        self.closed = False
        try:
            for i in range(self.pieces):
                self.given += 1
                yield ContentChunk(f"w{i} ")
            yield FinalChunk(ChatStats(output_tokens=self.pieces))
        finally:
            self.closed = True  # where a host closes its connection

    # what the engine needs of the registry
    def hosts(self) -> list[HostConfig]:
        return [self.config]

    def get(self, host_id: str) -> HostConfig:
        return self.config

    def host(self, host_id: str) -> Any:
        return self


async def test_the_reader_gets_the_first_piece_before_the_rest_is_gone_through(
    store: ChatStore,
) -> None:
    burst = _BurstHost(50)
    engine = ChatEngine(burst, store)
    conv = await store.create_conversation("llama3.2", host_id="burst")
    given_at_first: int | None = None
    async for event in await engine.send(conv.id, "Go"):
        if isinstance(event, ContentChunk) and given_at_first is None:
            given_at_first = burst.given
    assert given_at_first == 1
    saved = (await store.messages(conv.id))[-1]
    assert saved.status is MessageStatus.COMPLETE and saved.content.count("w") == 50


async def test_a_stop_at_the_first_piece_closes_the_stream_at_once(store: ChatStore) -> None:
    burst = _BurstHost(50)
    engine = ChatEngine(burst, store)
    conv = await store.create_conversation("llama3.2", host_id="burst")
    handle = await engine.send(conv.id, "Go")
    async for event in handle:
        if isinstance(event, ContentChunk):
            handle.stop()
    end = await handle.wait()
    assert isinstance(end, ReplyStopped) and end.message.content == "w0 "
    assert burst.closed and burst.given == 1
