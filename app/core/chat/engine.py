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

Tools: with a :class:`ToolProvider` (the MCP manager), a conversation whose
``tools_enabled`` is on offers the model the tools of the servers that are up (see
:class:`ToolCatalog`). When the model's reply asks for tool calls, that reply is saved
with its ``tool_calls``, and each call in turn is announced (``ToolCallRequested``),
decided (``ToolCallDecided``: by a rule of :class:`ApprovalRules`, or by the user through
the :class:`Approver`), made with the tool timeout, and saved as a "tool" message
(``ToolCallFinished``). A call that cannot be made (no such tool, declined, the server is
down, a timeout, a failure, the tool's own error) is not an error of the reply: the model
is told in plain words and answers on. Then the model is asked again, with the calls and
their results, and its answer is a new reply message (``ReplyContinued``); at most
``max_tool_rounds`` rounds of tool calls are made, after which the reply ends with a
``note`` saying so. The whole exchange is one :class:`ReplyHandle` with one end event
(``ReplyFinished.stats`` are the last round's; each reply message keeps its own round's);
a stop while the user is asked or a tool runs cancels the call, and each call left
without a result gets a "tool" message saying it was stopped. A model that cannot use
tools on its host is asked again at once without them (``ToolsDropped``).

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
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from app.core.chat.routing import HealthView, HostDirectory, Router
from app.core.chat.store import ChatStore, ReplyState, new_id
from app.core.chat.tools import (
    ApprovalRequest,
    ApprovalRules,
    Approver,
    Decision,
    ToolCatalog,
    ToolProvider,
)
from app.core.chat.types import (
    AUTO,
    Conversation,
    HostSwitched,
    MessageStatus,
    ReplyContinued,
    ReplyEnd,
    ReplyEvent,
    ReplyFailed,
    ReplyFinished,
    ReplyStarted,
    ReplyStopped,
    RetryKind,
    RetryOption,
    StoredMessage,
    ToolCallDecided,
    ToolCallFinished,
    ToolCallRequested,
    ToolRecord,
    ToolsDropped,
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
    ToolCall,
)
from app.core.mcp.types import ToolInfo, ToolResult

FLUSH_INTERVAL_S = 0.25
OPEN_DELAY_S = 0.02
MAX_TOOL_ROUNDS = 8
#: How much longer than its timeout the engine waits for a tool call before it gives up
#: on it itself (the provider is expected to time it out first).
TOOL_GRACE_S = 2.0

DECLINED = "The user declined this tool call; it was not run."
NOT_ASKED = "This tool call needs the user's approval and no one could be asked; it was not run."
STOPPED_CALL = "The user stopped the reply before this tool call finished; there is no result."
NO_RESULT = "This tool call has no result (it was interrupted)."


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
        conversation_id: the conversation.
        message_id: the reply message being written; after tool calls the model answers
            in a new message, and this names it from its ``ReplyContinued`` event on.
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
        self.tool_calls: tuple[ToolCall, ...] = ()
        self.stats: ChatStats | None = None
        self.note = ""
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

    def state(self, status: MessageStatus, error: str = "") -> ReplyState:
        return ReplyState(
            self.message_id,
            "".join(self.content),
            "".join(self.thinking),
            self.host_id,
            self.model,
            status,
            self.stats,
            error,
            self.tool_calls,
            self.note,
        )

    def keep(self, future: asyncio.Future[Any]) -> None:
        """Wait for ``future`` (another write of the reply) at the end."""
        self.pending = [
            f for f in self.pending if not f.done() or f.cancelled() or f.exception() is not None
        ]
        self.pending.append(future)

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
        self.keep(future)

    async def finish(
        self,
        status: MessageStatus,
        stats: ChatStats | None = None,
        error: str = "",
        *,
        last_write: bool = True,
    ) -> StoredMessage:
        """Write the message's end; wait for every write; the saved message.

        ``last_write``: nothing more of the reply follows (the conversation is read back
        for the next message); False when the model answers again after tool calls.
        """
        self.open()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if stats is not None:
            self.stats = stats
        last = self.store.submit_for(
            self.conversation_id, self.store.finish_reply_sync, self.state(status, error)
        )
        if last_write:
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
    catalog: ToolCatalog | None = None  # the tools offered (None: none)


@dataclass
class _Turn:
    """A reply in progress over its rounds: what a stop needs to know."""

    writer: _Writer  # the message being written, or the one whose tool calls are run
    unanswered: list[ToolCall] = field(default_factory=list)  # calls still without a result
    requested: set[str] = field(default_factory=set)  # ids of calls announced to the reader


@dataclass(frozen=True)
class _Round:
    """One answer of the model."""

    host_id: str
    host_name: str
    stats: ChatStats
    calls: tuple[ToolCall, ...]
    request: ChatRequest  # as it was sent (without tools if the model cannot use them)


def history_messages(history: Sequence[StoredMessage]) -> list[ChatMessage]:
    """The stored messages as the model is sent them.

    A failed reply is left out, with the "tool" messages that answer its calls, and so is
    an empty one. Each call of a reply is answered right after it: a call without a
    "tool" message (cut off by a crash) gets one saying there is no result; a "tool"
    message that answers no call before it is left out.
    """
    out: list[ChatMessage] = []
    open_calls: dict[str, ToolCall] = {}

    def close() -> None:
        for call in open_calls.values():
            out.append(ChatMessage("tool", NO_RESULT, tool_name=call.name, tool_call_id=call.id))
        open_calls.clear()

    for m in history:
        if m.role == "tool":
            call = open_calls.pop(m.tool.call_id, None) if m.tool is not None else None
            if call is not None:
                out.append(
                    ChatMessage("tool", m.content, tool_name=call.name, tool_call_id=call.id)
                )
            continue
        close()
        if m.status is MessageStatus.FAILED:
            continue  # an unfinished failure is not part of what was said
        if m.role == "assistant" and not m.content and not m.tool_calls:
            continue
        out.append(ChatMessage(m.role, m.content, tool_calls=m.tool_calls))
        open_calls = {c.id: c for c in m.tool_calls}
    close()
    return out


def _with_ids(calls: Sequence[ToolCall]) -> tuple[ToolCall, ...]:
    """The calls, each with an id of its own (hosts that give none, or the same twice)."""
    seen: set[str] = set()
    out = []
    for call in calls:
        if not call.id or call.id in seen:
            call = replace(call, id=f"call_{new_id()[:20]}")
        seen.add(call.id)
        out.append(call)
    return tuple(out)


class ChatEngine:
    """Runs conversations: streams replies through the hosts and saves them.

    Attributes:
        registry: where hosts come from. store: where conversations are kept.
        router: ranks hosts for conversations whose host is "auto".
        latency: fed with the figures of every finished reply (each round of a reply
            with tool calls counts as one).
        flush_interval_s: longest time a streamed piece waits before it is written.
        flushed: emitted (on the loop) each time a reply's text reached the database.
        tools: the MCP tools (None: the model is offered none).
        approver: asks the user about a tool call no rule allows (None: such calls are
            declined).
        rules: which calls run without asking (the conversation grants are dropped when
            the store deletes a conversation).
        max_tool_rounds: how many rounds of tool calls one reply may make.
        tool_timeout_s: deadline of each tool call (None: the provider's own).
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
        tools: ToolProvider | None = None,
        approver: Approver | None = None,
        rules: ApprovalRules | None = None,
        max_tool_rounds: int = MAX_TOOL_ROUNDS,
        tool_timeout_s: float | None = None,
    ) -> None:
        if max_tool_rounds < 0:
            raise InvalidInput("max_tool_rounds must not be negative.")
        if tool_timeout_s is not None and tool_timeout_s <= 0:
            raise InvalidInput("The tool timeout must be a positive number of seconds.")
        self.registry = registry
        self.store = store
        self.router = Router(registry, health)
        self.latency = latency
        self.clock = clock
        self.flush_interval_s = flush_interval_s
        self.flushed: Event[Flushed] = Event("chat.flushed")
        self.tools = tools
        self.approver = approver
        self.rules = rules if rules is not None else ApprovalRules()
        self.max_tool_rounds = max_tool_rounds
        self.tool_timeout_s = tool_timeout_s
        self.tool_grace_s = TOOL_GRACE_S
        self._replies: set[ReplyHandle] = set()
        store.deleted.connect(self.rules.forget)

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
        while history and history[-1].role in ("assistant", "tool"):
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
        replies = [m for m in history if m.role == "assistant"]
        if conversation.host_id == AUTO and replies and history[-1].role != "user":
            tried.append(replies[-1].host_id)
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
        messages += history_messages(history)
        if text is not None:
            messages.append(ChatMessage("user", text))
        catalog = None
        if self.tools is not None and conversation.tools_enabled:
            catalog = ToolCatalog(self.tools.tools()) or None
        options = conversation.options
        request = ChatRequest(
            model=conversation.model,
            messages=tuple(messages),
            tools=catalog.specs if catalog is not None else (),
            options=options.sampling(),
            think=options.think,
            keep_alive=options.keep_alive,
        )
        return _Plan(conversation, host_id, request, catalog)

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
        turn = _Turn(writer)
        try:
            try:
                if handle.stop_requested:
                    raise asyncio.CancelledError
                end = await self._answer(handle, plan, turn)
            except asyncio.CancelledError:
                end = ReplyStopped(await self._stopped(handle, plan, turn))
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

    async def _stopped(self, handle: ReplyHandle, plan: _Plan, turn: _Turn) -> StoredMessage:
        """Save a stopped reply: each call left without a result gets a "tool" message
        saying so, and the message being written (or the one that asked) is ``stopped``."""
        for call in list(turn.unanswered):
            tool = plan.catalog.resolve(call.name) if plan.catalog is not None else None
            record = ToolRecord(
                call.id,
                call.name,
                tool.server if tool is not None else "",
                tool.name if tool is not None else "",
                call.arguments,
                is_error=True,
            )
            self._answered(
                handle, plan, turn, call, STOPPED_CALL, record, None, MessageStatus.STOPPED
            )
        return await turn.writer.finish(MessageStatus.STOPPED)

    async def _answer(self, handle: ReplyHandle, plan: _Plan, turn: _Turn) -> ReplyEnd:
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
                return await self._fail(plan, turn.writer, error, tried)
        else:
            try:
                order = [(plan.host_id, self.registry.get(plan.host_id).name)]
            except CorralError as exc:
                return await self._fail(plan, turn.writer, exc, tried)
        handle._put(ReplyStarted(plan.conversation.id, handle.message_id, *order[0], model))
        request = plan.request
        rounds = 0
        while True:
            answer = await self._round(handle, plan, turn.writer, order, request, tried)
            if isinstance(answer, ReplyFailed):
                return answer
            if self.latency is not None:
                self.latency.record_reply(answer.host_id, model, answer.stats)
            writer = turn.writer
            if not answer.calls:
                message = await writer.finish(MessageStatus.COMPLETE, answer.stats)
                return ReplyFinished(message, answer.stats)
            calls = _with_ids(answer.calls)
            writer.tool_calls = calls
            turn.unanswered = list(calls)
            if rounds >= self.max_tool_rounds:
                return await self._too_many_rounds(handle, plan, turn, calls, answer.stats)
            asking = await writer.finish(MessageStatus.COMPLETE, answer.stats, last_write=False)
            rounds += 1
            results = await self._run_calls(handle, plan, turn, asking.id, calls)
            request = replace(
                answer.request,
                messages=(
                    *answer.request.messages,
                    ChatMessage("assistant", asking.content, tool_calls=calls),
                    *results,
                ),
            )
            turn.writer = self._next_writer(plan, answer.host_id, writer)
            handle.message_id = turn.writer.message_id
            handle._put(ReplyContinued(plan.conversation.id, turn.writer.message_id, rounds))
            order = [(answer.host_id, answer.host_name)]  # the host that answered goes on

    async def _round(
        self,
        handle: ReplyHandle,
        plan: _Plan,
        writer: _Writer,
        order: list[tuple[str, str]],
        request: ChatRequest,
        tried: list[str],
    ) -> _Round | ReplyFailed:
        """One answer of the model, streamed into ``writer`` (not finished): from the first
        host of ``order`` that answers (the next one is tried only when the conversation's
        host is automatic and a host failed before its first piece)."""
        model = plan.conversation.model
        auto = plan.host_id == AUTO
        index = 0
        while True:
            host_id, host_name = order[index]
            writer.host_id = host_id
            if host_id not in tried:
                tried.append(host_id)
            started = False
            stats: ChatStats | None = None
            calls: list[ToolCall] = []
            try:
                host = self.registry.host(host_id)
                stream = host.chat(request)
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
                        else:
                            calls.append(chunk.call)
                            if writer.waiting:
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
                if (
                    request.tools
                    and not started
                    and isinstance(exc, CapabilityMissing)
                    and "tool" in exc.capability.casefold()
                ):
                    request = replace(request, tools=())
                    text = f"{model} on {host_name} cannot use tools; answering without them"
                    handle._put(ToolsDropped(host_id, model, text))
                    continue
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
                index += 1
                continue
            # the host modules end every good reply with a FinalChunk
            return _Round(host_id, host_name, stats or ChatStats(), tuple(calls), request)

    def _next_writer(self, plan: _Plan, host_id: str, previous: _Writer) -> _Writer:
        """The writer of the model's next answer, a new message after the tool results
        (the writes of the reply still under way are waited for at its end)."""
        conversation_id = plan.conversation.id
        model = plan.conversation.model
        reply_id = new_id()

        def open_write() -> asyncio.Future[None]:
            return self.store.submit_for(
                conversation_id,
                self.store.append_reply_sync,
                conversation_id,
                reply_id,
                host_id,
                model,
            )

        writer = _Writer(self, conversation_id, reply_id, host_id, model, open_write)
        for future in previous.pending:
            writer.keep(future)
        return writer

    async def _too_many_rounds(
        self,
        handle: ReplyHandle,
        plan: _Plan,
        turn: _Turn,
        calls: tuple[ToolCall, ...],
        stats: ChatStats,
    ) -> ReplyFinished:
        """End a reply that asks for more tool calls than it may make: the calls are not
        run (each gets a "tool" message saying so) and the reply says why it ended."""
        rounds = self.max_tool_rounds
        names = ", ".join(dict.fromkeys(c.name for c in calls))
        turn.writer.note = (
            f"Stopped after {rounds} round{'s' if rounds != 1 else ''} of tool calls, the most "
            f"one reply may make; the model's last request ({names}) was not run."
        )
        text = f"Not run: this reply reached its limit of {rounds} rounds of tool calls."
        for call in calls:
            tool = plan.catalog.resolve(call.name) if plan.catalog is not None else None
            record = ToolRecord(
                call.id,
                call.name,
                tool.server if tool is not None else "",
                tool.name if tool is not None else "",
                call.arguments,
                is_error=True,
            )
            self._answered(handle, plan, turn, call, text, record, None)
        message = await turn.writer.finish(MessageStatus.COMPLETE, stats)
        return ReplyFinished(message, stats)

    # -- tool calls ---------------------------------------------------------------------
    async def _run_calls(
        self,
        handle: ReplyHandle,
        plan: _Plan,
        turn: _Turn,
        message_id: str,
        calls: tuple[ToolCall, ...],
    ) -> list[ChatMessage]:
        """Decide and make each call in turn; the "tool" messages for the model."""
        return [await self._run_call(handle, plan, turn, message_id, call) for call in calls]

    async def _run_call(
        self, handle: ReplyHandle, plan: _Plan, turn: _Turn, message_id: str, call: ToolCall
    ) -> ChatMessage:
        conversation_id = plan.conversation.id
        tool = plan.catalog.resolve(call.name) if plan.catalog is not None else None
        if tool is None:
            handle._put(
                ToolCallRequested(
                    conversation_id,
                    message_id,
                    call.id,
                    call.name,
                    "",
                    ToolInfo(server="", name=call.name),
                    call.arguments,
                    needs_approval=False,
                )
            )
            turn.requested.add(call.id)
            offered = ", ".join(plan.catalog.names) if plan.catalog is not None else ""
            text = f"There is no tool named {call.name!r}; the call was not made. " + (
                f"The tools you can call are: {offered}." if offered else "No tools are available."
            )
            record = ToolRecord(call.id, call.name, arguments=call.arguments, is_error=True)
            return self._answered(handle, plan, turn, call, text, record, None)

        rule = self.rules.allowed(conversation_id, tool.server, tool.name)
        ask = rule is None and self.approver is not None
        handle._put(
            ToolCallRequested(
                conversation_id,
                message_id,
                call.id,
                call.name,
                tool.server,
                tool,
                call.arguments,
                needs_approval=ask,
            )
        )
        turn.requested.add(call.id)
        decision, note = await self._decide(conversation_id, call, tool, rule)
        handle._put(ToolCallDecided(call.id, decision, asked=ask, note=note))
        record = ToolRecord(
            call.id, call.name, tool.server, tool.name, call.arguments, decision=decision
        )
        if not decision.allows:
            text = DECLINED if ask else NOT_ASKED
            record = replace(record, is_error=True)
            return self._answered(handle, plan, turn, call, text, record, None)

        result, error, duration_ms = await self._call(tool, call.arguments)
        if result is None:
            text = f"The tool call failed: {error}"
            record = replace(record, is_error=True, duration_ms=duration_ms)
        else:
            said = result.text_for_model()
            if result.is_error:
                text = f"The tool reported an error: {said or 'it gave no details.'}"
            else:
                text = said or "The tool returned nothing."
            record = replace(
                record,
                content=result.content,
                structured=result.structured,
                is_error=result.is_error,
                duration_ms=duration_ms,
            )
        return self._answered(handle, plan, turn, call, text, record, result)

    async def _decide(
        self, conversation_id: str, call: ToolCall, tool: ToolInfo, rule: Decision | None
    ) -> tuple[Decision, str]:
        """The decision on a call (a rule's, the user's, or a refusal when no one can be
        asked) and a note for the user ("" for none)."""
        if rule is not None:
            return rule, ""
        if self.approver is None:
            return Decision.DENY, ""
        request = ApprovalRequest(conversation_id, call.id, tool.server, tool, call.arguments)
        decision = Decision(await self.approver.approve(request))
        try:
            self.rules.apply(conversation_id, tool.server, tool.name, decision)
        except CorralError as exc:  # "always" could not be saved: it holds for now
            self.rules.grant(conversation_id, tool.server, tool.name)
            return decision, (
                f"{tool.display_name} could not be allowed always ({exc.message.rstrip('.')}); "
                "it is allowed for this conversation."
            )
        return decision, ""

    async def _call(
        self, tool: ToolInfo, arguments: Mapping[str, Any]
    ) -> tuple[ToolResult | None, str, float]:
        """Make the call: its result (None if it failed), why it failed, and how long it
        took in milliseconds."""
        assert self.tools is not None
        start = self.clock()
        try:
            if self.tool_timeout_s is None:
                result = await self.tools.call_tool(tool.server, tool.name, dict(arguments))
            else:
                async with asyncio.timeout(self.tool_timeout_s + self.tool_grace_s):
                    result = await self.tools.call_tool(
                        tool.server, tool.name, dict(arguments), timeout_s=self.tool_timeout_s
                    )
        except TimeoutError:
            error = (
                f"{tool.display_name} on {tool.server} did not answer within "
                f"{self.tool_timeout_s:g} s."
            )
            return None, error, (self.clock() - start) * 1000.0
        except CorralError as exc:  # ServerUnavailable, ToolTimeout, ToolCallFailed, ...
            return None, exc.message, (self.clock() - start) * 1000.0
        return result, "", (self.clock() - start) * 1000.0

    def _answered(
        self,
        handle: ReplyHandle,
        plan: _Plan,
        turn: _Turn,
        call: ToolCall,
        text: str,
        record: ToolRecord,
        result: ToolResult | None,
        status: MessageStatus = MessageStatus.COMPLETE,
    ) -> ChatMessage:
        """Save the "tool" message of a call (queued, waited for at the reply's end), tell
        the reader, and give the message for the model. No await: a stop cannot land
        between the write and the call's leaving the unanswered ones."""
        message_id = new_id()
        conversation_id = plan.conversation.id
        turn.writer.keep(
            self.store.submit_for(
                conversation_id,
                self.store.add_tool_message_sync,
                conversation_id,
                message_id,
                text,
                record,
                status,
            )
        )
        if call in turn.unanswered:
            turn.unanswered.remove(call)
        if call.id in turn.requested:
            error = "" if result is not None and not result.is_error else text
            handle._put(ToolCallFinished(call.id, message_id, result, error, record.duration_ms))
        return ChatMessage("tool", text, tool_name=call.name, tool_call_id=call.id)

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
