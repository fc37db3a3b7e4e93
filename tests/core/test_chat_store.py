"""The chat history in a real SQLite file: round trips, migrations, search, export/import."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.core.chat import ChatOptions, ChatStore, MessageStatus, StoreError
from app.core.chat.store import INTERRUPTED, MIGRATIONS, SCHEMA_VERSION, ReplyState, new_id
from app.core.errors import InvalidInput
from app.core.hosts.base import ChatStats
from tests.support.waiting import wait_for


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ChatStore]:
    async with ChatStore(tmp_path / "data" / "chat.db") as s:
        yield s


async def reply(store: ChatStore, conversation_id: str, text: str, answer: str) -> str:
    """A user message and a finished reply, as the engine writes them."""
    reply_id = new_id()
    await store.open_reply(conversation_id, text, reply_id)
    stats = ChatStats(done_reason="stop", output_tokens=9, time_to_first_token_ms=12.5)
    state = ReplyState(reply_id, answer, "hmm", "h1", "llama3.2", MessageStatus.COMPLETE, stats)
    await store.submit(store.finish_reply_sync, state)
    return reply_id


def pragma(path: Path, name: str) -> Any:
    db = sqlite3.connect(path)
    try:
        return db.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        db.close()


async def test_round_trip_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    options = ChatOptions(temperature=0.3, seed=1, keep_alive="1h", think="low")
    async with ChatStore(path) as store:
        conv = await store.create_conversation(
            "llama3.2", host_id="h1", title="Trip", system_prompt="Sys", options=options
        )
        await reply(store, conv.id, "Where to?", "Oslo, then Bergen.")
    assert pragma(path, "journal_mode") == "wal"
    assert pragma(path, "user_version") == SCHEMA_VERSION
    async with ChatStore(path) as store:
        again = await store.conversation(conv.id)
        assert again == conv.__class__(**{**conv.__dict__, "updated_at": again.updated_at})
        assert again.options == options
        user, answer = await store.messages(conv.id)
        assert (user.role, user.content, user.seq) == ("user", "Where to?", 0)
        assert (answer.role, answer.content, answer.thinking, answer.seq) == (
            "assistant",
            "Oslo, then Bergen.",
            "hmm",
            1,
        )
        assert answer.status is MessageStatus.COMPLETE and answer.stats is not None
        assert answer.stats.time_to_first_token_ms == 12.5 and answer.model == "llama3.2"


async def test_every_call_runs_on_one_worker_thread(store: ChatStore) -> None:
    names = {await store.submit(lambda: threading.current_thread().name) for _ in range(20)}
    assert len(names) == 1 and next(iter(names)).startswith("chat-store")
    assert threading.current_thread().name not in names


async def test_list_rename_delete_duplicate(store: ChatStore) -> None:
    first = await store.create_conversation("llama3.2", title="First")
    second = await store.create_conversation("llama3.2", title="Second")
    assert [c.id for c in await store.list_conversations()] == [second.id, first.id]
    await reply(store, first.id, "q1", "a1")  # activity moves it up
    await reply(store, first.id, "q2", "a2")
    assert [c.id for c in await store.list_conversations()] == [first.id, second.id]

    renamed = await store.rename(first.id, "  Renamed ")
    assert renamed.title == "Renamed"

    messages = await store.messages(first.id)
    branch = await store.duplicate(first.id, up_to_message_id=messages[1].id)
    assert branch.title == "Renamed (branch)" and branch.branched_from == messages[1].id
    copied = await store.messages(branch.id)
    assert [m.content for m in copied] == ["q1", "a1"]
    assert {m.id for m in copied}.isdisjoint(m.id for m in messages)
    whole = await store.duplicate(first.id, title="Copy")
    assert [m.content for m in await store.messages(whole.id)] == ["q1", "a1", "q2", "a2"]

    await store.delete_conversation(first.id)
    with pytest.raises(InvalidInput, match="no longer exists"):
        await store.conversation(first.id)
    assert [m.content for m in await store.messages(branch.id)] == ["q1", "a1"]  # untouched
    with pytest.raises(InvalidInput):
        await store.duplicate(branch.id, up_to_message_id="nope")


async def test_search_finds_message_text_and_titles(store: ChatStore) -> None:
    trip = await store.create_conversation("llama3.2", title="Norway trip")
    cake = await store.create_conversation("llama3.2", title="Baking")
    await reply(store, trip.id, "Where should I go?", "Visit the fjords near Bergen.")
    await reply(store, cake.id, "A recipe?", "Mix flour, eggs and sugar; bake for 30 minutes.")

    hits = await store.search("fjord")  # prefix match
    assert [(h.conversation_id, h.message_id != "") for h in hits] == [(trip.id, True)]
    assert "[fjords]" in hits[0].snippet
    assert [h.conversation_id for h in await store.search("norway")] == [trip.id]
    assert [h.conversation_id for h in await store.search("flour sugar")] == [cake.id]
    assert await store.search("flour fjords") == []  # every word must match
    assert await store.search('"unbalanced OR (') == []  # query syntax is not the user's

    await store.rename(cake.id, "Desserts")
    assert [h.conversation_id for h in await store.search("desserts")] == [cake.id]
    assert await store.search("baking") == []
    await store.delete_conversation(trip.id)
    assert await store.search("fjords") == []


async def test_migration_from_a_version_1_file(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO conversations (id, title, host_id, model, created_at, updated_at)"
        " VALUES ('c1', 'Old chat about volcanoes', 'auto', 'llama3.2', 1.0, 2.0)"
    )
    db.execute(
        "INSERT INTO messages (id, conversation_id, seq, role, content, created_at, updated_at)"
        " VALUES ('m1', 'c1', 0, 'user', 'Tell me about Hekla', 1.0, 1.0)"
    )
    db.close()

    async with ChatStore(path) as store:
        conv = await store.conversation("c1")
        assert conv.title == "Old chat about volcanoes" and conv.branched_from == ""
        assert [h.message_id for h in await store.search("hekla")] == ["m1"]  # backfilled
        assert [h.conversation_id for h in await store.search("volcanoes")] == ["c1"]
        await reply(store, "c1", "More?", "Hekla erupted in 2000.")
        assert len(await store.search("erupted")) == 1  # and kept up to date
    assert pragma(path, "user_version") == SCHEMA_VERSION
    assert pragma(path, "integrity_check") == "ok"


async def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="newer Corral"):
        await ChatStore(path).open()


async def test_a_reply_cut_off_by_a_crash_is_marked_failed_on_open(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    async with ChatStore(path) as store:
        conv = await store.create_conversation("llama3.2")
        reply_id = new_id()
        await store.open_reply(conv.id, "q", reply_id)
        state = ReplyState(reply_id, "half an ans", "", "h", "m", MessageStatus.STREAMING)
        await store.submit(store.save_reply_sync, state)
    async with ChatStore(path) as store:
        cut = await store.message(reply_id)
        assert cut.status is MessageStatus.FAILED and cut.content == "half an ans"
        assert cut.error == INTERRUPTED


async def test_export_import_round_trip(store: ChatStore) -> None:
    conv = await store.create_conversation(
        "qwen3:0.6b",
        host_id="h1",
        title="Export me",
        system_prompt="Be kind.",
        options=ChatOptions(top_k=5, think=True),
    )
    await reply(store, conv.id, "Question **one**", "Answer one")
    exported = await store.export_json(conv.id)
    text = json.dumps(exported)

    imported = await store.import_json(text)
    assert imported.id != conv.id
    assert (imported.title, imported.model, imported.system_prompt, imported.options) == (
        conv.title,
        conv.model,
        conv.system_prompt,
        conv.options,
    )
    strip = ("id", "conversation_id", "updated_at")
    old = [
        {k: v for k, v in m.__dict__.items() if k not in strip}
        for m in await store.messages(conv.id)
    ]
    new = [
        {k: v for k, v in m.__dict__.items() if k not in strip}
        for m in await store.messages(imported.id)
    ]
    assert old == new
    assert (await store.export_json(imported.id))["conversation"]["messages"] == exported[
        "conversation"
    ]["messages"]

    markdown = await store.export_markdown(conv.id)
    assert markdown.startswith("# Export me\n")
    assert "## System\n\n> Be kind." in markdown
    assert "## You\n\nQuestion **one**" in markdown
    assert "## Assistant (llama3.2 on h1)" in markdown and "Answer one" in markdown


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "not a Corral conversation"),
        ('{"format": "other"}', "not a Corral conversation export"),
        ('{"format": "corral.chat", "version": 9, "conversation": {}}', "newer Corral"),
        ('{"format": "corral.chat", "version": 1, "conversation": {}}', "has no 'model'"),
        (
            {"messages": [{"role": "user", "content": "ok"}, {"role": "wizard"}]},
            "Message 2 has an unknown role 'wizard'",
        ),
        ({"messages": [{"role": "user", "content": 5}]}, "'content' must be text"),
        ({"messages": [{"role": "user", "status": "lost"}]}, "unknown status 'lost'"),
        ({"options": {"temperature": "hot"}}, "temperature option must be a number"),
        ({"options": {"warp": 9}}, "Unknown chat option: warp"),
        ({"messages": [{"role": "assistant", "stats": {"output_tokens": 1.5}}]}, "whole number"),
    ],
)
async def test_bad_import_is_refused_and_writes_nothing(
    store: ChatStore, data: str | dict[str, Any], complaint: str
) -> None:
    await store.create_conversation("llama3.2", title="Existing")
    if isinstance(data, dict):
        data = json.dumps(
            {
                "format": "corral.chat",
                "version": 1,
                "conversation": {"model": "llama3.2", "title": "Bad", **data},
            }
        )
    before = await store.list_conversations()
    with pytest.raises(InvalidInput, match=complaint):
        await store.import_json(data)
    assert await store.list_conversations() == before
    assert await store.search("bad") == []


async def test_bad_values_are_refused_in_plain_words(store: ChatStore) -> None:
    with pytest.raises(InvalidInput, match="Choose a model"):
        await store.create_conversation("  ")
    with pytest.raises(InvalidInput, match="top_p must be between 0 and 1"):
        ChatOptions(top_p=2)
    with pytest.raises(InvalidInput, match="not a thinking level"):
        ChatOptions(think="max")


# -- truncation and edits ------------------------------------------------------------------


async def snapshot(store: ChatStore) -> list[tuple[Any, ...]]:
    """Every conversation with its messages, as read from the file."""
    out: list[tuple[Any, ...]] = []
    for conv in await store.list_conversations():
        out.append((conv, await store.messages(conv.id)))
    return out


async def test_truncate_from_removes_the_message_and_what_follows(store: ChatStore) -> None:
    conv = await store.create_conversation("llama3.2", title="Birds")
    await reply(store, conv.id, "Which owls live here?", "Tawny owls.")
    await reply(store, conv.id, "And herons?", "Grey herons by the river.")
    q1, a1, q2, a2 = await store.messages(conv.id)

    removed = await store.truncate_from(conv.id, q2.id)
    assert [m.id for m in removed] == [q2.id, a2.id]
    assert [m.id for m in await store.messages(conv.id)] == [q1.id, a1.id]
    assert await store.search("herons") == []  # search forgets them
    assert {h.message_id for h in await store.search("owls")} == {q1.id, a1.id}
    # the next message takes the freed place
    await store.add_message(conv.id, "user", "Storks?")
    assert [m.seq for m in await store.messages(conv.id)] == [0, 1, 2]


async def test_truncate_from_refuses_a_message_of_another_conversation(store: ChatStore) -> None:
    one = await store.create_conversation("llama3.2", title="One")
    two = await store.create_conversation("llama3.2", title="Two")
    await reply(store, one.id, "q1", "a1")
    await reply(store, two.id, "q2", "a2")
    before = await snapshot(store)
    other = (await store.messages(two.id))[0]
    with pytest.raises(InvalidInput, match="not part of this conversation"):
        await store.truncate_from(one.id, other.id)
    with pytest.raises(InvalidInput, match="no longer exists"):
        await store.truncate_from(one.id, "nope")
    assert await snapshot(store) == before


async def test_edit_keeps_the_conversation_as_it_was_as_a_copy(store: ChatStore) -> None:
    conv = await store.create_conversation(
        "llama3.2", host_id="h1", title="Trip", system_prompt="Be brief."
    )
    await reply(store, conv.id, "Where to in May?", "Lisbon.")
    await reply(store, conv.id, "And in June?", "Bergen.")
    q1, a1, q2, a2 = await store.messages(conv.id)

    edited = await store.edit_message(conv.id, q2.id, "And in July?")
    assert edited.kept_copy is not None
    copy = edited.kept_copy
    assert copy.title == "Trip (before edit)" and copy.id != conv.id
    assert (copy.host_id, copy.model, copy.system_prompt) == ("h1", "llama3.2", "Be brief.")
    kept = await store.messages(copy.id)
    assert [(m.role, m.content) for m in kept] == [(m.role, m.content) for m in (q1, a1, q2, a2)]

    now = await store.messages(conv.id)
    assert [(m.role, m.content) for m in now] == [
        ("user", "Where to in May?"),
        ("assistant", "Lisbon."),
        ("user", "And in July?"),
    ]
    assert [m.id for m in now[:2]] == [q1.id, a1.id]  # what came before is untouched
    assert edited.message == now[-1] and edited.messages == tuple(now)
    assert edited.conversation == await store.conversation(conv.id)
    # search: the old question and answer live on in the copy only
    assert {h.conversation_id for h in await store.search("june")} == {copy.id}
    assert {h.conversation_id for h in await store.search("bergen")} == {copy.id}
    assert {h.conversation_id for h in await store.search("july")} == {conv.id}


async def test_an_edit_that_loses_nothing_keeps_no_copy(store: ChatStore) -> None:
    conv = await store.create_conversation("llama3.2", title="Solo")
    first = await store.add_message(conv.id, "user", "Hello?")
    edited = await store.edit_message(conv.id, first.id, "Hello?")
    assert edited.kept_copy is None
    assert [c.id for c in await store.list_conversations()] == [conv.id]
    assert [m.content for m in await store.messages(conv.id)] == ["Hello?"]
    # the same text with a reply after it: the reply would be lost, so a copy is kept
    await reply(store, conv.id, "Again?", "Yes.")
    again = (await store.messages(conv.id))[1]
    assert (await store.edit_message(conv.id, again.id, "Again?")).kept_copy is not None


@pytest.mark.parametrize(
    ("case", "complaint"),
    [
        ("unknown", "That message no longer exists"),
        ("other", "not part of this conversation"),
        ("assistant", "Only your own messages can be edited"),
        ("empty", "Type a message first"),
        ("gone", "That conversation no longer exists"),
    ],
)
async def test_a_refused_edit_changes_nothing(store: ChatStore, case: str, complaint: str) -> None:
    conv = await store.create_conversation("llama3.2", title="Main")
    other = await store.create_conversation("llama3.2", title="Other")
    await reply(store, conv.id, "q1", "a1")
    await reply(store, other.id, "elsewhere", "there")
    q1, a1 = await store.messages(conv.id)
    target, message_id, text = {
        "unknown": (conv.id, "nope", "new"),
        "other": (conv.id, (await store.messages(other.id))[0].id, "new"),
        "assistant": (conv.id, a1.id, "new"),
        "empty": (conv.id, q1.id, "  \n"),
        "gone": ("no-such-conversation", q1.id, "new"),
    }[case]
    before = await snapshot(store)
    with pytest.raises(InvalidInput, match=complaint):
        await store.edit_message(target, message_id, text)
    assert await snapshot(store) == before
    assert len(await store.search("new")) == 0


async def test_an_edit_is_one_transaction(store: ChatStore, tmp_path: Path) -> None:
    conv = await store.create_conversation("llama3.2", title="Atomic")
    await reply(store, conv.id, "q1", "a1")
    q1 = (await store.messages(conv.id))[0]
    before = await snapshot(store)
    # the removal fails after the copy was written: the copy must go with it
    raw = sqlite3.connect(store.path, isolation_level=None)
    try:
        raw.execute(
            "CREATE TRIGGER no_delete BEFORE DELETE ON messages"
            " BEGIN SELECT RAISE(ABORT, 'deleting is off'); END"
        )
    finally:
        raw.close()
    with pytest.raises(StoreError, match="deleting is off"):
        await store.edit_message(conv.id, q1.id, "q1 again, better")
    assert await snapshot(store) == before
    assert await store.search("before edit") == []


# -- the conversation cache ----------------------------------------------------------------


def fresh_context(path: Path, conversation_id: str) -> Any:
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


async def test_context_is_kept_in_memory_and_handed_out_as_a_copy(store: ChatStore) -> None:
    conv = await store.create_conversation("llama3.2", title="Kept")
    assert store.cached(conv.id)  # a new conversation is known at once
    await reply(store, conv.id, "q", "a")
    assert not store.cached(conv.id)  # written to: forgotten
    read = await store.context(conv.id)  # read from the file, and kept
    assert store.cached(conv.id) and read == fresh_context(store.path, conv.id)
    kept = await store.context(conv.id)  # from memory
    assert kept == read
    kept[1].pop()  # the caller's list is its own
    again = await store.context(conv.id)
    assert [m.content for m in again[1]] == ["q", "a"]

    blocked, release = threading.Event(), threading.Event()

    def block() -> None:
        blocked.set()
        release.wait(10)

    other = await store.create_conversation("llama3.2")
    pending = store.submit_for(other.id, block)  # the worker is busy with another one
    try:
        assert await asyncio.to_thread(blocked.wait, 10)
        async with asyncio.timeout(5):  # served from memory, not from the busy worker
            assert await store.context(conv.id) == again
    finally:
        release.set()
        await pending


@pytest.mark.parametrize(
    "change",
    [
        "rename",
        "update",
        "add_message",
        "delete_message",
        "truncate",
        "edit",
        "open_reply",
        "submit",
        "delete",
    ],
)
async def test_every_change_of_the_store_reaches_context(store: ChatStore, change: str) -> None:
    conv = await store.create_conversation("llama3.2", title="Before", system_prompt="S1")
    await reply(store, conv.id, "q1", "a1")
    await reply(store, conv.id, "q2", "a2")
    q1, _, q2, a2 = await store.messages(conv.id)
    await store.context(conv.id)
    assert store.cached(conv.id)

    if change == "rename":
        await store.rename(conv.id, "After")
    elif change == "update":
        await store.update_conversation(
            conv.id, model="qwen3:0.6b", system_prompt="S2", options=ChatOptions(seed=3)
        )
    elif change == "add_message":
        await store.add_message(conv.id, "user", "q3")
    elif change == "delete_message":
        await store.delete_message(a2.id)
    elif change == "truncate":
        await store.truncate_from(conv.id, q2.id)
    elif change == "edit":
        await store.edit_message(conv.id, q1.id, "q1 edited")
    elif change == "open_reply":
        await store.open_reply(conv.id, "q3", new_id())
    elif change == "submit":  # a write the store knows nothing about
        await store.submit(
            lambda: store._conn().execute(
                "UPDATE messages SET content = 'changed' WHERE id = ?", (q1.id,)
            )
        )
    elif change == "delete":
        await store.delete_conversation(conv.id)
        with pytest.raises(InvalidInput, match="no longer exists"):
            await store.context(conv.id)
        return
    assert await store.context(conv.id) == fresh_context(store.path, conv.id)
    assert store.cached(conv.id)


async def test_new_conversations_from_duplicate_and_import_read_right(store: ChatStore) -> None:
    conv = await store.create_conversation("llama3.2", title="Source")
    await reply(store, conv.id, "q1", "a1")
    await store.context(conv.id)
    branch = await store.duplicate(conv.id)
    imported = await store.import_json(await store.export_json(conv.id))
    assert store.cached(imported.id)
    for conversation_id in (conv.id, branch.id, imported.id):
        assert await store.context(conversation_id) == fresh_context(store.path, conversation_id)
    assert [m.content for m in (await store.context(imported.id))[1]] == ["q1", "a1"]


async def test_a_read_that_a_write_overtook_is_not_kept(store: ChatStore) -> None:
    conv = await store.create_conversation("llama3.2", title="Old title")
    other = await store.create_conversation("llama3.2")
    blocked, release = threading.Event(), threading.Event()

    def block() -> None:
        blocked.set()
        release.wait(10)

    store._contexts.clear()  # as after a restart: the next context() reads the file
    gate = store.submit_for(other.id, block)
    try:
        assert await asyncio.to_thread(blocked.wait, 10)
        # each task queues its call at its first step, in the order they were created
        read = asyncio.create_task(store.context(conv.id))  # sees the old title
        renamed = asyncio.create_task(store.rename(conv.id, "New title"))  # runs after it
        # both calls are queued once the rename is recorded as overtaking the read
        await wait_for(lambda: store._reads == 1 and store._last_write.get(conv.id))
    finally:
        release.set()
        await gate
    assert (await read)[0].title == "Old title"
    await renamed
    assert (await store.context(conv.id))[0].title == "New title"


async def test_closing_forgets_what_was_kept(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = ChatStore(path)
    await store.open()
    conv = await store.create_conversation("llama3.2", title="Mine")
    await store.close()
    assert not store.cached(conv.id)
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("UPDATE conversations SET title = 'Changed while closed'")
    raw.close()
    await store.open()
    try:
        assert (await store.context(conv.id))[0].title == "Changed while closed"
    finally:
        await store.close()
