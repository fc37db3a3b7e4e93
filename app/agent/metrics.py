"""The agent's ``/metrics``: a prometheus_client collector over the latest sample.

Names follow Prometheus conventions: base units (bytes, seconds, hertz, watts, degrees
Celsius) in the name, ratios from 0 to 1, one family per quantity, labels for the GPU
(``gpu`` index, ``name``, ``uuid``) and the process (``pid``, ``process``, ``kind``).
The names are defined in :mod:`app.core.telemetry.exposition`, which also reads them
back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from app.core.telemetry import exposition as names
from app.core.telemetry.codec import state_name
from app.core.telemetry.types import GpuSample, GpuState, HostSample


def _gauge(name: str, doc: str, labels: tuple[str, ...] = (), unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels), unit=unit)


class SampleCollector(Collector):
    """Yields the metric families of the sample ``latest()`` returns (none before the
    first sample). ``info`` are the labels of ``corral_agent_info``."""

    def __init__(self, latest: Callable[[], HostSample | None], info: dict[str, str]) -> None:
        self._latest = latest
        self._info = dict(info)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families depend on the sample: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily(
            names.AGENT_INFO.removesuffix("_info"), "The Corral agent.", value=self._info
        )
        yield info
        sample = self._latest()
        if sample is None:
            return
        yield from _host_families(sample)
        yield from _gpu_families(sample)
        yield from _process_families(sample)


def _host_families(s: HostSample) -> Iterator[Metric]:
    ts = _gauge(names.SAMPLE_TIMESTAMP, "When the sample was taken (Unix time).", unit="seconds")
    ts.add_metric([], s.t)
    yield ts
    if s.cost_ms is not None:
        cost = _gauge(
            names.SAMPLER_DURATION, "What taking the last sample cost the agent.", unit="seconds"
        )
        cost.add_metric([], s.cost_ms / 1000.0)
        yield cost
    if s.cpu_pct is not None:
        cpu = _gauge(names.CPU_UTILIZATION, "CPU busy, all cores (0-1).", unit="ratio")
        cpu.add_metric([], s.cpu_pct / 100.0)
        yield cpu
    if s.cpu_per_core:
        cores = _gauge(names.CPU_CORE_UTILIZATION, "CPU busy per core (0-1).", ("core",), "ratio")
        for j, pct in enumerate(s.cpu_per_core):
            cores.add_metric([str(j)], pct / 100.0)
        yield cores
    for name, doc, value in (
        (names.MEMORY_TOTAL, "Physical memory.", s.ram_total),
        (names.MEMORY_USED, "Physical memory in use (total - available).", s.ram_used),
        (names.SWAP_TOTAL, "Swap space.", s.swap_total),
        (names.SWAP_USED, "Swap space in use.", s.swap_used),
    ):
        if value is not None:
            family = _gauge(name, doc, unit="bytes")
            family.add_metric([], float(value))
            yield family
    state = _gauge(
        names.GPU_STATE,
        "Whether GPUs can be read: 1 for the current state (ok, no_gpu, error, unknown).",
        ("state", "reason"),
    )
    for option in GpuState:
        current = option is s.gpu_state
        state.add_metric(
            [state_name(option), s.gpu_reason if current else ""], 1.0 if current else 0.0
        )
    yield state


_GPU_FIGURES: tuple[tuple[str, str, str, Callable[[GpuSample], float | None]], ...] = (
    (
        names.GPU_UTILIZATION,
        "GPU busy (0-1).",
        "ratio",
        lambda g: None if g.utilization_pct is None else g.utilization_pct / 100.0,
    ),
    (
        names.GPU_MEMORY_UTILIZATION,
        "GPU memory bus busy (0-1).",
        "ratio",
        lambda g: None if g.memory_utilization_pct is None else g.memory_utilization_pct / 100.0,
    ),
    (
        names.GPU_MEMORY_USED,
        "GPU memory in use.",
        "bytes",
        lambda g: None if g.memory_used is None else float(g.memory_used),
    ),
    (
        names.GPU_MEMORY_TOTAL,
        "GPU memory.",
        "bytes",
        lambda g: None if g.memory_total is None else float(g.memory_total),
    ),
    (names.GPU_TEMPERATURE, "GPU temperature.", "celsius", lambda g: g.temperature_c),
    (names.GPU_POWER, "GPU power draw.", "watts", lambda g: g.power_w),
    (names.GPU_POWER_LIMIT, "GPU power limit (enforced).", "watts", lambda g: g.power_limit_w),
    (
        names.GPU_SM_CLOCK,
        "GPU SM clock.",
        "hertz",
        lambda g: None if g.sm_clock_mhz is None else g.sm_clock_mhz * 1e6,
    ),
    (
        names.GPU_MEMORY_CLOCK,
        "GPU memory clock.",
        "hertz",
        lambda g: None if g.memory_clock_mhz is None else g.memory_clock_mhz * 1e6,
    ),
    (
        names.GPU_FAN_SPEED,
        "GPU fan speed (0-1 of its maximum).",
        "ratio",
        lambda g: None if g.fan_pct is None else g.fan_pct / 100.0,
    ),
)


def _gpu_families(s: HostSample) -> Iterator[Metric]:
    if not s.gpus:
        return
    up = _gauge(names.GPU_UP, "1 when the GPU could be read, 0 when it is lost.", names.GPU_LABELS)
    for g in s.gpus:
        up.add_metric(_gpu_labels(g), 0.0 if g.error else 1.0)
    yield up
    for name, doc, unit, get in _GPU_FIGURES:
        family = _gauge(name, doc, names.GPU_LABELS, unit)
        for g in s.gpus:
            value = get(g)
            if value is not None:
                family.add_metric(_gpu_labels(g), value)
        if family.samples:
            yield family
    procs = _gauge(
        names.GPU_PROCESS_MEMORY,
        "GPU memory used by a process.",
        (*names.GPU_LABELS, "pid", "process"),
        "bytes",
    )
    for g in s.gpus:
        for p in g.processes:
            if p.used_memory is not None:
                procs.add_metric([*_gpu_labels(g), str(p.pid), p.name], float(p.used_memory))
    if procs.samples:
        yield procs


def _gpu_labels(g: GpuSample) -> list[str]:
    return [str(g.index), g.name, g.uuid]


def _process_families(s: HostSample) -> Iterator[Metric]:
    if not s.model_processes:
        return
    cpu = _gauge(
        names.SERVER_CPU,
        "CPU used by a model-server process, in cores (1 = one core busy).",
        names.SERVER_LABELS,
        "ratio",
    )
    rss = _gauge(
        names.SERVER_RSS, "Resident memory of a model-server process.", names.SERVER_LABELS, "bytes"
    )
    vram = _gauge(
        names.SERVER_GPU_MEMORY,
        "GPU memory of a model-server process, all GPUs.",
        names.SERVER_LABELS,
        "bytes",
    )
    for p in s.model_processes:
        labels = [str(p.pid), p.name, p.kind]
        if p.cpu_pct is not None:
            cpu.add_metric(labels, p.cpu_pct / 100.0)
        if p.rss is not None:
            rss.add_metric(labels, float(p.rss))
        if p.vram is not None:
            vram.add_metric(labels, float(p.vram))
    for family in (cpu, rss, vram):
        if family.samples:
            yield family
