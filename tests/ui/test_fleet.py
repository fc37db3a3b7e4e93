"""The fleet view: hosts grouped by machine, type badges, health from the monitor,
and what a host's kind lets the user do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon

from app.core.hosts.base import HostConfig, HostKind
from app.core.hosts.engine import ENGINE_ID, ENGINE_URL
from app.core.hosts.health import HealthPolicy, HostState, HostStatus
from app.core.hosts.registry import HostRegistry
from app.ui.item_models import THIS_COMPUTER, FleetModel, SummaryRole, machine_of, port_of
from app.ui.main_window import MainWindow
from tests.fakes.ollama import FakeOllama
from tests.support.waiting import wait_for
from tests.ui.conftest import TEST_POLICY, OpenAIFactory, WindowOpener, engine_registry_at
from tests.ui.helpers import host_cell, host_state, host_tooltip, model_names


def test_machines_are_the_host_part_of_the_url() -> None:
    assert machine_of("http://127.0.0.1:11434") == THIS_COMPUTER
    assert machine_of("http://127.0.0.9:8080") == THIS_COMPUTER
    assert machine_of("http://localhost:1234") == THIS_COMPUTER
    assert machine_of("http://[::1]:8000") == THIS_COMPUTER
    assert machine_of("http://192.168.1.20:11434") == "192.168.1.20"
    assert machine_of("https://GPU-Box.lan/ollama") == "gpu-box.lan"
    # the built-in engine is on this computer and has no port of its own to show
    assert machine_of(ENGINE_URL) == THIS_COMPUTER
    assert port_of(ENGINE_URL) == ""
    assert (port_of("http://127.0.0.1:11434"), port_of("https://box.lan")) == ("11434", "443")


def test_the_fleet_groups_hosts_by_machine_with_a_summary(qtbot) -> None:
    configs = [
        HostConfig("a", "Lab Ollama", "http://192.168.1.20:11434"),
        HostConfig("b", "Local Ollama", "http://127.0.0.1:11434", source="default"),
        HostConfig("c", "Lab vLLM", "http://192.168.1.20:8000", HostKind.VLLM),
        HostConfig("d", "Studio", "http://localhost:1234", HostKind.LMSTUDIO),
    ]
    states = {
        "a": HostStatus("a", HostState.ONLINE, version="0.33.0", rtt_ms=4.2),
        "b": HostStatus("b", HostState.OFFLINE, reason="Cannot connect."),
        "c": HostStatus("c", HostState.DEGRADED, reason="Slow.", version="0.9.1", rtt_ms=1500),
        "d": HostStatus("d"),
    }
    model = FleetModel()
    model.set_hosts(configs, lambda host_id: states[host_id])
    assert model.machines() == [THIS_COMPUTER, "192.168.1.20"]  # this computer first
    assert model.summary(THIS_COMPUTER) == "2 hosts, 0 online"
    assert model.summary("192.168.1.20") == "2 hosts, 2 online (1 degraded)"
    lab = model.machine_index("192.168.1.20")
    assert lab.data(SummaryRole) == "2 hosts, 2 online (1 degraded)"
    assert "192.168.1.20" in lab.data()
    assert model.rowCount(lab) == 2
    assert [model.index(r, 0, lab).data() for r in range(2)] == ["Lab Ollama", "Lab vLLM"]
    assert model.index_of("c", FleetModel.TYPE).data() == "vLLM"
    assert model.index_of("c", FleetModel.PORT).data() == "8000"
    assert model.index_of("c", FleetModel.VERSION).data() == "0.9.1"
    assert model.index_of("c", FleetModel.RTT).data() == "1500 ms"
    assert model.index_of("b", FleetModel.VERSION).data() == "—"
    assert model.index_of("d", FleetModel.TYPE).data() == "LM Studio"
    tip = model.index_of("c").data(Qt.ItemDataRole.ToolTipRole)
    assert "Degraded: Slow." in tip and "vLLM" in tip
    assert "Not checked yet" in model.index_of("d").data(Qt.ItemDataRole.ToolTipRole)

    model.set_status(HostStatus("b", HostState.ONLINE, version="0.33.0", rtt_ms=1.0))
    assert model.summary(THIS_COMPUTER) == "2 hosts, 1 online"
    assert model.host_at(model.index_of("b")).state == "online"
    assert model.host_at(lab) is None  # a machine row is not a host


def _dot(window: MainWindow, host_id: str) -> int:
    icon = window.fleet_model.index_of(host_id, FleetModel.NAME).data(
        Qt.ItemDataRole.DecorationRole
    )
    assert isinstance(icon, QIcon) and not icon.isNull()
    return icon.cacheKey()


async def test_types_show_as_badges_and_health_comes_from_the_monitor(
    open_window: WindowOpener,
    registry: HostRegistry,
    fakes: Callable[..., FakeOllama],
    openai_fakes: OpenAIFactory,
) -> None:
    ollama = fakes("127.0.0.2")
    vllm = openai_fakes("127.0.0.3", flavor="vllm")
    studio = openai_fakes("127.0.0.4", flavor="lmstudio")
    registry.remove("local")
    hosts = [
        registry.add(ollama.url, "Workstation"),
        registry.add(vllm.url, "Serving box", kind=HostKind.VLLM),
        registry.add(studio.url, "Laptop", kind=HostKind.LMSTUDIO),
    ]
    async with open_window(registry) as window:
        for config in hosts:
            await wait_for(lambda c=config: host_state(window, c.id) == "online")
        labels = [host_cell(window, c.id, FleetModel.TYPE) for c in hosts]
        assert labels == ["Ollama", "vLLM", "LM Studio"]
        assert host_cell(window, hosts[0].id, FleetModel.VERSION) == "0.33.0"
        assert host_cell(window, hosts[1].id, FleetModel.VERSION) == vllm.version
        assert window.fleet_model.summary(THIS_COMPUTER) == "3 hosts, 3 online"
        assert window.health.status(hosts[1].id).state is HostState.ONLINE
        # the window does no probing of its own: every status shown is the monitor's
        for config in hosts:
            assert window.fleet_model.get(config.id).status == window.health.status(config.id)


async def test_a_slow_host_shows_degraded_with_the_reason(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama
) -> None:
    policy = HealthPolicy(interval_s=0.2, jitter=0.0, backoff_max_s=0.4, slow_ms=150.0)
    async with open_window(registry_with_fake, policy=policy) as window:
        host_id = registry_with_fake.hosts()[0].id
        await wait_for(lambda: host_state(window, host_id) == "online")
        online = _dot(window, host_id)
        assert not window.host_reason.isVisible()

        fake.faults.latency = 0.3
        await wait_for(lambda: host_state(window, host_id) == "degraded")
        assert _dot(window, host_id) != online
        assert "answers slowly" in host_tooltip(window, host_id)
        assert "Degraded" in host_tooltip(window, host_id)
        # the selected host's reason is shown above its models
        assert window.host_reason.isVisible()
        assert "answers slowly" in window.host_reason.text()
        assert "more than 150 ms" in window.host_reason.text()
        assert "(1 degraded)" in window.fleet_model.summary(THIS_COMPUTER)
        assert window.banner.message("error") is None  # slow is not an error
        await wait_for(lambda: model_names(window))  # a degraded host still lists models
        assert window.pull_button.isEnabled()

        fake.faults.latency = 0.0
        await wait_for(lambda: host_state(window, host_id) == "online", timeout=8)
        assert _dot(window, host_id) == online
        assert not window.host_reason.isVisible()


async def test_offline_and_back_without_user_action(
    open_window: WindowOpener, registry: HostRegistry, fakes: Callable[..., FakeOllama]
) -> None:
    first = fakes("127.0.0.7")
    registry.remove("local")
    config = registry.add(first.url, "Flaky box")
    async with open_window(registry) as window:
        await wait_for(lambda: host_state(window, config.id) == "online")
        online = _dot(window, config.id)
        first.stop()
        await wait_for(lambda: host_state(window, config.id) == "offline")
        assert _dot(window, config.id) != online
        assert "Offline: Cannot connect to Flaky box" in window.host_reason.text()
        assert "Cannot connect to Flaky box" in host_tooltip(window, config.id)
        assert "Cannot connect to Flaky box" in window.banner.text()
        assert window.fleet_model.summary(THIS_COMPUTER) == "1 host, 0 online"

        fakes("127.0.0.7", port=first.port)  # the same address answers again
        # the monitor backs off while a host is down: at most backoff_max_s between probes
        await wait_for(lambda: host_state(window, config.id) == "online")
        assert _dot(window, config.id) == online
        assert "Cannot connect" not in window.banner.text()
        assert not window.host_reason.isVisible()
        assert "is back online" in window.statusBar().currentMessage()
        await wait_for(lambda: model_names(window))
    assert TEST_POLICY.backoff_max_s < 1.0


async def test_refresh_asks_the_monitor_to_probe_now(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama
) -> None:
    slow_policy = HealthPolicy(interval_s=60.0, jitter=0.0)
    async with open_window(registry_with_fake, policy=slow_policy) as window:
        host_id = registry_with_fake.hosts()[0].id
        await wait_for(lambda: host_state(window, host_id) == "online")
        await wait_for(lambda: model_names(window))
        probes = len([r for r in fake.requests if r[1] == "/api/version"])
        fake.add_model("smollm2:135m")
        window.refresh_button.click()
        await wait_for(lambda: len([r for r in fake.requests if r[1] == "/api/version"]) > probes)
        await wait_for(lambda: "smollm2:135m" in model_names(window))


async def test_hosts_that_cannot_do_an_action_say_why(
    open_window: WindowOpener, registry: HostRegistry, openai_fakes: OpenAIFactory
) -> None:
    vllm = openai_fakes("127.0.0.3", flavor="vllm")
    registry.remove("local")
    config = registry.add(vllm.url, "Serving box", kind=HostKind.VLLM)
    async with open_window(registry) as window:
        await wait_for(lambda: host_state(window, config.id) == "online")
        await wait_for(lambda: model_names(window))
        assert window.select_model(vllm.models[0])
        checks = {
            window.pull_button: "Ollama hosts only",
            window.delete_button: "Ollama hosts only",
            window.load_button: "vLLM server serves the models it was started with",
            window.unload_button: "vLLM server serves the models it was started with",
        }
        for button, reason in checks.items():
            assert not button.isEnabled(), button.objectName()
            assert reason in button.toolTip(), (button.objectName(), button.toolTip())
        assert window.details_button.isEnabled()


async def test_a_llamacpp_router_can_load_once_the_host_says_so(
    open_window: WindowOpener, registry: HostRegistry, openai_fakes: OpenAIFactory
) -> None:
    router = openai_fakes("127.0.0.3", flavor="llamacpp", router=True)
    registry.remove("local")
    config = registry.add(router.url, "Router", kind=HostKind.LLAMACPP)
    async with open_window(registry) as window:
        await wait_for(lambda: host_state(window, config.id) == "online")
        await wait_for(lambda: model_names(window))
        assert window.select_model(router.models[0])
        await wait_for(lambda: window.load_button.isEnabled())
        assert not window.pull_button.isEnabled()
        assert "Ollama hosts only" in window.pull_button.toolTip()


async def test_a_host_the_user_runs_is_chosen_over_the_built_in_engine(
    open_window: WindowOpener,
    settings_path: Path,
    fake: FakeOllama,
    tmp_path: Path,
) -> None:
    # The built-in engine is online the instant it is probed (nothing to reach); an Ollama
    # that answers a moment later still becomes the host the window shows, while Corral
    # chooses for the user.
    registry = engine_registry_at(settings_path, tmp_path / "models")
    ollama = registry.add(fake.url, "Ollama box")
    assert ENGINE_ID in [c.id for c in registry.hosts()]
    fake.faults.latency = 0.6
    async with open_window(registry) as window:
        await wait_for(lambda: window.current_host_id() == ENGINE_ID)
        fake.faults.latency = 0.0
        await wait_for(lambda: window.current_host_id() == ollama.id)
        await wait_for(lambda: set(model_names(window)) == set(fake.installed))

        # once the user picks a host, Corral leaves the choice alone
        window.select_host(ENGINE_ID)
        fake.stop()
        await wait_for(lambda: host_state(window, ollama.id) == "offline")
        assert window.current_host_id() == ENGINE_ID
