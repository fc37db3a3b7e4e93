"""The hardware dock: live plots of the selected host, windows, markers, hidden = idle."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from app.core.hosts.health import HealthMonitor
from app.core.hosts.registry import HostRegistry
from app.core.telemetry.service import NO_SOURCE_REASON, TelemetryService
from app.core.telemetry.types import GpuState
from app.ui.hardware_panel import PLOTS, HardwarePanel
from app.ui.main_window import MainWindow
from tests.fakes.ollama import FakeOllama
from tests.support.waiting import wait_for
from tests.ui.conftest import OFFSCREEN_NOISE, WindowOpener
from tests.ui.fake_telemetry import FakeTelemetry, sample
from tests.ui.helpers import host_state, model_names

GPU_PLOTS = [p.key for p in PLOTS if p.gpu]
HOST_PLOTS = [p.key for p in PLOTS if not p.gpu]


def points(panel: HardwarePanel, key: str, gpu: int | None = None) -> int:
    curve = panel.curves(key).get(gpu)
    if curve is None:
        return 0
    x, _ = curve.getData()
    return 0 if x is None else len(x)


def values(panel: HardwarePanel, key: str, gpu: int | None = None) -> list[float]:
    _, y = panel.curves(key)[gpu].getData()
    return [float(v) for v in y]


def fast(window: MainWindow) -> HardwarePanel:
    panel = window.hardware_panel
    panel.set_interval(0.1)
    return panel


def push_series(tel: FakeTelemetry, host_id: str, n: int, *, end: float, **kw: Any) -> None:
    for i in range(n):
        tel.push(host_id, sample(end - (n - 1 - i), **kw))


async def test_series_grow_with_samples(
    open_window: WindowOpener, registry_with_fake: HostRegistry
) -> None:
    tel = FakeTelemetry()
    host_id = registry_with_fake.hosts()[0].id
    async with open_window(registry_with_fake, telemetry=tel) as window:
        assert window.hardware_dock.isVisible()
        panel = fast(window)
        await wait_for(lambda: panel.plots, message="plots built after the panel is shown")
        assert sorted(panel.plots) == sorted(p.key for p in PLOTS)
        now = time.time()
        push_series(tel, host_id, 3, end=now, gpus=[(10.0, 2.0), (30.0, 6.0)], cpu=25.0)
        await wait_for(lambda: points(panel, "cpu") == 3)
        for key in GPU_PLOTS:  # one curve per GPU
            assert sorted(panel.curves(key)) == [0, 1], key
            assert points(panel, key, 0) == points(panel, key, 1) == 3
        assert values(panel, "cpu") == [25.0] * 3
        assert values(panel, "gpu_util", 1) == [30.0] * 3
        assert values(panel, "vram", 1) == [6.0] * 3  # GiB
        assert values(panel, "ram") == [8.0] * 3
        assert panel.note("gpu_util") == ""
        assert "2 GPUs" in panel.status.text()
        assert panel.cost_label.text() == "sampler 1.5 ms"
        assert "p95 1.5 ms" in panel.cost_label.toolTip()

        curves_before = {key: dict(panel.curves(key)) for key in panel.plots}
        for i in range(1, 6):
            tel.push(host_id, sample(now + i, gpus=[(50.0, 3.0), (60.0, 7.0)], cpu=40.0))
            await wait_for(lambda i=i: points(panel, "cpu") == 3 + i)
        assert points(panel, "gpu_power", 1) == 8
        assert values(panel, "cpu")[-1] == 40.0
        # the same curve objects, fed with new data: nothing is made again per tick
        assert {key: dict(panel.curves(key)) for key in panel.plots} == curves_before
        low, high = panel.x_range("cpu")
        assert high == now + 5 and abs((high - low) - panel.window_s) < 1e-6


async def test_switching_host_switches_the_series(
    open_window: WindowOpener, registry: HostRegistry, fakes: Callable[..., FakeOllama]
) -> None:
    registry.remove("local")
    a = registry.add(fakes("127.0.0.2").url, "Box A")
    b = registry.add(fakes("127.0.0.3").url, "Box B")
    tel = FakeTelemetry()
    now = time.time()
    push_series(tel, a.id, 4, end=now, cpu=10.0, gpus=[(5.0, 1.0)])
    push_series(tel, b.id, 7, end=now, cpu=90.0, gpu_state=GpuState.NO_GPU)
    async with open_window(registry, telemetry=tel) as window:
        panel = fast(window)
        window.select_host(a.id)
        await wait_for(lambda: points(panel, "cpu") == 4)
        assert values(panel, "cpu") == [10.0] * 4
        assert points(panel, "gpu_util", 0) == 4
        assert panel.status.text().startswith("Box A")

        window.select_host(b.id)
        await wait_for(lambda: points(panel, "cpu") == 7)
        assert values(panel, "cpu") == [90.0] * 7
        assert panel.host_id == b.id
        assert panel.status.text().startswith("Box B")
        for key in GPU_PLOTS:  # B has no GPU: no curves left from A, and the plots say so
            assert panel.curves(key) == {}, key
            assert panel.note(key) == "no NVIDIA GPU found"
            title = panel.plots[key].getPlotItem().titleLabel.text
            assert "no NVIDIA GPU found" in title
        assert panel.note("cpu") == ""

        window.select_host(a.id)
        await wait_for(lambda: points(panel, "gpu_util", 0) == 4)
        assert values(panel, "cpu") == [10.0] * 4
        assert panel.note("gpu_util") == ""


async def test_the_source_state_is_shown_when_a_host_has_no_telemetry(
    open_window: WindowOpener, registry_with_fake: HostRegistry
) -> None:
    tel = FakeTelemetry()
    host_id = registry_with_fake.hosts()[0].id
    tel.reasons[host_id] = "The Corral agent at http://10.0.0.5:9101 does not answer."
    async with open_window(registry_with_fake, telemetry=tel) as window:
        panel = fast(window)
        await wait_for(lambda: "does not answer" in panel.status.text())
        assert panel.status.text().startswith("Fake box: The Corral agent")
        assert panel.curves("cpu") == {}
        del tel.reasons[host_id]
        await wait_for(lambda: "waiting for the first sample" in panel.status.text())


async def test_a_host_without_a_source_says_how_to_get_one(
    open_window: WindowOpener, registry: HostRegistry
) -> None:
    registry.remove("local")
    far = registry.add("http://192.0.2.10:11434", "Far box")  # not this machine, no agent
    async with open_window(
        registry, make_telemetry=lambda reg, health: TelemetryService(reg, health)
    ) as window:
        panel = fast(window)
        await wait_for(lambda: NO_SOURCE_REASON in panel.status.text())
        assert panel.status.text() == f"Far box: {NO_SOURCE_REASON}"
        assert panel.host_id == far.id
        assert panel.curves("cpu") == {}


async def test_the_window_selector_changes_the_visible_range(
    open_window: WindowOpener, registry_with_fake: HostRegistry
) -> None:
    tel = FakeTelemetry()
    host_id = registry_with_fake.hosts()[0].id
    now = time.time()
    for i in range(120):  # 20 minutes, one sample every 10 s
        tel.push(host_id, sample(now - 1190 + 10 * i, cpu=float(i)))
    async with open_window(registry_with_fake, telemetry=tel) as window:
        panel = fast(window)
        combo = panel.window_combo
        assert combo.objectName() == "hardwareWindow"
        assert [combo.itemText(i) for i in range(combo.count())] == ["1 min", "5 min", "15 min"]
        assert combo.currentText() == "5 min"
        # 300 s at one sample per 10 s, both ends included
        await wait_for(lambda: points(panel, "cpu") == 31)
        low, high = panel.x_range("cpu")
        assert (high, high - low) == (now, 300.0)

        combo.setCurrentIndex(combo.findText("1 min"))
        await wait_for(lambda: points(panel, "cpu") == 7)
        assert panel.window_s == 60.0
        for key in panel.plots:  # every plot follows, the GPU plots too
            low, high = panel.x_range(key)
            assert abs((high - low) - 60.0) < 1e-6, key
        assert values(panel, "cpu")[-1] == 119.0

        combo.setCurrentIndex(combo.findText("15 min"))
        await wait_for(lambda: points(panel, "cpu") == 91)
        low, high = panel.x_range("ram")
        assert abs((high - low) - 900.0) < 1e-6

        panel.set_window(120)  # a span the selector does not list: it says so
        await wait_for(lambda: points(panel, "cpu") == 13)
        assert combo.currentText() == "custom (120 s)"
        combo.setCurrentIndex(combo.findText("1 min"))  # and back to a listed one
        await wait_for(lambda: points(panel, "cpu") == 7)


def real_telemetry(reg: HostRegistry, health: HealthMonitor) -> TelemetryService:
    return TelemetryService(reg, health, interval_s=0.2)


@pytest.fixture
def local_registry(registry: HostRegistry, fakes: Callable[..., FakeOllama]) -> HostRegistry:
    """One fake Ollama on 127.0.0.1 (this machine: read by the local sampler)."""
    registry.remove("local")
    registry.add(fakes("127.0.0.1").url, "Local box")
    return registry


async def test_series_grow_with_this_machines_real_samples(
    open_window: WindowOpener, local_registry: HostRegistry
) -> None:
    """A host on 127.0.0.1 is read by the local sampler (psutil, and NVML where there is a
    GPU): the CPU and RAM curves grow with each sample."""
    async with open_window(local_registry, make_telemetry=real_telemetry) as window:
        panel = fast(window)
        host_id = panel.host_id
        assert host_id == local_registry.hosts()[0].id
        await wait_for(lambda: points(panel, "cpu") >= 2, timeout=8)
        first = points(panel, "ram")
        await wait_for(lambda: points(panel, "ram") >= first + 2, timeout=8)
        assert all(0.0 <= v <= 100.0 for v in values(panel, "cpu"))
        assert all(v > 0.0 for v in values(panel, "ram"))  # GiB in use
        sample_ = window.telemetry.latest(host_id)
        if sample_.gpu_state is GpuState.NO_GPU:
            assert panel.note("gpu_util") == "no NVIDIA GPU found"
            assert panel.curves("gpu_util") == {}
        else:
            assert sorted(panel.curves("gpu_util")) == [g.index for g in sample_.gpus]
        await wait_for(lambda: panel.cost_label.text().startswith("sampler "))


async def test_a_load_on_a_fake_host_puts_a_marker_on_the_graphs(
    open_window: WindowOpener, registry: HostRegistry, fakes: Callable[..., FakeOllama]
) -> None:
    fake = fakes("127.0.0.1")
    registry.remove("local")
    host_id = registry.add(fake.url, "Local box").id
    async with open_window(registry, make_telemetry=real_telemetry) as window:
        panel = fast(window)
        await wait_for(lambda: points(panel, "cpu") >= 1, timeout=8)
        await wait_for(lambda: host_state(window, host_id) == "online")
        await wait_for(lambda: model_names(window))
        assert panel.marker_lines("cpu") == []

        name = "llama3.2:latest"
        assert window.select_model(name)
        await wait_for(lambda: window.load_button.isEnabled())
        window.load_button.click()  # the monitor's next probe sees it loaded
        await wait_for(lambda: panel.marker_lines("cpu"), timeout=8)
        for key in panel.plots:  # the line is on every plot, with its label
            (line,) = panel.marker_lines(key)
            assert line.label.toPlainText() == f"{name} loaded"
            assert line.angle == 90
        (marker,) = window.telemetry.markers(host_id)
        assert (marker.kind, marker.text) == ("load", f"{name} loaded")
        assert panel.marker_lines("ram")[0].value() == marker.t
        low, high = panel.x_range("cpu")
        assert low <= marker.t <= high + 1.0

        fake.unload(name)  # someone else unloads it: seen by the next probe as well
        await wait_for(lambda: len(panel.marker_lines("cpu")) == 2, timeout=8)
        texts = sorted(line.label.toPlainText() for line in panel.marker_lines("gpu_util"))
        assert texts == [f"{name} loaded", f"{name} unloaded"]


async def test_nothing_is_drawn_while_the_dock_is_hidden(
    open_window: WindowOpener, registry_with_fake: HostRegistry
) -> None:
    tel = FakeTelemetry()
    host_id = registry_with_fake.hosts()[0].id
    async with open_window(registry_with_fake, telemetry=tel) as window:
        panel = fast(window)
        push_series(tel, host_id, 2, end=time.time())
        await wait_for(lambda: points(panel, "cpu") == 2)
        action = window.findChild(type(window.quit_action), "hardwareDockAction")
        assert action is not None and action.isChecked()
        action.trigger()  # View > Hardware off
        assert not window.hardware_dock.isVisible()
        assert not panel.timer.isActive()
        redraws = panel.redraws
        tel.push(host_id, sample(time.time() + 1))
        panel.refresh()
        assert panel.redraws == redraws and points(panel, "cpu") == 2

        action.trigger()  # on again: it catches up at once
        assert window.hardware_dock.isVisible()
        await wait_for(lambda: points(panel, "cpu") == 3)
        assert panel.timer.isActive()


async def test_without_telemetry_the_docks_say_so_and_start_hidden(
    open_window: WindowOpener, registry_with_fake: HostRegistry
) -> None:
    async with open_window(registry_with_fake) as window:
        assert not window.hardware_dock.isVisible()
        assert not window.latency_dock.isVisible()
        window.hardware_dock.show()
        panel = window.hardware_panel
        assert panel.status.text() == "Telemetry is off."
        assert not panel.ensure_plots() and panel.plots == {}
        assert not panel.window_combo.isEnabled()


@pytest.mark.qt_log_ignore(OFFSCREEN_NOISE, r"This plugin does not support raise\(\)")
async def test_the_docks_can_float_and_move(
    open_window: WindowOpener, registry_with_fake: HostRegistry
) -> None:
    from PySide6.QtWidgets import QDockWidget

    tel = FakeTelemetry()
    async with open_window(registry_with_fake, telemetry=tel) as window:
        for dock in (window.hardware_dock, window.latency_dock):
            features = dock.features()
            assert features & QDockWidget.DockWidgetFeature.DockWidgetFloatable
            assert features & QDockWidget.DockWidgetFeature.DockWidgetMovable
        window.hardware_dock.setFloating(True)
        assert window.hardware_dock.isFloating()
        window.hardware_dock.setFloating(False)
        assert window.findChild(QDockWidget, "hardwareDock") is window.hardware_dock
        assert window.findChild(QDockWidget, "latencyDock") is window.latency_dock


async def test_a_remote_host_with_an_agent_shows_the_agents_hardware(
    open_window: WindowOpener,
    registry: HostRegistry,
    fakes: Callable[..., FakeOllama],
    qtbot: Any,
) -> None:
    """A host added through the dialog with its agent's address and token: the hardware
    panel draws what that agent samples (here a real agent on 127.0.0.4, which needs its
    token: only 127.0.0.1 and ::1 go without)."""
    from app.agent.server import AgentServer
    from app.core.telemetry.service import SourceKind

    remote = fakes("127.0.0.3")
    registry.remove("local")
    with AgentServer(host="127.0.0.4", port=0, token="s3cret-agent-token", interval_s=0.2) as agent:
        async with open_window(registry, make_telemetry=real_telemetry) as window:
            dialog = window.open_add_host_dialog()
            qtbot.keyClicks(dialog.url_edit, remote.url)
            qtbot.keyClicks(dialog.name_edit, "GPU box")
            qtbot.keyClicks(dialog.agent_url_edit, agent.url)
            qtbot.keyClicks(dialog.agent_token_edit, "s3cret-agent-token")
            dialog.ok_button.click()
            (config,) = registry.hosts()
            assert config.agent_url == agent.url
            assert "s3cret-agent-token" not in registry_file_text(registry)
            panel = fast(window)
            window.select_host(config.id)
            await wait_for(lambda: panel.host_id == config.id)
            await wait_for(lambda: points(panel, "cpu") >= 2, timeout=10)
            status = window.telemetry.source_state(config.id)
            assert status.source is SourceKind.AGENT and status.ok


def registry_file_text(registry: HostRegistry) -> str:
    path = registry._store.path
    return path.read_text(encoding="utf-8") if path.exists() else ""


async def test_the_hosts_vram_figure_is_set_against_its_processes(
    open_window: WindowOpener, registry: HostRegistry, fakes: Callable[..., FakeOllama]
) -> None:
    """Ollama says the loaded model is all in VRAM; NVML says its runner uses 40 % more:
    the models tab says so (and says nothing where there are no GPU readings)."""
    from app.core.telemetry.types import GpuSample, HostSample, ProcessSample

    fake = fakes("127.0.0.2")
    registry.remove("local")
    host_id = registry.add(fake.url, "GPU box").id
    fake.load("llama3.2")
    size = fake.installed["llama3.2:latest"].size
    async with open_window(registry, make_telemetry=real_telemetry) as window:
        await wait_for(lambda: window.model_model.loaded_names())
        assert window.vram_check.isHidden()  # no GPU readings for this host yet
        reading = HostSample(
            t=time.time(),
            gpus=(GpuSample(0, "Fake GPU", memory_used=size * 2, memory_total=size * 4),),
            gpu_state=GpuState.OK,
            model_processes=(ProcessSample(4242, "ollama", vram=int(size * 1.4), kind="ollama"),),
        )
        window.telemetry.store.record(host_id, reading)
        window.refresh_now()
        await wait_for(lambda: not window.vram_check.isHidden())
        text = window.vram_check.text()
        assert text.startswith("⚠ llama3.2:latest: the host reports")
        assert "40 % more" in text
