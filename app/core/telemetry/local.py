"""This machine's hardware: CPU, memory, swap, GPUs and model-server processes.

:class:`LocalSampler` is blocking and is meant to run on one worker thread
(:class:`app.core.telemetry.sources.LocalSource` does that). One :meth:`LocalSampler.sample`
costs a few psutil calls that read ``/proc`` (or the OS's equivalent), plus NVML when there
is a GPU:

- CPU with ``psutil.cpu_percent(interval=None, percpu=True)``: the usage since the
  previous call, without blocking (the sampler primes it when it is created). The total
  is the mean of the cores.
- RAM as ``total - available`` (what applications cannot get back), swap as used/total.
- Model-server processes: new process ids are classified once by name and command line
  (:func:`classify_process`); a process that is younger than ``young_s`` and not (yet) a
  model server is looked at again (at most every ``recheck_s``), since a launcher may
  still exec into the server. Every ``rescan_s`` the whole table is classified again
  (process ids get reused). Known servers get their CPU (per pid, between samples) and
  RSS read each time.
- GPUs through :class:`app.core.telemetry.nvml.NvmlReader`; GPU memory per process is
  joined to the model-server processes by pid.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import psutil

from app.core.telemetry.nvml import GpuReading, NvmlReader
from app.core.telemetry.types import GpuSample, GpuState, HostSample, ProcessSample

log = logging.getLogger(__name__)

_PYTHON_PREFIXES = ("python", "pypy")
_LLAMACPP_NAMES = frozenset({"llama-server", "llama_server", "llama-cpp-server"})
_LMSTUDIO_PREFIXES = ("lm studio", "lm-studio", "lmstudio")


def _exe_name(text: str) -> str:
    base = os.path.basename(text.replace("\\", "/")).strip().lower()
    return base.removesuffix(".exe")


def classify_process(name: str, cmdline: Sequence[str]) -> tuple[str, str] | None:
    """``(label, kind)`` for a model-server process, None for any other process.

    ``label`` says what it is ("ollama serve", "ollama runner", "llama-server", "vllm",
    "vllm engine", "LM Studio", "llama-cpp-python", "xllamacpp", "Corral engine" for
    Corral's own built-in engine); ``kind`` is the server family as a HostKind value
    ("ollama", "llama.cpp", "vllm", "lmstudio").

    Recognised: ``ollama serve`` and ``ollama runner`` (and the older
    ``ollama_llama_server``), ``llama-server``, ``vllm serve`` and vLLM's
    ``VLLM::EngineCore`` workers, LM Studio (its app, its ``llmster`` daemon and
    ``lms server``), and Python processes running ``vllm``, ``llama_cpp.server`` or
    ``xllamacpp``. The ollama command line client (``ollama run``, ``ollama ps``) is not
    a server. The name is matched both as the OS reports it and as the command line's
    first word, so a process started under another ``argv[0]`` is recognised by either.
    """
    args = [a for a in cmdline if a]
    candidates = {_exe_name(name)}
    if args:
        candidates.add(_exe_name(args[0]))
    rest = [a.lower() for a in args[1:]]
    first = rest[0] if rest else ""
    if "ollama" in candidates:
        if first == "serve":
            return "ollama serve", "ollama"
        if first == "runner":
            return "ollama runner", "ollama"
        return None
    if "ollama_llama_server" in candidates:
        return "ollama runner", "ollama"
    if candidates & _LLAMACPP_NAMES:
        return "llama-server", "llama.cpp"
    if "vllm" in candidates and first == "serve":
        return "vllm", "vllm"
    if any(c.startswith("vllm::") for c in candidates):
        return "vllm engine", "vllm"
    if "llmster" in candidates or any(c.startswith(_LMSTUDIO_PREFIXES) for c in candidates):
        return "LM Studio", "lmstudio"
    if "lms" in candidates and first == "server":
        return "LM Studio", "lmstudio"
    if "corral" in candidates and first == "engine":  # the packaged app's built-in engine
        return "Corral engine", "llama.cpp"
    if any(c.startswith(_PYTHON_PREFIXES) for c in candidates):
        return _classify_python(rest)
    return None


def _classify_python(args: Sequence[str]) -> tuple[str, str] | None:
    modules = [(args[i + 1], args[i + 2 : i + 3]) for i, a in enumerate(args[:-1]) if a == "-m"]
    for module, then in modules:
        if module == "app.core.engine.server" or (module == "app" and then == ["engine"]):
            return "Corral engine", "llama.cpp"
        if module == "vllm" or module.startswith("vllm."):
            return "vllm", "vllm"
        if module.startswith("llama_cpp.server"):
            return "llama-cpp-python", "llama.cpp"
        if module.startswith("xllamacpp"):
            return "xllamacpp", "llama.cpp"
    joined = " ".join(args)
    if "vllm.entrypoints" in joined:
        return "vllm", "vllm"
    if "xllamacpp" in joined:
        return "xllamacpp", "llama.cpp"
    return None


@dataclass
class _Tracked:
    process: psutil.Process
    label: str
    kind: str
    primed: bool = False  # cpu_percent has a previous reading to compare with


class LocalSampler:
    """Takes samples of this machine's hardware. Blocking; one thread at a time.

    ``gpu`` False leaves NVML alone (the sample says UNKNOWN for GPUs); ``nvml`` replaces
    the reader (tests). ``rescan_s``, ``young_s`` and ``recheck_s`` tune the process
    classification (see the module's docstring). ``clock`` gives the sample's time
    (seconds since the epoch).

    Attributes:
        samples: how many samples were taken.
    """

    def __init__(
        self,
        *,
        gpu: bool = True,
        nvml: NvmlReader | None = None,
        rescan_s: float = 60.0,
        young_s: float = 2.0,
        recheck_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._nvml = (nvml or NvmlReader()) if gpu else None
        self._rescan_s = rescan_s
        self._young_s = young_s
        self._recheck_s = recheck_s
        self._clock = clock
        self._known: dict[int, _Tracked | None] = {}  # classified pids (None: not a server)
        self._young: dict[int, float] = {}  # young non-servers: pid -> when to look again
        self._last_rescan = 0.0
        self.samples = 0
        self._warned: set[str] = set()
        # The first call of cpu_percent(interval=None) has nothing to compare with.
        self._cpu(prime=True)

    # -- pieces -----------------------------------------------------------------------
    def _problem(self, what: str, exc: BaseException) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("reading %s failed: %s", what, exc)

    def _cpu(self, prime: bool = False) -> tuple[float | None, tuple[float, ...]]:
        try:
            per_core = psutil.cpu_percent(interval=None, percpu=True)
        except (OSError, psutil.Error) as exc:
            self._problem("CPU usage", exc)
            return None, ()
        if prime or not per_core:
            return None, ()
        cores = tuple(float(v) for v in per_core)
        return math.fsum(cores) / len(cores), cores

    def _memory(self) -> tuple[int | None, int | None]:
        try:
            vm = psutil.virtual_memory()
        except (OSError, psutil.Error) as exc:
            self._problem("memory", exc)
            return None, None
        return int(vm.total - vm.available), int(vm.total)

    def _swap(self) -> tuple[int | None, int | None]:
        try:
            sw = psutil.swap_memory()
        except (OSError, psutil.Error) as exc:
            self._problem("swap", exc)
            return None, None
        return int(sw.used), int(sw.total)

    def _classify(self, pid: int, now: float) -> tuple[bool, _Tracked | None]:
        """(keep the verdict, tracked process or None)."""
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                name = process.name()
                try:
                    cmdline = process.cmdline()
                except psutil.AccessDenied:
                    cmdline = []
                created = process.create_time()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return True, None
        except (psutil.AccessDenied, OSError):
            return True, None
        found = classify_process(name, cmdline)
        if found is None:
            return now - created >= self._young_s, None
        return True, _Tracked(process, found[0], found[1])

    def _servers(self) -> list[_Tracked]:
        try:
            pids = psutil.pids()
        except (OSError, psutil.Error) as exc:
            self._problem("the process list", exc)
            return []
        now = time.time()
        mono = time.monotonic()
        if mono - self._last_rescan >= self._rescan_s:
            self._last_rescan = mono
            self._known = {p: t for p, t in self._known.items() if t is not None}
        live = set(pids)
        for pid in [p for p in self._known if p not in live]:
            del self._known[pid]
        for pid in [p for p in self._young if p not in live]:
            del self._young[pid]
        for pid in pids:
            if pid in self._known or self._young.get(pid, 0.0) > mono:
                continue
            keep, tracked = self._classify(pid, now)
            if keep or tracked is not None:
                self._known[pid] = tracked
                self._young.pop(pid, None)
            else:
                self._young[pid] = mono + self._recheck_s
        return [t for t in self._known.values() if t is not None]

    def _read_process(self, tracked: _Tracked, vram: int | None) -> ProcessSample | None:
        process = tracked.process
        try:
            with process.oneshot():
                cpu = process.cpu_percent(interval=None)
                rss = process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            self._known.pop(process.pid, None)
            return None
        except (psutil.AccessDenied, OSError):
            return ProcessSample(process.pid, tracked.label, vram=vram, kind=tracked.kind)
        cpu_pct = float(cpu) if tracked.primed else None
        tracked.primed = True
        return ProcessSample(process.pid, tracked.label, cpu_pct, int(rss), vram, tracked.kind)

    def _gpu(self) -> GpuReading:
        if self._nvml is None:
            return GpuReading(GpuState.UNKNOWN, "GPUs are not read on this machine.")
        return self._nvml.read()

    # -- the sample -------------------------------------------------------------------
    def sample(self) -> HostSample:
        """One reading of this machine. Never raises for what psutil or NVML report."""
        t = self._clock()
        started = time.perf_counter()
        cpu_pct, per_core = self._cpu()
        ram_used, ram_total = self._memory()
        swap_used, swap_total = self._swap()
        gpu = self._gpu()
        vram_by_pid = gpu.process_vram()
        servers = self._servers()
        pid_spaces_agree = gpu.state is GpuState.OK and (
            not vram_by_pid or any(pid in self._known for pid in vram_by_pid)
        )
        processes: list[ProcessSample] = []
        for tracked in servers:
            pid = tracked.process.pid
            vram = vram_by_pid.get(pid)
            if vram is None and pid_spaces_agree:
                vram = 0  # NVML lists this machine's GPU processes and this one is not there
            sample = self._read_process(tracked, vram)
            if sample is not None:
                processes.append(sample)
        processes.sort(key=lambda p: (p.kind, p.name, p.pid))
        gpus = self._name_gpu_processes(gpu.gpus)
        self.samples += 1
        return HostSample(
            t=t,
            cpu_pct=cpu_pct,
            cpu_per_core=per_core,
            ram_used=ram_used,
            ram_total=ram_total,
            swap_used=swap_used,
            swap_total=swap_total,
            gpus=gpus,
            gpu_state=gpu.state,
            gpu_reason=gpu.reason,
            model_processes=tuple(processes),
            cost_ms=(time.perf_counter() - started) * 1000.0,
        )

    def _name_gpu_processes(self, gpus: tuple[GpuSample, ...]) -> tuple[GpuSample, ...]:
        """Fill in process names NVML could not give, from the process table."""
        out = []
        for gpu in gpus:
            if all(p.name for p in gpu.processes):
                out.append(gpu)
                continue
            named = []
            for proc in gpu.processes:
                if not proc.name:
                    tracked = self._known.get(proc.pid)
                    name = tracked.label if tracked is not None else _process_name(proc.pid)
                    proc = replace(proc, name=name)
                named.append(proc)
            out.append(replace(gpu, processes=tuple(named)))
        return tuple(out)

    def close(self) -> None:
        """Release NVML (call from the thread that sampled)."""
        if self._nvml is not None:
            self._nvml.close()


def _process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
        return ""
