"""The chat history in a real SQLite file: round trips, migrations, search, export/import."""

from __future__ import annotations

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
