"""What a stdio MCP server gets from Corral: an allow-listed environment and a stderr pipe.

A child process never sees Corral's whole environment (it may hold API keys and tokens
meant for other programs): only the variables a program needs to run at all (paths, the
user, the locale, the temporary directory, and on Windows the system folders), plus the
variables configured for that server.

The child's stderr goes into a pipe that a small thread reads line by line into a
:class:`StderrTail` (the last 200 lines), so the user can see why a server failed. A
thread, not the event loop: it works the same on every platform and event loop (qasync
included), and a chatty server cannot slow the loop down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import TextIO

# Variables passed through from Corral's own environment when set (names compared
# case-insensitively on Windows, where the environment is case-insensitive).
POSIX_ALLOWED = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "LANG",
    "LANGUAGE",
    "TMPDIR",
    "TEMP",
    "TMP",
    "TZ",
    "XDG_RUNTIME_DIR",
)
WINDOWS_ALLOWED = (
    "PATH",
    "PATHEXT",
    "SYSTEMROOT",
    "SYSTEMDRIVE",
    "WINDIR",
    "COMSPEC",
    "APPDATA",
    "LOCALAPPDATA",
    "PROGRAMDATA",
    "PROGRAMFILES",
    "PROGRAMFILES(X86)",
    "PROGRAMW6432",
    "COMMONPROGRAMFILES",
    "USERPROFILE",
    "USERNAME",
    "HOMEDRIVE",
    "HOMEPATH",
    "TEMP",
    "TMP",
    "NUMBER_OF_PROCESSORS",
    "PROCESSOR_ARCHITECTURE",
    "LANG",
)
PREFIXES_ALLOWED = ("LC_",)

TAIL_LINES = 200
MAX_LINE_CHARS = 2000


def child_environment(
    configured: Mapping[str, str],
    parent: Mapping[str, str] | None = None,
    *,
    windows: bool | None = None,
) -> dict[str, str]:
    """The environment of a stdio server: the allow-listed part of ``parent`` (by default
    Corral's own environment) with ``configured`` on top.

    Values that look like exported shell functions (``() {...``) are never passed on.
    """
    source = os.environ if parent is None else parent
    on_windows = sys.platform == "win32" if windows is None else windows
    allowed = WINDOWS_ALLOWED if on_windows else POSIX_ALLOWED
    wanted = {name.upper() for name in allowed} if on_windows else set(allowed)
    env: dict[str, str] = {}
    for name, value in source.items():
        key = name.upper() if on_windows else name
        if key not in wanted and not key.startswith(PREFIXES_ALLOWED):
            continue
        if value.startswith("()"):
            continue
        env[name] = value
    env.update(configured)
    return env


class StderrTail:
    """The last lines a server process wrote to stderr (thread-safe).

    Attributes:
        maxlen: how many lines are kept.
    """

    def __init__(self, maxlen: int = TAIL_LINES) -> None:
        self.maxlen = maxlen
        self._lines: deque[str] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def lines(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._lines)

    def append(self, line: str) -> None:
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + " [...]"
        with self._lock:
            self._lines.append(line)

    def clear(self) -> None:
        with self._lock:
            self._lines.clear()

    @contextlib.asynccontextmanager
    async def capture(self, name: str = "", *, drain_s: float = 1.0) -> AsyncIterator[TextIO]:
        """A writable file for a child's stderr; its lines land in this tail.

        On exit the parent's copy of the pipe is closed and the reader is given up to
        ``drain_s`` to read what the (by then stopped) child wrote last, so that the tail
        is complete when the failure is reported. A grandchild that keeps the pipe open
        only keeps the daemon reader thread alive; nothing waits for it.
        """
        read_fd, write_fd = os.pipe()
        writer = os.fdopen(write_fd, "w", encoding="utf-8", errors="replace")
        # The reader thread never calls into the event loop: it may end after the loop is
        # gone (a grandchild holding the pipe), and a Qt-based loop must not be touched
        # from a thread then. The wait for it below runs in a worker thread instead.
        done = threading.Event()
        thread = threading.Thread(
            target=self._pump, args=(read_fd, done), name=f"mcp stderr {name}", daemon=True
        )
        thread.start()
        try:
            yield writer
        finally:
            writer.close()
            if not done.is_set():
                await asyncio.to_thread(done.wait, drain_s)

    def _pump(self, fd: int, done: threading.Event) -> None:
        pending = b""
        try:
            with open(fd, "rb", buffering=0) as pipe:
                while chunk := pipe.read(65536):
                    *complete, pending = (pending + chunk).split(b"\n")
                    for raw in complete:
                        self.append(raw.rstrip(b"\r").decode("utf-8", "replace"))
                    if len(pending) > MAX_LINE_CHARS * 4:  # a huge line without an end
                        self.append(pending.decode("utf-8", "replace"))
                        pending = b""
        except OSError:
            pass
        finally:
            if pending:
                self.append(pending.rstrip(b"\r").decode("utf-8", "replace"))
            done.set()
