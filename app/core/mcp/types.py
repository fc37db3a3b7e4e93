"""The values of the MCP feature, shared by the config, the manager, the chat and the UI.

Every value is a frozen dataclass with no SDK object inside; only
:mod:`app.core.mcp.session` imports ``mcp``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from app.core.errors import CorralError


def _frozen(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


class Transport(enum.StrEnum):
    STDIO = "stdio"
    HTTP = "http"  # streamable HTTP
    SSE = "sse"


@dataclass(frozen=True)
class ServerConfig:
    """One MCP server as configured (secrets already resolved when handed to the manager).

    Attributes:
        name: unique name (the key of ``mcpServers``).
        transport: stdio, streamable HTTP or SSE.
        command, args, env, cwd: how a stdio server is started; ``env`` holds only the
            configured variables (the manager adds an allow-listed few of its own).
        url, headers: where an HTTP/SSE server is, and what to send with every request.
        enabled: False keeps it configured but not started.
        auto_approve: tool names that run without asking.
        secret_env, secret_headers: names of env variables / headers whose values live in
            the OS keyring (the config file holds a reference, never the value).
        timeout_s: per-call timeout for this server (None: the manager's default).
    """

    name: str
    transport: Transport = Transport.STDIO
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    cwd: str = ""
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    enabled: bool = True
    auto_approve: tuple[str, ...] = ()
    secret_env: tuple[str, ...] = ()
    secret_headers: tuple[str, ...] = ()
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", _frozen(self.env))
        object.__setattr__(self, "headers", _frozen(self.headers))
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "auto_approve", tuple(self.auto_approve))
        object.__setattr__(self, "secret_env", tuple(self.secret_env))
        object.__setattr__(self, "secret_headers", tuple(self.secret_headers))


class ServerState(enum.StrEnum):
    """Where one server stands.

    ``stopped``: not running (disabled, or not started yet); ``starting``: connecting and
    initializing; ``ready``: tools listed, calls go through; ``degraded``: up, but recent
    calls failed or timed out; ``failed``: it crashed or could not start (the reason and
    the stderr tail say why); it is restarted with backoff until the circuit breaker opens.
    """

    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    DEGRADED = "degraded"
    FAILED = "failed"


@dataclass(frozen=True)
class ToolInfo:
    """One tool of one server, as the server describes it (annotations are hints only).

    ``read_only``, ``destructive``, ``idempotent``, ``open_world`` are None when the server
    says nothing (the spec's defaults then apply: not read-only, destructive, not
    idempotent, open world).
    """

    server: str
    name: str
    title: str = ""
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=dict)
    output_schema: Mapping[str, Any] | None = None
    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None
    open_world: bool | None = None

    @property
    def display_name(self) -> str:
        return self.title or self.name


@dataclass(frozen=True)
class ServerStatus:
    """What is known about one server right now.

    Attributes:
        name: the server's name. state: see :class:`ServerState`.
        reason: why it is degraded, failed or stopped, in plain words ("" when ready).
        stderr_tail: the last lines (at most 200) the server wrote to stderr (stdio only).
        tools: its tools (empty unless ready or degraded).
        restarts: how many times it was restarted after a crash.
        breaker_open: True when it crashed too often and is no longer restarted by itself.
        server_version: the name/version the server gave ("" if none).
    """

    name: str
    state: ServerState = ServerState.STOPPED
    reason: str = ""
    stderr_tail: tuple[str, ...] = ()
    tools: tuple[ToolInfo, ...] = ()
    restarts: int = 0
    breaker_open: bool = False
    server_version: str = ""


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    mime_type: str
    data: str  # base64, as it came


@dataclass(frozen=True)
class AudioPart:
    mime_type: str
    data: str  # base64


@dataclass(frozen=True)
class ResourcePart:
    uri: str
    text: str = ""  # the embedded text, if any
    mime_type: str = ""


ContentPart = TextPart | ImagePart | AudioPart | ResourcePart


@dataclass(frozen=True)
class ToolResult:
    """What a tool call returned (an ``is_error`` result is the tool's own failure,
    which the model is told about)."""

    content: tuple[ContentPart, ...] = ()
    structured: Mapping[str, Any] | None = None
    is_error: bool = False

    def text_for_model(self) -> str:
        """The result as text for the model: text parts, resource texts, the structured
        content as JSON if there is no text, and a note for each image or audio part."""
        import json

        out: list[str] = []
        for part in self.content:
            if isinstance(part, TextPart):
                out.append(part.text)
            elif isinstance(part, ResourcePart):
                out.append(part.text or f"[resource {part.uri}]")
            elif isinstance(part, ImagePart):
                out.append(f"[image {part.mime_type}]")
            elif isinstance(part, AudioPart):
                out.append(f"[audio {part.mime_type}]")
        if not any(isinstance(p, TextPart) for p in self.content) and self.structured:
            out.append(json.dumps(dict(self.structured), ensure_ascii=False))
        return "\n".join(out)


class McpError(CorralError):
    """Something about an MCP server went wrong."""


class McpConfigError(McpError):
    """A config file, snippet or drop could not be used (the message says why)."""


class ServerUnavailable(McpError):
    """The server is not running (stopped, failed, starting); the call was not made."""


class ToolTimeout(McpError):
    """The tool did not answer in time; the server was told to cancel it."""


class ToolCallFailed(McpError):
    """The call failed at the protocol level (unknown tool, bad arguments, server error)."""
