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
    OLLAMA = "ollama"


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
    """

    id: str
    name: str
    url: str
    kind: HostKind = HostKind.OLLAMA
    headers: tuple[tuple[str, str], ...] = ()
    source: str = "user"

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


@runtime_checkable
class Host(Protocol):
    """What every model host offers. Every method raises only CorralError subclasses.

    Attributes:
        config: how the host is reached.
        in_flight: number of operations (requests, pulls) running on it right now.
    """

    config: HostConfig
    in_flight: int

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

    async def aclose(self) -> None: ...
