"""The messages of one conversation: a scrolling column of message widgets.

Only the newest messages are built when a conversation opens (a page of them); older ones
are built when the user scrolls to the top or presses "Show earlier messages", so a
conversation of thousands of messages opens as fast as a short one.

A reply being streamed takes its text in pieces: :meth:`MessageWidget.append_content`
only queues the piece, and a timer hands what is queued to the Markdown view a few dozen
times a second, which appends it at the end of what is shown. The cost of a token does
not grow with the length of the reply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QSignalBlocker, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.chat.types import MessageStatus, RetryOption, StoredMessage
from app.core.hosts.base import ChatStats
from app.ui.chat.markdown import MarkdownView
from app.ui.chat.tool_card import ToolCallCard
from app.ui.formatting import ms_text, rate_text

#: How many messages are built at a time (when a conversation opens, and per "earlier"):
#: a few screens' worth.
PAGE = 30
#: The look of the messages, set once on the view (not per message: that is slow).
STYLE = (
    "#messageError { background: #fdecea; border: 1px solid #e0a39c; border-radius: 4px; }"
    " #messageError QLabel { color: #7a1c12; }"
    " #messageStats { color: palette(mid); }"
    ' #chatMessage[role="user"] { background: palette(alternate-base); }'
)
#: How often queued pieces of a streamed reply are shown (ms): about 30 frames a second.
FLUSH_MS = 33

HostNames = Callable[[str], str]


def stats_text(stats: ChatStats | None, host_name: str = "") -> str:
    """The figures of one reply, for the line under it:
    ``first token 120 ms · 45.2 tok/s · 12 → 230 tokens · load 1.2 s · on Box A``."""
    parts: list[str] = []
    if stats is not None:
        if stats.time_to_first_token_ms is not None:
            parts.append(f"first token {ms_text(stats.time_to_first_token_ms)}")
        rate = stats.tokens_per_s
        if rate is None and stats.output_tokens and stats.total_ms and stats.total_ms > 0:
            ttft = stats.time_to_first_token_ms or 0.0
            span = max(stats.total_ms - ttft, 1.0)
            rate = stats.output_tokens / (span / 1000.0)
        if rate is not None:
            parts.append(f"{rate_text(rate)} tok/s")
        if stats.prompt_tokens is not None or stats.output_tokens is not None:
            p = "?" if stats.prompt_tokens is None else str(stats.prompt_tokens)
            o = "?" if stats.output_tokens is None else str(stats.output_tokens)
            parts.append(f"{p} prompt + {o} output tokens")
        if stats.load_ms:
            parts.append(f"load {ms_text(stats.load_ms)}")
        if stats.total_ms is not None:
            parts.append(f"total {ms_text(stats.total_ms)}")
    if host_name:
        parts.append(f"on {host_name}")
    return " · ".join(parts)


def _open_link(url: str) -> None:
    """A link in a message opens in the user's browser (never inside Corral)."""
    QDesktopServices.openUrl(QUrl(url))


class MessageWidget(QFrame):
    """One message: who wrote it, its Markdown text, the model's thinking (collapsed),
    a notice line, an inline error with retry actions, the reply's figures and actions.

    Attributes:
        message_id, role: the stored message's id and role.
        header: who wrote it (and with which model on which host).
        thinking_button, thinking_view: the collapsed reasoning (hidden when there is none).
        body: the :class:`MarkdownView` of the text.
        notice: a line such as "answering on Box B" (hidden when empty).
        error_box, error_label, retry_buttons: the inline error and its retry buttons.
        stats_label: the reply's figures.
        copy_button, edit_button, regenerate_button, branch_button: message actions.

    Signals:
        retryRequested(str): retry the reply on this host id ("" for the usual one).
        editRequested(str): the user wants to edit this (user) message.
        regenerateRequested(str): answer the message before this reply again.
        branchRequested(str): start a new conversation from here.
    """

    retryRequested = Signal(str)
    editRequested = Signal(str)
    regenerateRequested = Signal(str)
    branchRequested = Signal(str)

    def __init__(
        self, message: StoredMessage, host_name: str = "", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("chatMessage")
        self.message_id = message.id
        self.role = message.role
        self.setProperty("role", message.role)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self._pending: list[str] = []
        self._pending_thinking: list[str] = []
        self._streaming = False
        self._host_name = host_name

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        top = QHBoxLayout()
        self.header = QLabel(self)
        self.header.setObjectName("messageHeader")
        font = self.header.font()
        font.setBold(True)
        self.header.setFont(font)
        self.header.setWordWrap(True)  # a long model or host name must not widen the view
        self.header.setMinimumWidth(60)
        top.addWidget(self.header, 1)
        self.copy_button = self._tool("Copy", "copyMessageButton", "Copy the message's text")
        self.edit_button = self._tool("Edit", "editMessageButton", "Edit and send again")
        self.regenerate_button = self._tool(
            "Regenerate", "regenerateButton", "Answer the message before this one again"
        )
        self.branch_button = self._tool(
            "Branch", "branchButton", "Start a new conversation from this message"
        )
        for button in (
            self.copy_button,
            self.edit_button,
            self.regenerate_button,
            self.branch_button,
        ):
            top.addWidget(button)
        layout.addLayout(top)

        self.thinking_button = QToolButton(self)
        self.thinking_button.setObjectName("thinkingButton")
        self.thinking_button.setCheckable(True)
        self.thinking_button.setChecked(False)
        self.thinking_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.thinking_button.setArrowType(Qt.ArrowType.RightArrow)
        self.thinking_button.setAutoRaise(True)
        self.thinking_button.setText("Thinking")
        self._thinking_view: MarkdownView | None = None  # built when there is thinking
        self.thinking_button.setVisible(False)
        layout.addWidget(self.thinking_button)

        self.notice = QLabel(self)
        self.notice.setObjectName("messageNotice")
        self.notice.setWordWrap(True)
        self.notice.setVisible(False)
        layout.addWidget(self.notice)

        self.body = MarkdownView(self)
        self.body.setObjectName("messageBody")
        self.body.link_activated.connect(_open_link)
        layout.addWidget(self.body)

        self.error_box = QFrame(self)
        self.error_box.setObjectName("messageError")
        error_layout = QVBoxLayout(self.error_box)
        error_layout.setContentsMargins(8, 6, 8, 6)
        self.error_label = QLabel(self.error_box)
        self.error_label.setObjectName("messageErrorText")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        error_layout.addWidget(self.error_label)
        self._retry_row = QHBoxLayout()
        error_layout.addLayout(self._retry_row)
        self.retry_buttons: list[QPushButton] = []
        self.error_box.setVisible(False)
        layout.addWidget(self.error_box)

        self.stats_label = QLabel(self)
        self.stats_label.setObjectName("messageStats")
        self.stats_label.setWordWrap(True)
        self.stats_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stats_label.setVisible(False)
        layout.addWidget(self.stats_label)

        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self.flush)

        self.thinking_button.toggled.connect(self._show_thinking)
        self.copy_button.clicked.connect(self.copy_text)
        self.edit_button.clicked.connect(lambda: self.editRequested.emit(self.message_id))
        self.regenerate_button.clicked.connect(
            lambda: self.regenerateRequested.emit(self.message_id)
        )
        self.branch_button.clicked.connect(lambda: self.branchRequested.emit(self.message_id))
        self.show_message(message, host_name)

    @property
    def thinking_view(self) -> MarkdownView:
        """The model's reasoning, under the Thinking button (built on first use)."""
        if self._thinking_view is None:
            view = MarkdownView(self)
            view.setObjectName("thinkingView")
            view.setVisible(self.thinking_button.isChecked())
            layout = self.layout()
            assert isinstance(layout, QVBoxLayout)
            layout.insertWidget(layout.indexOf(self.thinking_button) + 1, view)
            self._thinking_view = view
        return self._thinking_view

    def _tool(self, text: str, name: str, tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setObjectName(name)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        return button

    # -- a stored message -----------------------------------------------------------------
    def show_message(self, message: StoredMessage, host_name: str = "") -> None:
        """Show ``message`` as stored (finished, stopped or failed)."""
        self._timer.stop()
        self._pending.clear()
        self._pending_thinking.clear()
        self._streaming = False
        self.message_id = message.id
        self._host_name = host_name or self._host_name
        self._set_header(message.model)
        if message.thinking or self._thinking_view is not None:
            self.thinking_view.set_markdown(message.thinking)
            self.thinking_view.setVisible(
                bool(message.thinking) and self.thinking_button.isChecked()
            )
        self.thinking_button.setVisible(bool(message.thinking))
        self.body.set_markdown(message.content)
        self._set_status(message)
        self._update_buttons()
        # a part of a reply that only asked for tools says nothing itself: its cards do
        silent = (
            message.role == "assistant"
            and bool(message.tool_calls)
            and not message.content.strip()
            and not message.thinking
            and message.status is MessageStatus.COMPLETE
        )
        if silent:
            self.setVisible(False)
        elif self.isHidden() and self.parent() is not None:
            self.setVisible(True)

    def _set_header(self, model: str) -> None:
        if self.role == "user":
            self.header.setText("You")
        elif self.role == "assistant":
            where = f" on {self._host_name}" if self._host_name else ""
            self.header.setText(f"{model or 'Model'}{where}")
        else:
            self.header.setText(self.role.capitalize())

    def _set_status(self, message: StoredMessage) -> None:
        self.stats_label.setVisible(False)
        self.error_box.setVisible(False)
        if message.role != "assistant":
            return
        if message.status is MessageStatus.COMPLETE:
            text = stats_text(message.stats, self._host_name)
            self.stats_label.setText(text)
            self.stats_label.setVisible(bool(text))
        elif message.status is MessageStatus.STOPPED:
            self.stats_label.setText("Stopped. The text above is what arrived.")
            self.stats_label.setVisible(True)
        elif message.status is MessageStatus.FAILED:
            self.show_error(message.error or "The reply failed.", ())

    # -- streaming ------------------------------------------------------------------------
    def begin_stream(self, host_name: str, model: str) -> None:
        """The reply is being asked of ``host_name``: show that, and take pieces."""
        self._streaming = True
        self._host_name = host_name
        self._set_header(model)
        self.stats_label.setText("Waiting for the first token…")
        self.stats_label.setVisible(True)
        self.error_box.setVisible(False)
        self._update_buttons()

    def append_content(self, text: str) -> None:
        """Queue a piece of the reply's text (shown at the next flush)."""
        self._pending.append(text)
        if not self._timer.isActive():
            self._timer.start()

    def append_thinking(self, text: str) -> None:
        """Queue a piece of the model's reasoning (shown collapsed)."""
        self._pending_thinking.append(text)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Show the queued pieces now."""
        if self._pending_thinking:
            if not self.thinking_button.isVisible():
                self.thinking_button.setVisible(True)
            self.thinking_view.append("".join(self._pending_thinking))
            self._pending_thinking.clear()
        if self._pending:
            if self.stats_label.text().startswith("Waiting"):
                self.stats_label.setText("Writing…")
            self.body.append("".join(self._pending))
            self._pending.clear()
        if not self._pending and not self._pending_thinking:
            self._timer.stop()

    def end_round(self) -> None:
        """The model asked for tools: this part of the reply is over (the answer goes on
        in a new message after the tool calls). An empty part is hidden."""
        self.flush()
        self._streaming = False
        self.body.finish()
        if self._thinking_view is not None:
            self._thinking_view.finish()
        self.stats_label.setVisible(False)
        if not self.body.text().strip() and not self.thinking_button.isVisibleTo(self):
            self.setVisible(False)
        self._update_buttons()

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def finish(self, message: StoredMessage, host_name: str = "") -> None:
        """The reply ended (finished, stopped or failed): show it as stored."""
        self.flush()
        self._streaming = False
        self._host_name = host_name or self._host_name
        self.message_id = message.id
        self._set_header(message.model)
        self.body.finish()
        if self._thinking_view is not None:
            self._thinking_view.finish()
        self._set_status(message)
        self._update_buttons()

    def show_error(self, text: str, retry: Sequence[RetryOption]) -> None:
        """The inline error in plain words, with a button per retry action (at least a
        plain Retry)."""
        self.error_label.setText(text)
        for button in self.retry_buttons:
            self._retry_row.removeWidget(button)
            button.deleteLater()
        self.retry_buttons = []
        options: list[RetryOption | None] = list(retry) or [None]
        for option in options:
            button = QPushButton("Retry" if option is None else option.label, self.error_box)
            host_id = "" if option is None or option.kind == "retry" else option.host_id
            button.setObjectName("retryButton" if not host_id else "retryOtherButton")
            button.setProperty("hostId", host_id)
            button.clicked.connect(lambda _=False, h=host_id: self.retryRequested.emit(h))
            self._retry_row.addWidget(button)
            self.retry_buttons.append(button)
        self._retry_row.addStretch(1)
        self.error_box.setVisible(True)

    # -- actions --------------------------------------------------------------------------
    @property
    def streaming(self) -> bool:
        return self._streaming

    def set_last_reply(self, last: bool) -> None:
        """Regenerate is offered on the last reply only."""
        self.setProperty("lastReply", last)
        self._update_buttons()

    def _update_buttons(self) -> None:
        user = self.role == "user"
        self.edit_button.setVisible(user)
        self.regenerate_button.setVisible(
            self.role == "assistant" and bool(self.property("lastReply"))
        )
        for button in (self.copy_button, self.edit_button, self.regenerate_button):
            button.setEnabled(not self._streaming)
        self.branch_button.setEnabled(not self._streaming)

    def text(self) -> str:
        """The message's Markdown text (with what is still queued)."""
        return self.body.text() + "".join(self._pending)

    def copy_text(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    def _show_thinking(self, shown: bool) -> None:
        self.thinking_button.setArrowType(
            Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        )
        if shown or self._thinking_view is not None:
            self.thinking_view.setVisible(shown)


class ConversationView(QScrollArea):
    """The messages of the open conversation, newest at the bottom.

    Attributes:
        earlier_button: "Show earlier messages" (hidden when all are built).
        widgets: the message widgets built, oldest first.

    Signals:
        retryRequested(str): a failed reply's retry button (host id, "" for the usual).
        editRequested(str), regenerateRequested(str), branchRequested(str): a message's
            actions (its id).
    """

    retryRequested = Signal(str)
    editRequested = Signal(str)
    regenerateRequested = Signal(str)
    branchRequested = Signal(str)

    def __init__(self, host_names: HostNames, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("conversationView")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setStyleSheet(STYLE)
        self._host_names = host_names
        self._messages: list[StoredMessage] = []
        self._first_built = 0  # index in _messages of the oldest message built
        self.widgets: list[MessageWidget | ToolCallCard] = []
        self._stick = True

        inner = QWidget(self)
        inner.setObjectName("conversationInner")
        self._layout = QVBoxLayout(inner)
        self._layout.setContentsMargins(6, 6, 6, 6)
        self._layout.setSpacing(8)
        self.earlier_button = QPushButton("Show earlier messages", inner)
        self.earlier_button.setObjectName("earlierButton")
        self.earlier_button.setVisible(False)
        self._layout.addWidget(self.earlier_button)
        self._layout.addStretch(1)
        self.setWidget(inner)

        self.earlier_button.clicked.connect(lambda: self.load_earlier())
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range_changed)

    # -- contents -------------------------------------------------------------------------
    def clear(self) -> None:
        for widget in self.widgets:
            self._layout.removeWidget(widget)
            widget.deleteLater()
        self.widgets = []
        self._messages = []
        self._first_built = 0
        self.earlier_button.setVisible(False)

    def set_messages(self, messages: Sequence[StoredMessage], *, page: int = PAGE) -> None:
        """Show a conversation: the newest ``page`` messages are built now, the rest when
        asked for."""
        self.setUpdatesEnabled(False)
        try:
            self.clear()
            self._messages = [m for m in messages if m.role != "system"]
            self._first_built = max(0, len(self._messages) - page)
            for message in self._messages[self._first_built :]:
                self._insert(len(self.widgets), message)
            self.earlier_button.setVisible(self._first_built > 0)
            self._mark_last_reply()
        finally:
            self.setUpdatesEnabled(True)
        self._stick = True
        self.scroll_to_bottom()

    def load_earlier(self, page: int = PAGE) -> int:
        """Build up to ``page`` older messages above the others; returns how many."""
        if self._first_built == 0:
            return 0
        start = max(0, self._first_built - page)
        bar = self.verticalScrollBar()
        from_bottom = bar.maximum() - bar.value()
        self.setUpdatesEnabled(False)
        try:
            for i, message in enumerate(self._messages[start : self._first_built]):
                self._insert(i, message)
        finally:
            self.setUpdatesEnabled(True)
        added = self._first_built - start
        self._first_built = start
        self.earlier_button.setVisible(start > 0)
        # keep what the user was looking at in place
        inner = self.widget()
        if inner is not None:
            inner.adjustSize()
        bar.setValue(bar.maximum() - from_bottom)
        return added

    @property
    def message_count(self) -> int:
        """How many messages the conversation has (built or not)."""
        return len(self._messages)

    def add_message(self, message: StoredMessage) -> MessageWidget:
        """Add a message at the bottom (the user's, or a reply about to stream)."""
        self._messages.append(message)
        widget = self._insert(len(self.widgets), message)
        assert isinstance(widget, MessageWidget), "tool calls are added with add_card"

        self._mark_last_reply()
        self._stick = True
        self.scroll_to_bottom()
        return widget

    def remove_from(self, message_id: str) -> None:
        """Remove a message and everything after it (built or not)."""
        ids = [m.id for m in self._messages]
        if message_id not in ids:
            return
        cut = ids.index(message_id)
        self._messages = self._messages[:cut]
        keep = max(0, cut - self._first_built)
        for widget in self.widgets[keep:]:
            self._layout.removeWidget(widget)
            widget.deleteLater()
        self.widgets = self.widgets[:keep]
        self._mark_last_reply()

    def widget_for(self, message_id: str) -> MessageWidget | None:
        """The message widget (not a tool call card) of a message, if it is built."""
        for widget in self.widgets:
            if isinstance(widget, MessageWidget) and widget.message_id == message_id:
                return widget
        return None

    def card_for(self, call_id: str) -> ToolCallCard | None:
        """The card of a tool call, if it is built."""
        for widget in self.widgets:
            if isinstance(widget, ToolCallCard) and widget.call_id == call_id:
                return widget
        return None

    def add_card(self, card: ToolCallCard, conversation_id: str) -> ToolCallCard:
        """Add a tool call at the bottom, while its reply is being written."""
        self._messages.append(
            StoredMessage(id="", conversation_id=conversation_id, seq=-1, role="tool")
        )
        card.setParent(self.widget())
        self._layout.insertWidget(1 + len(self.widgets), card)
        self.widgets.append(card)
        self._mark_last_reply()
        self._stick = True
        self.scroll_to_bottom()
        return card

    def message(self, message_id: str) -> StoredMessage | None:
        for message in self._messages:
            if message.id == message_id:
                return message
        return None

    def replace_message(self, message: StoredMessage, *, old_id: str | None = None) -> None:
        """Keep the stored copy of a message up to date (after a reply ended)."""
        key = old_id or message.id
        for i, m in enumerate(self._messages):
            if m.id == key:
                self._messages[i] = message
                return

    def sync(self, messages: Sequence[StoredMessage]) -> None:
        """Take the stored messages of the conversation shown (call while no reply of it
        streams): widgets shown before their message was written (the user's, which has
        no id yet) get the id the store gave it. If the two disagree on what the
        conversation holds, it is shown again from the stored messages."""
        stored = [m for m in messages if m.role != "system"]
        if len(stored) != len(self._messages) or any(
            a.role != b.role or (b.id and a.id != b.id)
            for a, b in zip(stored, self._messages, strict=True)
        ):
            self.set_messages(stored)
            return
        self._messages = stored
        for widget, message in zip(self.widgets, stored[self._first_built :], strict=False):
            widget.message_id = message.id

    def _insert(self, index: int, message: StoredMessage) -> MessageWidget | ToolCallCard:
        if message.role == "tool":
            card = ToolCallCard.from_message(message, self.widget())
            self._layout.insertWidget(1 + index, card)
            self.widgets.insert(index, card)
            return card
        widget = MessageWidget(
            message, self._host_names(message.host_id) if message.host_id else "", self.widget()
        )
        widget.retryRequested.connect(self.retryRequested)
        widget.editRequested.connect(self.editRequested)
        widget.regenerateRequested.connect(self.regenerateRequested)
        widget.branchRequested.connect(self.branchRequested)
        # layout: [earlier button] [messages...] [stretch]
        self._layout.insertWidget(1 + index, widget)
        self.widgets.insert(index, widget)
        return widget

    def _mark_last_reply(self) -> None:
        last = self.widgets[-1] if self.widgets else None
        for widget in self.widgets:
            widget.set_last_reply(widget is last and widget.role == "assistant")

    def message_widgets(self) -> list[MessageWidget]:
        """The message widgets built (without the tool call cards)."""
        return [w for w in self.widgets if isinstance(w, MessageWidget)]

    # -- scrolling ------------------------------------------------------------------------
    def scroll_to_bottom(self) -> None:
        bar = self.verticalScrollBar()
        with QSignalBlocker(bar):
            bar.setValue(bar.maximum())

    def at_bottom(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - 4

    def _on_scrolled(self, value: int) -> None:
        self._stick = self.at_bottom()
        if value == 0 and self._first_built > 0 and self.isVisible():
            QTimer.singleShot(0, self.load_earlier)

    def _on_range_changed(self, _low: int, _high: int) -> None:
        if self._stick:  # follow a growing reply while the user is at the bottom
            self.scroll_to_bottom()
