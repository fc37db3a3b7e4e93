"""The values of the chat feature: conversations, stored messages, options, reply events.

Every value here is a frozen dataclass, safe to hand to the UI.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.core.chat.tools import Decision
from app.core.errors import CorralError, InvalidInput
from app.core.hosts.base import ChatStats, ContentChunk, ThinkingChunk, ToolCall, ToolCallChunk
from app.core.mcp.types import (
    AudioPart,
    ContentPart,
    ImagePart,
    ResourcePart,
    TextPart,
    ToolInfo,
    ToolResult,
)

#: The host id of a conversation that lets Corral pick the host for every reply.
AUTO = "auto"

THINK_LEVELS = ("low", "medium", "high")


class MessageStatus(enum.StrEnum):
    """Where a stored message stands.

    ``streaming``: a reply being written (or one cut off by a crash, until the next start);
    ``stopped``: the user stopped it; ``failed``: the host failed (the error text says how).
    """

    COMPLETE = "complete"
    STREAMING = "streaming"
    STOPPED = "stopped"
    FAILED = "failed"


ROLES = ("system", "user", "assistant", "tool")


def _number(name: str, value: object, *, integer: bool = False) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"The {name} option must be a number.")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"The {name} option must be a finite number.")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise InvalidInput(f"The {name} option must be a whole number.")
        return int(value)
    return float(value)


@dataclass(frozen=True)
class ChatOptions:
    """Sampling and run options of a conversation; None leaves the host's default.

    Attributes:
        temperature, top_p, top_k, num_ctx, seed: sampling options as Ollama names them
            (OpenAI-compatible hosts get them under their own names).
        keep_alive: how long the host keeps the model loaded after a reply
            (a duration such as ``"5m"`` or seconds).
        think: ``False`` off, ``True`` on, or a level (``"low"``, ``"medium"``, ``"high"``);
            None sends nothing (the model's default).
    """

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    num_ctx: int | None = None
    seed: int | None = None
    keep_alive: str | float | None = None
    think: bool | str | None = None

    def __post_init__(self) -> None:
        for name in ("temperature", "top_p"):
            object.__setattr__(self, name, _number(name, getattr(self, name)))
        for name in ("top_k", "num_ctx", "seed"):
            object.__setattr__(self, name, _number(name, getattr(self, name), integer=True))
        if self.temperature is not None and self.temperature < 0:
            raise InvalidInput("The temperature must not be negative.")
        if self.top_p is not None and not 0 <= self.top_p <= 1:
            raise InvalidInput("top_p must be between 0 and 1.")
        if self.top_k is not None and self.top_k < 0:
            raise InvalidInput("top_k must not be negative.")
        if self.num_ctx is not None and self.num_ctx <= 0:
            raise InvalidInput("The context length (num_ctx) must be a positive number.")
        ka = self.keep_alive
        if ka is not None and (isinstance(ka, bool) or not isinstance(ka, str | int | float)):
            raise InvalidInput("keep_alive must be a duration such as '5m' or seconds.")
        think = self.think
        if isinstance(think, str) and think not in THINK_LEVELS:
            raise InvalidInput(
                f"{think!r} is not a thinking level: use on, off, {', '.join(THINK_LEVELS)}."
            )
        if think is not None and not isinstance(think, bool | str):
            raise InvalidInput("think must be on, off or a level.")

    def sampling(self) -> dict[str, Any]:
        """The options a ChatRequest carries (only those that are set)."""
        out: dict[str, Any] = {}
        for name in ("temperature", "top_p", "top_k", "num_ctx", "seed"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in {
                "temperature": self.temperature,
                "top_p": self.top_p,
                "top_k": self.top_k,
                "num_ctx": self.num_ctx,
                "seed": self.seed,
                "keep_alive": self.keep_alive,
                "think": self.think,
            }.items()
            if v is not None
        }

    @classmethod
    def from_json(cls, data: object) -> ChatOptions:
        """Options from their JSON form; InvalidInput for anything else."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise InvalidInput("The options must be a JSON object.")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise InvalidInput(f"Unknown chat option: {', '.join(unknown)}.")
        return cls(**{str(k): v for k, v in data.items()})


def stats_to_json(stats: ChatStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {k: getattr(stats, k) for k in ChatStats.__dataclass_fields__}


def stats_from_json(data: object) -> ChatStats | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise InvalidInput("The reply figures (stats) must be a JSON object.")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in ChatStats.__dataclass_fields__:
            raise InvalidInput(f"Unknown reply figure {key!r}.")
        if key == "done_reason":
            if not isinstance(value, str):
                raise InvalidInput("done_reason must be text.")
        elif value is not None:
            integer = key in ("prompt_tokens", "output_tokens")
            value = _number(key, value, integer=integer)
        values[str(key)] = value
    return ChatStats(**values)


@dataclass(frozen=True)
class Conversation:
    """One conversation.

    Attributes:
        id: stable identifier.
        title: shown in the list ("" until the first message names it).
        host_id: the registry id of the host, or :data:`AUTO`.
        model: model name as the host knows it.
        system_prompt: sent first in every request ("" for none).
        options: sampling and run options.
        created_at, updated_at: UTC times; the list is sorted by ``updated_at``.
        branched_from: id of the message this conversation was branched from ("" if none).
        tools_enabled: the model is offered the MCP tools (when there are any).
    """

    id: str
    title: str
    host_id: str
    model: str
    system_prompt: str = ""
    options: ChatOptions = field(default_factory=ChatOptions)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    branched_from: str = ""
    tools_enabled: bool = True


# -- tool calls as stored --------------------------------------------------------------------


def _where(where: str, message: str) -> InvalidInput:
    return InvalidInput(f"{where}: {message}" if where else message)


def _json_object(where: str, what: str, value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _where(where, f"{what} must be a JSON object.")
    return {str(k): v for k, v in value.items()}


def _json_text(where: str, data: Mapping[str, Any], key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise _where(where, f"{key!r} must be text.")
    return value


def tool_calls_to_json(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    return [{"id": c.id, "name": c.name, "arguments": dict(c.arguments)} for c in calls]


def tool_calls_from_json(data: object, where: str = "") -> tuple[ToolCall, ...]:
    """Tool calls from their JSON form; InvalidInput for anything else."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise _where(where, "the tool calls must be a list.")
    calls = []
    for item in data:
        call = _json_object(where, "A tool call", item)
        calls.append(
            ToolCall(
                name=_json_text(where, call, "name"),
                arguments=_json_object(where, "A tool call's arguments", call.get("arguments", {})),
                id=_json_text(where, call, "id"),
            )
        )
    return tuple(calls)


def part_to_json(part: ContentPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        return {"type": "image", "mime_type": part.mime_type, "data": part.data}
    if isinstance(part, AudioPart):
        return {"type": "audio", "mime_type": part.mime_type, "data": part.data}
    return {"type": "resource", "uri": part.uri, "text": part.text, "mime_type": part.mime_type}


def part_from_json(data: object, where: str = "") -> ContentPart:
    item = _json_object(where, "A tool result's part", data)
    kind = item.get("type")
    if kind == "text":
        return TextPart(_json_text(where, item, "text"))
    if kind == "image":
        return ImagePart(_json_text(where, item, "mime_type"), _json_text(where, item, "data"))
    if kind == "audio":
        return AudioPart(_json_text(where, item, "mime_type"), _json_text(where, item, "data"))
    if kind == "resource":
        return ResourcePart(
            _json_text(where, item, "uri"),
            _json_text(where, item, "text"),
            _json_text(where, item, "mime_type"),
        )
    raise _where(where, f"unknown kind of tool result part {kind!r}.")


@dataclass(frozen=True)
class ToolRecord:
    """What a "tool" message records: one call the model asked for, and what came of it.

    The message's ``content`` is what the model was told (the result's text, or why there
    is none).

    Attributes:
        call_id: the call it answers (one of the asking assistant message's ``tool_calls``).
        name: the name the model called it by (as offered: sanitised, maybe prefixed).
        server, tool: the MCP server and the tool's own name there ("" both when the
            model named a tool that does not exist).
        arguments: what the model called it with.
        content, structured: the result's content parts (text, images, audio, resources)
            and structured content; empty when the call was not made or failed.
        is_error: the model was told the call failed (the tool's own error, a failure, a
            timeout, a refusal, no such tool, not run).
        decision: how the call was decided (None when nothing was decided: no such tool,
            not run, stopped before it was decided).
        duration_ms: how long the call took (None when it was not made).
    """

    call_id: str
    name: str
    server: str = ""
    tool: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    content: tuple[ContentPart, ...] = ()
    structured: Mapping[str, Any] | None = None
    is_error: bool = False
    decision: Decision | None = None
    duration_ms: float | None = None

    @property
    def result(self) -> ToolResult:
        return ToolResult(self.content, self.structured, self.is_error)

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "name": self.name,
            "server": self.server,
            "tool": self.tool,
            "arguments": dict(self.arguments),
            "content": [part_to_json(p) for p in self.content],
            "structured": dict(self.structured) if self.structured is not None else None,
            "is_error": self.is_error,
            "decision": self.decision.value if self.decision is not None else None,
            "duration_ms": self.duration_ms,
        }

    @classmethod
    def from_json(cls, data: object, where: str = "") -> ToolRecord:
        """A record from its JSON form; InvalidInput for anything else."""
        item = _json_object(where, "The tool call", data)
        parts = item.get("content", [])
        if not isinstance(parts, list):
            raise _where(where, "the tool result's content must be a list.")
        structured = item.get("structured")
        decision = item.get("decision")
        try:
            decided = None if decision is None else Decision(decision)
        except ValueError as exc:
            raise _where(where, f"unknown tool call decision {decision!r}.") from exc
        is_error = item.get("is_error", False)
        if not isinstance(is_error, bool):
            raise _where(where, "'is_error' must be true or false.")
        duration = _number("duration_ms", item.get("duration_ms"))
        return cls(
            call_id=_json_text(where, item, "call_id"),
            name=_json_text(where, item, "name"),
            server=_json_text(where, item, "server"),
            tool=_json_text(where, item, "tool"),
            arguments=_json_object(where, "The tool call's arguments", item.get("arguments", {})),
            content=tuple(part_from_json(p, where) for p in parts),
            structured=None
            if structured is None
            else _json_object(where, "The structured result", structured),
            is_error=is_error,
            decision=decided,
            duration_ms=None if duration is None else float(duration),
        )


@dataclass(frozen=True)
class StoredMessage:
    """One message as stored.

    Attributes:
        id: stable identifier. conversation_id: its conversation. seq: its place in it.
        role: system, user, assistant or tool.
        content, thinking: the text (and for replies, the model's reasoning).
        host_id, model, options: where and how a reply was made ("" / empty for the user's).
        stats: the reply's figures once it finished (None before, or if it did not).
        status: see :class:`MessageStatus`.
        error: why a reply failed, in plain words ("" otherwise).
        tool_calls: for a reply, the tool calls the model asked for (with the ids the
            "tool" messages after it answer).
        tool: for a "tool" message, the call and its result (None otherwise).
        note: a remark on a reply for the user ("" for none), e.g. that it stopped
            after the most rounds of tool calls a reply may have.
    """

    id: str
    conversation_id: str
    seq: int
    role: str
    content: str = ""
    thinking: str = ""
    host_id: str = ""
    model: str = ""
    options: ChatOptions = field(default_factory=ChatOptions)
    stats: ChatStats | None = None
    status: MessageStatus = MessageStatus.COMPLETE
    error: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool: ToolRecord | None = None
    note: str = ""


@dataclass(frozen=True)
class SearchHit:
    """One search result: a message (or a title when ``message_id`` is "")."""

    conversation_id: str
    title: str
    message_id: str
    snippet: str


# -- reply events --------------------------------------------------------------------------


class RetryKind(enum.StrEnum):
    RETRY = "retry"  # the same host again
    OTHER_HOST = "other_host"  # another host that has the model


@dataclass(frozen=True)
class RetryOption:
    """An action the UI may offer after a failed reply (pass ``host_id`` to ``retry``)."""

    kind: RetryKind
    host_id: str
    label: str


@dataclass(frozen=True)
class ReplyStarted:
    """The reply is being asked of ``host_id`` (sent once, before any text)."""

    conversation_id: str
    message_id: str
    host_id: str
    host_name: str
    model: str


@dataclass(frozen=True)
class HostSwitched:
    """With host "auto", the host failed before its first token; another one answers.

    ``text`` says so for the user: "llama3.2 on Box A failed: ...; answering on Box B".
    """

    failed_host_id: str
    host_id: str
    host_name: str
    model: str
    error: CorralError
    text: str


@dataclass(frozen=True)
class ReplyFinished:
    """The reply is complete and saved.

    ``message`` is the last reply message (after tool calls, the model's last answer;
    its ``note`` says when it ended at the limit of tool rounds); ``stats`` are that last
    round's figures (each reply message keeps its own round's).
    """

    message: StoredMessage
    stats: ChatStats


@dataclass(frozen=True)
class ReplyStopped:
    """The user stopped the reply; what had arrived is saved (status ``stopped``).

    ``message`` is the reply message being written, or, when the stop came while a tool
    call waited for approval or ran, the message that asked for it (the calls that had no
    result get a "tool" message saying they were stopped).
    """

    message: StoredMessage


@dataclass(frozen=True)
class ReplyFailed:
    """The reply failed; what had arrived is saved (status ``failed``).

    Attributes:
        message: the saved reply, with ``error`` set.
        error: the typed error.
        retry: the actions that apply (Retry; Retry on another host that has the model).
    """

    message: StoredMessage
    error: CorralError
    retry: tuple[RetryOption, ...]


@dataclass(frozen=True)
class ToolsDropped:
    """The model cannot use tools on this host; it answers without them (``text`` says so)."""

    host_id: str
    model: str
    text: str


@dataclass(frozen=True)
class ToolCallRequested:
    """The model asked for a tool call (one event per call, in the order asked).

    Attributes:
        conversation_id, message_id: the reply (assistant message) that asked.
        call_id: the call's id; the events that follow for it carry the same.
        name: the name the model called (as offered to it).
        server: the MCP server that has the tool ("" when there is no such tool).
        tool: the tool as the server describes it (for a tool that does not exist, a
            bare ToolInfo with ``name`` and no server).
        arguments: what the model wants to call it with.
        needs_approval: the user is asked now (the engine's Approver is awaited);
            otherwise a rule decides (or there is nothing to decide).
    """

    conversation_id: str
    message_id: str
    call_id: str
    name: str
    server: str
    tool: ToolInfo
    arguments: Mapping[str, Any]
    needs_approval: bool


@dataclass(frozen=True)
class ToolCallDecided:
    """Whether the call runs. ``asked``: the user answered (else a rule did, or no one
    could be asked and the call was declined). ``note``: a remark for the user ("" none),
    e.g. that "allow always" could not be saved."""

    call_id: str
    decision: Decision
    asked: bool
    note: str = ""


@dataclass(frozen=True)
class ToolCallFinished:
    """A call is over and its "tool" message saved.

    Attributes:
        call_id: the call.
        message_id: the "tool" message that records it.
        result: what the tool returned (None when it was not called or the call failed);
            a result with ``is_error`` is the tool's own failure.
        error: what the model was told instead of a result, in plain words ("" when the
            tool returned one without ``is_error``).
        duration_ms: how long the call took (None when it was not made).
    """

    call_id: str
    message_id: str
    result: ToolResult | None
    error: str
    duration_ms: float | None


@dataclass(frozen=True)
class ReplyContinued:
    """The tool results went back to the model, which answers again: what follows is
    saved as the new reply ``message_id`` (the ``round``-th after the first)."""

    conversation_id: str
    message_id: str
    round: int


ToolEvent = ToolCallRequested | ToolCallDecided | ToolCallFinished | ReplyContinued | ToolsDropped
ReplyEnd = ReplyFinished | ReplyStopped | ReplyFailed
ReplyEvent = (
    ReplyStarted
    | HostSwitched
    | ContentChunk
    | ThinkingChunk
    | ToolCallChunk
    | ToolEvent
    | ReplyEnd
)
