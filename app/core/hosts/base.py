"""The host abstraction: what every kind of model host offers, and the values it returns.

Only frozen dataclasses cross the core/UI boundary; no SDK object leaves a host module.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable


class HostKind(enum.StrEnum):
    """What kind of server a host is. Detected by probing, never asked of the user."""

    OLLAMA = "ollama"
    LLAMACPP = "llama.cpp"  # llama.cpp's llama-server (and servers built on it)
    LMSTUDIO = "lmstudio"
    VLLM = "vllm"
    OPENAI = "openai"  # any other OpenAI-compatible /v1 server

    @property
    def label(self) -> str:
        return {
            HostKind.OLLAMA: "Ollama",
            HostKind.LLAMACPP: "llama.cpp",
            HostKind.LMSTUDIO: "LM Studio",
            HostKind.VLLM: "vLLM",
            HostKind.OPENAI: "OpenAI-compatible",
        }[self]

    @property
    def is_openai_compatible(self) -> bool:
        return self is not HostKind.OLLAMA


@dataclass(frozen=True)
class HostCapabilities:
    """Which model actions a host supports, and why not where it does not.

    ``reasons`` maps an action name ("pull", "load", "unload", "delete", "copy") to a
    sentence for a tooltip, for every action that is not supported.
    """

    pull: bool = True
    load: bool = True
    unload: bool = True
    delete: bool = True
    copy: bool = True
    reasons: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def why_not(self, action: str) -> str | None:
        return None if getattr(self, action, False) else self.reasons.get(action, "Not supported.")


OLLAMA_CAPABILITIES = HostCapabilities()


@dataclass(frozen=True)
class Timeouts:
    """Deadlines in seconds.

    Attributes:
        connect: to open a TCP connection (short: a LAN host is there or it is not).
        request: total time for an ordinary request (list, ps, show, delete, copy, version).
        load: total time for loading a model into memory (big models on slow disks).
        stream_idle: longest silence between two lines of a stream before it is declared dead.
        probe: total time for a health probe (short: a probe that waits long is a verdict).
    """

    connect: float = 3.0
    request: float = 30.0
    load: float = 300.0
    stream_idle: float = 300.0
    probe: float = 5.0


@dataclass(frozen=True)
class HostConfig:
    """How to reach one host, as the user (or the environment) configured it.

    Attributes:
        id: stable identifier used in settings and the UI.
        name: display name.
        url: canonical base URL (``http://127.0.0.1:11434``).
        kind: host type.
        headers: extra HTTP headers (e.g. ``Authorization`` for a reverse proxy).
        source: ``default`` (this machine), ``env`` (OLLAMA_HOST) or ``user``.
        agent_url: the Corral host agent giving this host's hardware figures ("" if none);
            its token is kept in the keyring (``HostRegistry.agent_token``).
        exporter_url: a Prometheus exporter (node_exporter, dcgm-exporter,
            nvitop-exporter) to read the hardware figures from instead; several may be
            listed, separated by spaces ("" if none).
    """

    id: str
    name: str
    url: str
    kind: HostKind = HostKind.OLLAMA
    headers: tuple[tuple[str, str], ...] = ()
    source: str = "user"
    agent_url: str = ""
    exporter_url: str = ""

    def header_dict(self) -> dict[str, str]:
        return dict(self.headers)


@dataclass(frozen=True)
class HostHealth:
    """The result of one health probe.

    Attributes:
        online: the host answered its version route.
        version: server version when online.
        rtt_ms: measured round-trip time of the probe, in milliseconds.
        error: plain-words reason when offline.
        checked_at: when the probe finished (UTC).
    """

    online: bool
    checked_at: datetime
    version: str | None = None
    rtt_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """One installed model (from the host's model list)."""

    name: str
    size: int
    digest: str = ""
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""
    format: str = ""
    modified_at: datetime | None = None


@dataclass(frozen=True)
class RunningModel:
    """One loaded model (Ollama's /api/ps).

    ``size_vram`` is the part in GPU memory; the rest (``size - size_vram``) is in RAM.
    """

    name: str
    size: int
    size_vram: int
    context_length: int | None = None
    expires_at: datetime | None = None
    digest: str = ""

    @property
    def vram_fraction(self) -> float:
        return self.size_vram / self.size if self.size > 0 else 0.0

    @property
    def ram_bytes(self) -> int:
        return max(0, self.size - self.size_vram)

    def expires_in(self, now: datetime) -> float | None:
        """Seconds until the host unloads it; None if unknown."""
        if self.expires_at is None:
            return None
        return (self.expires_at - now).total_seconds()


@dataclass(frozen=True)
class ModelDetail:
    """Everything the host tells about one model (Ollama's /api/show)."""

    name: str
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""
    format: str = ""
    parameters: str = ""
    template: str = ""
    license: str = ""
    modelfile: str = ""
    capabilities: tuple[str, ...] = ()
    model_info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    modified_at: datetime | None = None
    #: sentences the Details show above everything else ("This model has no chat
    #: template; Corral uses the Gemma 3 template ...").
    notes: tuple[str, ...] = ()

    @property
    def context_length(self) -> int | None:
        for key, value in self.model_info.items():
            if key.endswith(".context_length") and isinstance(value, int):
                return value
        return None


@dataclass(frozen=True)
class LayerProgress:
    digest: str
    total: int
    completed: int


@dataclass(frozen=True)
class PullProgress:
    """A snapshot of a pull in progress.

    Attributes:
        status: the host's last status line ("pulling manifest", "pulling 4e7ab...", "success").
        layers: per-layer bytes, in the order the host announced them.
        completed, total: bytes over all layers known so far.
        fraction: completed / total in [0, 1], or None before any size is known.
        bytes_per_s: recent download speed, or None before it can be measured.
        eta_s: estimated seconds to finish, or None when unknown.
        done: the host reported success.
    """

    model: str
    status: str
    layers: tuple[LayerProgress, ...] = ()
    completed: int = 0
    total: int = 0
    fraction: float | None = None
    bytes_per_s: float | None = None
    eta_s: float | None = None
    done: bool = False


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model asked for. ``arguments`` is already parsed JSON."""

    name: str
    arguments: Mapping[str, Any]
    id: str = ""


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation, in a host-neutral shape."""

    role: str  # system | user | assistant | tool
    content: str = ""
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_name: str = ""  # for role "tool": which tool produced it
    tool_call_id: str = ""  # for role "tool": the call it answers (OpenAI-compatible hosts)


@dataclass(frozen=True)
class ChatRequest:
    """What to send for one reply.

    ``tools`` are JSON-schema function definitions in the common
    ``{"type": "function", "function": {...}}`` shape; ``options`` are sampling options
    (temperature, top_p, top_k, num_ctx, seed, num_predict) mapped per host type.
    """

    model: str
    messages: tuple[ChatMessage, ...]
    tools: tuple[Mapping[str, Any], ...] = ()
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    think: bool | str | None = None
    keep_alive: str | float | None = None


@dataclass(frozen=True)
class ChatStats:
    """Figures of one finished reply. Host-reported where the host gives them."""

    done_reason: str = ""
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    time_to_first_token_ms: float | None = None  # wall clock, measured by Corral
    total_ms: float | None = None  # wall clock, measured by Corral
    tokens_per_s: float | None = None  # host-reported decode speed where given
    prompt_tokens_per_s: float | None = None
    load_ms: float | None = None


@dataclass(frozen=True)
class ContentChunk:
    text: str


@dataclass(frozen=True)
class ThinkingChunk:
    text: str


@dataclass(frozen=True)
class ToolCallChunk:
    call: ToolCall


@dataclass(frozen=True)
class FinalChunk:
    stats: ChatStats


ChatChunk = ContentChunk | ThinkingChunk | ToolCallChunk | FinalChunk


@runtime_checkable
class Host(Protocol):
    """What every model host offers. Every method raises only CorralError subclasses.

    Attributes:
        config: how the host is reached.
        in_flight: number of operations (requests, pulls) running on it right now.
    """

    config: HostConfig
    in_flight: int

    @property
    def capabilities(self) -> HostCapabilities:
        """What this host supports (may change after a probe, e.g. llama.cpp router mode)."""
        ...

    async def health(self) -> HostHealth:
        """Probe the host; never raises for a host that is down (returns online=False)."""
        ...

    async def version(self) -> str: ...

    async def list_models(self) -> list[ModelInfo]: ...

    async def running_models(self) -> list[RunningModel]: ...

    async def show(self, model: str) -> ModelDetail: ...

    def pull(self, model: str) -> AsyncIterator[PullProgress]:
        """Download a model; iterate for progress; cancel the consuming task to stop."""
        ...

    async def load(self, model: str, keep_alive: str | float | None = None) -> None: ...

    async def unload(self, model: str) -> None: ...

    async def delete(self, model: str) -> None: ...

    async def copy(self, source: str, destination: str) -> None: ...

    def chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream one reply; the last chunk is a FinalChunk. Cancel to stop."""
        ...

    async def aclose(self) -> None: ...
