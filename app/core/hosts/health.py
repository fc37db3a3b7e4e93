"""Health of every host: a poll loop per host, states with reasons, round-trip history.

Each host gets one task that probes it, waits (interval with jitter; growing backoff
while the host is down) and probes again. A probe is a ``health()`` call (bounded by the
host's probe timeout) and, when that works, a cheap listing of loaded models: a host that
answers its version but fails other calls, or answers slowly, is *degraded*. State changes
are pushed as events at once; every probe's round-trip time is kept in a ring buffer for
the latency graphs. A host that comes back is picked up by its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from app.core.errors import CorralError
from app.core.events import Event
from app.core.hosts.base import HostConfig
from app.core.hosts.registry import HostRegistry
from app.core.metrics.ring import RingBuffer

log = logging.getLogger(__name__)


class HostState(enum.StrEnum):
    UNKNOWN = "unknown"
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


@dataclass(frozen=True)
class HostStatus:
    """What is known about one host's health right now.

    Attributes:
        host_id: the registry id.
        state: unknown (not probed yet), online, degraded or offline.
        reason: why it is degraded or offline, in plain words ("" when online).
        version: server version from the last good probe.
        rtt_ms: round-trip time of the last good probe.
        checked_at: when the last probe finished.
        failures: consecutive failed probes (drives the backoff).
    """

    host_id: str
    state: HostState = HostState.UNKNOWN
    reason: str = ""
    version: str | None = None
    rtt_ms: float | None = None
    checked_at: datetime | None = None
    failures: int = 0

    @property
    def reachable(self) -> bool:
        return self.state in (HostState.ONLINE, HostState.DEGRADED)


@dataclass(frozen=True)
class LoadedChange:
    """Models that a host loaded or unloaded since the previous probe (seen in its list of
    loaded models, whoever did it: Corral, a script, the host's own expiry)."""

    host_id: str
    loaded: tuple[str, ...]
    unloaded: tuple[str, ...]


@dataclass(frozen=True)
class HealthPolicy:
    """How hosts are polled.

    Attributes:
        interval_s: time between probes of a host that answers.
        jitter: each wait is multiplied by a random factor in [1 - jitter, 1 + jitter],
            so that many hosts are not probed in lock step.
        backoff_max_s: longest wait between probes of a host that is down (the wait
            doubles after each failure, from ``interval_s`` up to this).
        slow_ms: a round trip above this makes an answering host degraded.
        check_models: also list loaded models on each probe (a failure there: degraded).
        history: round-trip samples kept per host.
    """

    interval_s: float = 5.0
    jitter: float = 0.1
    backoff_max_s: float = 30.0
    slow_ms: float = 1000.0
    check_models: bool = True
    history: int = 900


class HealthMonitor:
    """Polls every host of a registry and reports its state.

    Attributes:
        policy: the polling policy (replace it with :meth:`set_policy`).
        changed: emitted with a host's new status when its state or reason changes.
        probed: emitted with a host's status after every probe.
        loaded_changed: emitted when a host's set of loaded models changed between probes.
    """

    def __init__(
        self,
        registry: HostRegistry,
        policy: HealthPolicy | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.policy = policy or HealthPolicy()
        self.changed: Event[HostStatus] = Event("health.changed")
        self.probed: Event[HostStatus] = Event("health.probed")
        self.loaded_changed: Event[LoadedChange] = Event("health.loaded_changed")
        self._loaded: dict[str, frozenset[str]] = {}
        self._rng = rng or random.Random()
        self._clock = clock
        self._status: dict[str, HostStatus] = {}
        self._history: dict[str, RingBuffer] = {}
        self._loops: dict[str, tuple[HostConfig, asyncio.Task[None]]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._running = False

    # -- reading ----------------------------------------------------------------------
    def status(self, host_id: str) -> HostStatus:
        return self._status.get(host_id) or HostStatus(host_id)

    def statuses(self) -> dict[str, HostStatus]:
        return dict(self._status)

    def rtt_history(self, host_id: str) -> RingBuffer:
        """Round-trip times of good probes: ``(monotonic seconds, milliseconds)``."""
        if host_id not in self._history:
            self._history[host_id] = RingBuffer(self.policy.history)
        return self._history[host_id]

    # -- running ----------------------------------------------------------------------
    def start(self) -> None:
        """Start a loop for every host (call with the event loop running)."""
        if self._running:
            return
        self._running = True
        self.registry.changed.connect(self._sync)
        self._sync(self.registry.hosts())

    def set_policy(self, policy: HealthPolicy) -> None:
        self.policy = policy
        for wake in self._wake.values():
            wake.set()

    def probe_soon(self, host_id: str) -> None:
        """Ask a host's loop to probe now instead of waiting out its interval."""
        wake = self._wake.get(host_id)
        if wake is not None:
            wake.set()

    async def aclose(self) -> None:
        self._running = False
        self.registry.changed.disconnect(self._sync)
        loops = [task for _, task in self._loops.values()]
        self._loops.clear()
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    def _sync(self, hosts: list[HostConfig]) -> None:
        if not self._running:
            return
        wanted = {c.id: c for c in hosts}
        for host_id in list(self._loops):
            config, task = self._loops[host_id]
            if wanted.get(host_id) != config:  # removed or edited: restart or drop it
                task.cancel()
                del self._loops[host_id]
                self._wake.pop(host_id, None)
                if host_id not in wanted:
                    self._status.pop(host_id, None)
                    self._history.pop(host_id, None)
                self._loaded.pop(host_id, None)
        for host_id, config in wanted.items():
            if host_id not in self._loops:
                if host_id in self._status:  # an edit: the old verdict no longer holds
                    self._status[host_id] = HostStatus(host_id)
                self._wake[host_id] = asyncio.Event()
                task = asyncio.get_running_loop().create_task(
                    self._loop(config), name=f"health {host_id}"
                )
                self._loops[host_id] = (config, task)

    async def _loop(self, config: HostConfig) -> None:
        wake = self._wake[config.id]
        # A host that announces its own changes (the built-in engine: a model loading,
        # stopped, crashed) is probed at once instead of at its next interval.
        announced = getattr(self.registry.host(config.id), "changed", None)

        def on_change(_what: object) -> None:
            wake.set()

        if isinstance(announced, Event):
            announced.connect(on_change)
        try:
            while True:
                wake.clear()
                try:
                    status = await self.probe(config)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug in a probe must not end the loop silently
                    log.exception("health probe of %s failed unexpectedly", config.name)
                    status = self.status(config.id)
                delay = self._delay(status)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await wake.wait()
        finally:
            if isinstance(announced, Event):
                announced.disconnect(on_change)

    def _delay(self, status: HostStatus) -> float:
        p = self.policy
        base = p.interval_s
        if status.state is HostState.OFFLINE and status.failures > 1:
            base = min(p.interval_s * 2 ** (status.failures - 1), max(p.backoff_max_s, base))
        return float(base * (1.0 + self._rng.uniform(-p.jitter, p.jitter)))

    async def probe(self, config: HostConfig) -> HostStatus:
        """Probe one host once, record and report the result."""
        host = self.registry.host(config.id)
        previous = self.status(config.id)
        health = await host.health()
        now = datetime.now(UTC)
        if not health.online:
            status = replace(
                previous,
                state=HostState.OFFLINE,
                reason=health.error or f"{config.name} did not answer.",
                checked_at=now,
                failures=previous.failures + 1,
            )
        else:
            rtt = health.rtt_ms
            if rtt is not None:
                self.rtt_history(config.id).append(self._clock(), rtt)
            reason = ""
            if rtt is not None and rtt > self.policy.slow_ms:
                reason = (
                    f"{config.name} answers slowly: {rtt:.0f} ms round trip "
                    f"(more than {self.policy.slow_ms:.0f} ms)."
                )
            elif self.policy.check_models:
                try:
                    running = await host.running_models()
                except CorralError as exc:
                    reason = f"{config.name} answers, but not every call works: {exc.message}"
                else:
                    self._note_loaded(config, frozenset(r.name for r in running))
            status = HostStatus(
                config.id,
                HostState.DEGRADED if reason else HostState.ONLINE,
                reason,
                health.version,
                rtt,
                now,
                0,
            )
        if self.registry_has(config):
            self._status[config.id] = status
            if (status.state, status.reason) != (previous.state, previous.reason):
                self.changed.emit(status)
            self.probed.emit(status)
        return status

    def _note_loaded(self, config: HostConfig, names: frozenset[str]) -> None:
        previous = self._loaded.get(config.id)
        self._loaded[config.id] = names
        if previous is None or previous == names or not self.registry_has(config):
            return  # the first look sets the baseline: nothing "happened" then
        self.loaded_changed.emit(
            LoadedChange(
                config.id, tuple(sorted(names - previous)), tuple(sorted(previous - names))
            )
        )

    def loaded(self, host_id: str) -> frozenset[str] | None:
        """The models the host had loaded at its last probe (None: not known yet)."""
        return self._loaded.get(host_id)

    def registry_has(self, config: HostConfig) -> bool:
        loop = self._loops.get(config.id)
        return loop is None or loop[0] == config
