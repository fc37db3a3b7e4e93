"""This machine's sampler, with psutil for real (and a fake NVML where GPUs matter)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from app.core.telemetry.local import LocalSampler, classify_process
from app.core.telemetry.nvml import NO_GPU_NO_LIBRARY, NvmlReader
from app.core.telemetry.types import GpuState, HostSample
from tests.core.test_telemetry_nvml import GIB, FakeGpu, FakeNvml

MIB = 1024 * 1024
BLOB_MIB = 64

# A child that holds BLOB_MIB of touched memory, says "ready" and waits for stdin to close.
CHILD = textwrap.dedent(
    f"""
    import sys
    blob = bytearray({BLOB_MIB} * 1024 * 1024)
    blob[::4096] = b"x" * len(blob[::4096])
    print("ready", flush=True)
    sys.stdin.readline()
    """
)


class Child:
    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the child has its memory
        assert line.strip() == "ready", line

    @property
    def pid(self) -> int:
        return self.proc.pid

    def end(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, 15)  # ended by its pid
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    fake = FakeNvml([], init_error=12)  # LibraryNotFound
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


@pytest.fixture
def llama_server(tmp_path: Path) -> Iterator[Child]:
    """A process whose OS name is ``llama-server`` (started through a link so named)."""
    link = tmp_path / "llama-server"
    link.symlink_to(sys.executable)
    child = Child([str(link), "-c", CHILD])
    try:
        yield child
    finally:
        child.end()


def test_a_sample_has_cpu_memory_and_swap_in_range(no_gpu: FakeNvml) -> None:
    sampler = LocalSampler()
    try:
        sample = sampler.sample()
    finally:
        sampler.close()
    assert sample.cpu_pct is not None and 0.0 <= sample.cpu_pct <= 100.0
    assert len(sample.cpu_per_core) == psutil.cpu_count()
    assert all(0.0 <= v <= 100.0 for v in sample.cpu_per_core)
    assert sample.ram_total == psutil.virtual_memory().total
    assert sample.ram_used is not None and 0 < sample.ram_used <= sample.ram_total
    assert sample.swap_total is not None and sample.swap_used is not None
    assert 0 <= sample.swap_used <= max(sample.swap_total, 0)
    assert sample.cost_ms is not None and sample.cost_ms > 0
    # No NVIDIA driver: a clear state, and the CPU figures are there all the same.
    assert sample.gpu_state is GpuState.NO_GPU
    assert sample.gpu_reason == NO_GPU_NO_LIBRARY
    assert sample.gpus == ()


def test_without_gpu_reading_the_state_is_unknown() -> None:
    sample = LocalSampler(gpu=False).sample()
    assert sample.gpu_state is GpuState.UNKNOWN


def test_a_model_server_process_is_found_with_its_rss(
    no_gpu: FakeNvml, llama_server: Child
) -> None:
    sampler = LocalSampler()
    first = _find(sampler.sample(), llama_server.pid)
    assert first.name == "llama-server"
    assert first.kind == "llama.cpp"
    assert first.rss is not None and first.rss >= BLOB_MIB * MIB
    assert abs(first.rss - psutil.Process(llama_server.pid).memory_info().rss) < 16 * MIB
    assert first.cpu_pct is None  # a process's first reading has nothing to compare with
    assert first.vram is None  # no GPU readings: unknown, not 0
    second = _find(sampler.sample(), llama_server.pid)
    assert second.cpu_pct is not None and second.cpu_pct >= 0.0
    llama_server.end()
    assert all(p.pid != llama_server.pid for p in sampler.sample().model_processes)


def test_a_server_started_under_another_argv0_is_found(no_gpu: FakeNvml) -> None:
    """``exec -a llama-server python ...``: the OS name stays python, argv[0] says it."""
    child = Child(["bash", "-c", 'exec -a llama-server "$0" -c "$1"', sys.executable, CHILD])
    try:
        assert psutil.Process(child.pid).name().startswith("python")
        found = _find(LocalSampler().sample(), child.pid)
        assert (found.name, found.kind) == ("llama-server", "llama.cpp")
    finally:
        child.end()


def test_a_launcher_that_execs_into_a_server_later_is_found(
    no_gpu: FakeNvml, tmp_path: Path
) -> None:
    """A young process that is not a server yet is looked at again at the next sample."""
    link = tmp_path / "llama-server"
    link.symlink_to(sys.executable)
    launcher = textwrap.dedent(
        f"""
        import os, sys
        print("ready", flush=True)
        sys.stdin.readline()
        os.execv({str(link)!r}, [{str(link)!r}, "-c", {CHILD!r}])
        """
    )
    child = Child([sys.executable, "-c", launcher])
    try:
        sampler = LocalSampler(young_s=600.0, recheck_s=0.0)
        assert all(p.pid != child.pid for p in sampler.sample().model_processes)
        assert child.proc.stdin is not None and child.proc.stdout is not None
        child.proc.stdin.write("go\n")
        child.proc.stdin.flush()
        assert child.proc.stdout.readline().strip() == "ready"  # now it is llama-server
        assert _find(sampler.sample(), child.pid).name == "llama-server"
    finally:
        child.end()


def test_gpu_memory_of_a_server_is_joined_by_pid(
    monkeypatch: pytest.MonkeyPatch, llama_server: Child
) -> None:
    fake = FakeNvml(
        [FakeGpu("NVIDIA L4", "GPU-1", processes=[(llama_server.pid, 3 * GIB)])],
        process_names={},  # NVML cannot name it: the process table does
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    sampler = LocalSampler(nvml=NvmlReader())
    sample = sampler.sample()
    sampler.close()
    assert sample.gpu_state is GpuState.OK
    assert _find(sample, llama_server.pid).vram == 3 * GIB
    [gpu] = sample.gpus
    assert [(p.pid, p.name, p.used_memory) for p in gpu.processes] == [
        (llama_server.pid, "llama-server", 3 * GIB)
    ]
    assert fake.shut_down == 1


@pytest.mark.parametrize(
    ("name", "cmdline", "expected"),
    [
        ("ollama", ["/usr/local/bin/ollama", "serve"], ("ollama serve", "ollama")),
        ("ollama", ["/usr/local/bin/ollama", "runner", "--port", "3"], ("ollama runner", "ollama")),
        ("ollama", ["ollama", "run", "llama3.2"], None),  # the client, not a server
        ("ollama.exe", ["C:\\Ollama\\ollama.exe", "serve"], ("ollama serve", "ollama")),
        (
            "ollama_llama_se",
            ["/tmp/ollama_llama_server", "--model", "x"],
            ("ollama runner", "ollama"),
        ),
        ("llama-server", ["./llama-server", "-m", "m.gguf"], ("llama-server", "llama.cpp")),
        ("vllm", ["/usr/bin/vllm", "serve", "Qwen/Qwen3-0.6B"], ("vllm", "vllm")),
        ("VLLM::EngineCor", ["VLLM::EngineCore"], ("vllm engine", "vllm")),
        ("python3", ["python3", "-m", "vllm.entrypoints.openai.api_server"], ("vllm", "vllm")),
        ("python3", ["python3", "-m", "llama_cpp.server"], ("llama-cpp-python", "llama.cpp")),
        ("python3.11", ["python3.11", "-m", "xllamacpp.server"], ("xllamacpp", "llama.cpp")),
        ("python", ["python", "serve.py", "--engine", "xllamacpp"], ("xllamacpp", "llama.cpp")),
        (
            "python3",
            ["/venv/bin/python3", "-m", "app.core.engine.server", "--model", "g.gguf"],
            ("Corral engine", "llama.cpp"),
        ),
        (
            "python",
            ["python", "-m", "app", "engine", "--model", "g"],
            ("Corral engine", "llama.cpp"),
        ),
        ("python", ["python", "-m", "app", "--self-test"], None),
        ("corral", ["/opt/corral/corral", "engine", "--port", "0"], ("Corral engine", "llama.cpp")),
        ("corral", ["/opt/corral/corral"], None),  # the app itself
        ("LM Studio", ["/opt/LM Studio/lm-studio"], ("LM Studio", "lmstudio")),
        ("llmster", ["llmster"], ("LM Studio", "lmstudio")),
        ("lms", ["lms", "server", "start"], ("LM Studio", "lmstudio")),
        ("lms", ["lms", "ls"], None),
        ("python3", ["python3", "-m", "http.server"], None),
        ("bash", ["bash"], None),
    ],
)
def test_classify_process(name: str, cmdline: list[str], expected: tuple[str, str] | None) -> None:
    assert classify_process(name, cmdline) == expected


def _find(sample: HostSample, pid: int):  # type: ignore[no-untyped-def]
    for proc in sample.model_processes:
        if proc.pid == pid:
            return proc
    raise AssertionError(f"pid {pid} not among {sample.model_processes}")
