"""The Markdown view of a chat message: blocks, rendering, code blocks, streaming."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette, QTextCursor, QTextDocument, QTextTable
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QScrollArea, QVBoxLayout, QWidget

from app.ui.chat.markdown import (
    Block,
    CodeBlock,
    MarkdownView,
    TextSegment,
    highlight_html,
    split_blocks,
)

REPLY = """# Loading a model

The server keeps *weights* in **VRAM**; see [the docs](https://example.com/docs) and `ollama ps`.

1. Pull the model.
2. Load it:

3. Ask it something.

| Model | Size |
|-------|-----:|
| llama3.2 | 2.0 GB |
| qwen3 | 5.2 GB |

> A quoted line
> that goes on.

Run this:
```python
def load(name: str) -> None:
    print(f"loading {name}")
```
Then check with a shell:

~~~bash
ollama ps
~~~

- one
- two
  still two

```js
console.log("open fence at the end")
"""


def _view(qtbot: Any, width: int = 600) -> MarkdownView:
    view = MarkdownView()
    qtbot.addWidget(view)
    view.resize(width, 100)
    view.show()
    return view


def _structure(view: MarkdownView) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for segment in view.segments():
        if isinstance(segment, CodeBlock):
            closed, highlighted = segment.is_closed(), segment.is_highlighted()
            out.append(("code", segment.code(), segment.language(), closed, highlighted))
        else:
            out.append(("text", segment.document().toMarkdown()))
    return out


def _tables(doc: QTextDocument) -> list[QTextTable]:
    return [f for f in doc.rootFrame().childFrames() if isinstance(f, QTextTable)]


def _blocks(doc: QTextDocument) -> list[Any]:
    out = []
    block = doc.begin()
    while block.isValid():
        out.append(block)
        block = block.next()
    return out


def _anchors(doc: QTextDocument) -> list[str]:
    out: list[str] = []
    for block in _blocks(doc):
        it = block.begin()
        while not it.atEnd():
            href = it.fragment().charFormat().anchorHref()
            if href and href not in out:
                out.append(href)
            it += 1
    return out


# -- split_blocks ---------------------------------------------------------------------------


def test_split_blocks_empty_and_plain() -> None:
    assert split_blocks("") == []
    assert split_blocks("\n\n  \n") == []
    assert split_blocks("Just *text*.\n\nTwo paragraphs.\n") == [
        Block("text", "Just *text*.\n\nTwo paragraphs.")
    ]


def test_split_blocks_fence_with_language() -> None:
    text = "Intro\n```python title=x\nx = 1\n\ny = 2\n```\nAfter\n"
    assert split_blocks(text) == [
        Block("text", "Intro"),
        Block("code", "x = 1\n\ny = 2", "python"),
        Block("text", "After"),
    ]


def test_split_blocks_tilde_fences_and_lengths() -> None:
    assert split_blocks("~~~\n```\nnot a close\n~~~\n") == [
        Block("code", "```\nnot a close", ""),
    ]
    # a closing fence is at least as long as the opening one
    assert split_blocks("````md\n```\ninner\n```\n````") == [
        Block("code", "```\ninner\n```", "md"),
    ]


def test_split_blocks_unterminated_fence_runs_to_the_end() -> None:
    assert split_blocks("See:\n```js\nlet a = 1\nlet b") == [
        Block("text", "See:"),
        Block("code", "let a = 1\nlet b", "js", closed=False),
    ]
    assert split_blocks("```") == [Block("code", "", "", closed=False)]


def test_split_blocks_fences_inside_text_are_text() -> None:
    for text in (
        "Use ```inline``` code here.",
        "```not `a` fence\nsince the info has a backtick",
        "    ```\n    indented four spaces: code, not a fence\n    ```",
        "``only two``",
    ):
        assert split_blocks(text) == [Block("text", text)], text


def test_split_blocks_indented_fence_and_blank_text_between_fences() -> None:
    text = "  ```\n  x\n     y\nz\n  ```\n\n\n```\nsecond\n```\n"
    assert split_blocks(text) == [
        Block("code", "x\n   y\nz", ""),
        Block("code", "second", ""),
    ]


# -- highlighting ---------------------------------------------------------------------------


def test_highlight_html_is_inline_styled() -> None:
    light = highlight_html("def f():\n    return 1 < 2", "python", dark=False)
    dark = highlight_html("def f():\n    return 1 < 2", "python", dark=True)
    assert light.startswith("<pre") and light.endswith("</pre>")
    assert 'style="color:' in light and "class=" not in light
    assert "&lt;" in light
    assert light != dark
    plain = highlight_html("a < b", "no-such-language", dark=False)
    assert "a &lt; b" in plain and "<span" not in plain


# -- rendering ------------------------------------------------------------------------------


def test_table_headings_lists_and_code_blocks_render(qtbot: Any) -> None:
    view = _view(qtbot)
    view.set_markdown(REPLY)
    assert view.text() == REPLY
    segments = view.segments()
    assert [type(s).__name__ for s in segments] == [
        "TextSegment",
        "CodeBlock",
        "TextSegment",
        "CodeBlock",
        "TextSegment",
        "CodeBlock",
    ]
    first = segments[0]
    assert isinstance(first, TextSegment)
    doc = first.document()
    [table] = _tables(doc)
    assert (table.rows(), table.columns()) == (3, 2)
    assert table.cellAt(1, 0).firstCursorPosition().block().text() == "llama3.2"
    blocks = _blocks(doc)
    assert [b.text() for b in blocks if b.blockFormat().headingLevel() == 1] == ["Loading a model"]
    listed = [b for b in blocks if b.textList() is not None]
    assert [b.text() for b in listed] == ["Pull the model.", "Load it:", "Ask it something."]
    assert _anchors(doc) == ["https://example.com/docs"]
    quoted = [b for b in blocks if b.text().startswith("A quoted line")]
    assert quoted and quoted[0].blockFormat().leftMargin() > 0
    assert [(c.language(), c.code(), c.is_closed()) for c in view.code_blocks()] == [
        ("python", 'def load(name: str) -> None:\n    print(f"loading {name}")', True),
        ("bash", "ollama ps", True),
        ("js", 'console.log("open fence at the end")', False),
    ]
    assert all(c.is_highlighted() for c in view.code_blocks())
    # the highlighted code is the code, and it is coloured
    python = view.code_blocks()[0]
    assert python.body.toPlainText() == python.code()
    colours = set()
    block = python.body.document().begin()
    it = block.begin()
    while not it.atEnd():
        colours.add(it.fragment().charFormat().foreground().color().name())
        it += 1
    assert len(colours) > 1


def test_text_is_selectable_and_parts_have_no_vertical_scroll_bar(qtbot: Any) -> None:
    view = _view(qtbot)
    view.set_markdown(REPLY)
    qtbot.waitUntil(lambda: view.segments()[0].height() > 50)
    for segment in view.segments():
        browser = segment if isinstance(segment, TextSegment) else segment.body
        flags = browser.textInteractionFlags()
        assert flags & Qt.TextInteractionFlag.TextSelectableByMouse
        assert flags & Qt.TextInteractionFlag.TextSelectableByKeyboard
        assert browser.verticalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        assert browser.verticalScrollBar().maximum() == 0  # as tall as its document
        assert browser.isReadOnly()


def test_code_block_scrolls_sideways_only_when_needed(qtbot: Any) -> None:
    short = CodeBlock("x = 1", "python")
    wide = CodeBlock("x = " + "1 + " * 200 + "1", "python")
    for block in (short, wide):
        qtbot.addWidget(block)
        block.resize(300, 100)
        block.show()
    qtbot.waitUntil(lambda: wide.body.horizontalScrollBar().maximum() > 0)
    assert short.body.horizontalScrollBar().maximum() == 0
    assert short.body.lineWrapMode() == short.body.LineWrapMode.NoWrap
    # the scroll bar's height is added, so that the line stays visible
    assert wide.body.height() > short.body.height()


def test_copy_button_puts_the_code_on_the_clipboard(qtbot: Any) -> None:
    view = _view(qtbot)
    view.set_markdown("Text\n\n```python\nprint('hi')\n  indented\n```\n")
    [block] = view.code_blocks()
    button = block.findChild(QWidget, "copyCode")
    assert button is block.copy_button and button.text() == "Copy"
    QGuiApplication.clipboard().setText("something else")
    with qtbot.waitSignal(block.copied) as copied:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert copied.args == ["print('hi')\n  indented"]
    assert QGuiApplication.clipboard().text() == "print('hi')\n  indented"
    assert button.text() == "Copied"
    qtbot.waitUntil(lambda: button.text() == "Copy", timeout=4000)


def test_clicking_a_link_reports_it(qtbot: Any) -> None:
    view = _view(qtbot)
    view.set_markdown("Read [the docs](https://example.com/docs) first.")
    [segment] = view.segments()
    assert isinstance(segment, TextSegment)
    found = segment.document().find("the docs")
    assert not found.isNull()
    cursor = QTextCursor(segment.document())
    cursor.setPosition(found.selectionStart() + 2)
    point: QPoint = segment.cursorRect(cursor).center()
    qtbot.waitExposed(view)
    with qtbot.waitSignal(view.link_activated) as link:
        qtbot.mouseClick(segment.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert link.args == ["https://example.com/docs"]


def test_dark_palette_gives_dark_code(qtbot: Any) -> None:
    holder = QWidget()
    qtbot.addWidget(holder)
    palette = holder.palette()
    palette.setColor(QPalette.ColorRole.Window, QColor("#202124"))
    palette.setColor(QPalette.ColorRole.WindowText, QColor("#e8eaed"))
    holder.setPalette(palette)
    view = MarkdownView(holder)
    QVBoxLayout(holder).addWidget(view)
    view.set_markdown("```python\nx = 1\n```")
    [block] = view.code_blocks()
    assert block.body.palette().color(QPalette.ColorRole.Base).lightness() < 64
    light = CodeBlock("x = 1", "python")
    qtbot.addWidget(light)
    assert light.body.palette().color(QPalette.ColorRole.Base).lightness() > 192


# -- streaming ------------------------------------------------------------------------------


def _stream(view: MarkdownView, text: str, seed: int, *, most: int = 12) -> None:
    rnd = random.Random(seed)
    i = 0
    while i < len(text):
        n = rnd.randint(1, most)
        view.append(text[i : i + n])
        i += n
        if rnd.random() < 0.2:
            QApplication.processEvents()


@pytest.mark.parametrize("seed", range(6))
def test_streaming_then_finish_renders_as_the_whole(qtbot: Any, seed: int) -> None:
    whole = _view(qtbot)
    whole.set_markdown(REPLY)
    view = _view(qtbot)
    _stream(view, REPLY, seed)
    assert view.text() == REPLY
    view.finish()
    assert view.text() == REPLY
    assert _structure(view) == _structure(whole)
    QApplication.processEvents()  # the widgets that finish() dropped are deleted
    assert len(view.findChildren(TextSegment)) == 3
    assert len(view.findChildren(CodeBlock)) == 3


_PIECES = st.sampled_from(
    [
        *("```", "~~~", "````", "`", "py", "\n", "\n\n", " ", "    "),
        *("a", "word", "*x*", "- ", "1. ", "# ", "> ", "---", "| a | b |\n|---|---|\n| 1 | 2 |"),
    ]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pieces=st.lists(_PIECES, max_size=40), cuts=st.lists(st.integers(1, 7), min_size=1))
def test_any_text_streams_to_what_set_markdown_shows(
    qtbot: Any, pieces: list[str], cuts: list[int]
) -> None:
    text = "".join(pieces)
    whole = _view(qtbot, 400)
    whole.set_markdown(text)
    view = _view(qtbot, 400)
    start = 0
    for step in range(len(text)):
        if start >= len(text):
            break
        end = start + cuts[step % len(cuts)]
        view.append(text[start:end])
        start = end
        # every code block whose closing fence came is shown highlighted, as it will stay
        complete = text[: text.rfind("\n", 0, end) + 1]
        expected = [b for b in split_blocks(complete) if b.kind == "code"]
        shown = view.code_blocks()
        assert len(shown) == len(expected)
        for block, code in zip(expected, shown, strict=True):
            assert code.is_closed() == block.closed
            if block.closed:
                assert code.is_highlighted() and code.code() == block.text
    assert view.text() == text
    view.finish()
    assert _structure(view) == _structure(whole)


def test_streaming_shows_complete_runs_rendered_and_the_rest_plain(qtbot: Any) -> None:
    view = _view(qtbot)
    view.append("# Title\n\nSome *emphasis* here.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n")
    view.append("Still **typ")
    [segment] = view.segments()
    assert isinstance(segment, TextSegment)
    doc = segment.document()
    assert len(_tables(doc)) == 1  # complete runs are Markdown already
    blocks = _blocks(doc)
    assert blocks[0].blockFormat().headingLevel() == 1
    assert blocks[-1].text() == "Still **typ"  # the incomplete run is plain text so far
    view.append("ing**.")
    assert _blocks(doc)[-1].text() == "Still **typing**."
    view.finish()
    assert _blocks(segment.document())[-1].text() == "Still typing."


def test_an_open_code_block_shows_its_code_while_streaming(qtbot: Any) -> None:
    view = _view(qtbot)
    view.append("Here:\n\n``")
    assert view.code_blocks() == []
    assert "``" not in view.segments()[0].toPlainText()  # a fence is held back until known
    view.append("`python\nimport os\nprint(os.get")
    [block] = view.code_blocks()
    assert block.language() == "python"
    assert block.code() == "import os\nprint(os.get"
    assert block.body.toPlainText() == "import os\nprint(os.get"
    assert not block.is_closed() and not block.is_highlighted()
    assert "python" not in view.segments()[0].toPlainText()
    view.append("cwd())\n``")
    assert block.body.toPlainText() == "import os\nprint(os.getcwd())"  # the fence not shown
    view.append("`\nDone.")
    assert block.is_closed() and block.is_highlighted()
    assert block.code() == "import os\nprint(os.getcwd())"
    assert isinstance(view.segments()[-1], TextSegment)
    assert view.segments()[-1].toPlainText() == "Done."


def test_append_after_finish_goes_on(qtbot: Any) -> None:
    view = _view(qtbot)
    view.set_markdown("First part.\n\n```\ncode\n```\n")
    view.append("More *text*.")
    view.finish()
    reference = _view(qtbot)
    reference.set_markdown("First part.\n\n```\ncode\n```\nMore *text*.")
    assert _structure(view) == _structure(reference)


def test_the_view_grows_as_text_is_appended_in_a_scroll_area(qtbot: Any) -> None:
    area = QScrollArea()
    qtbot.addWidget(area)
    area.setWidgetResizable(True)
    holder = QWidget()
    column = QVBoxLayout(holder)
    view = MarkdownView(holder)
    column.addWidget(view)
    column.addStretch(1)
    area.setWidget(holder)
    area.resize(400, 300)
    area.show()
    qtbot.waitExposed(area)
    heights = [view.height()]
    for i in range(40):
        view.append(f"Line {i} of a reply that is long enough to wrap in a narrow view. ")
        if i % 5 == 4:
            view.append("\n\n")
        if i == 20:
            view.append("```python\nfor i in range(3):\n    print(i)\n")
        if i == 25:
            view.append("```\n")
        QApplication.processEvents()
        heights.append(view.height())
    assert heights == sorted(heights)
    assert heights[-1] > heights[0] + 400
    assert area.verticalScrollBar().maximum() > 0  # the area scrolls, not the parts
    total = sum(s.height() for s in view.segments())
    assert view.height() >= total
    # a narrower view wraps more lines and grows taller
    before = view.height()
    area.resize(250, 300)
    qtbot.waitUntil(lambda: view.height() > before)


def test_the_wheel_over_text_or_code_scrolls_the_scroll_area(qtbot: Any) -> None:
    area = QScrollArea()
    qtbot.addWidget(area)
    area.setWidgetResizable(True)
    view = MarkdownView()
    area.setWidget(view)
    area.resize(400, 300)
    code = "```python\n" + "x = [" + "1, " * 100 + "]\n" * 4 + "```\n"
    view.set_markdown("Intro.\n" + code + "\n\n".join(f"Paragraph {i} " * 6 for i in range(30)))
    area.show()
    qtbot.waitExposed(area)
    bar = area.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 300)
    window = area.windowHandle()
    assert window is not None
    text, block = view.segments()[0], view.code_blocks()[0]
    for part in (text.viewport(), block.body.viewport()):
        bar.setValue(0)
        point = part.mapTo(area.window(), QPoint(20, 5))
        assert area.viewport().rect().contains(area.viewport().mapFrom(area.window(), point))
        QTest.wheelEvent(window, QPointF(point), QPoint(0, -120))
        qtbot.waitUntil(lambda: bar.value() > 0)
