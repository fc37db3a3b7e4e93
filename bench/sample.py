"""sample: what one sample of this machine costs Corral's LocalSampler.

One LocalSampler.sample() (CPU total and per core, RAM, swap, the process table checked
for model servers, their CPU and RSS, GPUs through NVML) against a baseline of the same
psutil calls made directly in a loop (cpu_percent per core, virtual_memory, swap_memory,
the pid list, and cpu_percent + memory_info of the same model-server processes). Both run
in this process, interleaved (A, B, B, A, ...), after a warm-up that lets the sampler
classify the process table once.

Without an NVIDIA GPU, NVML answers "no GPU" at the first sample and is not asked again;
with one, its calls are part of the sampler's figure (and not of the baseline): the
figures say which.
Target: the sampler's median < 2 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

import psutil

from app.core.telemetry.local import LocalSampler
from app.core.telemetry.types import GpuState
from bench import Result

TARGET_MS = 2.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(argv: list[str]) -> Result:
    parser = argparse.ArgumentParser(prog="python -m bench sample")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--no-gpu", action="store_true", help="leave NVML out of the sampler")
    args = parser.parse_args(argv)

    sampler = LocalSampler(gpu=not args.no_gpu)
    first_started = time.perf_counter()
    first = sampler.sample()
    first_ms = (time.perf_counter() - first_started) * 1000.0
    servers = [psutil.Process(p.pid) for p in first.model_processes if psutil.pid_exists(p.pid)]
    psutil.cpu_percent(interval=None, percpu=True)

    def corral() -> None:
        sampler.sample()

    def baseline() -> None:
        psutil.cpu_percent(interval=None, percpu=True)
        psutil.virtual_memory()
        psutil.swap_memory()
        psutil.pids()
        for proc in servers:
            try:
                with proc.oneshot():
                    proc.cpu_percent(interval=None)
                    proc.memory_info()
            except psutil.Error:
                pass

    ours: list[float] = []
    base: list[float] = []
    for i in range(args.warmup + args.samples):
        order = (corral, baseline) if i % 2 == 0 else (baseline, corral)
        for fn in order:
            t0 = time.perf_counter()
            fn()
            dt = (time.perf_counter() - t0) * 1000.0
            if i >= args.warmup:
                (ours if fn is corral else base).append(dt)
    last = sampler.sample()
    sampler.close()

    o_med, b_med = statistics.median(ours), statistics.median(base)
    gpu = last.gpu_state
    gpus = len(last.gpus)
    print(
        f"sample: {args.samples} samples of this machine ({psutil.cpu_count()} cores, "
        f"{len(psutil.pids())} processes, {len(servers)} model servers)"
    )
    print(
        f"  GPUs: {gpu.value}{f' ({gpus})' if gpus else ''}"
        f"{'; NVML not read' if args.no_gpu else ''}"
    )
    print(f"  first sample (NVML start, process table)  {first_ms:8.3f} ms")
    print(f"  LocalSampler.sample()  median {o_med:7.3f} ms   p95 {_pct(ours, 0.95):7.3f} ms")
    print(f"  direct psutil calls    median {b_med:7.3f} ms   p95 {_pct(base, 0.95):7.3f} ms")
    print(
        f"  ratio (sampler / direct, medians) {o_med / b_med:.2f}   "
        f"target: sampler median < {TARGET_MS} ms"
    )
    return Result(
        bench="sample",
        figures={
            "samples": args.samples,
            "median_ms": round(o_med, 4),
            "p95_ms": round(_pct(ours, 0.95), 4),
            "first_ms": round(first_ms, 3),
            "gpu_state": gpu.name.lower(),
            "gpus": gpus,
            "nvml_in_figure": (not args.no_gpu) and gpu is GpuState.OK,
            "model_servers": len(servers),
        },
        baseline={"median_ms": round(b_med, 4), "p95_ms": round(_pct(base, 0.95), 4)},
        ratios={"median": round(o_med / b_med, 3)},
        targets={"median_ms": f"< {TARGET_MS}"},
        met=o_med < TARGET_MS,
    )
