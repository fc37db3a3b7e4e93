"""One Corral per user and settings file: launching it again brings the running window up.

The first launch listens on a local socket (a Unix socket in the temp folder, a named pipe
on Windows) whose name comes from the user and the settings file, so that two Corrals
with different settings files can run side by side. A later launch connects, sends one
JSON line (``{"v": 1, "cmd": "raise"}``), waits briefly for the answer
(``{"v": 1, "ok": true}``) and exits. ``ping`` asks whether a Corral is there without
raising anything.

The listening side never waits on a client: it reads with signals, and a client that
sends nothing, too much or something that is not a command is dropped after a deadline.
A socket left behind by a Corral that crashed is removed before listening again; a lock
file makes two launches at the same instant take turns.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDir, QEventLoop, QLockFile, QObject, Qt, QTimer, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QWidget

from app.core.settings import default_settings_path

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAX_LINE = 4096  # bytes; a longer "command" is not one
CONNECT_TIMEOUT_MS = 500
REPLY_TIMEOUT_MS = 3000  # a running Corral answers once its loop runs
CLIENT_TIMEOUT_MS = 2000  # how long the running Corral waits for a client's line
LOCK_TIMEOUT_MS = 3000


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name known (a bare container, a service)
        return str(os.getuid()) if hasattr(os, "getuid") else ""


def server_name(key: str | os.PathLike[str] | None = None) -> str:
    """The local socket name for this user and a settings file (None: the default one):
    short, free of path separators, and the same on every run."""
    path = Path(key) if key is not None else default_settings_path()
    where = str(path.expanduser().resolve())
    digest = hashlib.sha256(f"{_user()}\0{where}".encode()).hexdigest()[:16]
    return f"corral-{digest}"


@dataclass(frozen=True)
class _Answer:
    """What came back from knocking on a socket name."""

    connected: bool
    reply: dict[str, Any] | None = None
    error: QLocalSocket.LocalSocketError | None = None
    error_text: str = ""

    @property
    def ok(self) -> bool:
        return self.reply is not None and self.reply.get("ok") is True


def _parse(line: bytes) -> dict[str, Any] | None:
    """A protocol line as a dict, or None when it is not one."""
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("v"), int):
        return None
    return value


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps({"v": PROTOCOL_VERSION, **message}).encode() + b"\n"


def _knock(name: str, cmd: str, connect_timeout_ms: int, reply_timeout_ms: int) -> _Answer:
    """Send one command to the Corral listening on ``name`` and wait for its answer.

    Connecting blocks for at most ``connect_timeout_ms`` (a local socket answers at once
    or not at all); the answer is awaited in a local event loop for at most
    ``reply_timeout_ms``, so that a listener in this same process can answer. Call it
    before the app's event loop runs.
    """
    socket = QLocalSocket()
    try:
        socket.connectToServer(name)
        if not socket.waitForConnected(connect_timeout_ms):
            return _Answer(False, error=socket.error(), error_text=socket.errorString())
        buffer = bytearray()
        loop = QEventLoop()
        timer = QTimer(socket)
        timer.setSingleShot(True)
        timer.timeout.connect(loop.quit)

        def read() -> None:
            buffer.extend(socket.readAll().data())
            if b"\n" in buffer or len(buffer) > MAX_LINE:
                loop.quit()

        socket.readyRead.connect(read)
        socket.disconnected.connect(loop.quit)
        socket.write(_encode({"cmd": cmd}))
        socket.flush()
        timer.start(reply_timeout_ms)
        if socket.state() is QLocalSocket.LocalSocketState.ConnectedState:
            loop.exec(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
        timer.stop()
        buffer.extend(socket.readAll().data())
        line, newline, _ = bytes(buffer).partition(b"\n")
        reply = _parse(line) if newline else None
        return _Answer(True, reply, socket.error(), socket.errorString())
    finally:
        socket.abort()
        socket.deleteLater()


def ping(
    key: str | os.PathLike[str] | None = None,
    *,
    connect_timeout_ms: int = CONNECT_TIMEOUT_MS,
    reply_timeout_ms: int = REPLY_TIMEOUT_MS,
) -> bool:
    """Whether a Corral runs with this settings file and answers (nothing is raised)."""
    return _knock(server_name(key), "ping", connect_timeout_ms, reply_timeout_ms).ok


class _Visitor(QObject):
    """One connection from another launch: read one line, answer it, hang up.

    Signals:
        command(str): a well-formed command arrived (and was answered).
    """

    command = Signal(str)
    KNOWN = ("raise", "ping")

    def __init__(self, socket: QLocalSocket, timeout_ms: int, parent: QObject) -> None:
        super().__init__(parent)
        self._socket = socket
        socket.setParent(self)
        self._buffer = bytearray()
        self._done = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._too_slow)
        socket.readyRead.connect(self._read)
        socket.disconnected.connect(self._gone)
        self._timer.start(timeout_ms)
        self._read()  # it may have written before we looked

    def _read(self) -> None:
        if self._done:
            return
        self._buffer.extend(self._socket.readAll().data())
        line, newline, _ = bytes(self._buffer).partition(b"\n")
        if not newline:
            if len(self._buffer) > MAX_LINE:
                self.drop("a line longer than any command")
            return
        message = _parse(line)
        cmd = message.get("cmd") if message is not None else None
        if not isinstance(cmd, str):
            self.drop("something that is not a command")
            return
        if cmd not in self.KNOWN:
            self._answer({"ok": False, "error": f"unknown command {cmd!r}"})
            return
        self._answer({"ok": True})
        self.command.emit(cmd)

    def _answer(self, reply: dict[str, Any]) -> None:
        self._done = True
        self._timer.stop()
        self._socket.write(_encode(reply))
        self._socket.flush()
        self._socket.disconnectFromServer()  # after the answer is written

    def _too_slow(self) -> None:
        self.drop("no command in time")

    def drop(self, why: str) -> None:
        """Hang up without answering."""
        if not self._done:
            log.debug("Dropped a connection to the instance socket: %s", why)
        self._done = True
        self._timer.stop()
        self._socket.abort()
        self._finish()

    def _gone(self) -> None:
        self._done = True
        self._timer.stop()
        self._finish()

    def _finish(self) -> None:
        self.deleteLater()


class SingleInstance(QObject):
    """Makes this process the one Corral for a settings file, or hands over to the one
    already running.

    Attributes:
        name: the local socket name (see :func:`server_name`).
        listening: this process is the one Corral and listens for later launches.
        answered: after a :meth:`claim` that found another Corral: it confirmed that it
            raised its window.

    Signals:
        raiseRequested: a later launch asked this one to show its window.
    """

    raiseRequested = Signal()

    def __init__(
        self,
        key: str | os.PathLike[str] | None = None,
        parent: QObject | None = None,
        *,
        connect_timeout_ms: int = CONNECT_TIMEOUT_MS,
        reply_timeout_ms: int = REPLY_TIMEOUT_MS,
        client_timeout_ms: int = CLIENT_TIMEOUT_MS,
    ) -> None:
        super().__init__(parent)
        self.name = server_name(key)
        self.answered = False
        self._connect_timeout_ms = connect_timeout_ms
        self._reply_timeout_ms = reply_timeout_ms
        self._client_timeout_ms = client_timeout_ms
        self._server: QLocalServer | None = None
        self._server_error = ""

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.isListening()

    def claim(self) -> bool:
        """True: this is the one Corral (it now listens). False: another Corral runs with
        the same settings and was asked to show its window; this launch should exit.

        Blocks for a moment at most (short timeouts); call it before the event loop runs.
        Where the socket cannot be set up at all, Corral runs anyway and says so in the log.
        """
        if self.listening:
            return True
        lock = QLockFile(os.path.join(QDir.tempPath(), f"{self.name}.lock"))
        locked = lock.tryLock(LOCK_TIMEOUT_MS)
        try:
            answer = self._ask_running()
            if answer is not None:
                return False
            # Nobody answers: a socket file still there is a crashed Corral's.
            QLocalServer.removeServer(self.name)
            if self._listen():
                return True
            answer = self._ask_running()  # another launch got there first (no lock)
            if answer is not None:
                return False
            log.warning(
                "Corral cannot make sure that it runs only once (%s); a second launch "
                "with the same settings will open a second window.",
                self._server_error,
            )
            return True
        finally:
            if locked:
                lock.unlock()

    def _ask_running(self) -> _Answer | None:
        """Ask a running Corral to raise its window; None when none is there."""
        answer = _knock(self.name, "raise", self._connect_timeout_ms, self._reply_timeout_ms)
        if answer.connected:
            self.answered = answer.ok
            if not answer.ok:
                said = answer.reply.get("error") if answer.reply is not None else None
                log.warning(
                    "Another Corral runs with these settings but did not confirm that it "
                    "showed its window (%s).",
                    said or f"no answer within {self._reply_timeout_ms} ms",
                )
            return answer
        if answer.error is QLocalSocket.LocalSocketError.SocketTimeoutError:
            # Something holds the socket but is too busy to accept: a Corral, hung.
            log.warning("Another Corral runs with these settings but does not answer.")
            return answer
        return None

    def _listen(self) -> bool:
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        server.newConnection.connect(self._on_new_connection)
        if not server.listen(self.name):
            self._server_error = server.errorString()
            server.deleteLater()
            return False
        self._server = server
        log.info("Listening for later launches on %s", server.fullServerName())
        return True

    def _on_new_connection(self) -> None:
        server = self._server
        while server is not None and server.hasPendingConnections():
            socket = server.nextPendingConnection()
            visitor = _Visitor(socket, self._client_timeout_ms, self)
            visitor.command.connect(self._on_command)

    def _on_command(self, cmd: str) -> None:
        if cmd == "raise":
            self.raiseRequested.emit()

    def close(self) -> None:
        """Stop listening and remove the socket; connections in progress are dropped."""
        for visitor in self.findChildren(_Visitor):
            visitor.drop("Corral is closing")
        if self._server is not None:
            self._server.close()
            self._server.deleteLater()
            self._server = None


def raise_window(window: QWidget) -> None:
    """Bring a window to the front: shown, no longer minimised, raised and active."""
    state = window.windowState()
    if state & Qt.WindowState.WindowMinimized:
        window.setWindowState(
            (state & ~Qt.WindowState.WindowMinimized) | Qt.WindowState.WindowActive
        )
    window.show()
    window.raise_()
    window.activateWindow()
