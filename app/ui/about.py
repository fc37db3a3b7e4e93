"""The About dialog (versions of Corral, Qt, Python and each host) and the list of
keyboard shortcuts."""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import PySide6
from PySide6.QtCore import Qt, qVersion
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import __version__


@dataclass(frozen=True)
class HostVersion:
    """One host's line in About: its name, kind, address and server version (or why not)."""

    name: str
    kind: str
    url: str
    version: str


def versions_text(hosts: Iterable[HostVersion]) -> str:
    """Everything About shows, as plain text (what Copy puts on the clipboard)."""
    lines = [
        f"Corral {__version__}",
        f"Qt {qVersion()} (PySide6 {PySide6.__version__})",
        f"Python {platform.python_version()} ({platform.python_implementation()}, {sys.platform})",
        f"System: {platform.platform()}",
        "Hosts:",
    ]
    listed = list(hosts)
    lines += [f"  {h.name} ({h.kind}, {h.url}): {h.version}" for h in listed] or ["  none"]
    return "\n".join(lines)


class AboutDialog(QDialog):
    """Corral's version, Qt's, Python's and each host's, with Copy for a bug report."""

    def __init__(self, hosts: Iterable[HostVersion], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About Corral")
        self.hosts = list(hosts)
        layout = QVBoxLayout(self)
        title = QLabel(f"<h2>Corral {__version__}</h2>", self)
        layout.addWidget(title)
        layout.addWidget(
            QLabel("A control panel for the model hosts on this computer and your network.", self)
        )
        self.versions = QLabel(self)
        self.versions.setObjectName("versionsLabel")
        self.versions.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.versions.setText(
            f"Qt {qVersion()} · PySide6 {PySide6.__version__} · "
            f"Python {platform.python_version()} · {platform.system()} {platform.release()}"
        )
        layout.addWidget(self.versions)
        self.table = QTableWidget(len(self.hosts), 4, self)
        self.table.setObjectName("hostVersions")
        self.table.setHorizontalHeaderLabels(["Host", "Type", "Address", "Version"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, host in enumerate(self.hosts):
            for col, text in enumerate((host.name, host.kind, host.url, host.version)):
                self.table.setItem(row, col, QTableWidgetItem(text))
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setObjectName("copyVersionsButton")
        self.copy_button.setToolTip("Copy these versions, for a bug report")
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self.copy)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(620, 360)

    def text(self) -> str:
        return versions_text(self.hosts)

    def copy(self) -> None:
        clipboard = QGuiApplication.clipboard()
        if clipboard is not None:
            clipboard.setText(self.text())
            self.copy_button.setText("Copied")


def _plain(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip(".…")


def shortcut_rows(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    """(what it does, keys) for every action that has a shortcut, sorted by name."""
    rows = {}
    for action in actions:
        keys = [k for k in action.shortcuts() if not k.isEmpty()]
        if not keys or not action.text():
            continue
        text = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in keys)
        rows[_plain(action.text())] = text
    return sorted(rows.items(), key=lambda r: r[0].lower())


class ShortcutsDialog(QDialog):
    """The keyboard shortcuts of the window's actions, in a table."""

    def __init__(self, actions: Iterable[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts")
        self.rows = shortcut_rows(actions)
        layout = QVBoxLayout(self)
        self.table = QTableWidget(len(self.rows), 2, self)
        self.table.setObjectName("shortcutsTable")
        self.table.setHorizontalHeaderLabels(["Action", "Keys"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, (name, keys) in enumerate(self.rows):
            self.table.setItem(row, 0, QTableWidgetItem(name))
            self.table.setItem(row, 1, QTableWidgetItem(keys))
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(
            1, QHeaderView.ResizeMode.ResizeToContents
        )
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(460, 420)
