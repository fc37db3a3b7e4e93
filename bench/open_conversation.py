"""open-conversation: time to open a conversation of 2,000 messages in the chat panel.

A real SQLite file holds a conversation of ``--messages`` messages (user questions and
Markdown replies: paragraphs, lists, a code block every fifth reply) and a short one of
20 messages. The chat panel (offscreen, shown, 900 x 700) opens one, then the other,
alternately; a round is timed from the click (``open_conversation``) until the panel says
the conversation is shown and Qt has laid out and painted what followed
(``processEvents``). The short conversation is the baseline measured in the same run.
The store keeps recently read conversations in memory, so the long one is also opened
"cold" (``--cold-rounds``): each time through a fresh store that has not read it, as
after a start of the app; the target applies to that figure.

Target: median time to open the long conversation, not read yet, < 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Result

TARGET_MS = 300.0
MODEL = "llama3.2:latest"


def _reply(i: int) -> str:
    text = (
        f"Answer {i}. Here is what matters:\n\n- the first point, with **bold** words\n"
        f"- the second point, with `inline code`\n\nA closing paragraph for message {i}, "
        "long enough to wrap over a couple of lines in the chat view at its usual width."
    )
    if i % 5 == 0:
        text += f"\n\n```python\ndef f{i}(x):\n    return x * {i}\n```\n"
    return text


async def _fill(path: Path, messages: int) -> tuple[str, str]:
    from app.core.chat import ChatStore

    async with ChatStore(path) as store:
        long = await store.create_conversation(MODEL, title="Long conversation")
        short = await store.create_conversation(MODEL, title="Short conversation")
        for conversation, count in ((long, messages), (short, 20)):
            for i in range(count):
                if i % 2 == 0:
                    await store.add_message(conversation.id, "user", f"Question {i}?")
                else:
                    await store.add_message(conversation.id, "assistant", _reply(i))
    return long.id, short.id


def run(argv: list[str]) -> Result:
    parser = argparse.ArgumentParser(prog="python -m bench open-conversation")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--cold-rounds", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["QT_API"] = "pyside6"
    from PySide6.QtWidgets import QApplication

    # isort: split
    from app.core.chat import ChatEngine, ChatStore
    from app.core.hosts.registry import HostRegistry
    from app.core.secrets import SecretStore
    from app.core.settings import SettingsStore
    from app.ui.chat.panel import ChatPanel
    from app.ui.event_loop import CorralEventLoop
    from tests.support.memory_keyring import MemoryKeyring

    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    times: dict[str, list[float]] = {"long": [], "short": [], "cold": []}
    built: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        db = Path(tmp) / "chat.db"
        registry = HostRegistry(
            SettingsStore(Path(tmp) / "settings.json"), SecretStore(MemoryKeyring()), env={}
        )
        registry.remove("local")

        async def main() -> None:
            long_id, short_id = await _fill(db, args.messages)
            async with ChatStore(db) as store:
                engine = ChatEngine(registry, store)
                panel = ChatPanel(engine, registry)
                panel.resize(900, 700)
                panel.show()
                opened = asyncio.Event()
                panel.conversationOpened.connect(lambda _id: opened.set())

                async def open_one(conversation_id: str) -> float:
                    opened.clear()
                    app.processEvents()
                    t0 = time.perf_counter()
                    panel.open_conversation(conversation_id)
                    await opened.wait()
                    app.processEvents()
                    return (time.perf_counter() - t0) * 1000.0

                for i in range(args.warmup + args.rounds):
                    order: list[tuple[str, Any]] = [("long", long_id), ("short", short_id)]
                    if i % 2:
                        order.reverse()
                    for name, conversation_id in order:
                        ms = await open_one(conversation_id)
                        if i >= args.warmup:
                            times[name].append(ms)
                        if name == "long":
                            built["long"] = len(panel.view.widgets)
                            built["messages"] = panel.view.message_count
                # cold: the store has not read the conversation yet (a fresh store each
                # time, as after a start of the app)
                for _ in range(args.cold_rounds):
                    async with ChatStore(db) as fresh:
                        panel.engine = ChatEngine(registry, fresh)
                        panel.store = fresh
                        await open_one(short_id)  # leave the long one
                        times["cold"].append(await open_one(long_id))
                        await panel.engine.aclose()
                panel.engine, panel.store = engine, store
                await panel.shutdown()
                await engine.aclose()
                panel.deleteLater()
            await registry.aclose()

        with asyncio.Runner(loop_factory=lambda: CorralEventLoop(app)) as runner:
            runner.run(main())

    long_ms = statistics.median(times["long"])
    short_ms = statistics.median(times["short"])
    cold_ms = statistics.median(times["cold"])
    print(
        f"open-conversation: chat panel offscreen, {args.rounds} rounds, "
        f"{built['messages']} messages ({built['long']} built at first)"
    )
    print(
        f"  {args.messages:5d} messages, not read yet:   median {cold_ms:7.1f} ms   "
        f"max {max(times['cold']):7.1f} ms   ({args.cold_rounds} rounds, a fresh store each)"
    )
    print(
        f"  {args.messages:5d} messages, opened before: median {long_ms:7.1f} ms   "
        f"max {max(times['long']):7.1f} ms   (the store keeps recent conversations in memory)"
    )
    short_max = max(times["short"])
    print(f"     20 messages, opened before: median {short_ms:7.1f} ms   max {short_max:7.1f} ms")
    print(f"  target: < {TARGET_MS:.0f} ms for {args.messages} messages not read yet")
    return Result(
        bench="open-conversation",
        figures={
            "messages": built["messages"],
            "widgets_built": built["long"],
            "cold_median_ms": round(cold_ms, 1),
            "cold_max_ms": round(max(times["cold"]), 1),
            "warm_median_ms": round(long_ms, 1),
            "warm_max_ms": round(max(times["long"]), 1),
        },
        baseline={"messages": 20, "median_ms": round(short_ms, 1)},
        ratios={"cold_median": round(cold_ms / short_ms, 3) if short_ms else 0.0},
        targets={"cold_median_ms": f"< {TARGET_MS:.0f}"},
        met=cold_ms < TARGET_MS and built["messages"] == args.messages,
    )
