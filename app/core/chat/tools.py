"""The chat side of MCP tools: what the model is offered, and who may run what.

- :class:`ToolProvider` is what the engine needs of the MCP manager: the tools of the
  servers that are up, and a way to call one.
- :class:`ToolCatalog` turns those tools into the function definitions a request carries
  (each server's input schema passed whole: ``anyOf``, nested objects and defaults kept)
  and maps the names the model uses back to ``(server, tool)``. A name is sanitised to
  what hosts accept (``^[A-Za-z0-9_-]{1,64}$``); only names that two servers share are
  prefixed with their server, ``server__tool``.
- :class:`ApprovalRules` says whether a call may run without asking: the tools allowed
  always (kept by an :class:`AllowList`, which the MCP config store satisfies with its
  servers' ``auto_approve`` lists), and the grants made for one conversation (kept in
  memory, forgotten when the conversation is deleted).
- :class:`Approver` is the prompt the UI shows for any other call.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from app.core.mcp.types import ServerConfig, ToolInfo, ToolResult

#: What hosts accept as a function name (OpenAI's rule; Ollama takes any text).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NAME_LENGTH = 64
SEPARATOR = "__"


class ToolProvider(Protocol):
    """What the engine needs of the MCP manager.

    ``call_tool`` raises ServerUnavailable, ToolTimeout or ToolCallFailed (all McpError);
    a tool's own failure is a result with ``is_error`` set.
    """

    def tools(self) -> list[ToolInfo]: ...

    async def call_tool(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        timeout_s: float | None = None,
    ) -> ToolResult: ...


class Decision(enum.StrEnum):
    """The user's answer to a tool call (or the rule that answered for them)."""

    ALLOW_ONCE = "allow_once"
    ALLOW_CONVERSATION = "allow_conversation"
    ALLOW_ALWAYS = "allow_always"
    DENY = "deny"

    @property
    def allows(self) -> bool:
        return self is not Decision.DENY


@dataclass(frozen=True)
class ApprovalRequest:
    """A call the user is asked about.

    Attributes:
        conversation_id: the conversation the reply belongs to.
        call_id: the call's id (the same as the ``ToolCallRequested`` event's).
        server: the MCP server that has the tool.
        tool: the tool as the server describes it (``read_only``, ``destructive``, ... are
            the server's hints, worth showing but not to be trusted).
        arguments: what the model wants to call it with.
    """

    conversation_id: str
    call_id: str
    server: str
    tool: ToolInfo
    arguments: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


class Approver(Protocol):
    """Asks the user about a tool call (the UI implements it with a prompt).

    ``approve`` may take as long as the user does; when the reply is stopped meanwhile it
    is cancelled (the prompt should then close).
    """

    async def approve(self, request: ApprovalRequest) -> Decision: ...


class AllowList(Protocol):
    """The tools that run without asking, per server, kept across runs.

    The MCP config store satisfies it: a server's ``auto_approve`` list is its set. The
    methods may raise a CorralError when the list cannot be saved.
    """

    def always_allowed(self, server: str) -> set[str]: ...

    def allow_always(self, server: str, tool: str) -> None: ...

    def revoke(self, server: str, tool: str) -> None: ...


class MemoryAllowList:
    """An :class:`AllowList` kept in memory (for tests, or when nothing is configured)."""

    def __init__(self, allowed: Mapping[str, Iterable[str]] | None = None) -> None:
        self._allowed: dict[str, set[str]] = {k: set(v) for k, v in (allowed or {}).items()}

    @classmethod
    def from_servers(cls, servers: Iterable[ServerConfig]) -> MemoryAllowList:
        """Seeded with each server's ``auto_approve`` list."""
        return cls({s.name: s.auto_approve for s in servers})

    def always_allowed(self, server: str) -> set[str]:
        return set(self._allowed.get(server, ()))

    def allow_always(self, server: str, tool: str) -> None:
        self._allowed.setdefault(server, set()).add(tool)

    def revoke(self, server: str, tool: str) -> None:
        self._allowed.get(server, set()).discard(tool)


class ApprovalRules:
    """Whether a tool call may run without asking the user.

    A call runs without asking when its tool is allowed always (the :class:`AllowList`,
    ``auto_approve`` included) or was allowed for the rest of its conversation. The
    conversation grants live in memory only; :meth:`forget` drops a conversation's (the
    engine calls it when the conversation is deleted).

    Attributes:
        always: the persisted list of tools allowed always.
    """

    def __init__(self, always: AllowList | None = None) -> None:
        self.always: AllowList = always if always is not None else MemoryAllowList()
        self._granted: dict[str, set[tuple[str, str]]] = {}

    def allowed(self, conversation_id: str, server: str, tool: str) -> Decision | None:
        """The rule that lets the call run (ALLOW_ALWAYS or ALLOW_CONVERSATION), or None
        when the user must be asked."""
        if tool in self.always.always_allowed(server):
            return Decision.ALLOW_ALWAYS
        if (server, tool) in self._granted.get(conversation_id, ()):
            return Decision.ALLOW_CONVERSATION
        return None

    def apply(self, conversation_id: str, server: str, tool: str, decision: Decision) -> None:
        """Remember what the user decided (once and deny leave nothing behind)."""
        if decision is Decision.ALLOW_CONVERSATION:
            self.grant(conversation_id, server, tool)
        elif decision is Decision.ALLOW_ALWAYS:
            self.allow_always(server, tool)

    def grant(self, conversation_id: str, server: str, tool: str) -> None:
        """Let the tool run without asking for the rest of the conversation."""
        self._granted.setdefault(conversation_id, set()).add((server, tool))

    def withdraw(self, conversation_id: str, server: str, tool: str) -> None:
        """Ask again before the tool runs in this conversation."""
        self._granted.get(conversation_id, set()).discard((server, tool))

    def granted(self, conversation_id: str) -> frozenset[tuple[str, str]]:
        """The ``(server, tool)`` pairs allowed for the rest of the conversation."""
        return frozenset(self._granted.get(conversation_id, ()))

    def allow_always(self, server: str, tool: str) -> None:
        """Let the tool run without asking, in every conversation, from now on (saved)."""
        self.always.allow_always(server, tool)

    def revoke(self, server: str, tool: str) -> None:
        """Ask again before the tool runs (an ``allow always`` undone, saved); the grants
        of single conversations are withdrawn too."""
        self.always.revoke(server, tool)
        for granted in self._granted.values():
            granted.discard((server, tool))

    def forget(self, conversation_id: str) -> None:
        """Drop the conversation's grants (it was deleted)."""
        self._granted.pop(conversation_id, None)


# -- what the model is offered -------------------------------------------------------------


def sanitize(name: str) -> str:
    """``name`` as hosts accept it: letters, digits, ``_`` and ``-``, at most 64 of them."""
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", name.strip())[:NAME_LENGTH]
    return clean or "tool"


def plain(value: object) -> Any:
    """A JSON value made of plain dicts and lists (mappings and tuples copied whole)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def function_spec(name: str, tool: ToolInfo) -> dict[str, Any]:
    """The function definition a request carries for ``tool``, offered as ``name``."""
    parameters = plain(tool.input_schema) if tool.input_schema else {}
    if not parameters:
        parameters = {"type": "object", "properties": {}}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": tool.description or tool.title,
            "parameters": parameters,
        },
    }


class ToolCatalog:
    """The tools offered for one reply: their names for the model, and the way back.

    Each tool is offered under its own name, sanitised; a name that tools of two or more
    servers share is prefixed with each one's server (``server__tool``); a name still
    taken gets ``_2``, ``_3``, ... A tool listed twice by the same server counts once.
    """

    def __init__(self, tools: Iterable[ToolInfo]) -> None:
        unique: dict[tuple[str, str], ToolInfo] = {}
        for tool in tools:
            unique.setdefault((tool.server, tool.name), tool)
        listed = list(unique.values())
        servers_of: dict[str, set[str]] = {}
        for tool in listed:
            servers_of.setdefault(sanitize(tool.name), set()).add(tool.server)
        self._by_name: dict[str, ToolInfo] = {}
        self._names: dict[tuple[str, str], str] = {}
        for tool in listed:
            base = sanitize(tool.name)
            if len(servers_of[base]) > 1:
                base = sanitize(sanitize(tool.server) + SEPARATOR + tool.name)
            name = base
            number = 1
            while name in self._by_name:
                number += 1
                suffix = f"_{number}"
                name = base[: NAME_LENGTH - len(suffix)] + suffix
            self._by_name[name] = tool
            self._names[(tool.server, tool.name)] = name
        self.specs: tuple[dict[str, Any], ...] = tuple(
            function_spec(name, tool) for name, tool in self._by_name.items()
        )

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> tuple[str, ...]:
        """The names the model is offered, in the provider's order."""
        return tuple(self._by_name)

    def resolve(self, name: str) -> ToolInfo | None:
        """The tool offered as ``name`` (None: the model named a tool it was not offered)."""
        return self._by_name.get(name)

    def name_for(self, server: str, tool: str) -> str | None:
        """The name ``tool`` of ``server`` is offered as (None if it is not)."""
        return self._names.get((server, tool))

    def tools(self) -> Sequence[ToolInfo]:
        return tuple(self._by_name.values())
