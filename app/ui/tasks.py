"""Background tasks owned by a widget: started from slots, cancelled when the widget goes.

Qt slots are synchronous; commands and probes are coroutines. :class:`TaskRunner` starts
each coroutine as an asyncio task on the running (qasync) loop, keeps a strong reference
until it ends, and routes its outcome: a :class:`CorralError` goes to the owner's error
callback (a sentence for the user); any other exception is a bug and goes to
``sys.excepthook`` (logged by the app, turned into a test failure by pytest-qt) and the
user is told that something went wrong.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from app.core.errors import CorralError

log = logging.getLogger(__name__)

ErrorCallback = Callable[[str], None]


class TaskRunner:
    """A set of running tasks with one place for their errors.

    Attributes:
        on_error: called with the user-facing message of a failed task.
    """

    def __init__(self, on_error: ErrorCallback) -> None:
        self.on_error = on_error
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str = "") -> asyncio.Task[Any]:
        """Run ``coro`` as a task on the running loop and report its failure, if any."""
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, CorralError):
            log.info("%s failed: %s", task.get_name(), exc.message)
            self.on_error(exc.message)
            return
        sys.excepthook(type(exc), exc, exc.__traceback__)
        self.on_error(f"Something went wrong inside Corral ({type(exc).__name__}: {exc}).")

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def cancel_all(self) -> None:
        """Cancel every task and wait until all of them have ended."""
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def cancel_all_nowait(self) -> None:
        for task in list(self._tasks):
            task.cancel()
