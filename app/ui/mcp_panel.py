"""The MCP panel: the configured tool servers, their state, tools and stderr, and a form
to try a tool. Servers are added by dropping a config file, a snippet, a URL, a script,
a project folder or an .mcpb bundle onto the panel (see :mod:`app.ui.mcp_drop`).

Nothing here waits on a server: every command is a task, and the manager's status events
arrive through :class:`McpSignals`. Whatever a server does (hang, crash, flood stderr),
the panel stays responsive.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import CorralError, InvalidInput
from app.core.mcp.types import (
    AudioPart,
    ImagePart,
    ResourcePart,
    ServerState,
    ServerStatus,
    TextPart,
    ToolInfo,
    ToolResult,
)
from app.ui.tasks import TaskRunner

if TYPE_CHECKING:  # the manager (and with it the MCP SDK) is imported where it is built
    from app.core.mcp.manager import McpManager

log = logging.getLogger(__name__)

STATE_COLORS = {
    ServerState.READY: "#2e7d32",
    ServerState.DEGRADED: "#f9a825",
    ServerState.STARTING: "#1565c0",
    ServerState.FAILED: "#c62828",
    ServerState.STOPPED: "#757575",
}

NameRole = Qt.ItemDataRole.UserRole


class McpSignals(QObject):
    """Re-emits :attr:`McpManager.changed` as a Qt signal.

    Signals:
        statusChanged(object): a server's new :class:`ServerStatus`.
    """

    statusChanged = Signal(object)

    def __init__(self, manager: McpManager, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._manager = manager
        manager.changed.connect(self._relay)

    def _relay(self, status: ServerStatus) -> None:
        self.statusChanged.emit(status)

    def detach(self) -> None:
        self._manager.changed.disconnect(self._relay)


def hints_text(tool: ToolInfo) -> str:
    """The tool's annotations in words ("read-only", "destructive", ...); the spec's
    defaults apply where the server says nothing."""
    parts = []
    if tool.read_only:
        parts.append("read-only")
    elif tool.destructive is False:
        parts.append("changes things, not destructive")
    else:
        parts.append("may change or delete things")
    if tool.idempotent:
        parts.append("idempotent")
    if tool.open_world is False:
        parts.append("closed world")
    return ", ".join(parts)


def result_text(result: ToolResult) -> str:
    """A tool result for people: text parts, resources, images and audio by type, and the
    structured content when there is no text (a server sends its JSON as text too)."""
    lines = ["The tool reported an error:" if result.is_error else ""]
    for part in result.content:
        if isinstance(part, TextPart):
            lines.append(part.text)
        elif isinstance(part, ImagePart):
            lines.append(f"[image, {part.mime_type}, {len(part.data) * 3 // 4} bytes]")
        elif isinstance(part, AudioPart):
            lines.append(f"[audio, {part.mime_type}]")
        elif isinstance(part, ResourcePart):
            lines.append(part.text or f"[resource {part.uri}]")
    has_text = any(isinstance(p, TextPart) for p in result.content)
    if result.structured is not None and not has_text:  # else the text already says it
        lines.append("Structured content:")
        lines.append(json.dumps(dict(result.structured), indent=2, ensure_ascii=False))
    return "\n".join(line for line in lines if line)


def sample_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments to start from: each property's default, or an empty value of its type for
    the required ones."""
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    out: dict[str, Any] = {}
    if not isinstance(props, dict):
        return out
    empty = {"string": "", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}
    for name, spec in props.items():
        if not isinstance(spec, dict):
            continue
        if "default" in spec:
            out[name] = spec["default"]
        elif name in required:
            kind = spec.get("type")
            out[name] = empty.get(kind, "") if isinstance(kind, str) else ""
    return out


class McpPanel(QWidget):
    """MCP tool servers.

    Attributes:
        manager: the :class:`McpManager`.
        server_list: the servers with a state dot, state and tool count.
        state_label, reason_label: the selected server's state and why.
        tool_tree: its tools (name, hints, description; the schema as a tooltip).
        stderr_view: the last lines it wrote to stderr.
        enable_button, restart_button, remove_button: actions on the selected server.
        tool_picker, arguments_edit, run_button, result_view: "test a tool".
        drop_hint: the line saying what can be dropped here.
        status_label: what just happened or went wrong.

    Signals:
        statusShown(str): a server's status was shown (its name).
        toolTested(str): a test call ended (the text shown).
        enableRequested(str, bool), removeRequested(str): for the owner, which changes the
            config and hands it to the manager.
        dropped(object): something was dropped or pasted: ``(paths, text)``.
        importRequested: the user asked to import other apps' MCP configurations.
        revokeRequested(str, str): ask again before this tool (server, tool) runs.
        signOutRequested(str): forget the sign-in (OAuth tokens) of this remote server.
        approvalsShown: the Approvals tab was opened (its list should be read again).
    """

    statusShown = Signal(str)
    toolTested = Signal(str)
    enableRequested = Signal(str, bool)
    removeRequested = Signal(str)
    dropped = Signal(object)
    importRequested = Signal()
    revokeRequested = Signal(str, str)
    signOutRequested = Signal(str)
    approvalsShown = Signal()

    def __init__(
        self,
        manager: McpManager,
        *,
        enabled_of: Callable[[str], bool] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("mcpPanel")
        self.setAcceptDrops(True)
        self.manager = manager
        self.enabled_of: Callable[[str], bool] = enabled_of or (lambda _name: True)
        #: whether a server is remote (HTTP/SSE): only those have a sign-in to forget
        self.remote_of: Callable[[str], bool] = lambda _name: False
        self._signals = McpSignals(manager, self)
        self._tasks = TaskRunner(self.show_error)
        self._build()
        self._wire()
        for status in manager.statuses():
            self._show_status(status)

    # -- building -----------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.drop_hint = QLabel(
            "Drop an MCP config file (Claude Desktop, Cursor, VS Code, Zed, Continue, …), a "
            "JSON snippet, a server URL, a .py script, a project folder or an .mcpb bundle here.",
            self,
        )
        self.drop_hint.setObjectName("mcpDropHint")
        self.drop_hint.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.drop_hint, 1)
        self.import_button = QPushButton("Import from other apps…", self)
        self.import_button.setObjectName("mcpImportButton")
        self.import_button.setToolTip(
            "Look for the MCP servers of Claude Desktop, Cursor, VS Code, Zed, Continue, "
            "LM Studio, Windsurf, Jan, AnythingLLM and oterm on this computer"
        )
        top.addWidget(self.import_button)
        layout.addLayout(top)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        layout.addWidget(splitter, 1)

        self.server_list = QListWidget(splitter)
        self.server_list.setObjectName("mcpServerList")

        right = QWidget(splitter)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        self.state_label = QLabel(right)
        self.state_label.setObjectName("mcpState")
        head.addWidget(self.state_label, 1)
        self.enable_button = QPushButton("Disable", right)
        self.enable_button.setObjectName("mcpEnableButton")
        self.restart_button = QPushButton("Restart", right)
        self.restart_button.setObjectName("mcpRestartButton")
        self.remove_button = QPushButton("Remove…", right)
        self.remove_button.setObjectName("mcpRemoveButton")
        self.sign_out_button = QPushButton("Sign out", right)
        self.sign_out_button.setObjectName("mcpSignOutButton")
        self.sign_out_button.setToolTip(
            "Forget this server's sign-in (its OAuth tokens in the keyring); it asks you to "
            "sign in again when it next needs to"
        )
        for button in (
            self.enable_button,
            self.restart_button,
            self.sign_out_button,
            self.remove_button,
        ):
            head.addWidget(button)
        right_layout.addLayout(head)
        self.reason_label = QLabel(right)
        self.reason_label.setObjectName("mcpReason")
        self.reason_label.setWordWrap(True)
        self.reason_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        right_layout.addWidget(self.reason_label)

        tabs = QTabWidget(right)
        tabs.setObjectName("mcpTabs")
        self.tool_tree = QTreeWidget(tabs)
        self.tool_tree.setObjectName("mcpToolTree")
        self.tool_tree.setHeaderLabels(["Tool", "Hints", "Description"])
        self.tool_tree.setRootIsDecorated(False)
        tabs.addTab(self.tool_tree, "Tools")
        self.stderr_view = QPlainTextEdit(tabs)
        self.stderr_view.setObjectName("mcpStderr")
        self.stderr_view.setReadOnly(True)
        self.stderr_view.setMaximumBlockCount(200)
        tabs.addTab(self.stderr_view, "Server log (stderr)")

        test = QWidget(tabs)
        form = QFormLayout(test)
        self.tool_picker = QComboBox(test)
        self.tool_picker.setObjectName("mcpToolPicker")
        form.addRow("Tool", self.tool_picker)
        self.arguments_edit = QPlainTextEdit(test)
        self.arguments_edit.setObjectName("mcpArguments")
        self.arguments_edit.setPlaceholderText('Arguments as a JSON object, e.g. {"text": "hi"}')
        form.addRow("Arguments", self.arguments_edit)
        self.run_button = QPushButton("Run", test)
        self.run_button.setObjectName("mcpRunButton")
        form.addRow("", self.run_button)
        self.result_view = QPlainTextEdit(test)
        self.result_view.setObjectName("mcpResult")
        self.result_view.setReadOnly(True)
        form.addRow("Result", self.result_view)
        tabs.addTab(test, "Test a tool")
        approvals = QWidget(tabs)
        approvals_layout = QVBoxLayout(approvals)
        approvals_layout.addWidget(
            QLabel("Tools that run without asking (\u201calways allow\u201d):", approvals)
        )
        self.approvals_view = QTreeWidget(approvals)
        self.approvals_view.setObjectName("mcpApprovals")
        self.approvals_view.setHeaderLabels(["Server", "Tool"])
        self.approvals_view.setRootIsDecorated(False)
        approvals_layout.addWidget(self.approvals_view, 1)
        self.revoke_button = QPushButton("Ask again (revoke)", approvals)
        self.revoke_button.setObjectName("mcpRevokeButton")
        self.revoke_button.setEnabled(False)
        approvals_layout.addWidget(self.revoke_button)
        self.approvals_tab = tabs.addTab(approvals, "Approvals")
        self.tabs = tabs
        right_layout.addWidget(tabs, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([180, 480])

        self.status_label = QLabel(self)
        self.status_label.setObjectName("mcpStatus")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self._update_actions()

    def _wire(self) -> None:
        self._signals.statusChanged.connect(self._show_status)
        self.server_list.currentItemChanged.connect(lambda *_: self._show_selected())
        self.enable_button.clicked.connect(self._toggle_enabled)
        self.restart_button.clicked.connect(self.restart_selected)
        self.remove_button.clicked.connect(self._remove_selected)
        self.sign_out_button.clicked.connect(self._sign_out_selected)
        self.tool_picker.currentIndexChanged.connect(self._prefill_arguments)
        self.run_button.clicked.connect(self.run_test)
        self.import_button.clicked.connect(self.importRequested)
        self.approvals_view.currentItemChanged.connect(
            lambda *_: self.revoke_button.setEnabled(self.approvals_view.currentItem() is not None)
        )
        self.revoke_button.clicked.connect(self._revoke_selected)
        self.tabs.currentChanged.connect(
            lambda i: self.approvalsShown.emit() if i == self.approvals_tab else None
        )

    async def shutdown(self) -> None:
        self._signals.detach()
        await self._tasks.cancel_all()

    # -- messages -------------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        log.info("mcp: shown to the user: %s", message)
        self.status_label.setStyleSheet("color: #b3261e;")
        self.status_label.setText(message)

    def say(self, message: str) -> None:
        self.status_label.setStyleSheet("")
        self.status_label.setText(message)

    # -- servers --------------------------------------------------------------------------
    def server_names(self) -> list[str]:
        return [
            str(self.server_list.item(i).data(NameRole)) for i in range(self.server_list.count())
        ]

    def _item(self, name: str) -> QListWidgetItem | None:
        for i in range(self.server_list.count()):
            item = self.server_list.item(i)
            if item.data(NameRole) == name:
                return item
        return None

    def select_server(self, name: str) -> bool:
        item = self._item(name)
        if item is None:
            return False
        self.server_list.setCurrentItem(item)
        return True

    def selected_name(self) -> str | None:
        item = self.server_list.currentItem()
        return None if item is None else str(item.data(NameRole))

    def sync_servers(self) -> None:
        """Show exactly the manager's servers (after the config changed)."""
        names = [s.name for s in self.manager.statuses()]
        for i in reversed(range(self.server_list.count())):
            if self.server_list.item(i).data(NameRole) not in names:
                self.server_list.takeItem(i)
        for status in self.manager.statuses():
            self._show_status(status)

    def _show_status(self, status: ServerStatus) -> None:
        item = self._item(status.name)
        if item is None:
            if status.name not in [s.name for s in self.manager.statuses()]:
                return  # removed meanwhile
            item = QListWidgetItem(self.server_list)
            item.setData(NameRole, status.name)
        count = len(status.tools)
        tools = f" · {count} tool{'s' if count != 1 else ''}" if count else ""
        item.setText(f"● {status.name}\n   {status.state.value}{tools}")
        item.setForeground(QColor(STATE_COLORS.get(status.state, "#757575")))
        item.setToolTip(status.reason or status.state.value)
        if self.server_list.currentItem() is None:
            self.server_list.setCurrentItem(item)
        if self.selected_name() == status.name:
            self._show_selected()
        self.statusShown.emit(status.name)

    def _show_selected(self) -> None:
        name = self.selected_name()
        self._update_actions()
        if name is None:
            self.state_label.setText("No MCP server yet.")
            self.reason_label.setText("")
            self.tool_tree.clear()
            self.stderr_view.clear()
            self.tool_picker.clear()
            return
        status = self.manager.status(name)
        version = f" · {status.server_version}" if status.server_version else ""
        restarts = f" · restarted {status.restarts}×" if status.restarts else ""
        self.state_label.setText(f"{name}: {status.state.value}{version}{restarts}")
        reason = status.reason
        if status.breaker_open:
            reason = (reason + " " if reason else "") + "Not restarted by itself any more: "
            reason += "press Restart when it is fixed."
        self.reason_label.setText(reason)
        self.tool_tree.clear()
        for tool in status.tools:
            row = QTreeWidgetItem(
                [tool.display_name, hints_text(tool), tool.description.strip().split("\n")[0]]
            )
            row.setToolTip(
                0, json.dumps(dict(tool.input_schema), indent=2, ensure_ascii=False)[:4000]
            )
            row.setToolTip(2, tool.description)
            row.setData(0, NameRole, tool.name)
            self.tool_tree.addTopLevelItem(row)
        self.stderr_view.setPlainText("\n".join(status.stderr_tail))
        self.stderr_view.verticalScrollBar().setValue(
            self.stderr_view.verticalScrollBar().maximum()
        )
        current = self.tool_picker.currentData()
        self.tool_picker.blockSignals(True)
        self.tool_picker.clear()
        for tool in status.tools:
            self.tool_picker.addItem(tool.display_name, tool)
        for i in range(self.tool_picker.count()):
            if isinstance(current, ToolInfo) and self.tool_picker.itemData(i).name == current.name:
                self.tool_picker.setCurrentIndex(i)
        self.tool_picker.blockSignals(False)
        if not isinstance(current, ToolInfo) or current.server != name:
            self._prefill_arguments()

    def _update_actions(self) -> None:
        name = self.selected_name()
        for button in (self.enable_button, self.restart_button, self.remove_button):
            button.setEnabled(name is not None)
        self.sign_out_button.setVisible(name is not None and self.remote_of(name))
        if name is not None:
            enabled = self.enabled_of(name)
            self.enable_button.setText("Disable" if enabled else "Enable")
            self.restart_button.setEnabled(enabled)
        self.run_button.setEnabled(name is not None and self.tool_picker.count() > 0)

    def _toggle_enabled(self) -> None:
        name = self.selected_name()
        if name is not None:
            self.enableRequested.emit(name, not self.enabled_of(name))

    def _sign_out_selected(self) -> None:
        name = self.selected_name()
        if name is not None:
            self.signOutRequested.emit(name)

    def _remove_selected(self) -> None:
        name = self.selected_name()
        if name is not None:
            self.removeRequested.emit(name)

    def restart_selected(self) -> None:
        name = self.selected_name()
        if name is None:
            return
        self.say(f"Restarting {name}…")
        self._tasks.spawn(self.manager.restart(name), name=f"restart {name}")

    # -- approval rules -------------------------------------------------------------------
    def show_approvals(self, rules: list[tuple[str, str]]) -> None:
        """List the tools that run without asking."""
        self.approvals_view.clear()
        for server, tool in rules:
            self.approvals_view.addTopLevelItem(QTreeWidgetItem([server, tool]))
        self.revoke_button.setEnabled(False)

    def approvals(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for i in range(self.approvals_view.topLevelItemCount()):
            item = self.approvals_view.topLevelItem(i)
            if item is not None:
                out.append((item.text(0), item.text(1)))
        return out

    def _revoke_selected(self) -> None:
        item = self.approvals_view.currentItem()
        if item is not None:
            self.revokeRequested.emit(item.text(0), item.text(1))

    # -- test a tool ----------------------------------------------------------------------
    def _prefill_arguments(self, *_: object) -> None:
        tool = self.tool_picker.currentData()
        if isinstance(tool, ToolInfo):
            sample = sample_arguments(dict(tool.input_schema))
            self.arguments_edit.setPlainText(json.dumps(sample, indent=2, ensure_ascii=False))
        self._update_actions()

    def choose_tool(self, name: str) -> bool:
        for i in range(self.tool_picker.count()):
            if self.tool_picker.itemData(i).name == name:
                self.tool_picker.setCurrentIndex(i)
                return True
        return False

    def run_test(self) -> None:
        tool = self.tool_picker.currentData()
        if not isinstance(tool, ToolInfo):
            return
        text = self.arguments_edit.toPlainText().strip() or "{}"
        try:
            arguments = json.loads(text)
        except json.JSONDecodeError as exc:
            self._tested(f"The arguments are not valid JSON (line {exc.lineno}: {exc.msg}).")
            return
        if not isinstance(arguments, dict):
            self._tested("The arguments must be a JSON object ({...}).")
            return
        self.result_view.setPlainText(f"Calling {tool.display_name}…")
        self.run_button.setEnabled(False)
        self._tasks.spawn(self._run(tool, arguments), name=f"test {tool.name}")

    async def _run(self, tool: ToolInfo, arguments: dict[str, Any]) -> None:
        try:
            result = await self.manager.call_tool(tool.server, tool.name, arguments)
        except CorralError as exc:
            self._tested(exc.message)
            return
        finally:
            self._update_actions()
        self._tested(result_text(result) or "(the tool returned nothing)")

    def _tested(self, text: str) -> None:
        self.result_view.setPlainText(text)
        self.toolTested.emit(text)

    # -- drops ----------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasText():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        mime = event.mimeData()
        paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
        texts = [u.toString() for u in mime.urls() if not u.isLocalFile()]
        if mime.hasText() and not mime.hasUrls():
            texts.append(mime.text())
        event.acceptProposedAction()
        self.dropped.emit((paths, "\n".join(texts)))

    def paste(self, text: str) -> None:
        """Paste a snippet or URL (as a drop of text)."""
        if not text.strip():
            raise InvalidInput("There is nothing to paste.")
        self.dropped.emit(([], text))
