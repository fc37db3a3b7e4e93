"""The latency panel: round trips of every host, and reply figures per model.

Top: a plot with one curve per host of the health probes' round-trip times (from
:meth:`HealthMonitor.rtt_history`), the selected host drawn thicker, and the selected
host's p50 / p95. Below: a table of the selected host's models with their time to first
token, decode speed, prompt speed and load time (p50 / p95 over the last replies) from
the :class:`LatencyBook`.

As the hardware panel, it redraws on a timer (1 Hz by default) while it is visible, and
only what changed: a curve whose host got a new probe, the table once the book reported
a change of the selected host.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.core.hosts.base import HostConfig
from app.core.hosts.health import HealthMonitor
from app.core.metrics.latency import LatencyBook, ModelLatency
from app.core.metrics.ring import Summary
from app.ui import formatting as fmt
from app.ui import plotting
from app.ui.adapters import LatencySignals
from app.ui.item_models import _RowsTableModel

AnyIndex = QModelIndex | QPersistentModelIndex

#: Round trips shown until :meth:`LatencyPanel.set_window` says otherwise: 15 minutes.
RTT_WINDOW_S = 900.0
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


def _p(summary: Summary | None, which: str, text: Any) -> str:
    if summary is None:
        return fmt.DASH
    return str(text(getattr(summary, which)))


class LatencyTableModel(_RowsTableModel):
    """One row per model of a host: replies, TTFT, tokens/s, prompt tokens/s, load time."""

    COLUMNS = (
        "Model",
        "Replies",
        "TTFT p50",
        "TTFT p95",
        "Tokens/s p50",
        "Tokens/s p95",
        "Prompt tokens/s",
        "Load time",
    )
    MODEL, REPLIES, TTFT50, TTFT95, TPS50, TPS95, PROMPT, LOAD = range(8)
    HEADER_TIPS = {  # noqa: RUF012
        TTFT50: "Time to first token (wall clock), median of the last replies",
        TTFT95: "Time to first token (wall clock), 95th percentile",
        TPS50: "Decode speed as the host reports it (else from the wall clock), median",
        TPS95: "Decode speed, 95th percentile",
        PROMPT: "Prompt processing speed as the host reports it, median",
        LOAD: "Time to load the model into memory, median (replies and Load)",
    }

    def set_rows(self, rows: list[ModelLatency]) -> None:
        if rows == self._rows:
            return
        if [r.model for r in rows] == [r.model for r in self._rows]:
            self._rows = list(rows)
            if rows:
                self.dataChanged.emit(
                    self.index(0, 0), self.index(len(rows) - 1, len(self.COLUMNS) - 1)
                )
            return
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def rows(self) -> list[ModelLatency]:
        return list(self._rows)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row: ModelLatency = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.TextAlignmentRole and col != self.MODEL:
            return _RIGHT
        if role == Qt.ItemDataRole.ToolTipRole and col in (self.TPS50, self.TPS95):
            wall = row.wall_tokens_per_s
            if wall is not None:
                return f"From the wall clock: p50 {wall.p50:.1f}, p95 {wall.p95:.1f} tokens/s"
            return None
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if col == self.MODEL:
            return row.model
        if col == self.REPLIES:
            return str(row.replies)
        if col == self.TTFT50:
            return _p(row.ttft_ms, "p50", fmt.ms_text)
        if col == self.TTFT95:
            return _p(row.ttft_ms, "p95", fmt.ms_text)
        if col == self.TPS50:
            return _p(row.tokens_per_s, "p50", fmt.rate_text)
        if col == self.TPS95:
            return _p(row.tokens_per_s, "p95", fmt.rate_text)
        if col == self.PROMPT:
            return _p(row.prompt_tokens_per_s, "p50", fmt.rate_text)
        if col == self.LOAD:
            return _p(row.load_ms, "p50", fmt.ms_text)
        return None


class LatencyPanel(QWidget):
    """Round trips of every host, and the selected host's reply figures per model.

    Attributes:
        health: where round trips come from.
        latency: where reply figures come from (None: the table says they are off).
        host_id: the selected host (None: none).
        window_s: the time span of round trips shown, in seconds.
        rtt_label: the selected host's round trip p50 / p95.
        table_model, table: the models of the selected host.
        note: shown instead of the table when there is nothing to list.
        timer: drives the redraws while the panel is visible.

    Object names: latencyPanel, latencyRttPlot, latencyRttLabel, latencyTable,
    latencyNote.
    """

    def __init__(
        self,
        health: HealthMonitor,
        latency: LatencyBook | None,
        *,
        interval_s: float = 1.0,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("latencyPanel")
        self.health = health
        self.latency = latency
        self.host_id: str | None = None
        self.window_s = RTT_WINDOW_S
        self._hosts: list[HostConfig] = []
        self._plot: Any = None
        self._curves: dict[str, Any] = {}
        self._drawn: dict[str, tuple[int, float | None]] = {}
        self._curve_selected: str | None = None
        self._x_range: tuple[float, float] | None = None
        self._table_stale = True
        self._running = False
        # round trips are kept on the monotonic clock; the plot's axis shows clock times
        self._epoch_offset = time.time() - time.monotonic()
        self._signals = LatencySignals(latency, self) if latency is not None else None

        self.rtt_label = QLabel(self)
        self.rtt_label.setObjectName("latencyRttLabel")
        self.rtt_label.setTextFormat(Qt.TextFormat.PlainText)
        self.table_model = LatencyTableModel(self)
        self.table = QTableView(self)
        self.table.setObjectName("latencyTable")
        self.table.setModel(self.table_model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(LatencyTableModel.MODEL, QHeaderView.ResizeMode.Stretch)
        self.note = QLabel(self)
        self.note.setObjectName("latencyNote")
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        below = QWidget(self)
        below_layout = QVBoxLayout(below)
        below_layout.setContentsMargins(0, 0, 0, 0)
        below_layout.addWidget(self.rtt_label)
        below_layout.addWidget(self.note)
        below_layout.addWidget(self.table, 1)
        self._plot_holder = QWidget(self)
        self._plot_holder.setMinimumWidth(260)
        self._plot_layout = QVBoxLayout(self._plot_holder)
        self._plot_layout.setContentsMargins(0, 0, 0, 0)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self._plot_holder)
        self.splitter.addWidget(below)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.splitter, 1)

        self.timer = QTimer(self)
        self.timer.setObjectName("latencyTimer")
        self.timer.setInterval(max(100, int(interval_s * 1000)))
        self.timer.timeout.connect(self.refresh)
        if self._signals is not None:
            self._signals.changed.connect(self._on_book_changed)
        self._show_table()

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        if self.isVisible():
            self._start_timer()

    def stop(self) -> None:
        self._running = False
        self.timer.stop()

    def detach(self) -> None:
        self.stop()
        if self._signals is not None:
            self._signals.detach()

    def _start_timer(self) -> None:
        if self._running and not self.timer.isActive():
            self.timer.start()
            QTimer.singleShot(0, self.refresh)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._start_timer()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.timer.stop()

    def set_interval(self, seconds: float) -> None:
        self.timer.setInterval(max(100, int(seconds * 1000)))

    def set_window(self, seconds: float) -> None:
        """Show the round trips of the last ``seconds`` (from the first probe when there
        are fewer)."""
        self.window_s = float(seconds)
        self._x_range = None  # the next redraw sets the range again
        self.refresh()

    # -- what is shown ----------------------------------------------------------------
    def set_hosts(self, hosts: list[HostConfig]) -> None:
        """The fleet (one curve per host, named after it)."""
        self._hosts = list(hosts)
        wanted = {c.id: c for c in hosts}
        for host_id in [h for h in self._curves if h not in wanted]:
            if self._plot is not None:
                self._plot.getPlotItem().removeItem(self._curves.pop(host_id))
            self._drawn.pop(host_id, None)
        for host_id in list(self._curves):
            if self._curves[host_id].name() != wanted[host_id].name and self._plot is not None:
                # renamed: made again with the new name in the legend
                self._plot.getPlotItem().removeItem(self._curves.pop(host_id))
                self._drawn.pop(host_id, None)
        self.refresh()

    def set_host(self, host_id: str | None) -> None:
        """The selected host: its curve is drawn thicker and its models are listed."""
        if host_id == self.host_id:
            return
        self.host_id = host_id
        self._table_stale = True
        self.refresh()

    def _on_book_changed(self, host_id: str) -> None:
        if host_id == self.host_id:
            self._table_stale = True

    # -- reading (tests) --------------------------------------------------------------
    @property
    def plot(self) -> Any:
        """The round-trip PlotWidget (None until built)."""
        return self._plot

    def curves(self) -> dict[str, Any]:
        """The round-trip curves by host id."""
        return dict(self._curves)

    # -- drawing ----------------------------------------------------------------------
    def ensure_plot(self) -> Any:
        if self._plot is None:
            pg = plotting.pyqtgraph()
            axis = pg.DateAxisItem(orientation="bottom")
            widget = pg.PlotWidget(parent=self._plot_holder, axisItems={"bottom": axis})
            widget.setObjectName("latencyRttPlot")
            widget.setMinimumHeight(120)
            plotting.style_plot(widget, self)
            item = widget.getPlotItem()
            item.setTitle("Round trip per host (ms)", size="9pt")
            item.getViewBox().setAutoVisible(y=True)
            item.enableAutoRange(x=False)
            item.addLegend(offset=(4, 4), labelTextSize="8pt")
            self._plot_layout.addWidget(widget)
            self._plot = widget
            width = max(2, self.splitter.width())
            self.splitter.setSizes([width * 2 // 5, width - width * 2 // 5])
        return self._plot

    def refresh(self) -> None:
        """Bring the plot and the table up to date (no-op while hidden)."""
        if not self.isVisible() or self.window().isMinimized():
            return
        self._draw_rtt()
        if self._table_stale:
            self._table_stale = False
            self._show_table()

    def _draw_rtt(self) -> None:
        plot = self.ensure_plot()
        item = plot.getPlotItem()
        high: float | None = None
        changed = False
        for i, config in enumerate(self._hosts):
            ring = self.health.rtt_history(config.id)
            count = len(ring)
            last = ring.last()
            if last is not None:
                t = last[0] + self._epoch_offset
                high = t if high is None else max(high, t)
            signature = (count, last[0] if last is not None else None)
            if self._drawn.get(config.id) == signature and config.id in self._curves:
                continue
            curve = self._curves.get(config.id)
            if curve is None:
                if count == 0:
                    continue
                curve = item.plot(name=config.name)
                self._curves[config.id] = curve
                self._style_curve(config.id, i)
            self._drawn[config.id] = signature
            x, y = plotting.arrays(ring, count)
            curve.setData(x + self._epoch_offset, y)
            changed = True
        if self._curve_selected != self.host_id:
            self._curve_selected = self.host_id
            for i, config in enumerate(self._hosts):
                if config.id in self._curves:
                    self._style_curve(config.id, i)
        if high is not None and (changed or self._x_range is None):
            # the window (15 minutes by default), or from the first probe when there is less
            firsts = [
                next(iter(ring))[0] + self._epoch_offset
                for ring in (self.health.rtt_history(c.id) for c in self._hosts)
                if len(ring)
            ]
            low = max(high - self.window_s, min(firsts, default=high) - 1.0)
            if self._x_range != (low, high):
                self._x_range = (low, high)
                item.setXRange(low, high, padding=0.0)
        if changed or self._table_stale:
            self._show_rtt()

    def _style_curve(self, host_id: str, index: int) -> None:
        width = 2.5 if host_id == self.host_id else 1.0
        self._curves[host_id].setPen(plotting.pen(plotting.colour(index), width=width))

    def _show_rtt(self) -> None:
        if self.host_id is None:
            self.rtt_label.setText("")
            return
        name = next((c.name for c in self._hosts if c.id == self.host_id), self.host_id)
        summary = self.health.rtt_history(self.host_id).summary()
        if summary is None:
            text = f"{name}: no round trip measured yet."
        else:
            text = (
                f"{name}: round trip p50 {fmt.rtt_text(summary.p50)}, "
                f"p95 {fmt.rtt_text(summary.p95)} over {summary.count} probes"
            )
        if self.rtt_label.text() != text:
            self.rtt_label.setText(text)

    def _show_table(self) -> None:
        book = self.latency
        if book is None:
            self.table_model.set_rows([])
            self._set_note("Reply latencies are not recorded: telemetry is off.")
            return
        if self.host_id is None:
            self.table_model.set_rows([])
            self._set_note("Select a host to see the latencies of its models.")
            return
        rows = [book.model_summary(self.host_id, m) for m in book.models(self.host_id)]
        self.table_model.set_rows(rows)
        self._set_note("" if rows else "No replies or loads recorded for this host's models yet.")
        self._show_rtt()

    def _set_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))
        self.table.setVisible(not text)
