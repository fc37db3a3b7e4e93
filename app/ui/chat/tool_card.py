"""A tool call in the conversation: what the model asked for, the approval prompt, and
what came back (text, images, structured content, or why there is nothing)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.core.chat.tools import Decision
from app.core.chat.types import StoredMessage
from app.core.mcp.types import ContentPart, ImagePart, ToolInfo, ToolResult
from app.ui.formatting import ms_text
from app.ui.mcp_panel import hints_text, result_text

#: The largest side of an image shown in a result.
THUMBNAIL_PX = 240

DECISION_TEXT = {
    Decision.ALLOW_ONCE: "Allowed once",
    Decision.ALLOW_CONVERSATION: "Allowed in this conversation",
    Decision.ALLOW_ALWAYS: "Always allowed",
    Decision.DENY: "Denied",
}


def _arguments_text(arguments: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(arguments), indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(dict(arguments))


class ToolCallCard(QFrame):
    """One tool call.

    Attributes:
        message_id: the "tool" message that records it ("" until it is saved).
        role: always "tool" (the view treats it like a message).
        call_id, name, server: which call, as the model named it, and on which server.
        title_label, hints_label, arguments_label: what is asked.
        prompt: the approval buttons (shown while the user is asked):
            allow_once_button, allow_conversation_button, allow_always_button, deny_button.
        decision_label, result_label, images: the outcome.

    Signals:
        decided(str, str): the user answered (call id, :class:`Decision` value).
    """

    decided = Signal(str, str)

    def __init__(
        self,
        call_id: str,
        name: str,
        server: str,
        tool: ToolInfo | None,
        arguments: Mapping[str, Any],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("toolCall")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.role = "tool"
        self.message_id = ""
        self.call_id = call_id
        self.name = name
        self.server = server
        self._text = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        shown = tool.display_name if tool is not None and tool.server else name
        where = f" on {server}" if server else " (no such tool)"
        self.title_label = QLabel(f"Tool call: {shown}{where}", self)
        self.title_label.setObjectName("toolCallTitle")
        self.title_label.setWordWrap(True)
        font = self.title_label.font()
        font.setBold(True)
        self.title_label.setFont(font)
        layout.addWidget(self.title_label)
        self.hints_label = QLabel(
            hints_text(tool) if tool is not None and tool.server else "", self
        )
        self.hints_label.setObjectName("toolCallHints")
        self.hints_label.setWordWrap(True)
        self.hints_label.setVisible(bool(self.hints_label.text()))
        if tool is not None and tool.description:
            self.hints_label.setToolTip(tool.description)
        layout.addWidget(self.hints_label)
        self.arguments_label = QLabel(_arguments_text(arguments), self)
        self.arguments_label.setObjectName("toolCallArguments")
        self.arguments_label.setTextFormat(Qt.TextFormat.PlainText)
        self.arguments_label.setWordWrap(True)
        self.arguments_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        mono = self.arguments_label.font()
        mono.setFamily("monospace")
        mono.setStyleHint(mono.StyleHint.Monospace)
        self.arguments_label.setFont(mono)
        layout.addWidget(self.arguments_label)

        self.prompt = QWidget(self)
        self.prompt.setObjectName("toolCallPrompt")
        row = QHBoxLayout(self.prompt)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Run it?", self.prompt))
        self.allow_once_button = self._choice("Allow once", Decision.ALLOW_ONCE, row)
        self.allow_conversation_button = self._choice(
            "Allow in this conversation", Decision.ALLOW_CONVERSATION, row
        )
        self.allow_always_button = self._choice(
            "Always allow this tool", Decision.ALLOW_ALWAYS, row
        )
        self.deny_button = self._choice("Deny", Decision.DENY, row)
        row.addStretch(1)
        self.prompt.setVisible(False)
        layout.addWidget(self.prompt)

        self.decision_label = QLabel(self)
        self.decision_label.setObjectName("toolCallDecision")
        self.decision_label.setWordWrap(True)
        self.decision_label.setVisible(False)
        layout.addWidget(self.decision_label)
        self.result_label = QLabel(self)
        self.result_label.setObjectName("toolCallResult")
        self.result_label.setTextFormat(Qt.TextFormat.PlainText)
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_label.setVisible(False)
        layout.addWidget(self.result_label)
        self._images_row = QHBoxLayout()
        layout.addLayout(self._images_row)
        self.images: list[QLabel] = []

    def _choice(self, text: str, decision: Decision, row: QHBoxLayout) -> QPushButton:
        button = QPushButton(text, self.prompt)
        button.setObjectName(f"toolCall_{decision.value}")
        button.clicked.connect(lambda: self.decided.emit(self.call_id, decision.value))
        row.addWidget(button)
        return button

    @classmethod
    def from_message(cls, message: StoredMessage, parent: QWidget | None = None) -> ToolCallCard:
        """A card for a stored "tool" message (its call, decision and result)."""
        record = message.tool
        if record is None:
            card = cls("", "tool", "", None, {}, parent)
            card.message_id = message.id
            card.show_outcome(message.content, (), None, True, None, None)
            return card
        tool = ToolInfo(server=record.server, name=record.tool) if record.server else None
        card = cls(record.call_id, record.name, record.server, tool, record.arguments, parent)
        card.message_id = message.id
        card.show_outcome(
            message.content,
            record.content,
            record.structured,
            record.is_error,
            record.decision,
            record.duration_ms,
        )
        return card

    # -- the prompt -----------------------------------------------------------------------
    def ask(self) -> None:
        """Show the approval buttons."""
        self.prompt.setVisible(True)

    def close_prompt(self, note: str = "") -> None:
        self.prompt.setVisible(False)
        if note:
            self.decision_label.setText(note)
            self.decision_label.setVisible(True)

    @property
    def asking(self) -> bool:
        return not self.prompt.isHidden()

    def show_decision(self, decision: Decision, asked: bool, note: str = "") -> None:
        self.prompt.setVisible(False)
        text = DECISION_TEXT.get(decision, decision.value)
        if not asked and decision.allows:
            text += " (by a rule you set)"
        if note:
            text += f". {note}"
        self.decision_label.setText(text)
        self.decision_label.setVisible(True)

    # -- the outcome ----------------------------------------------------------------------
    def finish(
        self, message_id: str, result: ToolResult | None, error: str, ms: float | None
    ) -> None:
        self.message_id = message_id
        self.prompt.setVisible(False)
        if result is not None:
            text = result_text(result)
            self._set_result(text or "(the tool returned nothing)", result.is_error, ms)
            self._show_images(result.content)
        else:
            self._set_result(error, True, ms)

    def show_outcome(
        self,
        told: str,
        content: tuple[ContentPart, ...],
        structured: Mapping[str, Any] | None,
        is_error: bool,
        decision: Decision | None,
        ms: float | None,
    ) -> None:
        """Show a stored outcome (after the conversation is opened again)."""
        if decision is not None:
            self.show_decision(decision, True)
        if content or structured is not None:
            result = ToolResult(content=content, structured=structured, is_error=is_error)
            self._set_result(result_text(result), is_error, ms)
            self._show_images(content)
        else:
            self._set_result(told, is_error, ms)

    def _set_result(self, text: str, is_error: bool, ms: float | None) -> None:
        took = f" ({ms_text(ms)})" if ms is not None else ""
        head = "Failed" if is_error else "Result"
        self._text = text
        self.result_label.setText(f"{head}{took}:\n{text}" if text else f"{head}{took}.")
        self.result_label.setProperty("error", is_error)
        self.result_label.setVisible(True)

    def _show_images(self, content: tuple[ContentPart, ...]) -> None:
        for part in content:
            if not isinstance(part, ImagePart):
                continue
            pixmap = QPixmap()
            try:
                data = base64.b64decode(part.data, validate=False)
            except (ValueError, TypeError):
                continue
            if not pixmap.loadFromData(data):
                continue
            label = QLabel(self)
            label.setObjectName("toolCallImage")
            if max(pixmap.width(), pixmap.height()) > THUMBNAIL_PX:
                pixmap = pixmap.scaled(
                    THUMBNAIL_PX,
                    THUMBNAIL_PX,
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            label.setPixmap(pixmap)
            label.setToolTip(part.mime_type)
            self._images_row.addWidget(label)
            self.images.append(label)
        if self.images:
            self._images_row.addStretch(1)

    # -- as a message ---------------------------------------------------------------------
    def set_last_reply(self, last: bool) -> None:
        """Cards take no part in "regenerate"."""

    def text(self) -> str:
        return self._text
