"""The system tray: fleet state in the icon, hosts and loaded models in the menu, unloads
from the menu, and notifications (status-bar messages where there is no tray)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import QMenu

from app.core.hosts.health import HealthMonitor, HealthPolicy, HostState
from app.core.hosts.registry import HostRegistry
from app.resources import tray_icon_files
from app.ui import tray as tray_module
from app.ui.tray import FleetState, FleetTray, fleet_state, fleet_summary, tray_icon
from tests.fakes.ollama import FakeOllama
from tests.support.waiting import wait_for
from tests.ui.conftest import TEST_POLICY, _finish_orphans

FakeFactory = Callable[..., FakeOllama]


@contextlib.asynccontextmanager
async def open_tray(
    registry: HostRegistry, policy: HealthPolicy = TEST_POLICY, **options: Any
) -> AsyncIterator[FleetTray]:
    """A tray on the registry, with a health monitor running as in the app; everything
    is stopped and awaited on leaving."""
    health = HealthMonitor(registry, policy)
    tray = FleetTray(registry, health, **options)
    health.start()
    try:
        yield tray
    finally:
        await tray.shutdown()
        await health.aclose()
        await registry.aclose()
        await _finish_orphans()


def _titles(tray: FleetTray) -> list[str]:
    """The texts of the menu's entries, as the user reads them (separators left out)."""
    return [a.text() for a in tray.menu.actions() if not a.isSeparator()]


def _host_menu(tray: FleetTray, host_id: str) -> QMenu:
    entry = tray.host_entry(host_id)
    assert entry is not None, f"host {host_id} is not in the tray menu: {_titles(tray)}"
    submenu = entry.menu()
    assert isinstance(submenu, QMenu), f"{entry.text()!r} has no submenu (offline?)"
    return submenu


def _child(menu: QMenu, name: str) -> Any:
    for action in menu.actions():
        if action.objectName() == name:
            return action
    raise AssertionError(f"no {name} in {[a.text() for a in menu.actions()]}")


def _note(tray: FleetTray, host_id: str) -> str | None:
    entry = tray.host_entry(host_id)
    submenu = entry.menu() if entry is not None else None
    if not isinstance(submenu, QMenu):
        return None
    notes = [a.text() for a in submenu.actions() if a.objectName() == "trayModelsNote"]
    return notes[0] if notes else None


def _unload_action(tray: FleetTray, host_id: str, model: str) -> Any:
    model_menu = _child(_host_menu(tray, host_id), f"trayModel:{model}").menu()
    assert isinstance(model_menu, QMenu)
    return _child(model_menu, "trayUnload")


def _two_boxes(registry: HostRegistry, fakes: FakeFactory) -> tuple[FakeOllama, FakeOllama]:
    box_a, box_b = fakes("127.0.0.2"), fakes("127.0.0.3")
    registry.remove("local")
    registry.add(box_a.url, "Box A")
    registry.add(box_b.url, "Box B")
    return box_a, box_b


def _ids(registry: HostRegistry) -> list[str]:
    return [c.id for c in registry.hosts()]


async def test_the_menu_lists_hosts_and_loaded_models_and_unload_frees_one(
    registry: HostRegistry, fakes: FakeFactory
) -> None:
    box_a, _box_b = _two_boxes(registry, fakes)
    box_a.load("llama3.2")
    a, b = _ids(registry)
    messages: list[str] = []
    async with open_tray(registry) as tray:
        tray.message.connect(messages.append)
        await wait_for(lambda: tray.loaded_models(a) == ["llama3.2:latest"])
        await wait_for(lambda: _note(tray, b) == "No models loaded")
        assert _titles(tray) == ["Hide Corral", "Box A", "Box B", "Quit Corral"]
        model_entry = _child(_host_menu(tray, a), "trayModel:llama3.2:latest")
        assert model_entry.text().startswith("llama3.2:latest")
        assert "GB" in model_entry.text()  # its size
        assert _child(_host_menu(tray, a), "trayUnloadAll").isEnabled()
        assert not _child(_host_menu(tray, b), "trayUnloadAll").isEnabled()
        assert tray.state is FleetState.OK
        assert tray.tray_icon.toolTip() == "Corral — 2 of 2 hosts online, 1 model loaded"

        _unload_action(tray, a, "llama3.2:latest").trigger()
        await wait_for(lambda: box_a.loaded_names() == [], message="the fake unloaded it")
        await wait_for(lambda: _note(tray, a) == "No models loaded")
        assert tray.loaded_models(a) == []
        assert not _child(_host_menu(tray, a), "trayUnloadAll").isEnabled()
        assert "Unloaded llama3.2:latest on Box A." in messages
        assert tray.tray_icon.toolTip() == "Corral — 2 of 2 hosts online, 0 models loaded"
        requests = [(m, p) for m, p, _ in box_a.requests]
        assert ("POST", "/api/generate") in requests  # keep_alive 0: Ollama's unload


async def test_unload_all_unloads_every_model_of_the_host(
    registry: HostRegistry, fakes: FakeFactory
) -> None:
    box_a, box_b = _two_boxes(registry, fakes)
    box_a.load("llama3.2")
    box_a.load("qwen3:0.6b")
    box_b.load("llama3.2")
    a, b = _ids(registry)
    messages: list[str] = []
    async with open_tray(registry) as tray:
        tray.message.connect(messages.append)
        await wait_for(lambda: tray.loaded_models(a) == ["llama3.2:latest", "qwen3:0.6b"])
        await wait_for(lambda: tray.loaded_models(b) == ["llama3.2:latest"])
        assert "3 models loaded" in tray.tray_icon.toolTip()

        _child(_host_menu(tray, a), "trayUnloadAll").trigger()
        await wait_for(lambda: box_a.loaded_names() == [])
        await wait_for(lambda: tray.loaded_models(a) == [])
        assert box_b.loaded_names() == ["llama3.2:latest"]  # the other host is left alone
        assert tray.loaded_models(b) == ["llama3.2:latest"]
        done = [m for m in messages if m.startswith("Unloaded")]
        assert len(done) == 1, messages
        assert "llama3.2:latest" in done[0] and "qwen3:0.6b" in done[0]
        assert done[0].endswith("on Box A.")


async def test_an_offline_host_is_listed_greyed_out_and_the_icon_says_degraded(
    registry: HostRegistry, fakes: FakeFactory
) -> None:
    box_a = fakes("127.0.0.2")
    gone = fakes("127.0.0.4")
    gone.stop()  # its address now refuses connections
    registry.remove("local")
    registry.add(box_a.url, "Box A")
    registry.add(gone.url, "Box C")
    a, c = _ids(registry)
    messages: list[str] = []
    async with open_tray(registry) as tray:
        tray.message.connect(messages.append)
        await wait_for(lambda: tray.health.status(c).state is HostState.OFFLINE)
        await wait_for(lambda: tray.health.status(a).state is HostState.ONLINE)
        entry = tray.host_entry(c)
        assert entry is not None
        assert entry.text() == "Box C — offline"
        assert not entry.isEnabled()
        assert entry.menu() is None  # nothing to unload there
        assert "Cannot connect to Box C" in entry.toolTip()
        assert tray.state is FleetState.DEGRADED
        assert tray.tray_icon.toolTip().startswith("Corral — 1 of 2 hosts online")
        # it was offline from the start: that is not news worth a notification
        assert not [m for m in messages if "went offline" in m]


async def test_the_icon_turns_degraded_and_the_user_is_told_when_a_host_goes_down(
    registry: HostRegistry, fakes: FakeFactory
) -> None:
    _box_a, box_b = _two_boxes(registry, fakes)
    _a, b = _ids(registry)
    messages: list[str] = []
    states: list[str] = []
    async with open_tray(registry) as tray:
        tray.message.connect(messages.append)
        tray.stateChanged.connect(states.append)
        await wait_for(lambda: tray.state is FleetState.OK)
        ok_icon = tray.tray_icon.icon().cacheKey()
        assert not tray.available()  # offscreen: the sentence goes to the status bar

        box_b.stop()
        await wait_for(lambda: tray.state is FleetState.DEGRADED)
        assert tray.tray_icon.icon().cacheKey() != ok_icon
        assert states[-2:] == ["ok", "degraded"]
        went = await wait_for(lambda: [m for m in messages if "went offline" in m])
        assert went[0].startswith("Box B went offline: Cannot connect to Box B")
        assert len(went) == 1
        await wait_for(
            lambda: tray.host_entry(b) is not None and not tray.host_entry(b).isEnabled()
        )


async def test_no_host_reachable_shows_the_offline_icon(
    registry: HostRegistry, fakes: FakeFactory
) -> None:
    gone = fakes("127.0.0.4")
    gone.stop()
    registry.remove("local")
    registry.add(gone.url, "Box C")
    async with open_tray(registry) as tray:
        await wait_for(lambda: tray.health.status(_ids(registry)[0]).state is HostState.OFFLINE)
        assert tray.state is FleetState.OFFLINE
        assert tray.tray_icon.toolTip() == "Corral — 0 of 1 host online, 0 models loaded"

        registry.remove(_ids(registry)[0])
        await wait_for(lambda: _titles(tray) == ["Hide Corral", "No hosts", "Quit Corral"])
        assert tray.state is FleetState.OFFLINE
        assert tray.tray_icon.toolTip() == "Corral — no hosts"


async def test_models_that_cannot_be_read_say_why(
    registry: HostRegistry, fakes: FakeFactory
) -> None:
    box_a = fakes("127.0.0.2")
    box_a.load("llama3.2")
    box_a.faults.paths = {"/api/ps"}
    box_a.faults.fail_status = 500
    registry.remove("local")
    registry.add(box_a.url, "Box A")
    (a,) = _ids(registry)
    async with open_tray(registry) as tray:
        await wait_for(lambda: (_note(tray, a) or "").startswith("models unknown: "))
        assert _host_menu(tray, a).title() == "Box A — degraded"
        assert "fake failure 500" in _child(_host_menu(tray, a), "trayModelsNote").toolTip()
        assert not _child(_host_menu(tray, a), "trayUnloadAll").isEnabled()

        box_a.faults.fail_status = None  # it recovers: the menu lists its model again
        await wait_for(lambda: tray.loaded_models(a) == ["llama3.2:latest"], timeout=8)
        assert _host_menu(tray, a).title() == "Box A"


async def test_a_failed_or_hanging_unload_is_reported_and_the_model_stays_listed(
    registry: HostRegistry, fakes: FakeFactory
) -> None:
    box_a = fakes("127.0.0.2")
    box_a.load("llama3.2")
    registry.remove("local")
    registry.add(box_a.url, "Box A")
    (a,) = _ids(registry)
    messages: list[str] = []
    async with open_tray(registry, unload_timeout_s=0.5) as tray:
        tray.message.connect(messages.append)
        await wait_for(lambda: tray.loaded_models(a) == ["llama3.2:latest"])

        box_a.faults.paths = {"/api/generate"}
        box_a.faults.fail_status = 500
        _unload_action(tray, a, "llama3.2:latest").trigger()
        failed = await wait_for(lambda: [m for m in messages if m.startswith("Could not")])
        assert failed[0].startswith("Could not unload llama3.2:latest on Box A: ")
        assert "fake failure 500" in failed[0]

        box_a.faults.fail_status = None
        box_a.faults.hang = True
        await wait_for(lambda: _unload_action(tray, a, "llama3.2:latest").isEnabled())
        messages.clear()
        _unload_action(tray, a, "llama3.2:latest").trigger()
        assert _unload_action(tray, a, "llama3.2:latest").text() == "Unloading…"
        assert not _unload_action(tray, a, "llama3.2:latest").isEnabled()
        hung = await wait_for(lambda: [m for m in messages if m.startswith("Could not")])
        assert hung == ["Could not unload llama3.2:latest on Box A: no answer within 0.5 s."]
        box_a.faults.hang = False
        await wait_for(lambda: _unload_action(tray, a, "llama3.2:latest").isEnabled())
        assert box_a.loaded_names() == ["llama3.2:latest"]
        assert tray.loaded_models(a) == ["llama3.2:latest"]


async def test_show_hide_quit_and_notifications_without_a_tray(
    registry: HostRegistry, fakes: FakeFactory
) -> None:
    _two_boxes(registry, fakes)
    async with open_tray(registry, close_to_tray=True) as tray:
        toggles: list[bool] = []
        quits: list[bool] = []
        messages: list[str] = []
        tray.toggleWindowRequested.connect(lambda: toggles.append(True))
        tray.quitRequested.connect(lambda: quits.append(True))
        tray.message.connect(messages.append)

        tray.toggle_action.trigger()
        assert toggles == [True]
        tray.set_window_visible(False)
        assert _titles(tray)[0] == "Show Corral"
        tray.set_window_visible(True)
        assert _titles(tray)[0] == "Hide Corral"
        _child(tray.menu, "trayQuitAction").trigger()
        assert quits == [True]

        # offscreen there is no tray: nothing is shown, and closing the window must
        # really close it (there would be no icon to bring it back)
        assert not tray.show()
        assert not tray.shown
        assert not tray.keeps_running_on_close()

        tray.notify_pull_finished("Box A", "qwen3:0.6b")
        assert messages == ["qwen3:0.6b is ready on Box A."]
        tray.apply_settings(close_to_tray=False, notifications=False)
        tray.notify("Host offline", "Box B went offline: Cannot connect.")
        assert messages[-1] == "Box B went offline: Cannot connect."  # never lost


def test_fleet_state_and_summary() -> None:
    online, degraded, offline, unknown = (
        HostState.ONLINE,
        HostState.DEGRADED,
        HostState.OFFLINE,
        HostState.UNKNOWN,
    )
    assert fleet_state([online, online]) is FleetState.OK
    assert fleet_state([online, unknown]) is FleetState.OK
    assert fleet_state([online, degraded]) is FleetState.DEGRADED
    assert fleet_state([online, offline]) is FleetState.DEGRADED
    assert fleet_state([degraded]) is FleetState.DEGRADED
    assert fleet_state([offline, unknown]) is FleetState.OFFLINE
    assert fleet_state([]) is FleetState.OFFLINE
    assert fleet_summary(2, 3, 1) == "Corral — 2 of 3 hosts online, 1 model loaded"
    assert fleet_summary(1, 1, 0) == "Corral — 1 of 1 host online, 0 models loaded"
    assert fleet_summary(0, 0, 0) == "Corral — no hosts"


def test_tray_icons_come_from_the_resources_with_drawn_dots_as_fallback(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = tray_icon(FleetState.OK)
    assert {(s.width(), s.height()) for s in shipped.availableSizes()} == {
        (size, size) for size, _ in tray_icon_files("ok")
    }
    assert len(tray_icon_files("ok")) >= 2  # several sizes for crisp tray icons

    monkeypatch.setattr(tray_module, "tray_icon_files", lambda state: [])
    drawn = {state: tray_icon(state) for state in FleetState}
    assert not any(icon.isNull() for icon in drawn.values())
    assert len({icon.cacheKey() for icon in drawn.values()}) == 3  # one look per state

    picture = QPixmap(16, 16)
    picture.fill(QColor("#1040c0"))
    png = tmp_path / "tray-degraded-16.png"
    assert picture.save(str(png))
    asked: list[str] = []

    def found(state: str) -> list[tuple[int, Path]]:
        asked.append(state)
        return [(16, png)]

    monkeypatch.setattr(tray_module, "tray_icon_files", found)
    image = tray_icon(FleetState.DEGRADED).pixmap(16, 16).toImage()
    assert image.pixelColor(8, 8) == QColor("#1040c0")
    assert asked == ["degraded"]


async def test_an_open_menu_is_not_rebuilt_while_a_slow_host_is_probed(
    registry: HostRegistry, fakes: FakeFactory
) -> None:
    # Every probe of a degraded host gives a new reason (its latest round trip); the menu
    # must keep its submenus (a user may have one open) and only update the tooltip.
    box = fakes("127.0.0.2")
    registry.remove("local")
    host_id = registry.add(box.url, "Slow box").id
    policy = HealthPolicy(interval_s=0.1, jitter=0.0, backoff_max_s=0.6, slow_ms=0.0001)
    async with open_tray(registry, policy) as tray:
        await wait_for(lambda: tray.health.status(host_id).state is HostState.DEGRADED)
        await wait_for(lambda: _note(tray, host_id) == "No models loaded")
        submenu = _host_menu(tray, host_id)
        first = tray.health.status(host_id).checked_at
        seen: set[object] = set()

        def three_more_probes() -> bool:
            seen.add(tray.health.status(host_id).checked_at)
            return len(seen - {first}) >= 3

        await wait_for(three_more_probes, message="three more probes of the slow host")
        assert _host_menu(tray, host_id) is submenu
        entry = tray.host_entry(host_id)
        assert entry is not None
        await wait_for(lambda: entry.toolTip() == tray.health.status(host_id).reason)
