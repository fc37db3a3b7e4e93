"""What the MCP panel's requests do: enable, disable and remove servers in the config,
previews of drops and of other apps' config files, and the manager kept in step with the
config. Reading files and writing the config run off the GUI thread."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from app.core.errors import CorralError
from app.core.mcp.allow import ConfigAllowList
from app.core.mcp.config import McpConfigStore
from app.core.mcp.drop import classify_drop
from app.core.mcp.importers import find_client_configs
from app.core.mcp.types import Transport
from app.ui.mcp_drop import McpDropDialog
from app.ui.mcp_panel import McpPanel
from app.ui.tasks import TaskRunner

if TYPE_CHECKING:
    from app.core.mcp.manager import McpManager

log = logging.getLogger(__name__)


def default_bundle_dir() -> Path:
    """Where dropped .mcpb bundles are unpacked (one folder each)."""
    return platformdirs.user_data_path("corral", appauthor=False) / "mcp-bundles"


class McpController(QObject):
    """Connects the :class:`McpPanel` to the config store and the manager.

    Attributes:
        panel, store, manager: the parts. dialogs: drop previews open now.

    Signals:
        configApplied: the manager was given the config after a change.
        signedOut(str): the sign-in of this server was forgotten.
        previewShown(object): a drop preview dialog opened (the dialog).
    """

    configApplied = Signal()
    signedOut = Signal(str)
    previewShown = Signal(object)

    def __init__(
        self,
        panel: McpPanel,
        store: McpConfigStore,
        manager: McpManager,
        *,
        bundle_dir: Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.panel = panel
        self.store = store
        self.manager = manager
        self.bundle_dir = bundle_dir or default_bundle_dir()
        self.dialogs: list[McpDropDialog] = []
        self._tasks = TaskRunner(panel.show_error)
        panel.enabled_of = self.enabled
        panel.remote_of = self.remote
        panel.signOutRequested.connect(self.sign_out)
        panel.enableRequested.connect(self.set_enabled)
        panel.removeRequested.connect(self.confirm_remove)
        panel.dropped.connect(self.preview_drop)
        panel.importRequested.connect(self.preview_other_apps)
        panel.revokeRequested.connect(self.revoke)
        panel.approvalsShown.connect(self.refresh_approvals)
        self.allow_list = ConfigAllowList(store)
        self.refresh_approvals()

    def enabled(self, name: str) -> bool:
        try:
            return self.store.get(name).enabled
        except CorralError:
            return False

    async def apply_config(self) -> None:
        """Hand the config to the manager (it starts, stops and restarts what changed)."""
        await self.manager.set_configs(self.store.servers())
        self.panel.sync_servers()
        self.configApplied.emit()

    def remote(self, name: str) -> bool:
        try:
            return self.store.get(name).transport is not Transport.STDIO
        except CorralError:
            return False

    # -- sign-in --------------------------------------------------------------------------
    def sign_out(self, name: str) -> None:
        self._tasks.spawn(self._sign_out(name), name=f"sign out of {name}")

    async def _sign_out(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.manager.oauth_store(name).clear)
        if self.enabled(name):
            await self.manager.restart(name)  # the next connection signs in afresh
        self.panel.say(f"Signed out of {name}: it asks you to sign in when it next needs to.")
        self.signedOut.emit(name)

    # -- approval rules -------------------------------------------------------------------
    def refresh_approvals(self) -> None:
        self.panel.show_approvals(self.allow_list.rules())

    def revoke(self, server: str, tool: str) -> None:
        """The tool asks again before it runs (its "always allow" is withdrawn)."""
        self._tasks.spawn(self._revoke(server, tool), name=f"revoke {server}/{tool}")

    async def _revoke(self, server: str, tool: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.allow_list.revoke, server, tool)
        self.refresh_approvals()
        self.panel.say(f"{tool} on {server} will ask again before it runs.")

    # -- enable, disable, remove ----------------------------------------------------------
    def set_enabled(self, name: str, enabled: bool) -> None:
        self._tasks.spawn(self._set_enabled(name, enabled), name=f"enable {name}")

    async def _set_enabled(self, name: str, enabled: bool) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.store.set_enabled, name, enabled)
        await self.apply_config()
        self.panel.say(f"{name} is {'enabled' if enabled else 'disabled'}.")

    def confirm_remove(self, name: str) -> QMessageBox:
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Remove MCP server",
            f"Remove the MCP server “{name}” from Corral's configuration? Its secrets are "
            "removed from the keyring too.",
            QMessageBox.StandardButton.Cancel,
            self.panel,
        )
        box.setObjectName("confirmRemoveMcp")
        accept = box.addButton("Remove", QMessageBox.ButtonRole.AcceptRole)
        accept.setObjectName("confirmRemoveMcpAccept")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(button: Any) -> None:
            if button is accept:
                self._tasks.spawn(self._remove(name), name=f"remove {name}")

        box.buttonClicked.connect(answered)
        box.open()
        return box

    async def _remove(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.store.remove, name)
        await self.apply_config()
        self.panel.say(f"{name} was removed.")

    # -- drops ----------------------------------------------------------------------------
    def preview_drop(self, dropped: tuple[list[str], str]) -> None:
        paths, text = dropped
        self._tasks.spawn(self._preview(paths, text), name="preview a drop")

    def preview_other_apps(self) -> None:
        self._tasks.spawn(self._preview_other_apps(), name="other apps' MCP configs")

    async def _preview_other_apps(self) -> None:
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, find_client_configs)
        if not found:
            self.panel.say("No other app's MCP configuration was found on this computer.")
            return
        self.panel.say("Found: " + ", ".join(f.label for f in found) + ".")
        await self._preview([str(f.path) for f in found], "")

    async def _preview(self, paths: list[str], text: str) -> McpDropDialog:
        loop = asyncio.get_running_loop()
        existing = self.store.names()
        preview = await loop.run_in_executor(
            None,
            lambda: classify_drop(
                paths, text or None, existing=existing, bundle_dir=self.bundle_dir
            ),
        )
        dialog = McpDropDialog(preview, self.store, self.manager.detect_transport, self._parent())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.applied.connect(self._on_applied)
        dialog.finished.connect(lambda _: self._forget(dialog))
        self.dialogs.append(dialog)
        dialog.open()
        self.previewShown.emit(dialog)
        return dialog

    def _parent(self) -> QWidget:
        return self.panel.window() or self.panel

    def _forget(self, dialog: McpDropDialog) -> None:
        if dialog in self.dialogs:
            self.dialogs.remove(dialog)

    def _on_applied(self, names: list[str]) -> None:
        self.panel.say("Added: " + ", ".join(names) + ".")
        self._tasks.spawn(self.apply_config(), name="apply MCP config")

    async def shutdown(self) -> None:
        for dialog in list(self.dialogs):
            await dialog.cancel_and_wait()
        await self._tasks.cancel_all()
