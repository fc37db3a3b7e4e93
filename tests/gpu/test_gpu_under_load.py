"""What the hardware panel would show while a process works the GPU, on a real NVIDIA GPU.

A child process (PyTorch, where it is installed) takes 2 GiB of GPU memory and keeps the
GPU busy with matrix products; Corral's LocalSampler must see the utilisation rise, the
memory taken, the process in the GPU's process list with its memory, and the memory given
back once the child has ended. Skipped, with the reason, without a GPU or without PyTorch.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from app.core.telemetry.local import LocalSampler
from app.core.telemetry.nvml import NvmlReader
from app.core.telemetry.types import GpuState, HostSample
from tests.support.waiting import poll_until

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(240)]

GIB = 1024**3

# Runs until its stdin closes: allocate 2 GiB, say so, then multiply matrices.
WORKER = """
import select, sys, torch
hold = torch.empty(2 * 1024**3, dtype=torch.uint8, device="cuda")
a = torch.randn(8192, 8192, device="cuda")
torch.cuda.synchronize()
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    for _ in range(20):
        a = (a @ a).clamp_(-1, 1)
    torch.cuda.synchronize()
"""


@pytest.fixture
def sampler() -> Iterator[LocalSampler]:
    if shutil.which("nvidia-smi") is None:
        pytest.skip("no NVIDIA GPU here: nvidia-smi is not installed")
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if probe.stdout.strip() != "True":
        pytest.skip(f"no CUDA-capable PyTorch to load the GPU: {probe.stderr.strip()[-200:]}")
    nvml = NvmlReader()
    if nvml.read().state is not GpuState.OK:
        nvml.close()
        pytest.skip("NVML does not start here")
    try:
        yield LocalSampler(nvml=nvml)
    finally:
        nvml.close()


def _sample_until(
    sampler: LocalSampler, condition: Callable[[HostSample], bool], timeout: float, what: str
) -> HostSample:
    """Sample every 0.25 s until ``condition`` holds on a sample."""
    seen: list[HostSample] = []

    def check() -> HostSample | None:
        sample = sampler.sample()
        seen.append(sample)
        return sample if condition(sample) else None

    def readings() -> object:
        return [(g.utilization_pct, g.memory_used, len(g.processes)) for s in seen for g in s.gpus]

    return poll_until(check, timeout, message=what, describe=readings)


def test_a_busy_gpu_shows_its_load_memory_and_process(sampler: LocalSampler) -> None:
    before = sampler.sample()
    assert before.gpu_state is GpuState.OK, before.gpu_reason
    used_before = before.gpus[0].memory_used or 0

    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"

        busy = _sample_until(
            sampler,
            lambda s: (
                (s.gpus[0].utilization_pct or 0.0) >= 50.0
                and (s.gpus[0].memory_used or 0) - used_before >= 2 * GIB
            ),
            timeout=20.0,
            what="utilisation >= 50 % and 2 GiB more memory used",
        )
        gpu = busy.gpus[0]
        print(
            f"busy: utilisation {gpu.utilization_pct} %, memory used "
            f"{(gpu.memory_used or 0) / GIB:.2f} GiB (before {used_before / GIB:.2f}), "
            f"power {gpu.power_w} W, temperature {gpu.temperature_c} C, "
            f"SM clock {gpu.sm_clock_mhz} MHz, processes {gpu.processes}"
        )
        listed = [p for g in busy.gpus for p in g.processes]
        if listed:
            # The driver may list processes by the pids of another namespace; where it lists
            # ours, its memory must be at least the 2 GiB it holds.
            ours = [p for p in listed if p.pid == proc.pid]
            if ours:
                assert (ours[0].used_memory or 0) >= 2 * GIB
        else:
            print("NVML lists no compute processes here (container pid namespace)")
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    after = _sample_until(
        sampler,
        lambda s: (s.gpus[0].memory_used or 0) - used_before < GIB,
        timeout=20.0,
        what="the memory given back",
    )
    assert all(p.pid != proc.pid for g in after.gpus for p in g.processes)
