"""The hardware panel: live plots of one host's GPUs, CPU and memory, with markers.

Six plots (GPU utilisation, VRAM used, GPU temperature, GPU power, CPU, RAM used) of the
host selected in the fleet, over the last 1, 5 or 15 minutes, from the telemetry store.
Each GPU has its own curve. A model loaded or unloaded on the host shows as a vertical
line with a label on every plot.

Drawing is driven by a timer at the sampling rate (1 Hz by default), not by each sample:
a tick looks at the shown host's ring buffers and calls ``setData`` (numpy arrays) only on
the curves whose series got new samples; curves and lines are made once per host (or
per new GPU), never per tick. Nothing is drawn while the panel is hidden (its dock
closed or tabbed away) or the window minimised; the next tick after it shows again
catches up. pyqtgraph is imported when the plots are first built, after the panel is
shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QHideEvent, QPalette, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from app.core.telemetry.types import GpuState, HostSample, Marker
from app.ui import plotting
from app.ui.adapters import TelemetrySignals

if TYPE_CHECKING:
    from app.core.telemetry.service import TelemetryService

log = logging.getLogger(__name__)

GIB = float(1 << 30)

#: The windows the selector offers: (label, seconds).
WINDOWS = (("1 min", 60.0), ("5 min", 300.0), ("15 min", 900.0))
DEFAULT_WINDOW_S = 300.0


@dataclass(frozen=True)
class PlotSpec:
    """One plot: its key, title, unit, the store metric, and how values are scaled.

    ``metric`` is the store's metric name; for a GPU plot it is the part after
    ``gpu<N>.``. ``fixed`` is a fixed y range; ``total`` names the sample figure that
    bounds the y range when known (RAM total, VRAM total).
    """

    key: str
    title: str
    unit: str
    metric: str
    gpu: bool = False
    scale: float = 1.0
    fixed: tuple[float, float] | None = None
    total: str = ""


PLOTS = (
    PlotSpec("gpu_util", "GPU utilisation", "%", "util_pct", gpu=True, fixed=(0.0, 100.0)),
    PlotSpec("vram", "VRAM used", "GiB", "vram_used", gpu=True, scale=1 / GIB, total="vram"),
    PlotSpec("gpu_temp", "GPU temperature", "°C", "temp_c", gpu=True),
    PlotSpec("gpu_power", "GPU power", "W", "power_w", gpu=True),
    PlotSpec("cpu", "CPU", "%", "cpu_pct", fixed=(0.0, 100.0)),
    PlotSpec("ram", "RAM used", "GiB", "ram_used", scale=1 / GIB, total="ram"),
)


def metric_name(spec: PlotSpec, gpu: int | None) -> str:
    return f"gpu{gpu}.{spec.metric}" if spec.gpu else spec.metric


class _Plot:
    """One PlotWidget with its curves (by GPU index, or None) and marker lines."""

    def __init__(self, spec: PlotSpec, widget: Any) -> None:
        self.spec = spec
        self.widget = widget
        self.item = widget.getPlotItem()
        self.curves: dict[int | None, Any] = {}
        self.drawn: dict[int | None, tuple[int, float | None]] = {}  # curve -> (len, last t)
        self.lines: dict[Marker, Any] = {}
        self.note = ""
        self.y_top: float | None = None
        self.x_range: tuple[float, float] | None = None
        self.legend: Any = None

    def set_title(self, note: str) -> None:
        if note == self.note and self.item.titleLabel.text:
            return
        self.note = note
        title = f"{self.spec.title} ({self.spec.unit})"
        if note:
            title += f" — {note}"
        self.item.setTitle(title, size="9pt")


class HardwarePanel(QWidget):
    """Live hardware plots of one host.

    Attributes:
        telemetry: the telemetry service (None: the panel only says telemetry is off).
        host_id: the host shown (None: no host selected).
        window_s: the time span shown, in seconds.
        interval_s: the redraw period (by default the service's sampling interval).
        status: the line above the plots (the host, or why there is nothing to show).
        cost_label: the sampler's own cost (p50 of its last samples), with a tooltip.
        window_combo: the 1 / 5 / 15 min selector.
        timer: drives the redraws while the panel is visible.
        redraws: redraws that changed something since the panel was made (for tests and
            the benchmarks).

    Object names: hardwarePanel, hardwareStatus, hardwareCost, hardwareWindow, and
    ``hardwarePlot_<key>`` for the plots (keys: gpu_util, vram, gpu_temp, gpu_power, cpu,
    ram).

    Signals:
        redrawn(str): a redraw of the host with this id changed the plots.
    """

    redrawn = Signal(str)

    def __init__(
        self,
        telemetry: TelemetryService | None,
        *,
        interval_s: float | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("hardwarePanel")
        self.telemetry = telemetry
        self.host_id: str | None = None
        self.host_name = ""
        self.window_s = DEFAULT_WINDOW_S
        if interval_s is None:  # redraw at the sampling rate
            interval_s = float(getattr(telemetry, "interval_s", 1.0))
        self.interval_s = interval_s
        self._label_fill = QColor(0, 0, 0, 0)
        self.redraws = 0
        self._plots: dict[str, _Plot] = {}
        self._gpus: dict[int, str] = {}  # GPU index -> name, of the shown host
        self._drawn_sample: HostSample | None = None
        self._markers_stale = True
        self._running = False
        self._signals = TelemetrySignals(telemetry, self) if telemetry is not None else None

        self.status = QLabel(self)
        self.status.setObjectName("hardwareStatus")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.cost_label = QLabel(self)
        self.cost_label.setObjectName("hardwareCost")
        self.cost_label.setStyleSheet("color: palette(mid);")
        self.window_combo = QComboBox(self)
        self.window_combo.setObjectName("hardwareWindow")
        self.window_combo.setToolTip("How much history the plots show")
        for label, seconds in WINDOWS:
            self.window_combo.addItem(label, seconds)
        self.window_combo.setCurrentIndex([s for _, s in WINDOWS].index(DEFAULT_WINDOW_S))
        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.cost_label)
        top.addWidget(self.window_combo)
        self._grid = QGridLayout()
        self._grid.setSpacing(4)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(self._grid, 1)

        self.timer = QTimer(self)
        self.timer.setObjectName("hardwareTimer")
        self.timer.setInterval(max(100, int(self.interval_s * 1000)))
        self.timer.timeout.connect(self.refresh)
        self.window_combo.currentIndexChanged.connect(self._on_window_chosen)
        if self._signals is not None:
            self._signals.markersChanged.connect(self._on_markers_changed)
        if telemetry is None:
            self.status.setText("Telemetry is off.")
            self.window_combo.setEnabled(False)
            self.cost_label.hide()
        else:
            self.status.setText("Select a host to see its hardware.")

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        """Redraw on the timer while the panel is visible."""
        self._running = True
        if self.isVisible():
            self._start_timer()

    def stop(self) -> None:
        self._running = False
        self.timer.stop()

    def detach(self) -> None:
        """Stop, and stop listening to the telemetry service (before the window goes)."""
        self.stop()
        if self._signals is not None:
            self._signals.detach()

    def _start_timer(self) -> None:
        if self.telemetry is not None and self._running and not self.timer.isActive():
            self.timer.start()
            QTimer.singleShot(0, self.refresh)  # catch up at once after being hidden

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._start_timer()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.timer.stop()

    # -- settings ---------------------------------------------------------------------
    def set_interval(self, seconds: float) -> None:
        self.interval_s = seconds
        self.timer.setInterval(max(100, int(seconds * 1000)))

    def set_window(self, seconds: float) -> None:
        """Show the last ``seconds`` (60, 300 or 900 from the selector; any span works)."""
        index = self.window_combo.findData(seconds)
        if index >= 0 and index != self.window_combo.currentIndex():
            self.window_combo.setCurrentIndex(index)  # comes back through _on_window_chosen
            return
        if index < 0:  # a span the selector does not list: show it rather than a stale one
            self.window_combo.blockSignals(True)
            custom = self.window_combo.findText("custom", Qt.MatchFlag.MatchStartsWith)
            if custom < 0:
                self.window_combo.addItem("", None)
                custom = self.window_combo.count() - 1
            self.window_combo.setItemText(custom, f"custom ({seconds:g} s)")
            self.window_combo.setCurrentIndex(custom)
            self.window_combo.blockSignals(False)
        self.window_s = float(seconds)
        self._invalidate()
        self.refresh()

    def _on_window_chosen(self, index: int) -> None:
        seconds = self.window_combo.itemData(index)
        if seconds is not None and float(seconds) != self.window_s:
            self.set_window(float(seconds))

    def set_host(self, host_id: str | None, name: str = "") -> None:
        """Show the hardware of ``host_id`` (None: nothing)."""
        if host_id == self.host_id:
            if name:
                self.host_name = name
            return
        self.host_id = host_id
        self.host_name = name or (host_id or "")
        self._gpus = {}
        self._drawn_sample = None
        for plot in self._plots.values():
            for marker in list(plot.lines):
                plot.item.removeItem(plot.lines.pop(marker))
            for curve in plot.curves.values():
                plot.item.removeItem(curve)
            plot.curves.clear()
            plot.drawn.clear()
            plot.x_range = None
            plot.y_top = None
            if plot.legend is not None:
                plot.legend.clear()
        self._markers_stale = True
        if self.telemetry is not None and host_id is None:
            self.status.setText("Select a host to see its hardware.")
        self.refresh()

    def _invalidate(self) -> None:
        self._drawn_sample = None
        self._markers_stale = True
        for plot in self._plots.values():
            plot.drawn.clear()
            plot.x_range = None

    def _on_markers_changed(self, host_id: str) -> None:
        if host_id == self.host_id:
            self._markers_stale = True  # drawn at the next tick

    # -- reading the plots (tests, benchmarks) ----------------------------------------
    @property
    def plots(self) -> dict[str, Any]:
        """The PlotWidgets by key (empty until they are built)."""
        return {key: plot.widget for key, plot in self._plots.items()}

    def curves(self, key: str) -> dict[int | None, Any]:
        """The curves of one plot: by GPU index for GPU plots, ``None`` for the others."""
        plot = self._plots.get(key)
        return dict(plot.curves) if plot is not None else {}

    def marker_lines(self, key: str) -> list[Any]:
        """The marker lines (InfiniteLine) on one plot."""
        plot = self._plots.get(key)
        return list(plot.lines.values()) if plot is not None else []

    def note(self, key: str) -> str:
        """What a plot says instead of (or beside) its data, e.g. "no NVIDIA GPU found"."""
        plot = self._plots.get(key)
        return plot.note if plot is not None else ""

    def x_range(self, key: str) -> tuple[float, float]:
        """The x (time) range a plot shows, in epoch seconds."""
        low, high = self._plots[key].item.getViewBox().viewRange()[0]
        return float(low), float(high)

    # -- drawing ----------------------------------------------------------------------
    def ensure_plots(self) -> bool:
        """Build the six plots (imports pyqtgraph); False when telemetry is off."""
        if self.telemetry is None:
            return False
        if self._plots:
            return True
        pg = plotting.pyqtgraph()
        fill = QColor(self.palette().color(QPalette.ColorRole.Base))
        fill.setAlpha(200)
        self._label_fill = fill
        for i, spec in enumerate(PLOTS):
            axis = pg.DateAxisItem(orientation="bottom")
            widget = pg.PlotWidget(parent=self, axisItems={"bottom": axis})
            widget.setObjectName(f"hardwarePlot_{spec.key}")
            widget.setMinimumHeight(90)
            plotting.style_plot(widget, self)
            item = widget.getPlotItem()
            if spec.fixed is not None:
                item.setYRange(*spec.fixed, padding=0.0)
                item.enableAutoRange(y=False)
            else:
                item.getViewBox().setAutoVisible(y=True)
            item.enableAutoRange(x=False)
            plot = _Plot(spec, widget)
            plot.set_title("")
            self._plots[spec.key] = plot
            self._grid.addWidget(widget, i // 2, i % 2)
        return True

    def _visible(self) -> bool:
        return self.isVisible() and not self.window().isMinimized()

    def refresh(self) -> None:
        """Bring the plots up to date with the store (a no-op when nothing changed, when
        hidden, or when telemetry is off)."""
        service = self.telemetry
        if service is None or not self._visible():
            return
        host_id = self.host_id
        if host_id is None:
            return
        self.ensure_plots()
        store = service.store
        sample = store.latest(host_id)
        self._show_state(host_id, sample)
        changed = False
        if sample is not None and sample is not self._drawn_sample:
            self._drawn_sample = sample
            changed = self._draw_series(host_id, sample)
            self._show_cost(host_id)
        if self._markers_stale:
            self._markers_stale = False
            changed = self._draw_markers(host_id) or changed
        if changed:
            self.redraws += 1
            self.redrawn.emit(host_id)

    def _show_state(self, host_id: str, sample: HostSample | None) -> None:
        assert self.telemetry is not None
        state = self.telemetry.source_state(host_id)
        name = self.host_name or host_id
        if not state.ok and state.reason:
            text = f"{name}: {state.reason}"
        elif sample is None:
            text = f"{name}: waiting for the first sample…"
        else:
            gpus = len(sample.gpus)
            what = f"{gpus} GPU" + ("s" if gpus != 1 else "") if gpus else "no GPU"
            every = float(getattr(self.telemetry, "interval_s", self.interval_s))
            text = f"{name} · {what} · sampled every {every:g} s"
        if self.status.text() != text:
            self.status.setText(text)

    def _show_cost(self, host_id: str) -> None:
        assert self.telemetry is not None
        summary = self.telemetry.sampler_cost(host_id).summary()
        if summary is None:
            text, tip = "", ""
        else:
            text = f"sampler {summary.p50:.1f} ms"
            tip = (
                f"What taking one sample costs the sampler: p50 {summary.p50:.1f} ms, "
                f"p95 {summary.p95:.1f} ms over the last {summary.count} samples."
            )
        if self.cost_label.text() != text:
            self.cost_label.setText(text)
            self.cost_label.setToolTip(tip)

    def _gpu_note(self, sample: HostSample) -> str:
        if sample.gpu_state is GpuState.NO_GPU:
            return GpuState.NO_GPU.value
        if sample.gpu_state is GpuState.ERROR:
            return sample.gpu_reason or "GPUs cannot be read"
        if sample.gpu_state is GpuState.UNKNOWN and not sample.gpus:
            return "no GPU figures from this host"
        return ""

    def _draw_series(self, host_id: str, sample: HostSample) -> bool:
        assert self.telemetry is not None
        store = self.telemetry.store
        for gpu in sample.gpus:
            self._gpus.setdefault(gpu.index, gpu.name)
        gpu_note = self._gpu_note(sample)
        high = sample.t
        low = high - self.window_s
        changed = False
        for plot in self._plots.values():
            spec = plot.spec
            if spec.gpu:
                plot.set_title(gpu_note)
                keys: list[int | None] = list(self._gpus)
            else:
                keys = [None]
            plot_changed = False
            for key in keys:
                ring = store.series(host_id, metric_name(spec, key))
                count = len(ring)
                last = ring.last()
                signature = (count, last[0] if last is not None else None)
                if plot.drawn.get(key) == signature:
                    continue
                plot.drawn[key] = signature
                curve = plot.curves.get(key)
                if curve is None:
                    if count == 0:
                        continue
                    curve = self._add_curve(plot, key)
                x, y = plotting.arrays(ring, count, since=low)
                if spec.scale != 1.0:
                    y = y * spec.scale
                curve.setData(x, y)
                plot_changed = True
            if plot_changed or plot.x_range is None:
                self._set_y_top(plot, sample)
                if plot.x_range != (low, high):
                    plot.x_range = (low, high)
                    plot.item.setXRange(low, high, padding=0.0)
                # Settle the ranges now, not while painting: the axes then change before
                # the first paint, and each plot is painted once per tick instead of twice.
                plot.item.getViewBox().prepareForPaint()
                changed = True
        return changed

    def _add_curve(self, plot: _Plot, gpu: int | None) -> Any:
        if gpu is None:
            name = plot.spec.title
            colour = plotting.colour(0)
        else:
            name = f"GPU {gpu}: {self._gpus.get(gpu, '')}".rstrip(": ")
            colour = plotting.colour(gpu)
            if plot.spec.key == "gpu_util" and len(self._gpus) > 1 and plot.legend is None:
                # one legend: a GPU has the same colour on every plot
                plot.legend = plot.item.addLegend(
                    offset=(4, 4),
                    labelTextSize="8pt",
                    brush=self._label_fill,
                    labelTextColor=self.palette().color(QPalette.ColorRole.Text),
                )
                for index, old in plot.curves.items():
                    plot.legend.addItem(old, old.name() or f"GPU {index}")
        curve = plot.item.plot(pen=plotting.pen(colour), name=name)
        plot.curves[gpu] = curve
        return curve

    def _set_y_top(self, plot: _Plot, sample: HostSample) -> None:
        """Bound memory plots by the total memory, when the sample says it."""
        if plot.spec.total == "ram":
            total = sample.ram_total
        elif plot.spec.total == "vram":
            totals = [g.memory_total for g in sample.gpus if g.memory_total]
            total = max(totals) if totals else None
        else:
            return
        if total is None:
            return
        top = total * plot.spec.scale
        if top != plot.y_top:
            plot.y_top = top
            plot.item.getViewBox().setLimits(yMin=0.0, yMax=top * 1.02)
            plot.item.setYRange(0.0, top, padding=0.02)

    def _draw_markers(self, host_id: str) -> bool:
        assert self.telemetry is not None
        markers = self.telemetry.store.markers(host_id)
        wanted = set(markers)
        pg = plotting.pyqtgraph()
        changed = False
        for plot in self._plots.values():
            for marker in [m for m in plot.lines if m not in wanted]:
                plot.item.removeItem(plot.lines.pop(marker))
                changed = True
            for marker in markers:
                if marker in plot.lines:
                    continue
                colour = plotting.MARKER_COLOURS.get(marker.kind, plotting.MARKER_COLOUR)
                line = pg.InfiniteLine(
                    pos=marker.t,
                    angle=90,
                    movable=False,
                    pen=plotting.pen(colour, width=1.0, dashed=marker.kind != "load"),
                    label=marker.text,
                    labelOpts={
                        "position": 0.88,
                        "color": colour,
                        "fill": self._label_fill,
                        "anchors": [(0.0, 0.5), (0.0, 0.5)],
                    },
                )
                line.setToolTip(marker.text)
                line.setZValue(5)
                plot.item.addItem(line, ignoreBounds=True)
                plot.lines[marker] = line
                changed = True
        return changed
