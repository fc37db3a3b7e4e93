"""Waiting for a condition inside coroutine tests (plain asyncio or a running qasync loop).

``qtbot.waitUntil`` and ``qtbot.waitSignal`` spin a nested Qt event loop, which fails while
a qasync task runs. :func:`wait_for` polls with short awaits instead, so the loop (and with
it Qt, timers and network I/O) keeps running.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def _describe(condition: Callable[[], object]) -> str:
    try:
        return inspect.getsource(condition).strip()
    except (OSError, TypeError):
        return repr(condition)


async def wait_for(
    condition: Callable[[], T],
    timeout: float = 5.0,  # noqa: ASYNC109 (a polling deadline with a clear failure message)
    *,
    message: str = "",
    interval: float = 0.01,
) -> T:
    """Return the first truthy value of ``condition()``; fail at the deadline.

    An AssertionError raised by the condition counts as "not yet"; the last one is
    reported when the time is up.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_error: AssertionError | None = None
    while True:
        try:
            result = condition()
        except AssertionError as exc:
            last_error, result = exc, None  # type: ignore[assignment]
        if result:
            return result
        if loop.time() >= deadline:
            what = message or _describe(condition)
            detail = f" (last check: {last_error})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for: {what}{detail}")
        await asyncio.sleep(interval)


async def wait_for_async(
    condition: Callable[[], Awaitable[T]],
    timeout: float = 5.0,  # noqa: ASYNC109 (a polling deadline with a clear failure message)
    *,
    message: str = "",
    interval: float = 0.02,
) -> T:
    """Like :func:`wait_for`, for a condition that has to ask something (a server, a
    store) to know: it is awaited until its value is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: object = None
    while True:
        result = await condition()
        if result:
            return result
        last = result
        if loop.time() >= deadline:
            what = message or _describe(condition)
            raise AssertionError(f"timed out after {timeout:g} s waiting for: {what} ({last!r})")
        await asyncio.sleep(interval)


def poll_until(
    condition: Callable[[], T],
    timeout: float = 5.0,
    *,
    message: str = "",
    interval: float = 0.25,
    describe: Callable[[], object] | None = None,
) -> T:
    """Outside a loop: the first truthy value of ``condition()``, asked every ``interval``
    seconds (for readings that change on their own, such as hardware counters); fail at the
    deadline with ``describe()`` (what was seen) in the message."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            what = message or _describe(condition)
            seen = f": {describe()}" if describe is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{seen}")
        time.sleep(interval)
