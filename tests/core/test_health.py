"""Health monitoring: online / degraded / offline with reasons, backoff, and recovery."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from app.core.hosts.health import (
    HealthMonitor,
    HealthPolicy,
    HostState,
    HostStatus,
    LoadedChange,
)
from app.core.hosts.registry import HostRegistry
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from tests.fakes.ollama import FakeOllama
from tests.support.memory_keyring import MemoryKeyring
from tests.support.waiting import wait_for

FAST = HealthPolicy(interval_s=0.1, jitter=0.0, backoff_max_s=0.2, slow_ms=150)


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(host="127.0.0.2", port=0) as server:
        yield server


@pytest.fixture
def registry(tmp_path: Path) -> HostRegistry:
    reg = HostRegistry(SettingsStore(tmp_path / "s.json"), SecretStore(MemoryKeyring()), env={})
    reg.remove("local")  # only the fakes of each test
    return reg


@pytest.fixture
async def monitor(registry: HostRegistry) -> AsyncIterator[HealthMonitor]:
    mon = HealthMonitor(registry, FAST, rng=random.Random(1))
    yield mon
    await mon.aclose()
    await registry.aclose()


class Recorder:
    def __init__(self, monitor: HealthMonitor) -> None:
        self.changes: list[HostStatus] = []
        self.probes: list[HostStatus] = []
        monitor.changed.connect(self.changes.append)
        monitor.probed.connect(self.probes.append)


async def test_a_stopped_host_goes_offline_at_the_next_probe_and_comes_back(
    registry: HostRegistry, monitor: HealthMonitor, fake: FakeOllama
) -> None:
    config = registry.add(fake.url, "Box")
    rec = Recorder(monitor)
    monitor.start()
    await wait_for(lambda: monitor.status(config.id).state is HostState.ONLINE)
    assert monitor.status(config.id).version == "0.33.0"

    host, port = fake.host, fake.port
    fake.stop()
    probes_before = len(rec.probes)
    await wait_for(lambda: monitor.status(config.id).state is HostState.OFFLINE)
    # "within two poll intervals": at most two probes after the stop
    assert len(rec.probes) - probes_before <= 2
    down = monitor.status(config.id)
    assert "Cannot connect to Box" in down.reason

    revived = FakeOllama(host=host, port=port).start()  # same address: the host comes back
    try:
        await wait_for(lambda: monitor.status(config.id).state is HostState.ONLINE)
        assert monitor.status(config.id).reason == ""
        assert [c.state for c in rec.changes] == [
            HostState.ONLINE,
            HostState.OFFLINE,
            HostState.ONLINE,
        ]
    finally:
        revived.stop()


async def test_a_slow_host_is_degraded_with_the_reason(
    registry: HostRegistry, monitor: HealthMonitor, fake: FakeOllama
) -> None:
    config = registry.add(fake.url, "Slowpoke")
    monitor.start()
    await wait_for(lambda: monitor.status(config.id).state is HostState.ONLINE)
    fake.faults.latency = 0.3  # 300 ms > slow_ms 150
    await wait_for(lambda: monitor.status(config.id).state is HostState.DEGRADED)
    assert "answers slowly" in monitor.status(config.id).reason
    fake.faults.latency = 0.0
    await wait_for(lambda: monitor.status(config.id).state is HostState.ONLINE)


async def test_a_host_failing_some_calls_is_degraded(
    registry: HostRegistry, monitor: HealthMonitor, fake: FakeOllama
) -> None:
    config = registry.add(fake.url, "Half")
    fake.faults.fail_status = 500
    fake.faults.paths = {"/api/ps"}
    monitor.start()
    await wait_for(lambda: monitor.status(config.id).state is HostState.DEGRADED)
    reason = monitor.status(config.id).reason
    assert "not every call works" in reason and "HTTP 500" in reason


async def test_round_trips_are_kept_for_the_graphs(
    registry: HostRegistry, monitor: HealthMonitor, fake: FakeOllama
) -> None:
    config = registry.add(fake.url, "Box")
    monitor.start()
    await wait_for(lambda: len(monitor.rtt_history(config.id)) >= 3)
    summary = monitor.rtt_history(config.id).summary()
    assert summary is not None and 0 < summary.minimum <= summary.p50 <= summary.maximum


async def test_hosts_added_and_removed_are_followed(
    registry: HostRegistry, monitor: HealthMonitor, fake: FakeOllama
) -> None:
    monitor.start()
    config = registry.add(fake.url, "Late")
    await wait_for(lambda: monitor.status(config.id).state is HostState.ONLINE)
    registry.remove(config.id)
    assert monitor.status(config.id).state is HostState.UNKNOWN
    assert config.id not in monitor.statuses()


def test_backoff_grows_while_down_and_is_capped(registry: HostRegistry) -> None:
    policy = HealthPolicy(interval_s=2.0, jitter=0.0, backoff_max_s=10.0)
    mon = HealthMonitor(registry, policy, rng=random.Random(0))
    delays = [mon._delay(HostStatus("h", HostState.OFFLINE, failures=n)) for n in range(1, 7)]
    assert delays == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert mon._delay(HostStatus("h", HostState.ONLINE)) == 2.0
    mon.set_policy(HealthPolicy(interval_s=2.0, jitter=0.25))
    samples = {mon._delay(HostStatus("h", HostState.ONLINE)) for _ in range(50)}
    assert len(samples) > 1 and all(1.5 <= s <= 2.5 for s in samples)


async def test_a_new_policy_applies_to_a_loop_waiting_out_a_long_interval(
    registry: HostRegistry, monitor: HealthMonitor, fake: FakeOllama
) -> None:
    def probes() -> int:
        return sum(1 for _, path, _ in fake.requests if path == "/api/version")

    config = registry.add(fake.url, "Box")
    monitor.set_policy(HealthPolicy(interval_s=600.0, jitter=0.0))
    monitor.start()
    await wait_for(lambda: monitor.status(config.id).state is HostState.ONLINE)
    before = probes()
    # the loop now waits ten minutes; the shorter interval must not wait for that to end
    monitor.set_policy(HealthPolicy(interval_s=0.1, jitter=0.0))
    await wait_for(lambda: probes() >= before + 3, timeout=5.0)
    assert monitor.policy.interval_s == 0.1


async def test_loads_and_unloads_made_anywhere_are_reported(
    registry: HostRegistry, monitor: HealthMonitor, fake: FakeOllama
) -> None:
    config = registry.add(fake.url, "Box")
    changes: list[LoadedChange] = []
    monitor.loaded_changed.connect(changes.append)
    rec = Recorder(monitor)
    monitor.start()
    await wait_for(lambda: len(rec.probes) >= 1)
    fake.load("llama3.2")  # loaded behind Corral's back (another client, a script)
    await wait_for(lambda: changes)
    assert changes == [LoadedChange(config.id, ("llama3.2:latest",), ())]
    fake.unload("llama3.2")
    await wait_for(lambda: len(changes) == 2)
    assert changes[1] == LoadedChange(config.id, (), ("llama3.2:latest",))
