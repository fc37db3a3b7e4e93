"""The NVML reader against a fake ``pynvml`` module that each test installs.

The fake mimics nvidia-ml-py where it matters: ``NVMLError(code)`` builds the subclass for
the code (``NVMLError_NotSupported``, ``NVMLError_GpuIsLost``, ...), names come back as
bytes or text, memory in bytes, power in milliwatts, per-process memory may be None.
:class:`FakeNvml` is imported by the agent's tests too.
"""

from __future__ import annotations

import sys
import types
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.core.telemetry.nvml import (
    NO_GPU_NO_BINDINGS,
    NO_GPU_NO_DEVICE,
    NO_GPU_NO_DRIVER,
    NO_GPU_NO_LIBRARY,
    NvmlReader,
)
from app.core.telemetry.types import GpuState

GIB = 1024**3

ERROR_NAMES = {
    1: "Uninitialized",
    3: "NotSupported",
    4: "NoPermission",
    6: "NotFound",
    9: "DriverNotLoaded",
    12: "LibraryNotFound",
    13: "FunctionNotFound",
    15: "GpuIsLost",
    999: "Unknown",
}


@dataclass
class FakeGpu:
    name: str | bytes
    uuid: str
    util: int = 10
    mem_util: int = 5
    total: int = 24 * GIB
    used: int = 2 * GIB
    temp: int = 40
    power_mw: int = 100_000
    limit_mw: int = 350_000
    sm_mhz: int = 1500
    mem_mhz: int = 9500
    fan: int = 30
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    unsupported: set[str] = field(default_factory=set)  # function names -> NotSupported
    failing: dict[str, int] = field(default_factory=dict)  # function name -> error code
    lost: bool = False


class FakeNvml(types.ModuleType):
    """A stand-in for the ``pynvml`` module of nvidia-ml-py."""

    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2

    def __init__(
        self,
        gpus: list[FakeGpu],
        *,
        init_error: int | None = None,
        process_names: dict[int, bytes] | None = None,
    ) -> None:
        super().__init__("pynvml")
        self.gpus = gpus
        self.init_error = init_error
        self.process_names = process_names or {}
        self.calls: Counter[str] = Counter()
        self.initialised = 0
        self.shut_down = 0

        class NVMLError(Exception):
            _by_code: dict[int, type[NVMLError]] = {}  # noqa: RUF012

            def __new__(cls, value: int) -> NVMLError:
                if cls is NVMLError:
                    cls = NVMLError._by_code.get(value, cls)
                obj = Exception.__new__(cls)
                obj.value = value  # type: ignore[attr-defined]
                return obj

            def __init__(self, value: int) -> None:
                super().__init__(value)
                self.value = value

            def __str__(self) -> str:
                return ERROR_NAMES.get(self.value, "Unknown Error")

        for code, name in ERROR_NAMES.items():
            sub = type(f"NVMLError_{name}", (NVMLError,), {})
            NVMLError._by_code[code] = sub
            setattr(self, f"NVMLError_{name}", sub)
            setattr(self, f"NVML_ERROR_{name.upper()}", code)
        self.NVMLError = NVMLError

    # -- helpers ----------------------------------------------------------------------
    def _gpu(self, fn: str, handle: Any) -> FakeGpu:
        self.calls[fn] += 1
        gpu: FakeGpu = handle
        if gpu.lost:
            raise self.NVMLError(15)
        if fn in gpu.unsupported:
            raise self.NVMLError(3)
        if fn in gpu.failing:
            raise self.NVMLError(gpu.failing[fn])
        return gpu

    # -- the pynvml API used by Corral -----------------------------------------------
    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            raise self.NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.calls["nvmlShutdown"] += 1
        self.shut_down += 1

    def nvmlDeviceGetCount(self) -> int:
        self.calls["nvmlDeviceGetCount"] += 1
        return len(self.gpus)

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self.calls["nvmlDeviceGetHandleByIndex"] += 1
        return self.gpus[index]

    def nvmlDeviceGetName(self, handle: Any) -> str | bytes:
        return self._gpu("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self._gpu("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        g = self._gpu("nvmlDeviceGetUtilizationRates", handle)
        return types.SimpleNamespace(gpu=g.util, memory=g.mem_util)

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        g = self._gpu("nvmlDeviceGetMemoryInfo", handle)
        return types.SimpleNamespace(total=g.total, free=g.total - g.used, used=g.used)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self._gpu("nvmlDeviceGetTemperature", handle).temp

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return self._gpu("nvmlDeviceGetPowerUsage", handle).power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return self._gpu("nvmlDeviceGetEnforcedPowerLimit", handle).limit_mw

    def nvmlDeviceGetClockInfo(self, handle: Any, clock: int) -> int:
        g = self._gpu("nvmlDeviceGetClockInfo", handle)
        return {self.NVML_CLOCK_SM: g.sm_mhz, self.NVML_CLOCK_MEM: g.mem_mhz}[clock]

    def nvmlDeviceGetFanSpeed(self, handle: Any) -> int:
        return self._gpu("nvmlDeviceGetFanSpeed", handle).fan

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        g = self._gpu("nvmlDeviceGetComputeRunningProcesses", handle)
        return [types.SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in g.processes]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: Any) -> list[Any]:
        self._gpu("nvmlDeviceGetGraphicsRunningProcesses", handle)
        return []

    def nvmlSystemGetProcessName(self, pid: int) -> bytes:
        self.calls["nvmlSystemGetProcessName"] += 1
        if pid not in self.process_names:
            raise self.NVMLError(6)  # NotFound: another container's process
        return self.process_names[pid]


def three_gpus() -> list[FakeGpu]:
    return [
        FakeGpu(
            b"NVIDIA GeForce RTX 4090",
            "GPU-aaaa",
            util=87,
            used=20 * GIB,
            processes=[(4242, 18 * GIB), (4343, None)],
        ),
        FakeGpu(
            "Tesla T4",
            "GPU-bbbb",
            util=3,
            total=16 * GIB,
            used=1 * GIB,
            unsupported={"nvmlDeviceGetFanSpeed", "nvmlDeviceGetPowerUsage"},
        ),
        FakeGpu("NVIDIA A100-SXM4-80GB", "GPU-cccc", total=80 * GIB, used=0, fan=0),
    ]


def install(monkeypatch: pytest.MonkeyPatch, fake: FakeNvml | None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake)  # None: the import fails


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    module = FakeNvml(
        three_gpus(), process_names={4242: b"/usr/local/bin/ollama", 4343: b"python3"}
    )
    install(monkeypatch, module)
    return module


def test_several_gpus_are_read_with_their_units(fake: FakeNvml) -> None:
    reading = NvmlReader().read()
    assert reading.state is GpuState.OK
    assert reading.reason == ""
    assert reading.driver_version == "550.54.15"
    first, second, third = reading.gpus
    assert [g.index for g in reading.gpus] == [0, 1, 2]
    assert first.name == "NVIDIA GeForce RTX 4090"  # bytes from older bindings decoded
    assert first.uuid == "GPU-aaaa"
    assert first.utilization_pct == 87.0
    assert first.memory_utilization_pct == 5.0
    assert (first.memory_used, first.memory_total) == (20 * GIB, 24 * GIB)
    assert first.temperature_c == 40.0
    assert first.power_w == 100.0  # NVML gives milliwatts
    assert first.power_limit_w == 350.0
    assert (first.sm_clock_mhz, first.memory_clock_mhz) == (1500.0, 9500.0)
    assert first.fan_pct == 30.0
    assert [(p.pid, p.name, p.used_memory) for p in first.processes] == [
        (4242, "ollama", 18 * GIB),
        (4343, "python3", None),  # no figure (Windows WDDM): absent, not 0
    ]
    assert second.name == "Tesla T4"
    assert third.fan_pct == 0.0  # a real 0 stays 0
    assert reading.process_vram() == {4242: 18 * GIB}


def test_unsupported_metrics_are_absent_and_not_asked_again(fake: FakeNvml) -> None:
    reader = NvmlReader()
    reading = reader.read()
    t4 = reading.gpus[1]
    assert t4.fan_pct is None and t4.power_w is None
    assert t4.power_limit_w == 350.0 and t4.temperature_c == 40.0  # the rest is there
    assert t4.error == ""
    assert reading.state is GpuState.OK
    fan_calls = fake.calls["nvmlDeviceGetFanSpeed"]
    assert fan_calls == 3  # once per GPU
    for _ in range(5):
        again = reader.read()
    assert again.gpus[1].fan_pct is None
    # The two GPUs that have a fan were asked each time; the T4 never again.
    assert fake.calls["nvmlDeviceGetFanSpeed"] == fan_calls + 5 * 2
    assert fake.calls["nvmlInit"] == 1  # initialised once


def test_a_transient_error_leaves_a_metric_out_for_one_read_only(fake: FakeNvml) -> None:
    reader = NvmlReader()
    fake.gpus[2].failing["nvmlDeviceGetTemperature"] = 999  # NVML_ERROR_UNKNOWN
    assert reader.read().gpus[2].temperature_c is None
    del fake.gpus[2].failing["nvmlDeviceGetTemperature"]
    assert reader.read().gpus[2].temperature_c == 40.0


def test_a_gpu_lost_mid_run_is_marked_with_a_reason_and_left_alone(fake: FakeNvml) -> None:
    reader = NvmlReader()
    assert reader.read().state is GpuState.OK
    fake.gpus[1].lost = True
    reading = reader.read()
    assert reading.state is GpuState.OK  # two GPUs still answer
    lost = reading.gpus[1]
    assert "GPU 1 (Tesla T4) is lost" in lost.error
    assert lost.utilization_pct is None and lost.memory_used is None
    assert lost.name == "Tesla T4" and lost.uuid == "GPU-bbbb"
    assert reading.reason == lost.error  # the sample's gpu_reason names it
    assert reading.gpus[0].utilization_pct == 87.0 and reading.gpus[2].error == ""
    calls = sum(fake.calls.values())
    again = reader.read()
    assert again.gpus[1].error == lost.error
    # The lost GPU is not asked again: the next read makes only the two others' calls,
    # ten each (eight figures and two process lists).
    assert sum(fake.calls.values()) - calls == 2 * 10


def test_every_gpu_lost_is_an_error_state(fake: FakeNvml) -> None:
    reader = NvmlReader()
    for gpu in fake.gpus:
        gpu.lost = True
    reading = reader.read()
    assert reading.state is GpuState.ERROR
    assert reading.reason.count("is lost") == 3


@pytest.mark.parametrize(
    ("code", "reason"),
    [(12, NO_GPU_NO_LIBRARY), (9, NO_GPU_NO_DRIVER)],
    ids=["LibraryNotFound", "DriverNotLoaded"],
)
def test_no_library_or_no_driver_is_the_no_gpu_state_and_costs_nothing_after(
    monkeypatch: pytest.MonkeyPatch, code: int, reason: str
) -> None:
    fake = FakeNvml(three_gpus(), init_error=code)
    install(monkeypatch, fake)
    reader = NvmlReader()
    reading = reader.read()
    assert reading.state is GpuState.NO_GPU
    assert reading.state.value == "no NVIDIA GPU found"
    assert reading.reason == reason
    assert reading.gpus == ()
    calls = sum(fake.calls.values())
    for _ in range(10):
        assert reader.read() is reading
    assert sum(fake.calls.values()) == calls == 1  # only the one nvmlInit
    reader.close()
    assert fake.shut_down == 0  # never initialised: nothing to shut down


def test_no_bindings_is_the_no_gpu_state(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, None)
    reading = NvmlReader().read()
    assert reading.state is GpuState.NO_GPU
    assert reading.reason == NO_GPU_NO_BINDINGS


def test_a_driver_without_devices_is_the_no_gpu_state(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml([])
    install(monkeypatch, fake)
    reader = NvmlReader()
    reading = reader.read()
    assert (reading.state, reading.reason) == (GpuState.NO_GPU, NO_GPU_NO_DEVICE)
    assert fake.shut_down == 1  # initialised, found nothing, shut down at once


def test_other_init_failures_are_an_error_retried_later(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml(three_gpus(), init_error=4)  # NoPermission
    install(monkeypatch, fake)
    now = [0.0]
    reader = NvmlReader(retry_s=60.0, clock=lambda: now[0])
    reading = reader.read()
    assert reading.state is GpuState.ERROR
    assert "no permission" in reading.reason
    now[0] = 30.0
    assert reader.read() is reading and fake.calls["nvmlInit"] == 1
    fake.init_error = None
    now[0] = 61.0
    assert reader.read().state is GpuState.OK
    assert fake.calls["nvmlInit"] == 2


def test_close_shuts_nvml_down_once(fake: FakeNvml) -> None:
    reader = NvmlReader()
    reader.read()
    reader.close()
    reader.close()
    assert (fake.initialised, fake.shut_down) == (1, 1)
