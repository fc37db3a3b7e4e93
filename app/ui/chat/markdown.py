"""The text of one chat message, rendered from Markdown, whole or as it streams.

A message is cut into blocks (:func:`split_blocks`): runs of Markdown text, shown by Qt's
own Markdown reader (GitHub dialect: headings, lists, tables, emphasis, links, inline
code, block quotes) in a :class:`TextSegment`, and fenced code blocks (``` or ~~~, with
the info string's language), shown as :class:`~app.ui.chat.code_block.CodeBlock` widgets
highlighted by Pygments. Each part is as tall as its content and has no vertical scroll
bar, so that a :class:`MarkdownView` sits in a scroll area holding many messages.

Streaming (:meth:`MarkdownView.append`) costs what the new text costs, not what came
before it:

- text is read line by line; the current line's pieces are kept until its newline;
- a run of text that is complete (a blank line ended it, or a fence opened) is rendered
  once, as Markdown, and added at the end of its segment's document (a document fragment
  inserted with a QTextCursor, never a new rendering of the whole);
- the text after the last complete run is shown as plain text added with a QTextCursor
  at the end of the document; it becomes Markdown when its run completes;
- the code of an open fence is added as plain text to its code block, highlighted when
  the closing fence comes;
- a line that may still turn out to be a fence is held back until it is known.

:meth:`MarkdownView.finish` renders the whole text once more exactly as
:meth:`MarkdownView.set_markdown` does (runs of text cut by blank lines, such as a
numbered list with blank lines between its items, come out right only then), keeping
the widgets whose content did not change.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import (
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextDocumentFragment,
    QTextFormat,
)
from PySide6.QtWidgets import QFrame, QSizePolicy, QTextBrowser, QVBoxLayout, QWidget

from app.ui.chat.code_block import CodeBlock, highlight_html

__all__ = [
    "Block",
    "CodeBlock",
    "MarkdownView",
    "TextSegment",
    "highlight_html",
    "split_blocks",
]

GITHUB = QTextDocument.MarkdownFeature.MarkdownDialectGitHub

#: An opening fence: up to three spaces, three or more ` or ~, the info string.
_OPEN = re.compile(r"( {0,3})(`{3,}|~{3,})(.*)")
#: A line that may still become an opening fence (fewer than three fence characters yet,
#: or a fence already).
_MAYBE_OPEN = re.compile(r" {0,3}(?:`{0,2}|~{0,2}|`{3,}[^`]*|~{3,}.*)")


@dataclass(frozen=True)
class _Fence:
    char: str
    length: int
    indent: int
    language: str

    def closes(self, line: str) -> bool:
        """Whether ``line`` (without its newline) is this fence's closing fence."""
        stripped = line.lstrip(" ")
        if len(line) - len(stripped) > 3:
            return False
        run = len(stripped) - len(stripped.lstrip(self.char))
        return run >= self.length and not stripped[run:].strip(" \t")

    def may_close(self, partial: str) -> bool:
        """Whether a line that begins with ``partial`` may still be the closing fence."""
        stripped = partial.lstrip(" ")
        if len(partial) - len(stripped) > 3:
            return False
        run = len(stripped) - len(stripped.lstrip(self.char))
        rest = stripped[run:]
        return not rest or (run >= self.length and not rest.strip(" \t"))

    def dedent(self, line: str) -> str:
        """A line of the block's code without the fence's indentation."""
        if not self.indent:
            return line
        stripped = line.lstrip(" ")
        return line[min(self.indent, len(line) - len(stripped)) :]


def _open_fence(line: str) -> _Fence | None:
    """The fence that ``line`` (without its newline) opens, or None."""
    match = _OPEN.fullmatch(line)
    if match is None:
        return None
    indent, fence, info = match.groups()
    if fence[0] == "`" and "`" in info:
        return None
    words = info.split()
    return _Fence(fence[0], len(fence), len(indent), words[0] if words else "")


_LINE = re.compile(r"[^\n]*\n|[^\n]+")


def _lines(text: str) -> list[str]:
    """``text`` cut after each newline (the pieces keep their newline)."""
    return _LINE.findall(text)


def _bare(line: str) -> str:
    return line.rstrip("\r\n")


def _blank(line: str) -> bool:
    return not line.strip()


@dataclass(frozen=True)
class Block:
    """A part of a message: Markdown text, or the code of a fenced block.

    ``text`` is the Markdown of a text block (blank lines around it left out), or the
    code of a code block (without the fences and without the newline before the closing
    fence). ``language`` is the first word of the fence's info string; ``closed`` is
    False for a fence that the text ends inside of.
    """

    kind: Literal["text", "code"]
    text: str
    language: str = ""
    closed: bool = True


def _text_block(lines: list[str]) -> Block | None:
    while lines and _blank(lines[0]):
        lines = lines[1:]
    text = "".join(lines).rstrip()
    return Block("text", text) if text else None


def _code_text(lines: list[str]) -> str:
    code = "".join(lines)
    return code[:-1] if code.endswith("\n") else code


def split_blocks(text: str) -> list[Block]:
    """Cut Markdown ``text`` into text blocks and fenced code blocks, in order.

    A fence is a line of three or more backticks or tildes indented by at most three
    spaces (a backtick fence's info string has no backtick); it is closed by a line of
    at least as many of the same character and nothing else. A fence that is never
    closed runs to the end of the text. Text that is only blank is left out.
    """
    blocks: list[Block] = []
    prose: list[str] = []
    lines = _lines(text)
    i = 0
    while i < len(lines):
        fence = _open_fence(_bare(lines[i]))
        if fence is None:
            prose.append(lines[i])
            i += 1
            continue
        if (block := _text_block(prose)) is not None:
            blocks.append(block)
        prose = []
        code: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            line = lines[i]
            i += 1
            if fence.closes(_bare(line)):
                closed = True
                break
            code.append(fence.dedent(line))
        blocks.append(Block("code", _code_text(code), fence.language, closed))
    if (block := _text_block(prose)) is not None:
        blocks.append(block)
    return blocks


def _fragment(markdown: str) -> QTextDocumentFragment:
    """``markdown`` rendered, as a fragment to insert at the end of a document's last
    block: its first block is an empty plain one, which merges into that block without
    changing it, so that each rendered block keeps its own format (margins, heading
    level, list, quote) as when the whole text is rendered at once."""
    doc = QTextDocument()
    doc.setMarkdown(markdown, GITHUB)
    first = doc.begin()
    natural = (  # an empty plain block already leads (before a table, a rule)
        first.length() == 1
        and first.textList() is None
        and not first.blockFormat().hasProperty(
            QTextFormat.Property.BlockTrailingHorizontalRulerWidth
        )
    )
    if not natural:
        # A new block after the first takes its content and its formats; the first,
        # left empty, is made plain.
        cursor = QTextCursor(doc)
        cursor.insertBlock(first.blockFormat(), first.charFormat())
        empty = doc.begin()
        if (listed := empty.textList()) is not None:
            listed.remove(empty)
        cursor = QTextCursor(empty)
        cursor.setBlockFormat(QTextBlockFormat())
        cursor.setBlockCharFormat(QTextCharFormat())
    return QTextDocumentFragment(doc)


class TextSegment(QTextBrowser):
    """A run of Markdown text: read-only, selectable, links clickable, no vertical
    scroll bar, as tall as its document at its width (a fixed height, updated whenever
    the document's size changes: new text, or a new width).

    While a reply streams, its document is the complete runs rendered so far followed by
    the plain "tail" of the run still coming (:meth:`open_tail`, :meth:`append_tail`,
    :meth:`commit_tail`).

    Links are not followed: ``anchorClicked`` reports them (the view re-emits them).
    Images are not loaded (a reply cannot make the app read local files).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("markdownText")
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextBrowserInteraction
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.viewport().setAutoFillBackground(False)
        doc = self.document()
        doc.setUndoRedoEnabled(False)
        doc.documentLayout().documentSizeChanged.connect(self._fit)
        self.horizontalScrollBar().rangeChanged.connect(self._fit)
        self._source: str | None = ""
        self._tail: QTextCursor | None = None
        self._tail_start = 0
        self._fit()

    def markdown(self) -> str | None:
        """The Markdown last rendered whole with :meth:`set_markdown` (None once
        streamed text was added)."""
        return self._source

    def set_markdown(self, text: str) -> None:
        """Render ``text`` (the whole segment) as Markdown."""
        if text == self._source:
            return
        self._tail = None
        self.document().setMarkdown(text, GITHUB)
        self._source = text

    def append_markdown(self, text: str) -> None:
        """Render ``text`` as Markdown at the end of the document, after what is there."""
        self._source = None
        doc = self.document()
        if doc.isEmpty():
            doc.setMarkdown(text, GITHUB)
            return
        cursor = QTextCursor(doc)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertFragment(_fragment(text))

    def open_tail(self) -> None:
        """Begin a new block of plain text at the end (what :meth:`append_tail` adds)."""
        self._source = None
        doc = self.document()
        cursor = QTextCursor(doc)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        if doc.isEmpty():
            block = cursor.block()
            if (listed := block.textList()) is not None:
                listed.remove(block)
            cursor.setBlockFormat(QTextBlockFormat())
            cursor.setBlockCharFormat(QTextCharFormat())
        else:
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
        self._tail_start = cursor.position()
        self._tail = cursor

    def append_tail(self, text: str) -> None:
        """Add ``text`` as plain text at the end of the tail."""
        if self._tail is None:
            self.open_tail()
        assert self._tail is not None
        self._tail.insertText(text, QTextCharFormat())

    def commit_tail(self, markdown: str) -> None:
        """Replace the tail with ``markdown`` rendered (nothing when it is blank)."""
        if self._tail is not None:
            cursor = QTextCursor(self.document())
            cursor.setPosition(max(0, self._tail_start - 1))
            cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            self._tail = None
        if markdown.strip():
            self.append_markdown(markdown)

    def loadResource(self, kind: int, name: QUrl | str) -> Any:
        return None

    def _fit(self) -> None:
        bar = self.horizontalScrollBar()
        extra = bar.sizeHint().height() if bar.maximum() > 0 else 0
        height = math.ceil(self.document().size().height()) + 2 * self.frameWidth() + extra
        if self.minimumHeight() != height or self.maximumHeight() != height:
            self.setFixedHeight(height)


Segment = TextSegment | CodeBlock


class MarkdownView(QWidget):
    """The text of one message: text segments and code blocks, one under the other.

    The view is as tall as its content at its width; it has no scroll bar of its own.
    Links are not opened here: clicking one emits :attr:`link_activated`, which the
    owner connects (to ``QDesktopServices.openUrl`` after whatever check it wants).

    Signals:
        link_activated(str): a link was clicked (its URL).
    """

    link_activated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("markdownView")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self._segments: list[Segment] = []
        self._chunks: list[str] = []
        self._streaming = False
        self._reset_stream()

    # -- the interface --------------------------------------------------------------------

    def text(self) -> str:
        """The Markdown source so far."""
        if len(self._chunks) > 1:
            self._chunks = ["".join(self._chunks)]
        return self._chunks[0] if self._chunks else ""

    def set_markdown(self, text: str) -> None:
        """Show ``text``, rendered whole (replacing what the view showed)."""
        self._chunks = [text] if text else []
        self._streaming = False
        self._reset_stream()
        self._render_exact(text)

    def append(self, text: str) -> None:
        """Add ``text`` (a piece of a streaming reply) at the end.

        The cost is that of ``text`` (and, once per completed run of text or code
        block, of rendering that run), whatever came before. After :meth:`set_markdown`
        or :meth:`finish`, the first append shows the text so far in streaming form
        again (one pass over it).
        """
        if not text:
            return
        if not self._streaming:
            self._start_stream()
        self._chunks.append(text)
        self._feed(text)

    def finish(self) -> None:
        """The stream ended: render the whole text exactly as :meth:`set_markdown`."""
        self._streaming = False
        self._reset_stream()
        self._render_exact(self.text())

    def code_blocks(self) -> list[CodeBlock]:
        """The code blocks shown, in order."""
        return [s for s in self._segments if isinstance(s, CodeBlock)]

    def segments(self) -> list[TextSegment | CodeBlock]:
        """The parts shown, in order: text segments and code blocks."""
        return list(self._segments)

    # -- whole renders --------------------------------------------------------------------

    def _render_exact(self, text: str) -> None:
        blocks = split_blocks(text)
        for index, block in enumerate(blocks):
            current = self._segments[index] if index < len(self._segments) else None
            if block.kind == "text":
                if isinstance(current, TextSegment):
                    current.set_markdown(block.text)
                else:
                    segment = self._new_text()
                    segment.set_markdown(block.text)
                    self._place(index, segment)
            elif isinstance(current, CodeBlock):
                current.set_code(block.text, block.language, closed=block.closed)
            else:
                self._place(index, self._new_code(block.text, block.language, block.closed))
        for extra in self._segments[len(blocks) :]:
            self._drop(extra)
        del self._segments[len(blocks) :]

    def _new_text(self) -> TextSegment:
        segment = TextSegment(self)
        segment.anchorClicked.connect(self._link)
        return segment

    def _new_code(self, code: str, language: str, closed: bool) -> CodeBlock:
        return CodeBlock(code, language, closed=closed, parent=self)

    def _place(self, index: int, segment: Segment) -> None:
        """Put ``segment`` at ``index`` (replacing the segment there, if any)."""
        if index < len(self._segments):
            self._drop(self._segments[index])
            self._segments[index] = segment
        else:
            self._segments.append(segment)
        segment.resize(self.contentsRect().width(), segment.height())  # wrap at its width
        self._layout.insertWidget(index, segment)
        segment.show()

    def _add(self, segment: Segment) -> None:
        self._place(len(self._segments), segment)

    def _drop(self, segment: Segment) -> None:
        self._layout.removeWidget(segment)
        segment.hide()
        segment.deleteLater()

    def _link(self, url: QUrl) -> None:
        self.link_activated.emit(url.toString())

    # -- streaming --------------------------------------------------------------------------

    def _reset_stream(self) -> None:
        self._line: list[str] = []  # pieces of the current line (no newline yet)
        self._line_shown = False  # whether the current line is shown (not held back)
        self._run: list[str] = []  # complete lines of the text run not yet rendered
        self._fence: _Fence | None = None  # the open fence
        self._code: list[str] = []  # complete lines of the open fence's code
        self._text: TextSegment | None = None  # where text goes (the last segment)
        self._block: CodeBlock | None = None  # the open fence's block
        self._tail_open = False  # whether the text segment shows a plain tail

    def _start_stream(self) -> None:
        """Show the text so far in streaming form (a pass over it), ready for more."""
        for segment in self._segments:
            self._drop(segment)
        self._segments.clear()
        self._reset_stream()
        self._streaming = True
        self._feed(self.text())

    def _feed(self, text: str) -> None:
        for piece in _lines(text):
            self._line.append(piece)
            if piece.endswith("\n"):
                line = "".join(self._line)
                self._line.clear()
                self._end_line(line, piece)
                self._line_shown = False
            else:
                self._partial(piece)

    def _partial(self, piece: str) -> None:
        """Show ``piece`` of the current line, unless the line may still be a fence."""
        if self._line_shown:
            self._show(piece)
            return
        partial = "".join(self._line)
        fence = self._fence
        held = fence.may_close(partial) if fence else _MAYBE_OPEN.fullmatch(partial)
        if not held:
            self._line_shown = True
            self._show(partial)

    def _end_line(self, line: str, piece: str) -> None:
        bare = _bare(line)
        rest = piece if self._line_shown else line
        if self._fence is not None:
            if self._fence.closes(bare):
                self._close_code()
            else:
                self._show(rest)
                self._code.append(self._fence.dedent(line))
            return
        fence = _open_fence(bare)
        if fence is not None:
            self._commit()
            self._open_code(fence)
        elif _blank(line):
            self._commit()
        else:
            self._show(rest)
            self._run.append(line)

    def _show(self, text: str) -> None:
        if self._block is not None:
            self._block.append_code(text)
            return
        if not self._tail_open:
            text = text.lstrip()
            if not text:
                return
            if self._text is None:
                self._text = self._new_text()
                self._add(self._text)
            self._text.open_tail()
            self._tail_open = True
        assert self._text is not None
        self._text.append_tail(text)

    def _commit(self) -> None:
        """The text run is complete: its plain tail becomes Markdown."""
        run = "".join(self._run)
        self._run.clear()
        if self._text is not None and (self._tail_open or run.strip()):
            self._text.commit_tail(run)
        self._tail_open = False

    def _open_code(self, fence: _Fence) -> None:
        self._fence = fence
        self._code.clear()
        self._text = None
        self._block = self._new_code("", fence.language, False)
        self._add(self._block)

    def _close_code(self) -> None:
        assert self._block is not None and self._fence is not None
        self._block.set_code(_code_text(self._code), self._fence.language)
        self._fence = None
        self._code.clear()
        self._block = None
