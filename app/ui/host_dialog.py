"""The dialog that adds a host or edits one: address, display name and extra headers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import CorralError
from app.core.hosts.address import normalize_host_url
from app.core.hosts.base import HostConfig
from app.core.secrets import is_sensitive_header


@dataclass(frozen=True)
class TelemetryFields:
    """Where a host's hardware figures come from (all optional).

    ``agent_token`` None means "leave the stored token as it is" (editing a host whose
    token is kept in the keyring); "" means no token.
    """

    agent_url: str = ""
    agent_token: str | None = ""
    exporter_url: str = ""


#: Called with (url, name, headers, telemetry) when the user presses OK; returns the saved
#: host or raises a CorralError (InvalidInput for a duplicate address, a bad header, ...).
SubmitHost = Callable[[str, str, list[tuple[str, str]], TelemetryFields], HostConfig]


class HostDialog(QDialog):
    """Add or edit a host.

    The address is checked as the user types; OK stays disabled, with the reason shown,
    until it is valid. Pressing OK calls ``submit``; an error it raises is shown in the
    dialog, which stays open.

    Attributes:
        url_edit, name_edit: the address and display name fields.
        headers_table: one row per header, name and value (sensitive values masked).
        agent_url_edit, agent_token_edit, exporter_url_edit: where the host's hardware
            figures come from: a Corral agent (with its token) or a Prometheus exporter.
        message: the label that shows why the input cannot be used.
        saved: the host returned by ``submit`` once the dialog was accepted.

    Signals:
        hostSaved(str): the id of the host that was added or changed.
    """

    hostSaved = Signal(str)

    NAME_COL, VALUE_COL = 0, 1

    def __init__(
        self,
        submit: SubmitHost,
        *,
        config: HostConfig | None = None,
        missing_secrets: list[str] | None = None,
        has_agent_token: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("hostDialog")
        self._submit = submit
        self.saved: HostConfig | None = None
        editing = config is not None
        self.setWindowTitle(f"Edit host {config.name}" if config else "Add host")

        self.url_edit = QLineEdit(self)
        self.url_edit.setObjectName("hostUrlEdit")
        self.url_edit.setPlaceholderText("http://192.168.1.20:11434")
        self.name_edit = QLineEdit(self)
        self.name_edit.setObjectName("hostNameEdit")
        self.name_edit.setPlaceholderText("Optional, e.g. Workstation")

        self.headers_table = QTableWidget(0, 2, self)
        self.headers_table.setObjectName("hostHeadersTable")
        self.headers_table.setHorizontalHeaderLabels(["Header", "Value"])
        self.headers_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.headers_table.verticalHeader().hide()
        self.headers_table.setMinimumHeight(110)
        self.add_header_button = QPushButton("Add header", self)
        self.add_header_button.setObjectName("hostAddHeader")
        self.remove_header_button = QPushButton("Remove header", self)
        self.remove_header_button.setObjectName("hostRemoveHeader")

        self._has_agent_token = has_agent_token
        self.agent_url_edit = QLineEdit(self)
        self.agent_url_edit.setObjectName("hostAgentUrlEdit")
        self.agent_url_edit.setPlaceholderText("http://192.168.1.20:9101 (corral-agent)")
        self.agent_token_edit = QLineEdit(self)
        self.agent_token_edit.setObjectName("hostAgentTokenEdit")
        self.agent_token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.agent_token_edit.setPlaceholderText(
            "kept in the OS keyring (leave empty to keep it)"
            if has_agent_token
            else "the token the agent printed"
        )
        self.agent_token_edit.setToolTip("Kept in the OS keyring, not in the settings file")
        self.exporter_url_edit = QLineEdit(self)
        self.exporter_url_edit.setObjectName("hostExporterUrlEdit")
        self.exporter_url_edit.setPlaceholderText(
            "or exporters: http://gpu-box:9100, http://gpu-box:9400 (node, dcgm, nvitop)"
        )
        telemetry_box = QGroupBox("Hardware figures (optional)", self)
        telemetry_form = QFormLayout(telemetry_box)
        telemetry_form.addRow("A&gent:", self.agent_url_edit)
        telemetry_form.addRow("Agent &token:", self.agent_token_edit)
        telemetry_form.addRow("E&xporters:", self.exporter_url_edit)

        self.message = QLabel(self)
        self.message.setObjectName("hostDialogMessage")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b3261e;")
        self.note = QLabel(self)
        self.note.setObjectName("hostDialogNote")
        self.note.setWordWrap(True)
        self.note.setVisible(bool(missing_secrets))
        if missing_secrets:
            self.note.setText(
                "The value of " + ", ".join(missing_secrets) + " was not kept (no OS keyring): "
                "enter it again."
            )

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setObjectName("hostOkButton")
        self.ok_button.setText("Save" if editing else "Add")
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setObjectName(
            "hostCancelButton"
        )

        form = QFormLayout()
        form.addRow("&Address:", self.url_edit)
        form.addRow("&Name:", self.name_edit)
        header_buttons = QHBoxLayout()
        header_buttons.addWidget(self.add_header_button)
        header_buttons.addWidget(self.remove_header_button)
        header_buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Extra HTTP headers (for a reverse proxy or a token):", self))
        layout.addWidget(self.headers_table)
        layout.addLayout(header_buttons)
        layout.addWidget(telemetry_box)
        layout.addWidget(self.note)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.resize(520, 470)

        if config is not None:
            self.url_edit.setText(config.url)
            self.name_edit.setText(config.name)
            self.agent_url_edit.setText(config.agent_url)
            self.exporter_url_edit.setText(config.exporter_url)
            for name, value in config.headers:
                self.add_header(name, value)
            for name in missing_secrets or []:
                if not any(n.lower() == name.lower() for n, _ in config.headers):
                    self.add_header(name, "")
        self._wire()
        self.validate()

    def _wire(self) -> None:
        self.url_edit.textChanged.connect(self.validate)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.add_header_button.clicked.connect(lambda: self.add_header("", ""))
        self.remove_header_button.clicked.connect(self._remove_current_header)

    # -- headers ----------------------------------------------------------------------
    def add_header(self, name: str, value: str) -> int:
        """Append a header row; returns its row number."""
        row = self.headers_table.rowCount()
        self.headers_table.insertRow(row)
        name_edit = QLineEdit(name, self.headers_table)
        name_edit.setObjectName(f"headerName{row}")
        name_edit.setPlaceholderText("Authorization")
        name_edit.setFrame(False)
        value_edit = QLineEdit(value, self.headers_table)
        value_edit.setObjectName(f"headerValue{row}")
        value_edit.setFrame(False)
        self.headers_table.setCellWidget(row, self.NAME_COL, name_edit)
        self.headers_table.setCellWidget(row, self.VALUE_COL, value_edit)
        name_edit.textChanged.connect(lambda text, v=value_edit: self._mask(v, text))
        self._mask(value_edit, name)
        return row

    @staticmethod
    def _mask(value_edit: QLineEdit, header_name: str) -> None:
        sensitive = is_sensitive_header(header_name)
        value_edit.setEchoMode(
            QLineEdit.EchoMode.Password if sensitive else QLineEdit.EchoMode.Normal
        )
        value_edit.setToolTip(
            "Kept in the OS keyring, not in the settings file" if sensitive else ""
        )

    def _remove_current_header(self) -> None:
        row = self.headers_table.currentRow()
        if row < 0:
            row = self.headers_table.rowCount() - 1
        if row >= 0:
            self.headers_table.removeRow(row)

    def header_edits(self, row: int) -> tuple[QLineEdit, QLineEdit]:
        name = self.headers_table.cellWidget(row, self.NAME_COL)
        value = self.headers_table.cellWidget(row, self.VALUE_COL)
        assert isinstance(name, QLineEdit) and isinstance(value, QLineEdit)
        return name, value

    def headers(self) -> list[tuple[str, str]]:
        out = []
        for row in range(self.headers_table.rowCount()):
            name, value = self.header_edits(row)
            if name.text().strip() or value.text().strip():
                out.append((name.text(), value.text()))
        return out

    def telemetry(self) -> TelemetryFields:
        agent_url = self.agent_url_edit.text().strip()
        token: str | None = self.agent_token_edit.text().strip()
        if not token and self._has_agent_token and (agent_url or self.exporter_url_edit.text()):
            token = None  # empty field: keep the stored token
        return TelemetryFields(agent_url, token, self.exporter_url_edit.text().strip())

    # -- validation and saving --------------------------------------------------------
    def validate(self) -> bool:
        """Check the address; enable OK only when it is usable, else say why."""
        try:
            normalize_host_url(self.url_edit.text())
        except CorralError as exc:
            self.ok_button.setEnabled(False)
            self.message.setText(exc.message)
            return False
        self.ok_button.setEnabled(True)
        self.message.clear()
        return True

    def accept(self) -> None:
        if not self.validate():
            return
        try:
            saved = self._submit(
                self.url_edit.text(), self.name_edit.text(), self.headers(), self.telemetry()
            )
        except CorralError as exc:
            self.message.setText(exc.message)
            return
        self.saved = saved
        super().accept()
        self.hostSaved.emit(saved.id)


__all__ = ["HostDialog", "SubmitHost", "TelemetryFields"]
