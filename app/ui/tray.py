"""The system tray: the fleet at a glance, the models loaded on it, and quick unloads.

The tray icon shows the fleet in one colour: green when every host answers, amber when
some hosts are in trouble (degraded, or offline while others answer), red when no host
answers (or there is none). Its tooltip counts the hosts that answer and the models they
hold ("Corral — 2 of 3 hosts online, 1 model loaded"). Its menu shows or hides the
window, lists every host with its status dot and, for a host that answers, the models
loaded on it (each with Unload) and Unload all; hosts that are offline are listed greyed
out. Quit Corral ends the app.

Loaded models are read from each reachable host with a deadline, in tasks on the running
loop: when a host comes online, when the monitor sees its loaded models change, when the
menu opens and after an unload. Desktop notifications say when a pull finished or a host
went offline; where there is no tray (or notifications are off) the same sentence goes
out as :attr:`FleetTray.message`, for the window's status bar.

Without a system tray (some desktops, the offscreen platform) the icon is not shown, but
the menu is still built and works, so the window can always rely on it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from PySide6.QtCore import QObject, QSize, Signal
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from app.core.errors import CorralError
from app.core.hosts.base import Host, HostConfig, RunningModel
from app.core.hosts.health import HealthMonitor, HostState, HostStatus, LoadedChange
from app.core.hosts.registry import HostRegistry
from app.resources import tray_icon_files
from app.ui.adapters import HealthSignals, RegistrySignals
from app.ui.formatting import human_size
from app.ui.icons import state_dot
from app.ui.tasks import TaskRunner

log = logging.getLogger(__name__)

#: The model name that stands for "every loaded model of the host".
ALL_MODELS = "*"

_REACHABLE = (HostState.ONLINE, HostState.DEGRADED)
_NOTE_MAX = 90  # longest note shown in the menu; the whole text is in its tooltip


class FleetState(enum.StrEnum):
    """What the tray icon says about the fleet."""

    OK = "ok"  # every host answers
    DEGRADED = "degraded"  # some answer, some are degraded or offline
    OFFLINE = "offline"  # none answers, or there is no host


def fleet_state(states: Iterable[HostState]) -> FleetState:
    """The fleet's state from its hosts' states (hosts not checked yet count for nothing)."""
    states = list(states)
    if not any(s in _REACHABLE for s in states):
        return FleetState.OFFLINE
    if any(s in (HostState.DEGRADED, HostState.OFFLINE) for s in states):
        return FleetState.DEGRADED
    return FleetState.OK


def fleet_summary(online: int, total: int, loaded: int) -> str:
    """The tray tooltip: ``Corral — 2 of 3 hosts online, 1 model loaded``."""
    if total == 0:
        return "Corral — no hosts"
    hosts = "host" if total == 1 else "hosts"
    models = "model" if loaded == 1 else "models"
    return f"Corral — {online} of {total} {hosts} online, {loaded} {models} loaded"


_DOT_STATES = {
    FleetState.OK: HostState.ONLINE.value,
    FleetState.DEGRADED: HostState.DEGRADED.value,
    FleetState.OFFLINE: HostState.OFFLINE.value,
}

IconProvider = Callable[[FleetState], QIcon]


def tray_icon(state: FleetState) -> QIcon:
    """The tray icon of a fleet state: its PNGs (resources/tray/tray-<state>-<size>.png)
    where they are, otherwise a drawn status dot (green, amber, red)."""
    icon = QIcon()
    for size, path in tray_icon_files(state.value):
        icon.addFile(str(path), QSize(size, size))
    if icon.isNull():
        return state_dot(_DOT_STATES[state], 32)
    return icon


def _menu_text(text: str) -> str:
    """Text for a menu entry: an ``&`` shows as itself, not as a shortcut marker."""
    return text.replace("&", "&&")


def _short(text: str) -> str:
    return text if len(text) <= _NOTE_MAX else text[: _NOTE_MAX - 1].rstrip() + "…"


@dataclass(frozen=True)
class _Loaded:
    """What the tray knows of a host's loaded models: the list, or why it is unknown."""

    models: tuple[RunningModel, ...] = ()
    error: str = ""


class _LoadedSignals(QObject):
    """Re-emits :attr:`HealthMonitor.loaded_changed` as a Qt signal.

    Signals:
        loadedChanged(str): the loaded models of the host with this id changed.
    """

    loadedChanged = Signal(str)

    def __init__(self, monitor: HealthMonitor, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._monitor = monitor
        monitor.loaded_changed.connect(self._relay)

    def _relay(self, change: LoadedChange) -> None:
        self.loadedChanged.emit(change.host_id)

    def detach(self) -> None:
        self._monitor.loaded_changed.disconnect(self._relay)


async def unload_everything(host: Host) -> list[str]:
    """Unload every model the host reports as loaded and return their names; the first
    failure is raised after every unload was tried."""
    running = await host.running_models()
    results = await asyncio.gather(*(host.unload(r.name) for r in running), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r.name for r in running]


class FleetTray(QObject):
    """Corral's system tray icon and its menu.

    Attributes:
        registry, health: the injected host registry and health monitor.
        tray_icon: the :class:`QSystemTrayIcon` (shown only where the desktop has a tray).
        menu: its menu, built and usable with or without a tray.
        toggle_action, quit_action: "Show Corral"/"Hide Corral" and "Quit Corral".
        state: the :class:`FleetState` the icon shows.
        close_to_tray: closing the window hides it to the tray (where the tray is shown).
        notifications: desktop notifications are on.
        read_timeout_s: deadline for reading a host's loaded models.
        unload_timeout_s: deadline for an unload (or an Unload all).

    Object names (for tests): trayMenu, trayToggleAction, trayQuitAction; per host
    ``trayHost:<id>`` (a submenu when the host answers, a greyed-out entry otherwise); in
    a host's submenu, per loaded model a submenu ``trayModel:<name>`` holding
    ``trayUnload``, then ``trayUnloadAll``; ``trayModelsNote`` says "No models loaded",
    "Reading loaded models…" or "models unknown: <reason>".

    Signals:
        toggleWindowRequested: Show/Hide Corral was chosen, or the icon clicked.
        quitRequested: Quit Corral was chosen.
        message(str): a sentence for the window's status bar: the outcome of an unload,
            and notifications that could not be shown on the desktop.
        stateChanged(str): the fleet state changed (a :class:`FleetState` value).
    """

    toggleWindowRequested = Signal()
    quitRequested = Signal()
    message = Signal(str)
    stateChanged = Signal(str)

    def __init__(
        self,
        registry: HostRegistry,
        health: HealthMonitor,
        parent: QObject | None = None,
        icon_provider: IconProvider = tray_icon,
        *,
        close_to_tray: bool = False,
        notifications: bool = True,
        read_timeout_s: float = 10.0,
        unload_timeout_s: float = 60.0,
    ) -> None:
        super().__init__(parent)
        self.registry = registry
        self.health = health
        self.close_to_tray = close_to_tray
        self.notifications = notifications
        self.read_timeout_s = read_timeout_s
        self.unload_timeout_s = unload_timeout_s
        self._icon_for = icon_provider
        self._tasks = TaskRunner(self.message.emit)
        self._configs: list[HostConfig] = registry.hosts()
        # the last state seen per host: a notification is for a change, not a start-up
        self._states = {c.id: health.status(c.id).state for c in self._configs}
        self._loaded: dict[str, _Loaded] = {}
        self._reading: dict[str, asyncio.Task[None]] = {}
        self._read_again: set[str] = set()
        self._busy: set[tuple[str, str]] = set()  # (host id, model or ALL_MODELS)
        self._submenus: list[QMenu] = []
        self._shown_menu: tuple[object, ...] | None = None
        self._window_visible = True
        self._closing = False
        self.state: FleetState | None = None

        self.menu = QMenu()  # the tray does not own its menu: this object does
        self.menu.setObjectName("trayMenu")
        self.menu.setToolTipsVisible(True)
        self.toggle_action = QAction("Hide Corral", self)
        self.toggle_action.setObjectName("trayToggleAction")
        self.quit_action = QAction("Quit Corral", self)
        self.quit_action.setObjectName("trayQuitAction")
        self.tray_icon = QSystemTrayIcon(self)
        self.tray_icon.setObjectName("trayIcon")
        self.tray_icon.setContextMenu(self.menu)

        self._registry_signals = RegistrySignals(registry, self)
        self._health_signals = HealthSignals(health, self)
        self._loaded_signals = _LoadedSignals(health, self)
        self._wire()
        self._update()

    def _wire(self) -> None:
        """All signal connections of the tray, in one place."""
        self._registry_signals.hostsChanged.connect(self._on_hosts_changed)
        self._health_signals.statusChanged.connect(self._on_status)
        self._loaded_signals.loadedChanged.connect(self._read_models)
        self.menu.aboutToShow.connect(self.refresh)
        self.tray_icon.activated.connect(self._on_activated)
        # Bound methods, not lambdas: a lambda holding self on a child's signal keeps
        # the tray alive past its owner.
        self.toggle_action.triggered.connect(self._on_toggle)
        self.quit_action.triggered.connect(self._on_quit)

    # -- what the window calls ----------------------------------------------------------
    @staticmethod
    def available() -> bool:
        """Whether the desktop has a system tray to show the icon in."""
        return QSystemTrayIcon.isSystemTrayAvailable()

    def show(self) -> bool:
        """Show the icon where the desktop has a tray; False (and nothing shown) where not."""
        if not self.available():
            log.info("No system tray on this desktop: Corral runs without a tray icon")
            return False
        self.tray_icon.show()
        return True

    @property
    def shown(self) -> bool:
        """The icon is in the tray."""
        return self.tray_icon.isVisible()

    def set_window_visible(self, visible: bool) -> None:
        """Tell the tray whether the window is shown (the menu offers the other choice)."""
        self._window_visible = visible
        self.toggle_action.setText("Hide Corral" if visible else "Show Corral")

    def set_close_to_tray(self, on: bool) -> None:
        self.close_to_tray = on

    def set_notifications(self, on: bool) -> None:
        self.notifications = on

    def apply_settings(self, close_to_tray: bool, notifications: bool) -> None:
        """The tray settings, changed while Corral runs (``SettingsApplier``'s on_tray)."""
        self.close_to_tray = close_to_tray
        self.notifications = notifications

    def keeps_running_on_close(self) -> bool:
        """Closing the window should hide it to the tray instead of quitting: the setting
        is on and the icon is there to bring the window back."""
        return self.close_to_tray and self.shown

    def notify(self, title: str, text: str) -> None:
        """A desktop notification where the tray can show one and notifications are on;
        otherwise the text goes out as :attr:`message`."""
        if self._can_notify():
            self.tray_icon.showMessage(title, text, QSystemTrayIcon.MessageIcon.Information)
        else:
            self.message.emit(text)

    def notify_pull_finished(self, host_name: str, model: str) -> None:
        self.notify("Pull finished", f"{model} is ready on {host_name}.")

    def refresh(self) -> None:
        """Read the loaded models of every host that answers (in tasks; the menu follows)."""
        for config in self._configs:
            if self.health.status(config.id).reachable:
                self._read_models(config.id)

    def unload(self, host_id: str, model: str) -> None:
        """Unload a model (``ALL_MODELS``: every loaded model) of a host in a task; the
        outcome goes out as :attr:`message` and a notification, and the menu follows."""
        key = (host_id, model)
        if key in self._busy or self._config(host_id) is None or self._closing:
            return
        self._busy.add(key)
        self._update()
        self._tasks.spawn(self._run_unload(host_id, model), name=f"tray unload {model}")

    def unload_all(self, host_id: str) -> None:
        self.unload(host_id, ALL_MODELS)

    async def shutdown(self) -> None:
        """Stop listening, hide the icon, and cancel and wait for the tray's tasks."""
        if self._closing:
            return
        self._closing = True
        self._registry_signals.detach()
        self._health_signals.detach()
        self._loaded_signals.detach()
        self.tray_icon.hide()
        await self._tasks.cancel_all()
        self.menu.deleteLater()

    # -- reading the menu (for the window and tests) --------------------------------------
    def host_entry(self, host_id: str) -> QAction | None:
        """The menu entry of a host: a submenu's action when it answers, else a greyed-out
        action; None when the host is not listed."""
        for action in self.menu.actions():
            if action.objectName() == f"trayHost:{host_id}":
                return action
        return None

    def loaded_models(self, host_id: str) -> list[str]:
        """The model names the menu lists as loaded on a host."""
        entry = self.host_entry(host_id)
        submenu = entry.menu() if entry is not None else None
        if not isinstance(submenu, QMenu):
            return []
        return [
            str(a.data())
            for a in submenu.actions()
            if a.objectName().startswith("trayModel:") and a.data() is not None
        ]

    # -- events ---------------------------------------------------------------------------
    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        # On macOS a click opens the menu; elsewhere a click shows or hides the window.
        if reason is QSystemTrayIcon.ActivationReason.Trigger and sys.platform != "darwin":
            self.toggleWindowRequested.emit()

    def _on_toggle(self, _checked: bool = False) -> None:
        self.toggleWindowRequested.emit()

    def _on_quit(self, _checked: bool = False) -> None:
        self.quitRequested.emit()

    def _on_unload_triggered(self, _checked: bool = False) -> None:
        action = self.sender()
        target = action.data() if isinstance(action, QAction) else None
        if isinstance(target, list | tuple) and len(target) == 2:
            self.unload(str(target[0]), str(target[1]))

    def _on_hosts_changed(self, hosts: list[HostConfig]) -> None:
        self._configs = list(hosts)
        ids = {c.id for c in hosts}
        for gone in [h for h in self._loaded if h not in ids]:
            del self._loaded[gone]
        self._states = {c.id: self.health.status(c.id).state for c in hosts}
        self._update()

    def _on_status(self, status: HostStatus) -> None:
        config = self._config(status.host_id)
        if config is None:
            return
        previous = self._states.get(config.id, HostState.UNKNOWN)
        self._states[config.id] = status.state
        if previous in _REACHABLE and status.state is HostState.OFFLINE:
            reason = status.reason or "it stopped answering."
            self.notify("Host offline", f"{config.name} went offline: {reason}")
        if status.reachable:  # back, or better or worse: what it holds may differ
            self._read_models(config.id)
        else:
            self._loaded.pop(config.id, None)
        self._update()

    # -- loaded models --------------------------------------------------------------------
    def _read_models(self, host_id: str) -> None:
        if self._closing or self._config(host_id) is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not running yet: read when the loop runs
            return
        if host_id in self._reading:
            self._read_again.add(host_id)  # the answer in flight may be outdated
            return
        self._reading[host_id] = self._tasks.spawn(
            self._read(host_id), name=f"tray models {host_id}"
        )

    async def _read(self, host_id: str) -> None:
        try:
            loaded = await self._fetch(host_id)
            while host_id in self._read_again:
                self._read_again.discard(host_id)
                loaded = await self._fetch(host_id)
        finally:
            self._reading.pop(host_id, None)
        if self._config(host_id) is not None and self.health.status(host_id).reachable:
            self._loaded[host_id] = loaded
            self._update()

    async def _fetch(self, host_id: str) -> _Loaded:
        config = self._config(host_id)
        name = config.name if config is not None else host_id
        try:
            host = self.registry.host(host_id)
            async with asyncio.timeout(self.read_timeout_s):
                running = await host.running_models()
        except TimeoutError:
            return _Loaded(
                error=f"{name} did not list its loaded models within {self.read_timeout_s:g} s."
            )
        except CorralError as exc:
            return _Loaded(error=exc.message)
        return _Loaded(tuple(sorted(running, key=lambda r: r.name)))

    async def _run_unload(self, host_id: str, model: str) -> None:
        config = self._config(host_id)
        name = config.name if config is not None else host_id
        what = "every model" if model == ALL_MODELS else model
        try:
            host = self.registry.host(host_id)
            async with asyncio.timeout(self.unload_timeout_s):
                if model == ALL_MODELS:
                    names = await unload_everything(host)
                else:
                    await host.unload(model)
                    names = [model]
        except TimeoutError:
            self._report(
                "Unload failed",
                f"Could not unload {what} on {name}: no answer within {self.unload_timeout_s:g} s.",
                failed=True,
            )
        except CorralError as exc:
            self._report("Unload failed", f"Could not unload {what} on {name}: {exc.message}", True)
        else:
            if names:
                self._report("Unloaded", f"Unloaded {', '.join(names)} on {name}.")
            else:
                self._report("Unloaded", f"Nothing was loaded on {name}.")
        finally:
            self._busy.discard((host_id, model))
            if not self._closing:
                self.health.probe_soon(host_id)  # the window and graphs hear of it too
                self._read_models(host_id)
                self._update()

    def _report(self, title: str, text: str, failed: bool = False) -> None:
        """The outcome of a command: always a message, and a notification where possible."""
        self.message.emit(text)
        if self._can_notify():
            icon = QSystemTrayIcon.MessageIcon
            self.tray_icon.showMessage(title, text, icon.Warning if failed else icon.Information)

    def _can_notify(self) -> bool:
        return self.notifications and self.shown and QSystemTrayIcon.supportsMessages()

    # -- showing --------------------------------------------------------------------------
    def _config(self, host_id: str) -> HostConfig | None:
        return next((c for c in self._configs if c.id == host_id), None)

    def _update(self) -> None:
        """Bring the icon, its tooltip and (if what it shows changed) the menu up to date."""
        statuses = [self.health.status(c.id) for c in self._configs]
        state = fleet_state(s.state for s in statuses)
        if state != self.state:
            self.state = state
            self.tray_icon.setIcon(self._icon_for(state))
            self.stateChanged.emit(state.value)
        online = sum(1 for s in statuses if s.reachable)
        loaded = sum(
            len(self._loaded[s.host_id].models)
            for s in statuses
            if s.reachable and s.host_id in self._loaded
        )
        self.tray_icon.setToolTip(fleet_summary(online, len(statuses), loaded))
        # Rebuilt only when what it shows changed: an open menu is not pulled apart
        # by a probe that found everything as it was.
        # The reason (a tooltip; it carries the latest round trip while a host is slow)
        # is brought up to date in place, not by a rebuild.
        shown = (
            tuple((c, s.state) for c, s in zip(self._configs, statuses, strict=True)),
            tuple(sorted(self._loaded.items())),
            frozenset(self._busy),
        )
        if shown != self._shown_menu:
            self._shown_menu = shown
            self._rebuild(statuses)
        else:
            self._update_reasons(statuses)

    def _update_reasons(self, statuses: list[HostStatus]) -> None:
        for config, status in zip(self._configs, statuses, strict=True):
            entry = self.host_entry(config.id)
            if entry is not None:
                entry.setToolTip(_host_tip(config, status))

    def _rebuild(self, statuses: list[HostStatus]) -> None:
        for submenu in self._submenus:
            submenu.deleteLater()
        self._submenus.clear()
        self.menu.clear()
        self.menu.addAction(self.toggle_action)
        self.menu.addSeparator()
        if not self._configs:
            none = self.menu.addAction("No hosts")
            none.setEnabled(False)
        for config, status in zip(self._configs, statuses, strict=True):
            self._add_host(config, status)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)

    def _add_host(self, config: HostConfig, status: HostStatus) -> None:
        dot = state_dot(status.state.value)
        name = _menu_text(config.name)
        if not status.reachable:
            word = "offline" if status.state is HostState.OFFLINE else "checking…"
            entry = self.menu.addAction(dot, f"{name} — {word}")
            entry.setObjectName(f"trayHost:{config.id}")
            entry.setToolTip(_host_tip(config, status))
            entry.setEnabled(False)
            return
        submenu = QMenu(self.menu)
        submenu.setToolTipsVisible(True)
        self._submenus.append(submenu)
        title = name if status.state is HostState.ONLINE else f"{name} — degraded"
        submenu.setTitle(title)
        submenu.setIcon(dot)
        entry = submenu.menuAction()
        entry.setObjectName(f"trayHost:{config.id}")
        entry.setToolTip(_host_tip(config, status))
        self.menu.addMenu(submenu)

        loaded = self._loaded.get(config.id)
        if loaded is None:
            self._note(submenu, "Reading loaded models…")
        elif loaded.error:
            self._note(submenu, f"models unknown: {loaded.error}")
        elif not loaded.models:
            self._note(submenu, "No models loaded")
        for model in loaded.models if loaded is not None else ():
            self._add_model(submenu, config, model)
        submenu.addSeparator()
        busy_all = (config.id, ALL_MODELS) in self._busy
        unload_all = submenu.addAction("Unloading every model…" if busy_all else "Unload all")
        unload_all.setObjectName("trayUnloadAll")
        unload_all.setEnabled(bool(loaded and loaded.models) and not busy_all)
        unload_all.setData([config.id, ALL_MODELS])
        unload_all.triggered.connect(self._on_unload_triggered)

    def _add_model(self, host_menu: QMenu, config: HostConfig, model: RunningModel) -> None:
        submenu = QMenu(f"{_menu_text(model.name)}  ({human_size(model.size)})", host_menu)
        self._submenus.append(submenu)
        entry = submenu.menuAction()
        entry.setObjectName(f"trayModel:{model.name}")
        entry.setData(model.name)
        host_menu.addMenu(submenu)
        busy = (config.id, model.name) in self._busy or (config.id, ALL_MODELS) in self._busy
        action = submenu.addAction("Unloading…" if busy else "Unload")
        action.setObjectName("trayUnload")
        action.setToolTip(f"Free the memory {model.name} uses on {config.name}")
        action.setEnabled(not busy)
        action.setData([config.id, model.name])
        action.triggered.connect(self._on_unload_triggered)

    @staticmethod
    def _note(menu: QMenu, text: str) -> None:
        note = menu.addAction(_menu_text(_short(text)))
        note.setObjectName("trayModelsNote")
        note.setToolTip(text)
        note.setEnabled(False)


def _host_tip(config: HostConfig, status: HostStatus) -> str:
    """A host entry's tooltip: why it is degraded or offline, else that it is fine."""
    if status.reason:
        return status.reason
    if status.reachable:
        return f"{config.name} is online."
    return f"{config.name} has not answered yet."
