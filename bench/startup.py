"""startup: cold start to the first painted main window, and memory, vs a bare PySide6 window.

Each run starts a new process offscreen and measures from just before the process is
spawned to the moment its main window first paints (the process reports the wall-clock
time of its first paint event). The app runs as ``python -m app --self-test`` against
three fake Ollama hosts on 127.0.0.2-4 (one with a loaded model), so that every panel is
created, shown and laid out before it exits; it reports when everything had started and
its resident memory with every panel open. The baseline is a bare PySide6 QMainWindow
(QApplication, a window of the same size, shown; first paint) in a process of its own.
The two alternate (app, bare, bare, app, ...) after one warm-up run of each, which is not
counted (it fills the OS file cache).

Targets: median time to first paint < 2.0 x the bare window's; memory with every panel
open < 250 MB. Also reported: the time until everything had started (services, hosts
probed, panels built), which is not part of the target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import Result
from tests.fakes.ollama import FakeOllama

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 2.0
TARGET_RSS_MB = 250.0

_BARE = """
import json, sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
window = QMainWindow()
window.setWindowTitle("bare")
window.resize(1500, 900)
class FirstPaint(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint:
            watched.removeEventFilter(self)
            painted = time.time()
            import psutil
            rss = psutil.Process().memory_info().rss
            with open(sys.argv[1], "w") as f:
                json.dump({"painted_at": painted, "rss": rss}, f)
            QTimer.singleShot(0, app.quit)
        return False
probe = FirstPaint()
window.installEventFilter(probe)
window.show()
app.exec()
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


def _run(cmd: list[str], report: Path, env: dict[str, str]) -> dict[str, float]:
    report.unlink(missing_ok=True)
    spawned = time.time()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not report.is_file():
        raise RuntimeError(
            f"{cmd[2:4]} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    data = json.loads(report.read_text(encoding="utf-8"))
    out = {"paint_s": data["painted_at"] - spawned, "rss": float(data["rss"])}
    if data.get("ready_at"):
        out["ready_s"] = data["ready_at"] - spawned
    if data.get("rss_all_panels"):
        out["rss"] = float(data["rss_all_panels"])
    return out


def run(argv: list[str]) -> Result:
    parser = argparse.ArgumentParser(prog="python -m bench startup")
    parser.add_argument("--runs", type=int, default=7, help="measured runs of each")
    args = parser.parse_args(argv)

    fakes = [
        FakeOllama(host=address, port=0).start()
        for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    ]
    try:
        fakes[0].load("llama3.2:latest", keep_alive=-1)
        with tempfile.TemporaryDirectory(prefix="corral-startup-") as tmp:
            home = Path(tmp)
            settings = home / "settings.json"
            settings.write_text(
                json.dumps(
                    {
                        "schema_version": 1,
                        "hosts": [
                            {"id": f"h{i}", "name": f"Box {'ABC'[i]}", "url": f.url}
                            for i, f in enumerate(fakes)
                        ],
                        "hidden_hosts": ["local"],
                    }
                ),
                encoding="utf-8",
            )
            env = _env(home)
            bare_script = home / "bare.py"
            bare_script.write_text(_BARE, encoding="utf-8")
            report = home / "report.json"
            app_cmd = [
                sys.executable,
                "-m",
                "app",
                "--self-test",
                "--settings",
                str(settings),
                "--report",
                str(report),
            ]
            bare_cmd = [sys.executable, str(bare_script), str(report)]
            _run(app_cmd, report, env)  # warm-up, not counted
            _run(bare_cmd, report, env)
            apps: list[dict[str, float]] = []
            bares: list[dict[str, float]] = []
            for i in range(args.runs):
                order = (app_cmd, bare_cmd) if i % 2 == 0 else (bare_cmd, app_cmd)
                for cmd in order:
                    (apps if cmd is app_cmd else bares).append(_run(cmd, report, env))
    finally:
        for fake in fakes:
            fake.stop()

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    app_paint, bare_paint = median(apps, "paint_s"), median(bares, "paint_s")
    app_ready = median(apps, "ready_s")
    app_rss_mb, bare_rss_mb = median(apps, "rss") / 1e6, median(bares, "rss") / 1e6
    ratio = app_paint / bare_paint
    met = ratio < TARGET_RATIO and app_rss_mb < TARGET_RSS_MB
    print(f"startup: {args.runs} runs each, offscreen, 3 fake hosts (one model loaded)")
    print(
        f"  first paint   app {app_paint * 1000:7.0f} ms   bare {bare_paint * 1000:7.0f} ms"
        f"   ratio {ratio:.2f} (target < {TARGET_RATIO})"
    )
    print(f"  everything started (app): {app_ready * 1000:.0f} ms")
    print(
        f"  memory        app {app_rss_mb:7.0f} MB   bare {bare_rss_mb:7.0f} MB"
        f"   (app with every panel open; target < {TARGET_RSS_MB:.0f} MB)"
    )
    print(
        "  app paint runs (ms): " + ", ".join(f"{r['paint_s'] * 1000:.0f}" for r in apps),
    )
    print(
        "  bare paint runs (ms): " + ", ".join(f"{r['paint_s'] * 1000:.0f}" for r in bares),
    )
    return Result(
        bench="startup",
        figures={
            "runs": args.runs,
            "paint_ms": round(app_paint * 1000, 1),
            "ready_ms": round(app_ready * 1000, 1),
            "rss_mb": round(app_rss_mb, 1),
            "paint_runs_ms": [round(r["paint_s"] * 1000, 1) for r in apps],
        },
        baseline={
            "paint_ms": round(bare_paint * 1000, 1),
            "rss_mb": round(bare_rss_mb, 1),
            "paint_runs_ms": [round(r["paint_s"] * 1000, 1) for r in bares],
        },
        ratios={"paint": round(ratio, 3), "rss": round(app_rss_mb / bare_rss_mb, 3)},
        targets={"paint": f"< {TARGET_RATIO}", "rss_mb": f"< {TARGET_RSS_MB:.0f}"},
        met=met,
    )
