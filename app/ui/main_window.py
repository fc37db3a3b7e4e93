"""The main window: hosts on the left, the selected host's models on the right."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import CorralError
from app.core.hosts.base import Host, HostConfig, HostHealth, ModelInfo, RunningModel
from app.core.hosts.registry import HostRegistry
from app.ui.adapters import RegistrySignals
from app.ui.banner import Banner
from app.ui.details_dialog import ModelDetailsDialog
from app.ui.host_dialog import HostDialog
from app.ui.icons import app_icon
from app.ui.item_models import (
    OFFLINE,
    ONLINE,
    HostRow,
    HostTableModel,
    ModelRow,
    ModelTableModel,
)
from app.ui.pull_dialog import PullDialog
from app.ui.tasks import TaskRunner

log = logging.getLogger(__name__)

NO_HOST_MESSAGE = (
    "No model host is reachable. Start Ollama on this computer, or add a host on your network."
)


class MainWindow(QMainWindow):
    """Corral's main window.

    Left: the hosts (status dot, name, address, version, round trip) with Add / Edit /
    Remove. Right: the models of the selected host with Pull…, Load, Unload, Delete… and
    Details…. A banner at the top carries problems and errors. Every host is probed right
    away and then on a timer, each probe in its own task, so that a slow host delays
    nothing else. Actions run as tasks too; the window stays responsive meanwhile.

    Attributes:
        registry: the host registry (injected).
        banner: the message strip at the top.
        host_model, host_view: the host list.
        model_model, model_view: the models of the selected host.
        models_status: a line above the models (offline reason, "Loading…", counts).
        add_host_button, edit_host_button, remove_host_button: the host buttons.
        pull_button, load_button, unload_button, delete_button, details_button,
        refresh_button: the model buttons.
        timer: the refresh timer (``registry.settings.refresh_interval_s``).
        pull_dialogs: the pull dialogs that are open or still stopping.

    Object names (for tests and style sheets): mainWindow, banner, hostsView, modelsView,
    hostTitle, modelsStatus, addHostButton, editHostButton, removeHostButton,
    pullModelButton, loadButton, unloadButton, deleteButton, detailsButton, refreshButton,
    and for the confirmations confirmRemoveHost / confirmDelete (accept buttons
    confirmRemoveHostAccept / confirmDeleteAccept).

    Signals:
        closed: the window was closed.
        healthUpdated(str): a probe of the host with this id finished.
        modelsRefreshed(str): the models table was filled for the host with this id.
        actionFinished(str): an action on a model ended (text: "load llama3.2:latest").
    """

    closed = Signal()
    healthUpdated = Signal(str)
    modelsRefreshed = Signal(str)
    actionFinished = Signal(str)

    def __init__(self, registry: HostRegistry, *, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle("Corral")
        self.setWindowIcon(app_icon())
        self.registry = registry
        self._tasks = TaskRunner(self.show_error)
        self._registry_signals = RegistrySignals(registry, self)
        self._probes: dict[str, tuple[HostConfig, asyncio.Task[Any]]] = {}
        self._models_task: asyncio.Task[Any] | None = None
        self._models_task_host: str | None = None
        self._models_error: dict[str, str] = {}  # last models error shown, per host
        self._offline_errors: dict[str, str] = {}  # "went offline" errors shown, per host
        self._busy: set[tuple[str, str]] = set()  # (host id, model) with an action running
        self._pull_dialogs: list[PullDialog] = []
        self._none_online: bool | None = None
        # Until the user picks a host, the first host found online is selected for them.
        self._auto_select = True
        self._selecting = False
        self._started = False
        self._problems_shown = 0  # how many of registry.problems the banner has shown

        self._build()
        self.timer = QTimer(self)
        self.timer.setObjectName("refreshTimer")
        self.timer.setInterval(max(250, int(registry.settings.refresh_interval_s * 1000)))
        self._wire()

        self.host_model.set_hosts(registry.hosts())
        if self.host_model.rowCount():
            self.select_host(self.host_model.rows()[0].config.id, by_user=False)
        self._show_new_problems()
        self._update_actions()

    # -- building ---------------------------------------------------------------------
    def _build(self) -> None:
        self.banner = Banner(self)

        # hosts
        self.host_model = HostTableModel(self)
        self.host_view = QTableView(self)
        self.host_view.setObjectName("hostsView")
        self.host_view.setModel(self.host_model)
        self._setup_view(self.host_view)
        hh = self.host_view.horizontalHeader()
        # Addresses are shown whole; names take the room that is left (elided if need be).
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(HostTableModel.NAME, QHeaderView.ResizeMode.Stretch)
        hh.setMinimumSectionSize(24)
        self.host_view.setMinimumWidth(340)
        self.add_host_button = self._button("Add host…", "addHostButton")
        self.edit_host_button = self._button("Edit…", "editHostButton")
        self.remove_host_button = self._button("Remove", "removeHostButton")
        hosts_title = QLabel("<b>Hosts</b>", self)
        host_buttons = QHBoxLayout()
        for b in (self.add_host_button, self.edit_host_button, self.remove_host_button):
            host_buttons.addWidget(b)
        host_buttons.addStretch(1)
        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(hosts_title)
        left_layout.addWidget(self.host_view, 1)
        left_layout.addLayout(host_buttons)

        # models
        self.host_title = QLabel(self)
        self.host_title.setObjectName("hostTitle")
        self.host_title.setTextFormat(Qt.TextFormat.PlainText)
        self.host_title.setStyleSheet("font-weight: bold;")
        self.models_status = QLabel(self)
        self.models_status.setObjectName("modelsStatus")
        self.models_status.setWordWrap(True)
        self.model_model = ModelTableModel(self)
        self.model_view = QTableView(self)
        self.model_view.setObjectName("modelsView")
        self.model_view.setModel(self.model_model)
        self._setup_view(self.model_view)
        mh = self.model_view.horizontalHeader()
        mh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        mh.setSectionResizeMode(ModelTableModel.NAME, QHeaderView.ResizeMode.Stretch)
        self.pull_button = self._button("Pull…", "pullModelButton")
        self.load_button = self._button("Load", "loadButton")
        self.unload_button = self._button("Unload", "unloadButton")
        self.delete_button = self._button("Delete…", "deleteButton")
        self.details_button = self._button("Details…", "detailsButton")
        self.refresh_button = self._button("Refresh", "refreshButton")
        self.pull_button.setToolTip("Download a model onto this host")
        self.load_button.setToolTip("Load the model into memory now")
        self.unload_button.setToolTip("Free the memory the model uses")
        model_buttons = QHBoxLayout()
        for b in (
            self.pull_button,
            self.load_button,
            self.unload_button,
            self.delete_button,
            self.details_button,
        ):
            model_buttons.addWidget(b)
        model_buttons.addStretch(1)
        model_buttons.addWidget(self.refresh_button)
        right = QWidget(self)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.host_title)
        right_layout.addWidget(self.models_status)
        right_layout.addWidget(self.model_view, 1)
        right_layout.addLayout(model_buttons)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([440, 660])
        self.splitter.setChildrenCollapsible(False)

        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.addWidget(self.banner)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self.statusBar().setObjectName("statusBar")

        menu = self.menuBar().addMenu("&Corral")
        self.add_host_action = QAction("&Add host…", self)
        self.refresh_action = QAction("&Refresh now", self)
        self.refresh_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Quit))
        for action in (self.add_host_action, self.refresh_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        self.setMinimumSize(780, 420)
        self.resize(1120, 640)

    def _button(self, text: str, name: str) -> QPushButton:
        button = QPushButton(text, self)
        button.setObjectName(name)
        return button

    @staticmethod
    def _setup_view(view: QTableView) -> None:
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.verticalHeader().hide()
        view.setAlternatingRowColors(True)
        view.setShowGrid(False)
        view.setWordWrap(False)

    def _wire(self) -> None:
        """All signal connections of the window, in one place."""
        self._registry_signals.hostsChanged.connect(self._on_hosts_changed)
        self.banner.addHostRequested.connect(self.open_add_host_dialog)
        self.add_host_button.clicked.connect(self.open_add_host_dialog)
        self.add_host_action.triggered.connect(self.open_add_host_dialog)
        self.edit_host_button.clicked.connect(self.open_edit_host_dialog)
        self.remove_host_button.clicked.connect(self.confirm_remove_host)
        self.host_view.doubleClicked.connect(self.open_edit_host_dialog)
        self.host_view.selectionModel().currentRowChanged.connect(self._on_host_selected)
        self.model_view.selectionModel().currentRowChanged.connect(self._update_actions)
        self.model_view.doubleClicked.connect(self.show_details)
        self.pull_button.clicked.connect(self.open_pull_dialog)
        self.load_button.clicked.connect(self.load_selected)
        self.unload_button.clicked.connect(self.unload_selected)
        self.delete_button.clicked.connect(self.confirm_delete)
        self.details_button.clicked.connect(self.show_details)
        self.refresh_button.clicked.connect(self.refresh_now)
        self.refresh_action.triggered.connect(self.refresh_now)
        self.quit_action.triggered.connect(self.close)
        self.timer.timeout.connect(self._tick)
        self.healthUpdated.connect(self._update_actions)

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        """Probe every host now and then on the timer (call with the event loop running)."""
        if self._started:
            return
        self._started = True
        self.refresh_now()
        self.timer.start()

    def refresh_now(self) -> None:
        self.probe_all()
        self.refresh_models(force=True)

    def _tick(self) -> None:
        self.probe_all()
        self.refresh_models()
        self._tasks.spawn(self.registry.close_retired(), name="close retired hosts")

    async def shutdown(self) -> None:
        """Stop the timer and every task of the window and its dialogs, and wait for them."""
        self.timer.stop()
        self._registry_signals.detach()
        for dialog in list(self._pull_dialogs):
            await dialog.cancel_and_wait()
        await self._tasks.cancel_all()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.timer.stop()
        for dialog in list(self._pull_dialogs):
            dialog.cancel_pull()
        self._tasks.cancel_all_nowait()
        super().closeEvent(event)
        self.closed.emit()

    # -- errors -----------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        """THE place where an error message reaches the user: the banner and status bar."""
        log.info("shown to the user: %s", message)
        self.banner.set_message("error", message, level="error")
        self.statusBar().showMessage(message)

    def _status(self, message: str) -> None:
        self.statusBar().showMessage(message, 8000)

    # -- hosts ------------------------------------------------------------------------
    def current_host_id(self) -> str | None:
        row = self.host_model.host_at(self.host_view.currentIndex().row())
        return row.config.id if row else None

    def current_host(self) -> HostRow | None:
        return self.host_model.host_at(self.host_view.currentIndex().row())

    def select_host(self, host_id: str, *, by_user: bool = True) -> None:
        """Make ``host_id`` the current host (``by_user=False``: a choice made for the user)."""
        row = self.host_model.row_of(host_id)
        if row < 0:
            return
        if by_user:
            self._auto_select = False
        self._selecting = True
        try:
            self.host_view.selectionModel().setCurrentIndex(
                self.host_model.index(row, HostTableModel.NAME),
                QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows,
            )
        finally:
            self._selecting = False

    def _show_new_problems(self) -> None:
        """Show the registry's problems that were not shown yet (at start, after a change)."""
        problems = self.registry.problems
        if len(problems) > self._problems_shown:
            new = problems[self._problems_shown :]
            self._problems_shown = len(problems)
            self.banner.set_message("problems", "\n".join(new), level="warning")

    def _on_hosts_changed(self, hosts: list[HostConfig]) -> None:
        self._show_new_problems()
        selected = self.current_host_id()
        self.host_model.set_hosts(hosts)
        for host_id in [i for i in self._probes if self.host_model.row_of(i) < 0]:
            self._probes.pop(host_id)[1].cancel()
        if selected and self.host_model.row_of(selected) >= 0:
            self.select_host(selected, by_user=False)
        elif self.host_model.rowCount():
            self.select_host(self.host_model.rows()[0].config.id, by_user=False)
        else:
            self._on_host_selected(QModelIndex(), QModelIndex())
        if self._started:
            self.probe_all()
        self._update_none_online()

    def _on_host_selected(self, current: QModelIndex, previous: QModelIndex) -> None:
        if not self._selecting:
            self._auto_select = False  # the user clicked or used the keyboard
        if self._models_task is not None and not self._models_task.done():
            self._models_task.cancel()
        self.model_model.clear()
        self._show_host_state()
        self._update_actions()
        if self._started:
            self.refresh_models(force=True)

    def _show_host_state(self) -> None:
        row = self.current_host()
        if row is None:
            self.host_title.setText("No host selected")
            self.models_status.setText("Add a host to see its models.")
            self.model_view.setEnabled(False)
            return
        self.host_title.setText(f"{row.config.name}  ·  {row.config.url}")
        if row.state == OFFLINE:
            self.model_model.clear()
            self.model_view.setEnabled(False)
            reason = row.health.error if row.health and row.health.error else "It did not answer."
            self.models_status.setText(f"{row.config.name} is offline. {reason}")
        elif row.state == ONLINE:
            self.model_view.setEnabled(True)
        else:
            self.models_status.setText(f"Checking {row.config.name}…")

    def probe_all(self) -> None:
        """Start a health probe for every host that has none running."""
        for row in self.host_model.rows():
            self._probe(row.config)

    def _probe(self, config: HostConfig) -> None:
        running = self._probes.get(config.id)
        if running is not None:
            if running[0] == config:
                return  # one probe per host at a time: a hung host does not pile them up
            running[1].cancel()  # the host was edited: probe the new address instead
        task = self._tasks.spawn(self._run_probe(config), name=f"probe {config.id}")
        self._probes[config.id] = (config, task)

    async def _run_probe(self, config: HostConfig) -> None:
        try:
            row = self.host_model.get(config.id)
            if row is None or row.config != config:
                return
            health = await self.registry.host(config.id).health()
        finally:
            entry = self._probes.get(config.id)
            if entry is not None and entry[1] is asyncio.current_task():
                del self._probes[config.id]
        self._apply_health(config, health)

    def _apply_health(self, config: HostConfig, health: HostHealth) -> None:
        row = self.host_model.get(config.id)
        if row is None or row.config != config:
            return  # removed or edited meanwhile; a new probe is on its way
        was_online = row.state == ONLINE
        self.host_model.set_health(config.id, health)
        if was_online and not health.online:
            self._offline_errors[config.id] = health.error or f"{config.name} stopped answering."
            self.show_error(self._offline_errors[config.id])
        if health.online:
            self._models_error.pop(config.id, None)
            gone = self._offline_errors.pop(config.id, None)
            if gone is not None and self.banner.message("error") == gone:
                self.banner.remove_message("error")  # the host is back: the error is moot
                self._status(f"{config.name} is back online.")
        current = self.current_host()
        if health.online and self._auto_select and (current is None or current.state != ONLINE):
            self.select_host(config.id, by_user=False)  # refreshes its models
        elif config.id == self.current_host_id():
            self._show_host_state()
            if health.online and not was_online:
                self.refresh_models(force=True)
        self._update_none_online()
        self.healthUpdated.emit(config.id)

    def _update_none_online(self) -> None:
        none_online = (
            self.host_model.all_probed() or self.host_model.rowCount() == 0
        ) and not self.host_model.any_online()
        if none_online == self._none_online:
            return
        self._none_online = none_online
        if none_online:
            self.banner.set_message(
                "no-host", NO_HOST_MESSAGE, level="warning", offer_add_host=True
            )
        else:
            self.banner.remove_message("no-host")

    def _submit_new_host(self, url: str, name: str, headers: list[tuple[str, str]]) -> HostConfig:
        return self.registry.add(url, name, headers)

    def open_add_host_dialog(self) -> HostDialog:
        """Open the dialog that adds a host (window-modal, non-blocking)."""
        dialog = HostDialog(self._submit_new_host, parent=self)
        return self._open_host_dialog(dialog)

    def open_edit_host_dialog(self) -> HostDialog | None:
        row = self.current_host()
        if row is None:
            return None
        host_id = row.config.id

        def submit(url: str, name: str, headers: list[tuple[str, str]]) -> HostConfig:
            return self.registry.update(host_id, url=url, name=name, headers=headers)

        try:
            missing = self.registry.missing_secrets(host_id)
        except CorralError as exc:
            self.show_error(exc.message)
            return None
        dialog = HostDialog(submit, config=row.config, missing_secrets=missing, parent=self)
        return self._open_host_dialog(dialog)

    def _open_host_dialog(self, dialog: HostDialog) -> HostDialog:
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.hostSaved.connect(self._on_host_saved)
        dialog.open()
        return dialog

    def _on_host_saved(self, host_id: str) -> None:
        self.select_host(host_id)
        row = self.host_model.get(host_id)
        if row is not None:
            self._status(f"Saved {row.config.name}.")
            if self._started:
                self._probe(row.config)
        self._tasks.spawn(self.registry.close_retired(), name="close retired hosts")

    def confirm_remove_host(self) -> QMessageBox | None:
        row = self.current_host()
        if row is None:
            return None
        config = row.config
        box = self._question(
            "confirmRemoveHost",
            "Remove host",
            f"Remove {config.name} ({config.url}) from the list?",
            "Models on the host are not touched.",
            "Remove",
        )

        def answered(button: Any) -> None:
            if box.buttonRole(button) == QMessageBox.ButtonRole.AcceptRole:
                self._remove_host(config)

        box.buttonClicked.connect(answered)
        box.open()
        return box

    def _remove_host(self, config: HostConfig) -> None:
        try:
            self.registry.remove(config.id)
        except CorralError as exc:
            self.show_error(exc.message)
            return
        self._status(f"Removed {config.name}.")
        self._tasks.spawn(self.registry.close_retired(), name="close retired hosts")

    def _question(
        self, name: str, title: str, text: str, detail: str, accept_text: str
    ) -> QMessageBox:
        box = QMessageBox(self)
        box.setObjectName(name)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle(title)
        box.setText(text)
        box.setInformativeText(detail)
        accept = box.addButton(accept_text, QMessageBox.ButtonRole.AcceptRole)
        accept.setObjectName(f"{name}Accept")
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        cancel.setObjectName(f"{name}Cancel")
        box.setDefaultButton(cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        return box

    # -- models -----------------------------------------------------------------------
    def selected_model(self) -> ModelRow | None:
        if not self.model_view.isEnabled():
            return None
        return self.model_model.row_at(self.model_view.currentIndex().row())

    def select_model(self, name: str) -> bool:
        row = self.model_model.row_of(name)
        if row < 0:
            return False
        self.model_view.selectionModel().setCurrentIndex(
            self.model_model.index(row, ModelTableModel.NAME),
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        return True

    def refresh_models(self, *, force: bool = False) -> None:
        """Reload the models of the selected host; ``force`` restarts a running reload."""
        row = self.current_host()
        if row is None:
            return
        if row.state != ONLINE:
            self._show_host_state()  # models are read once a probe finds the host online
            return
        host_id = row.config.id
        running = self._models_task is not None and not self._models_task.done()
        if running and self._models_task_host == host_id and not force:
            return
        if running and self._models_task is not None:
            self._models_task.cancel()
        if not self.model_model.rowCount():
            self.models_status.setText(f"Loading the models of {row.config.name}…")
        self._models_task_host = host_id
        self._models_task = self._tasks.spawn(
            self._load_models(row.config), name=f"models of {host_id}"
        )

    async def _load_models(self, config: HostConfig) -> None:
        host = self.registry.host(config.id)
        results = await asyncio.gather(
            host.list_models(), host.running_models(), return_exceptions=True
        )
        if config.id != self.current_host_id():
            return
        row = self.host_model.get(config.id)
        if row is not None and row.state == OFFLINE:
            self._show_host_state()  # a probe found it offline meanwhile; it says why
            return
        for result in results:
            if isinstance(result, CorralError):
                self._models_unavailable(config, result.message)
                return
            if isinstance(result, BaseException):
                raise result
        models: list[ModelInfo] = results[0]  # type: ignore[assignment]
        running: list[RunningModel] = results[1]  # type: ignore[assignment]
        self._models_error.pop(config.id, None)
        selected = self.selected_model()
        self.model_view.setEnabled(True)
        if self.model_model.set_models(models, running) and selected is not None:
            self.select_model(selected.name)
        loaded = sum(1 for r in self.model_model.rows() if r.loaded)
        if models:
            self.models_status.setText(f"{len(models)} models installed, {loaded} loaded.")
        else:
            self.models_status.setText("No models installed. Use Pull… to download one.")
        self._update_actions()
        self.modelsRefreshed.emit(config.id)

    def _models_unavailable(self, config: HostConfig, message: str) -> None:
        self.model_model.clear()
        self.model_view.setEnabled(False)
        self.models_status.setText(message)
        self._update_actions()
        if self._models_error.get(config.id) != message:
            self._models_error[config.id] = message
            self.show_error(message)
        row = self.host_model.get(config.id)
        if row is not None:
            self._probe(row.config)  # let the status dot catch up

    def _update_actions(self, *_: object) -> None:
        host = self.current_host()
        self.edit_host_button.setEnabled(host is not None)
        self.remove_host_button.setEnabled(host is not None)
        online = host is not None and host.state == ONLINE
        self.pull_button.setEnabled(online)
        self.refresh_button.setEnabled(host is not None)
        model = self.selected_model() if online else None
        busy = model is not None and host is not None and (host.config.id, model.name) in self._busy
        ready = model is not None and not busy
        self.load_button.setEnabled(ready and model is not None and not model.loaded)
        self.unload_button.setEnabled(ready and model is not None and model.loaded)
        self.delete_button.setEnabled(ready)
        self.details_button.setEnabled(model is not None)

    def _target(self) -> tuple[HostConfig, ModelRow] | None:
        host, model = self.current_host(), self.selected_model()
        if host is None or model is None:
            return None
        return host.config, model

    def load_selected(self) -> None:
        target = self._target()
        if target is not None:
            config, model = target
            self._start_action(
                config, model.name, "load", "Loading", "Loaded", lambda h: h.load(model.name)
            )

    def unload_selected(self) -> None:
        target = self._target()
        if target is not None:
            config, model = target
            self._start_action(
                config,
                model.name,
                "unload",
                "Unloading",
                "Unloaded",
                lambda h: h.unload(model.name),
            )

    def confirm_delete(self) -> QMessageBox | None:
        target = self._target()
        if target is None:
            return None
        config, model = target
        name = model.name
        box = self._question(
            "confirmDelete",
            "Delete model",
            f"Delete {name} from {config.name}?",
            "The model's files are removed from the host; pull it again to get it back.",
            "Delete",
        )

        def answered(button: Any) -> None:
            if box.buttonRole(button) == QMessageBox.ButtonRole.AcceptRole:
                self._start_action(
                    config, name, "delete", "Deleting", "Deleted", lambda h: h.delete(name)
                )

        box.buttonClicked.connect(answered)
        box.open()
        return box

    def _start_action(
        self,
        config: HostConfig,
        model: str,
        verb: str,
        doing: str,
        done: str,
        call: Callable[[Host], Awaitable[None]],
    ) -> None:
        key = (config.id, model)
        if key in self._busy:
            return
        self._busy.add(key)
        self._update_actions()
        self._status(f"{doing} {model} on {config.name}…")
        self._tasks.spawn(self._run_action(config, model, verb, done, call), name=f"{verb} {model}")

    async def _run_action(
        self,
        config: HostConfig,
        model: str,
        verb: str,
        done: str,
        call: Callable[[Host], Awaitable[None]],
    ) -> None:
        try:
            await call(self.registry.host(config.id))
            self._status(f"{done} {model} on {config.name}.")
        finally:
            self._busy.discard((config.id, model))
            self._update_actions()
            if config.id == self.current_host_id():
                self.refresh_models(force=True)
            self.actionFinished.emit(f"{verb} {model}")

    def show_details(self) -> None:
        target = self._target()
        if target is not None:
            config, model = target
            self._status(f"Reading details of {model.name}…")
            self._tasks.spawn(self._fetch_details(config, model.name), name="details")

    async def _fetch_details(self, config: HostConfig, model: str) -> None:
        detail = await self.registry.host(config.id).show(model)
        dialog = ModelDetailsDialog(detail, host_name=config.name, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self.statusBar().clearMessage()

    def open_pull_dialog(self) -> PullDialog | None:
        """Open a pull dialog for the selected host (modeless; several may run at once)."""
        row = self.current_host()
        if row is None:
            return None
        config = row.config
        try:
            host = self.registry.host(config.id)
        except CorralError as exc:
            self.show_error(exc.message)
            return None
        dialog = PullDialog(host, host_name=config.name, parent=self)
        self._pull_dialogs.append(dialog)
        dialog.pulled.connect(lambda name, host_id=config.id: self._on_pulled(host_id, name))
        dialog.finished.connect(lambda _=0, d=dialog: self._dispose_pull_dialog(d))
        dialog.stateChanged.connect(lambda _s, d=dialog: self._dispose_pull_dialog(d))
        dialog.show()
        dialog.model_edit.setFocus()
        return dialog

    def _on_pulled(self, host_id: str, model: str) -> None:
        if host_id == self.current_host_id():
            self.refresh_models(force=True)

    def _dispose_pull_dialog(self, dialog: PullDialog) -> None:
        """Delete a pull dialog once it is closed and its pull has ended."""
        if dialog in self._pull_dialogs and not dialog.isVisible() and not dialog.running:
            self._pull_dialogs.remove(dialog)
            dialog.deleteLater()

    @property
    def pull_dialogs(self) -> list[PullDialog]:
        return list(self._pull_dialogs)
