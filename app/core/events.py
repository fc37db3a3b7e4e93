"""A tiny typed observer used to push state changes out of the core.

The UI wraps an :class:`Event` in a Qt signal adapter; the core never knows about Qt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class Event(Generic[T]):
    """A list of callbacks called synchronously, in connection order, on :meth:`emit`.

    A callback that raises is logged and does not stop the others.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._callbacks: list[Callable[[T], object]] = []

    def connect(self, callback: Callable[[T], object]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable[[T], object]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, value: T) -> None:
        for callback in list(self._callbacks):
            try:
                callback(value)
            except Exception:
                log.exception("listener of event %s failed", self.name or "?")

    def __len__(self) -> int:
        return len(self._callbacks)
