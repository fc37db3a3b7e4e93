"""Prometheus text format: Corral's own metric names, and reading other exporters' metrics.

:class:`ExpositionReader` turns the ``/metrics`` text of one or more exporters into a
:class:`HostSample`, parsing with ``prometheus_client.parser`` and mapping the names it
knows:

node_exporter
    ``node_cpu_seconds_total{cpu, mode}`` (CPU percent from the change between two reads:
    busy = all modes but ``idle`` and ``iowait``; the first read has no CPU figure),
    ``node_memory_MemTotal_bytes`` / ``node_memory_MemAvailable_bytes`` (used = total -
    available), ``node_memory_SwapTotal_bytes`` / ``node_memory_SwapFree_bytes``.
dcgm-exporter (labels ``gpu`` = index, ``modelName``, ``UUID``)
    ``DCGM_FI_DEV_GPU_UTIL`` (%), ``DCGM_FI_DEV_MEM_COPY_UTIL`` (%), ``DCGM_FI_DEV_FB_USED``
    / ``_FB_FREE`` / ``_FB_RESERVED`` / ``_FB_TOTAL`` (MiB; total = used + free + reserved
    when there is no FB_TOTAL), ``DCGM_FI_DEV_GPU_TEMP`` (°C), ``DCGM_FI_DEV_POWER_USAGE``
    (W), ``DCGM_FI_DEV_POWER_MGMT_LIMIT`` (W), ``DCGM_FI_DEV_SM_CLOCK`` /
    ``DCGM_FI_DEV_MEM_CLOCK`` (MHz), ``DCGM_FI_DEV_FAN_SPEED`` (%).
nvitop-exporter (labels ``index``, ``devicename``, ``uuid``; its gauges carry their unit
    in the name, as prometheus_client writes it)
    ``host_cpu_percent_Percentage``, ``host_virtual_memory_{total,used}_MiB``,
    ``host_swap_memory_{total,used}_MiB``, ``gpu_utilization_Percentage``,
    ``gpu_memory_utilization_Percentage``, ``gpu_memory_{used,total}_MiB``,
    ``gpu_temperature_C``, ``gpu_power_usage_W``, ``gpu_power_limit_W``,
    ``gpu_clock_sm_MHz``, ``gpu_clock_memory_MHz``, ``gpu_fan_speed_Percentage``,
    ``process_gpu_memory_MiB{pid}`` with ``process_info{pid, command}`` (GPU processes, and
    model servers among them by their command), ``process_cpu_percent_Percentage``,
    ``process_rss_memory_MiB``.
Corral's agent
    the ``corral_*`` families below (written by ``app.agent``).

Anything else is ignored. GPUs are keyed by index; a GPU named by two exporters is taken
from the first.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from app.core.telemetry.codec import state_from_name
from app.core.telemetry.local import classify_process
from app.core.telemetry.types import GpuProcess, GpuSample, GpuState, HostSample, ProcessSample

MIB = 1024 * 1024

# -- Corral's own families (full sample names) -----------------------------------------
AGENT_INFO = "corral_agent_info"  # labels version, host_id, hostname
SAMPLE_TIMESTAMP = "corral_sample_timestamp_seconds"
SAMPLER_DURATION = "corral_sampler_duration_seconds"
CPU_UTILIZATION = "corral_cpu_utilization_ratio"
CPU_CORE_UTILIZATION = "corral_cpu_core_utilization_ratio"  # label core
MEMORY_TOTAL = "corral_memory_total_bytes"
MEMORY_USED = "corral_memory_used_bytes"
SWAP_TOTAL = "corral_swap_total_bytes"
SWAP_USED = "corral_swap_used_bytes"
GPU_STATE = "corral_gpu_state"  # labels state (ok|no_gpu|error|unknown), reason
GPU_UP = "corral_gpu_up"  # per GPU: 1 read, 0 lost; labels gpu, name, uuid (as below)
GPU_UTILIZATION = "corral_gpu_utilization_ratio"
GPU_MEMORY_UTILIZATION = "corral_gpu_memory_utilization_ratio"
GPU_MEMORY_USED = "corral_gpu_memory_used_bytes"
GPU_MEMORY_TOTAL = "corral_gpu_memory_total_bytes"
GPU_TEMPERATURE = "corral_gpu_temperature_celsius"
GPU_POWER = "corral_gpu_power_watts"
GPU_POWER_LIMIT = "corral_gpu_power_limit_watts"
GPU_SM_CLOCK = "corral_gpu_sm_clock_hertz"
GPU_MEMORY_CLOCK = "corral_gpu_memory_clock_hertz"
GPU_FAN_SPEED = "corral_gpu_fan_speed_ratio"
GPU_PROCESS_MEMORY = "corral_gpu_process_memory_bytes"  # + labels pid, process
SERVER_CPU = "corral_model_server_cpu_ratio"  # of one core; labels pid, process, kind
SERVER_RSS = "corral_model_server_resident_memory_bytes"
SERVER_GPU_MEMORY = "corral_model_server_gpu_memory_bytes"

GPU_LABELS = ("gpu", "name", "uuid")
SERVER_LABELS = ("pid", "process", "kind")


@dataclass
class _Gpu:
    index: int
    fields: dict[str, Any] = field(default_factory=dict)
    processes: dict[int, GpuProcess] = field(default_factory=dict)


@dataclass
class _Proc:
    pid: int
    fields: dict[str, Any] = field(default_factory=dict)


def parse_text(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a Prometheus text exposition as ``(name, labels, value)``.

    Raises ValueError when the text is not in the format.
    """
    out: list[tuple[str, dict[str, str], float]] = []
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.append((s.name, dict(s.labels), float(s.value)))
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ValueError(f"not Prometheus text format ({exc})") from exc
    return out


def _index(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


class _Collected:
    """What one read found, before it becomes a sample."""

    def __init__(self) -> None:
        self.host: dict[str, float] = {}
        self.gpus: dict[int, _Gpu] = {}
        self.procs: dict[int, _Proc] = {}
        self.commands: dict[int, str] = {}  # nvitop's process_info: pid -> command
        self.node_cpu: dict[str, dict[str, float]] = {}
        self.cores: dict[int, float] = {}
        self.state: tuple[GpuState, str] | None = None

    def gpu(self, labels: dict[str, str], key: str) -> _Gpu | None:
        index = _index(labels.get(key))
        if index is None:
            return None
        g = self.gpus.get(index)
        if g is None:
            g = self.gpus[index] = _Gpu(index)
        return g

    def set_gpu(
        self, labels: dict[str, str], keys: tuple[str, str, str], field_name: str, value: float
    ) -> None:
        """``keys``: the labels that hold the index, the name and the UUID."""
        g = self.gpu(labels, keys[0])
        if g is None:
            return
        g.fields.setdefault(field_name, value)
        if labels.get(keys[1]):
            g.fields.setdefault("name", labels[keys[1]])
        if labels.get(keys[2]):
            g.fields.setdefault("uuid", labels[keys[2]])

    def set_proc(self, pid_text: str | None, field_name: str, value: object) -> _Proc | None:
        pid = _index(pid_text)
        if pid is None:
            return None
        proc = self.procs.setdefault(pid, _Proc(pid))
        proc.fields.setdefault(field_name, value)
        return proc


_DCGM_KEYS = ("gpu", "modelName", "UUID")
_NVITOP_KEYS = ("index", "devicename", "uuid")
_CORRAL_KEYS = ("gpu", "name", "uuid")


class ExpositionReader:
    """Maps exporters' metrics to samples; keeps CPU counters between reads."""

    def __init__(self) -> None:
        self._cpu_prev: dict[str, tuple[float, float]] = {}  # cpu -> (total, idle) seconds

    def read(self, texts: Sequence[str], t: float) -> HostSample:
        """A sample from one or more exposition texts (raises ValueError for bad text)."""
        samples: list[tuple[str, dict[str, str], float]] = []
        for text in texts:
            samples.extend(parse_text(text))
        return self.read_samples(samples, t)

    def read_samples(
        self, samples: Iterable[tuple[str, dict[str, str], float]], t: float
    ) -> HostSample:
        c = _Collected()
        for name, labels, value in samples:
            if name.startswith("node_"):
                self._node(c, name, labels, value)
            elif name.startswith("DCGM_FI_DEV_"):
                field_name, scale = _DCGM.get(name[len("DCGM_FI_DEV_") :], ("", 1.0))
                if field_name:
                    c.set_gpu(labels, _DCGM_KEYS, field_name, value * scale)
            elif name.startswith("corral_"):
                self._corral(c, name, labels, value)
            else:
                self._nvitop(c, name, labels, value)

        host = c.host
        cpu_pct, per_core = self._node_cpu(c.node_cpu)
        if cpu_pct is None and "cpu_pct" in host:
            cpu_pct = host["cpu_pct"]
        if not per_core and c.cores:
            per_core = tuple(c.cores[i] for i in sorted(c.cores))
        ram_total = _opt_int(host.get("ram_total"))
        ram_used = _opt_int(host.get("ram_used"))
        if ram_used is None and ram_total is not None and "ram_available" in host:
            ram_used = ram_total - round(host["ram_available"])
        swap_total = _opt_int(host.get("swap_total"))
        swap_used = _opt_int(host.get("swap_used"))
        if swap_used is None and swap_total is not None and "swap_free" in host:
            swap_used = swap_total - round(host["swap_free"])

        gpus = tuple(self._gpu_sample(c.gpus[i], c.commands) for i in sorted(c.gpus))
        if c.state is not None:
            state, reason = c.state
        elif gpus:
            state, reason = GpuState.OK, ""
        else:
            state, reason = GpuState.UNKNOWN, "The exporter reports no GPUs."
        return HostSample(
            t=t,
            cpu_pct=cpu_pct,
            cpu_per_core=per_core,
            ram_used=ram_used,
            ram_total=ram_total,
            swap_used=swap_used,
            swap_total=swap_total,
            gpus=gpus,
            gpu_state=state,
            gpu_reason=reason,
            model_processes=self._model_processes(c, gpus),
            cost_ms=host.get("cost_ms"),
        )

    @staticmethod
    def _node(c: _Collected, name: str, labels: dict[str, str], value: float) -> None:
        if name == "node_cpu_seconds_total":
            c.node_cpu.setdefault(labels.get("cpu", ""), {})[labels.get("mode", "")] = value
        elif name in _NODE_HOST:
            c.host.setdefault(_NODE_HOST[name], value)

    @staticmethod
    def _nvitop(c: _Collected, name: str, labels: dict[str, str], value: float) -> None:
        if name in _NVITOP_HOST:
            field_name, scale = _NVITOP_HOST[name]
            c.host.setdefault(field_name, value * scale)
        elif name in _NVITOP_GPU:
            field_name, scale = _NVITOP_GPU[name]
            c.set_gpu(labels, _NVITOP_KEYS, field_name, value * scale)
        elif name == "process_info":
            pid = _index(labels.get("pid"))
            if pid is not None:
                c.commands[pid] = labels.get("command", "")
        elif name == "process_gpu_memory_MiB":
            pid = _index(labels.get("pid"))
            g = c.gpu(labels, "index")
            if pid is not None and g is not None:
                g.processes[pid] = GpuProcess(pid, "", round(value * MIB))
        elif name == "process_cpu_percent_Percentage":
            c.set_proc(labels.get("pid"), "cpu_pct", value)
        elif name == "process_rss_memory_MiB":
            c.set_proc(labels.get("pid"), "rss", value * MIB)

    @staticmethod
    def _corral(c: _Collected, name: str, labels: dict[str, str], value: float) -> None:
        if name in _CORRAL_HOST:
            field_name, scale = _CORRAL_HOST[name]
            c.host.setdefault(field_name, value * scale)
        elif name == CPU_CORE_UTILIZATION:
            core = _index(labels.get("core"))
            if core is not None:
                c.cores[core] = value * 100.0
        elif name == GPU_STATE:
            if value >= 1:
                with contextlib.suppress(ValueError):
                    c.state = state_from_name(labels.get("state", "")), labels.get("reason", "")
        elif name == GPU_UP:
            c.set_gpu(labels, _CORRAL_KEYS, "up", value)
        elif name in _CORRAL_GPU:
            field_name, scale = _CORRAL_GPU[name]
            c.set_gpu(labels, _CORRAL_KEYS, field_name, value * scale)
        elif name == GPU_PROCESS_MEMORY:
            pid = _index(labels.get("pid"))
            g = c.gpu(labels, "gpu")
            if pid is not None and g is not None:
                g.processes[pid] = GpuProcess(pid, labels.get("process", ""), round(value))
        elif name in _CORRAL_SERVER:
            field_name, scale = _CORRAL_SERVER[name]
            proc = c.set_proc(labels.get("pid"), field_name, value * scale)
            if proc is not None:
                proc.fields.setdefault("name", labels.get("process", ""))
                proc.fields.setdefault("kind", labels.get("kind", ""))
                proc.fields["corral"] = True

    def _node_cpu(
        self, node_cpu: dict[str, dict[str, float]]
    ) -> tuple[float | None, tuple[float, ...]]:
        if not node_cpu:
            return None, ()
        per_core: list[tuple[int, float]] = []
        busy_sum = total_sum = 0.0
        now: dict[str, tuple[float, float]] = {}
        for cpu, modes in node_cpu.items():
            total = math.fsum(modes.values())
            idle = modes.get("idle", 0.0) + modes.get("iowait", 0.0)
            now[cpu] = (total, idle)
            prev = self._cpu_prev.get(cpu)
            if prev is None:
                continue
            d_total, d_idle = total - prev[0], idle - prev[1]
            if d_total <= 0 or d_idle < 0:
                continue  # a counter reset (reboot) or no time passed
            busy = max(0.0, min(1.0, 1.0 - d_idle / d_total))
            index = _index(cpu)
            per_core.append((index if index is not None else len(per_core), 100.0 * busy))
            busy_sum += d_total - d_idle
            total_sum += d_total
        self._cpu_prev = now
        if total_sum <= 0:
            return None, ()
        per_core.sort()
        return 100.0 * busy_sum / total_sum, tuple(v for _, v in per_core)

    @staticmethod
    def _gpu_sample(g: _Gpu, commands: dict[int, str]) -> GpuSample:
        f = g.fields
        total = _opt_int(f.get("memory_total"))
        used = _opt_int(f.get("memory_used"))
        if total is None and used is not None and "memory_free" in f:
            total = used + round(f["memory_free"]) + round(f.get("memory_reserved", 0))
        processes = tuple(
            GpuProcess(p.pid, p.name or _command_name(commands.get(p.pid, "")), p.used_memory)
            for p in sorted(g.processes.values(), key=lambda p: p.pid)
        )
        lost = "up" in f and f["up"] < 1
        return GpuSample(
            index=g.index,
            name=str(f.get("name", f"GPU {g.index}")),
            uuid=str(f.get("uuid", "")),
            utilization_pct=_opt_float(f.get("utilization_pct")),
            memory_utilization_pct=_opt_float(f.get("memory_utilization_pct")),
            memory_used=used,
            memory_total=total,
            temperature_c=_opt_float(f.get("temperature_c")),
            power_w=_opt_float(f.get("power_w")),
            power_limit_w=_opt_float(f.get("power_limit_w")),
            sm_clock_mhz=_opt_float(f.get("sm_clock_mhz")),
            memory_clock_mhz=_opt_float(f.get("memory_clock_mhz")),
            fan_pct=_opt_float(f.get("fan_pct")),
            processes=processes,
            error=f"GPU {g.index} cannot be read on that host." if lost else "",
        )

    @staticmethod
    def _model_processes(c: _Collected, gpus: tuple[GpuSample, ...]) -> tuple[ProcessSample, ...]:
        vram: dict[int, int] = {}
        for g in gpus:
            for p in g.processes:
                if p.used_memory is not None:
                    vram[p.pid] = vram.get(p.pid, 0) + p.used_memory
        out: list[ProcessSample] = []
        for pid in sorted(set(c.procs) | set(c.commands)):
            f = c.procs[pid].fields if pid in c.procs else {}
            if f.get("corral"):
                label, kind = str(f.get("name", "")), str(f.get("kind", ""))
                process_vram = _opt_int(f.get("vram"))
            else:  # nvitop: GPU processes; the model servers among them by their command
                command = c.commands.get(pid, "")
                found = classify_process(_command_name(command), command.split())
                if found is None:
                    continue
                label, kind = found
                process_vram = vram.get(pid)
            out.append(
                ProcessSample(
                    pid=pid,
                    name=label,
                    cpu_pct=_opt_float(f.get("cpu_pct")),
                    rss=_opt_int(f.get("rss")),
                    vram=process_vram,
                    kind=kind,
                )
            )
        return tuple(out)


def _command_name(command: str) -> str:
    first = command.split(" ", 1)[0] if command else ""
    return os.path.basename(first)


def _opt_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _opt_int(value: object) -> int | None:
    number = _opt_float(value)
    return None if number is None else round(number)


# name suffix after DCGM_FI_DEV_ -> (GpuSample field, scale to Corral's unit)
_DCGM: dict[str, tuple[str, float]] = {
    "GPU_UTIL": ("utilization_pct", 1.0),
    "MEM_COPY_UTIL": ("memory_utilization_pct", 1.0),
    "FB_USED": ("memory_used", MIB),
    "FB_FREE": ("memory_free", MIB),
    "FB_RESERVED": ("memory_reserved", MIB),
    "FB_TOTAL": ("memory_total", MIB),
    "GPU_TEMP": ("temperature_c", 1.0),
    "POWER_USAGE": ("power_w", 1.0),
    "POWER_MGMT_LIMIT": ("power_limit_w", 1.0),
    "SM_CLOCK": ("sm_clock_mhz", 1.0),
    "MEM_CLOCK": ("memory_clock_mhz", 1.0),
    "FAN_SPEED": ("fan_pct", 1.0),
}

_NODE_HOST: dict[str, str] = {
    "node_memory_MemTotal_bytes": "ram_total",
    "node_memory_MemAvailable_bytes": "ram_available",
    "node_memory_SwapTotal_bytes": "swap_total",
    "node_memory_SwapFree_bytes": "swap_free",
}

_NVITOP_HOST: dict[str, tuple[str, float]] = {
    "host_cpu_percent_Percentage": ("cpu_pct", 1.0),
    "host_virtual_memory_total_MiB": ("ram_total", MIB),
    "host_virtual_memory_used_MiB": ("ram_used", MIB),
    "host_swap_memory_total_MiB": ("swap_total", MIB),
    "host_swap_memory_used_MiB": ("swap_used", MIB),
}

_NVITOP_GPU: dict[str, tuple[str, float]] = {
    "gpu_utilization_Percentage": ("utilization_pct", 1.0),
    "gpu_memory_utilization_Percentage": ("memory_utilization_pct", 1.0),
    "gpu_memory_used_MiB": ("memory_used", MIB),
    "gpu_memory_total_MiB": ("memory_total", MIB),
    "gpu_temperature_C": ("temperature_c", 1.0),
    "gpu_power_usage_W": ("power_w", 1.0),
    "gpu_power_limit_W": ("power_limit_w", 1.0),
    "gpu_clock_sm_MHz": ("sm_clock_mhz", 1.0),
    "gpu_clock_memory_MHz": ("memory_clock_mhz", 1.0),
    "gpu_fan_speed_Percentage": ("fan_pct", 1.0),
}

_CORRAL_HOST: dict[str, tuple[str, float]] = {
    CPU_UTILIZATION: ("cpu_pct", 100.0),
    MEMORY_TOTAL: ("ram_total", 1.0),
    MEMORY_USED: ("ram_used", 1.0),
    SWAP_TOTAL: ("swap_total", 1.0),
    SWAP_USED: ("swap_used", 1.0),
    SAMPLER_DURATION: ("cost_ms", 1000.0),
}

_CORRAL_GPU: dict[str, tuple[str, float]] = {
    GPU_UTILIZATION: ("utilization_pct", 100.0),
    GPU_MEMORY_UTILIZATION: ("memory_utilization_pct", 100.0),
    GPU_MEMORY_USED: ("memory_used", 1.0),
    GPU_MEMORY_TOTAL: ("memory_total", 1.0),
    GPU_TEMPERATURE: ("temperature_c", 1.0),
    GPU_POWER: ("power_w", 1.0),
    GPU_POWER_LIMIT: ("power_limit_w", 1.0),
    GPU_SM_CLOCK: ("sm_clock_mhz", 1e-6),
    GPU_MEMORY_CLOCK: ("memory_clock_mhz", 1e-6),
    GPU_FAN_SPEED: ("fan_pct", 100.0),
}

_CORRAL_SERVER: dict[str, tuple[str, float]] = {
    SERVER_CPU: ("cpu_pct", 100.0),
    SERVER_RSS: ("rss", 1.0),
    SERVER_GPU_MEMORY: ("vram", 1.0),
}
