"""Crash safety: a writer process killed mid-reply loses at most the last 500 ms of text."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from app.core.chat import ChatStore, MessageStatus
from app.core.chat.store import INTERRUPTED
from tests.support.chat_writer import long_reply

ROOT = Path(__file__).resolve().parents[2]
MAX_LOSS_S = 0.5


def test_a_killed_writer_leaves_the_reply_up_to_half_a_second_before(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.chat_writer", str(db), "127.0.0.7", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[list[str]] = []
    enough = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.split())
            # about 1.5 s into the reply, and text has arrived since the last write
            if sum(p[0] == "flush" for p in lines) >= 6 and lines[-1][0] == "recv":
                enough.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert enough.wait(30), f"the writer did not stream: {lines} {proc.stderr}"
        # between two flushes: some text has arrived but is not written yet
        killed_at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    reader.join(10)
    assert proc.returncode == -signal.SIGKILL
    assert not any(p[0] == "done" for p in lines)

    _, conversation_id, reply_id = next(p for p in lines if p[0] == "ready")
    received = [(float(p[1]), int(p[2])) for p in lines if p[0] == "recv"]
    due = max((chars for t, chars in received if t <= killed_at - MAX_LOSS_S), default=0)
    assert due > 0  # the kill came well into the reply

    raw = sqlite3.connect(db)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        content, status = raw.execute(
            "SELECT content, status FROM messages WHERE id = ?", (reply_id,)
        ).fetchone()
    finally:
        raw.close()
    assert status == "streaming"
    assert long_reply().startswith(content)
    assert len(content) >= due, f"lost more than {MAX_LOSS_S} s of text"
    assert len(content) <= received[-1][1]  # nothing that had not arrived

    async def reopen() -> None:
        async with ChatStore(db) as store:
            _, messages = await store.context(conversation_id)
            assert [m.role for m in messages] == ["user", "assistant"]
            cut = messages[1]
            assert cut.status is MessageStatus.FAILED and cut.error == INTERRUPTED
            assert cut.content == content

    asyncio.run(reopen())
