"""A telemetry service for widget tests: samples are pushed by the test, not sampled.

It has the surface of :class:`app.core.telemetry.service.TelemetryService` that the panels
use, on the real :class:`TelemetryStore` (so the metric names are the real ones):
``store``, ``sampled``, ``markers_changed``, ``source_state`` (a :class:`TelemetryStatus`),
``add_marker``, ``sampler_cost``, ``set_interval``, ``set_window``, ``start``, ``aclose``.
:meth:`FakeTelemetry.push` records a :class:`HostSample` as a sampling loop would.
Tests that need real sampling or markers from real loads use the real service.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from app.core.events import Event
from app.core.metrics.ring import RingBuffer
from app.core.telemetry.service import SourceKind, TelemetryStatus
from app.core.telemetry.store import TelemetryStore
from app.core.telemetry.types import GpuSample, GpuState, HostSample, Marker

GIB = 1 << 30


class FakeTelemetry:
    """A telemetry service whose samples come from the test.

    Attributes:
        reasons: per host, why it has no samples (``source_state`` reports it).
        intervals, windows: what ``set_interval`` / ``set_window`` were called with.
    """

    def __init__(self, window_s: float = 900.0) -> None:
        self.store = TelemetryStore(window_s=window_s, rate_hz=1.0)
        self.interval_s = 1.0
        self.sampled: Event[tuple[str, HostSample]] = Event("telemetry.sampled")
        self.markers_changed: Event[str] = Event("telemetry.markers_changed")
        self.reasons: dict[str, str] = {}
        self.intervals: list[float] = []
        self.windows: list[float] = []
        self.started = False
        self.closed = False

    def source_state(self, host_id: str) -> TelemetryStatus:
        reason = self.reasons.get(host_id, "")
        ok = not reason and self.store.latest(host_id) is not None
        return TelemetryStatus(host_id, SourceKind.AGENT, ok=ok, reason=reason)

    def add_marker(self, host_id: str, kind: str, text: str) -> Marker:
        marker = Marker(time.time(), host_id, kind, text)
        self.store.add_marker(marker)
        self.markers_changed.emit(host_id)
        return marker

    def vram_check(self, host_id: str, running: object) -> list[object]:
        return []  # no GPU readings in these tests: nothing to compare

    def sampler_cost(self, host_id: str) -> RingBuffer:
        return self.store.sampler_cost(host_id)

    def set_interval(self, seconds: float) -> None:
        self.intervals.append(seconds)
        self.interval_s = seconds

    def set_window(self, seconds: float) -> None:
        self.windows.append(seconds)

    def start(self) -> None:
        self.started = True

    async def aclose(self) -> None:
        self.closed = True

    def push(self, host_id: str, sample: HostSample) -> None:
        self.store.record(host_id, sample)
        self.sampled.emit((host_id, sample))


def sample(
    t: float,
    *,
    cpu: float = 20.0,
    ram_gib: float = 8.0,
    gpus: Iterable[tuple[float, float]] = (),
    gpu_state: GpuState | None = None,
    cost_ms: float | None = 1.5,
) -> HostSample:
    """A HostSample at ``t`` with ``gpus`` given as (utilisation %, VRAM GiB) pairs."""
    gpu_samples = tuple(
        GpuSample(
            index=i,
            name=f"Fake GPU {i}",
            utilization_pct=util,
            memory_used=int(vram * GIB),
            memory_total=24 * GIB,
            temperature_c=50.0 + util / 5,
            power_w=80.0 + util,
        )
        for i, (util, vram) in enumerate(gpus)
    )
    state = gpu_state or (GpuState.OK if gpu_samples else GpuState.NO_GPU)
    return HostSample(
        t=t,
        cpu_pct=cpu,
        ram_used=int(ram_gib * GIB),
        ram_total=64 * GIB,
        swap_used=0,
        swap_total=0,
        gpus=gpu_samples,
        gpu_state=state,
        cost_ms=cost_ms,
    )
