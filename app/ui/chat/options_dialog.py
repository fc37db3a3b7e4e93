"""A conversation's system prompt and options (temperature, top_p, ..., thinking)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.core.chat.types import THINK_LEVELS, ChatOptions
from app.core.errors import InvalidInput

_NUMBERS = (
    ("temperature", "Temperature", "e.g. 0.7", False),
    ("top_p", "Top p", "0 to 1", False),
    ("top_k", "Top k", "e.g. 40", True),
    ("num_ctx", "Context length", "tokens, e.g. 8192", True),
    ("seed", "Seed", "a whole number for repeatable replies", True),
)

_THINK = [("Model default", None), ("Off", False), ("On", True)] + [
    (level.capitalize(), level) for level in THINK_LEVELS
]


class ChatOptionsDialog(QDialog):
    """Edits a system prompt and :class:`ChatOptions`; an empty field leaves the host's
    default. OK checks every field and says what is wrong instead of closing.

    Attributes:
        system_prompt: the system prompt editor.
        fields: the option name -> its line edit (keep_alive too).
        think: the thinking choice.
        error_label: what is wrong with the fields.
        options, prompt: the accepted values (after OK).
    """

    def __init__(
        self, system_prompt: str, options: ChatOptions, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("chatOptionsDialog")
        self.setWindowTitle("Conversation options")
        self.options = options
        self.prompt = system_prompt
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("System prompt (sent first in every request):", self))
        self.system_prompt = QPlainTextEdit(self)
        self.system_prompt.setObjectName("systemPromptEdit")
        self.system_prompt.setPlainText(system_prompt)
        layout.addWidget(self.system_prompt)
        form = QFormLayout()
        self.fields: dict[str, QLineEdit] = {}
        for name, label, hint, _integer in _NUMBERS:
            edit = QLineEdit(self)
            edit.setObjectName(f"{name}Edit")
            edit.setPlaceholderText(f"host default ({hint})")
            value = getattr(options, name)
            edit.setText("" if value is None else str(value))
            form.addRow(label, edit)
            self.fields[name] = edit
        keep = QLineEdit(self)
        keep.setObjectName("keep_aliveEdit")
        keep.setPlaceholderText("host default (e.g. 5m, 1h, or seconds; -1 keeps it loaded)")
        keep.setText("" if options.keep_alive is None else str(options.keep_alive))
        form.addRow("Keep loaded for", keep)
        self.fields["keep_alive"] = keep
        self.think = QComboBox(self)
        self.think.setObjectName("thinkCombo")
        for text, value in _THINK:
            self.think.addItem(text, value)
        for i, (_text, value) in enumerate(_THINK):
            if value == options.think and type(value) is type(options.think):
                self.think.setCurrentIndex(i)
        form.addRow("Thinking", self.think)
        layout.addLayout(form)
        self.error_label = QLabel(self)
        self.error_label.setObjectName("optionsError")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #b3261e;")
        self.error_label.setVisible(False)
        layout.addWidget(self.error_label)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(460, 480)

    def _read(self) -> ChatOptions:
        values: dict[str, object] = {}
        for name, label, _hint, integer in _NUMBERS:
            text = self.fields[name].text().strip()
            if not text:
                continue
            try:
                values[name] = int(text) if integer else float(text)
            except ValueError:
                kind = "a whole number" if integer else "a number"
                raise InvalidInput(f"{label} must be {kind}, not {text!r}.") from None
        keep = self.fields["keep_alive"].text().strip()
        if keep:
            try:
                values["keep_alive"] = float(keep) if keep.lstrip("-").isdigit() else keep
            except ValueError:
                values["keep_alive"] = keep
        values["think"] = self.think.currentData()
        return ChatOptions.from_json({k: v for k, v in values.items() if v is not None})

    def accept(self) -> None:
        try:
            self.options = self._read()
        except InvalidInput as exc:
            self.error_label.setText(exc.message)
            self.error_label.setVisible(True)
            return
        self.prompt = self.system_prompt.toPlainText()
        super().accept()
