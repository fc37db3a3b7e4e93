"""The MCP panel against the in-repo MCP test server, run over stdio by the real manager."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from app.core.mcp.manager import McpManager
from app.core.mcp.types import ServerConfig, ServerState, Transport
from app.ui.mcp_panel import McpPanel
from tests.support.waiting import wait_for
from tests.ui.conftest import _finish_orphans

ROOT = Path(__file__).resolve().parents[2]


def _stdio(name: str = "fake") -> ServerConfig:
    return ServerConfig(
        name=name,
        transport=Transport.STDIO,
        command=sys.executable,
        args=("-m", "tests.fakes.mcp_server"),
        cwd=str(ROOT),
    )


@contextlib.asynccontextmanager
async def running_manager() -> AsyncIterator[McpManager]:
    """A manager with the test server over stdio, started and closed inside the test (a
    fixture would leave its tasks to run while pytest-qt spins Qt with no loop running)."""
    m = McpManager(
        [_stdio()], call_timeout_s=1.0, backoff_initial_s=0.2, backoff_max_s=0.5, breaker_crashes=3
    )
    await m.start()
    try:
        yield m
    finally:
        await m.aclose()
        await _finish_orphans()  # nothing of it may run after the test's loop has ended


async def _panel(qtbot: Any, manager: McpManager) -> McpPanel:
    panel = McpPanel(manager)
    qtbot.addWidget(panel)
    panel.resize(800, 500)
    panel.show()
    await wait_for(lambda: manager.status("fake").state is ServerState.READY, timeout=30)
    await wait_for(lambda: panel.tool_tree.topLevelItemCount() > 5)
    return panel


async def test_the_panel_shows_servers_tools_and_stderr(qtbot: Any) -> None:
    async with running_manager() as manager:
        panel = await _panel(qtbot, manager)
        try:
            assert panel.server_names() == ["fake"]
            assert "ready" in panel.server_list.item(0).text()
            assert panel.state_label.text().startswith("fake: ready")
            rows = {
                panel.tool_tree.topLevelItem(i).data(0, Qt_UserRole): panel.tool_tree.topLevelItem(
                    i
                )
                for i in range(panel.tool_tree.topLevelItemCount())
            }
            assert rows["echo"].text(0) == "Echo"
            assert "read-only" in rows["echo"].text(1)
            assert "may change or delete things" in rows["crash"].text(1)
            assert '"properties"' in rows["plan_trip"].toolTip(0)  # the schema, whole
            assert "fake-mcp: starting (stdio)" in panel.stderr_view.toPlainText()
        finally:
            await panel.shutdown()


async def test_test_a_tool_shows_results_and_errors(qtbot: Any) -> None:
    async with running_manager() as manager:
        panel = await _panel(qtbot, manager)
        try:
            assert panel.choose_tool("echo")
            assert '"text": ""' in panel.arguments_edit.toPlainText()  # prefilled from the schema
            panel.arguments_edit.setPlainText('{"text": "hello there"}')
            panel.run_button.click()
            await wait_for(lambda: panel.result_view.toPlainText() == "hello there")

            assert panel.choose_tool("add")
            panel.arguments_edit.setPlainText('{"a": 2, "b": 3.5}')
            panel.run_button.click()
            await wait_for(lambda: '"sum": 5.5' in panel.result_view.toPlainText())

            assert panel.choose_tool("fail")
            panel.arguments_edit.setPlainText('{"message": "disk is full"}')
            panel.run_button.click()
            await wait_for(lambda: "reported an error" in panel.result_view.toPlainText())
            assert "disk is full" in panel.result_view.toPlainText()

            panel.arguments_edit.setPlainText("{not json")
            panel.run_button.click()
            assert "not valid JSON" in panel.result_view.toPlainText()
        finally:
            await panel.shutdown()


async def test_a_hanging_tool_times_out_and_the_panel_stays_responsive(qtbot: Any) -> None:
    async with running_manager() as manager:
        panel = await _panel(qtbot, manager)
        try:
            assert panel.choose_tool("hang")
            panel.arguments_edit.setPlainText('{"seconds": 30}')
            lags: list[float] = []
            last = time.perf_counter()

            def tick() -> None:
                nonlocal last
                now = time.perf_counter()
                lags.append(now - last - 0.01)
                last = now

            from PySide6.QtCore import QTimer

            timer = QTimer(panel)
            timer.setInterval(10)
            timer.timeout.connect(tick)
            timer.start()
            panel.run_button.click()
            await wait_for(lambda: "did not answer" in panel.result_view.toPlainText(), timeout=10)
            timer.stop()
            assert max(lags) < 0.05  # the event loop never stalled while the tool hung
            await wait_for(lambda: "cancelled" in "\n".join(manager.status("fake").stderr_tail))
        finally:
            await panel.shutdown()


async def test_a_crash_shows_failed_with_stderr_then_it_comes_back(qtbot: Any) -> None:
    async with running_manager() as manager:
        panel = await _panel(qtbot, manager)
        try:
            seen: list[ServerState] = []
            manager.changed.connect(lambda s: seen.append(s.state))
            assert panel.choose_tool("crash")
            panel.run_button.click()
            await wait_for(lambda: ServerState.FAILED in seen, timeout=10)
            await wait_for(lambda: manager.status("fake").state is ServerState.READY, timeout=20)
            await wait_for(lambda: "restarted 1×" in panel.state_label.text())
            assert "crashing now" in panel.stderr_view.toPlainText()
            panel.restart_button.click()
            await wait_for(
                lambda: manager.status("fake").state is not ServerState.READY, timeout=10
            )
            await wait_for(lambda: manager.status("fake").state is ServerState.READY, timeout=20)
        finally:
            await panel.shutdown()


from PySide6.QtCore import Qt  # noqa: E402

Qt_UserRole = Qt.ItemDataRole.UserRole
