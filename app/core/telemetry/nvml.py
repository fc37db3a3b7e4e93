"""NVIDIA GPUs through NVML (the ``nvidia-ml-py`` package, module ``pynvml``).

This is the only module that imports ``pynvml``, and it does so lazily, on the first
:meth:`NvmlReader.read`: importing Corral never loads the NVIDIA library.

Every call is blocking and is made on the sampler's worker thread. Errors are handled
per metric, never per sample:

- ``ImportError`` (no bindings), ``LibraryNotFound`` (no driver library),
  ``DriverNotLoaded`` and a device count of 0 give :attr:`GpuState.NO_GPU` once, after
  which every read returns that state at once without touching NVML again.
- Any other failure of ``nvmlInit`` gives :attr:`GpuState.ERROR` with the reason; NVML is
  tried again after ``retry_s``.
- ``NotSupported`` (and ``FunctionNotFound``, an old driver) for a metric leaves that
  metric absent (``None``) and the call is not made again for that GPU.
- ``GpuIsLost`` marks that GPU lost: it is reported with ``error`` set and no figures, it
  is not asked again, and the sample's ``gpu_reason`` names it. The state stays ``OK``
  while another GPU can be read, and becomes ``ERROR`` when none can.
- Any other ``NVMLError`` (NoPermission, Timeout, Unknown, ...) leaves the metric absent
  for this read only.

Units follow :mod:`app.core.telemetry.types`: bytes, percent, °C, watts (NVML gives mW),
MHz.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from app.core.telemetry.types import GpuProcess, GpuSample, GpuState

log = logging.getLogger(__name__)

# NVML return codes (nvml.h); stable across driver versions.
ERROR_UNINITIALIZED = 1
ERROR_NOT_SUPPORTED = 3
ERROR_NO_PERMISSION = 4
ERROR_NOT_FOUND = 6
ERROR_DRIVER_NOT_LOADED = 9
ERROR_LIBRARY_NOT_FOUND = 12
ERROR_FUNCTION_NOT_FOUND = 13
ERROR_GPU_IS_LOST = 15

# NVML enum values used here (nvml.h), in case a binding lacks the constant.
_TEMPERATURE_GPU = 0
_CLOCK_SM = 1
_CLOCK_MEM = 2

NO_GPU_NO_BINDINGS = "no NVIDIA GPU found: the NVML bindings (nvidia-ml-py) are not installed"
NO_GPU_NO_LIBRARY = "no NVIDIA GPU found: the NVIDIA driver's NVML library is not installed"
NO_GPU_NO_DRIVER = "no NVIDIA GPU found: the NVIDIA driver is not loaded"
NO_GPU_NO_DEVICE = "no NVIDIA GPU found: the driver reports no GPU"

_NO_GPU_CODES = {
    ERROR_LIBRARY_NOT_FOUND: NO_GPU_NO_LIBRARY,
    ERROR_DRIVER_NOT_LOADED: NO_GPU_NO_DRIVER,
}
# Metrics a GPU cannot give: asking again would fail again.
_PERMANENT_CODES = {ERROR_NOT_SUPPORTED, ERROR_FUNCTION_NOT_FOUND}


@dataclass(frozen=True)
class GpuReading:
    """What one read of NVML found.

    Attributes:
        state: OK (GPUs read), NO_GPU, or ERROR (NVML present but failing).
        reason: a sentence for the user when not everything could be read ("" when it was).
        gpus: one entry per GPU (a lost GPU has ``error`` set and no figures).
        driver_version: the NVIDIA driver's version, when known.
    """

    state: GpuState
    reason: str = ""
    gpus: tuple[GpuSample, ...] = ()
    driver_version: str = ""

    def process_vram(self) -> dict[int, int]:
        """Bytes of GPU memory per pid, summed over every GPU (pids without a figure left
        out)."""
        out: dict[int, int] = {}
        for gpu in self.gpus:
            for proc in gpu.processes:
                if proc.used_memory is not None:
                    out[proc.pid] = out.get(proc.pid, 0) + proc.used_memory
        return out


class _LostGpu(Exception):
    """A call said the GPU is lost: stop reading it."""


@dataclass
class _Device:
    index: int
    handle: Any
    name: str
    uuid: str
    unsupported: set[str] = field(default_factory=set)
    lost: str = ""  # the reason, once lost


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _code(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # pynvml's __str__ calls into the library, which may be gone
        text = ""
    code = _code(exc)
    if not text:
        text = type(exc).__name__
    return f"{text} (NVML error {code})" if code is not None else text


class NvmlReader:
    """Reads every NVIDIA GPU of this machine through NVML.

    Not thread-safe: call :meth:`read` and :meth:`close` from one thread at a time (the
    sampler's single worker thread). ``import_module`` replaces the import of ``pynvml``
    in tests; ``retry_s`` is how long to wait before trying a failing ``nvmlInit`` again.

    Attributes:
        calls: NVML calls made so far (a cheap measure of what reading costs).
    """

    def __init__(
        self,
        *,
        import_module: Callable[[str], ModuleType] = importlib.import_module,
        retry_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._import = import_module
        self._retry_s = retry_s
        self._clock = clock
        self._nvml: ModuleType | None = None
        self._initialised = False
        self._final: GpuReading | None = None  # NO_GPU: never asked again
        self._failed: tuple[float, GpuReading] | None = None  # init error, retried later
        self._devices: list[_Device] = []
        self._driver = ""
        self._names: dict[int, str] = {}  # process names by pid, for pids still on a GPU
        self.calls = 0

    # -- life cycle -------------------------------------------------------------------
    def _start(self) -> GpuReading | None:
        """Import and initialise NVML once; a reading when there is nothing to read."""
        if self._initialised:
            return None
        if self._final is not None:
            return self._final
        if self._failed is not None and self._clock() - self._failed[0] < self._retry_s:
            return self._failed[1]
        try:
            nvml = self._nvml or self._import("pynvml")
        except ImportError as exc:
            log.info("NVML bindings not importable: %s", exc)
            self._final = GpuReading(GpuState.NO_GPU, NO_GPU_NO_BINDINGS)
            return self._final
        self._nvml = nvml
        error_class: type[BaseException] = getattr(nvml, "NVMLError", Exception)
        try:
            self.calls += 1
            nvml.nvmlInit()
        except error_class as exc:
            return self._init_failed(exc)
        except OSError as exc:  # a broken library file
            return self._init_failed(exc)
        self._initialised = True
        try:
            self.calls += 1
            count = int(nvml.nvmlDeviceGetCount())
        except error_class as exc:
            self._shutdown()
            return self._init_failed(exc)
        if count <= 0:
            self._shutdown()
            self._final = GpuReading(GpuState.NO_GPU, NO_GPU_NO_DEVICE)
            return self._final
        try:
            self.calls += 1
            self._driver = _text(nvml.nvmlSystemGetDriverVersion())
        except error_class:
            self._driver = ""
        self._devices = [self._open_device(nvml, i) for i in range(count)]
        self._failed = None
        return None

    def _init_failed(self, exc: BaseException) -> GpuReading:
        code = _code(exc)
        if code in _NO_GPU_CODES:
            self._final = GpuReading(GpuState.NO_GPU, _NO_GPU_CODES[code])
            log.info("%s", self._final.reason)
            return self._final
        if code == ERROR_NO_PERMISSION:
            reason = "NVIDIA GPUs cannot be read: NVML refused access (no permission)."
        else:
            reason = f"NVIDIA GPUs cannot be read: NVML failed to start ({_describe(exc)})."
        reading = GpuReading(GpuState.ERROR, reason)
        self._failed = (self._clock(), reading)
        log.warning("%s", reason)
        return reading

    def _open_device(self, nvml: ModuleType, index: int) -> _Device:
        error_class: type[BaseException] = nvml.NVMLError
        try:
            self.calls += 1
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except error_class as exc:
            device = _Device(index, None, f"GPU {index}", "")
            device.lost = self._lost_reason(device, exc)
            return device
        device = _Device(index, handle, f"GPU {index}", "")
        for attr, call in (("name", "nvmlDeviceGetName"), ("uuid", "nvmlDeviceGetUUID")):
            try:
                self.calls += 1
                setattr(device, attr, _text(getattr(nvml, call)(handle)))
            except error_class as exc:
                if _code(exc) == ERROR_GPU_IS_LOST:
                    device.lost = self._lost_reason(device, exc)
                    break
        return device

    def _lost_reason(self, device: _Device, exc: BaseException) -> str:
        if _code(exc) == ERROR_GPU_IS_LOST:
            named = "" if device.name == f"GPU {device.index}" else f" ({device.name})"
            return (
                f"GPU {device.index}{named} is lost: it stopped answering the driver and "
                "needs a reset or a reboot."
            )
        return f"GPU {device.index} cannot be read: {_describe(exc)}."

    def _shutdown(self) -> None:
        if not self._initialised or self._nvml is None:
            return
        self._initialised = False
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError as exc:
            log.info("nvmlShutdown failed: %s", _describe(exc))

    def close(self) -> None:
        """Shut NVML down (when it was started). A later :meth:`read` starts it again."""
        self._shutdown()
        self._devices = []
        self._names.clear()
        self._final = None
        self._failed = None

    # -- reading ----------------------------------------------------------------------
    def read(self) -> GpuReading:
        """Read every GPU once. Never raises for anything NVML does."""
        early = self._start()
        if early is not None:
            return early
        nvml = self._nvml
        assert nvml is not None
        gpus = tuple(self._read_device(nvml, d) for d in self._devices)
        lost = [g.error for g in gpus if g.error]
        if lost and len(lost) == len(gpus):
            return GpuReading(GpuState.ERROR, " ".join(lost), gpus, self._driver)
        live = {p.pid for g in gpus for p in g.processes}
        for pid in [p for p in self._names if p not in live]:
            del self._names[pid]
        return GpuReading(GpuState.OK, " ".join(lost), gpus, self._driver)

    def _call(self, nvml: ModuleType, device: _Device, metric: str, fn: str, *args: Any) -> Any:
        """One NVML call for one metric; None when it cannot be read."""
        if metric in device.unsupported:
            return None
        try:
            self.calls += 1
            return getattr(nvml, fn)(device.handle, *args)
        except nvml.NVMLError as exc:
            code = _code(exc)
            if code == ERROR_GPU_IS_LOST:
                raise _LostGpu(self._lost_reason(device, exc)) from exc
            if code in _PERMANENT_CODES:
                device.unsupported.add(metric)
            else:
                log.debug("GPU %d: %s failed: %s", device.index, fn, _describe(exc))
            return None
        except AttributeError:  # an older binding without this function
            device.unsupported.add(metric)
            return None

    def _read_device(self, nvml: ModuleType, device: _Device) -> GpuSample:
        if device.lost:
            return GpuSample(device.index, device.name, device.uuid, error=device.lost)
        try:
            return self._read_figures(nvml, device)
        except _LostGpu as lost:
            device.lost = str(lost)
            log.warning("%s", device.lost)
            return GpuSample(device.index, device.name, device.uuid, error=device.lost)

    def _read_figures(self, nvml: ModuleType, device: _Device) -> GpuSample:
        util = self._call(nvml, device, "util", "nvmlDeviceGetUtilizationRates")
        memory = self._call(nvml, device, "memory", "nvmlDeviceGetMemoryInfo")
        temp = self._call(
            nvml,
            device,
            "temp",
            "nvmlDeviceGetTemperature",
            getattr(nvml, "NVML_TEMPERATURE_GPU", _TEMPERATURE_GPU),
        )
        power = self._call(nvml, device, "power", "nvmlDeviceGetPowerUsage")
        limit = self._call(nvml, device, "power_limit", "nvmlDeviceGetEnforcedPowerLimit")
        sm = self._call(
            nvml,
            device,
            "sm_clock",
            "nvmlDeviceGetClockInfo",
            getattr(nvml, "NVML_CLOCK_SM", _CLOCK_SM),
        )
        mem_clock = self._call(
            nvml,
            device,
            "mem_clock",
            "nvmlDeviceGetClockInfo",
            getattr(nvml, "NVML_CLOCK_MEM", _CLOCK_MEM),
        )
        fan = self._call(nvml, device, "fan", "nvmlDeviceGetFanSpeed")
        processes = self._processes(nvml, device)
        return GpuSample(
            index=device.index,
            name=device.name,
            uuid=device.uuid,
            utilization_pct=_number(getattr(util, "gpu", None)),
            memory_utilization_pct=_number(getattr(util, "memory", None)),
            memory_used=_integer(getattr(memory, "used", None)),
            memory_total=_integer(getattr(memory, "total", None)),
            temperature_c=_number(temp),
            power_w=_scaled(power, 1000.0),
            power_limit_w=_scaled(limit, 1000.0),
            sm_clock_mhz=_number(sm),
            memory_clock_mhz=_number(mem_clock),
            fan_pct=_number(fan),
            processes=processes,
        )

    def _processes(self, nvml: ModuleType, device: _Device) -> tuple[GpuProcess, ...]:
        found: dict[int, int | None] = {}
        for metric, fn in (
            ("compute_procs", "nvmlDeviceGetComputeRunningProcesses"),
            ("graphics_procs", "nvmlDeviceGetGraphicsRunningProcesses"),
        ):
            listed = self._call(nvml, device, metric, fn)
            for proc in listed or ():
                pid = getattr(proc, "pid", None)
                if not isinstance(pid, int) or pid in found:
                    continue
                found[pid] = _integer(getattr(proc, "usedGpuMemory", None))
        return tuple(
            GpuProcess(pid, self._process_name(nvml, pid), used) for pid, used in found.items()
        )

    def _process_name(self, nvml: ModuleType, pid: int) -> str:
        name = self._names.get(pid)
        if name is None:
            try:
                self.calls += 1
                name = os.path.basename(_text(nvml.nvmlSystemGetProcessName(pid)).strip())
            except nvml.NVMLError:
                name = ""  # another container's process, or it just ended
            self._names[pid] = name
        return name


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _integer(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _scaled(value: object, divisor: float) -> float | None:
    number = _number(value)
    return None if number is None else number / divisor
