"""Composition root: builds the services, the QApplication, the qasync loop and the window.

Nothing Qt is imported at module level, so ``corral --version`` answers without loading
Qt. The GUI runs on one thread: under qasync the asyncio loop is the Qt loop.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from app import __version__
from app.core.errors import CorralError

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from app.core.chat.store import ChatStore
    from app.core.discovery.service import DiscoveryService
    from app.core.hosts.health import HealthMonitor
    from app.core.hosts.registry import HostRegistry
    from app.core.mcp.manager import McpManager
    from app.core.telemetry.service import TelemetryService
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
    return parser.parse_args(argv)


def _log_unhandled(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """sys.excepthook: qasync hands exceptions of async slots here; log them."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    log.error("Unhandled exception", exc_info=(exc_type, exc, tb))


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise


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
) -> None:
    """Show the window and start the services; run until ``closing`` is set; then stop
    the window's tasks and close the services.

    Nothing scans the network here: the discovery service only looks at this machine
    (from the window's start) and, unless ``mdns`` is False, listens for mDNS
    announcements. The chat history is opened before the window starts; if it cannot be
    opened, chat is off and the chat panel says why. The caller closes the chat store
    (and the registry's hosts) afterwards, in a run of the loop of their own.
    """
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
    """Where the chat history lives: the platform's data directory for Corral."""
    import platformdirs

    return platformdirs.user_data_path("corral", appauthor=False) / "chat.db"


def compose(
    registry: HostRegistry, *, chat_path: Path | None = None, mcp_path: Path | None = None
) -> Services:
    """The services of the app, set up from the registry's settings, and the window on them
    (call after the QApplication exists; nothing is started or opened here).

    The chat history is kept in ``chat_path`` (default :func:`default_chat_path`), the MCP
    servers in ``mcp_path`` (default: ``mcp.json`` beside the settings)."""
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
    telemetry = TelemetryService(registry, health)  # 1 s samples, 15 min window
    latency = LatencyBook()
    latency.attach(health)
    mcp_store = McpConfigStore(mcp_path, registry.secrets)
    loaded = mcp_store.load()
    if loaded.problem:
        registry.problems.append(loaded.problem)
    mcp = McpManager(mcp_store.servers(), oauth_secrets=registry.secrets)
    chat_store = ChatStore(chat_path or default_chat_path())
    chat = ChatEngine(
        registry,
        chat_store,
        health=health,
        latency=latency,
        tools=mcp,
        rules=ApprovalRules(ConfigAllowList(mcp_store)),
    )
    window = MainWindow(
        registry,
        health,
        discovery,
        telemetry=telemetry,
        latency=latency,
        chat=chat,
        mcp=mcp,
        mcp_store=mcp_store,
    )
    return Services(window, health, discovery, telemetry, chat_store, mcp)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``corral`` and ``python -m app``; returns the exit status.

    ``corral agent ...`` runs the headless host agent instead (no Qt is loaded).
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["agent"]:
        from app.agent.cli import main as agent_main

        return agent_main(argv[1:])
    args = _parse_args(argv)
    if args.version:
        print(f"corral {__version__}")
        return 0

    _setup_logging()
    sys.excepthook = _log_unhandled
    # qasync picks its Qt binding from QT_API, then from what is imported: make it PySide6.
    os.environ["QT_API"] = "pyside6"
    from PySide6.QtWidgets import QApplication

    # isort: split
    # qasync comes in here, after PySide6, so that it cannot pick another binding.
    from app.core.hosts.registry import HostRegistry
    from app.core.secrets import SecretStore
    from app.core.settings import SettingsStore
    from app.ui.event_loop import CorralEventLoop
    from app.ui.icons import app_icon

    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("Corral")
    app.setApplicationDisplayName("Corral")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("corral")
    app.setWindowIcon(app_icon())
    # The loop ends the program (after cleanup), not Qt on its own: see run_window.
    app.setQuitOnLastWindowClosed(False)

    registry = HostRegistry(SettingsStore(args.settings), SecretStore())
    for problem in registry.problems:
        log.warning("%s", problem)
    services = compose(registry, chat_path=args.chat_db, mcp_path=args.mcp_config)

    closing = asyncio.Event()
    with asyncio.Runner(loop_factory=lambda: CorralEventLoop(app)) as runner:
        loop = runner.get_loop()
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
                mdns=not args.no_mdns,
            ),
            name="corral window",
        )
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
    return 0
