"""The window shell: layout kept across runs, reset layout, status summary, About,
shortcuts, themes, and ``--self-test`` as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QComboBox, QPlainTextEdit

from app.core.hosts.registry import HostRegistry
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from app.self_test import finish
from app.ui.theme import apply_theme, is_dark
from tests.fakes.ollama import FakeOllama
from tests.support.memory_keyring import MemoryKeyring
from tests.support.waiting import wait_for
from tests.ui.conftest import OFFSCREEN_NOISE, WindowOpener

ROOT = Path(__file__).resolve().parents[2]


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _registry(path: Path, keyring: MemoryKeyring, fake: FakeOllama) -> HostRegistry:
    reg = HostRegistry(SettingsStore(path), SecretStore(keyring), env={})
    if not any(h.url == fake.url for h in reg.hosts()):
        reg.remove("local")
        reg.add(fake.url, "Fake box")
    return reg


async def test_the_layout_is_kept_across_two_runs_and_reset_brings_back_the_default(
    open_window: WindowOpener,
    settings_path: Path,
    memory_keyring: MemoryKeyring,
    fake: FakeOllama,
    tmp_path: Path,
) -> None:
    first = _registry(settings_path, memory_keyring, fake)
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)  # as in the app: closing must not stop the loop
    try:
        await _change_layout_and_close(open_window, first, tmp_path)
    finally:
        app.setQuitOnLastWindowClosed(True)
    saved = _read_json(settings_path)
    assert saved["window_state"] and saved["window_geometry"]

    second = _registry(settings_path, memory_keyring, fake)
    async with open_window(second, chat_db=tmp_path / "chat.db") as again:
        assert again.dockWidgetArea(again.chat_dock) == Qt.DockWidgetArea.LeftDockWidgetArea
        assert (again.width(), again.height()) == (820, 610)

        again.reset_layout_action.trigger()
        assert again.dockWidgetArea(again.chat_dock) == Qt.DockWidgetArea.RightDockWidgetArea
        assert (again.width(), again.height()) != (820, 610)


async def _change_layout_and_close(
    open_window: WindowOpener, reg: HostRegistry, tmp_path: Path
) -> None:
    async with open_window(reg, chat_db=tmp_path / "chat.db") as window:
        assert window.dockWidgetArea(window.chat_dock) == Qt.DockWidgetArea.RightDockWidgetArea
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, window.chat_dock)
        window.chat_dock.setFloating(False)
        window.resize(820, 610)  # inside the offscreen screen (800 x 800, width at least 820)
        await wait_for(lambda: window.size().height() == 610)
        window.close()  # the layout is saved when the window closes


async def test_a_broken_saved_layout_is_ignored(
    open_window: WindowOpener,
    settings_path: Path,
    memory_keyring: MemoryKeyring,
    fake: FakeOllama,
) -> None:
    reg = _registry(settings_path, memory_keyring, fake)
    reg.settings.window_state = "bm90IGEgbGF5b3V0"  # base64 of "not a layout"
    reg.settings.window_geometry = "%%%"
    async with open_window(reg) as window:
        assert window.dockWidgetArea(window.hardware_dock) == (
            Qt.DockWidgetArea.BottomDockWidgetArea
        )
        assert window.isVisible()


async def test_the_status_bar_sums_up_the_fleet(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama
) -> None:
    fake.load("llama3.2:latest", keep_alive=-1)
    async with open_window(registry_with_fake) as window:
        await wait_for(
            lambda: window.fleet_summary.text() == "1 host: 1 online · 1 model loaded",
            message="the summary of an online host with one model loaded",
        )
        fake.stop()
        await wait_for(
            lambda: window.fleet_summary.text() == "1 host: 1 offline · 0 models loaded",
            timeout=10,
        )


async def test_about_lists_versions_and_copies_them(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama
) -> None:
    async with open_window(registry_with_fake) as window:
        await wait_for(lambda: window.health.status(window.fleet_model.rows()[0].config.id).version)
        window.about_action.trigger()
        dialogs = [w for w in QApplication.topLevelWidgets() if w.objectName() == "aboutDialog"]
        assert len(dialogs) == 1
        dialog: Any = dialogs[0]
        assert dialog.table.rowCount() == 1
        assert dialog.table.item(0, 0).text() == "Fake box"
        assert dialog.table.item(0, 3).text() == fake.version
        dialog.copy_button.click()
        text = QGuiApplication.clipboard().text()
        assert text.startswith("Corral ")
        assert "Qt " in text and "Python " in text
        assert f"Fake box (ollama, {fake.url}): {fake.version}" in text
        dialog.close()


async def test_the_shortcut_list_shows_the_main_actions(
    open_window: WindowOpener, registry_with_fake: HostRegistry
) -> None:
    async with open_window(registry_with_fake) as window:
        dialog = window.show_shortcuts()
        rows = dict(dialog.rows)
        for name in ("Refresh now", "Quit", "Settings", "Add host", "Pull a model", "Chat"):
            assert name in rows, rows
        assert rows["Settings"] == "Ctrl+,"
        assert rows["Keyboard shortcuts"] == "Ctrl+/"
        dialog.close()


def test_themes_switch_the_palette_and_system_restores_it(qapp: QApplication) -> None:
    before = qapp.palette()
    try:
        assert apply_theme(qapp, "dark") == "dark"
        assert is_dark(qapp.palette())
        assert apply_theme(qapp, "light") == "light"
        assert not is_dark(qapp.palette())
        apply_theme(qapp, "system")
        assert qapp.palette() == before
    finally:
        apply_theme(qapp, "system")


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    env["PYTHONPATH"] = str(ROOT)
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env[var] = str(home / var.lower())
    env.pop("QT_QPA_PLATFORM", None)  # the self-test chooses offscreen itself
    return env


def test_self_test_runs_the_whole_app_and_leaves_the_settings_alone(
    tmp_path: Path, fake: FakeOllama
) -> None:
    settings = tmp_path / "settings.json"
    text = json.dumps(
        {
            "schema_version": 1,
            "hosts": [{"id": "h-fake", "name": "Fake box", "url": fake.url}],
            "hidden_hosts": ["local"],
        }
    )
    settings.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "app", "--self-test", "--settings", str(settings)],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "self-test: passed"
    for panel in ("Hardware", "Latency", "Chat", "MCP servers"):
        assert any(line.startswith(f"self-test: ok: panel {panel} (") for line in lines), lines
    assert f"self-test: host Fake box ({fake.url}): online" in lines
    assert settings.read_text(encoding="utf-8") == text  # a copy was used
    assert not (tmp_path / "chat.db").exists()


def test_a_failed_self_test_says_what_failed_and_exits_1(capsys: Any, qapp: QApplication) -> None:
    import asyncio

    async def failed() -> list[str]:
        return ["the Chat panel did not show"]

    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(failed())
        loop.run_until_complete(task)
    finally:
        loop.close()
    assert finish(task) == 1
    assert "self-test: FAILED: the Chat panel did not show" in capsys.readouterr().out


@pytest.mark.qt_log_ignore(OFFSCREEN_NOISE, "This plugin does not support raise")
async def test_settings_open_from_the_window_and_the_theme_applies_at_once(
    open_window: WindowOpener, registry_with_fake: HostRegistry, settings_path: Path
) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    try:
        async with open_window(registry_with_fake) as window:
            window.settings_action.trigger()
            dialog = window.settings_dialog
            assert dialog is not None and dialog.isVisible()
            window.settings_action.trigger()  # a second time: the same dialog, not another
            assert window.settings_dialog is dialog
            assert not is_dark(app.palette())
            dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData("dark"))
            dialog.ok_button.click()
            await wait_for(lambda: window.settings_dialog is None)
            assert is_dark(app.palette())
            saved = _read_json(settings_path)
            assert saved["theme"] == "dark"
    finally:
        apply_theme(app, "system")


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.qt_log_ignore(OFFSCREEN_NOISE, "This plugin does not support raise")
async def test_the_log_dock_shows_what_corral_logs_and_settings_change_the_level(
    open_window: WindowOpener, registry_with_fake: HostRegistry, tmp_path: Path
) -> None:
    import logging

    from app.core.logs import setup_logging

    setup = setup_logging("INFO", tmp_path / "logs", stderr=False)
    async with open_window(registry_with_fake, log_setup=setup) as window:
        assert window.log_dock is not None and window.log_panel is not None
        window.log_dock.show()
        window.log_dock.raise_()
        view = window.log_panel.findChild(QPlainTextEdit, "logView")
        assert view is not None
        logging.getLogger("corral.test").info("a line for the log dock")
        await wait_for(lambda: "a line for the log dock" in view.toPlainText())
        logging.getLogger("corral.test").debug("a debug line")

        dialog = window.open_settings()
        combo = dialog.findChild(QComboBox, "log_levelEdit")
        assert combo is not None
        combo.setCurrentIndex(combo.findData("DEBUG"))
        dialog.ok_button.click()
        await wait_for(lambda: window.settings_dialog is None)
        logging.getLogger("corral.test").debug("a second debug line")
        await wait_for(lambda: "a second debug line" in view.toPlainText())
        assert "a debug line" not in view.toPlainText()  # logged while the level was INFO
        assert "a second debug line" in (tmp_path / "logs" / "corral.log").read_text("utf-8")
