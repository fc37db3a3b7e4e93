"""Single instance: a second launch with the same settings raises the running Corral's
window and exits; odd clients and crashed instances do not get in the way."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QDir, Qt
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QMainWindow

from app.ui.single_instance import MAX_LINE, SingleInstance, ping, raise_window, server_name
from tests.support.waiting import poll_until

ROOT = Path(__file__).resolve().parents[2]
UNCONNECTED = QLocalSocket.LocalSocketState.UnconnectedState
#: The offscreen platform cannot stack windows; it says so for every raise().
OFFSCREEN_NO_RAISE = r"This plugin does not support raise\(\)"


@pytest.fixture
def instances() -> Iterator[list[SingleInstance]]:
    """SingleInstance objects made by a test; all are closed after it."""
    made: list[SingleInstance] = []
    yield made
    for instance in made:
        instance.close()


def _instance(made: list[SingleInstance], key: Path, **options: Any) -> SingleInstance:
    instance = SingleInstance(key, **options)
    made.append(instance)
    return instance


def _client(name: str, data: bytes = b"") -> QLocalSocket:
    client = QLocalSocket()
    client.connectToServer(name)
    assert client.waitForConnected(1000), client.errorString()
    if data:
        client.write(data)
        client.flush()
    return client


def test_a_second_claim_hands_over_to_the_first(
    qtbot: Any, tmp_path: Path, instances: list[SingleInstance]
) -> None:
    key = tmp_path / "settings.json"
    first = _instance(instances, key)
    raised: list[bool] = []
    first.raiseRequested.connect(lambda: raised.append(True))
    assert not ping(key)  # nobody there yet
    assert first.claim()
    assert first.listening

    second = _instance(instances, key)
    assert not second.claim()
    assert second.answered  # the first confirmed that it raised its window
    assert not second.listening
    assert raised == [True]

    assert ping(key)  # a ping finds it, and raises nothing
    assert raised == [True]


def test_different_settings_files_run_side_by_side(
    qtbot: Any, tmp_path: Path, instances: list[SingleInstance]
) -> None:
    one, other = tmp_path / "one.json", tmp_path / "other.json"
    assert server_name(one) == server_name(tmp_path / "." / "one.json")  # same file
    assert server_name(one) != server_name(other)
    assert len(server_name(one)) <= 32 and "/" not in server_name(one)
    assert str(tmp_path) not in server_name(one)  # the path is not spelled out
    assert _instance(instances, one).claim()
    assert _instance(instances, other).claim()


def test_clients_sending_garbage_or_nothing_do_not_block_the_first(
    qtbot: Any, tmp_path: Path, instances: list[SingleInstance]
) -> None:
    key = tmp_path / "settings.json"
    first = _instance(instances, key, client_timeout_ms=300)
    raised: list[bool] = []
    first.raiseRequested.connect(lambda: raised.append(True))
    assert first.claim()

    silent = _client(first.name)
    garbage = _client(first.name, b"\x00\xff not json at all\n")
    endless = _client(first.name, b"x" * (MAX_LINE + 10))
    unknown = _client(first.name, b'{"v": 1, "cmd": "format the disk"}\n')
    clients = [silent, garbage, endless, unknown]
    try:
        # while those hang on, a real second launch is answered at once
        assert not _instance(instances, key).claim()
        assert raised == [True]

        qtbot.waitUntil(lambda: unknown.canReadLine(), timeout=3000)
        reply = json.loads(bytes(unknown.readLine().data()))
        assert reply["ok"] is False and "unknown command" in reply["error"]
        qtbot.waitUntil(lambda: garbage.state() == UNCONNECTED, timeout=3000)
        qtbot.waitUntil(lambda: endless.state() == UNCONNECTED, timeout=3000)
        qtbot.waitUntil(lambda: silent.state() == UNCONNECTED, timeout=3000)
        assert raised == [True]  # none of them raised the window
        assert first.listening
        assert ping(key)
    finally:
        for client in clients:
            client.abort()
            client.deleteLater()


@pytest.mark.skipif(sys.platform == "win32", reason="named pipes leave no file behind")
def test_a_socket_left_by_a_crashed_corral_is_taken_over_and_removed_on_close(
    qtbot: Any, tmp_path: Path, instances: list[SingleInstance]
) -> None:
    key = tmp_path / "settings.json"
    path = Path(QDir.tempPath()) / server_name(key)
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(path))  # a socket file that nothing listens on any more
    crashed.close()
    try:
        assert path.exists()
        first = _instance(instances, key)
        assert first.claim()
        assert not _instance(instances, key).claim()  # the first really listens there

        first.close()
        assert not first.listening
        assert not path.exists()
        assert _instance(instances, key).claim()  # and a new launch starts cleanly
    finally:
        QLocalServer.removeServer(server_name(key))


@pytest.mark.qt_log_ignore(OFFSCREEN_NO_RAISE)
def test_raise_window_brings_back_a_minimised_or_hidden_window(qtbot: Any) -> None:
    window = QMainWindow()
    qtbot.addWidget(window)
    window.showMinimized()
    assert window.windowState() & Qt.WindowState.WindowMinimized
    raise_window(window)
    assert window.isVisible()
    assert not window.windowState() & Qt.WindowState.WindowMinimized

    window.hide()
    raise_window(window)
    assert window.isVisible()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_a_second_launch_raises_the_running_corral_and_exits(qtbot: Any, tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps({"schema_version": 1, "hosts": [], "hidden_hosts": ["local"]}),
        encoding="utf-8",
    )
    command = [
        sys.executable,
        "-m",
        "app",
        "--settings",
        str(settings),
        "--chat-db",
        str(tmp_path / "chat.db"),
        "--mcp-config",
        str(tmp_path / "mcp.json"),
        "--no-mdns",  # tests stay on loopback
    ]
    log_path = tmp_path / "first.log"
    with log_path.open("w", encoding="utf-8") as log_file:
        first = subprocess.Popen(
            command, cwd=ROOT, env=_env(), stdout=log_file, stderr=subprocess.STDOUT
        )
    try:

        def first_log() -> str:
            return log_path.read_text(encoding="utf-8", errors="replace")

        # running and answering: its event loop runs, the window is up
        poll_until(
            lambda: first.poll() is not None or ping(settings, reply_timeout_ms=1000),
            timeout=45,
            message="the first Corral to answer on its instance socket",
            describe=first_log,
        )
        assert first.poll() is None, first_log()

        second = subprocess.run(
            command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=30
        )
        assert second.returncode == 0, second.stderr
        assert "Corral is already running; its window was raised." in second.stdout
        assert "Traceback" not in second.stderr, second.stderr
        poll_until(
            lambda: "Asked by a second launch to raise the window" in first_log(),
            timeout=10,
            message="the first Corral to log that it was asked to raise its window",
            describe=first_log,
        )
        assert first.poll() is None, "the first Corral must keep running"
        assert "Traceback" not in first_log(), first_log()
    finally:
        first.terminate()
        try:
            first.wait(timeout=15)
        except subprocess.TimeoutExpired:
            first.kill()
            first.wait(timeout=15)
        # terminated without cleanup: its socket file is left behind in the temp folder
        QLocalServer.removeServer(server_name(settings))
