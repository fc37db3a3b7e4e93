"""Per host: samples kept as named series in ring buffers, the latest sample, markers.

A sample is flattened into series by :func:`sample_metrics`; the names are:

=============================  =====================================================
``cpu_pct``                    all cores, percent
``core{j}.pct``                core j, percent
``ram_used`` ``ram_total``     bytes (used = total - available)
``ram_pct``                    percent
``swap_used`` ``swap_total``   bytes; ``swap_pct`` percent (when there is swap)
``gpu{i}.util_pct``            GPU i busy, percent; ``gpu{i}.mem_util_pct`` memory bus
``gpu{i}.vram_used``           bytes; ``gpu{i}.vram_total`` bytes; ``gpu{i}.vram_pct``
``gpu{i}.temp_c``              degrees Celsius
``gpu{i}.power_w``             watts; ``gpu{i}.power_limit_w`` watts
``gpu{i}.sm_clock_mhz``        MHz; ``gpu{i}.mem_clock_mhz`` MHz
``gpu{i}.fan_pct``             percent
``proc.cpu.{name}``            model-server processes by name ("ollama runner", ...),
``proc.rss.{name}``            summed over the processes of that name: percent of one
``proc.vram.{name}``           core, bytes, bytes
``sampler.cost_ms``            what taking the sample cost, milliseconds
=============================  =====================================================

A metric a sample does not have is not appended (the graph shows a gap). Times are the
samples' own (seconds since the epoch). Not thread-safe: use it from one thread, or
under a lock (the agent does).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from app.core.metrics.ring import RingBuffer
from app.core.telemetry.types import HostSample, Marker

COST_METRIC = "sampler.cost_ms"
MAX_MARKERS = 1000


def sample_metrics(sample: HostSample) -> dict[str, float]:
    """A sample flattened into ``{metric name: value}`` (absent metrics left out)."""
    out: dict[str, float] = {}

    def put(name: str, value: float | int | None) -> None:
        if value is not None and math.isfinite(value):
            out[name] = float(value)

    put("cpu_pct", sample.cpu_pct)
    for j, pct in enumerate(sample.cpu_per_core):
        put(f"core{j}.pct", pct)
    put("ram_used", sample.ram_used)
    put("ram_total", sample.ram_total)
    if sample.ram_used is not None and sample.ram_total:
        put("ram_pct", 100.0 * sample.ram_used / sample.ram_total)
    put("swap_used", sample.swap_used)
    put("swap_total", sample.swap_total)
    if sample.swap_used is not None and sample.swap_total:
        put("swap_pct", 100.0 * sample.swap_used / sample.swap_total)
    for gpu in sample.gpus:
        g = f"gpu{gpu.index}."
        put(g + "util_pct", gpu.utilization_pct)
        put(g + "mem_util_pct", gpu.memory_utilization_pct)
        put(g + "vram_used", gpu.memory_used)
        put(g + "vram_total", gpu.memory_total)
        if gpu.memory_used is not None and gpu.memory_total:
            put(g + "vram_pct", 100.0 * gpu.memory_used / gpu.memory_total)
        put(g + "temp_c", gpu.temperature_c)
        put(g + "power_w", gpu.power_w)
        put(g + "power_limit_w", gpu.power_limit_w)
        put(g + "sm_clock_mhz", gpu.sm_clock_mhz)
        put(g + "mem_clock_mhz", gpu.memory_clock_mhz)
        put(g + "fan_pct", gpu.fan_pct)
    sums: dict[str, float] = {}
    for proc in sample.model_processes:
        for what, value in (("cpu", proc.cpu_pct), ("rss", proc.rss), ("vram", proc.vram)):
            if value is not None:
                key = f"proc.{what}.{proc.name}"
                sums[key] = sums.get(key, 0.0) + float(value)
    out.update(sums)
    put(COST_METRIC, sample.cost_ms)
    return out


def metric_unit(metric: str) -> str:
    """The unit of a metric name: ``"%"``, ``"B"``, ``"°C"``, ``"W"``, ``"MHz"``, ``"ms"``."""
    if metric.startswith("proc.cpu.") or metric.endswith("pct"):
        return "%"
    if metric.startswith(("proc.rss.", "proc.vram.")) or metric.endswith(("_used", "_total")):
        return "B"
    if metric.endswith("_c"):
        return "°C"
    if metric.endswith("_w"):
        return "W"
    if metric.endswith("_mhz"):
        return "MHz"
    if metric.endswith("_ms"):
        return "ms"
    return ""


def _natural(name: str) -> tuple[object, ...]:
    """Sort key: ``core2`` before ``core10``."""
    parts: list[object] = []
    digits = ""
    text = ""
    for ch in name:
        if ch.isdigit():
            if text:
                parts.append(text)
                text = ""
            digits += ch
        else:
            if digits:
                parts.append(int(digits))
                digits = ""
            text += ch
    if digits:
        parts.append(int(digits))
    if text:
        parts.append(text)
    return tuple((0, p) if isinstance(p, int) else (1, p) for p in parts)


@dataclass
class _HostData:
    series: dict[str, RingBuffer] = field(default_factory=dict)
    latest: HostSample | None = None
    markers: deque[Marker] = field(default_factory=lambda: deque(maxlen=MAX_MARKERS))


class TelemetryStore:
    """Samples of every host, as series in ring buffers of ``window_s * rate_hz`` points.

    Attributes:
        window_s: how much history is kept, in seconds.
        rate_hz: samples per second it is sized for.
    """

    def __init__(self, *, window_s: float = 900.0, rate_hz: float = 1.0) -> None:
        if window_s <= 0 or rate_hz <= 0:
            raise ValueError("window_s and rate_hz must be positive")
        self.window_s = float(window_s)
        self.rate_hz = float(rate_hz)
        self._hosts: dict[str, _HostData] = {}

    @property
    def capacity(self) -> int:
        return max(1, math.ceil(self.window_s * self.rate_hz))

    def _host(self, host_id: str) -> _HostData:
        data = self._hosts.get(host_id)
        if data is None:
            data = self._hosts[host_id] = _HostData()
        return data

    # -- writing ----------------------------------------------------------------------
    def record(self, host_id: str, sample: HostSample) -> None:
        data = self._host(host_id)
        data.latest = sample
        for metric, value in sample_metrics(sample).items():
            self._buffer(data, metric).append(sample.t, value)

    def backfill(self, host_id: str, history: Mapping[str, Iterable[tuple[float, float]]]) -> None:
        """Add older points (an agent's history) before those already kept."""
        data = self._host(host_id)
        for metric, points in history.items():
            buffer = self._buffer(data, metric)
            kept = list(buffer)
            first = kept[0][0] if kept else math.inf
            older = [(t, v) for t, v in points if t < first and math.isfinite(v)]
            if older:
                buffer.replace([*older, *kept])

    def add_marker(self, marker: Marker) -> None:
        self._host(marker.host_id).markers.append(marker)

    def forget(self, host_id: str) -> None:
        self._hosts.pop(host_id, None)

    def resize(self, *, window_s: float | None = None, rate_hz: float | None = None) -> None:
        """Change the window (or the rate it is sized for); buffers keep their newest points."""
        if window_s is not None:
            if window_s <= 0:
                raise ValueError("window_s must be positive")
            self.window_s = float(window_s)
        if rate_hz is not None:
            if rate_hz <= 0:
                raise ValueError("rate_hz must be positive")
            self.rate_hz = float(rate_hz)
        for data in self._hosts.values():
            for buffer in data.series.values():
                buffer.resize(self.capacity)

    def _buffer(self, data: _HostData, metric: str) -> RingBuffer:
        buffer = data.series.get(metric)
        if buffer is None:
            buffer = data.series[metric] = RingBuffer(self.capacity)
        return buffer

    # -- reading ----------------------------------------------------------------------
    def series(self, host_id: str, metric: str) -> RingBuffer:
        """The ring buffer of one metric (made empty on first use: hold on to it, it fills)."""
        return self._buffer(self._host(host_id), metric)

    def metrics(self, host_id: str) -> list[str]:
        """Names of the metrics that have points, in natural order."""
        data = self._hosts.get(host_id)
        if data is None:
            return []
        return sorted((m for m, b in data.series.items() if len(b)), key=_natural)

    def latest(self, host_id: str) -> HostSample | None:
        data = self._hosts.get(host_id)
        return data.latest if data is not None else None

    def markers(self, host_id: str, since: float | None = None) -> list[Marker]:
        """Markers of a host, oldest first; by default those inside the window."""
        data = self._hosts.get(host_id)
        if data is None:
            return []
        if since is None:
            newest = data.latest.t if data.latest is not None else None
            if data.markers:
                newest = max(newest or 0.0, data.markers[-1].t)
            since = (newest - self.window_s) if newest is not None else None
        return [m for m in data.markers if since is None or m.t >= since]

    def sampler_cost(self, host_id: str) -> RingBuffer:
        """What each sample cost the sampler, in milliseconds."""
        return self.series(host_id, COST_METRIC)

    def history(
        self, host_id: str, since: float | None = None
    ) -> dict[str, list[tuple[float, float]]]:
        """Every series' points at or after ``since`` (all kept points when None)."""
        data = self._hosts.get(host_id)
        if data is None:
            return {}
        out: dict[str, list[tuple[float, float]]] = {}
        for metric in self.metrics(host_id):
            points = [(t, v) for t, v in data.series[metric] if since is None or t >= since]
            if points:
                out[metric] = points
        return out

    def hosts(self) -> list[str]:
        return list(self._hosts)
