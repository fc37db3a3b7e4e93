"""Chat: conversations, the reply engine, host routing and the SQLite history."""

from app.core.chat.engine import ChatEngine, Flushed, ReplyHandle
from app.core.chat.routing import Candidate, Router
from app.core.chat.store import ChatStore, Edited
from app.core.chat.types import (
    AUTO,
    ChatOptions,
    Conversation,
    HostSwitched,
    MessageStatus,
    ReplyEvent,
    ReplyFailed,
    ReplyFinished,
    ReplyStarted,
    ReplyStopped,
    RetryKind,
    RetryOption,
    SearchHit,
    StoredMessage,
)
from app.core.errors import StoreError

__all__ = [
    "AUTO",
    "Candidate",
    "ChatEngine",
    "ChatOptions",
    "ChatStore",
    "Conversation",
    "Edited",
    "Flushed",
    "HostSwitched",
    "MessageStatus",
    "ReplyEvent",
    "ReplyFailed",
    "ReplyFinished",
    "ReplyHandle",
    "ReplyStarted",
    "ReplyStopped",
    "RetryKind",
    "RetryOption",
    "Router",
    "SearchHit",
    "StoreError",
    "StoredMessage",
]
