"""Hosts Corral found and proposes to add: a table (scan dialog) and a strip (main window)."""

from __future__ import annotations

from functools import partial

from PySide6.QtCore import Qt, Signal, SignalInstance
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from app.core.discovery.local import host_and_port
from app.core.discovery.service import Suggestion
from app.ui import formatting as fmt

SOURCE_TEXT = {"scan": "scan", "mdns": "announced (mDNS)"}


def _address(suggestion: Suggestion) -> str:
    host, port = host_and_port(suggestion.url)
    return f"{host}:{port}"


def _models_text(suggestion: Suggestion) -> str:
    models = suggestion.identity.models
    return str(len(models))


class SuggestionTable(QTableWidget):
    """Found hosts, one row each: name, address, type, version, number of models, how it
    was found, and Keep / Dismiss buttons.

    Attributes:
        suggestions: the suggestions shown, in row order.

    Signals:
        keepRequested(object): the user pressed Keep on a :class:`Suggestion`.
        dismissRequested(object): the user pressed Dismiss on a :class:`Suggestion`.
    """

    keepRequested = Signal(object)
    dismissRequested = Signal(object)

    COLUMNS = ("Name", "Address", "Type", "Version", "Models", "Found by", "")
    NAME, ADDRESS, TYPE, VERSION, MODELS, SOURCE, ACTIONS = range(7)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(self.COLUMNS), parent)
        self.setObjectName("suggestionTable")
        self.suggestions: list[Suggestion] = []
        self._buttons: dict[str, tuple[QPushButton, QPushButton]] = {}
        self.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setAlternatingRowColors(True)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(self.NAME, QHeaderView.ResizeMode.Stretch)

    def set_suggestions(self, suggestions: list[Suggestion]) -> None:
        """Show ``suggestions`` (rows are rebuilt; the list is short)."""
        self.suggestions = list(suggestions)
        self._buttons.clear()
        for row in range(self.rowCount()):
            old = self.cellWidget(row, self.ACTIONS)
            if old is not None:
                old.hide()
                old.setParent(None)
                old.deleteLater()
        self.setRowCount(0)
        self.setRowCount(len(self.suggestions))
        for row, s in enumerate(self.suggestions):
            identity = s.identity
            models = identity.models
            cells = {
                self.NAME: s.name,
                self.ADDRESS: _address(s),
                self.TYPE: identity.kind.label,
                self.VERSION: identity.version or fmt.DASH,
                self.MODELS: _models_text(s),
                self.SOURCE: SOURCE_TEXT.get(s.source, s.source),
            }
            for col, text in cells.items():
                item = QTableWidgetItem(text)
                item.setToolTip(s.url)
                if col == self.MODELS:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                    item.setToolTip("\n".join(models[:20]) or "No models listed")
                self.setItem(row, col, item)
            self.setCellWidget(row, self.ACTIONS, self._actions(s))
        self.resizeRowsToContents()

    def _actions(self, suggestion: Suggestion) -> QWidget:
        box = QWidget(self)
        layout = QHBoxLayout(box)
        layout.setContentsMargins(2, 0, 2, 0)
        layout.setSpacing(4)
        keep = QPushButton("Keep", box)
        keep.setObjectName("suggestionKeep")
        keep.setToolTip(f"Add {suggestion.name} ({suggestion.url}) to the fleet")
        dismiss = QPushButton("Dismiss", box)
        dismiss.setObjectName("suggestionDismiss")
        dismiss.setToolTip("Stop suggesting this host")
        layout.addWidget(keep)
        layout.addWidget(dismiss)
        keep.clicked.connect(partial(self._request, self.keepRequested, suggestion))
        dismiss.clicked.connect(partial(self._request, self.dismissRequested, suggestion))
        self._buttons[suggestion.url] = (keep, dismiss)
        return box

    @staticmethod
    def _request(signal: SignalInstance, suggestion: Suggestion, *_: object) -> None:
        signal.emit(suggestion)

    def urls(self) -> list[str]:
        return [s.url for s in self.suggestions]

    def keep_button(self, url: str) -> QPushButton | None:
        pair = self._buttons.get(url)
        return pair[0] if pair else None

    def dismiss_button(self, url: str) -> QPushButton | None:
        pair = self._buttons.get(url)
        return pair[1] if pair else None


class SuggestionsStrip(QFrame):
    """A strip under the banner with hosts that announced themselves: one chip each with
    the host's name and type, Keep and Dismiss. Hidden while there is nothing to show.

    Attributes:
        suggestions: the suggestions shown.
        title: the label in front of the chips.

    Signals:
        keepRequested(object): the user pressed Keep on a :class:`Suggestion`.
        dismissRequested(object): the user pressed Dismiss on a :class:`Suggestion`.
    """

    keepRequested = Signal(object)
    dismissRequested = Signal(object)

    MAX_CHIPS = 6

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("suggestionsStrip")
        self.setStyleSheet(
            "QFrame#suggestionsStrip { background: #eef5ee; border: 1px solid #b9d6bd; }"
            " QFrame#suggestionChip { background: white; border: 1px solid #c8dccb;"
            " border-radius: 4px; }"
        )
        self.suggestions: list[Suggestion] = []
        self._buttons: dict[str, tuple[QPushButton, QPushButton]] = {}
        self._chips: list[QWidget] = []
        self.title = QLabel("<b>Suggestions</b> — found on your network:", self)
        self.title.setObjectName("suggestionsTitle")
        self.more = QLabel(self)
        self.more.setObjectName("suggestionsMore")
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(10, 4, 6, 4)
        self._layout.addWidget(self.title)
        self._layout.addStretch(1)
        self._layout.addWidget(self.more)
        self.hide()

    def set_suggestions(self, suggestions: list[Suggestion]) -> None:
        self.suggestions = list(suggestions)
        for chip in self._chips:
            self._layout.removeWidget(chip)
            chip.deleteLater()
        self._chips.clear()
        self._buttons.clear()
        shown = self.suggestions[: self.MAX_CHIPS]
        for i, s in enumerate(shown):
            chip = self._chip(s)
            self._layout.insertWidget(1 + i, chip)
            self._chips.append(chip)
        extra = len(self.suggestions) - len(shown)
        self.more.setText(f"and {extra} more (Scan network…)" if extra > 0 else "")
        self.setVisible(bool(self.suggestions))

    def _chip(self, suggestion: Suggestion) -> QWidget:
        chip = QFrame(self)
        chip.setObjectName("suggestionChip")
        layout = QHBoxLayout(chip)
        layout.setContentsMargins(6, 1, 2, 1)
        layout.setSpacing(4)
        label = QLabel(f"{suggestion.name} · {suggestion.identity.kind.label}", chip)
        label.setToolTip(suggestion.url)
        keep = QPushButton("Keep", chip)
        keep.setObjectName("suggestionKeep")
        keep.setToolTip(f"Add {suggestion.name} ({suggestion.url}) to the fleet")
        dismiss = QPushButton("✕", chip)
        dismiss.setObjectName("suggestionDismiss")
        dismiss.setToolTip("Stop suggesting this host")
        dismiss.setFlat(True)
        dismiss.setFixedWidth(24)
        layout.addWidget(label)
        layout.addWidget(keep)
        layout.addWidget(dismiss)
        keep.clicked.connect(lambda _=False, s=suggestion: self.keepRequested.emit(s))
        dismiss.clicked.connect(lambda _=False, s=suggestion: self.dismissRequested.emit(s))
        self._buttons[suggestion.url] = (keep, dismiss)
        return chip

    def urls(self) -> list[str]:
        return [s.url for s in self.suggestions]

    def keep_button(self, url: str) -> QPushButton | None:
        pair = self._buttons.get(url)
        return pair[0] if pair else None

    def dismiss_button(self, url: str) -> QPushButton | None:
        pair = self._buttons.get(url)
        return pair[1] if pair else None
