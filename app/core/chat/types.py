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

from app.core.errors import CorralError, InvalidInput
from app.core.hosts.base import ChatStats, ContentChunk, ThinkingChunk, ToolCallChunk

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
    """The reply is complete and saved."""

    message: StoredMessage
    stats: ChatStats


@dataclass(frozen=True)
class ReplyStopped:
    """The user stopped the reply; what had arrived is saved (status ``stopped``)."""

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


ReplyEnd = ReplyFinished | ReplyStopped | ReplyFailed
ReplyEvent = ReplyStarted | HostSwitched | ContentChunk | ThinkingChunk | ToolCallChunk | ReplyEnd
