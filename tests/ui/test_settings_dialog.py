"""The Settings dialog: changes apply at once, bad input and unwritable files change nothing."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from app.core.discovery.service import DiscoveryService
from app.core.hosts.engine import ENGINE_ID, EngineHost, EngineSettings
from app.core.hosts.health import HealthMonitor, HealthPolicy
from app.core.hosts.http import HttpHost
from app.core.hosts.registry import HostRegistry
from app.core.secrets import SecretStore
from app.core.settings import Settings, SettingsStore
from app.ui.main_window import MainWindow
from app.ui.settings_apply import SettingsApplier
from app.ui.settings_dialog import DataPaths, SettingsDialog
from tests.fakes.ollama import FakeOllama
from tests.support.memory_keyring import MemoryKeyring
from tests.support.waiting import wait_for
from tests.ui.conftest import WindowOpener, engine_registry_at
from tests.ui.fake_telemetry import FakeTelemetry, sample
from tests.ui.helpers import host_state

#: The monitor of these tests starts with the default five-second interval.
SLOW = HealthPolicy(interval_s=5.0, jitter=0.0, backoff_max_s=5.0)


class Calls:
    """What the window's callbacks were called with."""

    def __init__(self) -> None:
        self.themes: list[str] = []
        self.tray: list[tuple[bool, bool]] = []
        self.levels: list[str] = []
        self.applied: list[tuple[Settings, frozenset[str]]] = []
        self.opened: list[Path] = []

    def open_folder(self, folder: Path) -> bool:
        self.opened.append(folder)
        return True


def probes(fake: FakeOllama) -> int:
    """Health probes the fake has answered (each asks for the version)."""
    return sum(1 for _, path, _ in fake.requests if path == "/api/version")


def paths_in(tmp_path: Path, settings_path: Path) -> DataPaths:
    return DataPaths(settings_path, tmp_path / "chat.db", tmp_path / "mcp.json", tmp_path / "logs")


def open_settings(
    window: MainWindow, calls: Calls, tmp_path: Path, settings_path: Path
) -> SettingsDialog:
    """The dialog on the window, wired as the window wires it."""

    def graph_window(seconds: float) -> None:
        window.hardware_panel.set_window(seconds)
        window.latency_panel.set_window(seconds)

    def sample_interval(seconds: float) -> None:
        window.hardware_panel.set_interval(seconds)
        window.latency_panel.set_interval(seconds)

    applier = SettingsApplier(
        registry=window.registry,
        health=window.health,
        telemetry=window.telemetry,
        discovery=window.discovery,
        on_theme=calls.themes.append,
        on_tray=lambda close, notify: calls.tray.append((close, notify)),
        on_log_level=calls.levels.append,
        on_graph_window=graph_window,
        on_refresh_interval=lambda s: window.timer.setInterval(max(250, int(s * 1000))),
        on_telemetry_interval=sample_interval,
    )
    dialog = SettingsDialog(
        window.registry.settings,
        window.registry.save_settings,
        paths=paths_in(tmp_path, settings_path),
        applier=applier,
        open_folder=calls.open_folder,
        parent=window,
    )
    dialog.applied.connect(lambda s, changed: calls.applied.append((s, changed)))
    dialog.show()
    return dialog


def file_bytes(path: Path) -> bytes:
    return path.read_bytes()


def on_disk(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


async def test_a_shorter_refresh_interval_takes_effect_without_a_restart(
    open_window: WindowOpener,
    registry_with_fake: HostRegistry,
    fake: FakeOllama,
    tmp_path: Path,
    settings_path: Path,
) -> None:
    registry = registry_with_fake
    registry.settings.refresh_interval_s = 5.0
    host_id = registry.hosts()[0].id
    calls = Calls()
    async with open_window(registry, policy=SLOW) as window:
        await wait_for(lambda: host_state(window, host_id) == "online")
        dialog = open_settings(window, calls, tmp_path, settings_path)
        spin = dialog.spins["refresh_interval_s"]
        assert spin.value() == 5.0
        spin.setValue(0.3)
        assert dialog.ok_button.isEnabled()
        before = probes(fake)
        dialog.ok_button.click()
        assert not dialog.isVisible()
        # at the old interval at most one probe would come in these 4 s
        await wait_for(lambda: probes(fake) >= before + 5, timeout=4.0)
        assert window.health.policy.interval_s == 0.3
        assert window.timer.interval() == 300
        assert on_disk(settings_path)["refresh_interval_s"] == 0.3
        assert [changed for _, changed in calls.applied] == [frozenset({"refresh_interval_s"})]


async def test_the_graph_window_and_sample_interval_change_the_graphs(
    open_window: WindowOpener,
    registry_with_fake: HostRegistry,
    tmp_path: Path,
    settings_path: Path,
) -> None:
    registry = registry_with_fake
    host_id = registry.hosts()[0].id
    tel = FakeTelemetry()
    now = time.time()
    for i in range(120):  # 20 minutes, one sample every 10 s
        tel.push(host_id, sample(now - 1190 + 10 * i, cpu=float(i)))
    calls = Calls()
    async with open_window(registry, telemetry=tel) as window:
        panel = window.hardware_panel
        panel.set_interval(0.1)

        def span() -> float:
            low, high = panel.x_range("cpu")
            return high - low

        await wait_for(lambda: panel.plots and span() == 300.0)
        dialog = open_settings(window, calls, tmp_path, settings_path)
        dialog.spins["graph_window_s"].setValue(120)
        dialog.apply_button.click()
        await wait_for(lambda: abs(span() - 120.0) < 1e-6)
        assert dialog.isVisible()  # Apply leaves the dialog open
        assert "applied" in dialog.message.text()
        assert window.latency_panel.window_s == 120.0
        assert tel.windows == [900.0]  # the history stays long enough for the 15 min view
        assert on_disk(settings_path)["graph_window_s"] == 120.0
        assert not dialog.apply_button.isEnabled()  # nothing left to apply

        dialog.spins["telemetry_interval_s"].setValue(2.0)
        dialog.ok_button.click()
        assert tel.intervals == [2.0]
        assert panel.timer.interval() == 2000
        assert on_disk(settings_path)["telemetry_interval_s"] == 2.0


async def test_appearance_tray_and_log_level_reach_the_window(
    open_window: WindowOpener,
    registry_with_fake: HostRegistry,
    tmp_path: Path,
    settings_path: Path,
) -> None:
    calls = Calls()
    async with open_window(registry_with_fake) as window:
        dialog = open_settings(window, calls, tmp_path, settings_path)
        dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findText("Dark"))
        dialog.tray_check.setChecked(True)
        dialog.log_level_combo.setCurrentIndex(dialog.log_level_combo.findData("DEBUG"))
        assert calls.themes == []  # nothing before OK
        dialog.ok_button.click()
        assert calls.themes == ["dark"]
        assert calls.tray == [(True, True)]
        assert calls.levels == ["DEBUG"]
        settings = registry_with_fake.settings
        assert (settings.theme, settings.close_to_tray, settings.log_level) == (
            "dark",
            True,
            "DEBUG",
        )
        saved = on_disk(settings_path)
        assert (saved["theme"], saved["close_to_tray"], saved["log_level"]) == (
            "dark",
            True,
            "DEBUG",
        )
        assert saved["hosts"][0]["name"] == "Fake box"  # the rest of the file is kept


async def test_a_new_default_keep_alive_is_used_by_the_next_load(
    open_window: WindowOpener,
    registry_with_fake: HostRegistry,
    fake: FakeOllama,
    tmp_path: Path,
    settings_path: Path,
) -> None:
    host_id = registry_with_fake.hosts()[0].id
    calls = Calls()
    async with open_window(registry_with_fake) as window:
        await wait_for(lambda: host_state(window, host_id) == "online")
        dialog = open_settings(window, calls, tmp_path, settings_path)
        dialog.keep_alive_edit.setText("1h")
        dialog.spins["request_timeout_s"].setValue(12.0)
        dialog.ok_button.click()
        host = registry_with_fake.host(host_id)
        assert isinstance(host, HttpHost) and host.timeouts.request == 12.0

        await wait_for(lambda: window.select_model("llama3.2:latest"))
        await wait_for(lambda: window.load_button.isEnabled())
        window.load_button.click()
        await wait_for(
            lambda: (
                [
                    body.get("keep_alive")
                    for _, path, body in fake.requests
                    if path in ("/api/generate", "/api/embed") and body
                ]
                == ["1h"]
            )
        )


class Addr(NamedTuple):
    """The shape of a psutil ``snicaddr``."""

    family: int
    address: str
    netmask: str | None


async def test_scan_ports_and_network_size_apply_to_the_next_scan(
    open_window: WindowOpener,
    registry_with_fake: HostRegistry,
    tmp_path: Path,
    settings_path: Path,
) -> None:
    discovery = DiscoveryService(
        registry_with_fake,
        ports=registry_with_fake.settings.scan_ports,
        local_ports=(),
        interfaces={"eth0": [Addr(socket.AF_INET, "10.1.2.3", "255.255.0.0")]},
    )
    calls = Calls()
    async with open_window(registry_with_fake, discovery=discovery) as window:
        assert [str(n) for n in discovery.networks()] == ["10.1.0.0/22"]
        dialog = open_settings(window, calls, tmp_path, settings_path)
        assert dialog.ports_edit.text() == "11434, 1234, 8080, 8000"
        dialog.ports_edit.setText("11434 9000, 9000")
        dialog.prefix_spin.setValue(24)
        assert "A /24 has 256 addresses" in dialog.prefix_note.text()
        dialog.ok_button.click()
        assert discovery.ports == (11434, 9000)
        assert discovery.local_ports == ()  # the ports given for this machine stay
        assert [str(n) for n in discovery.networks()] == ["10.1.2.0/24"]
        saved = on_disk(settings_path)
        assert (saved["scan_ports"], saved["scan_max_prefix"]) == ([11434, 9000], 24)


def test_scan_ports_also_move_the_ports_checked_on_this_computer(
    registry: HostRegistry,
) -> None:
    discovery = DiscoveryService(registry, ports=[11434])
    applier = SettingsApplier(discovery=discovery, on_log_level=None)
    settings = Settings(scan_ports=[8080, 1234], scan_max_prefix=20)
    assert applier.apply(settings, {"scan_ports", "scan_max_prefix"}) == []
    assert (discovery.ports, discovery.local_ports, discovery.max_prefix) == (
        (8080, 1234),
        (8080, 1234),
        20,
    )


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("scan_ports", "11434, 70000", "70000 is not a port number from 1 to 65535."),
        ("scan_ports", "11434, web", "“web” is not a port number from 1 to 65535."),
        ("scan_ports", " ", "Enter at least one port"),
        ("default_keep_alive", "soon", "“soon” is not a duration Ollama understands"),
        ("default_keep_alive", "", "Enter how long models stay loaded"),
        ("chat_db_path", "chats/chat.db", "Enter a full path"),
    ],
)
def test_bad_input_is_shown_and_nothing_is_saved(
    qtbot: Any,
    registry: HostRegistry,
    settings_path: Path,
    tmp_path: Path,
    field: str,
    text: str,
    message: str,
) -> None:
    registry.settings.theme = "light"
    assert registry.save_settings() is None
    before = settings_path.read_bytes()
    calls = Calls()
    dialog = SettingsDialog(
        registry.settings,
        registry.save_settings,
        paths=paths_in(tmp_path, settings_path),
        applier=SettingsApplier(on_theme=calls.themes.append, on_log_level=None),
    )
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.applied.connect(lambda s, changed: calls.applied.append((s, changed)))
    dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData("dark"))  # a good change
    edit = {
        "scan_ports": dialog.ports_edit,
        "default_keep_alive": dialog.keep_alive_edit,
        "chat_db_path": dialog.chat_path_edit,
    }[field]
    edit.setText(text)
    note = dialog.field_messages[field]
    assert not note.isHidden() and message in note.text()
    assert not dialog.ok_button.isEnabled() and not dialog.apply_button.isEnabled()
    assert "Nothing can be applied until these are fixed" in dialog.message.text()
    assert "Nothing can be applied" in dialog.ok_button.toolTip()
    dialog.accept()  # Enter pressed anyway: nothing happens
    assert dialog.isVisible()
    assert settings_path.read_bytes() == before
    assert registry.settings.theme == "light"
    assert calls.themes == [] and calls.applied == []

    edit.setText({"scan_ports": "11434", "default_keep_alive": "10m", "chat_db_path": ""}[field])
    assert note.isHidden()
    assert dialog.ok_button.isEnabled()
    dialog.ok_button.click()
    assert not dialog.isVisible()
    assert calls.themes == ["dark"]


def test_cancel_changes_nothing(
    qtbot: Any, registry: HostRegistry, settings_path: Path, tmp_path: Path
) -> None:
    assert registry.save_settings() is None
    before = settings_path.read_bytes()
    health = HealthMonitor(registry, SLOW)
    calls = Calls()
    dialog = SettingsDialog(
        registry.settings,
        registry.save_settings,
        paths=paths_in(tmp_path, settings_path),
        applier=SettingsApplier(health=health, on_theme=calls.themes.append, on_log_level=None),
    )
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.applied.connect(lambda s, changed: calls.applied.append((s, changed)))
    dialog.spins["refresh_interval_s"].setValue(0.5)
    dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData("dark"))
    dialog.ports_edit.setText("1, 2, 3")
    dialog.cancel_button.click()
    assert not dialog.isVisible()
    assert settings_path.read_bytes() == before
    assert registry.settings.refresh_interval_s == 0.3  # as the fixture set it
    assert registry.settings.theme == "system"
    assert health.policy == SLOW
    assert calls.themes == [] and calls.applied == []


async def test_restore_defaults_fills_in_defaults_and_applies_them_only_on_ok(
    open_window: WindowOpener,
    registry_with_fake: HostRegistry,
    tmp_path: Path,
    settings_path: Path,
) -> None:
    registry = registry_with_fake
    registry.settings.scan_ports = [9999]
    registry.settings.theme = "dark"
    registry.settings.graph_window_s = 900.0
    registry.settings.default_keep_alive = "1h"
    assert registry.save_settings() is None
    before = file_bytes(settings_path)
    calls = Calls()
    async with open_window(registry) as window:
        dialog = open_settings(window, calls, tmp_path, settings_path)
        assert dialog.theme_combo.currentData() == "dark"
        dialog.defaults_button.click()
        assert dialog.ports_edit.text() == "11434, 1234, 8080, 8000"
        assert dialog.theme_combo.currentData() == "system"
        assert dialog.spins["graph_window_s"].value() == 300.0
        assert dialog.keep_alive_edit.text() == "5m"
        assert dialog.spins["refresh_interval_s"].value() == 5.0
        assert "press OK or Apply" in dialog.message.text()
        assert file_bytes(settings_path) == before  # filled in, not applied
        assert registry.settings.theme == "dark" and calls.themes == []

        dialog.ok_button.click()
        assert not dialog.isVisible()
        assert calls.themes == ["system"]
        assert window.hardware_panel.window_s == 300.0
        saved = on_disk(settings_path)
        assert saved["scan_ports"] == [11434, 1234, 8080, 8000]
        assert (saved["theme"], saved["graph_window_s"], saved["default_keep_alive"]) == (
            "system",
            300.0,
            "5m",
        )
        assert saved["hosts"][0]["name"] == "Fake box"  # hosts are not settings to restore


def test_an_unwritable_settings_file_keeps_the_dialog_open(
    qtbot: Any,
    memory_keyring: MemoryKeyring,
    settings_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings_path.write_text("{precious but broken")

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patch:  # the broken file cannot be moved aside
        patch.setattr(os, "rename", refuse)
        store = SettingsStore(settings_path)
        registry = HostRegistry(store, SecretStore(memory_keyring), env={})
    assert store.read_only
    calls = Calls()
    dialog = SettingsDialog(
        registry.settings,
        registry.save_settings,
        paths=paths_in(tmp_path, settings_path),
        applier=SettingsApplier(on_theme=calls.themes.append, on_log_level=None),
    )
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData("dark"))
    dialog.ok_button.click()
    assert dialog.isVisible()
    assert "Settings were not saved" in dialog.message.text()
    assert str(settings_path) in dialog.message.text()
    assert registry.settings.theme == "system"  # nothing changed in the running app
    assert calls.themes == []
    assert settings_path.read_text() == "{precious but broken"
    assert dialog.ok_button.isEnabled()  # the user may fix the file and try again


def test_the_data_tab_shows_the_locations_and_opens_their_folders(
    qtbot: Any, registry: HostRegistry, settings_path: Path, tmp_path: Path
) -> None:
    assert registry.save_settings() is None
    calls = Calls()
    paths = paths_in(tmp_path, settings_path)
    dialog = SettingsDialog(
        registry.settings,
        registry.save_settings,
        paths=paths,
        open_folder=calls.open_folder,
    )
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.applied.connect(lambda s, changed: calls.applied.append((s, changed)))
    assert dialog.path_edits["settings"].text() == str(settings_path)
    assert dialog.path_edits["chat"].text() == str(tmp_path / "chat.db")
    assert dialog.path_edits["mcp"].text() == str(tmp_path / "mcp.json")
    assert dialog.path_edits["logs"].text() == str(tmp_path / "logs")
    assert all(edit.isReadOnly() for edit in dialog.path_edits.values())

    dialog.open_buttons["settings"].click()
    assert calls.opened == [settings_path.parent]
    dialog.open_buttons["logs"].click()  # not made yet: said so, nothing opened
    assert calls.opened == [settings_path.parent]
    assert "does not exist yet" in dialog.message.text()

    new_place = tmp_path / "elsewhere" / "chat.db"
    dialog.chat_path_edit.setText(str(new_place))
    dialog.apply_button.click()
    assert "takes effect at the next start" in dialog.message.text()
    assert calls.applied[-1][1] == frozenset({"chat_db_path"})
    assert registry.settings.chat_path() == new_place
    assert dialog.path_edits["chat"].text() == str(tmp_path / "chat.db")  # still in use
    assert on_disk(settings_path)["chat_db_path"] == str(new_place)


def test_a_value_from_the_file_outside_the_offered_range_is_kept(
    qtbot: Any, registry: HostRegistry, settings_path: Path, tmp_path: Path
) -> None:
    registry.settings.refresh_interval_s = 0.125  # finer than the field shows
    registry.settings.backoff_max_s = 7200.0  # longer than it offers
    dialog = SettingsDialog(
        registry.settings, registry.save_settings, paths=paths_in(tmp_path, settings_path)
    )
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.spins["backoff_max_s"].value() == 7200.0
    assert dialog.changes() == frozenset()
    assert not dialog.apply_button.isEnabled()


async def test_the_engine_settings_are_used_from_its_next_load(
    open_window: WindowOpener, settings_path: Path, tmp_path: Path
) -> None:
    registry = engine_registry_at(settings_path, tmp_path / "models")
    calls = Calls()
    async with open_window(registry) as window:
        dialog = open_settings(window, calls, tmp_path, settings_path)
        spins = dialog.engine_spins
        # the automatic values are said in words, not as magic numbers
        assert spins["engine_gpu_layers"].text() == "as many as fit"
        assert spins["engine_threads"].text() == "one per core"
        assert spins["engine_context"].text() == "4096 tokens"
        assert dialog.path_edits["models"].text() == str(tmp_path / "models")
        dialog.open_buttons["models"].click()  # not made yet: said, nothing opened
        assert calls.opened == [] and "does not exist yet" in dialog.message.text()
        (tmp_path / "models").mkdir()
        dialog.open_buttons["models"].click()
        assert calls.opened == [tmp_path / "models"]

        spins["engine_context"].setValue(8192)
        spins["engine_threads"].setValue(2)
        spins["engine_gpu_layers"].setValue(0)
        dialog.spins["load_timeout_s"].setValue(900.0)  # big models on slow disks
        dialog.ok_button.click()

        host = registry.host(ENGINE_ID)
        assert isinstance(host, EngineHost)
        assert host.settings == EngineSettings(ctx=8192, threads=2, gpu_layers=0)
        assert host.timeouts.load == 900.0 and host.process.load_timeout == 900.0
        saved = on_disk(settings_path)
        assert (saved["engine_context"], saved["engine_threads"], saved["engine_gpu_layers"]) == (
            8192,
            2,
            0,
        )
        assert calls.applied[-1][1] == {
            "engine_context",
            "engine_threads",
            "engine_gpu_layers",
            "load_timeout_s",
        }
        # and the file reads back as it was written
        assert SettingsStore(settings_path).load().settings.engine_context == 8192
