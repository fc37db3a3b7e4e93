"""Where the user types: Enter sends, Shift+Enter starts a new line, Esc stops the reply."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QWidget


class Composer(QPlainTextEdit):
    """The message box under the conversation.

    Signals:
        sendRequested: Enter (or Ctrl+Enter) was pressed.
        stopRequested: Esc was pressed.
    """

    sendRequested = Signal()
    stopRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("composer")
        self.setPlaceholderText("Message… (Enter to send, Shift+Enter for a new line, Esc to stop)")
        self.setTabChangesFocus(True)
        # four lines high; longer text scrolls (the conversation keeps the room)
        self.setFixedHeight(self.fontMetrics().lineSpacing() * 4 + 14)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        mods = event.modifiers()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if mods & Qt.KeyboardModifier.ShiftModifier:
                self.textCursor().insertText("\n")
                event.accept()
                return
            if not mods & Qt.KeyboardModifier.AltModifier:
                event.accept()
                self.sendRequested.emit()
                return
        if key == Qt.Key.Key_Escape:
            event.accept()
            self.stopRequested.emit()
            return
        super().keyPressEvent(event)
