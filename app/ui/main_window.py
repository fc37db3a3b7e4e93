"""The main window: the fleet on the left, models (of one host, or of all) on the right."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QHideEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.core.discovery.policy import local_scan_networks
from app.core.discovery.service import DiscoveryService, Suggestion
from app.core.errors import CorralError
from app.core.hosts.base import Host, HostCapabilities, HostConfig, ModelInfo, RunningModel
from app.core.hosts.engine import ENGINE_ID
from app.core.hosts.health import HealthMonitor, HostState, HostStatus
from app.core.hosts.registry import HostRegistry
from app.core.mcp.config import default_mcp_path
from app.core.metrics.latency import LatencyBook
from app.core.settings import default_log_dir
from app.ui.about import AboutDialog, HostVersion, ShortcutsDialog
from app.ui.adapters import DiscoverySignals, HealthSignals, RegistrySignals
from app.ui.all_models import AllModelsPanel
from app.ui.banner import Banner
from app.ui.chat.panel import ChatPanel
from app.ui.delegates import BadgeDelegate
from app.ui.details_dialog import ModelDetailsDialog
from app.ui.engine_models import EngineModelsController
from app.ui.formatting import human_size
from app.ui.frame import WindowFrame
from app.ui.hardware_panel import HardwarePanel
from app.ui.host_chooser import HostChooserDialog
from app.ui.host_dialog import HostDialog, TelemetryFields
from app.ui.icons import app_icon
from app.ui.item_models import (
    FleetModel,
    HostModels,
    HostRow,
    ModelRow,
    ModelTableModel,
)
from app.ui.latency_panel import LatencyPanel
from app.ui.log_panel import LogPanel
from app.ui.mcp_controller import McpController
from app.ui.mcp_panel import McpPanel
from app.ui.pull_dialog import PullDialog
from app.ui.scan_dialog import ScanDialog
from app.ui.settings_apply import SettingsApplier
from app.ui.settings_dialog import DataPaths, SettingsDialog
from app.ui.single_instance import raise_window
from app.ui.suggestions import SuggestionsStrip
from app.ui.tasks import TaskRunner
from app.ui.theme import apply_theme
from app.ui.tray import FleetTray

if TYPE_CHECKING:
    from app.core.chat.engine import ChatEngine
    from app.core.logs import LogSetup
    from app.core.mcp.config import McpConfigStore
    from app.core.mcp.manager import McpManager
    from app.core.telemetry.service import TelemetryService

log = logging.getLogger(__name__)

NO_HOST_MESSAGE = (
    "No model host is reachable. Start Ollama on this computer, or add a host on your network."
)

#: Tooltips of the model buttons when the host can do the action.
_TIPS = {
    "pull": "Download a model onto this host",
    "load": "Load the model into memory now",
    "unload": "Free the memory the model uses",
    "delete": "Remove the model's files from the host",
    "unload_all": "Unload every loaded model of this host",
}

_REASON_STYLE = {
    HostState.DEGRADED: "color: #7a5200; background: #fff4d6; padding: 3px 6px;",
    HostState.OFFLINE: "color: #5c1010; background: #fde8e8; padding: 3px 6px;",
}


def _keys(standard: QKeySequence.StandardKey, fallback: str) -> list[QKeySequence]:
    """The platform's keys for a standard action, or ``fallback`` where it has none."""
    keys = [k for k in QKeySequence.keyBindings(standard) if not k.isEmpty()]
    return keys or [QKeySequence(fallback)]


def _preferred(config: HostConfig, current: HostRow | None) -> bool:
    """Whether a host that just became reachable should become the current host while
    Corral still chooses for the user: when none is selected or the selected one is not
    reachable, and over the built-in engine (online at once, with nothing to reach), so
    that a host the user runs (Ollama, a server on the LAN) is what they see first."""
    if current is None or not current.reachable:
        return True
    return current.config.id == ENGINE_ID and config.id != ENGINE_ID


class MainWindow(WindowFrame):
    """Corral's main window.

    Left: the fleet, every host grouped by the machine it runs on (status dot, name, type
    badge, port, version, round trip; a machine row sums its hosts up), with Add host…,
    Scan network…, Edit… and Remove. Right, in tabs: the models of the selected host with
    Pull…, Load, Unload, Unload all…, Delete… and Details…; and all models merged across
    the reachable hosts with Load, Unload, Pull to… and Delete… for a model on one host.
    Hosts that announce themselves on the network show in a suggestions strip with Keep.
    A banner at the top carries problems and errors. Below, two docks (movable,
    floatable, shown and hidden from the View menu) follow the selected host: Hardware
    (live GPU / CPU / memory plots from the injected telemetry service, with markers
    where models were loaded or unloaded) and Latency (round trips of every host; time
    to first token, tokens/s and load time per model from the injected latency book).

    Health comes from the injected :class:`HealthMonitor`: the window never probes on its
    own; it shows each state change at once. Models are read on a timer and after
    actions. Every command runs as a task; the window stays responsive meanwhile.

    Attributes:
        registry, health, discovery: the injected services (discovery may be None).
        banner: the message strip at the top.
        suggestions_strip: hosts found by mDNS, with Keep.
        fleet_model, fleet_view: the fleet tree.
        model_tabs: the "Host models" and "All models" tabs.
        host_title, host_reason, models_status: above the selected host's models (name,
            why it is degraded or offline, counts or "Loading…").
        model_model, model_view: the models of the selected host.
        all_models: the :class:`AllModelsPanel` (its model, view and buttons).
        telemetry, latency: the injected telemetry service and latency book (None: the
            docks say that telemetry is off, and start hidden).
        chat: the injected :class:`ChatEngine` (None: the Chat dock starts hidden).
        chat_panel, chat_dock: the :class:`ChatPanel` and its dock.
        mcp, mcp_store: the injected MCP manager and config store (None: no MCP dock).
        mcp_panel, mcp_controller, mcp_dock: the :class:`McpPanel`, what acts on its
            requests, and its dock (tabbed with Hardware and Latency).
        hardware_panel, hardware_dock: the :class:`HardwarePanel` and its dock.
        latency_panel, latency_dock: the :class:`LatencyPanel` and its dock.
        add_host_button, scan_button, edit_host_button, remove_host_button: host buttons.
        pull_button, load_button, unload_button, unload_all_button, delete_button,
        details_button, refresh_button: the model buttons.
        add_model_button: "Add model…", in place of Pull… while the built-in engine is the
            current host.
        engine_models: the :class:`EngineModelsController` behind it (import, download,
            the models folder, GGUF files dropped onto the fleet).
        timer: the models refresh timer (``registry.settings.refresh_interval_s``).
        pull_dialogs: the pull dialogs that are open or still stopping.
        scan_dialog: the scan dialog while it is open or still stopping, else None.

    Object names (for tests and style sheets): mainWindow, banner, suggestionsStrip,
    fleetView, modelTabs, hostModelsTab, allModelsTab, allModelsView, allModelsStatus,
    hostTitle, hostReason, modelsStatus, modelsView, addHostButton, scanButton,
    editHostButton, removeHostButton, pullModelButton, addModelButton, loadButton, unloadButton,
    unloadAllButton, deleteButton, detailsButton, refreshButton, allLoadButton,
    allUnloadButton, allPullButton, allDeleteButton, hardwareDock, latencyDock, chatDock,
    mcpDock; actions addHostAction, scanAction, refreshAction, unloadAllAction, quitAction,
    hardwareDockAction, latencyDockAction, chatDockAction, mcpDockAction; the confirmations
    confirmRemoveHost,
    confirmDelete and confirmUnloadAll (accept buttons with the suffix Accept).

    Signals:
        closed: the window was closed.
        healthUpdated(str): a status of the host with this id was shown.
        modelsRefreshed(str): the models table was filled for the host with this id.
        allModelsRefreshed: the all-models view was filled.
        actionFinished(str): an action on a model ended (text: "load llama3.2:latest").
    """

    closed = Signal()
    healthUpdated = Signal(str)
    modelsRefreshed = Signal(str)
    allModelsRefreshed = Signal()
    actionFinished = Signal(str)

    def __init__(
        self,
        registry: HostRegistry,
        health: HealthMonitor,
        discovery: DiscoveryService | None = None,
        *,
        telemetry: TelemetryService | None = None,
        latency: LatencyBook | None = None,
        chat: ChatEngine | None = None,
        mcp: McpManager | None = None,
        mcp_store: McpConfigStore | None = None,
        log_setup: LogSetup | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._setup(
            registry,
            health,
            discovery,
            telemetry=telemetry,
            latency=latency,
            chat=chat,
            mcp=mcp,
            mcp_store=mcp_store,
            log_setup=log_setup,
        )

    @classmethod
    def adopt(
        cls,
        frame: WindowFrame,
        registry: HostRegistry,
        health: HealthMonitor,
        discovery: DiscoveryService | None = None,
        *,
        telemetry: TelemetryService | None = None,
        latency: LatencyBook | None = None,
        chat: ChatEngine | None = None,
        mcp: McpManager | None = None,
        mcp_store: McpConfigStore | None = None,
        log_setup: LogSetup | None = None,
    ) -> MainWindow:
        """Build the window's content into ``frame``, the window already on screen, and
        return it as the main window (the same object: nothing is re-created or moved).

        Start-up shows the light frame first (it needs only Qt) and builds the rest once
        it has painted, so the window appears at once and fills in."""
        frame.__class__ = cls
        window: MainWindow = frame  # type: ignore[assignment]
        window._setup(
            registry,
            health,
            discovery,
            telemetry=telemetry,
            latency=latency,
            chat=chat,
            mcp=mcp,
            mcp_store=mcp_store,
            log_setup=log_setup,
        )
        return window

    def _setup(
        self,
        registry: HostRegistry,
        health: HealthMonitor,
        discovery: DiscoveryService | None = None,
        *,
        telemetry: TelemetryService | None = None,
        latency: LatencyBook | None = None,
        chat: ChatEngine | None = None,
        mcp: McpManager | None = None,
        mcp_store: McpConfigStore | None = None,
        log_setup: LogSetup | None = None,
    ) -> None:
        self.setWindowIcon(app_icon())
        self.registry = registry
        self.health = health
        self.discovery = discovery
        self.telemetry = telemetry
        self.latency = latency
        self.chat = chat
        self.mcp = mcp
        self.mcp_store = mcp_store
        self.log_setup = log_setup
        self._tasks = TaskRunner(self.show_error)
        self._registry_signals = RegistrySignals(registry, self)
        self._health_signals = HealthSignals(health, self)
        self._discovery_signals = DiscoverySignals(discovery, self) if discovery else None
        self._models_task: asyncio.Task[Any] | None = None
        self._models_task_host: str | None = None
        self._shown_host: HostConfig | None = None  # the host whose models are shown
        self._all_task: asyncio.Task[Any] | None = None
        self._all_stale = True
        self._models_error: dict[str, str] = {}  # last models error shown, per host
        self._offline_errors: dict[str, str] = {}  # "went offline" errors shown, per host
        self._busy: set[tuple[str, str]] = set()  # (host id, model) with an action running
        self._pull_dialogs: list[PullDialog] = []
        self.scan_dialog: ScanDialog | None = None
        self._collapsed: set[str] = set()  # machines the user folded
        self._none_online: bool | None = None
        # Until the user picks a host, the first host found online is selected for them.
        self._auto_select = True
        self._selecting = False
        self._started = False
        self._problems_shown = 0  # how many of registry.problems the banner has shown

        self._build()
        self._build_docks()
        self.engine_models = EngineModelsController(self, self._tasks, self.add_model_button)
        self.engine_models.accept_drops_on(self.fleet_view)
        self._quitting = False  # Quit was chosen: closing ends Corral even with a tray
        self._told_about_tray = False
        self.tray = FleetTray(
            registry,
            health,
            self,
            close_to_tray=registry.settings.close_to_tray,
            notifications=registry.settings.notifications,
        )
        self.timer = QTimer(self)
        self.timer.setObjectName("refreshTimer")
        self.timer.setInterval(max(250, int(registry.settings.refresh_interval_s * 1000)))
        self._wire()

        self._set_fleet(registry.hosts())
        self.latency_panel.set_hosts(registry.hosts())
        rows = self.fleet_model.rows()
        if rows:
            self.select_host(rows[0].config.id, by_user=False)
        else:
            self._show_host_state()
        if discovery is not None:
            self._show_suggestions(discovery.suggestions)
        self._show_new_problems()
        self._update_actions()
        self._update_fleet_summary()
        self.remember_default_layout()
        self.restore_saved_layout()
        self._build_settings()

    # -- building ---------------------------------------------------------------------
    def _build(self) -> None:
        self.banner = Banner(self)
        self.suggestions_strip = SuggestionsStrip(self)

        # the fleet
        self.fleet_model = FleetModel(self)
        self.fleet_view = QTreeView(self)
        self.fleet_view.setObjectName("fleetView")
        self.fleet_view.setModel(self.fleet_model)
        self.fleet_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.fleet_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.fleet_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.fleet_view.setAllColumnsShowFocus(True)
        self.fleet_view.setUniformRowHeights(True)
        self.fleet_view.setExpandsOnDoubleClick(False)
        self._badges = BadgeDelegate(self.fleet_view)
        self.fleet_view.setItemDelegateForColumn(FleetModel.TYPE, self._badges)
        fh = self.fleet_view.header()
        fh.setStretchLastSection(False)
        fh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # the names always show in full; the version (the longest text, and the least
        # needed) takes what is left and is elided when the panel is narrow
        fh.setSectionResizeMode(FleetModel.VERSION, QHeaderView.ResizeMode.Stretch)
        fh.setMinimumSectionSize(24)
        self.fleet_view.setMinimumWidth(380)
        self.add_host_button = self._button("Add host…", "addHostButton")
        self.scan_button = self._button("Scan network…", "scanButton")
        self.edit_host_button = self._button("Edit…", "editHostButton")
        self.remove_host_button = self._button("Remove", "removeHostButton")
        self.scan_button.setToolTip("Look for model hosts on your network")
        fleet_title = QLabel("<b>Fleet</b>", self)
        host_buttons = QHBoxLayout()
        for b in (
            self.add_host_button,
            self.scan_button,
            self.edit_host_button,
            self.remove_host_button,
        ):
            host_buttons.addWidget(b)
        host_buttons.addStretch(1)
        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(fleet_title)
        left_layout.addWidget(self.fleet_view, 1)
        left_layout.addLayout(host_buttons)

        # the models of the selected host
        host_tab = QWidget(self)
        host_tab.setObjectName("hostModelsTab")
        self.host_title = QLabel(host_tab)
        self.host_title.setObjectName("hostTitle")
        self.host_title.setTextFormat(Qt.TextFormat.PlainText)
        self.host_title.setStyleSheet("font-weight: bold;")
        self.host_reason = QLabel(host_tab)
        self.host_reason.setObjectName("hostReason")
        self.host_reason.setWordWrap(True)
        self.host_reason.setTextFormat(Qt.TextFormat.PlainText)
        self.host_reason.hide()
        self.models_status = QLabel(host_tab)
        self.models_status.setObjectName("modelsStatus")
        self.models_status.setWordWrap(True)
        # The host's own VRAM figure for its loaded models next to what its server
        # processes use on the GPUs (NVML): shown when both are known.
        self.vram_check = QLabel(host_tab)
        self.vram_check.setObjectName("vramCheck")
        self.vram_check.setWordWrap(True)
        self.vram_check.hide()
        self.model_model = ModelTableModel(self)
        self.model_view = QTableView(host_tab)
        self.model_view.setObjectName("modelsView")
        self.model_view.setModel(self.model_model)
        self._setup_table(self.model_view)
        mh = self.model_view.horizontalHeader()
        mh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        mh.setSectionResizeMode(ModelTableModel.NAME, QHeaderView.ResizeMode.Stretch)
        self.pull_button = self._button("Pull…", "pullModelButton")
        self.add_model_button = self._button("Add model…", "addModelButton")  # built-in engine
        self.add_model_button.hide()
        self.load_button = self._button("Load", "loadButton")
        self.unload_button = self._button("Unload", "unloadButton")
        self.unload_all_button = self._button("Unload all…", "unloadAllButton")
        self.delete_button = self._button("Delete…", "deleteButton")
        self.details_button = self._button("Details…", "detailsButton")
        model_buttons = QHBoxLayout()
        for b in (
            self.pull_button,
            self.add_model_button,
            self.load_button,
            self.unload_button,
            self.unload_all_button,
            self.delete_button,
            self.details_button,
        ):
            model_buttons.addWidget(b)
        model_buttons.addStretch(1)
        host_layout = QVBoxLayout(host_tab)
        host_layout.setContentsMargins(6, 6, 6, 6)
        host_layout.addWidget(self.host_title)
        host_layout.addWidget(self.host_reason)
        host_layout.addWidget(self.models_status)
        host_layout.addWidget(self.vram_check)
        host_layout.addWidget(self.model_view, 1)
        host_layout.addLayout(model_buttons)

        # all models, and the tabs
        self.all_models = AllModelsPanel(self)
        self.model_tabs = QTabWidget(self)
        self.model_tabs.setObjectName("modelTabs")
        self.model_tabs.addTab(host_tab, "Host models")
        self.model_tabs.addTab(self.all_models, "All models")
        self.refresh_button = self._button("Refresh", "refreshButton")
        self.refresh_button.setToolTip("Check every host now and reload the models")
        self.model_tabs.setCornerWidget(self.refresh_button, Qt.Corner.TopRightCorner)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.model_tabs)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([480, 660])
        self.splitter.setChildrenCollapsible(False)

        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.addWidget(self.banner)
        layout.addWidget(self.suggestions_strip)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self.statusBar().setObjectName("statusBar")

        self.add_host_action = self._action("&Add host…", "addHostAction", "Ctrl+Shift+H")
        self.scan_action = self._action("&Scan network…", "scanAction", "Ctrl+Shift+S")
        self.refresh_action = self._action("&Refresh now", "refreshAction")
        self.refresh_action.setShortcuts(_keys(QKeySequence.StandardKey.Refresh, "F5"))
        self.pull_action = self._action("&Pull a model…", "pullAction", "Ctrl+P")
        self.unload_all_action = self._action("&Unload all models", "unloadAllAction")
        self.settings_action = self._action("S&ettings…", "settingsAction", "Ctrl+,")
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.quit_action = self._action("&Quit", "quitAction")
        self.quit_action.setShortcuts(_keys(QKeySequence.StandardKey.Quit, "Ctrl+Q"))
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.reset_layout_action = self._action("&Reset layout", "resetLayoutAction")
        self.reset_layout_action.setToolTip("Put every panel back where it was at first start")
        self.shortcuts_action = self._action("&Keyboard shortcuts", "shortcutsAction", "Ctrl+/")
        self.about_action = self._action("&About Corral", "aboutAction")
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        corral_menu = self.menuBar().addMenu("&Corral")
        corral_menu.setObjectName("corralMenu")
        corral_menu.addAction(self.add_host_action)
        corral_menu.addAction(self.scan_action)
        corral_menu.addSeparator()
        corral_menu.addAction(self.settings_action)
        corral_menu.addSeparator()
        corral_menu.addAction(self.quit_action)
        host_menu = self.menuBar().addMenu("&Host")
        host_menu.setObjectName("hostMenu")
        host_menu.addAction(self.refresh_action)
        host_menu.addAction(self.pull_action)
        host_menu.addAction(self.unload_all_action)
        self.fleet_summary = QLabel(self)
        self.fleet_summary.setObjectName("fleetSummary")
        self.statusBar().addPermanentWidget(self.fleet_summary)
        if self.discovery is None:
            for widget in (self.scan_button, self.scan_action):
                widget.setEnabled(False)
                widget.setToolTip("Network discovery is not available.")
        self.setMinimumSize(820, 440)
        self.resize(1180, 660)

    def _build_docks(self) -> None:
        """The Hardware and Latency docks, tabbed together under the models, the Chat
        dock on the right, and the View menu that shows or hides them."""
        self.hardware_panel = HardwarePanel(self.telemetry, parent=self)
        self.latency_panel = LatencyPanel(self.health, self.latency, parent=self)
        self.hardware_dock = self._dock("Hardware", "hardwareDock", self.hardware_panel)
        self.latency_dock = self._dock("Latency", "latencyDock", self.latency_panel)
        self.tabifyDockWidget(self.hardware_dock, self.latency_dock)
        self.hardware_dock.setVisible(self.telemetry is not None)
        self.latency_dock.setVisible(self.latency is not None)
        self.hardware_dock.raise_()
        self.chat_panel = ChatPanel(self.chat, self.registry, self.health, parent=self)
        self.chat_dock = self._dock("Chat", "chatDock", self.chat_panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.chat_dock)
        # the chat takes the whole right side; the graphs sit under the fleet and models
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setCorner(Qt.Corner.TopRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.chat_dock.setVisible(self.chat is not None)
        self.mcp_panel: McpPanel | None = None
        self.mcp_controller: McpController | None = None
        self.mcp_dock: QDockWidget | None = None
        docks = [(self.chat_dock, "chatDockAction")]
        if self.mcp is not None:
            self.mcp_panel = McpPanel(self.mcp, parent=self)
            if self.mcp_store is not None:
                self.mcp_controller = McpController(
                    self.mcp_panel, self.mcp_store, self.mcp, parent=self
                )
            self.mcp_dock = self._dock("MCP servers", "mcpDock", self.mcp_panel)
            self.tabifyDockWidget(self.latency_dock, self.mcp_dock)
            self.hardware_dock.raise_()
            docks.append((self.mcp_dock, "mcpDockAction"))
        if self.mcp is not None:
            self.chat_panel.tool_servers = self.mcp.statuses
        if self.chat is not None and self.chat.approver is None:
            self.chat.approver = self.chat_panel  # tool calls are asked about in the chat
        self.log_panel: LogPanel | None = None
        self.log_dock: QDockWidget | None = None
        if self.log_setup is not None:
            self.log_panel = LogPanel(self.log_setup.buffer, self.log_setup, parent=self)
            self.log_dock = self._dock("Log", "logDock", self.log_panel)
            self.tabifyDockWidget(self.mcp_dock or self.latency_dock, self.log_dock)
            self.hardware_dock.raise_()
            docks.append((self.log_dock, "logDockAction"))
        view_menu = self.menuBar().addMenu("&View")
        view_menu.setObjectName("viewMenu")
        for number, (dock, name) in enumerate(
            (
                *docks,
                (self.hardware_dock, "hardwareDockAction"),
                (self.latency_dock, "latencyDockAction"),
            ),
            start=1,
        ):
            action = dock.toggleViewAction()
            action.setObjectName(name)
            action.setShortcut(QKeySequence(f"Alt+{number}"))
            view_menu.addAction(action)
            self.addAction(action)  # its shortcut works while the dock is hidden too
        view_menu.addSeparator()
        view_menu.addAction(self.reset_layout_action)
        self.view_menu = view_menu
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.setObjectName("helpMenu")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)
        self.help_menu = help_menu
        if self.telemetry is not None or self.latency is not None:
            screen = self.screen().availableGeometry().height()
            self.resize(self.width(), max(self.minimumHeight(), min(900, screen - 40)))
            self.resizeDocks([self.hardware_dock], [430], Qt.Orientation.Vertical)
        if self.chat is not None:
            screen_w = self.screen().availableGeometry().width()
            self.resize(max(self.width(), min(1500, screen_w - 40)), self.height())
            self.resizeDocks([self.chat_dock], [640], Qt.Orientation.Horizontal)

    def _dock(self, title: str, name: str, panel: QWidget) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(panel)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        return dock

    def _button(self, text: str, name: str) -> QPushButton:
        button = QPushButton(text, self)
        button.setObjectName(name)
        return button

    def _action(self, text: str, name: str, keys: str = "") -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        if keys:
            action.setShortcut(QKeySequence(keys))
        return action

    @staticmethod
    def _setup_table(view: QTableView) -> None:
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
        self._health_signals.statusChanged.connect(self._apply_status)
        self._health_signals.probed.connect(self._apply_status)
        if self._discovery_signals is not None:
            self._discovery_signals.suggestionsChanged.connect(self._show_suggestions)
        self.suggestions_strip.keepRequested.connect(self.keep_suggestion)
        self.suggestions_strip.dismissRequested.connect(self.dismiss_suggestion)
        self.banner.addHostRequested.connect(self.open_add_host_dialog)
        self.add_host_button.clicked.connect(self.open_add_host_dialog)
        self.add_host_action.triggered.connect(self.open_add_host_dialog)
        self.scan_button.clicked.connect(self.open_scan_dialog)
        self.scan_action.triggered.connect(self.open_scan_dialog)
        self.edit_host_button.clicked.connect(self.open_edit_host_dialog)
        self.remove_host_button.clicked.connect(self.confirm_remove_host)
        self.fleet_view.doubleClicked.connect(self._on_fleet_double_clicked)
        self.fleet_view.selectionModel().currentRowChanged.connect(self._on_host_selected)
        self.fleet_view.collapsed.connect(self._on_machine_collapsed)
        self.fleet_view.expanded.connect(self._on_machine_expanded)
        self.model_view.selectionModel().currentRowChanged.connect(self._update_actions)
        self.model_view.doubleClicked.connect(self.show_details)
        self.pull_button.clicked.connect(lambda: self.open_pull_dialog())
        self.load_button.clicked.connect(self.load_selected)
        self.unload_button.clicked.connect(self.unload_selected)
        self.unload_all_button.clicked.connect(self.confirm_unload_all)
        self.unload_all_action.triggered.connect(self.confirm_unload_all)
        self.delete_button.clicked.connect(self.confirm_delete)
        self.details_button.clicked.connect(self.show_details)
        self.model_tabs.currentChanged.connect(self._on_tab_changed)
        self.all_models.view.selectionModel().currentRowChanged.connect(self._update_actions)
        self.all_models.model.modelReset.connect(self._update_actions)
        self.all_models.load_button.clicked.connect(self.load_selected_copy)
        self.all_models.unload_button.clicked.connect(self.unload_selected_copy)
        self.all_models.pull_button.clicked.connect(self.choose_pull_target)
        self.all_models.delete_button.clicked.connect(self.confirm_delete_copy)
        self.refresh_button.clicked.connect(self.refresh_now)
        self.refresh_action.triggered.connect(self.refresh_now)
        self.quit_action.triggered.connect(self.quit_corral)
        self.tray.toggleWindowRequested.connect(self.toggle_visible)
        self.tray.quitRequested.connect(self.quit_corral)
        self.tray.message.connect(self._status)
        self.timer.timeout.connect(self._tick)
        self.healthUpdated.connect(self._update_actions)
        self._registry_signals.hostsChanged.connect(self.chat_panel.on_hosts_changed)
        self._health_signals.statusChanged.connect(self.chat_panel.on_host_status)
        self._registry_signals.hostsChanged.connect(self._update_fleet_summary)
        self._health_signals.probed.connect(self._update_fleet_summary)
        self.pull_action.triggered.connect(self._pull_or_add_model)
        self.reset_layout_action.triggered.connect(self.reset_layout)
        self.shortcuts_action.triggered.connect(self.show_shortcuts)
        self.about_action.triggered.connect(self.show_about)
        self.settings_action.triggered.connect(self.open_settings)

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        """Read models now and then on the timer, and look for hosts on this machine
        (call with the event loop running; the health monitor is started by its owner)."""
        if self._started:
            return
        self._started = True
        self.tray.show()
        self.tray.set_window_visible(self.isVisible())
        self.refresh_models(force=True)
        self.timer.start()
        self.hardware_panel.start()
        self.latency_panel.start()
        self.chat_panel.start()
        if self.discovery is not None:
            self._tasks.spawn(self._find_local_hosts(self.discovery), name="local hosts")

    async def _find_local_hosts(self, discovery: DiscoveryService) -> None:
        found = await discovery.refresh_local()
        if found:
            names = ", ".join(c.name for c in found)
            self._status(f"Found on this computer: {names}.")

    def refresh_now(self) -> None:
        """Ask the monitor to probe every host now, and reload the models."""
        for row in self.fleet_model.rows():
            self.health.probe_soon(row.config.id)
        self.refresh_models(force=True)
        self._all_stale = True
        if self._all_models_visible():
            self.refresh_all_models(force=True)

    def _tick(self) -> None:
        self.refresh_models()
        if self._all_models_visible():
            self.refresh_all_models()
        self._tasks.spawn(self.registry.close_retired(), name="close retired hosts")

    async def shutdown(self) -> None:
        """Stop the timer and every task of the window and its dialogs, and wait for them."""
        self.timer.stop()
        self.hardware_panel.detach()
        self.latency_panel.detach()
        self._registry_signals.detach()
        self._health_signals.detach()
        if self._discovery_signals is not None:
            self._discovery_signals.detach()
        for dialog in list(self._pull_dialogs):
            await dialog.cancel_and_wait()
        if self.scan_dialog is not None:
            await self.scan_dialog.cancel_and_wait()
        await self.chat_panel.shutdown()
        if self.mcp_controller is not None:
            await self.mcp_controller.shutdown()
        if self.mcp_panel is not None:
            await self.mcp_panel.shutdown()
        await self.tray.shutdown()
        await self._tasks.cancel_all()

    # -- the shell: layout, status summary, About, shortcuts ------------------------
    def restore_saved_layout(self) -> None:
        """Geometry and docks as they were saved at the last close (if they fit)."""
        settings = self.registry.settings
        self.restore_geometry(settings.window_geometry)
        self.restore_layout(settings.window_state)

    def save_layout(self) -> None:
        """Keep the geometry and dock layout in the settings, for the next start."""
        geometry, state = self.saved_layout()
        settings = self.registry.settings
        if (settings.window_geometry, settings.window_state) == (geometry, state):
            return
        settings.window_geometry = geometry
        settings.window_state = state
        problem = self.registry.save_settings()
        if problem:
            log.warning("The window layout was not saved: %s", problem)

    def fleet_summary_text(self) -> str:
        """ "3 hosts: 2 online, 1 offline · 2 models loaded" for the status bar."""
        rows = self.fleet_model.rows()
        if not rows:
            return "No hosts"
        counts: dict[str, int] = {}
        loaded = 0
        for row in rows:
            status = self.health.status(row.config.id)
            counts[status.state.value] = counts.get(status.state.value, 0) + 1
            if status.reachable:
                loaded += len(self.health.loaded(row.config.id) or ())
        order = ("online", "degraded", "offline", "unknown")
        words = {"unknown": "not checked yet"}
        parts = [f"{counts[s]} {words.get(s, s)}" for s in order if counts.get(s)]
        hosts = f"{len(rows)} host{'s' if len(rows) != 1 else ''}"
        models = f"{loaded} model{'s' if loaded != 1 else ''} loaded"
        return f"{hosts}: {', '.join(parts)} · {models}"

    def _update_fleet_summary(self, *_: object) -> None:
        self.fleet_summary.setText(self.fleet_summary_text())

    def about_hosts(self) -> list[HostVersion]:
        out = []
        for row in self.fleet_model.rows():
            status = self.health.status(row.config.id)
            if status.version:
                version = status.version
            elif status.reachable:
                version = "unknown"
            else:
                version = f"not known ({status.state.value})"
            out.append(HostVersion(row.config.name, row.config.kind.value, row.config.url, version))
        return out

    def show_about(self) -> AboutDialog:
        dialog = AboutDialog(self.about_hosts(), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def show_shortcuts(self) -> ShortcutsDialog:
        dialog = ShortcutsDialog(self.findChildren(QAction), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def _build_settings(self) -> None:
        """What applies a change made in the Settings dialog to the running app."""
        settings = self.registry.settings
        self.hardware_panel.set_window(settings.graph_window_s)
        self.latency_panel.set_window(settings.graph_window_s)

        def graph_window(seconds: float) -> None:
            self.hardware_panel.set_window(seconds)
            self.latency_panel.set_window(seconds)

        def sample_interval(seconds: float) -> None:
            self.hardware_panel.set_interval(seconds)
            self.latency_panel.set_interval(seconds)

        def theme(name: str) -> None:
            app = QApplication.instance()
            if isinstance(app, QApplication):
                apply_theme(app, name)

        self.settings_applier = SettingsApplier(
            registry=self.registry,
            health=self.health,
            telemetry=self.telemetry,
            discovery=self.discovery,
            on_theme=theme,
            on_tray=self.set_tray_behaviour,
            on_graph_window=graph_window,
            on_refresh_interval=lambda s: self.timer.setInterval(max(250, int(s * 1000))),
            on_telemetry_interval=sample_interval,
            **({"on_log_level": self.log_setup.set_level} if self.log_setup else {}),
        )
        self.settings_dialog: SettingsDialog | None = None
        self.close_to_tray = settings.close_to_tray
        self.notifications = settings.notifications

    def set_tray_behaviour(self, close_to_tray: bool, notifications: bool) -> None:
        """Whether closing the window keeps Corral in the tray, and whether it notifies."""
        self.close_to_tray = close_to_tray
        self.notifications = notifications
        self.tray.apply_settings(close_to_tray, notifications)

    def open_settings(self) -> SettingsDialog:
        """The Settings dialog (one at a time; changes apply as soon as they are saved)."""
        if self.settings_dialog is not None:
            self.settings_dialog.show()
            self.settings_dialog.raise_()
            self.settings_dialog.activateWindow()
            return self.settings_dialog
        paths = DataPaths(
            settings_file=self.registry.settings_path,
            chat_db=self.chat.store.path if self.chat else self.registry.settings.chat_path(),
            mcp_config=self.mcp_store.path if self.mcp_store else default_mcp_path(),
            log_dir=self.log_setup.directory if self.log_setup else default_log_dir(),
        )
        dialog = SettingsDialog(
            self.registry.settings,
            self.registry.save_settings,
            paths=paths,
            applier=self.settings_applier,
            parent=self,
        )
        dialog.finished.connect(self._settings_closed)
        self.settings_dialog = dialog
        dialog.open()
        return dialog

    def _settings_closed(self, _result: int) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.deleteLater()
        self.settings_dialog = None

    def toggle_visible(self) -> None:
        """Show Corral / Hide Corral, from the tray."""
        if self.isVisible() and not self.isMinimized():
            self.hide()
        else:
            raise_window(self)

    def quit_corral(self) -> None:
        """End Corral (Quit in the menu or the tray), also when closing only hides."""
        self._quitting = True
        self.close()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        tray = getattr(self, "tray", None)  # the frame shows before the tray exists
        if tray is not None:
            tray.set_window_visible(True)

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        tray = getattr(self, "tray", None)
        if tray is not None:
            tray.set_window_visible(False)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._quitting and self.tray.keeps_running_on_close():
            event.ignore()
            self.save_layout()
            self.hide()
            if not self._told_about_tray:
                self._told_about_tray = True
                self.tray.notify(
                    "Corral is still running",
                    "Corral keeps watching your hosts from the tray; choose Quit Corral there "
                    "to end it.",
                )
            return
        self.save_layout()
        self.timer.stop()
        self.hardware_panel.stop()
        self.latency_panel.stop()
        for dialog in list(self._pull_dialogs):
            dialog.cancel_pull()
        if self.scan_dialog is not None:
            self.scan_dialog.cancel_scan()
        self._tasks.cancel_all_nowait()
        self.chat_panel.stop()
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

    # -- the fleet --------------------------------------------------------------------
    def current_host_id(self) -> str | None:
        row = self.current_host()
        return row.config.id if row else None

    def current_host(self) -> HostRow | None:
        return self.fleet_model.host_at(self.fleet_view.currentIndex())

    def select_host(self, host_id: str, *, by_user: bool = True) -> None:
        """Make ``host_id`` the current host (``by_user=False``: a choice made for the user)."""
        index = self.fleet_model.index_of(host_id, FleetModel.NAME)
        if not index.isValid():
            return
        if by_user:
            self._auto_select = False
        self._selecting = True
        try:
            self.fleet_view.selectionModel().setCurrentIndex(
                index,
                QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows,
            )
        finally:
            self._selecting = False

    def _set_fleet(self, hosts: list[HostConfig]) -> None:
        """Fill the fleet tree, keeping folded machines folded."""
        self.fleet_model.set_hosts(hosts, self.health.status)
        for top in range(self.fleet_model.rowCount()):
            self.fleet_view.setFirstColumnSpanned(top, QModelIndex(), True)
            machine = self.fleet_model.machines()[top]
            self.fleet_view.setExpanded(
                self.fleet_model.index(top, 0), machine not in self._collapsed
            )

    def _on_machine_collapsed(self, index: QModelIndex) -> None:
        if self.fleet_model.host_at(index) is None and index.isValid():
            self._collapsed.add(self.fleet_model.machines()[index.row()])

    def _on_machine_expanded(self, index: QModelIndex) -> None:
        if self.fleet_model.host_at(index) is None and index.isValid():
            self._collapsed.discard(self.fleet_model.machines()[index.row()])

    def _on_fleet_double_clicked(self, index: QModelIndex) -> None:
        if self.fleet_model.host_at(index) is not None:
            self.open_edit_host_dialog()
        else:
            self.fleet_view.setExpanded(index, not self.fleet_view.isExpanded(index))

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
        self._set_fleet(hosts)
        self.latency_panel.set_hosts(hosts)
        gone = [h for h in self._offline_errors if self.fleet_model.get(h) is None]
        for host_id in gone:
            self._clear_offline_error(host_id)
        if selected and self.fleet_model.get(selected) is not None:
            self.select_host(selected, by_user=False)
        elif self.fleet_model.rows():
            self.select_host(self.fleet_model.rows()[0].config.id, by_user=False)
        else:
            self._on_host_selected(QModelIndex(), QModelIndex())
        self._update_none_online()
        self._all_stale = True
        if self._all_models_visible():
            self.refresh_all_models(force=True)
        self._update_actions()

    def _on_host_selected(self, current: QModelIndex, previous: QModelIndex) -> None:
        if not self._selecting:
            self._auto_select = False  # the user clicked or used the keyboard
        row = self.current_host()
        same = row is not None and self._shown_host == row.config
        if not same:
            if self._models_task is not None and not self._models_task.done():
                self._models_task.cancel()
            self.model_model.clear()
            self._shown_host = row.config if row else None
        self.hardware_panel.set_host(row.config.id if row else None, row.config.name if row else "")
        self.latency_panel.set_host(row.config.id if row else None)
        self._show_host_state()
        self._update_actions()
        if self._started and not same:
            self.refresh_models(force=True)

    def _show_host_state(self) -> None:
        row = self.current_host()
        if row is None:
            self.host_title.setText("No host selected")
            self.host_reason.hide()
            self.models_status.setText(
                "Select a host to see its models."
                if self.fleet_model.host_count()
                else "Add a host to see its models."
            )
            self.model_model.clear()
            self.model_view.setEnabled(False)
            return
        config = row.config
        self.host_title.setText(f"{config.name}  ·  {config.kind.label}  ·  {config.url}")
        state = row.status.state
        style = _REASON_STYLE.get(state)
        if style is not None and row.reason:
            self.host_reason.setStyleSheet(style)
            word = "Degraded" if state is HostState.DEGRADED else "Offline"
            self.host_reason.setText(f"{word}: {row.reason}")
            self.host_reason.show()
        else:
            self.host_reason.hide()
        if state is HostState.OFFLINE:
            self.model_model.clear()
            self.model_view.setEnabled(False)
            self.models_status.setText(
                f"{config.name} is offline; its models are listed when it answers again."
            )
        elif row.reachable:
            self.model_view.setEnabled(True)
        else:
            self.models_status.setText(f"Checking {config.name}…")

    def _apply_status(self, status: HostStatus) -> None:
        """Show a status from the health monitor: the dot, and what a change means."""
        previous = self.fleet_model.set_status(status)
        if previous is None:
            return  # not (or no longer) listed
        config = previous.config
        was = previous.status
        if (was.state, was.reason) != (status.state, status.reason):
            self._on_state_changed(config, was, status)
        self.healthUpdated.emit(config.id)

    def _on_state_changed(self, config: HostConfig, was: HostStatus, now: HostStatus) -> None:
        if was.reachable and now.state is HostState.OFFLINE:
            message = now.reason or f"{config.name} stopped answering."
            self._offline_errors[config.id] = message
            self.show_error(message)
        if now.reachable:
            self._models_error.pop(config.id, None)
            if self._clear_offline_error(config.id):
                self._status(f"{config.name} is back online.")
        current = self.current_host()
        if now.reachable and self._auto_select and _preferred(config, current):
            self.select_host(config.id, by_user=False)  # reads its models
        elif current is not None and config.id == current.config.id:
            self._show_host_state()
            if now.reachable and not was.reachable:
                self.refresh_models(force=True)
        self._update_none_online()
        if now.reachable != was.reachable:
            self._all_stale = True
            if self._all_models_visible():
                self.refresh_all_models(force=True)

    def _clear_offline_error(self, host_id: str) -> bool:
        """Forget a host's "went offline" error; take it off the banner if it is shown."""
        gone = self._offline_errors.pop(host_id, None)
        if gone is None:
            return False
        if self.banner.message("error") == gone:
            self.banner.remove_message("error")
            if self.statusBar().currentMessage() == gone:
                self.statusBar().clearMessage()
        return True

    def _update_none_online(self) -> None:
        model = self.fleet_model
        none_online = (model.all_probed() or model.host_count() == 0) and not model.any_reachable()
        if none_online == self._none_online:
            return
        self._none_online = none_online
        if none_online:
            self.banner.set_message(
                "no-host", NO_HOST_MESSAGE, level="warning", offer_add_host=True
            )
        else:
            self.banner.remove_message("no-host")

    # -- adding, editing, removing hosts ----------------------------------------------
    def _submit_new_host(
        self, url: str, name: str, headers: list[tuple[str, str]], telemetry: TelemetryFields
    ) -> HostConfig:
        return self.registry.add(
            url,
            name,
            headers,
            agent_url=telemetry.agent_url,
            agent_token=telemetry.agent_token or "",
            exporter_url=telemetry.exporter_url,
        )

    def open_add_host_dialog(self) -> HostDialog:
        """Open the dialog that adds a host (window-modal, non-blocking)."""
        dialog = HostDialog(self._submit_new_host, parent=self)
        return self._open_host_dialog(dialog)

    def open_edit_host_dialog(self) -> HostDialog | None:
        row = self.current_host()
        if row is None:
            return None
        host_id = row.config.id

        def submit(
            url: str, name: str, headers: list[tuple[str, str]], telemetry: TelemetryFields
        ) -> HostConfig:
            return self.registry.update(
                host_id,
                url=url,
                name=name,
                headers=headers,
                agent_url=telemetry.agent_url,
                agent_token=telemetry.agent_token,
                exporter_url=telemetry.exporter_url,
            )

        try:
            missing = self.registry.missing_secrets(host_id)
        except CorralError as exc:
            self.show_error(exc.message)
            return None
        dialog = HostDialog(
            submit,
            config=row.config,
            missing_secrets=missing,
            has_agent_token=self.registry.agent_token(host_id) is not None,
            parent=self,
        )
        return self._open_host_dialog(dialog)

    def _open_host_dialog(self, dialog: HostDialog) -> HostDialog:
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.hostSaved.connect(self._on_host_saved)
        dialog.open()
        return dialog

    def _on_host_saved(self, host_id: str) -> None:
        self.select_host(host_id)
        row = self.fleet_model.get(host_id)
        if row is not None:
            self._status(f"Saved {row.config.name}.")
            self.health.probe_soon(host_id)
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

    # -- discovery --------------------------------------------------------------------
    def _show_suggestions(self, suggestions: list[Suggestion]) -> None:
        self.suggestions_strip.set_suggestions([s for s in suggestions if s.source == "mdns"])

    def keep_suggestion(self, suggestion: Suggestion) -> None:
        """Add a suggested host to the fleet (one click)."""
        if self.discovery is None:
            return
        try:
            config = self.discovery.keep(suggestion)
        except CorralError as exc:
            self.show_error(exc.message)
            return
        self._on_host_kept(config.id)

    def dismiss_suggestion(self, suggestion: Suggestion) -> None:
        if self.discovery is not None:
            self.discovery.dismiss(suggestion)

    def _on_host_kept(self, host_id: str) -> None:
        row = self.fleet_model.get(host_id)
        if row is not None:
            self._status(f"Added {row.config.name} ({row.config.kind.label}).")
            self.select_host(host_id)

    def default_scan_targets(self) -> str:
        """This machine's private networks, as the scan dialog prefills them."""
        try:
            networks = local_scan_networks(self.registry.settings.scan_max_prefix)
        except CorralError:
            return ""
        return ", ".join(str(n) for n in networks)

    def open_scan_dialog(self) -> ScanDialog | None:
        """Open the scan dialog (modeless; one at a time: a second call raises it)."""
        if self.discovery is None or self._discovery_signals is None:
            return None
        if self.scan_dialog is not None:  # open, or closed with its scan still stopping
            self.scan_dialog.show()
            self.scan_dialog.raise_()
            self.scan_dialog.activateWindow()
            return self.scan_dialog
        dialog = ScanDialog(
            self.discovery,
            self._discovery_signals,
            targets=self.default_scan_targets(),
            ports=list(self.registry.settings.scan_ports),
            parent=self,
        )
        self.scan_dialog = dialog
        dialog.hostKept.connect(self._on_host_kept)
        dialog.finished.connect(lambda _=0, d=dialog: self._dispose_scan_dialog(d))
        dialog.stateChanged.connect(lambda _s, d=dialog: self._dispose_scan_dialog(d))
        dialog.show()
        dialog.targets_edit.setFocus()
        return dialog

    def _dispose_scan_dialog(self, dialog: ScanDialog) -> None:
        """Delete the scan dialog once it is closed and its scan has ended."""
        if dialog is not self.scan_dialog or dialog.isVisible() or dialog.running:
            return
        self.scan_dialog = None
        dialog.deleteLater()

    # -- the selected host's models ---------------------------------------------------
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
        if row is None or not self._started:
            return
        if not row.reachable:
            self._show_host_state()  # models are read once the monitor finds it answering
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

    async def _fetch_models(self, config: HostConfig) -> tuple[list[ModelInfo], list[RunningModel]]:
        """Installed and loaded models of a host; raises the first CorralError."""
        host = self.registry.host(config.id)
        results = await asyncio.gather(
            host.list_models(), host.running_models(), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        models: list[ModelInfo] = results[0]  # type: ignore[assignment]
        running: list[RunningModel] = results[1]  # type: ignore[assignment]
        return models, running

    async def _load_models(self, config: HostConfig) -> None:
        try:
            models, running = await self._fetch_models(config)
        except CorralError as exc:
            if config.id == self.current_host_id():
                self._models_unavailable(config, exc.message)
            return
        if config.id != self.current_host_id():
            return
        row = self.fleet_model.get(config.id)
        if row is not None and row.status.state is HostState.OFFLINE:
            self._show_host_state()  # the monitor found it offline meanwhile; it says why
            return
        self._models_error.pop(config.id, None)
        selected = self.selected_model()
        self.model_view.setEnabled(True)
        if self.model_model.set_models(models, running) and selected is not None:
            self.select_model(selected.name)
        loaded = len(self.model_model.loaded_names())
        if models:
            self.models_status.setText(f"{len(models)} models installed, {loaded} loaded.")
        else:
            how = (
                "Add model… to add a GGUF file"
                if config.id == ENGINE_ID
                else "Pull… to download one"
            )
            self.models_status.setText(f"No models installed. Use {how}.")
        self._show_vram_check(config.id, running)
        self._update_actions()
        self.modelsRefreshed.emit(config.id)

    def _show_vram_check(self, host_id: str, running: list[RunningModel]) -> None:
        """The host's VRAM figure against its processes' (only where both are known)."""
        checks = self.telemetry.vram_check(host_id, running) if self.telemetry else []
        shown = [c for c in checks if c.process_vram is not None]
        if not shown:
            self.vram_check.hide()
            return
        lines = []
        for check in shown:
            if check.disagrees:
                lines.append(f"⚠ {check.sentence}")
            elif check.sentence:
                lines.append(check.sentence)
            else:
                lines.append(
                    f"VRAM: the host reports {human_size(check.reported_vram)} for "
                    f"{', '.join(check.models)}; its processes use "
                    f"{human_size(check.process_vram)} (they agree)."
                )
        self.vram_check.setText("\n".join(lines))
        warn = any(c.disagrees for c in shown)
        self.vram_check.setStyleSheet("color: #9a6700;" if warn else "color: palette(mid);")
        self.vram_check.show()

    def _models_unavailable(self, config: HostConfig, message: str) -> None:
        self.model_model.clear()
        self.model_view.setEnabled(False)
        self.models_status.setText(message)
        self._update_actions()
        if self._models_error.get(config.id) != message:
            self._models_error[config.id] = message
            self.show_error(message)
        self.health.probe_soon(config.id)  # let the status dot catch up

    # -- all models -------------------------------------------------------------------
    def _all_models_visible(self) -> bool:
        return self.model_tabs.currentWidget() is self.all_models

    def show_all_models(self) -> None:
        """Switch to the "All models" tab (which refreshes it)."""
        self.model_tabs.setCurrentWidget(self.all_models)

    def _on_tab_changed(self, _index: int) -> None:
        if self._all_models_visible():
            self.refresh_all_models(force=self._all_stale)
        self._update_actions()

    def refresh_all_models(self, *, force: bool = False) -> None:
        """Reload the models of every reachable host into the all-models view."""
        if not self._started:
            return
        running = self._all_task is not None and not self._all_task.done()
        if running and not force:
            return
        if running and self._all_task is not None:
            self._all_task.cancel()
        self._all_task = self._tasks.spawn(self._load_all_models(), name="all models")

    async def _load_all_models(self) -> None:
        rows = [r for r in self.fleet_model.rows() if r.reachable]
        if not self.all_models.model.merged():
            self.all_models.status.setText("Reading the models of every reachable host…")

        async def one(config: HostConfig) -> HostModels:
            models, running = await self._fetch_models(config)
            return HostModels(config, tuple(models), tuple(running))

        results = await asyncio.gather(*(one(r.config) for r in rows), return_exceptions=True)
        entries: list[HostModels] = []
        problems: list[str] = []
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, CorralError):
                problems.append(f"{row.config.name}: {result.message}")
            elif isinstance(result, BaseException):
                raise result
            else:
                entries.append(result)
        self._all_stale = False
        panel = self.all_models
        selected = panel.selected_copy()
        selected_name = panel.selected_name()
        if panel.model.set_hosts(entries):
            if selected is not None:
                panel.select(selected.name, selected.host.id) or panel.select(selected.name)
            elif selected_name is not None:
                panel.select(selected_name)
        merged = panel.model.merged()
        loaded = sum(1 for m in merged for c in m.copies if c.loaded)
        if not rows:
            text = "No host is reachable."
        else:
            hosts = "1 reachable host" if len(entries) == 1 else f"{len(entries)} reachable hosts"
            text = f"{len(merged)} models on {hosts}, {loaded} loaded."
        if problems:
            text += " Not listed: " + " ".join(problems)
        panel.status.setText(text)
        self._update_actions()
        self.allModelsRefreshed.emit()

    def _copy_target(self) -> tuple[HostConfig, str] | None:
        copy = self.all_models.selected_copy()
        if copy is None:
            return None
        return copy.host, copy.name

    def load_selected_copy(self) -> None:
        target = self._copy_target()
        if target is not None:
            self._load(*target)

    def unload_selected_copy(self) -> None:
        target = self._copy_target()
        if target is not None:
            self._unload(*target)

    def confirm_delete_copy(self) -> QMessageBox | None:
        target = self._copy_target()
        return self._confirm_delete(*target) if target is not None else None

    def _pull_candidates(self, name: str) -> list[HostConfig]:
        """Reachable hosts that can pull and do not have ``name`` yet."""
        merged = self.all_models.model.get(name)
        has = {c.host.id for c in merged.copies} if merged else set()
        out = []
        for row in self.fleet_model.rows():
            if not row.reachable or row.config.id in has:
                continue
            caps = self._capabilities(row.config.id)
            if caps is not None and caps.pull:
                out.append(row.config)
        return out

    def choose_pull_target(self) -> HostChooserDialog | None:
        """Ask which host should pull the selected model (non-blocking), then pull it."""
        name = self.all_models.selected_name()
        if name is None:
            return None
        candidates = self._pull_candidates(name)
        if not candidates:
            self._status(f"No other reachable host can pull {name}.")
            return None
        dialog = HostChooserDialog(
            candidates,
            title=f"Pull {name}",
            text=f"Which host should download {name}?",
            ok_text="Pull",
            parent=self,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.hostChosen.connect(
            lambda host_id, n=name: self.open_pull_dialog(host_id, model=n, start=True)
        )
        dialog.open()
        return dialog

    # -- actions on models ------------------------------------------------------------
    def _capabilities(self, host_id: str) -> HostCapabilities | None:
        try:
            return self.registry.host(host_id).capabilities
        except CorralError:
            return None

    @staticmethod
    def _gate(
        button: QPushButton | QAction,
        ready: bool,
        caps: HostCapabilities | None,
        action: str,
        tip: str,
    ) -> None:
        """Enable ``button`` when ``ready`` and the host can do ``action``; else say why."""
        why = caps.why_not(action) if caps is not None else None
        button.setEnabled(ready and why is None)
        button.setToolTip(why or tip)

    def _update_actions(self, *_: object) -> None:
        host = self.current_host()
        self.edit_host_button.setEnabled(host is not None)
        self.remove_host_button.setEnabled(host is not None)
        reachable = host is not None and host.reachable
        caps = self._capabilities(host.config.id) if host is not None else None
        self.refresh_button.setEnabled(True)
        model = self.selected_model() if reachable else None
        busy = host is not None and model is not None and (host.config.id, model.name) in self._busy
        ready = model is not None and not busy
        unloading_all = host is not None and (host.config.id, "*") in self._busy
        any_loaded = bool(self.model_model.loaded_names())
        self._gate(self.pull_button, reachable, caps, "pull", _TIPS["pull"])
        engine = host is not None and host.config.id == ENGINE_ID
        self.pull_button.setVisible(not engine)  # the engine's models come from files
        self.add_model_button.setVisible(engine)
        self._gate(
            self.load_button,
            ready and model is not None and not model.loaded,
            caps,
            "load",
            _TIPS["load"],
        )
        self._gate(
            self.unload_button,
            ready and model is not None and model.loaded,
            caps,
            "unload",
            _TIPS["unload"],
        )
        self._gate(
            self.unload_all_button,
            reachable and any_loaded and not unloading_all,
            caps,
            "unload",
            _TIPS["unload_all"],
        )
        self.unload_all_action.setEnabled(self.unload_all_button.isEnabled())
        self._gate(self.delete_button, ready, caps, "delete", _TIPS["delete"])
        self.details_button.setEnabled(model is not None)

        panel = self.all_models
        copy = panel.selected_copy()
        copy_caps = self._capabilities(copy.host.id) if copy is not None else None
        copy_ready = copy is not None and (copy.host.id, copy.name) not in self._busy
        self._gate(
            panel.load_button,
            copy_ready and copy is not None and not copy.loaded,
            copy_caps,
            "load",
            "Load the model on this host now",
        )
        self._gate(
            panel.unload_button,
            copy_ready and copy is not None and copy.loaded,
            copy_caps,
            "unload",
            "Free the memory the model uses on this host",
        )
        self._gate(
            panel.delete_button,
            copy_ready,
            copy_caps,
            "delete",
            "Remove the model's files from this host",
        )
        name = panel.selected_name()
        can_pull = name is not None and bool(self._pull_candidates(name))
        panel.pull_button.setEnabled(can_pull)
        panel.pull_button.setToolTip(
            "Download the model onto another host"
            if can_pull or name is None
            else "No other reachable host can pull this model."
        )

    def _target(self) -> tuple[HostConfig, ModelRow] | None:
        host, model = self.current_host(), self.selected_model()
        if host is None or model is None:
            return None
        return host.config, model

    def load_selected(self) -> None:
        target = self._target()
        if target is not None:
            self._load(target[0], target[1].name)

    def unload_selected(self) -> None:
        target = self._target()
        if target is not None:
            self._unload(target[0], target[1].name)

    def confirm_delete(self) -> QMessageBox | None:
        target = self._target()
        return self._confirm_delete(target[0], target[1].name) if target is not None else None

    def _load(self, config: HostConfig, name: str) -> None:
        self._start_action(config, name, "load", "Loading", "Loaded", lambda h: h.load(name))

    def _unload(self, config: HostConfig, name: str) -> None:
        self._start_action(
            config, name, "unload", "Unloading", "Unloaded", lambda h: h.unload(name)
        )

    def _confirm_delete(self, config: HostConfig, name: str) -> QMessageBox:
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

    def confirm_unload_all(self) -> QMessageBox | None:
        """Ask, then unload every loaded model of the selected host (non-blocking)."""
        row = self.current_host()
        if row is None or not row.reachable:
            return None
        config = row.config
        loaded = self.model_model.loaded_names()
        listed = ", ".join(loaded) if loaded else "none that Corral has seen"
        box = self._question(
            "confirmUnloadAll",
            "Unload all models",
            f"Unload every loaded model on {config.name}?",
            f"Loaded now: {listed}. Their memory is freed; a model is loaded again "
            "when it is next used.",
            "Unload all",
        )

        def answered(button: Any) -> None:
            if box.buttonRole(button) == QMessageBox.ButtonRole.AcceptRole:
                self._start_action(
                    config,
                    "*",
                    "unload all",
                    "Unloading every model",
                    "Unloaded every model",
                    self._unload_everything,
                )

        box.buttonClicked.connect(answered)
        box.open()
        return box

    @staticmethod
    async def _unload_everything(host: Host) -> None:
        """Unload every model the host reports as loaded; the first failure is raised
        after every unload was tried."""
        running = await host.running_models()
        results = await asyncio.gather(
            *(host.unload(r.name) for r in running), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

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
        what = "" if model == "*" else f" {model}"
        self._status(f"{doing}{what} on {config.name}…")
        self._tasks.spawn(self._run_action(config, model, verb, done, call), name=f"{verb}{what}")

    async def _run_action(
        self,
        config: HostConfig,
        model: str,
        verb: str,
        done: str,
        call: Callable[[Host], Awaitable[None]],
    ) -> None:
        what = "" if model == "*" else f" {model}"
        try:
            started = time.perf_counter()
            await call(self.registry.host(config.id))
            if verb == "load" and self.latency is not None:
                elapsed_ms = (time.perf_counter() - started) * 1000.0
                self.latency.record_load(config.id, model, elapsed_ms)
            self._status(f"{done}{what} on {config.name}.")
        finally:
            self._busy.discard((config.id, model))
            self._update_actions()
            if config.id == self.current_host_id():
                self.refresh_models(force=True)
            self._all_stale = True
            if self._all_models_visible():
                self.refresh_all_models(force=True)
            self.actionFinished.emit(f"{verb}{what}")

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

    def open_pull_dialog(
        self, host_id: str | None = None, *, model: str = "", start: bool = False
    ) -> PullDialog | None:
        """Open a pull dialog for a host (the selected one by default; modeless, several
        may run at once); ``start`` pulls ``model`` at once."""
        if host_id is None:
            host_id = self.current_host_id()
        row = self.fleet_model.get(host_id) if host_id else None
        if row is None:
            return None
        config = row.config
        try:
            host = self.registry.host(config.id)
        except CorralError as exc:
            self.show_error(exc.message)
            return None
        dialog = PullDialog(host, host_name=config.name, model=model, parent=self)
        self._pull_dialogs.append(dialog)
        dialog.pulled.connect(lambda name, host_id=config.id: self._on_pulled(host_id, name))
        dialog.finished.connect(lambda _=0, d=dialog: self._dispose_pull_dialog(d))
        dialog.stateChanged.connect(lambda _s, d=dialog: self._dispose_pull_dialog(d))
        dialog.show()
        dialog.model_edit.setFocus()
        if start and model:
            dialog.start_pull()
        return dialog

    def _on_pulled(self, host_id: str, model: str) -> None:
        row = self.fleet_model.get(host_id)
        if row is not None:
            self.tray.notify_pull_finished(row.config.name, model)
        if host_id == self.current_host_id():
            self.refresh_models(force=True)
        self._all_stale = True
        if self._all_models_visible():
            self.refresh_all_models(force=True)

    def _pull_or_add_model(self) -> None:
        """Ctrl+P: Pull… for a host that pulls; the Add model… menu for the built-in engine."""
        if self.current_host_id() == ENGINE_ID:
            self.engine_models.show_menu()
        else:
            self.open_pull_dialog()

    def models_changed(self, host_id: str) -> None:
        """A host's models changed outside a pull or an action (a GGUF file imported or
        downloaded into the built-in engine's folder): read them again where shown."""
        if host_id == self.current_host_id():
            self.refresh_models(force=True)
        self._all_stale = True
        if self._all_models_visible():
            self.refresh_all_models(force=True)

    def _dispose_pull_dialog(self, dialog: PullDialog) -> None:
        """Delete a pull dialog once it is closed and its pull has ended."""
        if dialog in self._pull_dialogs and not dialog.isVisible() and not dialog.running:
            self._pull_dialogs.remove(dialog)
            dialog.deleteLater()

    @property
    def pull_dialogs(self) -> list[PullDialog]:
        return list(self._pull_dialogs)
