"""The application starts as a process: ``--version``, and a real run against a fake host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app import __version__
from tests.fakes.ollama import FakeOllama

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_version_prints_and_exits_without_qt() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "--version"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"corral {__version__}"

    probe = (
        "import sys; from app.main import main; rc = main(['--version']); "
        "print('qt loaded' if 'PySide6' in sys.modules or 'qasync' in sys.modules else 'no qt');"
        "sys.exit(rc)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"corral {__version__}", "no qt"]


# Runs the real entry point; closes the window once the fake host's models are listed.
_RUN_APP = textwrap.dedent(
    """
    import sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])

    def check():
        for widget in app.topLevelWidgets():
            model = getattr(widget, "model_model", None)  # None while Corral starts
            if widget.objectName() == "mainWindow" and model is not None and model.rowCount():
                names = sorted(r.name for r in widget.model_model.rows())
                print("models:", ",".join(names), flush=True)
                if sys.argv[2] == "quit":
                    app.quit()  # as at the end of a desktop session
                else:
                    widget.close()
                return
        QTimer.singleShot(50, check)

    QTimer.singleShot(0, check)
    from app.main import main
    sys.exit(main(["--settings", sys.argv[1], "--no-mdns"]))  # tests stay on loopback
    """
)


@pytest.mark.parametrize("ending", ["close", "quit"])
def test_the_app_runs_lists_models_and_ends_cleanly(
    tmp_path: Path, fake: FakeOllama, ending: str
) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "hosts": [{"id": "h-fake", "name": "Fake box", "url": fake.url}],
                "hidden_hosts": ["local", "builtin"],  # only the fake host
            }
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-c", _RUN_APP, str(settings), ending],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=45,
    )
    assert result.returncode == 0, result.stderr
    assert f"models: {','.join(sorted(fake.installed))}" in result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert "Unhandled" not in result.stderr, result.stderr


_RUN_APP_CHAT = textwrap.dedent(
    """
    import sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])

    def check():
        for widget in app.topLevelWidgets():
            model = getattr(widget, "model_model", None)  # None while Corral starts
            if widget.objectName() == "mainWindow" and model is not None and model.rowCount():
                print("chat:", widget.chat_panel.status_label.text(), flush=True)
                print("send enabled:", widget.chat_panel.send_button.isEnabled(), flush=True)
                widget.close()
                return
        QTimer.singleShot(50, check)

    QTimer.singleShot(0, check)
    from app.main import main
    sys.exit(main(["--settings", sys.argv[1], "--chat-db", sys.argv[2], "--no-mdns"]))
    """
)


def test_an_unreadable_chat_history_turns_chat_off_and_is_left_alone(
    tmp_path: Path, fake: FakeOllama
) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "hosts": [{"id": "h-fake", "name": "Fake box", "url": fake.url}],
                "hidden_hosts": ["local", "builtin"],  # only the fake host
            }
        ),
        encoding="utf-8",
    )
    chat_db = tmp_path / "chat.db"
    junk = b"not a database: notes the user keeps here\n" * 20
    chat_db.write_bytes(junk)
    result = subprocess.run(
        [sys.executable, "-c", _RUN_APP_CHAT, str(settings), str(chat_db)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=45,
    )
    assert result.returncode == 0, result.stderr
    assert "chat: Chat is off: the chat history" in result.stdout
    assert "file is not a database" in result.stdout
    assert "send enabled: False" in result.stdout
    assert chat_db.read_bytes() == junk  # nothing the user had there is touched
    assert "Traceback" not in result.stderr, result.stderr
