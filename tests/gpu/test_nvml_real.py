"""Corral's NVML readings against nvidia-smi's, on a machine with an NVIDIA GPU.

Skipped, with the reason, where ``nvidia-smi`` is missing or NVML does not start.
Utilisation, temperature and power move between two readings, so they are compared
within tolerances; name, UUID and memory total must match.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from app.core.telemetry.local import LocalSampler
from app.core.telemetry.nvml import GpuReading, NvmlReader
from app.core.telemetry.types import GpuState

pytestmark = pytest.mark.gpu

MIB = 1024 * 1024
FIELDS = "index,name,uuid,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw"


@dataclass(frozen=True)
class SmiGpu:
    index: int
    name: str
    uuid: str
    memory_total_mib: float
    memory_used_mib: float
    utilization: float | None
    temperature: float | None
    power_w: float | None


def _number(text: str) -> float | None:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def _smi(*args: str) -> str:
    done = subprocess.run(
        ["nvidia-smi", *args], capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"nvidia-smi failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def smi_gpus() -> list[SmiGpu]:
    out = []
    for line in _smi(f"--query-gpu={FIELDS}", "--format=csv,noheader,nounits").splitlines():
        if not line.strip():
            continue
        index, name, uuid, total, used, util, temp, power = (p.strip() for p in line.split(","))
        out.append(
            SmiGpu(
                int(index),
                name,
                uuid,
                float(total),
                float(used),
                _number(util),
                _number(temp),
                _number(power),
            )
        )
    return out


@pytest.fixture
def reader() -> Iterator[NvmlReader]:
    if shutil.which("nvidia-smi") is None:
        pytest.skip("no NVIDIA GPU here: nvidia-smi is not installed")
    nvml = NvmlReader()
    reading = nvml.read()
    if reading.state is not GpuState.OK:
        nvml.close()
        pytest.skip(f"NVML does not start here: {reading.reason or reading.state.value}")
    try:
        yield nvml
    finally:
        nvml.close()


def test_names_uuids_and_memory_match_nvidia_smi(reader: NvmlReader) -> None:
    reading: GpuReading = reader.read()
    smi = smi_gpus()
    assert [g.index for g in reading.gpus] == [s.index for s in smi]
    for ours, theirs in zip(reading.gpus, smi, strict=True):
        assert ours.error == ""
        assert ours.name == theirs.name
        assert ours.uuid == theirs.uuid
        assert ours.memory_total is not None
        assert abs(ours.memory_total / MIB - theirs.memory_total_mib) <= 1.0
        assert ours.memory_used is not None
        # Used memory moves with other processes; a few hundred MiB of slack.
        assert abs(ours.memory_used / MIB - theirs.memory_used_mib) <= 512.0


def test_utilisation_temperature_and_power_are_close_to_nvidia_smi(reader: NvmlReader) -> None:
    reading = reader.read()
    smi = smi_gpus()
    for ours, theirs in zip(reading.gpus, smi, strict=True):
        if theirs.utilization is not None:
            assert ours.utilization_pct is not None
            assert abs(ours.utilization_pct - theirs.utilization) <= 25.0
        if theirs.temperature is not None:
            assert ours.temperature_c is not None
            assert abs(ours.temperature_c - theirs.temperature) <= 5.0
        if theirs.power_w is not None:
            assert ours.power_w is not None
            assert abs(ours.power_w - theirs.power_w) <= max(25.0, 0.25 * theirs.power_w)
        for value in (ours.utilization_pct, ours.memory_utilization_pct, ours.fan_pct):
            assert value is None or 0.0 <= value <= 100.0


def test_gpu_processes_match_nvidia_smi(reader: NvmlReader) -> None:
    reading = reader.read()
    ours = {p.pid: p.used_memory for g in reading.gpus for p in g.processes}
    out = _smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
    for line in out.splitlines():
        if not line.strip():
            continue
        pid_text, used_text = (p.strip() for p in line.split(","))
        pid, used = int(pid_text), _number(used_text)
        if pid in ours and ours[pid] is not None and used is not None:
            assert abs(ours[pid] / MIB - used) <= 64.0  # type: ignore[operator]


def test_the_sampler_reports_the_gpus_and_stays_cheap(reader: NvmlReader) -> None:
    sampler = LocalSampler(nvml=reader)
    samples = [sampler.sample() for _ in range(20)]
    last = samples[-1]
    assert last.gpu_state is GpuState.OK
    assert len(last.gpus) == len(smi_gpus())
    costs = sorted(s.cost_ms or 0.0 for s in samples[1:])
    # NVML calls take tens of microseconds each; a sample of a few GPUs stays well under
    # 50 ms (reported by the bench as well).
    assert costs[len(costs) // 2] < 50.0
