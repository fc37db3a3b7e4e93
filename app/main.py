"""Composition root: builds the services, the QApplication, the qasync loop and the window.

Nothing Qt is imported at module level, so ``corral --version`` answers without loading
Qt. The GUI runs on one thread: under qasync the asyncio loop is the Qt loop.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from app import __version__
from app.core.errors import CorralError

if TYPE_CHECKING:
    import asyncio

    from PySide6.QtWidgets import QApplication

    from app.core.chat.store import ChatStore
    from app.core.discovery.service import DiscoveryService
    from app.core.hosts.health import HealthMonitor
    from app.core.hosts.registry import HostRegistry
    from app.core.logs import LogSetup
    from app.core.mcp.manager import McpManager
    from app.core.settings import LoadResult, SettingsStore
    from app.core.telemetry.service import TelemetryService
    from app.ui.frame import WindowFrame
    from app.ui.main_window import MainWindow

log = logging.getLogger("corral")


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="corral", description="A desktop control panel for local LLM hosts."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "--settings",
        type=Path,
        metavar="PATH",
        help="use this settings file instead of the default",
    )
    parser.add_argument(
        "--chat-db",
        type=Path,
        metavar="PATH",
        help="keep the chat history in this SQLite file instead of the default",
    )
    parser.add_argument(
        "--mcp-config",
        type=Path,
        metavar="PATH",
        help="read the MCP servers from this file instead of the default",
    )
    parser.add_argument(
        "--no-mdns",
        action="store_true",
        help="do not listen for model hosts announced on the network (mDNS)",
    )
    parser.add_argument(
        "--install-desktop-entry",
        action="store_true",
        help="add Corral to this user's application menu (Linux) and exit",
    )
    parser.add_argument(
        "--uninstall-desktop-entry",
        action="store_true",
        help="remove Corral from this user's application menu and exit",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help=(
            "start the whole app offscreen against the configured hosts (your settings, "
            "chat history and MCP servers are copied, never changed), open every panel, "
            "check that the event loop runs, then exit 0, or print what failed and exit 1"
        ),
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help="write start-up timings and memory (JSON) to this file (for benchmarks)",
    )
    return parser.parse_args(argv)


def _log_unhandled(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """sys.excepthook: qasync hands exceptions of async slots here; log them."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    log.error("Unhandled exception", exc_info=(exc_type, exc, tb))


def _setup_logging() -> LogSetup:
    """Corral's logging: a rotating file in the platform's log folder and stderr, secrets
    redacted from both (see :mod:`app.core.logs`)."""
    from app.core.logs import setup_logging

    setup = setup_logging("INFO")
    if setup.problem:
        log.warning("%s", setup.problem)
    return setup


@dataclass
class Services:
    """What :func:`compose` builds: the window and the services it shows."""

    window: MainWindow
    health: HealthMonitor
    discovery: DiscoveryService
    telemetry: TelemetryService
    chat_store: ChatStore
    mcp: McpManager | None = None


async def run_window(
    app: QApplication,
    window: MainWindow,
    closing: asyncio.Event,
    *,
    health: HealthMonitor | None = None,
    discovery: DiscoveryService | None = None,
    telemetry: TelemetryService | None = None,
    chat_store: ChatStore | None = None,
    mcp: McpManager | None = None,
    mdns: bool = True,
    ready: asyncio.Event | None = None,
) -> None:
    """Show the window and start the services; run until ``closing`` is set; then stop
    the window's tasks and close the services.

    Nothing scans the network here: the discovery service only looks at this machine
    (from the window's start) and, unless ``mdns`` is False, listens for mDNS
    announcements. The chat history is opened before the window starts; if it cannot be
    opened, chat is off and the chat panel says why. The caller closes the chat store
    (and the registry's hosts) afterwards, in a run of the loop of their own. ``ready`` is
    set once everything has started.
    """
    import asyncio

    app.lastWindowClosed.connect(closing.set)
    window.closed.connect(closing.set)
    window.show()
    if chat_store is not None:
        try:
            await chat_store.open()
        except CorralError as exc:
            log.error("The chat history cannot be opened: %s", exc.message)
            window.chat_panel.disable(
                f"Chat is off: the chat history ({chat_store.path}) cannot be opened. {exc.message}"
            )
            chat_store = None
    if health is not None:
        health.start()
    if mcp is not None:
        await mcp.start()  # servers start in tasks of their own; this does not wait on them
    if telemetry is not None:
        telemetry.start()
        if discovery is not None:  # agents announced over mDNS feed their hosts' graphs
            discovery.agents_changed.connect(telemetry.set_found_agents)
    window.start()
    listening: asyncio.Task[None] | None = None
    if discovery is not None and mdns:
        listening = asyncio.get_running_loop().create_task(_listen_mdns(discovery), name="mdns")
    if ready is not None:
        ready.set()
    try:
        await closing.wait()
    finally:
        await window.shutdown()
        if window.chat is not None:
            await window.chat.aclose()
        if mcp is not None:
            await mcp.aclose()
        if telemetry is not None:
            if discovery is not None:
                discovery.agents_changed.disconnect(telemetry.set_found_agents)
            await telemetry.aclose()
        if listening is not None:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
        if discovery is not None:
            await discovery.aclose()
        if health is not None:
            await health.aclose()


async def _listen_mdns(discovery: DiscoveryService) -> None:
    try:
        await discovery.start_mdns()
    except CorralError as exc:  # no usable interface: Corral works without it
        log.warning("Hosts announced on the network are not shown: %s", exc.message)


def default_chat_path() -> Path:
    """Where the chat history lives by default: the platform's data directory for Corral."""
    from app.core.settings import default_chat_path as default

    return default()


def compose(
    registry: HostRegistry,
    *,
    chat_path: Path | None = None,
    mcp_path: Path | None = None,
    frame: WindowFrame | None = None,
    log_setup: LogSetup | None = None,
) -> Services:
    """The services of the app, set up from the registry's settings, and the window on them
    (call after the QApplication exists; nothing is started or opened here).

    The chat history is kept in ``chat_path`` (default :func:`default_chat_path`), the MCP
    servers in ``mcp_path`` (default: ``mcp.json`` beside the settings). With ``frame`` (the
    window already on screen), the main window is built into it."""
    from app.core.chat import ChatEngine, ChatStore
    from app.core.chat.tools import ApprovalRules
    from app.core.discovery.service import DiscoveryService
    from app.core.hosts.health import HealthMonitor, HealthPolicy
    from app.core.mcp.allow import ConfigAllowList
    from app.core.mcp.config import McpConfigStore
    from app.core.mcp.manager import McpManager
    from app.core.metrics.latency import LatencyBook
    from app.core.telemetry.service import TelemetryService
    from app.ui.main_window import MainWindow

    settings = registry.settings
    health = HealthMonitor(
        registry,
        HealthPolicy(
            interval_s=settings.refresh_interval_s,
            backoff_max_s=settings.backoff_max_s,
            slow_ms=settings.slow_rtt_ms,
        ),
    )
    discovery = DiscoveryService(
        registry,
        ports=settings.scan_ports,
        max_prefix=settings.scan_max_prefix,
        probe_timeout=settings.probe_timeout_s,
    )
    # graphs show up to an hour; the service keeps at least its 15 minutes
    telemetry = TelemetryService(
        registry,
        health,
        interval_s=settings.telemetry_interval_s,
        window_s=max(900.0, settings.graph_window_s),
    )
    latency = LatencyBook()
    latency.attach(health)
    mcp_store = McpConfigStore(mcp_path, registry.secrets)
    loaded = mcp_store.load()
    if loaded.problem:
        registry.problems.append(loaded.problem)
    mcp = McpManager(mcp_store.servers(), oauth_secrets=registry.secrets)
    chat_store = ChatStore(chat_path or settings.chat_path())
    chat = ChatEngine(
        registry,
        chat_store,
        health=health,
        latency=latency,
        tools=mcp,
        rules=ApprovalRules(ConfigAllowList(mcp_store)),
    )
    parts: dict[str, Any] = {
        "telemetry": telemetry,
        "latency": latency,
        "chat": chat,
        "mcp": mcp,
        "mcp_store": mcp_store,
        "log_setup": log_setup,
    }
    if frame is not None:
        window = MainWindow.adopt(frame, registry, health, discovery, **parts)
    else:
        window = MainWindow(registry, health, discovery, **parts)
    return Services(window, health, discovery, telemetry, chat_store, mcp)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``corral`` and ``python -m app``; returns the exit status.

    ``corral agent ...`` runs the headless host agent instead (no Qt is loaded), and
    ``corral engine ...`` the built-in engine's child process (see
    :mod:`app.core.engine.server`; a bundled app starts its engine this way).

    Start-up is in two steps: the window's frame (Qt only) is shown first, with the saved
    geometry and theme, and the services and panels are built into it once it has
    painted (see :class:`app.ui.frame.WindowFrame`).
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["agent"]:
        from app.agent.cli import main as agent_main

        return agent_main(argv[1:])
    if argv[:1] == ["engine"]:  # imported here: the window never loads llama.cpp
        from app.core.engine import engine_installed

        if not engine_installed() and not {"-h", "--help"} & set(argv[1:]):
            print(
                "The built-in engine is not installed: install Corral with its engine "
                "extra (pip install 'corral[engine]').",
                file=sys.stderr,
            )
            return 2
        from app.core.engine.server import main as engine_main

        return engine_main(argv[1:], prog="corral engine")
    args = _parse_args(argv)
    if args.version:
        print(f"corral {__version__}")
        return 0
    if args.install_desktop_entry or args.uninstall_desktop_entry:
        return _desktop_entry(install=args.install_desktop_entry)
    if args.self_test:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from app.self_test import isolate

        args = isolate(args)

    # qasync picks its Qt binding from QT_API, then from what is imported: make it PySide6.
    os.environ["QT_API"] = "pyside6"
    from PySide6.QtWidgets import QApplication

    # isort: split
    from app.core.settings import SettingsStore
    from app.ui.frame import WindowFrame
    from app.ui.icons import app_icon
    from app.ui.single_instance import SingleInstance, raise_window
    from app.ui.theme import apply_theme

    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("Corral")
    app.setApplicationDisplayName("Corral")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("corral")
    app.setWindowIcon(app_icon())
    # The loop ends the program (after cleanup), not Qt on its own: see run_window.
    app.setQuitOnLastWindowClosed(False)

    # One Corral per settings file: a second launch brings the running window up instead.
    instance = SingleInstance(args.settings)
    if not instance.claim():
        if instance.answered:
            print("Corral is already running; its window was raised.")
            return 0
        print("Corral is already running with these settings, but it did not answer.")
        return 1

    store = SettingsStore(args.settings)
    loaded = store.load()
    apply_theme(app, loaded.settings.theme)
    frame = WindowFrame()
    frame.restore_geometry(loaded.settings.window_geometry)
    frame.show_starting()
    frame.show()

    def raise_on_request() -> None:
        log.info("Asked by a second launch to raise the window")
        raise_window(frame)

    instance.raiseRequested.connect(raise_on_request)
    timings = _Timings(args.report)
    frame.firstPainted.connect(timings.painted)
    frame.wait_painted(app, 2.0)  # on screen first; the rest is loaded after

    # Nothing before this point reads a secret or writes the log file.
    log_setup = _setup_logging()
    sys.excepthook = _log_unhandled
    import asyncio  # with the rest, once the window is on screen

    # qasync comes in here, after PySide6, so that it cannot pick another binding.
    from app.ui.event_loop import CorralEventLoop

    closing = asyncio.Event()
    ready = asyncio.Event()
    with asyncio.Runner(loop_factory=lambda: CorralEventLoop(app)) as runner:
        loop = runner.get_loop()
        built = loop.run_until_complete(_build(frame, store, loaded, args, log_setup))
        registry, services = built
        task = loop.create_task(
            run_window(
                app,
                services.window,
                closing,
                health=services.health,
                discovery=services.discovery,
                telemetry=services.telemetry,
                chat_store=services.chat_store,
                mcp=services.mcp,
                mdns=not args.no_mdns and not args.self_test,
                ready=ready,
            ),
            name="corral window",
        )
        checking: asyncio.Task[list[str]] | None = None
        if args.self_test:
            from app.self_test import run_checks

            checking = loop.create_task(
                run_checks(services, ready, closing, timings), name="self-test"
            )
        else:
            loop.create_task(timings.when_ready(ready), name="start-up report")
        try:
            loop.run_until_complete(task)
        except RuntimeError:
            if task.done():
                raise
            # Qt quit on its own (app.quit(), end of session): exec() returned while the
            # window task was still waiting. Let it finish in a loop that runs again.
            log.info("Qt quit; stopping Corral's tasks before exiting")
            closing.set()
            loop.run_until_complete(task)
        # Hosts are closed in a run of their own: qasync handles the last Qt events of a
        # run after the loop has stopped, so nothing may be left to do at that point.
        loop.run_until_complete(services.chat_store.close())
        loop.run_until_complete(registry.aclose())
    instance.close()
    if checking is not None:
        from app.self_test import finish

        return finish(checking)
    return 0


def _desktop_entry(*, install: bool) -> int:
    """``--install-desktop-entry`` / ``--uninstall-desktop-entry`` (no Qt is loaded)."""
    from app.desktop_entry import DesktopEntryError, install_desktop_entry, uninstall_desktop_entry

    try:
        if install:
            written = install_desktop_entry()
            print(f"Corral is in the application menu ({written[0]})")
        else:
            removed = uninstall_desktop_entry()
            print(f"Removed {len(removed)} desktop entry files")
    except DesktopEntryError as exc:
        print(f"corral: {exc.message}", file=sys.stderr)
        return 1
    return 0


async def _build(
    frame: WindowFrame,
    store: SettingsStore,
    loaded: LoadResult,
    args: argparse.Namespace,
    log_setup: LogSetup,
) -> tuple[HostRegistry, Services]:
    """Once the frame has painted (or after 2 s without a paint), build the services and
    the window's content into it."""
    import asyncio

    if not frame.painted:
        painted = asyncio.Event()
        frame.firstPainted.connect(painted.set)
        try:
            await asyncio.wait_for(painted.wait(), 2.0)
        except TimeoutError:
            log.info("The window did not paint within 2 s; building it anyway")
        finally:
            frame.firstPainted.disconnect(painted.set)
    from app.core.hosts.registry import HostRegistry
    from app.core.secrets import SecretStore

    registry = HostRegistry(store, SecretStore(), loaded=loaded)
    log_setup.set_level(registry.settings.log_level)
    for problem in registry.problems:
        log.warning("%s", problem)
    services = compose(
        registry,
        chat_path=args.chat_db,
        mcp_path=args.mcp_config,
        frame=frame,
        log_setup=log_setup,
    )
    services.window.restore_saved_layout()
    return registry, services


class _Timings:
    """When the window first painted and when everything had started, and the memory then
    (written to ``--report`` as JSON, for the start-up benchmark; logged otherwise)."""

    def __init__(self, report: Path | None) -> None:
        self.report = report
        self.painted_at: float | None = None
        self.ready_at: float | None = None
        self.rss: int | None = None

    def painted(self) -> None:
        if self.painted_at is None:
            self.painted_at = time.time()

    async def when_ready(self, ready: asyncio.Event) -> None:
        await ready.wait()
        self.mark_ready()

    def mark_ready(self) -> None:
        import psutil

        self.ready_at = time.time()
        self.rss = psutil.Process().memory_info().rss
        started = _process_started()
        if started is not None and self.painted_at is not None:
            log.info(
                "Window painted %.0f ms after launch; everything started after %.0f ms; "
                "memory %.0f MB",
                (self.painted_at - started) * 1000,
                (self.ready_at - started) * 1000,
                self.rss / 1e6,
            )
        self.write()

    def write(self, **more: object) -> None:
        """Write what is known so far (and ``more``) to the report file, if one was asked."""
        if self.report is None:
            return
        data = {"painted_at": self.painted_at, "ready_at": self.ready_at, "rss": self.rss}
        try:
            self.report.write_text(json.dumps({**data, **more}), encoding="utf-8")
        except OSError as exc:
            log.warning("The start-up report could not be written to %s: %s", self.report, exc)


def _process_started() -> float | None:
    try:
        import psutil

        return float(psutil.Process().create_time())
    except (OSError, ImportError):
        return None
