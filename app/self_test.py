"""``corral --self-test``: start the whole app offscreen, open every panel, check that the
event loop runs, and exit 0, or print what failed and exit 1.

It runs against the hosts the user configured (or none), on copies of the settings, the
MCP config and an empty chat history in a temporary folder, so nothing the user has is
changed; it scans nothing and does not listen for mDNS. Hosts that cannot be reached are
reported but are not failures: the check is of Corral, not of the network.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from app.main import Services

log = logging.getLogger("corral.self_test")

#: How long the hosts may take to answer their first probe before the test goes on.
HOST_WAIT_S = 5.0
#: Longest acceptable wait for a 20 ms timer while the app is idle.
LOOP_LAG_LIMIT_S = 1.0


def isolate(args: argparse.Namespace) -> argparse.Namespace:
    """Point the settings, MCP config and chat history at copies in a temporary folder."""
    from app.core.settings import default_settings_path

    folder = Path(tempfile.mkdtemp(prefix="corral-self-test-"))
    settings = args.settings or default_settings_path()
    copy = folder / "settings.json"
    if settings.is_file():
        shutil.copyfile(settings, copy)
    mcp = args.mcp_config or settings.parent / "mcp.json"
    mcp_copy = folder / "mcp.json"
    if mcp.is_file():
        shutil.copyfile(mcp, mcp_copy)
    args.settings, args.mcp_config, args.chat_db = copy, mcp_copy, folder / "chat.db"
    args.self_test_dir = folder
    return args


class _Errors(logging.Handler):
    """Error records logged while the self-test runs (an unhandled exception in a slot
    or task ends up here)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


def _say(text: str) -> None:
    print(f"self-test: {text}", flush=True)


async def run_checks(
    services: Services, ready: asyncio.Event, closing: asyncio.Event, timings: Any
) -> list[str]:
    """Run the checks once everything has started; return the failures (empty: passed).
    Closes the window at the end, whatever happened."""
    import asyncio  # here, not at start-up: isolate() runs before the first paint

    errors = _Errors()
    logging.getLogger().addHandler(errors)
    failures: list[str] = []
    try:
        try:
            await asyncio.wait_for(ready.wait(), 30.0)
        except TimeoutError:
            return ["the app did not finish starting within 30 s"]
        timings.mark_ready()
        await _check(failures, services, timings)
    except Exception as exc:  # any failure of the check is the result
        failures.append(f"the self-test itself failed: {exc!r}\n{traceback.format_exc()}")
    finally:
        failures += [f"error logged: {m}" for m in errors.messages]
        logging.getLogger().removeHandler(errors)
        services.window.close()
        closing.set()
    return failures


async def _check(failures: list[str], services: Services, timings: Any) -> None:
    import asyncio  # here, not at start-up: isolate() runs before the first paint

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QDockWidget

    window = services.window
    if not window.isVisible():
        failures.append("the main window is not visible")
    if timings.painted_at is None:
        failures.append("the main window never painted")
    else:
        _say("ok: the main window painted")

    # The event loop: a timer and an asyncio sleep both come back in time.
    fired = asyncio.Event()
    timer = QTimer(window)
    timer.setSingleShot(True)
    timer.timeout.connect(fired.set)
    started = time.monotonic()
    timer.start(20)
    try:
        await asyncio.wait_for(fired.wait(), 5.0)
        lag = time.monotonic() - started - 0.02
        if lag > LOOP_LAG_LIMIT_S:
            failures.append(f"a 20 ms timer fired {lag * 1000:.0f} ms late")
        else:
            _say(f"ok: the event loop runs (a 20 ms timer was {max(lag, 0) * 1000:.0f} ms late)")
    except TimeoutError:
        failures.append("a Qt timer did not fire within 5 s: the event loop is stuck")
    finally:
        timer.deleteLater()
    got = await asyncio.get_running_loop().run_in_executor(None, lambda: 42)
    if got != 42:
        failures.append("work handed to a thread did not come back")

    # Every panel: shown, raised and given a moment to lay itself out.
    docks = window.findChildren(QDockWidget)
    if not docks:
        failures.append("the window has no panels")
    for dock in docks:
        dock.show()
        dock.raise_()
        await asyncio.sleep(0.05)  # the loop lays it out and paints it meanwhile
        widget = dock.widget()
        title = dock.windowTitle()
        if widget is None or not widget.isVisible():
            failures.append(f"the {title} panel did not show")
        elif widget.width() <= 0 or widget.height() <= 0:
            failures.append(f"the {title} panel has no size")
        else:
            _say(f"ok: panel {title} ({widget.width()}x{widget.height()})")

    # Dialogs of the shell open and close.
    for name, opener in (("About", window.show_about), ("Shortcuts", window.show_shortcuts)):
        dialog = opener()
        await asyncio.sleep(0)
        if not dialog.isVisible():
            failures.append(f"the {name} dialog did not open")
        else:
            _say(f"ok: the {name} dialog opens")
        dialog.close()

    # The configured hosts: what they answered (information, not a failure).
    deadline = time.monotonic() + HOST_WAIT_S
    rows = window.fleet_model.rows()
    probed = asyncio.Event()

    def check_probed(*_: object) -> None:
        if all(services.health.status(r.config.id).state.value != "unknown" for r in rows):
            probed.set()

    services.health.probed.connect(check_probed)
    check_probed()
    try:
        await asyncio.wait_for(probed.wait(), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        _say(f"some hosts did not answer within {HOST_WAIT_S:g} s")
    finally:
        services.health.probed.disconnect(check_probed)
    for row in rows:
        status = services.health.status(row.config.id)
        detail = f", {status.reason}" if status.reason else ""
        _say(f"host {row.config.name} ({row.config.url}): {status.state.value}{detail}")
    if not rows:
        _say("no hosts are configured")
    _say(f"fleet: {window.fleet_summary_text()}")
    import psutil

    rss = psutil.Process().memory_info().rss
    _say(f"memory with every panel open: {rss / 1e6:.0f} MB")
    timings.write(rss_all_panels=rss)


def finish(task: asyncio.Task[list[str]]) -> int:
    """Print the verdict; the exit status of ``corral --self-test``."""
    if not task.done():
        _say("FAILED: the checks did not finish")
        return 1
    if task.cancelled():
        _say("FAILED: the checks were cancelled")
        return 1
    failures = task.result()
    if failures:
        for failure in failures:
            _say(f"FAILED: {failure}")
        return 1
    _say("passed")
    return 0
