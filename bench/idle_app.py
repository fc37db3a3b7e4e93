"""Corral's window for the idle benchmark: built as ``app.main`` builds it, plus the
telemetry service and the latency book, with the hardware dock open (as it is whenever
the window has a telemetry service).

    python -m bench.idle_app --settings PATH [--report-at SECONDS ...]

At each ``--report-at`` time (seconds after start) it prints one line,
``report t=<s> redraws=<n> host=<id> status=<text>``, so that the benchmark can check
that the panel was drawing while it was measured. It runs until it is terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_app")
    parser.add_argument("--settings", type=Path, required=True)
    parser.add_argument("--report-at", type=float, nargs="*", default=[])
    args = parser.parse_args(argv)

    os.environ["QT_API"] = "pyside6"
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    # isort: split
    from app.core.hosts.registry import HostRegistry
    from app.core.secrets import SecretStore
    from app.core.settings import SettingsStore
    from app.main import _setup_logging, compose, run_window
    from app.ui.event_loop import CorralEventLoop

    _setup_logging()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    registry = HostRegistry(SettingsStore(args.settings), SecretStore())
    services = compose(
        registry,
        chat_path=args.settings.parent / "chat.db",
        mcp_path=args.settings.parent / "mcp.json",
    )
    window = services.window

    def report(at: float) -> None:
        panel = window.hardware_panel
        print(
            f"report t={at:g} redraws={panel.redraws} host={panel.host_id} "
            f"status={panel.status.text()!r}",
            flush=True,
        )

    for at in args.report_at:
        QTimer.singleShot(int(at * 1000), lambda at=at: report(at))

    async def run() -> None:
        await run_window(
            app,
            window,
            asyncio.Event(),
            health=services.health,
            discovery=services.discovery,
            telemetry=services.telemetry,
            chat_store=services.chat_store,
            mcp=services.mcp,
            mdns=False,
        )

    with asyncio.Runner(loop_factory=lambda: CorralEventLoop(app)) as runner:
        runner.run(run())
        runner.run(services.chat_store.close())
        runner.run(registry.aclose())
    return 0


if __name__ == "__main__":
    sys.exit(main())
