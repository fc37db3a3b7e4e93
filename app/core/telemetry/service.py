"""Telemetry of every host: sampling loops, ring buffers, markers, and the VRAM check.

Which source a host gets:

- a host with an agent URL: :class:`AgentSource` (with the token kept in the keyring);
- else a host with an exporter URL: :class:`ExporterSource`;
- else a host on this machine (URL on 127.0.0.1, ``localhost`` or ``::1``): the one
  :class:`LocalSource` all such hosts share;
- else a host whose address matches an agent announced on the network (mDNS, see
  :meth:`TelemetryService.set_found_agents`): :class:`AgentSource`;
- else none, and :meth:`TelemetryService.source_state` says so.

Hosts that share a source share one loop: each sample is recorded for all of them. A loop
takes a sample (bounded by ``timeout_s``), records it, and waits out the interval; a
failing source gives the hosts a state with the reason and the loop goes on, waiting
longer after each failure (up to ``backoff_max_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from app.core.discovery.local import is_this_machine
from app.core.discovery.mdns import MdnsService
from app.core.errors import CorralError
from app.core.events import Event
from app.core.hosts.base import HostConfig, HostKind, RunningModel
from app.core.hosts.health import HealthMonitor, LoadedChange
from app.core.hosts.registry import HostRegistry
from app.core.metrics.ring import RingBuffer
from app.core.telemetry.sources import (
    AgentSource,
    ExporterSource,
    HistorySource,
    LocalSource,
    TelemetrySource,
)
from app.core.telemetry.store import TelemetryStore
from app.core.telemetry.types import GpuState, HostSample, Marker, ProcessSample

__all__ = [
    "NO_SOURCE_REASON",
    "SourceKind",
    "SourceSpec",
    "TelemetryService",
    "TelemetryStatus",
    "TelemetryStore",
    "VramMismatch",
    "default_source_factory",
]

log = logging.getLogger(__name__)

NO_SOURCE_REASON = "no telemetry: add a Corral agent or an exporter URL for this host"
VRAM_TOLERANCE = 0.10


class SourceKind(enum.StrEnum):
    NONE = "none"
    LOCAL = "local"
    AGENT = "agent"
    EXPORTER = "exporter"


@dataclass(frozen=True)
class SourceSpec:
    """Which source to read: its kind, URL(s) and token (never shown in repr)."""

    kind: SourceKind
    url: str = ""
    token: str = field(default="", repr=False)


@dataclass(frozen=True)
class TelemetryStatus:
    """Where a host's telemetry comes from and whether it works.

    Attributes:
        host_id: the registry id.
        source: none, local, agent or exporter.
        url: the agent's or exporter's URL ("" for this machine and for none).
        ok: the last sample worked.
        reason: why there are no samples ("" when ok; NO_SOURCE_REASON without a source).
        failures: consecutive failed samples.
        found: the agent was found on the network (mDNS), not configured.
    """

    host_id: str
    source: SourceKind
    url: str = ""
    ok: bool = False
    reason: str = ""
    failures: int = 0
    found: bool = False


@dataclass(frozen=True)
class VramMismatch:
    """A model host's own VRAM figure (Ollama's /api/ps ``size_vram``) next to what its
    server processes use on the GPUs according to NVML.

    Attributes:
        host_id: the registry id.
        models: the loaded models compared (one, or all of them when the host runs several
            and their processes cannot be told apart).
        reported_vram: bytes the host reports in VRAM for them.
        process_vram: bytes its processes use on the GPUs; None when unknown (no GPU
            readings, or the driver does not say per process).
        processes: the model-server processes counted.
        disagrees: the two differ by more than 10 % of the reported figure.
        sentence: for the user when they disagree or cannot be compared, else "".
    """

    host_id: str
    models: tuple[str, ...]
    reported_vram: int
    process_vram: int | None
    processes: tuple[ProcessSample, ...] = ()
    disagrees: bool = False
    sentence: str = ""


SourceFactory = Callable[[SourceSpec], TelemetrySource]


def default_source_factory(spec: SourceSpec) -> TelemetrySource:
    if spec.kind is SourceKind.AGENT:
        return AgentSource(spec.url, spec.token or None)
    if spec.kind is SourceKind.EXPORTER:
        return ExporterSource(spec.url, spec.token or None)
    if spec.kind is SourceKind.LOCAL:
        return LocalSource()
    raise ValueError(f"no source for {spec.kind}")


@dataclass
class _Loop:
    spec: SourceSpec
    hosts: set[str]
    found: bool
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def _host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


class TelemetryService:
    """Samples every host that has a source, keeps the series, and reports.

    Attributes:
        store: the ring buffers, latest samples and markers of every host.
        sampled: emitted with ``(host_id, sample)`` after each sample of a host.
        markers_changed: emitted with a host id when a marker was added to it.
        state_changed: emitted with a host's :class:`TelemetryStatus` when it changes.
    """

    def __init__(
        self,
        registry: HostRegistry,
        health: HealthMonitor | None = None,
        *,
        interval_s: float = 1.0,
        window_s: float = 900.0,
        timeout_s: float = 5.0,
        backoff_max_s: float = 30.0,
        source_factory: SourceFactory = default_source_factory,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.registry = registry
        self.health = health
        self.interval_s = float(interval_s)
        self.timeout_s = timeout_s
        self.backoff_max_s = backoff_max_s
        self.store = TelemetryStore(window_s=window_s, rate_hz=1.0 / self.interval_s)
        self.sampled: Event[tuple[str, HostSample]] = Event("telemetry.sampled")
        self.markers_changed: Event[str] = Event("telemetry.markers_changed")
        self.state_changed: Event[TelemetryStatus] = Event("telemetry.state_changed")
        self._factory = source_factory
        self._clock = clock
        self._loops: dict[SourceSpec, _Loop] = {}
        self._status: dict[str, TelemetryStatus] = {}
        self._found_agents: list[MdnsService] = []
        self._ending: set[asyncio.Task[None]] = set()
        self._running = False

    # -- reading ----------------------------------------------------------------------
    @property
    def window_s(self) -> float:
        return self.store.window_s

    def series(self, host_id: str, metric: str) -> RingBuffer:
        return self.store.series(host_id, metric)

    def metrics(self, host_id: str) -> list[str]:
        return self.store.metrics(host_id)

    def latest(self, host_id: str) -> HostSample | None:
        return self.store.latest(host_id)

    def markers(self, host_id: str) -> list[Marker]:
        return self.store.markers(host_id)

    def sampler_cost(self, host_id: str) -> RingBuffer:
        """What each sample of this host cost its sampler (ms): for the debug view."""
        return self.store.sampler_cost(host_id)

    def source_state(self, host_id: str) -> TelemetryStatus:
        status = self._status.get(host_id)
        if status is not None:
            return status
        spec, found = self._spec_for(self._config(host_id))
        if spec is None:
            return TelemetryStatus(host_id, SourceKind.NONE, reason=NO_SOURCE_REASON)
        return TelemetryStatus(host_id, spec.kind, self._shown_url(spec), found=found)

    def _config(self, host_id: str) -> HostConfig | None:
        for config in self.registry.hosts():
            if config.id == host_id:
                return config
        return None

    # -- markers ----------------------------------------------------------------------
    def add_marker(self, host_id: str, kind: str, text: str) -> Marker:
        marker = Marker(self._clock(), host_id, kind, text)
        self.store.add_marker(marker)
        self.markers_changed.emit(host_id)
        return marker

    def _on_loaded(self, change: LoadedChange) -> None:
        for name in change.unloaded:
            self.store.add_marker(
                Marker(self._clock(), change.host_id, "unload", f"{name} unloaded")
            )
        for name in change.loaded:
            self.store.add_marker(Marker(self._clock(), change.host_id, "load", f"{name} loaded"))
        if change.loaded or change.unloaded:
            self.markers_changed.emit(change.host_id)

    # -- the VRAM check -----------------------------------------------------------------
    def vram_check(self, host_id: str, running: Sequence[RunningModel]) -> list[VramMismatch]:
        """Compare the VRAM a host reports for its loaded models with what its server
        processes use on the GPUs (the latest sample's NVML figures).

        One entry per loaded model when the host runs one model, else one entry for all
        of them (Ollama runs a process per model, but which is which cannot be seen). An
        empty list when nothing is loaded.
        """
        if not running:
            return []
        sample = self.latest(host_id)
        config = self._config(host_id)
        kind = config.kind.value if config is not None else HostKind.OLLAMA.value
        processes: tuple[ProcessSample, ...] = ()
        if sample is not None:
            same_kind = tuple(p for p in sample.model_processes if p.kind == kind)
            processes = same_kind or sample.model_processes
        models = tuple(r.name for r in running)
        reported = sum(r.size_vram for r in running)
        label = models[0] if len(models) == 1 else f"{len(models)} loaded models"
        known = [p.vram for p in processes if p.vram is not None]
        if sample is None or sample.gpu_state is not GpuState.OK or not processes or not known:
            why = (
                "there are no GPU readings for this host"
                if sample is None or sample.gpu_state is not GpuState.OK
                else "no model-server process with a GPU memory figure was found"
            )
            return [
                VramMismatch(
                    host_id,
                    models,
                    reported,
                    None,
                    processes,
                    False,
                    f"{label}: the host reports {_size(reported)} in VRAM; what its "
                    f"processes use cannot be compared ({why}).",
                )
            ]
        used = sum(known)
        if reported == 0 and kind != HostKind.OLLAMA.value:
            # OpenAI-compatible servers do not say what is in VRAM: nothing to compare with.
            return [
                VramMismatch(
                    host_id,
                    models,
                    reported,
                    used,
                    processes,
                    False,
                    f"{label}: its processes use {_size(used)} on the GPUs; the host does not "
                    "report how much is in VRAM.",
                )
            ]
        disagrees = abs(used - reported) > VRAM_TOLERANCE * max(reported, 1)
        sentence = ""
        if disagrees:
            if reported > 0:
                diff = 100.0 * (used - reported) / reported
                how = f"{abs(diff):.0f} % {'more' if diff > 0 else 'less'}"
            else:
                how = "although none is reported"
            sentence = (
                f"{label}: the host reports {_size(reported)} in VRAM, but its processes use "
                f"{_size(used)} on the GPUs ({how})."
            )
        return [VramMismatch(host_id, models, reported, used, processes, disagrees, sentence)]

    # -- settings -----------------------------------------------------------------------
    def set_interval(self, interval_s: float) -> None:
        """Sample every ``interval_s`` seconds (the window keeps its length in time)."""
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = float(interval_s)
        self.store.resize(rate_hz=1.0 / self.interval_s)
        for loop in self._loops.values():
            loop.wake.set()

    def set_window(self, window_s: float) -> None:
        """Keep ``window_s`` seconds of history (buffers keep their newest points)."""
        self.store.resize(window_s=window_s)

    def set_found_agents(self, agents: Iterable[MdnsService]) -> None:
        """Agents announced on the network (DiscoveryService.agents_changed): a host
        without a configured source whose address matches one is read from it."""
        self._found_agents = [a for a in agents if a.is_agent]
        if self._running:
            self._sync(self.registry.hosts())

    # -- running ------------------------------------------------------------------------
    def start(self) -> None:
        """Start a loop for every source (call with the event loop running)."""
        if self._running:
            return
        self._running = True
        self.registry.changed.connect(self._sync)
        if self.health is not None:
            self.health.loaded_changed.connect(self._on_loaded)
        self._sync(self.registry.hosts())

    async def aclose(self) -> None:
        self._running = False
        self.registry.changed.disconnect(self._sync)
        if self.health is not None:
            self.health.loaded_changed.disconnect(self._on_loaded)
        loops = list(self._loops.values())
        self._loops.clear()
        tasks = [loop.task for loop in loops if loop.task is not None]
        tasks.extend(self._ending)  # loops of hosts removed or edited, still closing
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spec_for(self, config: HostConfig | None) -> tuple[SourceSpec | None, bool]:
        """The source of a host, and whether it is an agent found on the network."""
        if config is None:
            return None, False
        token = self._token(config.id) if (config.agent_url or config.exporter_url) else ""
        if config.agent_url:
            return SourceSpec(SourceKind.AGENT, config.agent_url, token), False
        if config.exporter_url:
            return SourceSpec(SourceKind.EXPORTER, config.exporter_url, token), False
        if is_this_machine(config.url):
            return SourceSpec(SourceKind.LOCAL), False
        host = _host_of(config.url)
        for agent in self._found_agents:
            names = {a.lower() for a in agent.addresses}
            names.add(agent.server.lower().removesuffix("."))
            if host and host in names:
                return SourceSpec(SourceKind.AGENT, agent.url, self._token(config.id)), True
        return None, False

    def _token(self, host_id: str) -> str:
        return self.registry.agent_token(host_id) or ""

    @staticmethod
    def _shown_url(spec: SourceSpec) -> str:
        return spec.url if spec.kind in (SourceKind.AGENT, SourceKind.EXPORTER) else ""

    def _sync(self, hosts: list[HostConfig]) -> None:
        if not self._running:
            return
        wanted: dict[SourceSpec, tuple[set[str], bool]] = {}
        seen: set[str] = set()
        for config in hosts:
            seen.add(config.id)
            spec, found = self._spec_for(config)
            if spec is None:
                self._set_status(
                    TelemetryStatus(config.id, SourceKind.NONE, reason=NO_SOURCE_REASON)
                )
                continue
            ids, _ = wanted.get(spec, (set(), found))
            ids.add(config.id)
            wanted[spec] = (ids, found)
        for spec in list(self._loops):
            if spec not in wanted:
                gone = self._loops.pop(spec)
                if gone.task is not None:
                    gone.task.cancel()
                    self._ending.add(gone.task)
                    gone.task.add_done_callback(self._ending.discard)
        for spec, (ids, found) in wanted.items():
            loop = self._loops.get(spec)
            if loop is None:
                loop = self._loops[spec] = _Loop(spec, set(ids), found)
                loop.task = asyncio.get_running_loop().create_task(
                    self._run(loop), name=f"telemetry {spec.kind.value} {spec.url}"
                )
            loop.hosts = set(ids)
            url = self._shown_url(spec)
            for host_id in ids:
                current = self._status.get(host_id)
                if current is None or (current.source, current.url) != (spec.kind, url):
                    self._set_status(TelemetryStatus(host_id, spec.kind, url, found=found))
        for host_id in [h for h in self._status if h not in seen]:
            del self._status[host_id]
            self.store.forget(host_id)

    def _set_status(self, status: TelemetryStatus) -> None:
        """Keep a host's status; report it when more than the failure count changed."""
        previous = self._status.get(status.host_id)
        self._status[status.host_id] = status
        if previous is None or replace(previous, failures=0) != replace(status, failures=0):
            self.state_changed.emit(status)

    async def _run(self, loop: _Loop) -> None:
        source = self._factory(loop.spec)
        failures = 0
        what = {
            SourceKind.LOCAL: "This machine's sampler",
            SourceKind.AGENT: f"The Corral agent at {loop.spec.url}",
            SourceKind.EXPORTER: f"The exporter at {loop.spec.url}",
        }.get(loop.spec.kind, "The source")
        try:
            while True:
                loop.wake.clear()
                started = time.monotonic()
                reason = ""
                try:
                    async with asyncio.timeout(self.timeout_s):
                        sample = await source.sample()
                except CorralError as exc:
                    reason = exc.message
                except TimeoutError:
                    reason = f"{what} did not give a sample within {self.timeout_s:g} s."
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a bug in a source must not end the loop
                    log.exception("telemetry source %s failed unexpectedly", loop.spec.kind)
                    reason = f"{what} failed unexpectedly: {exc!r}."
                if reason:
                    failures += 1
                    self._record_failure(loop, reason, failures)
                else:
                    failures = 0
                    self._record(loop, source, sample)
                delay = self.interval_s - (time.monotonic() - started)
                if failures > 1:
                    delay = min(self.interval_s * 2 ** (failures - 1), self.backoff_max_s)
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await loop.wake.wait()
                else:
                    await asyncio.sleep(0)
        finally:
            try:
                await asyncio.shield(source.aclose())
            except Exception:
                log.exception("closing a telemetry source failed")

    def _record(self, loop: _Loop, source: TelemetrySource, sample: HostSample) -> None:
        history = source.take_history() if isinstance(source, HistorySource) else None
        for host_id in sorted(loop.hosts):
            if history:
                self.store.backfill(host_id, history)
            self.store.record(host_id, sample)
            self._set_status(
                TelemetryStatus(
                    host_id, loop.spec.kind, self._shown_url(loop.spec), True, found=loop.found
                )
            )
            self.sampled.emit((host_id, sample))

    def _record_failure(self, loop: _Loop, reason: str, failures: int) -> None:
        if failures == 1:
            log.info("telemetry: %s", reason)
        for host_id in sorted(loop.hosts):
            self._set_status(
                TelemetryStatus(
                    host_id,
                    loop.spec.kind,
                    self._shown_url(loop.spec),
                    False,
                    reason,
                    failures,
                    loop.found,
                )
            )
