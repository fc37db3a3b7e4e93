"""The latency dock: round trips of every host, reply figures per model of the selected one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from PySide6.QtCore import Qt

from app.core.hosts.base import ChatStats
from app.core.hosts.health import HealthMonitor
from app.core.hosts.registry import HostRegistry
from app.core.metrics.latency import LatencyBook
from app.ui.latency_panel import LatencyPanel, LatencyTableModel
from app.ui.main_window import MainWindow
from tests.fakes.ollama import FakeOllama
from tests.support.waiting import wait_for
from tests.ui.conftest import WindowOpener
from tests.ui.helpers import host_state, model_names


def shown(window: MainWindow) -> LatencyPanel:
    """Bring the latency dock to the front (it is tabbed behind the hardware dock)."""
    window.latency_dock.show()
    window.latency_dock.raise_()
    panel = window.latency_panel
    panel.set_interval(0.1)
    return panel


def rtt_points(panel: LatencyPanel, host_id: str) -> int:
    curve = panel.curves().get(host_id)
    if curve is None:
        return 0
    x, _ = curve.getData()
    return 0 if x is None else len(x)


def cell(panel: LatencyPanel, model: str, column: int) -> str | None:
    table = panel.table_model
    for row in range(table.rowCount()):
        if table.index(row, LatencyTableModel.MODEL).data() == model:
            return str(table.index(row, column).data())
    return None


async def test_round_trips_of_every_host_are_plotted(
    open_window: WindowOpener, registry: HostRegistry, fakes: Callable[..., FakeOllama]
) -> None:
    registry.remove("local")
    a = registry.add(fakes("127.0.0.2").url, "Box A")
    b = registry.add(fakes("127.0.0.3").url, "Box B")
    book = LatencyBook()
    async with open_window(registry, latency=book) as window:
        assert window.latency_dock.isVisible()
        panel = shown(window)
        await wait_for(lambda: rtt_points(panel, a.id) >= 2 and rtt_points(panel, b.id) >= 2)
        assert panel.plot is not None and panel.plot.objectName() == "latencyRttPlot"
        count = rtt_points(panel, a.id)
        await wait_for(lambda: rtt_points(panel, a.id) > count)  # it grows with the probes
        _, y = panel.curves()[a.id].getData()
        assert all(0.0 < v < 1000.0 for v in y)
        # the book got the same probes, on the epoch clock
        assert len(book.rtt(a.id)) >= 2
        window.select_host(a.id)
        await wait_for(lambda: "Box A: round trip p50" in panel.rtt_label.text())
        widths = {h: c.opts["pen"].widthF() for h, c in panel.curves().items()}
        assert widths[a.id] > widths[b.id]

        window.select_host(b.id)
        await wait_for(lambda: panel.rtt_label.text().startswith("Box B: round trip p50"))
        registry.remove(a.id)  # a removed host's curve goes
        await wait_for(lambda: a.id not in panel.curves())
        assert b.id in panel.curves()


async def test_the_table_shows_figures_once_replies_are_recorded(
    open_window: WindowOpener, registry: HostRegistry, fakes: Callable[..., FakeOllama]
) -> None:
    registry.remove("local")
    a = registry.add(fakes("127.0.0.2").url, "Box A")
    b = registry.add(fakes("127.0.0.3").url, "Box B")
    book = LatencyBook()
    async with open_window(registry, latency=book) as window:
        panel = shown(window)
        window.select_host(a.id)
        await wait_for(lambda: "No replies" in panel.note.text())
        assert not panel.table.isVisible()
        for ttft, tps in ((120.0, 50.0), (180.0, 40.0), (900.0, 30.0)):
            book.record_reply(
                a.id,
                "llama3.2:latest",
                ChatStats(
                    output_tokens=100,
                    time_to_first_token_ms=ttft,
                    total_ms=ttft + 2000.0,
                    tokens_per_s=tps,
                    prompt_tokens_per_s=320.0,
                    load_ms=15.0,
                ),
            )
        book.record_reply(
            a.id,
            "qwen3:0.6b",
            ChatStats(output_tokens=41, time_to_first_token_ms=50.0, total_ms=1050.0),
        )
        book.record_reply(b.id, "other:latest", ChatStats(time_to_first_token_ms=5.0))
        await wait_for(lambda: panel.table_model.rowCount() == 2)
        assert panel.table.isVisible() and not panel.note.isVisible()
        assert [r.model for r in panel.table_model.rows()] == ["llama3.2:latest", "qwen3:0.6b"]
        L = LatencyTableModel
        assert cell(panel, "llama3.2:latest", L.REPLIES) == "3"
        assert cell(panel, "llama3.2:latest", L.TTFT50) == "180 ms"
        assert cell(panel, "llama3.2:latest", L.TTFT95) == "900 ms"
        assert cell(panel, "llama3.2:latest", L.TPS50) == "40.0"
        assert cell(panel, "llama3.2:latest", L.TPS95) == "50.0"
        assert cell(panel, "llama3.2:latest", L.PROMPT) == "320"
        assert cell(panel, "llama3.2:latest", L.LOAD) == "15 ms"
        # no host figure: 40 tokens after the first in 1 s, from the wall clock
        assert cell(panel, "qwen3:0.6b", L.TPS50) == "40.0"
        assert cell(panel, "qwen3:0.6b", L.PROMPT) == "—"
        header = panel.table_model.headerData(
            L.TTFT50, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole
        )
        assert "first token" in header

        book.record_reply(
            a.id, "qwen3:0.6b", ChatStats(time_to_first_token_ms=70.0, total_ms=100.0)
        )
        await wait_for(lambda: cell(panel, "qwen3:0.6b", L.REPLIES) == "2")

        window.select_host(b.id)  # the table follows the selection
        await wait_for(lambda: [r.model for r in panel.table_model.rows()] == ["other:latest"])


async def test_the_load_button_records_a_load_time(
    open_window: WindowOpener, registry_with_fake: HostRegistry
) -> None:
    book = LatencyBook()
    host_id = registry_with_fake.hosts()[0].id
    async with open_window(registry_with_fake, latency=book) as window:
        panel = shown(window)
        await wait_for(lambda: host_state(window, host_id) == "online")
        await wait_for(lambda: model_names(window))
        assert window.select_model("llama3.2:latest")
        await wait_for(lambda: window.load_button.isEnabled())
        window.load_button.click()
        await wait_for(lambda: cell(panel, "llama3.2:latest", LatencyTableModel.LOAD))
        load = book.model_summary(host_id, "llama3.2:latest").load_ms
        assert load is not None and load.count == 1 and load.p50 > 0.0
        assert cell(panel, "llama3.2:latest", LatencyTableModel.REPLIES) == "0"


async def test_without_a_latency_book_the_table_says_so(
    open_window: WindowOpener, registry_with_fake: HostRegistry
) -> None:
    async with open_window(registry_with_fake) as window:
        assert not window.latency_dock.isVisible()
        action = window.findChild(type(window.quit_action), "latencyDockAction")
        assert action is not None and not action.isChecked()
        action.trigger()
        panel = shown(window)
        assert "telemetry is off" in panel.note.text()
        host_id = registry_with_fake.hosts()[0].id
        # round trips come from the health monitor: they are drawn all the same
        await wait_for(lambda: rtt_points(panel, host_id) >= 1)


def test_the_round_trip_window_can_be_changed(qtbot: Any, registry: HostRegistry) -> None:
    health = HealthMonitor(registry)
    config = registry.hosts()[0]
    panel = LatencyPanel(health, None)
    qtbot.addWidget(panel)
    panel.set_hosts([config])
    panel.show()
    ring = health.rtt_history(config.id)
    now = time.monotonic()
    for i in range(61):  # ten minutes of probes, one every 10 s
        ring.append(now - 600.0 + 10 * i, 20.0)

    def span() -> float:
        low, high = panel.plot.getPlotItem().getViewBox().viewRange()[0]
        return float(high - low)

    panel.refresh()
    assert span() == pytest.approx(601.0)  # 15 minutes: all of it, from the first probe
    panel.set_window(120.0)
    assert panel.window_s == 120.0
    assert span() == pytest.approx(120.0)
    panel.set_window(3600.0)
    assert span() == pytest.approx(601.0)
