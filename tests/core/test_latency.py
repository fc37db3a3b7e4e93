"""Latency figures: round trips from health probes, reply figures, rolling percentiles."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from app.core.hosts.base import ChatStats
from app.core.hosts.health import HealthMonitor, HealthPolicy, HostState, HostStatus
from app.core.hosts.registry import HostRegistry
from app.core.metrics.latency import LatencyBook, wall_tokens_per_s
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from tests.fakes.ollama import FakeOllama
from tests.support.memory_keyring import MemoryKeyring
from tests.support.waiting import wait_for


class Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _stats(**kw: float | int | None) -> ChatStats:
    return ChatStats(**kw)  # type: ignore[arg-type]


def test_host_reported_speed_wins_and_the_wall_clock_fills_in() -> None:
    book = LatencyBook()
    # Ollama gives eval_count / eval_duration: its figure is the one used
    book.record_reply(
        "h",
        "llama3.2:latest",
        _stats(
            output_tokens=101,
            time_to_first_token_ms=200.0,
            total_ms=2200.0,
            tokens_per_s=55.0,
            prompt_tokens_per_s=300.0,
            load_ms=12.0,
        ),
        t=1.0,
    )
    # a server without its own figures: 100 tokens after the first in 2 s = 50 tokens/s
    book.record_reply(
        "h",
        "qwen3:0.6b",
        _stats(output_tokens=101, time_to_first_token_ms=100.0, total_ms=2100.0),
        t=2.0,
    )
    llama = book.model_summary("h", "llama3.2:latest")
    assert llama.replies == 1
    assert llama.tokens_per_s is not None and llama.tokens_per_s.p50 == 55.0
    assert llama.wall_tokens_per_s is not None and llama.wall_tokens_per_s.p50 == 50.0
    assert llama.prompt_tokens_per_s is not None and llama.prompt_tokens_per_s.p50 == 300.0
    assert llama.load_ms is not None and llama.load_ms.p50 == 12.0
    assert llama.ttft_ms is not None and llama.ttft_ms.p50 == 200.0
    assert llama.last_t == 1.0
    qwen = book.model_summary("h", "qwen3:0.6b")
    assert qwen.tokens_per_s is not None and qwen.tokens_per_s.p50 == 50.0
    assert qwen.prompt_tokens_per_s is None and qwen.load_ms is None
    assert book.models("h") == ["llama3.2:latest", "qwen3:0.6b"]

    host = book.host_summary("h")
    assert host.replies == 2
    assert host.models == ("llama3.2:latest", "qwen3:0.6b")
    assert host.ttft_ms is not None and host.ttft_ms.count == 2
    assert host.tokens_per_s is not None
    assert (host.tokens_per_s.minimum, host.tokens_per_s.maximum) == (50.0, 55.0)
    assert host.rtt_ms is None  # no probe recorded


@pytest.mark.parametrize(
    "stats",
    [
        _stats(output_tokens=1, time_to_first_token_ms=10.0, total_ms=20.0),  # one token
        _stats(output_tokens=10, time_to_first_token_ms=None, total_ms=20.0),  # no first token
        _stats(output_tokens=10, time_to_first_token_ms=20.0, total_ms=20.0),  # no decode time
        _stats(output_tokens=None, time_to_first_token_ms=10.0, total_ms=20.0),
        _stats(output_tokens=10, time_to_first_token_ms=10.0, total_ms=None),
    ],
)
def test_no_wall_clock_speed_without_enough_figures(stats: ChatStats) -> None:
    assert wall_tokens_per_s(stats) is None
    book = LatencyBook()
    book.record_reply("h", "m", stats, t=1.0)
    summary = book.model_summary("h", "m")
    assert summary.replies == 1
    assert summary.tokens_per_s is None and summary.wall_tokens_per_s is None


def test_percentiles_roll_over_the_window() -> None:
    book = LatencyBook(window=20)
    for i in range(1, 101):  # TTFT 1..100 ms; only the last 20 (81..100) are kept
        book.record_reply("h", "m", _stats(time_to_first_token_ms=float(i)), t=float(i))
    ttft = book.model_summary("h", "m").ttft_ms
    assert ttft is not None
    assert ttft.count == 20
    assert (ttft.minimum, ttft.maximum) == (81.0, 100.0)
    assert ttft.p50 == 90.0  # nearest rank: the 10th of 20
    assert ttft.p95 == 99.0  # nearest rank: the 19th of 20
    assert book.model_summary("h", "m").replies == 100  # the count is not windowed
    assert len(book.series("h", "ttft_ms", "m")) == 20
    assert len(book.series("h", "ttft_ms")) == 20
    with pytest.raises(ValueError, match="unknown figure"):
        book.series("h", "nope")


def test_hosts_and_models_are_kept_apart() -> None:
    book = LatencyBook()
    book.record_reply("a", "m", _stats(time_to_first_token_ms=10.0), t=1.0)
    book.record_reply("b", "m", _stats(time_to_first_token_ms=90.0), t=1.0)
    a, b = book.model_summary("a", "m"), book.model_summary("b", "m")
    assert a.ttft_ms is not None and a.ttft_ms.p50 == 10.0
    assert b.ttft_ms is not None and b.ttft_ms.p50 == 90.0
    assert book.model_summary("a", "other").replies == 0
    assert book.model_summary("a", "other").ttft_ms is None
    assert book.host_summary("nobody").replies == 0
    assert book.hosts() == ["a", "b"]


def test_explicit_loads_count_as_load_times_but_not_as_replies() -> None:
    book = LatencyBook(clock=Clock(50.0))
    book.record_load("h", "m", 1234.0)
    summary = book.model_summary("h", "m")
    assert summary.replies == 0
    assert summary.load_ms is not None and summary.load_ms.p50 == 1234.0
    assert summary.last_t == 50.0
    assert book.host_summary("h").load_ms is not None


def test_changed_names_the_host_and_forget_drops_it() -> None:
    seen: list[str] = []
    book = LatencyBook(clock=Clock())
    book.changed.connect(seen.append)
    book.record_rtt("a", 1.0, 3.0)
    book.record_reply("b", "m", _stats(time_to_first_token_ms=5.0))
    book.record_load("b", "m", 100.0)
    assert seen == ["a", "b", "b"]
    book.forget("b")
    assert seen[-1] == "b"
    assert book.models("b") == [] and book.host_summary("b").replies == 0
    book.forget("never-seen")
    assert seen[-1] == "b"  # nothing to say about a host without figures
    rtt = book.host_summary("a").rtt_ms
    assert rtt is not None and rtt.p50 == 3.0


def test_round_trips_come_from_good_probes_only() -> None:
    clock = Clock(100.0)
    book = LatencyBook(clock=clock)
    book._on_probed(HostStatus("h", HostState.ONLINE, rtt_ms=4.0))
    clock.t = 101.0
    book._on_probed(HostStatus("h", HostState.DEGRADED, rtt_ms=1500.0))
    clock.t = 102.0
    # an offline status keeps the last good round trip: it is not a new sample
    book._on_probed(HostStatus("h", HostState.OFFLINE, rtt_ms=1500.0))
    book._on_probed(HostStatus("h", HostState.ONLINE, rtt_ms=None))
    assert list(book.rtt("h")) == [(100.0, 4.0), (101.0, 1500.0)]
    assert len(book.rtt("unknown")) == 0


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(host="127.0.0.2", port=0) as server:
        yield server


@pytest.fixture
async def monitor(tmp_path: Path) -> AsyncIterator[HealthMonitor]:
    reg = HostRegistry(SettingsStore(tmp_path / "s.json"), SecretStore(MemoryKeyring()), env={})
    reg.remove("local")
    mon = HealthMonitor(
        reg, HealthPolicy(interval_s=0.05, jitter=0.0, backoff_max_s=0.1), rng=random.Random(1)
    )
    yield mon
    await mon.aclose()
    await reg.aclose()


async def test_attached_to_a_health_monitor_it_records_every_probe(
    monitor: HealthMonitor, fake: FakeOllama
) -> None:
    book = LatencyBook()
    book.attach(monitor)
    book.attach(monitor)  # twice is once
    config = monitor.registry.add(fake.url, "Box")
    monitor.start()
    await wait_for(lambda: len(book.rtt(config.id)) >= 3)
    summary = book.host_summary(config.id).rtt_ms
    assert summary is not None and summary.count >= 3
    assert 0.0 < summary.p50 <= summary.p95 < 1000.0
    book.detach(monitor)
    count = len(book.rtt(config.id))
    probes = len(monitor.rtt_history(config.id))
    await wait_for(lambda: len(monitor.rtt_history(config.id)) > probes + 1)
    assert len(book.rtt(config.id)) == count


def test_a_window_must_hold_something() -> None:
    with pytest.raises(ValueError, match="window"):
        LatencyBook(window=0)
