"""The chat panel: conversations on the left, the open one on the right, a composer below.

Everything slow runs as a task on the loop (the store's reads and writes go to its own
thread; replies stream through the :class:`ChatEngine`); the panel only shows what comes
back. A reply streams into the conversation it belongs to: switching conversations while
it streams leaves it running, and coming back shows it still growing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.chat import (
    AUTO,
    ChatEngine,
    ChatStore,
    Conversation,
    HostSwitched,
    ReplyFailed,
    ReplyFinished,
    ReplyHandle,
    ReplyStarted,
    ReplyStopped,
    SearchHit,
    StoredMessage,
)
from app.core.chat.tools import ApprovalRequest, Decision
from app.core.chat.types import (
    ChatOptions,
    MessageStatus,
    ReplyContinued,
    ToolCallDecided,
    ToolCallFinished,
    ToolCallRequested,
    ToolsDropped,
)
from app.core.errors import CorralError, InvalidInput
from app.core.hosts.base import ContentChunk, HostConfig, ThinkingChunk, ToolCallChunk
from app.core.hosts.engine import ENGINE_ID
from app.core.hosts.health import HealthMonitor, HostStatus
from app.core.hosts.registry import HostRegistry
from app.core.mcp.types import ServerState, ServerStatus
from app.ui.chat.composer import Composer
from app.ui.chat.message_view import ConversationView, MessageWidget
from app.ui.chat.options_dialog import ChatOptionsDialog
from app.ui.chat.tool_card import ToolCallCard
from app.ui.tasks import TaskRunner

log = logging.getLogger(__name__)

#: Longest wait for one host's model list when filling the model picker.
MODELS_TIMEOUT_S = 8.0
#: Pause after the last keystroke in the search box before searching.
SEARCH_DELAY_MS = 200

ConversationRole = Qt.ItemDataRole.UserRole
MessageRole = Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model picker: a model on one host, or on any host (AUTO)."""

    host_id: str
    model: str


@dataclass
class _Live:
    """The reply being written: its handle, conversation and what has arrived so far."""

    handle: ReplyHandle
    conversation_id: str
    host_name: str = ""
    model: str = ""
    content: list[str] | None = None
    thinking: list[str] | None = None
    notice: str = ""
    note: str = ""  # said in the status line when the reply ends
    message_id: str = ""  # the reply message being written (a new one per tool round)


class ChatPanel(QWidget):
    """Chat with any model of the fleet.

    Attributes:
        engine, store, registry, health: the injected services.
        search_edit, conversation_list, new_button, import_button: the left side.
        model_picker, refresh_models_button, options_button: what answers, and how.
        view: the :class:`ConversationView`.
        edit_strip, edit_label, cancel_edit_button: shown while a message is re-edited.
        composer, send_button: where the user writes; Send turns into Stop while a reply
            is written.
        status_label: a line under the composer for what just happened or went wrong.
        current: the open conversation (None: a new one, created at the first message).

    Signals:
        conversationOpened(str): a conversation is shown (its id).
        conversationsListed: the list (or the search results) was filled.
        replyEnded(str): a reply ended and was saved (its message id).
        modelsListed: the model picker was filled.
        errorShown(str): a message for the user was shown in the status line.
        approvalRequested(str): a tool call waits for the user's answer (its call id).
    """

    conversationOpened = Signal(str)
    conversationsListed = Signal()
    replyEnded = Signal(str)
    modelsListed = Signal()
    errorShown = Signal(str)
    approvalRequested = Signal(str)

    def __init__(
        self,
        engine: ChatEngine | None,
        registry: HostRegistry,
        health: HealthMonitor | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("chatPanel")
        self.engine = engine
        self.store: ChatStore | None = engine.store if engine is not None else None
        self.registry = registry
        self.health = health
        self.current: Conversation | None = None
        self._pending_options = ChatOptions()
        self._pending_prompt = ""
        self._live: _Live | None = None
        self._editing: str | None = None  # id of the user message being edited
        self._drafts: dict[str, str] = {}  # unsent text per conversation ("" = new one)
        self._tasks = TaskRunner(self.show_error)
        self._models_task: asyncio.Task[Any] | None = None
        self._reachable_ids: set[str] = set()
        self._approvals: dict[str, asyncio.Future[Decision]] = {}
        #: the MCP servers' statuses (set by the window when there is an MCP manager)
        self.tool_servers: Callable[[], list[ServerStatus]] | None = None
        self._models_again = False
        self._started = False
        self._disabled = False
        self._build()
        self._wire()
        if engine is None:
            self.disable("Chat history is not available, so chat is off.")

    # -- building -----------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("chatSplitter")
        outer.addWidget(self.splitter)

        left = QWidget(self.splitter)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.new_button = QPushButton("New chat", left)
        self.new_button.setObjectName("newChatButton")
        self.import_button = QToolButton(left)
        self.import_button.setObjectName("importChatButton")
        self.import_button.setText("Import…")
        self.import_button.setToolTip("Import a conversation exported as JSON")
        row.addWidget(self.new_button, 1)
        row.addWidget(self.import_button)
        left_layout.addLayout(row)
        self.search_edit = QLineEdit(left)
        self.search_edit.setObjectName("chatSearch")
        self.search_edit.setPlaceholderText("Search conversations")
        self.search_edit.setClearButtonEnabled(True)
        left_layout.addWidget(self.search_edit)
        self.conversation_list = QListWidget(left)
        self.conversation_list.setObjectName("conversationList")
        self.conversation_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.conversation_list.setWordWrap(True)
        left_layout.addWidget(self.conversation_list, 1)

        right = QWidget(self.splitter)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(QLabel("Model:", right))
        self.model_picker = QComboBox(right)
        self._auto_choice: ModelChoice | None = None  # what the picker chose for the user
        self.model_picker.setObjectName("modelPicker")
        self.model_picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.model_picker.setPlaceholderText("No model found: add or start a host")
        self.model_picker.setToolTip(
            "The model that answers, on one host or on any host that has it (automatic)"
        )
        top.addWidget(self.model_picker, 1)
        self.refresh_models_button = QToolButton(right)
        self.refresh_models_button.setObjectName("refreshModelsButton")
        self.refresh_models_button.setText("↻")
        self.refresh_models_button.setToolTip("Read the models of every host again")
        top.addWidget(self.refresh_models_button)
        self.options_button = QPushButton("Options…", right)
        self.options_button.setObjectName("optionsButton")
        self.options_button.setToolTip("System prompt, temperature, context length, thinking…")
        top.addWidget(self.options_button)
        right_layout.addLayout(top)

        self.view = ConversationView(self.host_name, right)
        right_layout.addWidget(self.view, 1)

        self.edit_strip = QFrame(right)
        self.edit_strip.setObjectName("editStrip")
        strip = QHBoxLayout(self.edit_strip)
        strip.setContentsMargins(4, 2, 4, 2)
        self.edit_label = QLabel(
            "Editing a message: sending replaces it and what followed "
            "(the conversation as it was is kept as a copy).",
            self.edit_strip,
        )
        self.edit_label.setWordWrap(True)
        strip.addWidget(self.edit_label, 1)
        self.cancel_edit_button = QPushButton("Cancel edit", self.edit_strip)
        self.cancel_edit_button.setObjectName("cancelEditButton")
        strip.addWidget(self.cancel_edit_button)
        self.edit_strip.setVisible(False)
        right_layout.addWidget(self.edit_strip)

        bottom = QHBoxLayout()
        self.composer = Composer(right)
        bottom.addWidget(self.composer, 1)
        self.send_button = QPushButton("Send", right)
        self.send_button.setObjectName("sendButton")
        self.send_button.setToolTip("Send (Enter); while a reply is written: Stop (Esc)")
        bottom.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        right_layout.addLayout(bottom)
        self.status_label = QLabel(right)
        self.status_label.setObjectName("chatStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        right_layout.addWidget(self.status_label)

        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([200, 520])
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._stop_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        self._stop_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)

    def _wire(self) -> None:
        """All signal connections of the panel, in one place."""
        self.new_button.clicked.connect(self.new_conversation)
        self.import_button.clicked.connect(self.choose_import_file)
        self.search_edit.textChanged.connect(lambda _: self._search_timer.start())
        self._search_timer.timeout.connect(self.refresh_list)
        self.conversation_list.itemActivated.connect(self._on_item_chosen)
        self.conversation_list.itemClicked.connect(self._on_item_chosen)
        self.conversation_list.customContextMenuRequested.connect(self._list_menu)
        self.refresh_models_button.clicked.connect(self.refresh_models)
        self.options_button.clicked.connect(self.open_options)
        self.model_picker.activated.connect(self._on_model_chosen)
        self.composer.sendRequested.connect(self.send)
        self.composer.stopRequested.connect(self.stop)
        self._stop_shortcut.activated.connect(self.stop)
        self.send_button.clicked.connect(self._on_send_button)
        self.cancel_edit_button.clicked.connect(self.cancel_edit)
        self.view.retryRequested.connect(self.retry)
        self.view.regenerateRequested.connect(lambda _: self.retry(""))
        self.view.editRequested.connect(self.begin_edit)
        self.view.branchRequested.connect(self.branch_from)

    def disable(self, why: str) -> None:
        """Chat cannot work (its history cannot be opened): say why, and offer nothing."""
        self._disabled = True
        for widget in (
            self.new_button,
            self.import_button,
            self.search_edit,
            self.composer,
            self.send_button,
            self.options_button,
            self.model_picker,
        ):
            widget.setEnabled(False)
        self.status_label.setText(why)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """List the conversations and the fleet's models (call with the loop running)."""
        if self._started or self.engine is None or self._disabled:
            return
        self._started = True
        self.refresh_list()
        self.refresh_models()

    async def shutdown(self) -> None:
        """Stop the reply being written (it is saved as stopped) and every task."""
        self._models_again = False
        self._search_timer.stop()
        if self._live is not None:
            self._live.handle.stop()
            with contextlib.suppress(CorralError, asyncio.CancelledError):
                await self._live.handle.wait()
        await self._tasks.cancel_all()

    # -- messages for the user ----------------------------------------------------------
    def show_error(self, message: str) -> None:
        log.info("chat: shown to the user: %s", message)
        self.status_label.setStyleSheet("color: #b3261e;")
        self.status_label.setText(message)
        self.errorShown.emit(message)

    def _say(self, message: str) -> None:
        self.status_label.setStyleSheet("")
        self.status_label.setText(message)

    def host_name(self, host_id: str) -> str:
        if host_id == AUTO:
            return "any host"
        try:
            return self.registry.get(host_id).name
        except CorralError:
            return host_id

    # -- the conversation list ------------------------------------------------------------
    def refresh_list(self) -> None:
        if self.store is None:
            return
        self._tasks.spawn(self._fill_list(self.search_edit.text().strip()), name="chat list")

    async def _fill_list(self, query: str) -> None:
        assert self.store is not None
        if query:
            hits = await self.store.search(query)
            if query != self.search_edit.text().strip():
                return  # the user typed on; a newer search follows
            self.conversation_list.clear()
            for hit in hits:
                self._add_hit(hit)
            if not hits:
                item = QListWidgetItem(f"Nothing matches “{query}”.")
                item.setFlags(Qt.ItemFlag.NoItemFlags)
                self.conversation_list.addItem(item)
        else:
            conversations = await self.store.list_conversations()
            if self.search_edit.text().strip():
                return
            self.conversation_list.clear()
            for conversation in conversations:
                item = QListWidgetItem(conversation.title or "New conversation")
                item.setData(ConversationRole, conversation.id)
                item.setToolTip(f"{conversation.model} on {self.host_name(conversation.host_id)}")
                self.conversation_list.addItem(item)
                if self.current is not None and conversation.id == self.current.id:
                    item.setSelected(True)
        self.conversationsListed.emit()

    def _add_hit(self, hit: SearchHit) -> None:
        title = hit.title or "New conversation"
        text = title if not hit.message_id else f"{title}\n{hit.snippet}"
        item = QListWidgetItem(text)
        item.setData(ConversationRole, hit.conversation_id)
        item.setData(MessageRole, hit.message_id)
        self.conversation_list.addItem(item)

    def _on_item_chosen(self, item: QListWidgetItem) -> None:
        conversation_id = item.data(ConversationRole)
        if not conversation_id:
            return
        if self.current is not None and self.current.id == conversation_id:
            message_id = item.data(MessageRole)
            if message_id:
                self.reveal_message(str(message_id))
            return
        self.open_conversation(str(conversation_id), message_id=item.data(MessageRole) or "")

    def conversation_ids(self) -> list[str]:
        """The ids listed (conversations or search hits), top first."""
        out = []
        for i in range(self.conversation_list.count()):
            value = self.conversation_list.item(i).data(ConversationRole)
            if value:
                out.append(str(value))
        return out

    # -- opening --------------------------------------------------------------------------
    def open_conversation(self, conversation_id: str, *, message_id: str = "") -> None:
        self._tasks.spawn(self._open(conversation_id, message_id), name="open conversation")

    async def _open(self, conversation_id: str, message_id: str = "") -> None:
        assert self.store is not None
        conversation, messages = await self.store.context(conversation_id)
        self._show(conversation, messages)
        if message_id:
            self.reveal_message(message_id)
        last = messages[-1] if messages else None
        if (
            last is not None
            and last.role == "assistant"
            and last.status is MessageStatus.FAILED
            and self.engine is not None
        ):  # a reply that failed before: offer the other hosts that have the model now
            options = await self.engine.retry_options(conversation_id)
            widget = self.view.widget_for(last.id)
            if widget is not None and options:
                widget.show_error(last.error or "The reply failed.", options)

    def _show(self, conversation: Conversation, messages: list[StoredMessage]) -> None:
        """Show ``conversation`` (already read) in the view."""
        self._save_draft()
        self.cancel_edit()
        self.current = conversation
        self.view.set_messages(messages)
        live = self._live
        if live is not None and live.conversation_id == conversation.id:
            widget = self.view.widget_for(live.handle.message_id)
            if widget is not None:  # the reply is still being written: show what arrived
                widget.body.set_markdown("")
                widget.begin_stream(live.host_name, live.model)
                widget.append_content("".join(live.content or []))
                if live.thinking:
                    widget.append_thinking("".join(live.thinking))
                widget.show_notice(live.notice)
        self.composer.setPlainText(self._drafts.pop(conversation.id, ""))
        self._select_choice(ModelChoice(conversation.host_id, conversation.model))
        self._update_busy()
        self.conversationOpened.emit(conversation.id)

    def reveal_message(self, message_id: str) -> None:
        """Scroll to a message, building older ones until it is built."""
        while self.view.widget_for(message_id) is None and self.view.load_earlier():
            pass
        widget = self.view.widget_for(message_id)
        if widget is not None:
            self.view.ensureWidgetVisible(widget)

    def new_conversation(self) -> None:
        """An empty conversation, created in the store when its first message is sent."""
        self._save_draft()
        self.cancel_edit()
        self.current = None
        self._pending_options = ChatOptions()
        self._pending_prompt = ""
        self.view.clear()
        self.composer.setPlainText(self._drafts.pop("", ""))
        self.conversation_list.clearSelection()
        self._update_busy()
        self.composer.setFocus()

    def _save_draft(self) -> None:
        text = self.composer.toPlainText()
        key = self.current.id if self.current is not None else ""
        if text.strip():
            self._drafts[key] = text
        else:
            self._drafts.pop(key, None)

    # -- models ---------------------------------------------------------------------------
    def refresh_models(self) -> None:
        """Read the models of every reachable host again (once more after a reading that
        is under way, if one is)."""
        if self._models_task is not None and not self._models_task.done():
            self._models_again = True
            return
        self._models_again = False
        self._models_task = self._tasks.spawn(self._fill_models(), name="chat models")
        self._models_task.add_done_callback(self._models_done)

    def _models_done(self, task: asyncio.Task[Any]) -> None:
        if self._models_again and not task.cancelled():
            self.refresh_models()

    async def _fill_models(self) -> None:
        hosts = [c for c in self.registry.hosts() if self._reachable(c)]
        self._reachable_ids = {c.id for c in hosts}

        async def one(config: HostConfig) -> tuple[HostConfig, list[str], str]:
            try:
                async with asyncio.timeout(MODELS_TIMEOUT_S):
                    models = await self.registry.host(config.id).list_models()
            except TimeoutError:
                return config, [], f"{config.name} did not list its models in time"
            except CorralError as exc:
                return config, [], f"{config.name}: {exc.message}"
            return config, [m.name for m in models], ""

        results = await asyncio.gather(*(one(c) for c in hosts))
        where: dict[str, list[HostConfig]] = {}
        problems = []
        for config, names, problem in results:
            if problem:
                problems.append(problem)
            for name in names:
                where.setdefault(name, []).append(config)
        chosen = self.choice()
        if chosen is not None and chosen == self._auto_choice:
            chosen = None  # chosen for the user, not by them: choose again with what is here
        self.model_picker.clear()
        for name in sorted(where, key=str.lower):
            configs = where[name]
            self.model_picker.addItem(
                f"{name} · automatic ({len(configs)} host{'s' if len(configs) > 1 else ''})",
                ModelChoice(AUTO, name),
            )
            for config in sorted(configs, key=lambda c: c.name.lower()):
                self.model_picker.addItem(f"{name} · {config.name}", ModelChoice(config.id, name))
        if chosen is not None:
            self._select_choice(chosen)
        elif self.model_picker.count():
            self.model_picker.setCurrentIndex(self._first_choice(where))
            self._auto_choice = self.choice()
        if problems:
            self._say("Some hosts' models are not listed: " + "; ".join(problems) + ".")
        self.modelsListed.emit()

    def _first_choice(self, where: dict[str, list[HostConfig]]) -> int:
        """The picker's entry when the user has chosen none: the first model a host of
        the user's serves; failing that, the built-in engine's default (the demo model)."""
        wanted = next(
            (
                name
                for name in sorted(where, key=str.lower)
                if any(c.id != ENGINE_ID for c in where[name])
            ),
            None,
        )
        if wanted is None and any(c.id == ENGINE_ID for c in self.registry.hosts()):
            engine = self.registry.host(ENGINE_ID)
            wanted = getattr(engine, "default_model", "") or None
        if wanted is not None:
            choice = ModelChoice(AUTO, wanted)
            for i in range(self.model_picker.count()):
                if self.model_picker.itemData(i) == choice:
                    return i
        return 0

    def on_hosts_changed(self, _hosts: list[HostConfig]) -> None:
        self.refresh_models()

    def on_host_status(self, status: HostStatus) -> None:
        """A host came up or went down: its models join or leave the picker."""
        if status.reachable != (status.host_id in self._reachable_ids):
            self.refresh_models()

    def _reachable(self, config: HostConfig) -> bool:
        if self.health is None:
            return True
        return self.health.status(config.id).reachable

    def choice(self) -> ModelChoice | None:
        data = self.model_picker.currentData()
        return data if isinstance(data, ModelChoice) else None

    def _select_choice(self, choice: ModelChoice) -> None:
        self._auto_choice = None
        for i in range(self.model_picker.count()):
            if self.model_picker.itemData(i) == choice:
                self.model_picker.setCurrentIndex(i)
                return
        # not listed now (host offline, model gone): show it anyway, as the conversation's
        label = f"{choice.model} · {self.host_name(choice.host_id)} (not available now)"
        self.model_picker.addItem(label, choice)
        self.model_picker.setCurrentIndex(self.model_picker.count() - 1)

    def choose_model(self, host_id: str, model: str) -> bool:
        """Pick a model in the picker (as the user would); False if it is not listed."""
        for i in range(self.model_picker.count()):
            if self.model_picker.itemData(i) == ModelChoice(host_id, model):
                self.model_picker.setCurrentIndex(i)
                self._on_model_chosen(i)
                return True
        return False

    def _on_model_chosen(self, _index: int) -> None:
        self._auto_choice = None  # the user's own choice from now on
        choice = self.choice()
        if choice is None or self.current is None or self.store is None:
            return
        if (choice.host_id, choice.model) == (self.current.host_id, self.current.model):
            return
        self._tasks.spawn(self._change_model(self.current.id, choice), name="change model")

    async def _change_model(self, conversation_id: str, choice: ModelChoice) -> None:
        assert self.store is not None
        updated = await self.store.update_conversation(
            conversation_id, host_id=choice.host_id, model=choice.model
        )
        if self.current is not None and self.current.id == updated.id:
            self.current = updated
            self._say(f"Replies now come from {choice.model} on {self.host_name(choice.host_id)}.")

    # -- options --------------------------------------------------------------------------
    def open_options(self) -> ChatOptionsDialog:
        current = self.current
        prompt = current.system_prompt if current is not None else self._pending_prompt
        options = current.options if current is not None else self._pending_options
        dialog = ChatOptionsDialog(prompt, options, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._apply_options(dialog.prompt, dialog.options))
        dialog.open()
        return dialog

    def _apply_options(self, prompt: str, options: ChatOptions) -> None:
        if self.current is None or self.store is None:
            self._pending_prompt, self._pending_options = prompt, options
            return
        self._tasks.spawn(self._save_options(self.current.id, prompt, options), name="options")

    async def _save_options(self, conversation_id: str, prompt: str, options: ChatOptions) -> None:
        assert self.store is not None
        updated = await self.store.update_conversation(
            conversation_id, system_prompt=prompt, options=options
        )
        if self.current is not None and self.current.id == updated.id:
            self.current = updated
        self._say("Options saved for this conversation.")

    # -- sending --------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._live is not None

    def _update_busy(self) -> None:
        busy = self._live is not None
        here = busy and self.current is not None and self._live.conversation_id == self.current.id  # type: ignore[union-attr]
        self.send_button.setText("Stop" if here else "Send")
        self.send_button.setEnabled(here or not busy)
        self.send_button.setToolTip(
            "Stop the reply (Esc)"
            if here
            else "A reply is being written in another conversation"
            if busy
            else "Send (Enter)"
        )

    def _on_send_button(self) -> None:
        if self.busy:
            self.stop()
        else:
            self.send()

    def send(self) -> None:
        """Send what the composer holds (Enter). The text stays in the composer until the
        reply has started, so a failure to start loses nothing."""
        if self.engine is None:
            return
        text = self.composer.toPlainText()
        if self.busy:
            self._say("Wait for the reply, or stop it (Esc), before sending another message.")
            return
        if not text.strip():
            return
        choice = self.choice()
        if choice is None:
            self.show_error("Choose a model first (add or start a host that has one).")
            return
        self._tasks.spawn(self._send(text, choice, self._editing), name="send")

    async def _send(self, text: str, choice: ModelChoice, editing: str | None) -> None:
        assert self.engine is not None and self.store is not None
        if self._live is not None:
            return
        if self.current is None:
            self.current = await self.store.create_conversation(
                choice.model,
                host_id=choice.host_id,
                system_prompt=self._pending_prompt,
                options=self._pending_options,
            )
        elif (choice.host_id, choice.model) != (self.current.host_id, self.current.model):
            self.current = await self.store.update_conversation(
                self.current.id, host_id=choice.host_id, model=choice.model
            )
        conversation = self.current
        if editing is not None:
            handle = await self.engine.resend(conversation.id, editing, text)
            self.view.remove_from(editing)
            self.cancel_edit()
        else:
            handle = await self.engine.send(conversation.id, text)
        if self.composer.toPlainText() == text:
            self.composer.clear()
        user = StoredMessage(
            id="", conversation_id=conversation.id, seq=-1, role="user", content=text
        )
        self.view.add_message(user)
        self._follow(handle, conversation)

    def _follow(self, handle: ReplyHandle, conversation: Conversation) -> None:
        """Show a reply that has started, and stream it into its widget."""
        reply = StoredMessage(
            id=handle.message_id,
            conversation_id=conversation.id,
            seq=-1,
            role="assistant",
            model=conversation.model,
            status=MessageStatus.STREAMING,
        )
        widget = self.view.add_message(reply)
        widget.begin_stream(self.host_name(conversation.host_id), conversation.model)
        down = self.unavailable_tools(conversation)
        self._live = _Live(
            handle, conversation.id, model=conversation.model, content=[], thinking=[]
        )
        if down:
            self._live.notice = down
            widget.show_notice(down)
        if handle.kept_copy_id:
            self._live.note = "The conversation as it was before the edit is kept as a copy."
            self._say(self._live.note)
            self.refresh_list()
        self._update_busy()
        self._tasks.spawn(self._stream(self._live), name="reply")

    def unavailable_tools(self, conversation: Conversation) -> str:
        """A notice naming the tool servers that are configured but not running, whose
        tools the model does not get for this reply ("" when all run)."""
        if self.tool_servers is None or not conversation.tools_enabled:
            return ""
        down = []
        for status in self.tool_servers():
            if status.state in (ServerState.READY, ServerState.DEGRADED):
                continue
            if status.reason == "Disabled.":
                continue
            why = status.reason.rstrip(".") or status.state.value
            down.append(f"{status.name} ({why})")
        if not down:
            return ""
        return "Tools not available for this reply: " + "; ".join(down) + "."

    def _live_widget(self, live: _Live) -> MessageWidget | None:
        if self.current is None or self.current.id != live.conversation_id:
            return None
        return self.view.widget_for(live.message_id or live.handle.message_id)

    def _live_shown(self, live: _Live) -> bool:
        return self.current is not None and self.current.id == live.conversation_id

    async def _stream(self, live: _Live) -> None:
        assert live.content is not None and live.thinking is not None
        handle = live.handle
        live.message_id = handle.message_id
        end: ReplyFinished | ReplyStopped | ReplyFailed | None = None
        try:
            async for event in handle:
                if isinstance(event, ContentChunk):
                    live.content.append(event.text)
                    widget = self._live_widget(live)
                    if widget is not None:
                        widget.append_content(event.text)
                elif isinstance(event, ThinkingChunk):
                    live.thinking.append(event.text)
                    widget = self._live_widget(live)
                    if widget is not None:
                        widget.append_thinking(event.text)
                elif isinstance(event, ReplyStarted):
                    live.host_name, live.model = event.host_name, event.model
                    widget = self._live_widget(live)
                    if widget is not None:
                        widget.begin_stream(event.host_name, event.model)
                elif isinstance(event, HostSwitched | ToolsDropped):
                    if isinstance(event, HostSwitched):
                        live.host_name = event.host_name
                    live.notice = event.text
                    widget = self._live_widget(live)
                    if widget is not None:
                        if isinstance(event, HostSwitched):
                            widget.begin_stream(event.host_name, event.model)
                        widget.show_notice(event.text)
                elif isinstance(event, ToolCallChunk):
                    pass  # the engine follows with ToolCallRequested when it acts on it
                elif isinstance(event, ToolCallRequested):
                    self._tool_requested(live, event)
                elif isinstance(event, ToolCallDecided):
                    card = self.view.card_for(event.call_id) if self._live_shown(live) else None
                    if card is not None:
                        card.show_decision(event.decision, event.asked, event.note)
                elif isinstance(event, ToolCallFinished):
                    card = self.view.card_for(event.call_id) if self._live_shown(live) else None
                    if card is not None:
                        card.finish(event.message_id, event.result, event.error, event.duration_ms)
                elif isinstance(event, ReplyContinued):
                    self._next_round(live, event)
                else:
                    end = event
        finally:
            self._live = None
            self._update_busy()
        if end is None:
            return
        message = end.message
        widget = self._live_widget(live)
        host_name = self.host_name(message.host_id) if message.host_id else live.host_name
        if widget is not None:
            widget.finish(message, host_name)
            if isinstance(end, ReplyFailed):
                widget.show_error(end.error.message, end.retry)
            self.view.replace_message(message)
            await self._sync_ids(live.conversation_id)
        if isinstance(end, ReplyFailed):
            self.show_error(f"The reply failed: {end.error.message}")
        elif isinstance(end, ReplyStopped):
            self._say("Stopped. What arrived is kept.")
        else:
            self._say(message.note or live.note)
        self.refresh_list()
        self.replyEnded.emit(message.id)

    def _tool_requested(self, live: _Live, event: ToolCallRequested) -> None:
        widget = self._live_widget(live)
        if widget is not None:
            widget.end_round()
        if not self._live_shown(live):
            return
        card = ToolCallCard(event.call_id, event.name, event.server, event.tool, event.arguments)
        card.decided.connect(self._on_decided)
        self.view.add_card(card, live.conversation_id)
        if event.call_id in self._approvals:
            card.ask()

    def _next_round(self, live: _Live, event: ReplyContinued) -> None:
        """The tool results went back to the model: its next answer gets a widget of its
        own, below the tool calls."""
        assert live.content is not None and live.thinking is not None
        previous = self._live_widget(live)
        if previous is not None:
            previous.end_round()
        live.message_id = event.message_id
        live.content.clear()
        live.thinking.clear()
        live.notice = ""
        if not self._live_shown(live):
            return
        reply = StoredMessage(
            id=event.message_id,
            conversation_id=live.conversation_id,
            seq=-1,
            role="assistant",
            model=live.model,
            status=MessageStatus.STREAMING,
        )
        widget = self.view.add_message(reply)
        widget.begin_stream(live.host_name, live.model)

    # -- approvals ------------------------------------------------------------------------
    async def approve(self, request: ApprovalRequest) -> Decision:
        """Ask the user about a tool call (the engine's Approver): the call's card shows
        Allow once / Allow in this conversation / Always allow this tool / Deny, and this
        waits for the answer (cancelled with the reply)."""
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._approvals[request.call_id] = future
        card = self.view.card_for(request.call_id)
        if card is not None:
            card.ask()
        self.approvalRequested.emit(request.call_id)
        try:
            return await future
        finally:
            self._approvals.pop(request.call_id, None)
            card = self.view.card_for(request.call_id)
            if card is not None and card.asking:
                card.close_prompt("Not answered: the reply was stopped.")

    def _on_decided(self, call_id: str, decision: str) -> None:
        future = self._approvals.get(call_id)
        if future is not None and not future.done():
            future.set_result(Decision(decision))

    def pending_approvals(self) -> list[str]:
        """The ids of the tool calls waiting for the user's answer."""
        return [call_id for call_id, f in self._approvals.items() if not f.done()]

    async def _sync_ids(self, conversation_id: str) -> None:
        """Give the widgets the ids the store gave their messages (the user's message is
        shown before it is written)."""
        assert self.store is not None
        messages = await self.store.messages(conversation_id)
        if self.current is None or self.current.id != conversation_id:
            return
        if self._live is not None and self._live.conversation_id == conversation_id:
            return  # another reply started meanwhile; its end syncs again
        self.view.sync(messages)

    def stop(self) -> None:
        """Stop the reply being written (Esc); what arrived is kept."""
        if self._live is not None:
            self._live.handle.stop()

    # -- retry, regenerate, edit, branch ----------------------------------------------
    def retry(self, host_id: str) -> None:
        """Answer the last message again, on ``host_id`` ("" for the conversation's host)."""
        if self.engine is None or self.current is None:
            return
        if self.busy:
            self._say("Wait for the reply, or stop it (Esc), first.")
            return
        self._tasks.spawn(self._retry(self.current, host_id), name="retry")

    async def _retry(self, conversation: Conversation, host_id: str) -> None:
        assert self.engine is not None
        handle = await self.engine.retry(conversation.id, host_id=host_id or None)
        last = self.view.widgets[-1] if self.view.widgets else None
        if last is not None and last.role == "assistant":
            self.view.remove_from(last.message_id)
        if host_id:
            conversation = Conversation(**{**conversation.__dict__, "host_id": host_id})
        self._follow(handle, conversation)

    def begin_edit(self, message_id: str) -> None:
        """Put a message of the user's into the composer to be edited and sent again."""
        message = self.view.message(message_id)
        if message is None or message.role != "user" or not message.id:
            return
        if self.busy:
            self._say("Wait for the reply, or stop it (Esc), first.")
            return
        self._save_draft()
        self._editing = message_id
        self.composer.setPlainText(message.content)
        self.edit_strip.setVisible(True)
        self.composer.setFocus()

    def cancel_edit(self) -> None:
        if self._editing is None:
            return
        self._editing = None
        self.edit_strip.setVisible(False)
        key = self.current.id if self.current is not None else ""
        self.composer.setPlainText(self._drafts.pop(key, ""))

    def branch_from(self, message_id: str) -> None:
        if self.store is None or self.current is None:
            return
        self._tasks.spawn(self._branch(self.current.id, message_id), name="branch")

    async def _branch(self, conversation_id: str, message_id: str) -> None:
        assert self.store is not None
        copy = await self.store.duplicate(conversation_id, up_to_message_id=message_id)
        await self._open(copy.id)
        self.refresh_list()
        self._say("A new conversation starts from that message.")

    # -- list actions ---------------------------------------------------------------------
    def _list_menu(self, pos: Any) -> None:
        item = self.conversation_list.itemAt(pos)
        if item is None or not item.data(ConversationRole):
            return
        conversation_id = str(item.data(ConversationRole))
        menu = QMenu(self)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.addAction("Rename…", lambda: self.ask_rename(conversation_id))
        menu.addAction("Duplicate", lambda: self.duplicate(conversation_id))
        menu.addAction("Export as Markdown…", lambda: self.choose_export(conversation_id, "md"))
        menu.addAction("Export as JSON…", lambda: self.choose_export(conversation_id, "json"))
        menu.addSeparator()
        menu.addAction("Delete…", lambda: self.confirm_delete(conversation_id))
        menu.popup(self.conversation_list.viewport().mapToGlobal(pos))

    def ask_rename(self, conversation_id: str) -> QInputDialog:
        dialog = QInputDialog(self)
        dialog.setObjectName("renameDialog")
        dialog.setWindowTitle("Rename conversation")
        dialog.setLabelText("Title:")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.textValueSelected.connect(lambda text: self.rename(conversation_id, text))
        dialog.open()
        return dialog

    def rename(self, conversation_id: str, title: str) -> None:
        assert self.store is not None
        self._tasks.spawn(self._rename(conversation_id, title), name="rename")

    async def _rename(self, conversation_id: str, title: str) -> None:
        assert self.store is not None
        updated = await self.store.rename(conversation_id, title)
        if self.current is not None and self.current.id == updated.id:
            self.current = updated
        self.refresh_list()

    def duplicate(self, conversation_id: str) -> None:
        assert self.store is not None
        self._tasks.spawn(self._duplicate(conversation_id), name="duplicate")

    async def _duplicate(self, conversation_id: str) -> None:
        assert self.store is not None
        await self.store.duplicate(conversation_id)
        self.refresh_list()

    def confirm_delete(self, conversation_id: str) -> QMessageBox:
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete conversation",
            "Delete this conversation and all its messages? This cannot be undone.",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setObjectName("confirmDeleteConversation")
        accept = box.addButton("Delete", QMessageBox.ButtonRole.AcceptRole)
        accept.setObjectName("confirmDeleteConversationAccept")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(button: Any) -> None:
            if button is accept:
                self._tasks.spawn(self._delete(conversation_id), name="delete conversation")

        box.buttonClicked.connect(answered)
        box.open()
        return box

    async def _delete(self, conversation_id: str) -> None:
        assert self.store is not None
        if self._live is not None and self._live.conversation_id == conversation_id:
            self._live.handle.stop()
            await self._live.handle.wait()
        await self.store.delete_conversation(conversation_id)
        if self.current is not None and self.current.id == conversation_id:
            self.new_conversation()
        self.refresh_list()

    def choose_export(self, conversation_id: str, kind: str) -> QFileDialog:
        dialog = QFileDialog(self, "Export conversation")
        dialog.setObjectName("exportDialog")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilter("Markdown (*.md)" if kind == "md" else "JSON (*.json)")
        dialog.setDefaultSuffix(kind)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda path: self.export(conversation_id, Path(path), kind))
        dialog.open()
        return dialog

    def export(self, conversation_id: str, path: Path, kind: str) -> None:
        self._tasks.spawn(self._export(conversation_id, path, kind), name="export")

    async def _export(self, conversation_id: str, path: Path, kind: str) -> None:
        assert self.store is not None
        if kind == "md":
            text = await self.store.export_markdown(conversation_id)
        else:
            text = json.dumps(await self.store.export_json(conversation_id), indent=2)
        try:
            await asyncio.get_running_loop().run_in_executor(None, path.write_text, text, "utf-8")
        except OSError as exc:
            raise InvalidInput(f"Could not write {path}: {exc.strerror or exc}.") from exc
        self._say(f"Exported to {path}.")

    def choose_import_file(self) -> QFileDialog:
        dialog = QFileDialog(self, "Import conversation")
        dialog.setObjectName("importDialog")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilter("Conversation (*.json)")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(lambda path: self.import_file(Path(path)))
        dialog.open()
        return dialog

    def import_file(self, path: Path) -> None:
        self._tasks.spawn(self._import(path), name="import")

    async def _import(self, path: Path) -> None:
        assert self.store is not None
        try:
            data = await asyncio.get_running_loop().run_in_executor(None, path.read_bytes)
        except OSError as exc:
            raise InvalidInput(f"Could not read {path}: {exc.strerror or exc}.") from exc
        conversation = await self.store.import_json(data)
        self.refresh_list()
        await self._open(conversation.id)
        self._say(f"Imported “{conversation.title or path.name}”.")
