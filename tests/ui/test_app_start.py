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
    result = _run("-m", "app", "--version", timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"corral {__version__}"

    probe = (
        "import sys; from app.main import main; rc = main(['--version']); "
        "print('qt loaded' if 'PySide6' in sys.modules or 'qasync' in sys.modules else 'no qt');"
        "sys.exit(rc)"
    )
    result = _run("-c", probe, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"corral {__version__}", "no qt"]


# The start of every script below: the real entry point runs, and once the fake host's
# models are listed (by then every service has started) ``listed(window)`` is called.
_RUN_PRELUDE = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

app = QApplication(sys.argv[:1])

def check():
    for widget in app.topLevelWidgets():
        model = getattr(widget, "model_model", None)  # None while Corral starts
        if widget.objectName() == "mainWindow" and model is not None and model.rowCount():
            listed(widget)
            return
    QTimer.singleShot(50, check)

QTimer.singleShot(0, check)
from app.main import main
"""


def _app_script(listed: str, run: str) -> str:
    """A script that runs the app: ``listed`` defines ``listed(window)`` (what to do once
    the models are listed; it ends the app), ``run`` calls ``main`` (tests stay on
    loopback: ``--no-mdns``)."""
    return _RUN_PRELUDE + textwrap.dedent(listed) + textwrap.dedent(run)


def _run(*args: str, timeout: float = 45) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in the checkout, offscreen, with no keyring."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _fake_only_settings(tmp_path: Path, fake: FakeOllama) -> Path:
    """A settings file with the fake host alone (the built-in hosts hidden)."""
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "hosts": [{"id": "h-fake", "name": "Fake box", "url": fake.url}],
                "hidden_hosts": ["local", "builtin"],
            }
        ),
        encoding="utf-8",
    )
    return settings


_RUN_APP = _app_script(
    """
    def listed(widget):
        names = sorted(r.name for r in widget.model_model.rows())
        print("models:", ",".join(names), flush=True)
        if sys.argv[2] == "quit":
            app.quit()  # as at the end of a desktop session
        else:
            widget.close()
    """,
    """
    sys.exit(main(["--settings", sys.argv[1], "--no-mdns"]))
    """,
)


@pytest.mark.parametrize("ending", ["close", "quit"])
def test_the_app_runs_lists_models_and_ends_cleanly(
    tmp_path: Path, fake: FakeOllama, ending: str
) -> None:
    settings = _fake_only_settings(tmp_path, fake)
    result = _run("-c", _RUN_APP, str(settings), ending)
    assert result.returncode == 0, result.stderr
    assert f"models: {','.join(sorted(fake.installed))}" in result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert "Unhandled" not in result.stderr, result.stderr


_RUN_APP_CHAT = _app_script(
    """
    def listed(widget):
        print("chat:", widget.chat_panel.status_label.text(), flush=True)
        print("send enabled:", widget.chat_panel.send_button.isEnabled(), flush=True)
        widget.close()
    """,
    """
    sys.exit(main(["--settings", sys.argv[1], "--chat-db", sys.argv[2], "--no-mdns"]))
    """,
)


def test_an_unreadable_chat_history_turns_chat_off_and_is_left_alone(
    tmp_path: Path, fake: FakeOllama
) -> None:
    settings = _fake_only_settings(tmp_path, fake)
    chat_db = tmp_path / "chat.db"
    junk = b"not a database: notes the user keeps here\n" * 20
    chat_db.write_bytes(junk)
    result = _run("-c", _RUN_APP_CHAT, str(settings), str(chat_db))
    assert result.returncode == 0, result.stderr
    assert "chat: Chat is off: the chat history" in result.stdout
    assert "file is not a database" in result.stdout
    assert "send enabled: False" in result.stdout
    assert chat_db.read_bytes() == junk  # nothing the user had there is touched
    assert "Traceback" not in result.stderr, result.stderr


# Says, once the app has ended, which modules of the MCP SDK it imported.
_RUN_APP_MCP = _app_script(
    """
    def listed(widget):
        print("models listed", flush=True)
        widget.close()
    """,
    """
    settings, mcp_config, chat_db = sys.argv[1:4]
    rc = main(
        ["--settings", settings, "--mcp-config", mcp_config, "--chat-db", chat_db, "--no-mdns"]
    )
    sdk = [name for name in ("mcp", "httpx2", "app.core.mcp.session") if name in sys.modules]
    print("sdk imported:", ",".join(sdk) or "none", flush=True)
    sys.exit(rc)
    """,
)


def test_a_start_without_mcp_servers_does_not_import_the_sdk(
    tmp_path: Path, fake: FakeOllama
) -> None:
    settings = _fake_only_settings(tmp_path, fake)
    result = _run(
        "-c",
        _RUN_APP_MCP,
        str(settings),
        str(tmp_path / "mcp.json"),  # not there: no MCP server configured
        str(tmp_path / "chat.db"),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["models listed", "sdk imported: none"], result.stdout
    assert "Traceback" not in result.stderr, result.stderr
