"""A message strip across the top of the window for problems the user should act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

_SEVERITY = {"info": 0, "warning": 1, "error": 2}


@dataclass(frozen=True)
class BannerMessage:
    text: str
    level: str = "error"
    offer_add_host: bool = False


class Banner(QFrame):
    """A hideable strip that shows a few keyed messages, one per line.

    Each message has a key ("problems", "no-host", "error", ...): setting a key again
    replaces its message. The strip takes the colour of its most severe message and shows
    an "Add host…" button when any message offers it. Dismiss clears every message.

    Attributes:
        label: the message text.
        add_host_button, dismiss_button: the buttons.

    Signals:
        addHostRequested: the user pressed "Add host…".
        dismissed: the user closed the banner.
    """

    addHostRequested = Signal()
    dismissed = Signal()

    _STYLES: ClassVar[dict[str, str]] = {
        "error": "background: #fde8e8; border: 1px solid #e5a3a3; color: #5c1010;",
        "warning": "background: #fff4d6; border: 1px solid #e3c66f; color: #4d3a00;",
        "info": "background: #e6f0fb; border: 1px solid #9fbfe3; color: #0f3157;",
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self._messages: dict[str, BannerMessage] = {}
        self.label = QLabel(self)
        self.label.setObjectName("bannerText")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.add_host_button = QPushButton("Add host…", self)
        self.add_host_button.setObjectName("bannerAddHost")
        self.dismiss_button = QPushButton("Dismiss", self)
        self.dismiss_button.setObjectName("bannerDismiss")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.add_host_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.dismiss_button, 0, Qt.AlignmentFlag.AlignTop)
        self.add_host_button.clicked.connect(self.addHostRequested)
        self.dismiss_button.clicked.connect(self._dismiss)
        self.hide()

    def set_message(
        self, key: str, text: str, *, level: str = "error", offer_add_host: bool = False
    ) -> None:
        """Show ``text`` under ``key`` (replacing what that key showed before)."""
        self._messages.pop(key, None)  # a replaced message moves to the end
        self._messages[key] = BannerMessage(text, level, offer_add_host)
        self._render()

    def remove_message(self, key: str) -> None:
        if self._messages.pop(key, None) is not None:
            self._render()

    def has_message(self, key: str) -> bool:
        return key in self._messages

    def message(self, key: str) -> str | None:
        """The text shown under ``key``, or None."""
        entry = self._messages.get(key)
        return entry.text if entry else None

    def text(self) -> str:
        """The text shown now ("" when the banner is hidden)."""
        return "" if self.isHidden() else self.label.text()

    @property
    def level(self) -> str:
        if not self._messages:
            return ""
        return max((m.level for m in self._messages.values()), key=lambda lv: _SEVERITY[lv])

    def clear(self) -> None:
        self._messages.clear()
        self._render()

    def _render(self) -> None:
        if not self._messages:
            self.label.clear()
            self.hide()
            return
        self.setStyleSheet(f"QFrame#banner {{ {self._STYLES[self.level]} }}")
        self.label.setText("\n".join(m.text for m in self._messages.values()))
        self.add_host_button.setVisible(any(m.offer_add_host for m in self._messages.values()))
        self.show()

    def _dismiss(self) -> None:
        self.clear()
        self.dismissed.emit()
