"""The dialog that downloads a model onto a host and shows its progress layer by layer."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.core.hosts.base import Host, LayerProgress, PullProgress
from app.ui import formatting as fmt
from app.ui.tasks import TaskRunner

IDLE, PULLING, DONE, CANCELLED, FAILED = "idle", "pulling", "done", "cancelled", "failed"


class PullDialog(QDialog):
    """Pull a model: a name field, one bar per layer, an overall bar, speed and time left.

    The pull runs as a task owned by the dialog. Cancel (or closing the dialog) cancels
    the task, which closes the HTTP stream so the host stops downloading. A failure is
    shown in the dialog in the host's words.

    Attributes:
        host: the host that downloads.
        state: "idle", "pulling", "done", "cancelled" or "failed".
        model_edit, pull_button, cancel_button, close_button: the controls.
        overall_bar: overall progress in percent (0-100).
        status_label, speed_label, eta_label: what is happening, MB/s, time left.
        layer_bars: digest -> progress bar, in the order the host announced the layers.

    Signals:
        pulled(str): the model was pulled completely (the name as typed).
        stateChanged(str): the new state.
    """

    pulled = Signal(str)
    stateChanged = Signal(str)

    def __init__(
        self, host: Host, *, host_name: str, model: str = "", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("pullDialog")
        self.setWindowTitle(f"Pull a model onto {host_name}")
        self.host = host
        self.state = IDLE
        self._tasks = TaskRunner(self._failed)
        self._task: asyncio.Task[Any] | None = None
        self._model = ""
        self._active = False  # True from start to the end of the pull (before the task ends)
        self.layer_bars: dict[str, QProgressBar] = {}
        self._layer_labels: dict[str, QLabel] = {}

        self.model_edit = QLineEdit(model, self)
        self.model_edit.setObjectName("pullModelEdit")
        self.model_edit.setPlaceholderText("e.g. llama3.2, qwen3:0.6b")
        self.pull_button = QPushButton("Pull", self)
        self.pull_button.setObjectName("pullButton")
        self.pull_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("pullCancelButton")
        self.close_button = QPushButton("Close", self)
        self.close_button.setObjectName("pullCloseButton")
        self.close_button.setToolTip("Closing the dialog stops a pull that is still running.")

        self.status_label = QLabel("Enter the name of a model from the Ollama library.", self)
        self.status_label.setObjectName("pullStatusLabel")
        self.status_label.setWordWrap(True)
        self.overall_bar = QProgressBar(self)
        self.overall_bar.setObjectName("pullOverallBar")
        self.overall_bar.setRange(0, 100)
        self.overall_bar.setValue(0)
        self.bytes_label = QLabel(fmt.DASH, self)
        self.bytes_label.setObjectName("pullBytesLabel")
        self.speed_label = QLabel(fmt.DASH, self)
        self.speed_label.setObjectName("pullSpeedLabel")
        self.eta_label = QLabel(fmt.DASH, self)
        self.eta_label.setObjectName("pullEtaLabel")

        self._layers_box = QWidget(self)
        self._layers_box.setObjectName("pullLayers")
        self._layers_grid = QGridLayout(self._layers_box)
        self._layers_grid.setContentsMargins(0, 0, 0, 0)
        self._layers_grid.setColumnStretch(1, 1)
        self._layers_grid.setAlignment(Qt.AlignmentFlag.AlignTop)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self._layers_box)
        scroll.setMinimumHeight(90)

        top = QHBoxLayout()
        model_label = QLabel("&Model:", self)
        model_label.setBuddy(self.model_edit)
        top.addWidget(model_label)
        top.addWidget(self.model_edit, 1)
        top.addWidget(self.pull_button)
        figures = QFormLayout()
        figures.addRow("Overall:", self.overall_bar)
        figures.addRow("Downloaded:", self.bytes_label)
        figures.addRow("Speed:", self.speed_label)
        figures.addRow("Time left:", self.eta_label)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status_label)
        layout.addWidget(QLabel("Layers:", self))
        layout.addWidget(scroll, 1)
        layout.addLayout(figures)
        layout.addLayout(bottom)
        self.resize(520, 380)
        self._wire()
        self._update_buttons()

    def _wire(self) -> None:
        self.pull_button.clicked.connect(self.start_pull)
        self.model_edit.returnPressed.connect(self.start_pull)
        self.model_edit.textChanged.connect(self._update_buttons)
        self.cancel_button.clicked.connect(self.cancel_pull)
        self.close_button.clicked.connect(self.reject)

    # -- state ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._active

    def _set_state(self, state: str, text: str) -> None:
        self.state = state
        self.status_label.setText(text)
        self._update_buttons()
        self.stateChanged.emit(state)

    def _update_buttons(self) -> None:
        running = self.running
        self.pull_button.setEnabled(not running and bool(self.model_edit.text().strip()))
        self.model_edit.setReadOnly(running)
        self.cancel_button.setEnabled(running)

    # -- actions ----------------------------------------------------------------------
    def start_pull(self) -> None:
        """Start pulling the model named in the field (ignored while a pull runs)."""
        name = self.model_edit.text().strip()
        if self.running or not name:
            return
        self._reset_progress()
        self._model = name
        self._active = True
        self._task = self._tasks.spawn(self._pull(name), name=f"pull {name}")
        self._set_state(PULLING, f"Pulling {name}…")

    def cancel_pull(self) -> None:
        """Stop the running pull; the dialog then says "Cancelled"."""
        if self._active and self._task is not None and not self._task.done():
            self._task.cancel()
            self.status_label.setText("Cancelling…")
            self.cancel_button.setEnabled(False)

    async def cancel_and_wait(self) -> None:
        self.cancel_pull()
        await self._tasks.cancel_all()

    async def _pull(self, name: str) -> None:
        try:
            async with contextlib.aclosing(self.host.pull(name)) as stream:  # type: ignore[type-var]
                async for progress in stream:
                    self._show(progress)
        except asyncio.CancelledError:
            self._active = False
            self._set_state(CANCELLED, f"Cancelled. {name} was not pulled.")
            raise
        except BaseException:
            self._active = False  # the runner reports the error through _failed
            raise
        self._active = False
        self.overall_bar.setValue(100)
        self._set_state(DONE, f"Done: {name} is on the host.")
        self.pulled.emit(name)

    def _failed(self, message: str) -> None:
        self._set_state(FAILED, message)

    # -- progress ---------------------------------------------------------------------
    def _reset_progress(self) -> None:
        for digest in list(self.layer_bars):
            self.layer_bars.pop(digest).deleteLater()
            self._layer_labels.pop(digest).deleteLater()
        self.overall_bar.setValue(0)
        self.bytes_label.setText(fmt.DASH)
        self.speed_label.setText(fmt.DASH)
        self.eta_label.setText(fmt.DASH)

    def _show(self, progress: PullProgress) -> None:
        for layer in progress.layers:
            self._show_layer(layer)
        if progress.fraction is not None:
            percent = 100 if progress.done else min(99, int(progress.fraction * 100))
            if percent > self.overall_bar.value():
                self.overall_bar.setValue(percent)
        if progress.total:
            self.bytes_label.setText(
                f"{fmt.human_size(progress.completed)} of {fmt.human_size(progress.total)}"
            )
        self.speed_label.setText(fmt.human_speed(progress.bytes_per_s))
        self.eta_label.setText(fmt.eta_text(progress.eta_s))
        if not progress.done and progress.status:
            self.status_label.setText(f"{self._model}: {progress.status}")

    def _show_layer(self, layer: LayerProgress) -> None:
        bar = self.layer_bars.get(layer.digest)
        if bar is None:
            short = fmt.short_digest(layer.digest)
            row = len(self.layer_bars)
            label = QLabel(self._layers_box)
            label.setObjectName(f"pullLayerLabel-{short}")
            bar = QProgressBar(self._layers_box)
            bar.setObjectName(f"pullLayerBar-{short}")
            bar.setRange(0, 1000)
            self._layers_grid.addWidget(label, row, 0)
            self._layers_grid.addWidget(bar, row, 1)
            self.layer_bars[layer.digest] = bar
            self._layer_labels[layer.digest] = label
        permille = int(1000 * layer.completed / layer.total) if layer.total else 0
        bar.setValue(min(1000, permille))
        self._layer_labels[layer.digest].setText(
            f"{fmt.short_digest(layer.digest)}  "
            f"{fmt.human_size(layer.completed)} / {fmt.human_size(layer.total)}"
        )

    # -- closing ----------------------------------------------------------------------
    def done(self, result: int) -> None:
        """Closing the dialog (Close, Escape, the window's X) stops a running pull."""
        self.cancel_pull()
        super().done(result)
