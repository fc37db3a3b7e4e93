"""A start of the whole app with no MCP server configured does not import the MCP SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.fakes.ollama import FakeOllama

ROOT = Path(__file__).resolve().parents[2]

# Runs the real entry point; closes the window once the fake host's models are listed (by
# then every service has started), and says which SDK modules were imported at the end.
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
                print("models listed", flush=True)
                widget.close()
                return
        QTimer.singleShot(50, check)

    QTimer.singleShot(0, check)
    from app.main import main
    settings, mcp_config, chat_db = sys.argv[1:4]
    rc = main(
        ["--settings", settings, "--mcp-config", mcp_config, "--chat-db", chat_db, "--no-mdns"]
    )
    sdk = [name for name in ("mcp", "httpx2", "app.core.mcp.session") if name in sys.modules]
    print("sdk imported:", ",".join(sdk) or "none", flush=True)
    sys.exit(rc)
    """
)


def test_a_start_without_mcp_servers_does_not_import_the_sdk(
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
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _RUN_APP,
            str(settings),
            str(tmp_path / "mcp.json"),  # not there: no MCP server configured
            str(tmp_path / "chat.db"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["models listed", "sdk imported: none"], result.stdout
    assert "Traceback" not in result.stderr, result.stderr
