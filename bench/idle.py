"""idle: the app's CPU use while idle, hardware panel open at 1 Hz, 4 hosts polled.

Four fake Ollama hosts run in this process (their CPU is not counted). The app runs as a
subprocess, offscreen, with a settings file listing the four hosts (the built-in host
hidden): health probes every ``refresh_interval_s`` (5 s), the selected host's models
read on the same timer, telemetry sampled at 1 Hz, the hardware dock open on the
selected host. The first host is on 127.0.0.1 -- the only loopback address that counts as
this machine, so its hardware is read by the local sampler (psutil; NVML where there is
a GPU) and the panel redraws every second; the others are on 127.0.0.2-4 (no telemetry
source: polled for health and listed only). ``--hosts`` changes the addresses.

By default the real entry point runs: ``python -m app --settings <file> --no-mdns``.
``--via launcher`` starts it through ``bench/idle_app.py`` instead, which builds the same
window and also reports how many times the hardware panel redrew (to show it was live).

After ``--settle`` seconds, each process's CPU time (user + system, all threads) is read
with psutil, and again ``--seconds`` later; CPU use = delta / wall time, in % of one core.

Baselines, measured over the same seconds, side by side:

- a bare Python process sleeping (``python -c "import time; time.sleep(...)"``);
- a bare PySide6 window (offscreen) with a 1 Hz timer that asks for a repaint.

Target: the app < 3 % of one core. Every process started here is ended by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import Result
from tests.fakes.ollama import FakeOllama

TARGET_PCT = 3.0
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HOSTS = "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4"

_BARE_QT = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel
app = QApplication(sys.argv[:1])
label = QLabel("idle")
label.resize(400, 200)
label.show()
timer = QTimer()
timer.timeout.connect(label.update)
timer.start(1000)
sys.exit(app.exec())
"""


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    env["PYTHONPATH"] = str(ROOT)
    env.pop("OLLAMA_HOST", None)
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env[var] = str(home / var.lower())
    return env


def _cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _stop(proc: subprocess.Popen[str]) -> str:
    """End a process started here (by its PID); return what it printed."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    out = proc.stdout.read() if proc.stdout is not None else ""
    return out or ""


def run(argv: list[str]) -> Result:
    parser = argparse.ArgumentParser(prog="python -m bench idle")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time")
    parser.add_argument("--settle", type=float, default=10.0, help="time before measuring")
    parser.add_argument("--via", choices=("launcher", "app"), default="app")
    parser.add_argument("--hosts", default=DEFAULT_HOSTS, help="comma-separated addresses")
    args = parser.parse_args(argv)
    addresses = [a.strip() for a in args.hosts.split(",") if a.strip()]

    fakes = [FakeOllama(host=a, port=0).start() for a in addresses]
    procs: list[subprocess.Popen[str]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="corral-idle-") as tmp:
            home = Path(tmp)
            settings = home / "settings.json"
            settings.write_text(
                json.dumps(
                    {
                        "schema_version": 1,
                        "hosts": [
                            {"id": f"h{i}", "name": f"Box {i + 1}", "url": f.url}
                            for i, f in enumerate(fakes)
                        ],
                        "hidden_hosts": ["local"],
                    }
                ),
                encoding="utf-8",
            )
            env = _env(home)
            end_at = args.settle + args.seconds
            if args.via == "app":
                app_cmd = [sys.executable, "-m", "app", "--settings", str(settings), "--no-mdns"]
            else:
                app_cmd = [
                    sys.executable,
                    "-m",
                    "bench.idle_app",
                    "--settings",
                    str(settings),
                    "--report-at",
                    str(args.settle),
                    str(end_at),
                ]
            commands = {
                "app": app_cmd,
                "bare_python": [sys.executable, "-c", f"import time; time.sleep({end_at + 60})"],
                "bare_pyside6": [sys.executable, "-c", _BARE_QT],
            }
            handles: dict[str, psutil.Process] = {}
            started = time.monotonic()
            for name, cmd in commands.items():
                proc = subprocess.Popen(
                    cmd,
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                procs.append(proc)
                handles[name] = psutil.Process(proc.pid)
            time.sleep(args.settle)
            for name, proc in zip(commands, procs, strict=True):
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} ended early with status {proc.returncode}")
            wall0 = time.monotonic()
            before = {name: _cpu_s(h) for name, h in handles.items()}
            time.sleep(args.seconds)
            after = {name: _cpu_s(h) for name, h in handles.items()}
            wall = time.monotonic() - wall0
            rss_mb = handles["app"].memory_info().rss / 1e6
            # the app's last report comes end_at seconds after its timers started (a second
            # or two after the process did)
            time.sleep(max(0.0, started + end_at + 4.0 - time.monotonic()))
            outputs = [_stop(p) for p in procs]
            procs.clear()
    finally:
        for proc in procs:
            _stop(proc)
        for fake in fakes:
            fake.stop()

    pct = {name: 100.0 * (after[name] - before[name]) / wall for name in before}
    reports = [line for line in outputs[0].splitlines() if line.startswith("report ")]
    redraws: int | None = None
    if len(reports) >= 2:
        first = int(reports[0].split("redraws=")[1].split()[0])
        last = int(reports[-1].split("redraws=")[1].split()[0])
        redraws = last - first
    print(
        f"idle: {len(addresses)} fake Ollama hosts ({', '.join(addresses)}), app via {args.via}, "
        f"settled {args.settle:g} s, measured {wall:.1f} s"
    )
    print(f"  app (hardware panel open)   {pct['app']:6.2f} % of one core   RSS {rss_mb:.0f} MB")
    print(f"  bare Python, sleeping       {pct['bare_python']:6.2f} %   (baseline)")
    print(f"  bare PySide6 window, 1 Hz   {pct['bare_pyside6']:6.2f} %   (baseline)")
    if redraws is not None:
        print(f"  panel redraws between the app's reports: {redraws} in {args.seconds:g} s")
    for line in reports:
        print(f"  {line}")
    print(f"  target: app < {TARGET_PCT:g} % of one core")
    return Result(
        bench="idle",
        figures={
            "seconds": round(wall, 1),
            "hosts": len(addresses),
            "app_cpu_pct": round(pct["app"], 2),
            "app_rss_mb": round(rss_mb, 1),
            "panel_redraws": redraws,
        },
        baseline={
            "bare_python_cpu_pct": round(pct["bare_python"], 2),
            "bare_pyside6_cpu_pct": round(pct["bare_pyside6"], 2),
        },
        ratios={
            "app_minus_bare_pyside6_pct": round(pct["app"] - pct["bare_pyside6"], 2),
        },
        targets={"app_cpu_pct": f"< {TARGET_PCT:g}"},
        met=pct["app"] < TARGET_PCT,
    )
