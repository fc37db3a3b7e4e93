"""Edit-and-resend, retry options after a restart, and the engine's view of the history,
against fake Ollama servers on 127.0.0.x and a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.core.chat import (
    AUTO,
    ChatEngine,
    ChatStore,
    Conversation,
    Flushed,
    MessageStatus,
    ReplyEvent,
    ReplyFailed,
    ReplyFinished,
    ReplyStopped,
    RetryKind,
    StoredMessage,
)
from app.core.errors import InvalidInput
from app.core.hosts.base import ContentChunk
from app.core.hosts.registry import HostRegistry
from tests.fakes.ollama import FakeOllama


@pytest.fixture
def registry(chat_registry: HostRegistry) -> HostRegistry:
    return chat_registry


@pytest.fixture
async def engine(registry: HostRegistry, store: ChatStore) -> AsyncIterator[ChatEngine]:
    eng = ChatEngine(registry, store, flush_interval_s=0.05)
    yield eng
    await eng.aclose()
    await registry.aclose()


async def collect(handle: AsyncIterable[ReplyEvent]) -> list[ReplyEvent]:
    return [e async for e in handle]


def chat_bodies(fake: FakeOllama) -> list[dict[str, Any]]:
    return [b for m, p, b in fake.requests if p == "/api/chat" and b is not None]


def sent(fake: FakeOllama) -> list[tuple[str, str]]:
    """The messages of the last chat request the fake received."""
    return [(m["role"], m["content"]) for m in chat_bodies(fake)[-1]["messages"]]


def on_file(path: Path, conversation_id: str) -> tuple[Conversation, list[StoredMessage]]:
    """The conversation as another connection reads it from the file (changing nothing)."""
    db = sqlite3.connect(path)
    try:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        rows = db.execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
        )
        return ChatStore._conversation(row.fetchone()), [ChatStore._message(r) for r in rows]
    finally:
        db.close()


async def everything(store: ChatStore) -> list[tuple[Any, ...]]:
    return [(c, await store.messages(c.id)) for c in await store.list_conversations()]


async def two_turns(engine: ChatEngine, store: ChatStore, host_id: str) -> Conversation:
    conv = await store.create_conversation("llama3.2", host_id=host_id, system_prompt="Be brief.")
    for text in ("First question", "Second question"):
        assert isinstance((await collect(await engine.send(conv.id, text)))[-1], ReplyFinished)
    return await store.conversation(conv.id)


# -- edit and resend -----------------------------------------------------------------------


async def test_resend_answers_the_edited_history_and_keeps_the_old_one(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry, box_a: FakeOllama
) -> None:
    a = registry.add(box_a.url, "Box A")
    conv = await two_turns(engine, store, a.id)
    q1, a1, q2, a2 = before = await store.messages(conv.id)
    box_a.chat_reply = "An answer to the edited question."

    handle = await engine.resend(conv.id, q2.id, "Second question, put better")
    events = await collect(handle)
    end = events[-1]
    assert isinstance(end, ReplyFinished)
    assert end.message.content == "An answer to the edited question."
    # the host was asked with the edited history: nothing of the old second turn
    assert sent(box_a) == [
        ("system", "Be brief."),
        ("user", "First question"),
        ("assistant", a1.content),
        ("user", "Second question, put better"),
    ]
    now = await store.messages(conv.id)
    assert [(m.role, m.content, m.status) for m in now] == [
        ("user", "First question", MessageStatus.COMPLETE),
        ("assistant", a1.content, MessageStatus.COMPLETE),
        ("user", "Second question, put better", MessageStatus.COMPLETE),
        ("assistant", "An answer to the edited question.", MessageStatus.COMPLETE),
    ]
    assert [m.id for m in now[:2]] == [q1.id, a1.id] and end.message.id == now[3].id

    # the conversation as it was, kept whole
    assert handle.kept_copy_id and handle.kept_copy_id != conv.id
    copy = await store.conversation(handle.kept_copy_id)
    assert copy.title == "First question (before edit)"
    assert (copy.host_id, copy.model, copy.system_prompt) == (a.id, "llama3.2", "Be brief.")
    kept = await store.messages(copy.id)
    assert [(m.role, m.content, m.status) for m in kept] == [
        (m.role, m.content, m.status) for m in before
    ]
    assert q2.content == "Second question" and a2.content == kept[3].content

    # the next turn goes on from the edited history
    await collect(await engine.send(conv.id, "Third"))
    assert [r for r, _ in sent(box_a)] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert sent(box_a)[3] == ("user", "Second question, put better")


async def test_resend_of_the_first_message_sends_only_the_new_text(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry, box_a: FakeOllama
) -> None:
    a = registry.add(box_a.url, "Box A")
    conv = await two_turns(engine, store, a.id)
    first = (await store.messages(conv.id))[0]
    handle = await engine.resend(conv.id, first.id, "Something else entirely")
    assert isinstance((await collect(handle))[-1], ReplyFinished)
    assert sent(box_a) == [("system", "Be brief."), ("user", "Something else entirely")]
    assert [m.role for m in await store.messages(conv.id)] == ["user", "assistant"]
    assert len(await store.messages(handle.kept_copy_id)) == 4


async def test_resend_that_loses_nothing_keeps_no_copy(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry, box_a: FakeOllama
) -> None:
    a = registry.add(box_a.url, "Box A")
    conv = await store.create_conversation("llama3.2", host_id=a.id, title="Unanswered")
    question = await store.add_message(conv.id, "user", "Still there?")
    handle = await engine.resend(conv.id, question.id, "Still there?")
    assert isinstance((await collect(handle))[-1], ReplyFinished)
    assert handle.kept_copy_id == ""
    assert [c.id for c in await store.list_conversations()] == [conv.id]
    assert sent(box_a) == [("user", "Still there?")]


@pytest.mark.parametrize(
    ("case", "complaint"),
    [
        ("unknown", "That message no longer exists"),
        ("other conversation", "not part of this conversation"),
        ("assistant", "Only your own messages can be edited"),
        ("empty", "Type a message first"),
    ],
)
async def test_a_refused_resend_changes_nothing(
    engine: ChatEngine,
    store: ChatStore,
    registry: HostRegistry,
    box_a: FakeOllama,
    case: str,
    complaint: str,
) -> None:
    a = registry.add(box_a.url, "Box A")
    conv = await two_turns(engine, store, a.id)
    other = await store.create_conversation("llama3.2", host_id=a.id)
    elsewhere = await store.add_message(other.id, "user", "Elsewhere")
    q1, a1, _, _ = await store.messages(conv.id)
    message_id, text = {
        "unknown": ("no-such-message", "new text"),
        "other conversation": (elsewhere.id, "new text"),
        "assistant": (a1.id, "new text"),
        "empty": (q1.id, " \t "),
    }[case]
    before = await everything(store)
    asked = len(chat_bodies(box_a))
    with pytest.raises(InvalidInput, match=complaint):
        await engine.resend(conv.id, message_id, text)
    assert await everything(store) == before
    assert len(chat_bodies(box_a)) == asked  # nothing was sent
    assert await store.context(conv.id) == on_file(store.path, conv.id)


async def test_resend_stops_the_reply_in_progress_and_keeps_its_text(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry, box_a: FakeOllama
) -> None:
    box_a.faults.token_delay = 0.02
    a = registry.add(box_a.url, "Box A")
    conv = await store.create_conversation("llama3.2", host_id=a.id)
    running = await engine.send(conv.id, "Count slowly")
    events = aiter(running)

    async def next_piece() -> None:
        while not isinstance(await anext(events), ContentChunk):
            pass

    for _ in range(3):
        await next_piece()
    # refused: the reply goes on
    with pytest.raises(InvalidInput):
        await engine.resend(conv.id, "no-such-message", "x")
    await next_piece()
    assert not running.stop_requested

    question = (await store.messages(conv.id))[0]
    box_a.faults.token_delay = 0.0
    handle = await engine.resend(conv.id, question.id, "Count fast")
    rest = [e async for e in events]
    stopped = rest[-1]
    assert isinstance(stopped, ReplyStopped) and stopped.message.content
    assert stopped == await running.wait()
    assert isinstance((await collect(handle))[-1], ReplyFinished)
    kept = await store.messages(handle.kept_copy_id)
    assert [(m.role, m.status) for m in kept] == [
        ("user", MessageStatus.COMPLETE),
        ("assistant", MessageStatus.STOPPED),
    ]
    assert kept[1].content == stopped.message.content
    assert sent(box_a) == [("user", "Count fast")]


# -- retry options after a restart ---------------------------------------------------------


async def test_retry_options_after_a_restart_list_the_other_hosts(
    registry: HostRegistry, db_path: Path, box_a: FakeOllama, box_b: FakeOllama
) -> None:
    a = registry.add(box_a.url, "Box A")
    b = registry.add(box_b.url, "Box B")
    box_a.faults.drop_after = 2
    async with ChatStore(db_path) as store:
        engine = ChatEngine(registry, store)
        conv = await store.create_conversation("llama3.2", host_id=a.id)
        failed = (await collect(await engine.send(conv.id, "Go")))[-1]
        assert isinstance(failed, ReplyFailed)
        await engine.aclose()

    async with ChatStore(db_path) as store:  # Corral started again
        engine = ChatEngine(registry, store)
        options = await engine.retry_options(conv.id)
        assert options == failed.retry
        assert [(o.kind, o.host_id, o.label) for o in options] == [
            (RetryKind.RETRY, a.id, "Retry"),
            (RetryKind.OTHER_HOST, b.id, "Retry on Box B"),
        ]
        done = (await collect(await engine.retry(conv.id, host_id=options[1].host_id)))[-1]
        assert isinstance(done, ReplyFinished) and done.message.host_id == b.id

        # a host that no longer has the model is not offered
        box_b.remove_model("llama3.2")
        assert [o.host_id for o in await engine.retry_options(conv.id)] == [a.id]
        empty = await store.create_conversation("llama3.2", host_id=a.id)
        assert await engine.retry_options(empty.id) == ()
        await engine.aclose()
    await registry.aclose()


async def test_retry_options_of_an_automatic_conversation_leave_out_the_failed_host(
    engine: ChatEngine,
    store: ChatStore,
    registry: HostRegistry,
    box_a: FakeOllama,
    box_b: FakeOllama,
) -> None:
    a = registry.add(box_a.url, "Box A")
    b = registry.add(box_b.url, "Box B")
    box_a.load("llama3.2")  # ranked first
    box_a.faults.drop_after = 2  # fails after its first token: no failover
    conv = await store.create_conversation("llama3.2", host_id=AUTO)
    end = (await collect(await engine.send(conv.id, "Hi")))[-1]
    assert isinstance(end, ReplyFailed) and end.message.host_id == a.id
    options = await engine.retry_options(conv.id)
    assert [(o.kind, o.host_id) for o in options] == [
        (RetryKind.RETRY, AUTO),
        (RetryKind.OTHER_HOST, b.id),
    ]
    assert options == end.retry


# -- the history the engine sends ------------------------------------------------------------


async def test_send_does_not_wait_for_the_database_when_the_history_is_known(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry, box_a: FakeOllama
) -> None:
    a = registry.add(box_a.url, "Box A")
    conv = await two_turns(engine, store, a.id)
    await store.messages(conv.id)  # the read-back after the last reply is done too
    assert store.cached(conv.id)
    other = await store.create_conversation("llama3.2", host_id=a.id)

    blocked, release = threading.Event(), threading.Event()

    def block() -> None:
        blocked.set()
        release.wait(10)

    gate = store.submit_for(other.id, block)
    try:
        assert await asyncio.to_thread(blocked.wait, 10)
        async with asyncio.timeout(5):
            handle = await engine.send(conv.id, "Third question")
            async for event in handle:  # the host answers while the database is busy
                if isinstance(event, ContentChunk):
                    handle.stop()
                    break
        assert not release.is_set()
        assert [r for r, _ in sent(box_a)] == [
            "system",
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
        ]
    finally:
        release.set()
        await gate
    end = await handle.wait()
    assert isinstance(end, ReplyStopped)  # the reader left early: stopped, and saved
    assert [m.content for m in await store.messages(conv.id)][-2] == "Third question"


async def test_a_history_read_while_a_reply_streams_follows_its_writes(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry, box_a: FakeOllama
) -> None:
    box_a.faults.token_delay = 0.01
    a = registry.add(box_a.url, "Box A")
    conv = await store.create_conversation("llama3.2", host_id=a.id)
    flushes: asyncio.Queue[Flushed] = asyncio.Queue()
    engine.flushed.connect(flushes.put_nowait)
    handle = await engine.send(conv.id, "Count")

    await flushes.get()
    _, during = await store.context(conv.id)  # read, and kept, mid-reply
    assert store.cached(conv.id)
    seen = len(during[-1].content)
    while (await flushes.get()).chars <= seen:
        pass
    _, later = await store.context(conv.id)
    assert len(later[-1].content) > seen
    assert later[-1] == on_file(store.path, conv.id)[1][-1]
    assert isinstance((await collect(handle))[-1], ReplyFinished)
    await store.messages(conv.id)
    assert await store.context(conv.id) == on_file(store.path, conv.id)


async def test_what_the_engine_sends_follows_every_change_of_the_store(
    engine: ChatEngine, store: ChatStore, registry: HostRegistry, box_a: FakeOllama
) -> None:
    a = registry.add(box_a.url, "Box A")
    conv = await two_turns(engine, store, a.id)
    q1, a1, q2, a2 = await store.messages(conv.id)

    async def ask(conversation_id: str) -> list[tuple[str, str]]:
        assert isinstance(
            (await collect(await engine.send(conversation_id, "Next")))[-1], ReplyFinished
        )
        await store.messages(conversation_id)  # the read-back is done
        assert store.cached(conversation_id)
        assert await store.context(conversation_id) == on_file(store.path, conversation_id)
        return sent(box_a)

    await store.update_conversation(conv.id, system_prompt="Be long.")
    assert (await ask(conv.id))[0] == ("system", "Be long.")

    await store.update_conversation(conv.id, model="qwen3:0.6b")
    await ask(conv.id)
    assert chat_bodies(box_a)[-1]["model"] == "qwen3:0.6b"

    await store.truncate_from(conv.id, q2.id)
    assert await ask(conv.id) == [
        ("system", "Be long."),
        ("user", "First question"),
        ("assistant", a1.content),
        ("user", "Next"),
    ]

    last_reply = (await store.messages(conv.id))[-1]
    await store.delete_message(last_reply.id)
    assert [r for r, _ in await ask(conv.id)] == ["system", "user", "assistant", "user", "user"]

    branch = await store.duplicate(conv.id, up_to_message_id=a1.id)
    assert await ask(branch.id) == [
        ("system", "Be long."),
        ("user", "First question"),
        ("assistant", a1.content),
        ("user", "Next"),
    ]

    imported = await store.import_json(await store.export_json(branch.id))
    assert len(await ask(imported.id)) == 6

    await store.edit_message(conv.id, q1.id, "Edited directly in the store")
    assert await ask(conv.id) == [
        ("system", "Be long."),
        ("user", "Edited directly in the store"),
        ("user", "Next"),
    ]

    await store.delete_conversation(conv.id)
    with pytest.raises(InvalidInput, match="no longer exists"):
        await engine.send(conv.id, "Anyone?")
    assert a2.id not in {m.id for m in await store.messages(branch.id)}
