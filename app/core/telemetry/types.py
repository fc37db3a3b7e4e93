"""The values telemetry produces. Frozen dataclasses: they cross threads and the UI boundary.

Every metric a source cannot read is ``None`` (absent), never an error and never 0.
Units: bytes, percent (0-100), degrees Celsius, watts, MHz; times in seconds since the
epoch (``t``) or milliseconds (``*_ms``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class GpuState(enum.StrEnum):
    OK = "ok"
    NO_GPU = "no NVIDIA GPU found"  # no NVML library, no driver, or no device
    ERROR = "error"  # NVML present but failing (the reason is in HostSample.gpu_reason)
    UNKNOWN = "unknown"  # the source says nothing about GPUs (e.g. an exporter without them)


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    name: str
    used_memory: int | None = None  # bytes; None where the driver does not say (Windows WDDM)


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str
    uuid: str = ""
    utilization_pct: float | None = None
    memory_utilization_pct: float | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    sm_clock_mhz: float | None = None
    memory_clock_mhz: float | None = None
    fan_pct: float | None = None
    processes: tuple[GpuProcess, ...] = ()
    error: str = ""  # why this GPU could not be read (e.g. it is lost); "" when it was read


@dataclass(frozen=True)
class ProcessSample:
    """A model-server process (ollama, its runners, llama-server, vllm, LM Studio, ...)."""

    pid: int
    name: str  # what it is: "ollama serve", "ollama runner", "llama-server", "vllm", ...
    cpu_pct: float | None = None  # of one core (may exceed 100 on several cores)
    rss: int | None = None
    vram: int | None = None  # bytes on all GPUs, from NVML's per-process figures
    kind: str = ""  # the server family, a HostKind value ("ollama", "llama.cpp", "vllm", ...)


@dataclass(frozen=True)
class HostSample:
    """One reading of a host's hardware.

    Attributes:
        t: when it was taken (seconds since the epoch).
        cpu_pct: all cores (0-100).
        cpu_per_core: per core (0-100 each).
        ram_used, ram_total, swap_used, swap_total: bytes.
        gpus: one entry per GPU.
        gpu_state, gpu_reason: whether GPUs could be read, and why not. With ``OK`` the
            reason may still name a GPU that was lost (its GpuSample has ``error`` set).
        model_processes: model-server processes with their CPU, RSS and VRAM.
        cost_ms: what taking this sample cost the sampler (wall clock).
    """

    t: float
    cpu_pct: float | None = None
    cpu_per_core: tuple[float, ...] = ()
    ram_used: int | None = None
    ram_total: int | None = None
    swap_used: int | None = None
    swap_total: int | None = None
    gpus: tuple[GpuSample, ...] = ()
    gpu_state: GpuState = GpuState.UNKNOWN
    gpu_reason: str = ""
    model_processes: tuple[ProcessSample, ...] = ()
    cost_ms: float | None = None


@dataclass(frozen=True)
class Marker:
    """Something that happened on a host at time ``t``: shown as a line on the graphs."""

    t: float
    host_id: str
    kind: str  # "load" | "unload" | "pull" | ...
    text: str  # e.g. "llama3.2:latest loaded"
