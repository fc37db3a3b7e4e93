"""The conversation engine: a user's message in, a streamed, saved reply out.

``await engine.send(conversation_id, text)`` saves the message and starts the reply in
a task of its own; it returns a :class:`ReplyHandle` to iterate for :data:`ReplyEvent`
values (``ReplyStarted``, then the host's ``ThinkingChunk`` / ``ContentChunk`` /
``ToolCallChunk`` as they come, maybe a ``HostSwitched``, and last exactly one of
``ReplyFinished``, ``ReplyStopped``, ``ReplyFailed``). ``handle.stop()`` cancels the
reply; what had arrived is kept with status ``stopped``.
``await engine.resend(conversation_id, message_id, text)`` does the same for a user's
earlier message, edited: it and everything after it go (the conversation as it was is
kept as a copy first), and the new text is answered.

The conversation and its history come from the store's memory (see ``ChatStore.context``)
when it has them, so the request leaves without waiting for the database; after each reply
the store reads the conversation back in the background, ready for the next message.

While a reply streams, its text is written to the store at most ``flush_interval_s``
after it arrived (by a timer when the host goes quiet), so a crash loses at most that
much. The writes are queued on the store's worker thread; the stream never waits for
them except at its end. The first write (the user's message and the empty reply) is
queued at the reply's first piece or 20 ms after the start, whichever comes first, so
that it never delays the first token. The first piece is handed to the reader before any
other piece that arrived with it is looked at.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.core.chat.routing import HealthView, HostDirectory, Router
from app.core.chat.store import ChatStore, ReplyState, new_id
from app.core.chat.types import (
    AUTO,
    Conversation,
    HostSwitched,
    MessageStatus,
    ReplyEnd,
    ReplyEvent,
    ReplyFailed,
    ReplyFinished,
    ReplyStarted,
    ReplyStopped,
    RetryKind,
    RetryOption,
    StoredMessage,
)
from app.core.errors import (
    CapabilityMissing,
    CorralError,
    HostError,
    InvalidInput,
    ModelNotFound,
    StoreError,
)
from app.core.events import Event
from app.core.hosts.base import (
    ChatMessage,
    ChatRequest,
    ChatStats,
    ContentChunk,
    FinalChunk,
    ThinkingChunk,
)

FLUSH_INTERVAL_S = 0.25
OPEN_DELAY_S = 0.02


class ReplyRecorder(Protocol):
    """What the engine needs of the latency book."""

    def record_reply(
        self, host_id: str, model: str, stats: ChatStats, t: float | None = None
    ) -> None: ...


@dataclass(frozen=True)
class Flushed:
    """A reply's text reached the database (``chars`` of content, ``at`` engine clock)."""

    message_id: str
    chars: int
    at: float


class _End:
    """Queued after the last event (or with an error the iterator raises)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class ReplyHandle:
    """One reply in progress.

    Iterate it (once) for its events; :meth:`stop` ends it early; :meth:`wait` returns the
    last event. A consumer that stops iterating before the end stops the reply.

    Attributes:
        conversation_id, message_id: where the reply is saved.
        kept_copy_id: for a reply to an edited message (``resend``), the id of the copy of
            the conversation as it was before the edit ("" when nothing was removed).
    """

    def __init__(self, conversation_id: str, message_id: str, kept_copy_id: str = "") -> None:
        self.conversation_id = conversation_id
        self.message_id = message_id
        self.kept_copy_id = kept_copy_id
        # a one-reader channel: events, and a future the reader waits on when there are none
        self._items: collections.deque[ReplyEvent | _End] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[ReplyEnd] | None = None
        self._running = False
        self.stop_requested = False

    def _put(self, event: ReplyEvent | _End) -> None:
        self._items.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def stop(self) -> None:
        """Stop the reply; the text so far is saved with status ``stopped``."""
        if self._task is not None and not self._task.done():
            self.stop_requested = True
            if self._running:  # a reply that has not begun sees the flag when it does
                self._task.cancel()

    def _task_done(self, task: asyncio.Task[ReplyEnd]) -> None:
        # the reply's own end came first; this one only matters after a bug or a cancel
        # that came before the reply began
        error = None if task.cancelled() else task.exception()
        self._put(_End(error))

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    async def wait(self) -> ReplyEnd:
        """The reply's last event, once it is saved."""
        assert self._task is not None
        return await asyncio.shield(self._task)

    def __aiter__(self) -> AsyncIterator[ReplyEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[ReplyEvent]:
        finished = False
        try:
            items = self._items
            while True:
                if not items:
                    self._waiter = asyncio.get_running_loop().create_future()
                    try:
                        await self._waiter
                    finally:
                        self._waiter = None
                    continue
                item = items.popleft()
                if isinstance(item, _End):
                    finished = True
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            if not finished:
                self.stop()


class _Writer:
    """Collects a reply and writes it to the store on time (see the module docstring)."""

    def __init__(
        self,
        engine: ChatEngine,
        conversation_id: str,
        message_id: str,
        host_id: str,
        model: str,
        open_write: Callable[[], asyncio.Future[Any]],
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.conversation_id = conversation_id
        self.message_id = message_id
        self.host_id = host_id
        self.model = model
        self.content: list[str] = []
        self.thinking: list[str] = []
        self.pending: list[asyncio.Future[Any]] = []
        self.last_flush = engine.clock()
        self.dirty = False
        self.timer: asyncio.TimerHandle | None = None
        # The first write (the user's message, the empty reply) waits for the first piece
        # of the reply or OPEN_DELAY_S, whichever comes first: a host that answers at once
        # does not wait for it, and one that thinks first has it done in the meantime.
        self._open_write: Callable[[], asyncio.Future[Any]] | None = open_write
        self._open_soon = False
        self._open_timer: asyncio.Handle = asyncio.get_running_loop().call_later(
            OPEN_DELAY_S, self.open
        )

    def open(self) -> None:
        """Queue the first write now (once; every later write is queued after it)."""
        self._open_timer.cancel()
        if self._open_write is not None:
            write, self._open_write = self._open_write, None
            self.pending.append(write())

    @property
    def waiting(self) -> bool:
        """The first write is not queued yet."""
        return self._open_write is not None

    def open_soon(self) -> None:
        """Queue the first write once the loop has run what is ready (the reader's wake-up)."""
        if not self._open_soon:
            self._open_soon = True
            self._open_timer.cancel()
            self._open_timer = asyncio.get_running_loop().call_soon(self.open)

    def add(self, parts: list[str], text: str) -> None:
        if self._open_write is not None:
            self.open_soon()
        parts.append(text)
        self.dirty = True
        elapsed = self.engine.clock() - self.last_flush
        interval = self.engine.flush_interval_s
        if elapsed >= interval:
            self.flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(interval - elapsed, self._due)

    def _due(self) -> None:
        self.timer = None
        if self.dirty:
            self.flush()

    def state(
        self, status: MessageStatus, stats: ChatStats | None = None, error: str = ""
    ) -> ReplyState:
        return ReplyState(
            self.message_id,
            "".join(self.content),
            "".join(self.thinking),
            self.host_id,
            self.model,
            status,
            stats,
            error,
        )

    def flush(self) -> None:
        self.open()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.dirty = False
        self.last_flush = self.engine.clock()
        state = self.state(MessageStatus.STREAMING)
        future = self.store.submit_for(self.conversation_id, self.store.save_reply_sync, state)
        chars = len(state.content)

        def done(f: asyncio.Future[Any]) -> None:
            if not f.cancelled() and f.exception() is None:
                self.engine.flushed.emit(Flushed(self.message_id, chars, self.engine.clock()))

        future.add_done_callback(done)
        self.pending = [
            f for f in self.pending if not f.done() or f.cancelled() or f.exception() is not None
        ]
        self.pending.append(future)

    async def finish(
        self, status: MessageStatus, stats: ChatStats | None = None, error: str = ""
    ) -> StoredMessage:
        """Write the reply's end; wait for every write; the saved message."""
        self.open()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        last = self.store.submit_for(
            self.conversation_id, self.store.finish_reply_sync, self.state(status, stats, error)
        )
        self.store.prefetch(self.conversation_id)  # for the next message, after the writes
        writes = asyncio.gather(*self.pending, last, return_exceptions=True)
        try:
            async with asyncio.timeout(self.store.timeout_s):
                results = await asyncio.shield(writes)
        except TimeoutError as exc:
            raise StoreError(
                f"The chat history at {self.store.path} did not answer within "
                f"{self.store.timeout_s:g} s; the reply may not be saved."
            ) from exc
        for result in results:
            if isinstance(result, BaseException):
                raise result
        message = results[-1]
        assert isinstance(message, StoredMessage)
        self.engine.flushed.emit(
            Flushed(self.message_id, len(message.content), self.engine.clock())
        )
        return message


@dataclass(frozen=True)
class _Plan:
    conversation: Conversation
    host_id: str  # a registry id or AUTO
    request: ChatRequest


class ChatEngine:
    """Runs conversations: streams replies through the hosts and saves them.

    Attributes:
        registry: where hosts come from. store: where conversations are kept.
        router: ranks hosts for conversations whose host is "auto".
        latency: fed with the figures of every finished reply (if given).
        flush_interval_s: longest time a streamed piece waits before it is written.
        flushed: emitted (on the loop) each time a reply's text reached the database.
    """

    def __init__(
        self,
        registry: HostDirectory,
        store: ChatStore,
        *,
        health: HealthView | None = None,
        latency: ReplyRecorder | None = None,
        clock: Callable[[], float] = time.monotonic,
        flush_interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        self.registry = registry
        self.store = store
        self.router = Router(registry, health)
        self.latency = latency
        self.clock = clock
        self.flush_interval_s = flush_interval_s
        self.flushed: Event[Flushed] = Event("chat.flushed")
        self._replies: set[ReplyHandle] = set()

    # -- commands -----------------------------------------------------------------------
    async def send(self, conversation_id: str, text: str) -> ReplyHandle:
        """Add the user's ``text`` and start the reply.

        The conversation is read first; the user's message and the empty reply are written
        while the host is asked (at the reply's first piece, or OPEN_DELAY_S after the
        start if that comes first), queued before any other write of the reply.
        """
        if not text.strip():
            raise InvalidInput("Type a message first.")
        conversation, history = await self.store.context(conversation_id)
        plan = self._plan(conversation, conversation.host_id, history, text)
        return self._start(plan, text, None)

    async def retry(self, conversation_id: str, *, host_id: str | None = None) -> ReplyHandle:
        """Answer the last user message again (on ``host_id``, a RetryOption's host, or the
        conversation's own); the previous reply to it is replaced."""
        conversation, history = await self.store.context(conversation_id)
        while history and history[-1].role == "assistant":
            history.pop()
        if not history or history[-1].role != "user":
            raise InvalidInput("There is no message to answer again.")
        plan = self._plan(conversation, host_id or conversation.host_id, history, None)
        return self._start(plan, None, host_id)

    async def resend(self, conversation_id: str, message_id: str, text: str) -> ReplyHandle:
        """Send ``text`` in place of the user's earlier message ``message_id`` and answer it.

        That message and every message after it are removed, in one transaction with a
        copy of the conversation as it was (titled "<title> (before edit)"), unless nothing
        would be lost (the message was the last one and its text is unchanged); the
        handle's ``kept_copy_id`` names the copy ("" if none). A reply still being written
        in the conversation is stopped (and saved) first. InvalidInput, with nothing
        changed, for an unknown message, one of another conversation, one that is not the
        user's, or empty text.
        """
        if not text.strip():
            raise InvalidInput("Type a message first.")
        running = [h for h in self._replies if h.conversation_id == conversation_id]
        if running:
            # checked first: an edit that is refused must not stop anything either
            await self.store.editable_message(conversation_id, message_id)
            for reply in running:
                reply.stop()
            for reply in running:
                with contextlib.suppress(BaseException):
                    await reply.wait()
        edited = await self.store.edit_message(conversation_id, message_id, text)
        conversation = edited.conversation
        plan = self._plan(conversation, conversation.host_id, edited.messages, None)
        handle = self._start(plan, None, None)
        handle.kept_copy_id = edited.kept_copy.id if edited.kept_copy is not None else ""
        return handle

    async def retry_options(self, conversation_id: str) -> tuple[RetryOption, ...]:
        """The actions ``ReplyFailed.retry`` offers, for a conversation whose last reply
        failed earlier (shown again after a restart): Retry on the conversation's own
        host, and "Retry on <name>" for each other host that is up and has the model (for
        an automatic conversation: other than the one the last reply was asked of). Empty
        when there is no user message to answer again."""
        conversation, history = await self.store.context(conversation_id)
        if not any(m.role == "user" for m in history):
            return ()
        tried = [conversation.host_id]
        if conversation.host_id == AUTO and history[-1].role == "assistant":
            tried.append(history[-1].host_id)
        return await self._retry_options(conversation, conversation.host_id, tried)

    async def aclose(self) -> None:
        """Stop every reply in progress (each is saved as stopped)."""
        replies = list(self._replies)
        for handle in replies:
            handle.stop()
        for handle in replies:
            with contextlib.suppress(BaseException):
                await handle.wait()

    # -- inside -------------------------------------------------------------------------
    def _plan(
        self,
        conversation: Conversation,
        host_id: str,
        history: Sequence[StoredMessage],
        text: str | None,
    ) -> _Plan:
        messages: list[ChatMessage] = []
        if conversation.system_prompt.strip():
            messages.append(ChatMessage("system", conversation.system_prompt))
        for m in history:
            if m.status is MessageStatus.FAILED or (m.role == "assistant" and not m.content):
                continue  # an unfinished failure is not part of what was said
            messages.append(ChatMessage(m.role, m.content))
        if text is not None:
            messages.append(ChatMessage("user", text))
        options = conversation.options
        request = ChatRequest(
            model=conversation.model,
            messages=tuple(messages),
            options=options.sampling(),
            think=options.think,
            keep_alive=options.keep_alive,
        )
        return _Plan(conversation, host_id, request)

    def _start(self, plan: _Plan, text: str | None, host_id: str | None) -> ReplyHandle:
        """Queue the reply's first write and run the reply in its own task."""
        conversation = plan.conversation
        reply_id = new_id()

        def open_write() -> asyncio.Future[None]:
            return self.store.submit_for(
                conversation.id,
                self.store.open_reply_sync,
                conversation.id,
                text,
                reply_id,
                host_id,
            )

        handle = ReplyHandle(conversation.id, reply_id)
        first_host = "" if plan.host_id == AUTO else plan.host_id
        writer = _Writer(
            self, conversation.id, reply_id, first_host, conversation.model, open_write
        )
        handle._task = asyncio.get_running_loop().create_task(
            self._run(handle, plan, writer), name=f"chat reply {reply_id}"
        )
        handle._task.add_done_callback(handle._task_done)
        handle._task.add_done_callback(lambda _: self._replies.discard(handle))
        self._replies.add(handle)
        return handle

    async def _run(self, handle: ReplyHandle, plan: _Plan, writer: _Writer) -> ReplyEnd:
        handle._running = True
        try:
            try:
                if handle.stop_requested:
                    raise asyncio.CancelledError
                end = await self._answer(handle, plan, writer)
            except asyncio.CancelledError:
                end = ReplyStopped(await writer.finish(MessageStatus.STOPPED))
                handle._put(end)
                handle._put(_End())
                if not handle.stop_requested:
                    raise
                return end
        except CorralError as exc:  # the store failed: nothing more can be saved
            handle._put(_End(exc))
            raise
        handle._put(end)
        handle._put(_End())
        return end

    async def _answer(self, handle: ReplyHandle, plan: _Plan, writer: _Writer) -> ReplyEnd:
        model = plan.conversation.model
        auto = plan.host_id == AUTO
        tried: list[str] = []
        if auto:
            order = [(c.host_id, c.host_name) for c in await self.router.candidates(model)]
            if not order:
                error = ModelNotFound(
                    f"No host that is up has {model}: start a host that has it, or pull it on one.",
                    model=model,
                )
                return await self._fail(plan, writer, error, tried)
        else:
            try:
                order = [(plan.host_id, self.registry.get(plan.host_id).name)]
            except CorralError as exc:
                return await self._fail(plan, writer, exc, tried)
        handle._put(ReplyStarted(plan.conversation.id, handle.message_id, *order[0], model))
        for index, (host_id, host_name) in enumerate(order):
            writer.host_id = host_id
            tried.append(host_id)
            started = False
            stats: ChatStats | None = None
            try:
                host = self.registry.host(host_id)
                stream = host.chat(plan.request)
                try:
                    async for chunk in stream:
                        if isinstance(chunk, FinalChunk):
                            stats = chunk.stats
                            continue
                        handle._put(chunk)  # the reader first, then the bookkeeping
                        if isinstance(chunk, ContentChunk):
                            writer.add(writer.content, chunk.text)
                        elif isinstance(chunk, ThinkingChunk):
                            writer.add(writer.thinking, chunk.text)
                        elif writer.waiting:
                            writer.open_soon()
                        if not started:
                            started = True
                            # The reader takes the first piece now, not after the pieces
                            # that came with it in the same read are gone through.
                            await asyncio.sleep(0)
                finally:
                    # a stop may land in the loop's body: the stream (and its connection)
                    # is closed here, not when it is collected
                    close = getattr(stream, "aclose", None)
                    if close is not None:
                        await close()
            except CorralError as exc:
                switch = (
                    auto
                    and not started
                    and index + 1 < len(order)
                    and isinstance(exc, HostError)
                    and not isinstance(exc, CapabilityMissing)
                )
                if not switch:
                    return await self._fail(plan, writer, exc, tried)
                next_id, next_name = order[index + 1]
                handle._put(
                    HostSwitched(
                        failed_host_id=host_id,
                        host_id=next_id,
                        host_name=next_name,
                        model=model,
                        error=exc,
                        text=f"{model} on {host_name} failed: {exc.message.rstrip('.')}; "
                        f"answering on {next_name}",
                    )
                )
                continue
            if stats is None:  # the host modules end every good reply with a FinalChunk
                stats = ChatStats()
            if self.latency is not None:
                self.latency.record_reply(host_id, model, stats)
            message = await writer.finish(MessageStatus.COMPLETE, stats)
            return ReplyFinished(message, stats)
        raise AssertionError("unreachable: the last host either answers or fails")

    async def _fail(
        self, plan: _Plan, writer: _Writer, error: CorralError, tried: list[str]
    ) -> ReplyFailed:
        message = await writer.finish(MessageStatus.FAILED, error=error.message)
        options = await self._retry_options(plan.conversation, plan.host_id, tried)
        return ReplyFailed(message, error, options)

    async def _retry_options(
        self, conversation: Conversation, host_id: str, tried: Sequence[str]
    ) -> tuple[RetryOption, ...]:
        """Retry on ``host_id``, then each host that is up, has the model, was not tried."""
        options = [RetryOption(RetryKind.RETRY, host_id, "Retry")]
        with contextlib.suppress(CorralError):
            for c in await self.router.candidates(conversation.model, exclude=tried):
                options.append(
                    RetryOption(RetryKind.OTHER_HOST, c.host_id, f"Retry on {c.host_name}")
                )
        return tuple(options)
