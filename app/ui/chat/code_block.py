"""A fenced code block of a chat message: language, Copy button, highlighted code.

Highlighting is Pygments' (inline styles, so the HTML needs no style sheet), in a light
or a dark style chosen from the palette: dark when the window background is dark. While
a reply streams, a block's code is shown as plain text appended at the end and is
highlighted once, when its fence closes (:meth:`CodeBlock.set_code`).
"""

from __future__ import annotations

import math
import re
from typing import Any

# Pygments ships no type information (types-Pygments is not a dependency).
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import (
    get_lexer_by_name,
    get_lexer_for_filename,
)
from pygments.lexers.special import TextLexer
from pygments.styles import get_style_by_name
from pygments.token import Token
from pygments.util import ClassNotFound
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

#: Pygments styles for a light and a dark palette.
LIGHT_STYLE = "default"
DARK_STYLE = "github-dark"
#: How long the Copy button says "Copied".
COPIED_MS = 1500
#: The font family of code, in the HTML and in the widget alike.
MONO_FAMILY = "monospace"

_SHEBANG = re.compile(r"#!\s*\S*/(?:env\s+)?([A-Za-z][\w.+-]*)")


def is_dark(palette: QPalette) -> bool:
    """Whether ``palette`` is a dark one (its window background is dark)."""
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def _style(dark: bool) -> Any:
    return get_style_by_name(DARK_STYLE if dark else LIGHT_STYLE)


def style_colors(dark: bool) -> tuple[str, str | None]:
    """The background and the plain text colour (None: the palette's) of the code style."""
    style = _style(dark)
    text = style.style_for_token(Token.Text)["color"]
    return str(style.background_color), (f"#{text}" if text else None)


def lexer_for(code: str, language: str) -> Any:
    """The Pygments lexer of ``language`` (a name, alias or file extension).

    With no language, a ``#!`` line names the interpreter; otherwise, and for a language
    Pygments does not know, the code is plain text. (Pygments' own guessing tries every
    lexer and takes far too long on the GUI thread, often for a wrong answer.)
    """
    options = {"stripnl": False, "ensurenl": False}
    name = language.strip().lower()
    if not name:
        match = _SHEBANG.match(code)
        name = match.group(1).rstrip("0123456789.") if match else ""
    if name:
        try:
            return get_lexer_by_name(name, **options)
        except ClassNotFound:
            pass
        try:
            return get_lexer_for_filename(f"code.{name}", code, **options)
        except ClassNotFound:
            pass
    return TextLexer(**options)


def highlight_html(code: str, language: str, *, dark: bool) -> str:
    """``code`` as one ``<pre>`` of HTML, highlighted by Pygments with inline styles.

    The style is a dark one when ``dark``; an unknown language gives plain (escaped) text.
    The ``<pre>`` carries the style's background and text colour, no margin, and the
    monospace family.
    """
    background, text = style_colors(dark)
    body = highlight(code, lexer_for(code, language), _formatter(dark))
    if body.endswith("\n") and not code.endswith("\n"):  # the formatter ends every line
        body = body[:-1]
    color = f" color:{text};" if text else ""
    return (
        f'<pre style="margin:0; font-family:{MONO_FAMILY};{color} background-color:{background}">'
        f"{body}</pre>"
    )


def _formatter(dark: bool) -> Any:
    return HtmlFormatter(style=_style(dark), noclasses=True, nowrap=True)


def mono_font() -> QFont:
    """The font code is shown in."""
    font = QFont(MONO_FAMILY)
    font.setStyleHint(QFont.StyleHint.Monospace)
    font.setFixedPitch(True)
    return font


class _CodeBody(QTextEdit):
    """The code: read-only, no wrapping, a horizontal scroll bar only when needed, as tall
    as its text (no vertical scroll bar)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("codeBody")
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        self.setLineWrapMode(QTextEdit.LineWrapMode.NoWrap)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.setFont(mono_font())
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self.horizontalScrollBar().rangeChanged.connect(self._fit)
        self._fit()

    def _fit(self) -> None:
        bar = self.horizontalScrollBar()
        extra = bar.sizeHint().height() if bar.maximum() > 0 else 0
        height = math.ceil(self.document().size().height()) + 2 * self.frameWidth() + extra
        if self.minimumHeight() != height or self.maximumHeight() != height:
            self.setFixedHeight(height)


class CodeBlock(QFrame):
    """One fenced code block: a header with the language and a Copy button, and the code.

    The code is read-only and selectable, never wrapped, with a horizontal scroll bar
    only when a line is wider than the block; the block is as tall as its code.

    Attributes:
        language_label: the language of the block ("text" when it has none).
        copy_button: the Copy button (objectName ``copyCode``).
        body: the QTextEdit that shows the code.

    Signals:
        copied(str): the code was put on the clipboard.
    """

    copied = Signal(str)

    def __init__(
        self,
        code: str = "",
        language: str = "",
        *,
        closed: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("codeBlock")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.language_label = QLabel(self)
        self.language_label.setObjectName("codeLanguage")
        self.language_label.setTextFormat(Qt.TextFormat.PlainText)
        self.copy_button = QToolButton(self)
        self.copy_button.setObjectName("copyCode")
        self.copy_button.setText("Copy")
        self.copy_button.setToolTip("Copy the code to the clipboard")
        self.copy_button.setAutoRaise(True)
        self.body = _CodeBody(self)
        header = QHBoxLayout()
        header.setContentsMargins(8, 2, 2, 2)
        header.addWidget(self.language_label, 1)
        header.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self.body)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(COPIED_MS)
        self._timer.timeout.connect(lambda: self.copy_button.setText("Copy"))
        self.copy_button.clicked.connect(self.copy)
        self._parts: list[str] = []
        self._held_newline = False
        self._language = ""
        self._closed = closed
        self._highlighted = False
        self._dark: bool | None = None
        self._apply_colors()
        self.set_code(code, language, closed=closed)

    # -- what it shows ------------------------------------------------------------------

    def code(self) -> str:
        """The code shown (while streaming: what came so far)."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def language(self) -> str:
        """The language of the fence's info string ("" when none)."""
        return self._language

    def is_closed(self) -> bool:
        """Whether the block's closing fence came (False while its code streams)."""
        return self._closed

    def is_highlighted(self) -> bool:
        """Whether the code is shown highlighted (set with :meth:`set_code`)."""
        return self._highlighted

    def set_code(self, code: str, language: str | None = None, *, closed: bool = True) -> None:
        """Show ``code`` highlighted for ``language`` (None: keep the current language)."""
        language = self._language if language is None else language
        if self._highlighted and code == self.code() and language == self._language:
            self._closed = closed
            return
        self._set_language(language)
        self._parts = [code] if code else []
        self._held_newline = False
        self._closed = closed
        self._render()

    def append_code(self, text: str) -> None:
        """Add ``text`` at the end of the code, as plain text (a streaming block).

        A newline at the very end is shown only once more text follows it, so that the
        block does not grow by an empty line that its closing fence takes back.
        """
        if not text:
            return
        self._closed = False
        if self._highlighted:  # the highlighted text stays; new text comes plain after it
            self._highlighted = False
        if self._held_newline:
            text = "\n" + text
            self._held_newline = False
        if text.endswith("\n"):
            text = text[:-1]
            self._held_newline = True
        if not text:
            return
        self._parts.append(text)
        cursor = QTextCursor(self.body.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text, QTextCharFormat())

    def copy(self) -> None:
        """Put the code on the clipboard; the button says "Copied" for a moment."""
        code = self.code()
        QGuiApplication.clipboard().setText(code)
        self.copy_button.setText("Copied")
        self._timer.start()
        self.copied.emit(code)

    # -- drawing --------------------------------------------------------------------------

    def _set_language(self, language: str) -> None:
        self._language = language
        self.language_label.setText(language or "text")

    def _render(self) -> None:
        dark = is_dark(self.palette())
        code = self.code()
        if code:
            self.body.setHtml(highlight_html(code, self._language, dark=dark))
        else:
            self.body.clear()
        self._highlighted = True

    def _apply_colors(self) -> None:
        dark = is_dark(self.palette())
        if dark == self._dark:
            return
        self._dark = dark
        background, text = style_colors(dark)
        palette = self.body.palette()
        palette.setColor(QPalette.ColorRole.Base, QColor(background))
        if text:
            palette.setColor(QPalette.ColorRole.Text, QColor(text))
        else:
            palette.setColor(QPalette.ColorRole.Text, self.palette().color(QPalette.ColorRole.Text))
        self.body.setPalette(palette)
        if self._highlighted:
            self._render()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_colors()
