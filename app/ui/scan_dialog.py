"""The dialog that scans networks for model hosts and offers what it finds."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.discovery.policy import parse_scan_target
from app.core.discovery.scanner import ScanProgress, ScanResult, check_ports, unique_addresses
from app.core.discovery.service import DiscoveryService, Suggestion
from app.core.errors import CorralError, InvalidInput
from app.ui.adapters import DiscoverySignals
from app.ui.suggestions import SuggestionTable
from app.ui.tasks import TaskRunner

IDLE, SCANNING, DONE, CANCELLED, FAILED = "idle", "scanning", "done", "cancelled", "failed"

_SPLIT = re.compile(r"[\s,;]+")


def split_targets(text: str) -> list[str]:
    """The networks or addresses typed in one field, separated by commas or spaces."""
    return [t for t in _SPLIT.split(text.strip()) if t]


def parse_ports(text: str) -> list[int]:
    """Port numbers typed in one field; InvalidInput with a sentence for anything else."""
    parts = [p for p in _SPLIT.split(text.strip()) if p]
    if not parts:
        raise InvalidInput("Enter at least one port to scan, for example 11434.")
    ports: list[int] = []
    for part in parts:
        if not part.isdigit():
            raise InvalidInput(f"{part!r} is not a port number; enter numbers like 11434, 8080.")
        ports.append(int(part))
    return list(check_ports(ports))


class ScanDialog(QDialog):
    """Scan networks for model hosts: targets, ports, Start / Cancel, progress, found hosts.

    Targets are CIDR networks or addresses, separated by commas or spaces; they are
    checked as the user types (only private, link-local and loopback networks of a
    bounded size are accepted) and a problem is shown in the dialog. The scan runs as a
    task owned by the dialog; Cancel stops it, and so does closing the dialog. Found
    hosts, and hosts that announced themselves (mDNS), are listed with Keep and Dismiss;
    Keep adds the host to the fleet at once.

    Attributes:
        discovery: the discovery service.
        state: "idle", "scanning", "done", "cancelled" or "failed".
        targets_edit, ports_edit: what to scan.
        start_button, cancel_button, close_button: the controls.
        progress_bar: probes done out of the total.
        counts_label: probed / open / found / elapsed.
        message: why the input cannot be used, or why a scan or a Keep failed.
        found_table: the :class:`SuggestionTable`.
        last_result: the last finished scan's :class:`ScanResult`, or None.

    Signals:
        hostKept(str): the id of a host added with Keep.
        stateChanged(str): the new state.
    """

    hostKept = Signal(str)
    stateChanged = Signal(str)

    def __init__(
        self,
        discovery: DiscoveryService,
        signals: DiscoverySignals,
        *,
        targets: str,
        ports: list[int],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("scanDialog")
        self.setWindowTitle("Scan the network for model hosts")
        self.discovery = discovery
        self._signals = signals
        self.state = IDLE
        self.last_result: ScanResult | None = None
        self._tasks = TaskRunner(self._failed)
        self._task: asyncio.Task[Any] | None = None
        self._active = False
        self._input_ok = False

        self.targets_edit = QLineEdit(targets, self)
        self.targets_edit.setObjectName("scanTargetsEdit")
        self.targets_edit.setPlaceholderText("192.168.1.0/24, 10.0.0.7")
        self.targets_edit.setToolTip(
            "Networks (CIDR) or addresses, separated by commas. Only private, link-local "
            "and loopback networks are scanned."
        )
        self.ports_edit = QLineEdit(", ".join(str(p) for p in ports), self)
        self.ports_edit.setObjectName("scanPortsEdit")
        self.ports_edit.setToolTip(
            "TCP ports to try: 11434 Ollama, 1234 LM Studio, 8080 llama.cpp, 8000 vLLM"
        )
        self.message = QLabel(self)
        self.message.setObjectName("scanMessage")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b3261e;")
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.start_button = QPushButton("Start", self)
        self.start_button.setObjectName("scanStartButton")
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("scanCancelButton")
        self.cancel_button.setToolTip("Stop the scan")
        self.close_button = QPushButton("Close", self)
        self.close_button.setObjectName("scanCloseButton")
        self.close_button.setToolTip("Closing the dialog stops a scan that is still running.")

        self.progress_bar = QProgressBar(self)
        self.progress_bar.setObjectName("scanProgress")
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%v of %m")
        self.counts_label = QLabel("Press Start to scan.", self)
        self.counts_label.setObjectName("scanCounts")

        self.found_table = SuggestionTable(self)
        self.found_table.setObjectName("scanFoundTable")
        self.found_label = QLabel("Found hosts:", self)

        form = QFormLayout()
        form.addRow("&Networks:", self.targets_edit)
        form.addRow("&Ports:", self.ports_edit)
        controls = QHBoxLayout()
        controls.addWidget(self.progress_bar, 1)
        controls.addWidget(self.start_button)
        controls.addWidget(self.cancel_button)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addLayout(controls)
        layout.addWidget(self.counts_label)
        layout.addWidget(self.found_label)
        layout.addWidget(self.found_table, 1)
        layout.addLayout(bottom)
        self.resize(760, 440)
        self._wire()
        self.found_table.set_suggestions(discovery.suggestions)
        self.validate()

    def _wire(self) -> None:
        self.start_button.clicked.connect(self.start_scan)
        self.targets_edit.returnPressed.connect(self.start_scan)
        self.ports_edit.returnPressed.connect(self.start_scan)
        self.targets_edit.textChanged.connect(self.validate)
        self.ports_edit.textChanged.connect(self.validate)
        self.cancel_button.clicked.connect(self.cancel_scan)
        self.close_button.clicked.connect(self.reject)
        self.found_table.keepRequested.connect(self.keep)
        self.found_table.dismissRequested.connect(self.dismiss)
        self._signals.suggestionsChanged.connect(self.found_table.set_suggestions)
        self._signals.scanProgress.connect(self._show_progress)

    # -- input ------------------------------------------------------------------------
    def scan_input(self) -> tuple[list[str], list[int]]:
        """The targets and ports typed; InvalidInput with a sentence when unusable."""
        targets = split_targets(self.targets_edit.text())
        if not targets:
            raise InvalidInput("Enter a network to scan, for example 192.168.1.0/24.")
        for target in targets:
            parse_scan_target(target, max_addresses=self.discovery.max_addresses)
        return targets, parse_ports(self.ports_edit.text())

    def validate(self) -> bool:
        """Check the input; Start is enabled only when it can be scanned, else say why."""
        try:
            self.scan_input()
        except CorralError as exc:
            self._input_ok = False
            self.message.setText(exc.message)
            self._update_buttons()
            return False
        self._input_ok = True
        self.message.clear()
        self._update_buttons()
        return True

    # -- state ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._active

    def _set_state(self, state: str) -> None:
        self.state = state
        self._update_buttons()
        self.stateChanged.emit(state)

    def _update_buttons(self) -> None:
        running = self.running
        self.start_button.setEnabled(not running and self._input_ok)
        self.cancel_button.setEnabled(running)
        self.targets_edit.setReadOnly(running)
        self.ports_edit.setReadOnly(running)

    # -- scanning ---------------------------------------------------------------------
    def start_scan(self) -> None:
        """Scan what the fields say (ignored while a scan runs or the input is bad)."""
        if self.running:
            return
        try:
            targets, ports = self.scan_input()
            total = len(unique_addresses(self.discovery.networks(targets))) * len(ports)
        except CorralError as exc:
            self.message.setText(exc.message)
            return
        self.message.clear()
        self.last_result = None
        self.progress_bar.setRange(0, max(1, total))
        self.progress_bar.setValue(0)
        self.counts_label.setText(f"Scanning {total:,} address and port pairs…")
        self._active = True
        self._task = self._tasks.spawn(self._scan(targets, ports), name="network scan")
        self._set_state(SCANNING)

    def cancel_scan(self) -> None:
        """Stop the running scan; the dialog then says so."""
        if self._active and self._task is not None and not self._task.done():
            self._task.cancel()
            self.counts_label.setText("Stopping…")
            self.cancel_button.setEnabled(False)

    async def cancel_and_wait(self) -> None:
        self.cancel_scan()
        await self._tasks.cancel_all()

    async def _scan(self, targets: list[str], ports: list[int]) -> None:
        try:
            result = await self.discovery.scan(targets, ports)
        except asyncio.CancelledError:
            self._active = False
            self.counts_label.setText(f"Stopped. {self._counts_text()}")
            self._set_state(CANCELLED)
            raise
        except BaseException:
            self._active = False  # the runner reports the error through _failed
            raise
        self._active = False
        self.last_result = result
        self.progress_bar.setRange(0, max(1, result.probed))
        self.progress_bar.setValue(result.probed)
        found = len(result.found)
        hosts = "1 model host" if found == 1 else f"{found} model hosts"
        self.counts_label.setText(
            f"Done: probed {result.probed:,}, {result.open_ports} open, found {hosts} "
            f"in {result.elapsed_s:.1f} s."
        )
        self._set_state(DONE)

    def _counts_text(self) -> str:
        bar = self.progress_bar
        return f"Probed {bar.value():,} of {bar.maximum():,}."

    def _show_progress(self, progress: ScanProgress) -> None:
        if not self._active:
            return
        if progress.total and progress.total != self.progress_bar.maximum():
            self.progress_bar.setRange(0, progress.total)
        if progress.probed > self.progress_bar.value():
            self.progress_bar.setValue(progress.probed)
        self.counts_label.setText(
            f"Probed {progress.probed:,} of {progress.total:,} · {progress.open} open · "
            f"{progress.found} found · {progress.elapsed_s:.1f} s"
        )

    def _failed(self, message: str) -> None:
        self.message.setText(message)
        self.counts_label.setText("The scan failed.")
        self._set_state(FAILED)

    # -- found hosts ------------------------------------------------------------------
    def keep(self, suggestion: Suggestion) -> None:
        """Add a found host to the fleet (an error is shown in the dialog)."""
        try:
            config = self.discovery.keep(suggestion)
        except CorralError as exc:
            self.message.setText(exc.message)
            return
        self.hostKept.emit(config.id)

    def dismiss(self, suggestion: Suggestion) -> None:
        self.discovery.dismiss(suggestion)

    # -- closing ----------------------------------------------------------------------
    def done(self, result: int) -> None:
        """Closing the dialog (Close, Escape, the window's X) stops a running scan."""
        self.cancel_scan()
        super().done(result)
