"""The log panel: Corral's recent log lines (secrets already hidden), with a level filter,
a text filter, "Open log folder", and the path of the log file.

The lines come from a :class:`~app.core.logs.LogBuffer`, polled by a timer while the
panel is visible; a tick with nothing new costs one comparison. The filters change what
the panel shows, never what is written to the log file. The view follows new lines only
while the user is at its bottom; scrolled up, it stays where it is.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices, QFontDatabase, QGuiApplication, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.logs import LogBuffer, LogLine, LogSetup

log = logging.getLogger(__name__)

#: The level filter's choices: (label, lowest level shown).
LEVEL_CHOICES = (
    ("Debug", logging.DEBUG),
    ("Info", logging.INFO),
    ("Warning", logging.WARNING),
    ("Error", logging.ERROR),
)

#: Lines kept in the view (a traceback counts one per line).
MAX_VIEW_LINES = 20000


class LogPanel(QWidget):
    """The recent log of this session, filtered for reading.

    Attributes:
        buffer: where the log lines come from.
        setup: the log's set-up (file path, folder, and why there is no file, if so).
        level_combo: the lowest level shown ("levelFilter").
        search_edit: shows only lines containing this text, any case ("logSearch").
        view: the read-only lines ("logView").
        open_button: opens the log folder in the file manager ("openLogFolderButton").
        clear_button: empties the view; the file and the buffer keep their lines
            ("clearLogViewButton").
        path_label: the log file's path ("logFilePath").
        problem_label: why the log is not written to a file ("logProblem"; hidden if it is).
        open_failed: the note shown when the folder could not be opened ("logOpenFailed"),
            with its text ("logOpenFailedText") and a "Copy path" button
            ("copyLogPathButton").
        timer: polls the buffer while the panel is visible ("logTimer").

    Object names: logPanel and those above.
    """

    _PROBLEM_STYLE: ClassVar[str] = (
        "background: #fff4d6; border: 1px solid #e3c66f; color: #4d3a00; padding: 4px;"
    )

    def __init__(
        self,
        buffer: LogBuffer,
        setup: LogSetup,
        *,
        interval_ms: int = 250,
        max_lines: int = MAX_VIEW_LINES,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("logPanel")
        self.buffer = buffer
        self.setup = setup
        self._seen = 0  # the newest record looked at
        self._floor = 0  # records up to this one were cleared from the view

        self.level_combo = QComboBox(self)
        self.level_combo.setObjectName("levelFilter")
        self.level_combo.setToolTip("Show lines of this level and above")
        for label, level in LEVEL_CHOICES:
            self.level_combo.addItem(label, level)
        self.search_edit = QLineEdit(self)
        self.search_edit.setObjectName("logSearch")
        self.search_edit.setPlaceholderText("Show only lines containing…")
        self.search_edit.setClearButtonEnabled(True)
        self.clear_button = QPushButton("Clear view", self)
        self.clear_button.setObjectName("clearLogViewButton")
        self.clear_button.setToolTip("Empty this view; the log file keeps every line")
        self.open_button = QPushButton("Open log folder", self)
        self.open_button.setObjectName("openLogFolderButton")
        self.open_button.setToolTip(str(setup.directory))

        self.path_label = QLabel(self)
        self.path_label.setObjectName("logFilePath")
        self.path_label.setTextFormat(Qt.TextFormat.PlainText)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem_label = QLabel(self)
        self.problem_label.setObjectName("logProblem")
        self.problem_label.setWordWrap(True)
        self.problem_label.setTextFormat(Qt.TextFormat.PlainText)
        self.problem_label.setStyleSheet(self._PROBLEM_STYLE)
        if setup.path is not None:
            self.path_label.setText(f"Log file: {setup.path}")
        else:
            self.path_label.setText("Log file: none")
        self.problem_label.setText(setup.problem or "")
        self.problem_label.setVisible(bool(setup.problem))

        self.open_failed = QWidget(self)
        self.open_failed.setObjectName("logOpenFailed")
        self.open_failed_text = QLabel(self.open_failed)
        self.open_failed_text.setObjectName("logOpenFailedText")
        self.open_failed_text.setWordWrap(True)
        self.open_failed_text.setTextFormat(Qt.TextFormat.PlainText)
        self.open_failed_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.copy_button = QPushButton("Copy path", self.open_failed)
        self.copy_button.setObjectName("copyLogPathButton")
        failed_row = QHBoxLayout(self.open_failed)
        failed_row.setContentsMargins(0, 0, 0, 0)
        failed_row.addWidget(self.open_failed_text, 1)
        failed_row.addWidget(self.copy_button)
        self.open_failed.setStyleSheet(self._PROBLEM_STYLE)
        self.open_failed.hide()

        self.view = QPlainTextEdit(self)
        self.view.setObjectName("logView")
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(max_lines)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.view.setUndoRedoEnabled(False)

        top = QHBoxLayout()
        top.addWidget(QLabel("Level:", self))
        top.addWidget(self.level_combo)
        top.addWidget(self.search_edit, 1)
        top.addWidget(self.clear_button)
        top.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.problem_label)
        layout.addWidget(self.open_failed)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.path_label)

        self.timer = QTimer(self)
        self.timer.setObjectName("logTimer")
        self.timer.setInterval(max(20, interval_ms))
        self.timer.timeout.connect(self.refresh)
        self.level_combo.currentIndexChanged.connect(self.rebuild)
        self.search_edit.textChanged.connect(self.rebuild)
        self.clear_button.clicked.connect(self.clear_view)
        self.open_button.clicked.connect(self.open_folder)
        self.copy_button.clicked.connect(self.copy_path)

    # -- what is shown ----------------------------------------------------------------
    @property
    def min_level(self) -> int:
        """The lowest level shown."""
        return int(self.level_combo.currentData())

    def _accepts(self, line: LogLine) -> bool:
        if line.level < self.min_level:
            return False
        needle = self.search_edit.text().strip().casefold()
        return not needle or needle in line.text.casefold()

    def _at_bottom(self) -> bool:
        bar = self.view.verticalScrollBar()
        return bar.value() >= bar.maximum()

    def _append(self, lines: list[LogLine]) -> None:
        texts = [line.text for line in lines if self._accepts(line)]
        if not texts:
            return
        bar = self.view.verticalScrollBar()
        follow, where = self._at_bottom(), bar.value()
        self.view.appendPlainText("\n".join(texts))
        bar.setValue(bar.maximum() if follow else where)

    def refresh(self) -> None:
        """Append the records logged since the last look (nothing to do if none)."""
        if self.buffer.last_seq == self._seen:
            return
        lines = self.buffer.records_since(self._seen)
        self._seen = lines[-1].seq if lines else self.buffer.last_seq
        self._append(lines)

    def rebuild(self) -> None:
        """Show again every held record that passes the filters (after a filter changed),
        and follow the newest line."""
        self.view.clear()
        lines = self.buffer.records_since(self._floor)
        self._seen = lines[-1].seq if lines else max(self._floor, self.buffer.last_seq)
        self._append(lines)
        bar = self.view.verticalScrollBar()
        bar.setValue(bar.maximum())

    def clear_view(self) -> None:
        """Empty the view; only lines logged after this show up (the file keeps all)."""
        self.refresh()
        self._floor = self._seen
        self.view.clear()

    def shown_text(self) -> str:
        """The text of the view, as the user sees it."""
        return self.view.toPlainText()

    # -- the log folder ---------------------------------------------------------------
    def open_folder(self) -> None:
        """Open the log folder in the file manager; if that fails, say so with the path
        and offer to copy it."""
        directory = self.setup.directory
        if not directory.is_dir():
            self._show_open_failed(
                f"The log folder {directory} does not exist, so it cannot be opened."
            )
            return
        if QDesktopServices.openUrl(QUrl.fromLocalFile(str(directory))):
            self.open_failed.hide()
            return
        log.warning("The file manager could not open the log folder %s", directory)
        self._show_open_failed(
            f"The log folder could not be opened in a file manager. It is {directory}"
        )

    def _show_open_failed(self, text: str) -> None:
        self.open_failed_text.setText(text)
        self.open_failed.show()

    def copy_path(self) -> None:
        """Put the log folder's path on the clipboard."""
        QGuiApplication.clipboard().setText(str(self.setup.directory))

    # -- life cycle -------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()
        self.timer.start()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.timer.stop()
