"""redraw: what one tick of the hardware panel costs with six plots of 900 points.

The panel (offscreen, 1200 x 520, window 15 min) shows a host whose six series (GPU
utilisation, VRAM, temperature, power, CPU, RAM; one GPU) are full: 900 points each, one
per second. A round records one new sample in the store (every buffer rolls by one
point), calls the panel's ``refresh()`` and lets Qt process the events that follow, which
is when the plots are painted (offscreen, into the window's backing store). The time of a
round is measured from before ``refresh()`` to the end of that event processing; paint
events on the plots are counted and reported (one per plot per round is the minimum).

Baselines, measured in the same run on the same machine:

- ``plain``: six bare pyqtgraph PlotWidgets of the same size, one curve each, given the
  same 900-point numpy arrays with ``setData`` and painted the same way: what pyqtgraph
  costs when used plainly, without the panel's logic (reading the store, checking what
  changed, ranges, titles, settling the ranges before the paint).
- ``prepare``: bare Python + numpy: turning the six ring buffers into the x / y arrays,
  with nothing drawn.
- ``idle tick``: a ``refresh()`` when no sample came in (what the 1 Hz timer costs while a
  host is silent).

Targets (the issue sets none; these keep a 1 Hz redraw far below a frame budget):
panel median < 50 ms per round, and panel median <= 2 x the plain pyqtgraph median.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import Result

TARGET_MEDIAN_MS = 50.0
TARGET_RATIO = 2.0
POINTS = 900
HOST = "bench-host"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _sample(t: float, i: int) -> Any:
    from app.core.telemetry.types import GpuSample, GpuState, HostSample

    gib = 1 << 30
    return HostSample(
        t=t,
        cpu_pct=40 + 30 * math.sin(i / 17),
        ram_used=int((12 + 4 * math.sin(i / 50)) * gib),
        ram_total=64 * gib,
        gpus=(
            GpuSample(
                index=0,
                name="Bench GPU",
                utilization_pct=50 + 45 * math.sin(i / 11),
                memory_used=int((10 + 6 * math.sin(i / 40)) * gib),
                memory_total=24 * gib,
                temperature_c=60 + 15 * math.sin(i / 30),
                power_w=200 + 150 * math.sin(i / 13),
            ),
        ),
        gpu_state=GpuState.OK,
        cost_ms=1.0,
    )


def _time_rounds(rounds: int, warmup: int, step: Callable[[int], None]) -> list[float]:
    out: list[float] = []
    for i in range(warmup + rounds):
        t0 = time.perf_counter()
        step(i)
        dt = (time.perf_counter() - t0) * 1000.0
        if i >= warmup:
            out.append(dt)
    return out


def run(argv: list[str]) -> Result:
    parser = argparse.ArgumentParser(prog="python -m bench redraw")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["QT_API"] = "pyside6"
    from PySide6.QtCore import (
        QEvent,
        QMessageLogContext,
        QObject,
        QtMsgType,
        qInstallMessageHandler,
    )
    from PySide6.QtWidgets import QApplication, QGridLayout, QWidget

    def quiet(kind: QtMsgType, context: QMessageLogContext, text: str) -> None:
        if "propagateSizeHints" not in text:  # the offscreen platform's one harmless note
            print(text, file=sys.stderr)

    qInstallMessageHandler(quiet)
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)

    from app.ui import plotting
    from app.ui.hardware_panel import PLOTS, HardwarePanel, metric_name
    from tests.ui.fake_telemetry import FakeTelemetry

    pg = plotting.pyqtgraph()
    telemetry = FakeTelemetry(window_s=float(POINTS))
    start = time.time() - POINTS
    for i in range(POINTS):
        telemetry.push(HOST, _sample(start + i, i))
    clock = {"t": start + POINTS, "i": POINTS}

    def next_sample() -> None:
        telemetry.push(HOST, _sample(clock["t"], clock["i"]))
        clock["t"] += 1.0
        clock["i"] += 1

    # -- the panel ----------------------------------------------------------------------
    panel = HardwarePanel(telemetry)  # type: ignore[arg-type]
    panel.resize(1200, 520)
    panel.show()
    panel.set_window(900.0)
    panel.set_host(HOST, "Bench host")
    app.processEvents()
    panel.refresh()
    app.processEvents()
    widgets = list(panel.plots.values())
    assert len(widgets) == 6
    drawn = {
        spec.key: len(panel.curves(spec.key)[0 if spec.gpu else None].getData()[0])
        for spec in PLOTS
    }
    assert all(n == POINTS for n in drawn.values()), drawn

    class PaintCounter(QObject):
        count = 0

        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint:
                PaintCounter.count += 1
            return False

    counter = PaintCounter()

    def paint(views: list[Any]) -> None:
        app.processEvents()

    def panel_round(_: int) -> None:
        panel.refresh()
        paint(widgets)

    # -- plain pyqtgraph ----------------------------------------------------------------
    holder = QWidget()
    grid = QGridLayout(holder)
    plain: list[Any] = []
    curves: list[Any] = []
    for n in range(6):
        w = pg.PlotWidget(parent=holder)
        grid.addWidget(w, n // 2, n % 2)
        plain.append(w)
        curves.append(w.getPlotItem().plot(pen=pg.mkPen("#1f77b4", width=1.5)))
    holder.resize(1200, 490)
    holder.show()
    app.processEvents()
    for view in [*widgets, *plain]:
        view.viewport().installEventFilter(counter)
    rings = [
        telemetry.store.series(HOST, metric_name(spec, 0 if spec.gpu else None)) for spec in PLOTS
    ]

    def arrays() -> list[tuple[Any, Any]]:
        return [plotting.arrays(ring, len(ring)) for ring in rings]

    def plain_round(_: int) -> None:
        for curve, (x, y) in zip(curves, arrays(), strict=True):
            curve.setData(x, y)
        paint(plain)

    def prepare_round(_: int) -> None:
        arrays()

    # Rounds alternate between the panel and the plain plots; each gets a fresh sample.
    panel_ms: list[float] = []
    plain_ms: list[float] = []
    prepare_ms: list[float] = []
    panel_paints = plain_paints = 0
    for i in range(args.warmup + args.rounds):
        next_sample()
        PaintCounter.count = 0
        [p] = _time_rounds(1, 0, panel_round)
        paints = PaintCounter.count
        PaintCounter.count = 0
        [b] = _time_rounds(1, 0, plain_round)
        if i >= args.warmup:
            panel_ms.append(p)
            plain_ms.append(b)
            panel_paints += paints
            plain_paints += PaintCounter.count
        [c] = _time_rounds(1, 0, prepare_round)
        if i >= args.warmup:
            prepare_ms.append(c)
    idle_ms = _time_rounds(args.rounds, 0, lambda _: panel.refresh())
    assert all(
        len(c.getData()[0]) == POINTS for spec in PLOTS for c in panel.curves(spec.key).values()
    )
    redraws = panel.redraws

    panel.close()
    holder.close()
    app.processEvents()

    med = statistics.median(panel_ms)
    plain_med = statistics.median(plain_ms)
    prep_med = statistics.median(prepare_ms)
    idle_med = statistics.median(idle_ms) * 1000.0
    ratio = med / plain_med
    print(
        f"redraw: 6 plots x {POINTS} points, offscreen 1200x520, {args.rounds} rounds "
        f"(+{args.warmup} warm-up), one new sample per round"
    )
    per_panel = panel_paints / args.rounds
    per_plain = plain_paints / args.rounds
    print(
        f"  panel refresh + paint     median {med:7.2f} ms   p95 {_pct(panel_ms, 0.95):7.2f} ms"
        f"   {per_panel:.1f} plot paints per round"
    )
    print(
        f"  plain pyqtgraph setData   median {plain_med:7.2f} ms   "
        f"p95 {_pct(plain_ms, 0.95):7.2f} ms   {per_plain:.1f} plot paints per round (baseline)"
    )
    print(
        f"  bare numpy arrays only    median {prep_med:7.3f} ms   "
        f"p95 {_pct(prepare_ms, 0.95):7.3f} ms   (baseline)"
    )
    print(f"  idle tick (no new sample) median {idle_med:7.1f} µs")
    print(
        f"  ratio panel / plain {ratio:.2f} (target <= {TARGET_RATIO}); "
        f"panel median target < {TARGET_MEDIAN_MS:.0f} ms; redraws counted {redraws}"
    )
    return Result(
        bench="redraw",
        figures={
            "plots": 6,
            "points": POINTS,
            "rounds": args.rounds,
            "median_ms": round(med, 3),
            "p95_ms": round(_pct(panel_ms, 0.95), 3),
            "idle_tick_us": round(idle_med, 1),
            "paints_per_round": per_panel,
        },
        baseline={
            "plain_pyqtgraph_median_ms": round(plain_med, 3),
            "plain_pyqtgraph_p95_ms": round(_pct(plain_ms, 0.95), 3),
            "plain_paints_per_round": per_plain,
            "numpy_prepare_median_ms": round(prep_med, 4),
        },
        ratios={
            "panel_over_plain": round(ratio, 3),
            "panel_over_prepare": round(med / prep_med, 1),
        },
        targets={"median_ms": f"< {TARGET_MEDIAN_MS:g}", "panel_over_plain": f"<= {TARGET_RATIO}"},
        met=med < TARGET_MEDIAN_MS and ratio <= TARGET_RATIO,
    )
