"""The chat history: one SQLite file (WAL), written from one worker thread.

Every blocking call runs on a dedicated single-thread executor, in the order it was
asked for; the coroutines of :class:`ChatStore` await it (with a deadline). The schema
is versioned with ``PRAGMA user_version``:

- version 1: conversations and messages;
- version 2: full-text search (FTS5) over message text and conversation titles, kept up
  to date by triggers and filled from the existing rows, and ``branched_from``;
- version 3: tool calls: a conversation's ``tools_enabled``; a reply's ``tool_calls``
  and ``note``; a "tool" message's ``tool`` (the call and its result, JSON).

A reply being streamed is written as it grows (see ``ChatEngine``) with status
``streaming``; a file opened with such a message left over from a crash gets it marked
``failed``, with what had been written kept.

Each conversation read with :meth:`ChatStore.context` is kept in memory (the last
:data:`CONTEXT_CACHE_SIZE` of them), so that a reply can be asked for without waiting for
the worker thread. The copy is exact: every write is queued through :meth:`ChatStore.submit`
or :meth:`ChatStore.submit_for`, which drop what it may change *when it is queued*; a read
fills the cache only if no write that may touch its conversation was queued since the read
was. A read served from memory therefore returns what a read queued at that moment would.
The file must have no other writer while it is open (Corral opens it once).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import math
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from app.core.chat.types import (
    AUTO,
    ROLES,
    ChatOptions,
    Conversation,
    MessageStatus,
    SearchHit,
    StoredMessage,
    ToolRecord,
    stats_from_json,
    stats_to_json,
    tool_calls_from_json,
    tool_calls_to_json,
)
from app.core.errors import CorralError, InvalidInput, StoreError
from app.core.events import Event
from app.core.hosts.base import ChatStats, ToolCall

T = TypeVar("T")
R = TypeVar("R")

SCHEMA_VERSION = 3
EXPORT_FORMAT = "corral.chat"
EXPORT_VERSION = 2  # 2: tool calls, tool messages, notes, tools_enabled
INTERRUPTED = "Corral closed before this reply was finished; the text up to then is kept."


TITLE_LENGTH = 60
#: How many conversations :meth:`ChatStore.context` keeps in memory.
CONTEXT_CACHE_SIZE = 16


def new_id() -> str:
    return uuid.uuid4().hex


def title_for(text: str) -> str:
    """A conversation's title made from its first message."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


_V1 = """
CREATE TABLE conversations (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL DEFAULT '',
    host_id TEXT NOT NULL,
    model TEXT NOT NULL,
    system_prompt TEXT NOT NULL DEFAULT '',
    options TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX conversations_updated ON conversations(updated_at);
CREATE TABLE messages (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL DEFAULT '',
    thinking TEXT NOT NULL DEFAULT '',
    host_id TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    options TEXT NOT NULL DEFAULT '{}',
    stats TEXT,
    status TEXT NOT NULL DEFAULT 'complete',
    error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (conversation_id, seq)
);
"""

_V2 = """
ALTER TABLE conversations ADD COLUMN branched_from TEXT NOT NULL DEFAULT '';
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content='messages', content_rowid='pk', tokenize='unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE titles_fts USING fts5(
    title, content='conversations', content_rowid='pk', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.pk, new.content);
END;
CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.pk, old.content);
END;
CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.pk, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.pk, new.content);
END;
CREATE TRIGGER conversations_ai AFTER INSERT ON conversations BEGIN
    INSERT INTO titles_fts(rowid, title) VALUES (new.pk, new.title);
END;
CREATE TRIGGER conversations_ad AFTER DELETE ON conversations BEGIN
    INSERT INTO titles_fts(titles_fts, rowid, title) VALUES ('delete', old.pk, old.title);
END;
CREATE TRIGGER conversations_au AFTER UPDATE OF title ON conversations BEGIN
    INSERT INTO titles_fts(titles_fts, rowid, title) VALUES ('delete', old.pk, old.title);
    INSERT INTO titles_fts(rowid, title) VALUES (new.pk, new.title);
END;
INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
INSERT INTO titles_fts(titles_fts) VALUES ('rebuild');
"""

_V3 = """
ALTER TABLE conversations ADD COLUMN tools_enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE messages ADD COLUMN tool_calls TEXT;
ALTER TABLE messages ADD COLUMN tool TEXT;
ALTER TABLE messages ADD COLUMN note TEXT NOT NULL DEFAULT '';
"""

#: Each step takes the file from version ``i`` to ``i + 1``.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3)


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@dataclass(frozen=True)
class ReplyState:
    """What is written for a reply at a flush (and at its end)."""

    message_id: str
    content: str
    thinking: str
    host_id: str
    model: str
    status: MessageStatus
    stats: ChatStats | None = None
    error: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    note: str = ""


def _calls_json(calls: Sequence[ToolCall]) -> str | None:
    return json.dumps(tool_calls_to_json(tuple(calls))) if calls else None


def _tool_json(record: ToolRecord | None) -> str | None:
    return json.dumps(record.to_json()) if record is not None else None


@dataclass(frozen=True)
class Edited:
    """The result of :meth:`ChatStore.edit_message`.

    Attributes:
        conversation, messages: the conversation after the edit (it ends with the new
            message).
        message: the new user message.
        kept_copy: the copy of the conversation as it was before the edit, or None when
            nothing was removed (the message was the last one and its text is unchanged).
    """

    conversation: Conversation
    messages: tuple[StoredMessage, ...]
    message: StoredMessage
    kept_copy: Conversation | None


_Context = tuple[Conversation, tuple[StoredMessage, ...]]


class ChatStore:
    """Conversations and messages in one SQLite file.

    Attributes:
        path: the database file.
        timeout_s: deadline of every call (the database's busy timeout is the same).
        deleted: emitted with a conversation's id once it is deleted.
    """

    def __init__(
        self, path: Path | str, *, timeout_s: float = 30.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        # The conversation cache (see the module docstring); touched on the loop only.
        self._contexts: collections.OrderedDict[str, _Context] = collections.OrderedDict()
        self._writes = 0  # writes queued so far
        self._last_write_any = 0  # number of the last write that may touch any conversation
        self._last_write: dict[str, int] = {}  # per conversation, while reads are in flight
        self._reads = 0  # cache-filling reads in flight
        self.deleted: Event[str] = Event("chat.deleted")

    # -- life ---------------------------------------------------------------------------
    async def open(self) -> None:
        """Open (create, migrate, recover) the file. Call once, inside the running loop."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-store")
        try:
            await self._write(None, self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        """Close the file once every queued write is done."""
        executor = self._executor
        if executor is None:
            return
        with contextlib.suppress(StoreError):
            await self._write(None, self._close_sync)
        self._executor = None
        self._contexts.clear()
        await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(executor.shutdown, wait=True)
        )

    async def __aenter__(self) -> ChatStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- plumbing -----------------------------------------------------------------------
    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args)`` on the worker thread; a future of the loop for its result.

        Calls run in the order they were queued. sqlite3 errors come back as StoreError.
        ``fn`` may write anything: every conversation kept in memory is dropped.
        """
        return self._queue(None, fn, *args)

    def submit_for(
        self, conversation_id: str, fn: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        """Like :meth:`submit`, for a call that writes to one conversation at most."""
        return self._queue(conversation_id, fn, *args)

    def _queue(
        self, scope: str | None, fn: Callable[..., T], *args: Any, read: bool = False
    ) -> asyncio.Future[T]:
        """Queue a call; unless it only reads, what it may change is forgotten first
        (``scope``: the one conversation it may write; None: any)."""
        if self._executor is None:
            raise StoreError("The chat history is not open.")
        loop = asyncio.get_running_loop()
        if not read:
            self._writes += 1
            if scope is None:
                self._contexts.clear()
                self._last_write_any = self._writes
            else:
                self._contexts.pop(scope, None)
                if self._reads:
                    self._last_write[scope] = self._writes
        return loop.run_in_executor(self._executor, functools.partial(self._guarded, fn, *args))

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._wait(self._queue(None, fn, *args, read=True))

    async def _write(self, scope: str | None, fn: Callable[..., T], *args: Any) -> T:
        return await self._wait(self._queue(scope, fn, *args))

    async def _wait(self, future: asyncio.Future[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await asyncio.shield(future)
        except TimeoutError as exc:
            raise StoreError(
                f"The chat history at {self.path} did not answer within {self.timeout_s:g} s."
            ) from exc

    # -- the conversation cache (on the loop) ---------------------------------------------
    def _fill_ticket(self) -> int:
        """Before a read that may fill the cache is queued: its ticket."""
        self._reads += 1
        return self._writes

    def _fill(self, ticket: int, conversation_id: str, context: _Context | None) -> None:
        """A read queued with ``ticket`` is over: keep what it read (``context``; None if
        it failed) unless a write that may touch the conversation was queued since."""
        self._reads -= 1
        current = (
            self._last_write_any <= ticket and self._last_write.get(conversation_id, 0) <= ticket
        )
        if context is not None and current and self._executor is not None:
            self._contexts[conversation_id] = context
            self._contexts.move_to_end(conversation_id)
            while len(self._contexts) > CONTEXT_CACHE_SIZE:
                self._contexts.popitem(last=False)
        if not self._reads:
            self._last_write.clear()

    def cached(self, conversation_id: str) -> bool:
        """Whether the conversation is kept in memory (the next :meth:`context` is at once)."""
        return conversation_id in self._contexts

    def prefetch(self, conversation_id: str) -> None:
        """Read the conversation into memory in the background (if it is not there); a
        failure is dropped (the next :meth:`context` reports it)."""
        if conversation_id in self._contexts or self._executor is None:
            return
        ticket = self._fill_ticket()
        try:
            future = self._queue(None, self._context_sync, conversation_id, read=True)
        except BaseException:
            self._fill(ticket, conversation_id, None)
            raise

        def done(f: asyncio.Future[_Context]) -> None:
            ok = not f.cancelled() and f.exception() is None
            self._fill(ticket, conversation_id, f.result() if ok else None)

        future.add_done_callback(done)

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except CorralError:
            raise
        except (sqlite3.Error, OSError) as exc:
            if self._db is not None and self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.rollback()
            raise StoreError(
                f"The chat history at {self.path} could not be read or written: {exc}."
            ) from exc

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("The chat history is not open.")
        return self._db

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            migrate(db)
            with db:
                db.execute("BEGIN")
                db.execute(
                    "UPDATE messages SET status = ?, error = ? WHERE status = ?",
                    (MessageStatus.FAILED.value, INTERRUPTED, MessageStatus.STREAMING.value),
                )
        except BaseException:
            db.close()
            raise
        self._db = db

    def _close_sync(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.execute("PRAGMA optimize")
            db.close()

    # -- rows ---------------------------------------------------------------------------
    @staticmethod
    def _conversation(row: sqlite3.Row) -> Conversation:
        return Conversation(
            id=row["id"],
            title=row["title"],
            host_id=row["host_id"],
            model=row["model"],
            system_prompt=row["system_prompt"],
            options=ChatOptions.from_json(json.loads(row["options"])),
            created_at=_ts(row["created_at"]),
            updated_at=_ts(row["updated_at"]),
            branched_from=row["branched_from"],
            tools_enabled=bool(row["tools_enabled"]),
        )

    @staticmethod
    def _message(row: sqlite3.Row) -> StoredMessage:
        stats = json.loads(row["stats"]) if row["stats"] else None
        return StoredMessage(
            id=row["id"],
            conversation_id=row["conversation_id"],
            seq=row["seq"],
            role=row["role"],
            content=row["content"],
            thinking=row["thinking"],
            host_id=row["host_id"],
            model=row["model"],
            options=ChatOptions.from_json(json.loads(row["options"])),
            stats=stats_from_json(stats),
            status=MessageStatus(row["status"]),
            error=row["error"],
            created_at=_ts(row["created_at"]),
            updated_at=_ts(row["updated_at"]),
            tool_calls=tool_calls_from_json(json.loads(row["tool_calls"]))
            if row["tool_calls"]
            else (),
            tool=ToolRecord.from_json(json.loads(row["tool"])) if row["tool"] else None,
            note=row["note"],
        )

    def _get_conversation(self, conversation_id: str) -> Conversation:
        row = (
            self._conn()
            .execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
            .fetchone()
        )
        if row is None:
            raise InvalidInput("That conversation no longer exists.")
        return self._conversation(row)

    def _messages(self, conversation_id: str) -> list[StoredMessage]:
        rows = self._conn().execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
        )
        return [self._message(r) for r in rows]

    def _get_message(self, message_id: str) -> StoredMessage:
        row = self._conn().execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise InvalidInput("That message no longer exists.")
        return self._message(row)

    def _context_sync(self, conversation_id: str) -> _Context:
        return self._get_conversation(conversation_id), tuple(self._messages(conversation_id))

    def _insert_conversation(self, c: Conversation, now: float) -> None:
        self._conn().execute(
            "INSERT INTO conversations (id, title, host_id, model, system_prompt, options,"
            " created_at, updated_at, branched_from, tools_enabled)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                c.id,
                c.title,
                c.host_id,
                c.model,
                c.system_prompt,
                json.dumps(c.options.to_json()),
                _epoch(c.created_at) or now,
                _epoch(c.updated_at) or now,
                c.branched_from,
                int(c.tools_enabled),
            ),
        )

    def _insert_message(self, m: StoredMessage, now: float) -> None:
        stats = stats_to_json(m.stats)
        self._conn().execute(
            "INSERT INTO messages (id, conversation_id, seq, role, content, thinking, host_id,"
            " model, options, stats, status, error, created_at, updated_at, tool_calls, tool,"
            " note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                m.id,
                m.conversation_id,
                m.seq,
                m.role,
                m.content,
                m.thinking,
                m.host_id,
                m.model,
                json.dumps(m.options.to_json()),
                json.dumps(stats) if stats is not None else None,
                m.status.value,
                m.error,
                _epoch(m.created_at) or now,
                _epoch(m.updated_at) or now,
                _calls_json(m.tool_calls),
                _tool_json(m.tool),
                m.note,
            ),
        )

    def _touch(self, conversation_id: str, now: float) -> None:
        self._conn().execute(
            "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)
        )

    # -- conversations ------------------------------------------------------------------
    async def create_conversation(
        self,
        model: str,
        *,
        host_id: str = AUTO,
        title: str = "",
        system_prompt: str = "",
        options: ChatOptions | None = None,
        tools_enabled: bool = True,
    ) -> Conversation:
        if not model.strip():
            raise InvalidInput("Choose a model for the conversation.")
        if not host_id.strip():
            raise InvalidInput("Choose a host for the conversation (or automatic).")
        conversation = Conversation(
            id=new_id(),
            title=title.strip(),
            host_id=host_id,
            model=model.strip(),
            system_prompt=system_prompt,
            options=options or ChatOptions(),
            tools_enabled=tools_enabled,
        )

        def go() -> Conversation:
            with self._conn():
                self._conn().execute("BEGIN")
                self._insert_conversation(conversation, self._clock())
            return self._get_conversation(conversation.id)

        return await self._write_and_fill(conversation.id, go, lambda c: (c, ()))

    async def _write_and_fill(
        self, conversation_id: str, fn: Callable[[], R], context_of: Callable[[R], _Context]
    ) -> R:
        """Queue ``fn``, a write to one conversation that reads back, in the same call, how
        it leaves it (``context_of`` its result); keep that in memory unless another write
        that may touch the conversation was queued in the meantime."""
        future = self._queue(conversation_id, fn)
        ticket = self._fill_ticket()  # taken after the write's own number: it sees itself
        context: _Context | None = None
        try:
            result = await self._wait(future)
            context = context_of(result)
        finally:
            self._fill(ticket, conversation_id, context)
        return result

    async def conversation(self, conversation_id: str) -> Conversation:
        return await self._read(self._get_conversation, conversation_id)

    async def list_conversations(self, limit: int | None = None) -> list[Conversation]:
        """Newest (last changed) first."""

        def go() -> list[Conversation]:
            rows = self._conn().execute(
                "SELECT * FROM conversations ORDER BY updated_at DESC, pk DESC LIMIT ?",
                (-1 if limit is None else limit,),
            )
            return [self._conversation(r) for r in rows]

        return await self._read(go)

    async def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str | None = None,
        host_id: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        options: ChatOptions | None = None,
        tools_enabled: bool | None = None,
    ) -> Conversation:
        """Change a conversation; None leaves a setting as it is."""
        changes: dict[str, object] = {}
        if title is not None:
            changes["title"] = title.strip()
        if host_id is not None:
            if not host_id.strip():
                raise InvalidInput("Choose a host for the conversation (or automatic).")
            changes["host_id"] = host_id
        if model is not None:
            if not model.strip():
                raise InvalidInput("Choose a model for the conversation.")
            changes["model"] = model.strip()
        if system_prompt is not None:
            changes["system_prompt"] = system_prompt
        if options is not None:
            changes["options"] = json.dumps(options.to_json())
        if tools_enabled is not None:
            changes["tools_enabled"] = int(tools_enabled)

        def go() -> Conversation:
            db = self._conn()
            with db:
                db.execute("BEGIN")
                self._get_conversation(conversation_id)
                for column, value in changes.items():  # column names are ours, not the user's
                    db.execute(
                        f"UPDATE conversations SET {column} = ? WHERE id = ?",
                        (value, conversation_id),
                    )
                self._touch(conversation_id, self._clock())
            return self._get_conversation(conversation_id)

        return await self._write(conversation_id, go)

    async def rename(self, conversation_id: str, title: str) -> Conversation:
        return await self.update_conversation(conversation_id, title=title)

    async def delete_conversation(self, conversation_id: str) -> None:
        def go() -> None:
            db = self._conn()
            with db:
                db.execute("BEGIN")
                db.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
                db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

        await self._write(conversation_id, go)
        self.deleted.emit(conversation_id)

    async def duplicate(
        self, conversation_id: str, *, up_to_message_id: str | None = None, title: str = ""
    ) -> Conversation:
        """A copy of a conversation, whole or up to (and with) one of its messages: a branch."""
        copy_id = new_id()

        def go() -> Conversation:
            db = self._conn()
            with db:
                db.execute("BEGIN")
                source = self._get_conversation(conversation_id)
                messages = self._messages(conversation_id)
                if up_to_message_id is not None:
                    ids = [m.id for m in messages]
                    if up_to_message_id not in ids:
                        raise InvalidInput("That message is not part of the conversation.")
                    messages = messages[: ids.index(up_to_message_id) + 1]
                name = title.strip() or (f"{source.title} (branch)" if source.title else "")
                self._copy_sync(source, messages, copy_id, name, up_to_message_id or "")
            return self._get_conversation(copy_id)

        return await self._write(copy_id, go)  # the source is only read

    def _copy_sync(
        self,
        source: Conversation,
        messages: Sequence[StoredMessage],
        copy_id: str,
        title: str,
        branched_from: str,
    ) -> None:
        """(Worker thread, in a transaction) A new conversation ``copy_id`` with ``source``'s
        settings and copies of ``messages`` (a reply being written is copied as stopped)."""
        now = self._clock()
        copy = Conversation(
            id=copy_id,
            title=title,
            host_id=source.host_id,
            model=source.model,
            system_prompt=source.system_prompt,
            options=source.options,
            created_at=_ts(now),
            updated_at=_ts(now),
            branched_from=branched_from,
            tools_enabled=source.tools_enabled,
        )
        self._insert_conversation(copy, now)
        for m in messages:
            status = m.status
            if status is MessageStatus.STREAMING:
                status = MessageStatus.STOPPED
            self._insert_message(
                StoredMessage(
                    **{**m.__dict__, "id": new_id(), "conversation_id": copy_id, "status": status}
                ),
                now,
            )

    def _truncate_sync(self, conversation_id: str, message_id: str) -> list[StoredMessage]:
        """(Worker thread, in a transaction) Remove ``message_id`` and every message after
        it; the messages removed. InvalidInput if the message is not in the conversation."""
        self._get_conversation(conversation_id)
        message = self._message_of(conversation_id, message_id)
        db = self._conn()
        removed = [
            self._message(r)
            for r in db.execute(
                "SELECT * FROM messages WHERE conversation_id = ? AND seq >= ? ORDER BY seq",
                (conversation_id, message.seq),
            )
        ]
        db.execute(
            "DELETE FROM messages WHERE conversation_id = ? AND seq >= ?",
            (conversation_id, message.seq),
        )
        self._touch(conversation_id, self._clock())
        return removed

    def _message_of(self, conversation_id: str, message_id: str) -> StoredMessage:
        row = self._conn().execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise InvalidInput("That message no longer exists.")
        if row["conversation_id"] != conversation_id:
            raise InvalidInput("That message is not part of this conversation.")
        return self._message(row)

    async def truncate_from(self, conversation_id: str, message_id: str) -> list[StoredMessage]:
        """Remove a message and every message after it, in one transaction; the messages
        removed (search forgets them too)."""

        def go() -> list[StoredMessage]:
            db = self._conn()
            with db:
                db.execute("BEGIN")
                return self._truncate_sync(conversation_id, message_id)

        return await self._write(conversation_id, go)

    def _editable_sync(self, conversation_id: str, message_id: str) -> StoredMessage:
        self._get_conversation(conversation_id)
        message = self._message_of(conversation_id, message_id)
        if message.role != "user":
            raise InvalidInput("Only your own messages can be edited and sent again.")
        return message

    async def editable_message(self, conversation_id: str, message_id: str) -> StoredMessage:
        """The user's message ``message_id`` of the conversation; InvalidInput if there is no
        such message, or it is not the user's (what :meth:`edit_message` checks first)."""
        return await self._read(self._editable_sync, conversation_id, message_id)

    async def edit_message(self, conversation_id: str, message_id: str, text: str) -> Edited:
        """Replace the user's message ``message_id`` by ``text`` and remove every message
        after it, in one transaction.

        Nothing written is lost: unless the message is the last one and ``text`` is what it
        already says, the conversation as it was is first copied, titled
        "<title> (before edit)". InvalidInput, with nothing changed, for an unknown
        message, one of another conversation, one that is not the user's, or empty text.
        """
        if not text.strip():
            raise InvalidInput("Type a message first.")
        copy_id = new_id()
        new_message = new_id()

        def go() -> Edited:
            db = self._conn()
            with db:
                db.execute("BEGIN")
                source = self._get_conversation(conversation_id)
                message = self._editable_sync(conversation_id, message_id)
                messages = self._messages(conversation_id)
                kept: Conversation | None = None
                if message.content != text or messages[-1].id != message.id:
                    base = source.title or title_for(messages[0].content) or "Conversation"
                    self._copy_sync(source, messages, copy_id, f"{base} (before edit)", "")
                    kept = self._get_conversation(copy_id)
                self._truncate_sync(conversation_id, message_id)
                self._append(conversation_id, new_message, "user", text, MessageStatus.COMPLETE)
                if not source.title:
                    db.execute(
                        "UPDATE conversations SET title = ? WHERE id = ?",
                        (title_for(text), conversation_id),
                    )
            conversation, after = self._context_sync(conversation_id)
            return Edited(conversation, after, after[-1], kept)

        return await self._write_and_fill(
            conversation_id, go, lambda e: (e.conversation, e.messages)
        )

    # -- messages -----------------------------------------------------------------------
    async def messages(self, conversation_id: str) -> list[StoredMessage]:
        return await self._read(self._messages, conversation_id)

    async def message(self, message_id: str) -> StoredMessage:
        return await self._read(self._get_message, message_id)

    async def context(self, conversation_id: str) -> tuple[Conversation, list[StoredMessage]]:
        """A conversation and its messages, read together; from memory when they are
        there (see the module docstring), else read and kept."""
        cached = self._contexts.get(conversation_id)
        if cached is not None:
            self._contexts.move_to_end(conversation_id)
            return cached[0], list(cached[1])
        ticket = self._fill_ticket()
        context: _Context | None = None
        try:
            context = await self._wait(
                self._queue(None, self._context_sync, conversation_id, read=True)
            )
        finally:
            self._fill(ticket, conversation_id, context)
        return context[0], list(context[1])

    async def add_message(
        self,
        conversation_id: str,
        role: str,
        content: str,
        *,
        status: MessageStatus = MessageStatus.COMPLETE,
    ) -> StoredMessage:
        """Append a message (e.g. a user's) at the end of a conversation."""
        if role not in ROLES:
            raise InvalidInput(f"{role!r} is not a message role.")
        message_id = new_id()

        def go() -> StoredMessage:
            db = self._conn()
            with db:
                db.execute("BEGIN")
                self._get_conversation(conversation_id)
                self._append(conversation_id, message_id, role, content, status)
            return self._get_message(message_id)

        return await self._write(conversation_id, go)

    def _append(
        self,
        conversation_id: str,
        message_id: str,
        role: str,
        content: str,
        status: MessageStatus,
        host_id: str = "",
        model: str = "",
        options_json: str = "{}",
        tool: ToolRecord | None = None,
    ) -> None:
        """(Worker thread, in a transaction) A message at the end of an existing conversation."""
        db = self._conn()
        now = self._clock()
        db.execute(
            "INSERT INTO messages (id, conversation_id, seq, role, content, host_id, model,"
            " options, status, created_at, updated_at, tool)"
            " SELECT ?, ?, COALESCE(MAX(seq), -1) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?"
            " FROM messages WHERE conversation_id = ?",
            (
                message_id,
                conversation_id,
                role,
                content,
                host_id,
                model,
                options_json,
                status.value,
                now,
                now,
                _tool_json(tool),
                conversation_id,
            ),
        )
        self._touch(conversation_id, now)

    def open_reply_sync(
        self, conversation_id: str, text: str | None, reply_id: str, host_id: str | None
    ) -> None:
        """(Worker thread) Start a reply, in one transaction: the user's ``text`` is added
        (None: the last user message is answered again and the replies after it go), then an
        empty reply with status ``streaming``; an untitled conversation is named after the
        text. Kept lean: it runs while the host is asked for the reply.
        """
        db = self._conn()
        with db:
            db.execute("BEGIN")
            row = db.execute(
                "SELECT title, host_id, model, options FROM conversations WHERE id = ?",
                (conversation_id,),
            ).fetchone()
            if row is None:
                raise InvalidInput("That conversation no longer exists.")
            if text is None:
                last = db.execute(
                    "SELECT MAX(seq) FROM messages WHERE conversation_id = ? AND role = 'user'",
                    (conversation_id,),
                ).fetchone()[0]
                if last is None:
                    raise InvalidInput("There is no message to answer again.")
                db.execute(
                    "DELETE FROM messages WHERE conversation_id = ? AND seq > ?",
                    (conversation_id, last),
                )
            else:
                self._append(conversation_id, new_id(), "user", text, MessageStatus.COMPLETE)
                if not row["title"]:
                    db.execute(
                        "UPDATE conversations SET title = ? WHERE id = ?",
                        (title_for(text), conversation_id),
                    )
            host = row["host_id"] if host_id is None else host_id
            self._append(
                conversation_id,
                reply_id,
                "assistant",
                "",
                MessageStatus.STREAMING,
                "" if host == AUTO else host,
                row["model"],
                row["options"],
            )

    async def open_reply(
        self, conversation_id: str, text: str | None, reply_id: str, host_id: str | None = None
    ) -> None:
        """See :meth:`open_reply_sync`."""
        await self._write(
            conversation_id, self.open_reply_sync, conversation_id, text, reply_id, host_id
        )

    def append_reply_sync(
        self, conversation_id: str, reply_id: str, host_id: str, model: str
    ) -> None:
        """(Worker thread) An empty reply with status ``streaming`` at the end of the
        conversation (the model answering again after tool results); one transaction."""
        db = self._conn()
        with db:
            db.execute("BEGIN")
            row = db.execute(
                "SELECT options FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if row is None:
                raise InvalidInput("That conversation no longer exists.")
            self._append(
                conversation_id,
                reply_id,
                "assistant",
                "",
                MessageStatus.STREAMING,
                host_id,
                model,
                row["options"],
            )

    def add_tool_message_sync(
        self,
        conversation_id: str,
        message_id: str,
        content: str,
        record: ToolRecord,
        status: MessageStatus = MessageStatus.COMPLETE,
    ) -> None:
        """(Worker thread) A "tool" message at the end of the conversation: ``content`` is
        what the model was told, ``record`` the call and its result; one transaction."""
        db = self._conn()
        with db:
            db.execute("BEGIN")
            self._get_conversation(conversation_id)
            self._append(conversation_id, message_id, "tool", content, status, tool=record)

    def save_reply_sync(self, state: ReplyState) -> None:
        """(Worker thread) Write a reply's text, place and status; one transaction."""
        db = self._conn()
        stats = stats_to_json(state.stats)
        with db:
            db.execute("BEGIN")
            db.execute(
                "UPDATE messages SET content = ?, thinking = ?, host_id = ?, model = ?,"
                " status = ?, stats = ?, error = ?, tool_calls = ?, note = ?, updated_at = ?"
                " WHERE id = ?",
                (
                    state.content,
                    state.thinking,
                    state.host_id,
                    state.model,
                    state.status.value,
                    json.dumps(stats) if stats is not None else None,
                    state.error,
                    _calls_json(state.tool_calls),
                    state.note,
                    self._clock(),
                    state.message_id,
                ),
            )

    def finish_reply_sync(self, state: ReplyState) -> StoredMessage:
        """(Worker thread) The reply's last write; the saved message."""
        self.save_reply_sync(state)
        db = self._conn()
        row = db.execute(
            "SELECT conversation_id FROM messages WHERE id = ?", (state.message_id,)
        ).fetchone()
        if row is None:
            raise StoreError("The reply could not be saved: its conversation was deleted.")
        with db:
            db.execute("BEGIN")
            self._touch(row[0], self._clock())
        return self._get_message(state.message_id)

    async def delete_message(self, message_id: str) -> None:
        def go() -> None:
            db = self._conn()
            with db:
                db.execute("BEGIN")
                db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

        await self._write(None, go)  # its conversation is not known here

    # -- search -------------------------------------------------------------------------
    async def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Conversations whose title or messages hold every word of ``text`` (prefixes
        match: "quic" finds "quick"); titles first, then messages, best match first."""
        words = [w for w in text.split() if w.strip('"')]
        if not words:
            return []
        query = " ".join('"' + w.replace('"', '""') + '"*' for w in words)

        def go() -> list[SearchHit]:
            db = self._conn()
            hits: list[SearchHit] = []
            rows = db.execute(
                "SELECT c.id, c.title FROM titles_fts"
                " JOIN conversations c ON c.pk = titles_fts.rowid"
                " WHERE titles_fts MATCH ? ORDER BY rank LIMIT ?",
                (query, limit),
            )
            hits.extend(SearchHit(r[0], r[1], "", r[1]) for r in rows)
            rows = db.execute(
                "SELECT c.id, c.title, m.id, snippet(messages_fts, 0, '[', ']', '…', 12)"
                " FROM messages_fts JOIN messages m ON m.pk = messages_fts.rowid"
                " JOIN conversations c ON c.id = m.conversation_id"
                " WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?",
                (query, limit),
            )
            hits.extend(SearchHit(r[0], r[1], r[2], r[3]) for r in rows)
            return hits[:limit]

        return await self._read(go)

    # -- export / import ----------------------------------------------------------------
    async def export_json(self, conversation_id: str) -> dict[str, Any]:
        """The conversation as a JSON-ready object (see :meth:`import_json`)."""
        conversation, messages = await self.context(conversation_id)
        return {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "conversation": {
                "title": conversation.title,
                "host_id": conversation.host_id,
                "model": conversation.model,
                "system_prompt": conversation.system_prompt,
                "options": conversation.options.to_json(),
                "created_at": _epoch(conversation.created_at),
                "updated_at": _epoch(conversation.updated_at),
                "tools_enabled": conversation.tools_enabled,
                "messages": [_export_message(m) for m in messages],
            },
        }

    async def export_markdown(self, conversation_id: str) -> str:
        conversation, messages = await self.context(conversation_id)
        return render_markdown(conversation, messages)

    async def import_json(self, data: str | bytes | Mapping[str, Any]) -> Conversation:
        """A new conversation from an export; the input is checked whole before anything
        is written (InvalidInput, nothing written, if any part is wrong)."""
        conversation, messages = parse_export(data)

        def go() -> _Context:
            db = self._conn()
            now = self._clock()
            with db:
                db.execute("BEGIN")
                self._insert_conversation(conversation, now)
                for m in messages:
                    self._insert_message(m, now)
            return self._context_sync(conversation.id)

        imported, _ = await self._write_and_fill(conversation.id, go, lambda c: c)
        return imported


def _export_message(m: StoredMessage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "role": m.role,
        "content": m.content,
        "thinking": m.thinking,
        "host_id": m.host_id,
        "model": m.model,
        "options": m.options.to_json(),
        "stats": stats_to_json(m.stats),
        "status": m.status.value,
        "error": m.error,
        "created_at": _epoch(m.created_at),
    }
    if m.tool_calls:
        out["tool_calls"] = tool_calls_to_json(m.tool_calls)
    if m.tool is not None:
        out["tool"] = m.tool.to_json()
    if m.note:
        out["note"] = m.note
    return out


# -- migrations ----------------------------------------------------------------------------


def migrate(db: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the file to ``target``, one step per transaction; returns the version found.

    A file newer than this Corral is refused (StoreError) rather than damaged.
    """
    (found,) = db.execute("PRAGMA user_version").fetchone()
    if found > len(MIGRATIONS):
        raise StoreError(
            f"The chat history was written by a newer Corral (schema {found}); "
            "update Corral to open it."
        )
    for version in range(found, target):
        db.execute("BEGIN")
        try:
            for statement in _statements(MIGRATIONS[version]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {version + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return int(found)


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (trigger bodies kept whole)."""
    out: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


# -- export formats ------------------------------------------------------------------------


def render_markdown(conversation: Conversation, messages: Sequence[StoredMessage]) -> str:
    title = conversation.title or "Conversation"
    lines = [f"# {title}", ""]
    host = "automatic host" if conversation.host_id == AUTO else f"host `{conversation.host_id}`"
    lines.append(f"Model `{conversation.model}` on {host}.")
    options = conversation.options.to_json()
    if options:
        lines.append("Options: " + ", ".join(f"{k} = {v}" for k, v in options.items()) + ".")
    lines.append("")
    if conversation.system_prompt:
        lines += ["## System", "", *_quote(conversation.system_prompt), ""]
    for m in messages:
        heading = {"user": "You", "assistant": "Assistant", "system": "System", "tool": "Tool"}
        head = heading.get(m.role, m.role)
        if m.role == "assistant" and m.model:
            head += f" ({m.model}" + (f" on {m.host_id})" if m.host_id else ")")
        lines += [f"## {head}", ""]
        if m.thinking:
            lines += ["<details><summary>Thinking</summary>", "", m.thinking, "", "</details>", ""]
        if m.role == "tool" and m.tool is not None:
            where = f" on {m.tool.server}" if m.tool.server else ""
            arguments = json.dumps(dict(m.tool.arguments), ensure_ascii=False)
            lines += [f"`{m.tool.tool or m.tool.name}`{where} called with `{arguments}`:", ""]
        lines += [m.content, ""]
        for call in m.tool_calls:
            arguments = json.dumps(dict(call.arguments), ensure_ascii=False)
            lines += [f"*Asked for the tool `{call.name}` with `{arguments}`.*", ""]
        if m.note:
            lines += [f"*({m.note})*", ""]
        if m.status is MessageStatus.STOPPED:
            lines += ["*(stopped)*", ""]
        elif m.status in (MessageStatus.FAILED, MessageStatus.STREAMING):
            lines += [f"*(failed: {m.error or 'not finished'})*", ""]
    return "\n".join(lines).rstrip() + "\n"


def _quote(text: str) -> list[str]:
    return ["> " + line if line else ">" for line in text.splitlines()]


def _text(where: str, data: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    if key not in data:
        if required:
            raise InvalidInput(f"{where} has no {key!r}.")
        return ""
    value = data[key]
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: {key!r} must be text.")
    return value


def _time(where: str, data: Mapping[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{where}: {key!r} must be a time in seconds since 1970.")
    try:
        return _ts(float(value))
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidInput(f"{where}: {key!r} is not a usable time.") from exc


def parse_export(data: str | bytes | Mapping[str, Any]) -> tuple[Conversation, list[StoredMessage]]:
    """Check an export whole and turn it into new rows (new ids); InvalidInput if wrong."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput("The file is not valid JSON.") from exc
    if not isinstance(data, Mapping):
        raise InvalidInput("The file is not a Corral conversation (no JSON object).")
    if data.get("format") != EXPORT_FORMAT:
        raise InvalidInput("The file is not a Corral conversation export.")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > EXPORT_VERSION:
        raise InvalidInput("The file comes from a newer Corral; update Corral to import it.")
    raw = data.get("conversation")
    if not isinstance(raw, Mapping):
        raise InvalidInput("The file has no conversation in it.")
    where = "The conversation"
    model = _text(where, raw, "model", required=True).strip()
    if not model:
        raise InvalidInput("The conversation names no model.")
    host_id = _text(where, raw, "host_id").strip() or AUTO
    conversation = Conversation(
        id=new_id(),
        title=_text(where, raw, "title").strip(),
        host_id=host_id,
        model=model,
        system_prompt=_text(where, raw, "system_prompt"),
        options=ChatOptions.from_json(raw.get("options")),
        created_at=_time(where, raw, "created_at"),
        updated_at=_time(where, raw, "updated_at"),
        tools_enabled=_flag(where, raw, "tools_enabled", default=True),
    )
    items = raw.get("messages", [])
    if not isinstance(items, list):
        raise InvalidInput("The conversation's messages must be a list.")
    messages = [_parse_message(conversation.id, i, item) for i, item in enumerate(_each(items))]
    return conversation, messages


def _flag(where: str, data: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"{where}: {key!r} must be true or false.")
    return value


def _each(items: Iterable[object]) -> Iterable[Mapping[str, Any]]:
    for number, item in enumerate(items, 1):
        if not isinstance(item, Mapping):
            raise InvalidInput(f"Message {number} is not a JSON object.")
        yield item


def _parse_message(conversation_id: str, index: int, item: Mapping[str, Any]) -> StoredMessage:
    where = f"Message {index + 1}"
    role = _text(where, item, "role", required=True)
    if role not in ROLES:
        raise InvalidInput(f"{where} has an unknown role {role!r}.")
    status_text = _text(where, item, "status") or MessageStatus.COMPLETE.value
    try:
        status = MessageStatus(status_text)
    except ValueError as exc:
        raise InvalidInput(f"{where} has an unknown status {status_text!r}.") from exc
    if status is MessageStatus.STREAMING:
        status = MessageStatus.STOPPED  # no reply is being written into an import
    try:
        options = ChatOptions.from_json(item.get("options"))
        stats = stats_from_json(item.get("stats"))
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}") from exc
    tool_calls = tool_calls_from_json(item.get("tool_calls"), where)
    tool = item.get("tool")
    record = None if tool is None else ToolRecord.from_json(tool, where)
    created = _time(where, item, "created_at")
    return StoredMessage(
        id=new_id(),
        conversation_id=conversation_id,
        seq=index,
        role=role,
        content=_text(where, item, "content"),
        thinking=_text(where, item, "thinking"),
        host_id=_text(where, item, "host_id"),
        model=_text(where, item, "model"),
        options=options,
        stats=stats,
        status=status,
        error=_text(where, item, "error"),
        created_at=created,
        updated_at=created,
        tool_calls=tool_calls,
        tool=record,
        note=_text(where, item, "note"),
    )
