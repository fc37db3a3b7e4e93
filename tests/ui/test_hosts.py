"""The host list: adding, editing and removing hosts, status probes, the banner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from keyring.backends import fail
from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QLineEdit, QMessageBox, QPushButton

from app.core.hosts.registry import HostRegistry
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from app.ui.host_dialog import HostDialog
from app.ui.item_models import FleetModel, ModelTableModel
from app.ui.main_window import NO_HOST_MESSAGE
from tests.fakes.ollama import FakeOllama
from tests.support.memory_keyring import MemoryKeyring
from tests.support.waiting import wait_for
from tests.ui.conftest import WindowOpener
from tests.ui.helpers import host_cell, host_id_for, host_state, model_cell, model_names


def _text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


async def test_add_host_through_dialog_goes_online_with_models(
    open_window: WindowOpener, registry: HostRegistry, fake: FakeOllama, qtbot
) -> None:
    async with open_window(registry) as window:
        window.add_host_button.click()
        dialog = window.findChild(HostDialog, "hostDialog")
        assert dialog is not None and dialog.isVisible()
        assert not dialog.ok_button.isEnabled()  # empty address

        qtbot.keyClicks(dialog.url_edit, fake.url)
        qtbot.keyClicks(dialog.name_edit, "Lab box")
        assert dialog.ok_button.isEnabled()
        dialog.ok_button.click()
        assert not dialog.isVisible()

        host_id = host_id_for(window, fake.url)
        await wait_for(lambda: host_state(window, host_id) == "online")
        assert host_cell(window, host_id, FleetModel.NAME) == "Lab box"
        assert host_cell(window, host_id, FleetModel.VERSION) == "0.33.0"
        assert host_cell(window, host_id, FleetModel.RTT).endswith(" ms")
        assert window.current_host_id() == host_id  # the new host is selected

        await wait_for(lambda: "llama3.2:latest" in model_names(window))
        assert set(model_names(window)) == set(fake.installed)
        assert model_cell(window, "llama3.2:latest", ModelTableModel.SIZE) == "2.0 GB"
        assert model_cell(window, "llama3.2:latest", ModelTableModel.PARAMS) == "3.2B"
        assert model_cell(window, "llama3.2:latest", ModelTableModel.QUANT) == "Q4_K_M"
        assert model_cell(window, "llama3.2:latest", ModelTableModel.LOADED) == "no"
        assert model_cell(window, "llama3.2:latest", ModelTableModel.MEMORY) == "—"
        assert model_cell(window, "llama3.2:latest", ModelTableModel.EXPIRES) == "—"
    assert fake.url in _text_of(registry._store.path)  # saved to the settings file


async def test_host_dialog_rejects_bad_address(
    open_window: WindowOpener, registry: HostRegistry, qtbot
) -> None:
    async with open_window(registry) as window:
        dialog = window.open_add_host_dialog()
        qtbot.keyClicks(dialog.url_edit, "http://box:99999")
        assert not dialog.ok_button.isEnabled()
        assert "port" in dialog.message.text()
        assert "1 to 65535" in dialog.message.text()

        dialog.url_edit.setText("ftp://box")
        assert not dialog.ok_button.isEnabled()
        assert "http://" in dialog.message.text()

        dialog.url_edit.setText("0.0.0.0")
        assert not dialog.ok_button.isEnabled()
        assert "bind address" in dialog.message.text()

        dialog.url_edit.setText("192.168.1.20")
        assert dialog.ok_button.isEnabled()
        assert dialog.message.text() == ""
        dialog.reject()


async def test_duplicate_address_is_refused_in_the_dialog(
    open_window: WindowOpener, registry: HostRegistry, qtbot
) -> None:
    async with open_window(registry) as window:
        dialog = window.open_add_host_dialog()
        qtbot.keyClicks(dialog.url_edit, "127.0.0.1:11434")  # the built-in host's address
        assert dialog.ok_button.isEnabled()
        dialog.ok_button.click()
        assert dialog.isVisible(), "the dialog must stay open"
        assert "already in the list" in dialog.message.text()
        assert len(window.fleet_model.rows()) == 1
        dialog.reject()


async def test_sensitive_header_values_are_masked(
    open_window: WindowOpener, registry: HostRegistry, qtbot
) -> None:
    async with open_window(registry) as window:
        dialog = window.open_add_host_dialog()
        name, value = dialog.header_edits(dialog.add_header("", ""))
        assert value.echoMode() == QLineEdit.EchoMode.Normal
        qtbot.keyClicks(name, "Authorization")
        assert value.echoMode() == QLineEdit.EchoMode.Password
        name.setText("X-Trace")
        assert value.echoMode() == QLineEdit.EchoMode.Normal
        dialog.reject()


async def test_headers_are_saved_and_secrets_go_to_the_keyring(
    open_window: WindowOpener,
    registry: HostRegistry,
    fake: FakeOllama,
    memory_keyring: MemoryKeyring,
    qtbot,
) -> None:
    async with open_window(registry) as window:
        dialog = window.open_add_host_dialog()
        qtbot.keyClicks(dialog.url_edit, fake.url)
        name, value = dialog.header_edits(dialog.add_header("", ""))
        name.setText("Authorization")
        value.setText("Bearer s3cret")
        dialog.ok_button.click()
        host_id = host_id_for(window, fake.url)
        assert registry.get(host_id).headers == (("Authorization", "Bearer s3cret"),)
        assert "Bearer s3cret" in memory_keyring.store.values()
        await wait_for(lambda: host_state(window, host_id) == "online")

        edit = window.open_edit_host_dialog()
        assert edit is not None
        assert edit.url_edit.text() == fake.url
        _, shown = edit.header_edits(0)
        assert shown.text() == "Bearer s3cret"
        assert shown.echoMode() == QLineEdit.EchoMode.Password
        edit.name_edit.setText("Renamed")
        edit.ok_button.click()
        assert host_cell(window, host_id, FleetModel.NAME) == "Renamed"
        await wait_for(lambda: host_state(window, host_id) == "online")
    assert "s3cret" not in _text_of(registry._store.path)


async def test_no_reachable_host_shows_banner_with_add_host(
    open_window: WindowOpener, registry: HostRegistry
) -> None:
    async with open_window(registry) as window:
        await wait_for(lambda: NO_HOST_MESSAGE in window.banner.text())
        assert window.banner.add_host_button.isVisible()
        assert host_state(window, "local") == "offline"
        assert not window.model_view.isEnabled()
        assert "offline" in window.models_status.text()
        assert not window.pull_button.isEnabled()
        window.banner.add_host_button.click()
        dialog = window.findChild(HostDialog, "hostDialog")
        assert dialog is not None and dialog.isVisible()
        dialog.reject()


async def test_banner_goes_when_a_host_comes_online(
    open_window: WindowOpener, registry: HostRegistry, fake: FakeOllama
) -> None:
    async with open_window(registry) as window:
        await wait_for(lambda: NO_HOST_MESSAGE in window.banner.text())
        config = registry.add(fake.url, "Late box")
        await wait_for(lambda: host_state(window, config.id) == "online")
        assert NO_HOST_MESSAGE not in window.banner.text()


async def test_host_going_away_turns_offline_with_a_clear_error(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama
) -> None:
    async with open_window(registry_with_fake) as window:
        host_id = host_id_for(window, fake.url)
        await wait_for(lambda: host_state(window, host_id) == "online")
        await wait_for(lambda: model_names(window))

        fake.stop()
        await wait_for(lambda: host_state(window, host_id) == "offline")
        await wait_for(lambda: "Fake box" in window.banner.text())
        assert "Cannot connect to Fake box" in window.banner.text()
        assert "Cannot connect to Fake box" in window.statusBar().currentMessage()
        assert window.banner.level == "error"
        await wait_for(lambda: not window.model_view.isEnabled())
        assert model_names(window) == []
        await wait_for(lambda: "Fake box is offline" in window.models_status.text())
        assert not window.pull_button.isEnabled()
        await wait_for(lambda: NO_HOST_MESSAGE in window.banner.text())  # the only host


async def test_status_dot_follows_the_host_and_the_error_goes_when_it_is_back(
    open_window: WindowOpener,
    registry: HostRegistry,
    fakes: Callable[..., FakeOllama],
) -> None:
    first = fakes("127.0.0.5")
    registry.remove("local")
    config = registry.add(first.url, "Flaky box")
    async with open_window(registry) as window:

        def dot() -> int:
            icon = window.fleet_model.index_of(config.id, FleetModel.NAME).data(
                Qt.ItemDataRole.DecorationRole
            )
            assert isinstance(icon, QIcon) and not icon.isNull()
            return icon.cacheKey()

        unknown = dot()
        await wait_for(lambda: host_state(window, config.id) == "online")
        online = dot()
        first.stop()
        await wait_for(lambda: host_state(window, config.id) == "offline")
        offline = dot()
        assert len({unknown, online, offline}) == 3
        assert "Cannot connect to Flaky box" in window.banner.text()

        fakes("127.0.0.5", port=first.port)  # the same address answers again
        await wait_for(lambda: host_state(window, config.id) == "online")
        assert dot() == online
        assert "Cannot connect" not in window.banner.text()
        await wait_for(lambda: model_names(window))


async def test_a_hung_host_does_not_delay_the_others(
    open_window: WindowOpener, registry: HostRegistry, fakes: Callable[..., FakeOllama]
) -> None:
    hung = fakes("127.0.0.3")
    hung.faults.hang = True
    good = fakes("127.0.0.4")
    registry.remove("local")
    slow = registry.add(hung.url, "Hung")
    fast = registry.add(good.url, "Good")
    async with open_window(registry) as window:
        window.select_host(fast.id)
        await wait_for(lambda: host_state(window, fast.id) == "online")
        await wait_for(lambda: model_names(window))
        assert host_state(window, slow.id) == "unknown"
        # the window still reacts while the probe of the hung host runs
        window.select_host(slow.id)
        assert "Checking Hung" in window.models_status.text()
        assert model_names(window) == []


async def test_remove_host_asks_first(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama
) -> None:
    async with open_window(registry_with_fake) as window:
        host_id = host_id_for(window, fake.url)
        window.select_host(host_id)

        window.remove_host_button.click()
        box = window.findChild(QMessageBox, "confirmRemoveHost")
        assert box is not None and box.isVisible()
        assert "Fake box" in box.text()
        box.button(QMessageBox.StandardButton.Cancel).click()
        assert window.fleet_model.get(host_id) is not None

        window.remove_host_button.click()
        await wait_for(lambda: window.findChild(QMessageBox, "confirmRemoveHost"))
        box = window.findChild(QMessageBox, "confirmRemoveHost")
        box.findChild(QPushButton, "confirmRemoveHostAccept").click()
        await wait_for(lambda: window.fleet_model.get(host_id) is None)
        assert host_id not in [h.id for h in registry_with_fake.hosts()]


@pytest.fixture
def broken_settings(settings_path: Path) -> Path:
    settings_path.write_text("{ this is not json", encoding="utf-8")
    return settings_path


async def test_settings_problems_are_shown_at_start(
    open_window: WindowOpener, broken_settings: Path, memory_keyring: MemoryKeyring
) -> None:
    registry = HostRegistry(SettingsStore(broken_settings), SecretStore(memory_keyring), env={})
    assert registry.problems
    async with open_window(registry) as window:
        text = window.banner.text()
        assert "settings file could not be used" in text
        assert "not valid JSON" in text
        assert window.banner.level == "warning"


async def test_a_secret_without_keyring_is_used_and_the_user_told(
    open_window: WindowOpener, settings_path: Path, fake: FakeOllama, qtbot
) -> None:
    registry = HostRegistry(
        SettingsStore(settings_path), SecretStore(backend=fail.Keyring()), env={}
    )
    async with open_window(registry) as window:
        dialog = window.open_add_host_dialog()
        qtbot.keyClicks(dialog.url_edit, fake.url)
        name, value = dialog.header_edits(dialog.add_header("", ""))
        name.setText("Authorization")
        value.setText("Bearer t0ken")
        dialog.ok_button.click()
        assert not dialog.isVisible()
        assert "No OS keyring is available" in window.banner.text()
        assert "enter it again next time" in window.banner.text()
        host_id = host_id_for(window, fake.url)
        await wait_for(lambda: host_state(window, host_id) == "online")
