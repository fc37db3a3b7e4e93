"""The preview of a drop onto the MCP panel: what would be added, name conflicts, inputs to
answer, guesses to confirm, and what cannot be used. Nothing changes until Add is pressed;
then everything is added or nothing is (and the dialog says why)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QLabel,
    QLineEdit,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import CorralError
from app.core.mcp.config import McpConfigStore
from app.core.mcp.drop import Choice, DropItem, DropPreview, apply_preview
from app.core.mcp.types import Transport
from app.ui.tasks import TaskRunner

log = logging.getLogger(__name__)

#: Detects the transport of a bare URL (the manager's ``detect_transport``).
Detect = Callable[[str, Mapping[str, str]], Awaitable[Transport]]


def _describe(item: DropItem) -> str:
    config = item.config
    if config.url:
        how = "transport to be detected" if item.transport is None else config.transport.value
        return f"{config.url} ({how})"
    return " ".join([config.command, *config.args]).strip()


class _ItemRow(QFrame):
    """One server of the drop: its name (editable), what it runs, conflicts and notes."""

    def __init__(self, item: DropItem, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.item = item
        self.setObjectName("mcpDropItem")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        form = QFormLayout(self)
        self.name_edit = QLineEdit(item.suggested_name or item.name, self)
        self.name_edit.setObjectName("mcpDropName")
        form.addRow("Name", self.name_edit)
        what = QLabel(_describe(item), self)
        what.setWordWrap(True)
        what.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(item.kind.value.replace("-", " ").capitalize(), what)
        form.addRow("From", QLabel(item.source, self))
        self.action = QComboBox(self)
        self.action.setObjectName("mcpDropAction")
        if item.conflict:
            self.action.addItem(f"Add as “{item.suggested_name}”", "add")
            self.action.addItem(f"Replace the existing “{item.conflict}”", "replace")
        else:
            self.action.addItem("Add", "add")
        self.action.addItem("Skip", "skip")
        form.addRow("", self.action)
        if item.conflict:
            note = QLabel(f"A server named “{item.conflict}” exists already.", self)
            note.setObjectName("mcpDropConflict")
            note.setWordWrap(True)
            form.addRow("", note)
        self.confirm: QCheckBox | None = None
        if item.confirm:
            self.confirm = QCheckBox("I checked this command and want it run", self)
            self.confirm.setObjectName("mcpDropConfirm")
            form.addRow("", self.confirm)
        for text in item.warnings:
            label = QLabel(f"Note: {text}", self)
            label.setWordWrap(True)
            form.addRow("", label)
        for text in item.errors:
            label = QLabel(text, self)
            label.setObjectName("mcpDropItemError")
            label.setWordWrap(True)
            label.setStyleSheet("color: #b3261e;")
            form.addRow("", label)

    def choice(self) -> Choice:
        action = self.action.currentData()
        if action == "skip":
            return Choice.skip()
        if action == "replace":
            return Choice.replace()
        name = self.name_edit.text().strip()
        if name and name != (self.item.suggested_name or self.item.name):
            return Choice.rename(name)
        return Choice()


class McpDropDialog(QDialog):
    """The preview of one drop.

    Attributes:
        preview: what the drop would add. rows: one per server.
        inputs: input id -> its line edit.
        error_label: why the drop cannot be used, or why adding failed.
        add_button: adds (disabled when there is nothing to add).
        added: the names added (after success).

    Signals:
        applied(list): the servers were added (their names).
        failed(str): adding failed (the reason, also shown in the dialog).
    """

    applied = Signal(list)
    failed = Signal(str)

    def __init__(
        self,
        preview: DropPreview,
        store: McpConfigStore,
        detect: Detect | None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("mcpDropDialog")
        self.setWindowTitle("Add MCP servers")
        self.preview = preview
        self.store = store
        self._detect = detect
        self._tasks = TaskRunner(self._fail)
        self.added: list[str] = []
        layout = QVBoxLayout(self)
        count = len(preview.items)
        head = (
            f"This would add {count} MCP server{'s' if count != 1 else ''}. "
            "Nothing changes until you press Add."
            if count
            else "Nothing here can be added."
        )
        self.head_label = QLabel(head, self)
        self.head_label.setWordWrap(True)
        layout.addWidget(self.head_label)
        self.error_label = QLabel("\n".join(preview.errors), self)
        self.error_label.setObjectName("mcpDropError")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #b3261e;")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.setVisible(bool(preview.errors))
        layout.addWidget(self.error_label)
        for text in preview.warnings:
            label = QLabel(f"Note: {text}", self)
            label.setWordWrap(True)
            layout.addWidget(label)

        area = QScrollArea(self)
        area.setWidgetResizable(True)
        inner = QWidget(area)
        rows = QVBoxLayout(inner)
        self.rows = [_ItemRow(item, inner) for item in preview.items]
        for row in self.rows:
            rows.addWidget(row)
        self.inputs: dict[str, QLineEdit] = {}
        if preview.inputs:
            box = QFrame(inner)
            form = QFormLayout(box)
            form.addRow(QLabel("Values these servers need:", box))
            for request in preview.inputs:
                edit = QLineEdit(request.default, box)
                edit.setObjectName(f"mcpInput_{request.id}")
                if request.password:
                    edit.setEchoMode(QLineEdit.EchoMode.Password)
                    edit.setPlaceholderText("kept in the OS keyring")
                form.addRow(request.description or request.id, edit)
                self.inputs[request.id] = edit
            rows.addWidget(box)
        rows.addStretch(1)
        area.setWidget(inner)
        area.setVisible(bool(self.rows))
        layout.addWidget(area, 1)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.add_button = self.buttons.addButton("Add", QDialogButtonBox.ButtonRole.AcceptRole)
        self.add_button.setObjectName("mcpDropAdd")
        self.add_button.setEnabled(preview.ok)
        self.buttons.accepted.connect(self.apply)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.resize(560, 480 if self.rows else 220)

    def _fail(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(True)
        self.add_button.setEnabled(self.preview.ok)
        self.failed.emit(message)

    def apply(self) -> None:
        """Add the servers as chosen (a guessed command must be confirmed first)."""
        unconfirmed = [
            row.item.name
            for row in self.rows
            if row.confirm is not None
            and not row.confirm.isChecked()
            and row.choice().action != "skip"
        ]
        if unconfirmed:
            self._fail(
                "Check the command of " + ", ".join(unconfirmed) + " and tick the box (or skip it)."
            )
            return
        self.add_button.setEnabled(False)
        self._tasks.spawn(self._apply(), name="add MCP servers")

    async def _apply(self) -> None:
        transports: dict[str, Transport] = {}
        for row in self.rows:
            item = row.item
            if item.transport is None and row.choice().action != "skip":
                if self._detect is None:
                    transports[item.key] = Transport.HTTP
                    continue
                self.head_label.setText(f"Finding out how {item.config.url} is reached…")
                transports[item.key] = await self._detect(item.config.url, item.config.headers)
        answers = {key: edit.text() for key, edit in self.inputs.items()}
        choices = {row.item.key: row.choice() for row in self.rows}
        loop = asyncio.get_running_loop()
        try:  # file and keyring writes: off the GUI thread
            names = await loop.run_in_executor(
                None, apply_preview, self.store, self.preview, answers, choices, transports
            )
        except CorralError as exc:
            self._fail(exc.message)
            return
        self.added = list(names)
        self.applied.emit(self.added)
        self.accept()

    async def cancel_and_wait(self) -> None:
        await self._tasks.cancel_all()
