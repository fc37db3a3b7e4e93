"""The telemetry service: sources per host, series, window, markers, failures, VRAM check."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from app.core.discovery.mdns import CORRAL_SERVICE, MdnsService
from app.core.errors import HostUnreachable
from app.core.hosts.base import HostKind, RunningModel
from app.core.hosts.health import HealthMonitor, HealthPolicy, HostState
from app.core.hosts.registry import LOCAL_ID, HostRegistry
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from app.core.telemetry.service import (
    NO_SOURCE_REASON,
    SourceKind,
    SourceSpec,
    TelemetryService,
    TelemetryStatus,
)
from app.core.telemetry.store import TelemetryStore, metric_unit, sample_metrics
from app.core.telemetry.types import GpuSample, GpuState, HostSample, ProcessSample
from tests.fakes.ollama import FakeOllama
from tests.support.memory_keyring import MemoryKeyring
from tests.support.waiting import wait_for

GB = 1_000_000_000


def make_sample(n: int, *, vram: int | None = None, state: GpuState = GpuState.OK) -> HostSample:
    procs = (ProcessSample(100, "ollama runner", 50.0, 2 * GB, vram, "ollama"),)
    gpu = GpuSample(
        0,
        "NVIDIA L4",
        "GPU-1",
        utilization_pct=float(n % 100),
        memory_used=GB,
        memory_total=4 * GB,
        temperature_c=50.0,
        power_w=70.0,
    )
    return HostSample(
        t=1_000.0 + n,
        cpu_pct=float(n % 100),
        cpu_per_core=(1.0, 2.0),
        ram_used=GB,
        ram_total=2 * GB,
        swap_used=0,
        swap_total=0,
        gpus=(gpu,) if state is GpuState.OK else (),
        gpu_state=state,
        model_processes=procs,
        cost_ms=0.5,
    )


class FakeSource:
    """Gives numbered samples; ``behaviour(n)`` may raise or return a sample instead."""

    def __init__(self, behaviour: Callable[[int], HostSample] | None = None) -> None:
        self.behaviour = behaviour or make_sample
        self.calls = 0
        self.closed = False

    async def sample(self) -> HostSample:
        self.calls += 1
        return self.behaviour(self.calls)

    async def aclose(self) -> None:
        self.closed = True


class Factory:
    def __init__(self, make: Callable[[SourceSpec], FakeSource] | None = None) -> None:
        self.specs: list[SourceSpec] = []
        self.sources: list[FakeSource] = []
        self._make = make or (lambda spec: FakeSource())

    def __call__(self, spec: SourceSpec) -> FakeSource:
        source = self._make(spec)
        self.specs.append(spec)
        self.sources.append(source)
        return source


@pytest.fixture
def keyring() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.fixture
def registry(tmp_path: Path, keyring: MemoryKeyring) -> HostRegistry:
    """A registry with only the hosts each test adds."""
    reg = HostRegistry(SettingsStore(tmp_path / "s.json"), SecretStore(keyring), env={})
    reg.remove(LOCAL_ID)
    return reg


@pytest.fixture
async def closing() -> AsyncIterator[list[TelemetryService]]:
    services: list[TelemetryService] = []
    yield services
    for service in services:
        await service.aclose()


def start(
    registry: HostRegistry,
    closing: list[TelemetryService],
    factory: Factory,
    health: HealthMonitor | None = None,
    **kwargs: float,
) -> TelemetryService:
    options: dict[str, float] = {"interval_s": 0.01, "timeout_s": 1.0, "backoff_max_s": 0.05}
    options.update(kwargs)
    service = TelemetryService(registry, health, source_factory=factory, **options)  # type: ignore[arg-type]
    closing.append(service)
    service.start()
    return service


# -- store --------------------------------------------------------------------------------
def test_a_sample_is_flattened_into_named_series() -> None:
    metrics = sample_metrics(make_sample(7, vram=3 * GB))
    assert metrics["cpu_pct"] == 7.0
    assert metrics["core1.pct"] == 2.0
    assert metrics["ram_pct"] == 50.0
    assert "swap_pct" not in metrics  # no swap: no percentage
    assert metrics["gpu0.util_pct"] == 7.0
    assert metrics["gpu0.vram_used"] == GB and metrics["gpu0.vram_pct"] == 25.0
    assert metrics["gpu0.temp_c"] == 50.0 and metrics["gpu0.power_w"] == 70.0
    assert "gpu0.fan_pct" not in metrics  # absent, not 0
    assert metrics["proc.vram.ollama runner"] == 3 * GB
    assert metrics["proc.rss.ollama runner"] == 2 * GB
    assert metrics["sampler.cost_ms"] == 0.5
    assert [metric_unit(m) for m in ("cpu_pct", "gpu0.vram_used", "gpu0.temp_c")] == [
        "%",
        "B",
        "°C",
    ]
    assert [metric_unit(m) for m in ("gpu0.power_w", "gpu0.sm_clock_mhz", "sampler.cost_ms")] == [
        "W",
        "MHz",
        "ms",
    ]


def test_the_window_sets_the_capacity_and_can_change_in_place() -> None:
    store = TelemetryStore(window_s=5.0, rate_hz=2.0)
    assert store.capacity == 10
    held = store.series("h", "cpu_pct")  # asked for before any sample: it fills later
    for n in range(25):
        store.record("h", make_sample(n))
    assert len(held) == 10
    assert held.values() == [float(n) for n in range(15, 25)]
    summary = held.summary()
    assert summary is not None
    assert (summary.minimum, summary.maximum, summary.mean) == (15.0, 24.0, 19.5)
    store.resize(window_s=2.0)
    assert store.series("h", "cpu_pct") is held and len(held) == 4
    assert held.values() == [21.0, 22.0, 23.0, 24.0]
    store.resize(window_s=10.0)
    for n in range(25, 45):
        store.record("h", make_sample(n))
    assert len(held) == 20 == store.capacity
    assert store.metrics("h")[:4] == ["core0.pct", "core1.pct", "cpu_pct", "gpu0.power_w"]
    assert store.latest("h") == make_sample(44)
    assert store.latest("nobody") is None and store.metrics("nobody") == []


def test_history_is_backfilled_before_the_points_kept() -> None:
    store = TelemetryStore(window_s=4.0)
    store.record("h", make_sample(10))
    store.backfill("h", {"cpu_pct": [(1001.0, 1.0), (1005.0, 5.0), (1010.0, 99.0)]})
    assert list(store.series("h", "cpu_pct")) == [(1001.0, 1.0), (1005.0, 5.0), (1010.0, 10.0)]


# -- loops --------------------------------------------------------------------------------
async def test_samples_fill_the_series_of_a_host(
    registry: HostRegistry, closing: list[TelemetryService]
) -> None:
    host = registry.add("127.0.0.2", agent_url="127.0.0.9")  # the factory never connects
    factory = Factory()
    service = start(registry, closing, factory, window_s=0.05)  # 5 points at 100 Hz
    seen: list[tuple[str, HostSample]] = []
    service.sampled.connect(seen.append)
    series = service.series(host.id, "cpu_pct")
    await wait_for(lambda: factory.sources and factory.sources[0].calls >= 12)
    assert factory.specs[0] == SourceSpec(SourceKind.AGENT, "http://127.0.0.9:9101")
    assert len(series) == 5  # the window holds window_s * rate points
    values = series.values()
    assert values == sorted(values) and values[-1] >= 11.0
    assert {h for h, _ in seen} == {host.id}
    assert "gpu0.util_pct" in service.metrics(host.id)
    assert service.latest(host.id) == seen[-1][1]
    assert len(service.sampler_cost(host.id)) == 5
    status = service.source_state(host.id)
    assert (status.source, status.ok, status.reason) == (SourceKind.AGENT, True, "")
    assert status.url == "http://127.0.0.9:9101"


async def test_hosts_of_this_machine_share_one_local_source(
    registry: HostRegistry, closing: list[TelemetryService]
) -> None:
    registry.restore_builtin_hosts()  # this computer's Ollama, on 127.0.0.1
    other = registry.add("http://localhost:8080", "llama.cpp here")
    remote = registry.add("127.0.0.2")
    factory = Factory()
    service = start(registry, closing, factory)
    await wait_for(lambda: service.latest(LOCAL_ID) and service.latest(other.id))
    assert [s.kind for s in factory.specs] == [SourceKind.LOCAL]
    assert service.source_state(LOCAL_ID).source is SourceKind.LOCAL
    status = service.source_state(remote.id)
    assert (status.source, status.reason) == (SourceKind.NONE, NO_SOURCE_REASON)
    assert status.reason == "no telemetry: add a Corral agent or an exporter URL for this host"
    assert service.latest(remote.id) is None


async def test_a_failing_source_gives_a_reason_and_the_loop_goes_on(
    registry: HostRegistry, closing: list[TelemetryService]
) -> None:
    host = registry.add("127.0.0.2", exporter_url="127.0.0.9:9400/metrics")

    def behaviour(n: int) -> HostSample:
        if n <= 2:
            raise HostUnreachable("Cannot connect to the exporter at 127.0.0.9:9400.")
        if n == 3:
            raise RuntimeError("a bug")
        return make_sample(n)

    factory = Factory(lambda spec: FakeSource(behaviour))
    service = start(registry, closing, factory)
    states: list[TelemetryStatus] = []
    service.state_changed.connect(states.append)
    await wait_for(lambda: service.source_state(host.id).ok)
    assert factory.specs[0].kind is SourceKind.EXPORTER
    assert factory.specs[0].url == "http://127.0.0.9:9400/metrics"
    reasons = [s.reason for s in states]
    assert "Cannot connect to the exporter at 127.0.0.9:9400." in reasons
    assert any("failed unexpectedly" in r and "a bug" in r for r in reasons)
    assert states[-1].ok and states[-1].failures == 0
    assert service.latest(host.id) is not None


async def test_a_source_that_hangs_times_out_with_a_reason(
    registry: HostRegistry, closing: list[TelemetryService]
) -> None:
    host = registry.add("127.0.0.2", agent_url="127.0.0.9")
    never = asyncio.Event()

    class Hanging(FakeSource):
        async def sample(self) -> HostSample:
            self.calls += 1
            await never.wait()
            raise AssertionError("unreachable")

    factory = Factory(lambda spec: Hanging())
    service = start(registry, closing, factory, timeout_s=0.05)
    await wait_for(lambda: factory.sources and factory.sources[0].calls >= 2)
    status = service.source_state(host.id)
    assert not status.ok
    assert "did not give a sample within 0.05 s" in status.reason
    assert status.failures >= 1


async def test_editing_a_host_switches_its_source_and_closes_the_old_one(
    registry: HostRegistry, closing: list[TelemetryService]
) -> None:
    host = registry.add("127.0.0.2", agent_url="127.0.0.9")
    factory = Factory()
    service = start(registry, closing, factory)
    await wait_for(lambda: service.latest(host.id))
    registry.update(host.id, agent_url="", exporter_url="127.0.0.9:9100")
    await wait_for(lambda: len(factory.sources) == 2 and factory.sources[0].closed)
    assert factory.specs[1] == SourceSpec(SourceKind.EXPORTER, "http://127.0.0.9:9100")
    registry.update(host.id, agent_token="t0k")  # a new token: a new source that sends it
    await wait_for(lambda: len(factory.sources) == 3)
    assert factory.specs[2].token == "t0k" and "t0k" not in repr(factory.specs[2])
    registry.remove(host.id)
    await wait_for(lambda: factory.sources[2].closed)
    assert service.latest(host.id) is None


async def test_an_agent_found_on_the_network_serves_the_host_at_its_address(
    registry: HostRegistry, closing: list[TelemetryService]
) -> None:
    host = registry.add("192.168.1.20")  # never contacted: the factory makes fakes
    factory = Factory()
    service = start(registry, closing, factory)
    assert service.source_state(host.id).source is SourceKind.NONE
    agent = MdnsService(
        name=f"gpu-box.{CORRAL_SERVICE}",
        service_type=CORRAL_SERVICE,
        server="gpu-box.local.",
        addresses=("192.168.1.20",),
        port=9101,
        properties=MappingProxyType({"host_id": "abc"}),
    )
    service.set_found_agents([agent])
    await wait_for(lambda: service.latest(host.id))
    status = service.source_state(host.id)
    assert (status.source, status.url, status.found) == (
        SourceKind.AGENT,
        "http://192.168.1.20:9101",
        True,
    )
    service.set_found_agents([])
    await wait_for(lambda: factory.sources[0].closed)
    assert service.source_state(host.id).reason == NO_SOURCE_REASON


# -- markers ------------------------------------------------------------------------------
@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    server = FakeOllama(host="127.0.0.2", port=0).start()
    try:
        yield server
    finally:
        server.stop()


async def test_loads_and_unloads_seen_by_the_health_monitor_become_markers(
    registry: HostRegistry, closing: list[TelemetryService], fake: FakeOllama
) -> None:
    host = registry.add(fake.url, "Box")
    monitor = HealthMonitor(
        registry, HealthPolicy(interval_s=0.05, jitter=0.0), rng=random.Random(1)
    )
    service = start(registry, closing, Factory(), health=monitor)
    changed: list[str] = []
    service.markers_changed.connect(changed.append)
    monitor.start()
    try:
        await wait_for(lambda: monitor.status(host.id).state is HostState.ONLINE)
        fake.load("llama3.2")
        await wait_for(lambda: [m.text for m in service.markers(host.id)])
        fake.unload("llama3.2")
        await wait_for(lambda: len(service.markers(host.id)) == 2)
    finally:
        await monitor.aclose()
        await registry.aclose()
    markers = service.markers(host.id)
    assert [(m.kind, m.text) for m in markers] == [
        ("load", "llama3.2:latest loaded"),
        ("unload", "llama3.2:latest unloaded"),
    ]
    assert markers[0].t <= markers[1].t and markers[0].host_id == host.id
    assert changed == [host.id, host.id]
    manual = service.add_marker(host.id, "pull", "qwen3:0.6b pulled")
    assert service.markers(host.id)[-1] == manual and changed[-1] == host.id


# -- the VRAM check -----------------------------------------------------------------------
async def test_vram_of_the_server_processes_is_compared_with_what_the_host_reports(
    registry: HostRegistry, closing: list[TelemetryService]
) -> None:
    host = registry.add("127.0.0.2", agent_url="127.0.0.9")
    vram = [3 * GB]
    factory = Factory(lambda spec: FakeSource(lambda n: make_sample(n, vram=vram[0])))
    service = start(registry, closing, factory)
    await wait_for(lambda: service.latest(host.id))
    one = [RunningModel("llama3.2:latest", size=3 * GB, size_vram=2 * GB)]
    [check] = service.vram_check(host.id, one)
    assert check.models == ("llama3.2:latest",)
    assert (check.reported_vram, check.process_vram) == (2 * GB, 3 * GB)
    assert check.disagrees
    assert check.sentence == (
        "llama3.2:latest: the host reports 2.0 GB in VRAM, but its processes use 3.0 GB "
        "on the GPUs (50 % more)."
    )
    vram[0] = int(2.1 * GB)  # within 10 %: they agree
    await wait_for(lambda: service.latest(host.id).model_processes[0].vram == vram[0])  # type: ignore[union-attr]
    [check] = service.vram_check(host.id, one)
    assert not check.disagrees and check.sentence == ""
    two = [*one, RunningModel("qwen3:0.6b", size=GB, size_vram=GB)]
    [both] = service.vram_check(host.id, two)
    assert both.models == ("llama3.2:latest", "qwen3:0.6b") and both.reported_vram == 3 * GB
    assert both.disagrees and "2 loaded models" in both.sentence and "30 % less" in both.sentence
    assert service.vram_check(host.id, []) == []


async def test_a_server_that_does_not_report_vram_is_not_called_wrong(
    registry: HostRegistry, closing: list[TelemetryService]
) -> None:
    host = registry.add("127.0.0.2:8080", kind=HostKind.LLAMACPP, agent_url="127.0.0.9")
    factory = Factory(lambda spec: FakeSource(lambda n: make_sample(n, vram=3 * GB)))
    service = start(registry, closing, factory)
    await wait_for(lambda: service.latest(host.id))
    [check] = service.vram_check(host.id, [RunningModel("gemma-3-270m", size=0, size_vram=0)])
    assert (check.process_vram, check.disagrees) == (3 * GB, False)
    assert check.sentence == (
        "gemma-3-270m: its processes use 3.0 GB on the GPUs; the host does not report how "
        "much is in VRAM."
    )


async def test_without_gpu_readings_the_vram_check_says_why(
    registry: HostRegistry, closing: list[TelemetryService]
) -> None:
    host = registry.add("127.0.0.2", agent_url="127.0.0.9")
    factory = Factory(lambda spec: FakeSource(lambda n: make_sample(n, state=GpuState.NO_GPU)))
    service = start(registry, closing, factory)
    await wait_for(lambda: service.latest(host.id))
    [check] = service.vram_check(host.id, [RunningModel("m:latest", GB, GB)])
    assert check.process_vram is None and not check.disagrees
    assert "cannot be compared (there are no GPU readings for this host)" in check.sentence


# -- where a host's telemetry is configured --------------------------------------------------
def test_agent_and_exporter_urls_are_saved_and_the_token_kept_out_of_the_file(
    tmp_path: Path, registry: HostRegistry, keyring: MemoryKeyring
) -> None:
    host = registry.add("192.168.1.20", agent_url="192.168.1.20", agent_token="s3cr3t-t0ken")
    assert host.agent_url == "http://192.168.1.20:9101"  # the agent's default port
    text = (tmp_path / "s.json").read_text()
    assert "s3cr3t-t0ken" not in text
    [entry] = json.loads(text)["hosts"]
    assert entry["agent_url"] == "http://192.168.1.20:9101" and entry["agent_token"] is True
    assert "s3cr3t-t0ken" in keyring.store.values()
    again = HostRegistry(SettingsStore(tmp_path / "s.json"), SecretStore(keyring), env={})
    assert again.get(host.id).agent_url == "http://192.168.1.20:9101"
    assert again.agent_token(host.id) == "s3cr3t-t0ken"
    again.update(host.id, exporter_url="192.168.1.20, http://192.168.1.20:9400/metrics")
    assert again.get(host.id).exporter_url == (
        "http://192.168.1.20:9100 http://192.168.1.20:9400/metrics"
    )
    again.update(host.id, agent_token="")
    assert again.agent_token(host.id) is None and keyring.store == {}
    assert again.agent_token("local") is None


def test_settings_without_the_new_keys_still_load(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "hosts": [{"id": "h-1", "name": "Box", "url": "http://10.0.0.5:11434"}],
            }
        )
    )
    loaded = SettingsStore(path).load()
    assert loaded.problem is None
    [entry] = loaded.settings.hosts
    assert (entry.agent_url, entry.exporter_url, entry.agent_token) == ("", "", False)
