"""append-cost: what one streamed token costs the chat view, at token 100 and at 10,000.

A shown window (offscreen, 800 x 600) holds a QScrollArea whose widget holds one
:class:`~app.ui.chat.markdown.MarkdownView`, as the chat view does. A realistic reply
(paragraphs of words with punctuation, headings, bullet lists, inline code, a few fenced
code blocks of 8-30 lines) is streamed into it one token per ``append``: a token is a word
with its leading space, a punctuation mark, a newline or a blank line, or a piece of a
code line of up to 6 characters. ``--streams`` replies are streamed, each into a fresh
view, to token 10,010: the first with a timed frame after every token; the others with
timed frames for tokens 0-110 and 9,970-10,010 only, and in between appends with a frame
every 32 tokens (the view is in the same state at token 9,990 either way; a timed window
is a few milliseconds, so many streams keep a burst of load on the machine from moving
the medians).

The cost of a token is a whole frame of the app, not only the ``append`` call: the time
from ``append(token)`` to the end of the ``QApplication.processEvents()`` after it, which
runs the view's layout, the scroll area's resize when the view grew, the scroll to the
bottom (the scroll bar's ``rangeChanged`` moves it to the end, as the chat view does while
it follows a reply) and the repaint of the window (the visible part drawn into the
window's backing store; offscreen, so no transfer to a screen). Work that Qt posts on to
the next pass of the loop lands in the next token's frame, so it is counted too. One
frame per token is the worst case: the app batches the tokens of a few milliseconds.

Figures are medians over tokens 90-110 and 9,990-10,010 of every stream. At token 100
the reply still fits in the window; later, a token that starts a new line scrolls the
window and repaints all of it (about a millisecond here, whatever the length of the
text), which shows in the p90. A completed paragraph (the Markdown render of that
paragraph) or a closing code fence (the Pygments highlight of that block) costs more on
the token that completes it; the means over tokens 0-999, 1,000-1,999 and the last 1,000
of the first stream include all of it. The one render of the whole text that
``finish()`` does at the end is timed once per stream.

Baseline: the median cost at token 100, measured in the same run. Target: the cost at
token 10,000 < 1.5 x the cost at token 100 (it must not grow with the text so far).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from typing import Any

from bench import Result

TARGET_RATIO = 1.5
EARLY = (90, 111)  # tokens 90..110
LATE = (9990, 10011)  # tokens 9,990..10,010
TOKENS = LATE[1]

_PROSE = (
    "the model loads weights into memory and the server answers each request with a stream "
    "of tokens while the GPU keeps its layers resident so that latency stays low when the "
    "next prompt arrives from a client on the local network which checks the context length "
    "quantization level batch size and cache before it decides how many layers fit in VRAM"
)
_WORDS = _PROSE.split()
_CODE = [
    "def load(model: str, *, layers: int = 32) -> Model:",
    '    """Load a model onto the GPU."""',
    "    config = read_config(model)",
    "    for index in range(layers):",
    "        weights = fetch(config, index)",
    "        place(weights, device='cuda:0')",
    "    return Model(config, layers=layers)",
    "",
    "if __name__ == '__main__':",
    "    print(load('llama3.2', layers=28))",
]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def reply_tokens(count: int, seed: int = 7) -> list[str]:
    """``count`` tokens of a realistic Markdown reply."""
    rnd = random.Random(seed)
    out: list[str] = []

    def sentence() -> None:
        words = [rnd.choice(_WORDS) for _ in range(rnd.randint(6, 18))]
        words[0] = words[0].capitalize()
        if rnd.random() < 0.3:
            i = rnd.randrange(len(words))
            words[i] = f"`{words[i]}`"
        if rnd.random() < 0.2:
            i = rnd.randrange(len(words))
            words[i] = f"**{words[i]}**"
        for i, word in enumerate(words):
            out.append(word if i == 0 and (not out or out[-1].endswith("\n")) else " " + word)
            if rnd.random() < 0.08:
                out.append(",")
        out.append(".")

    while len(out) < count:
        kind = rnd.random()
        if kind < 0.08:
            out.append("## ")
            out.append(rnd.choice(_WORDS).capitalize())
            out.append(" " + rnd.choice(_WORDS))
        elif kind < 0.2:
            for _ in range(rnd.randint(2, 5)):
                out.append("- ")
                sentence()
                out.append("\n")
            out.pop()
        elif kind < 0.27:
            out.append("```python\n")
            for _ in range(rnd.randint(8, 30)):
                line = rnd.choice(_CODE)
                out.extend(line[i : i + 6] for i in range(0, len(line), 6))
                out.append("\n")
            out.append("```")
        else:
            for _ in range(rnd.randint(2, 5)):
                sentence()
        out.append("\n\n")
    return out[:count]


def run(argv: list[str]) -> Result:
    parser = argparse.ArgumentParser(prog="python -m bench append-cost")
    parser.add_argument("--streams", type=int, default=12, help="replies streamed")
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler
    from PySide6.QtWidgets import QApplication, QScrollArea, QVBoxLayout, QWidget

    def quiet(kind: QtMsgType, context: QMessageLogContext, text: str) -> None:
        if "propagateSizeHints" not in text:  # the offscreen platform's one harmless note
            print(text, file=sys.stderr)

    qInstallMessageHandler(quiet)
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)

    from app.ui.chat.markdown import MarkdownView

    tokens = reply_tokens(TOKENS)
    text = "".join(tokens)
    window = QWidget()
    window.resize(800, 600)
    area = QScrollArea(window)
    area.setWidgetResizable(True)
    QVBoxLayout(window).addWidget(area)
    bar = area.verticalScrollBar()
    bar.rangeChanged.connect(lambda _low, high: bar.setValue(high))  # follow the bottom
    window.show()
    app.processEvents()

    early: list[float] = []
    late: list[float] = []
    first_1000: list[float] = []
    second_1000: list[float] = []
    last_1000: list[float] = []
    finish_ms: list[float] = []
    heights: list[int] = []
    for stream in range(args.streams):
        holder = QWidget()
        column = QVBoxLayout(holder)
        view = MarkdownView(holder)
        column.addWidget(view)
        column.addStretch(1)
        area.setWidget(holder)
        app.processEvents()
        costs: list[float] = []
        for index, token in enumerate(tokens):
            if stream and EARLY[1] <= index < LATE[0] - 20:
                view.append(token)
                if index % 32 == 0:
                    app.processEvents()
                costs.append(0.0)
                continue
            t0 = time.perf_counter()
            view.append(token)
            app.processEvents()
            costs.append((time.perf_counter() - t0) * 1000.0)
        early.extend(costs[EARLY[0] : EARLY[1]])
        late.extend(costs[LATE[0] : LATE[1]])
        if not stream:
            first_1000.extend(costs[:1000])
            second_1000.extend(costs[1000:2000])
            last_1000.extend(costs[TOKENS - 1000 :])
        heights.append(view.height())
        assert view.text() == text
        t0 = time.perf_counter()
        view.finish()
        app.processEvents()
        finish_ms.append((time.perf_counter() - t0) * 1000.0)
        area.takeWidget()
        holder.deleteLater()
        app.processEvents()
    window.close()
    app.processEvents()

    at_100 = statistics.median(early)
    at_10k = statistics.median(late)
    ratio = at_10k / at_100
    blocks = text.count("```") // 2
    print(
        f"append-cost: {args.streams} streams of {TOKENS} tokens ({len(text)} characters, "
        f"{blocks} code blocks) into a MarkdownView in a QScrollArea, offscreen 800x600; "
        "cost = append + layout + scroll to bottom + repaint"
    )
    print(
        f"  tokens {EARLY[0]}-{EARLY[1] - 1}        median {at_100 * 1000:7.1f} µs   "
        f"p90 {_pct(early, 0.9) * 1000:7.1f} µs   (baseline)"
    )
    print(
        f"  tokens {LATE[0]}-{LATE[1] - 1}    median {at_10k * 1000:7.1f} µs   "
        f"p90 {_pct(late, 0.9) * 1000:7.1f} µs"
    )
    print(
        f"  mean of tokens 0-999 {statistics.mean(first_1000) * 1000:7.1f} µs, "
        f"1,000-1,999 {statistics.mean(second_1000) * 1000:7.1f} µs, "
        f"the last 1,000 {statistics.mean(last_1000) * 1000:7.1f} µs "
        "(first stream; paragraph renders and highlights included)"
    )
    print(
        f"  finish() at the end (one render of the whole text) median "
        f"{statistics.median(finish_ms):.1f} ms; view height {heights[-1]} px"
    )
    print(f"  ratio token 10,000 / token 100: {ratio:.2f} (target < {TARGET_RATIO})")
    figures: dict[str, Any] = {
        "streams": args.streams,
        "tokens": TOKENS,
        "characters": len(text),
        "median_us_at_10000": round(at_10k * 1000, 1),
        "p90_us_at_10000": round(_pct(late, 0.9) * 1000, 1),
        "p90_us_at_100": round(_pct(early, 0.9) * 1000, 1),
        "mean_us_first_1000": round(statistics.mean(first_1000) * 1000, 1),
        "mean_us_1000_to_1999": round(statistics.mean(second_1000) * 1000, 1),
        "mean_us_last_1000": round(statistics.mean(last_1000) * 1000, 1),
        "finish_ms": round(statistics.median(finish_ms), 2),
        "view_height_px": heights[-1],
    }
    return Result(
        bench="append-cost",
        figures=figures,
        baseline={"median_us_at_100": round(at_100 * 1000, 1)},
        ratios={"at_10000_over_at_100": round(ratio, 3)},
        targets={"at_10000_over_at_100": f"< {TARGET_RATIO}"},
        met=ratio < TARGET_RATIO,
    )
