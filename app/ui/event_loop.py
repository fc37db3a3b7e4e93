"""The asyncio event loop Corral runs on: qasync's Qt loop, plus async-generator hooks.

qasync's ``QEventLoop.run_forever`` does not install the async-generator hooks that
asyncio's own loops install. Without them, an async generator dropped before its end
(httpx's line iterators are, when the ollama client raises from inside ``async for``) is
closed synchronously by the garbage collector, in whatever task happens to run: its
cleanup cannot await, and anyio reports "Attempted to exit cancel scope in a different
task". With the hooks, the loop closes such generators in a task of their own, and
``shutdown_asyncgens`` closes the rest when the loop ends.
"""

from __future__ import annotations

import sys
from typing import Any

from PySide6.QtWidgets import QApplication

# isort: split
import qasync


class CorralEventLoop(qasync.QEventLoop):  # type: ignore[misc]
    """A qasync event loop that finalizes abandoned async generators as asyncio does."""

    def __init__(self, app: QApplication | None = None) -> None:
        super().__init__(app or QApplication.instance())

    def run_forever(self) -> Any:
        previous = sys.get_asyncgen_hooks()
        sys.set_asyncgen_hooks(
            firstiter=self._asyncgen_firstiter_hook, finalizer=self._asyncgen_finalizer_hook
        )
        try:
            return super().run_forever()
        finally:
            sys.set_asyncgen_hooks(*previous)
