"""Corral's Ollama host, through the real `ollama` client over HTTP, against the fake server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import ollama
import pytest

from app.core.errors import (
    CapabilityMissing,
    HostRequestFailed,
    HostTimeout,
    HostUnreachable,
    InvalidInput,
    ModelNotFound,
    PullFailed,
)
from app.core.hosts.base import HostConfig, PullProgress, Timeouts
from app.core.hosts.ollama import OllamaHost
from tests.fakes.ollama import FakeOllama


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    server = FakeOllama(host="127.0.0.2", port=0, pull_steps=6, pull_delay=0.001).start()
    try:
        yield server
    finally:
        server.stop()


def make_host(url: str, **timeouts: float) -> OllamaHost:
    return OllamaHost(HostConfig("t", "Test host", url), timeouts=Timeouts(**timeouts))


@pytest.fixture
async def host(fake: FakeOllama) -> AsyncIterator[OllamaHost]:
    h = make_host(fake.url)
    yield h
    await h.aclose()


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def other_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_health_reports_version_and_round_trip(host: OllamaHost) -> None:
    health = await host.health()
    assert health.online and health.version == "0.33.0"
    assert health.rtt_ms is not None and 0 < health.rtt_ms < 5000
    assert health.error is None


async def test_list_models_has_what_the_table_shows(host: OllamaHost) -> None:
    models = {m.name: m for m in await host.list_models()}
    assert "llama3.2:latest" in models
    m = models["llama3.2:latest"]
    assert m.size > 0 and len(m.digest) == 64
    assert (m.family, m.parameter_size, m.quantization) == ("llama", "3.2B", "Q4_K_M")
    assert m.modified_at is not None and m.modified_at.tzinfo is not None


async def test_load_and_unload_are_reflected_in_ps(host: OllamaHost, fake: FakeOllama) -> None:
    assert await host.running_models() == []
    await host.load("llama3.2")
    running = await host.running_models()
    assert [r.name for r in running] == ["llama3.2:latest"]
    r = running[0]
    assert r.size_vram == r.size and r.vram_fraction == 1.0 and r.ram_bytes == 0
    assert r.context_length and r.context_length > 0
    expires_in = r.expires_in(datetime.now(UTC))
    assert expires_in is not None and 240 < expires_in <= 300  # default keep_alive 5m
    await host.unload("llama3.2")
    assert await host.running_models() == []
    assert fake.loaded_names() == []


async def test_embedding_models_load_too(host: OllamaHost) -> None:
    await host.load("nomic-embed-text")
    assert [r.name for r in await host.running_models()] == ["nomic-embed-text:latest"]
    await host.unload("nomic-embed-text")
    assert await host.running_models() == []


async def test_keep_alive_is_sent_and_checked(host: OllamaHost) -> None:
    await host.load("qwen3:0.6b", keep_alive="-1")
    (r,) = await host.running_models()
    assert r.expires_at is not None and r.expires_at - datetime.now(UTC) > timedelta(days=365)
    with pytest.raises(InvalidInput, match="not a keep-alive duration"):
        await host.load("qwen3:0.6b", keep_alive="five minutes")


async def test_partial_offload_shows_the_vram_split() -> None:
    with FakeOllama(host="127.0.0.3", port=0, vram_bytes=1_000_000_000) as small_gpu:
        h = make_host(small_gpu.url)
        try:
            await h.load("llama3.2")
            (r,) = await h.running_models()
            assert r.size_vram == 1_000_000_000 < r.size
            assert 0 < r.vram_fraction < 1 and r.ram_bytes == r.size - r.size_vram
        finally:
            await h.aclose()


async def test_show_gives_details(host: OllamaHost) -> None:
    d = await host.show("qwen3:0.6b")
    assert {"completion", "tools", "thinking"} <= set(d.capabilities)
    assert d.model_info.get("general.architecture")
    assert d.context_length and d.context_length > 0
    assert d.template and d.parameters


async def test_missing_model_is_a_clear_404(host: OllamaHost) -> None:
    for call in (
        lambda: host.show("nope"),
        lambda: host.delete("nope"),
        lambda: host.copy("nope", "other"),
        lambda: host.load("nope"),
    ):
        with pytest.raises(ModelNotFound) as info:
            await call()
        assert info.value.model == "nope"
        assert "has no model named 'nope'" in info.value.message
        assert isinstance(info.value.__cause__, ollama.ResponseError)


async def test_empty_model_name_is_refused_before_any_request(
    host: OllamaHost, fake: FakeOllama
) -> None:
    before = len(fake.requests)
    with pytest.raises(InvalidInput, match="Enter a model name"):
        await host.show("  ")
    with pytest.raises(InvalidInput):
        async for _ in host.pull(""):
            pass
    assert len(fake.requests) == before


async def test_delete_and_copy(host: OllamaHost) -> None:
    await host.copy("llama3.2", "my-llama:v1")
    names = {m.name for m in await host.list_models()}
    assert {"llama3.2:latest", "my-llama:v1"} <= names
    await host.delete("my-llama:v1")
    assert "my-llama:v1" not in {m.name for m in await host.list_models()}


async def test_pull_reports_progress_to_done(host: OllamaHost, fake: FakeOllama) -> None:
    fake.pull_delay = 0.01  # long enough (about 0.2 s in all) for a speed to be measured
    seen: list[PullProgress] = []
    async for p in host.pull("tinyllama"):
        seen.append(p)
    assert seen[0].status == "pulling manifest"
    fractions = [p.fraction for p in seen if p.fraction is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(0 < f < 1 for f in fractions)
    last = seen[-1]
    assert last.done and last.status == "success" and last.eta_s == 0
    assert len(last.layers) >= 2 and all(la.completed == la.total for la in last.layers)
    assert any(p.bytes_per_s for p in seen)
    assert "tinyllama:latest" in {m.name for m in await host.list_models()}


async def test_pull_of_unknown_model_fails_with_the_hosts_reason(host: OllamaHost) -> None:
    statuses: list[str] = []
    with pytest.raises(PullFailed) as info:
        async for p in host.pull("no-such-model"):
            statuses.append(p.status)
    assert statuses == ["pulling manifest"]  # the error came as a line inside HTTP 200
    assert "file does not exist" in info.value.message
    assert "no-such-model" in info.value.message


async def test_cancelled_pull_stops_and_leaves_no_task(fake: FakeOllama) -> None:
    with FakeOllama(host="127.0.0.4", port=0, pull_steps=200, pull_delay=0.02) as slow:
        h = make_host(slow.url)
        first_progress = asyncio.Event()

        async def consume() -> None:
            async for p in h.pull("tinyllama"):
                if p.completed:
                    first_progress.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first_progress.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert "tinyllama:latest" not in slow.installed
        assert other_tasks() == set()
        await h.aclose()


async def test_dropped_stream_mid_pull_is_a_pull_failure(
    fake: FakeOllama, host: OllamaHost
) -> None:
    fake.faults.drop_after = 3
    with pytest.raises(PullFailed, match="connection was lost"):
        async for _ in host.pull("tinyllama"):
            pass
    fake.faults.drop_after = None
    # and a new pull resumes and finishes
    async for p in host.pull("tinyllama"):
        last = p
    assert last.done


async def test_unreachable_host() -> None:
    h = make_host(f"http://127.0.0.1:{free_port()}", connect=1.0)
    try:
        with pytest.raises(HostUnreachable, match="Cannot connect to Test host") as info:
            await h.list_models()
        assert info.value.__cause__ is not None  # the foreign exception is kept
        with pytest.raises(HostUnreachable):  # streaming calls too (the client leaks httpx)
            async for _ in h.pull("tinyllama"):
                pass
        health = await h.health()
        assert not health.online and health.error and "Cannot connect" in health.error
    finally:
        await h.aclose()


async def test_hanging_host_times_out_and_leaves_no_task(fake: FakeOllama) -> None:
    fake.faults.hang = True
    h = make_host(fake.url, request=0.3, stream_idle=0.3, probe=0.3)
    try:
        with pytest.raises(HostTimeout, match=r"did not answer within 0\.3 s"):
            await h.list_models()
        health = await h.health()
        assert not health.online and health.error and "did not answer" in health.error
        with pytest.raises(PullFailed, match=r"no progress for 0\.3 s"):
            async for _ in h.pull("tinyllama"):
                pass
        assert other_tasks() == set()
    finally:
        await h.aclose()


async def test_server_error_status_is_reported(fake: FakeOllama, host: OllamaHost) -> None:
    fake.faults.fail_status = 503
    with pytest.raises(HostRequestFailed) as info:
        await host.running_models()
    assert info.value.status == 503 and "HTTP 503" in info.value.message


async def test_configured_headers_reach_the_host_and_the_cloud_key_does_not(
    fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "cloud-key-for-ollama-com")
    plain = OllamaHost(HostConfig("p", "Plain", fake.url))
    proxied = OllamaHost(
        HostConfig("x", "Proxied", fake.url, headers=(("Authorization", "Bearer lan-token"),))
    )
    try:
        await plain.list_models()
        async for _ in plain.pull("smollm2:135m"):
            pass
        await proxied.list_models()
        await proxied.health()
    finally:
        await plain.aclose()
        await proxied.aclose()
    auth = [h.get("authorization") for h in fake.request_headers]
    assert auth[:2] == [None, None]  # the cloud key never leaves for a LAN host
    assert auth[2:] == ["Bearer lan-token", "Bearer lan-token"]


async def test_a_host_edited_during_a_pull_keeps_pulling(tmp_path: object) -> None:
    """Editing a host replaces its object; the old one is closed only once idle."""
    from pathlib import Path

    from app.core.hosts.registry import HostRegistry
    from app.core.secrets import SecretStore
    from app.core.settings import SettingsStore
    from tests.support.memory_keyring import MemoryKeyring

    with FakeOllama(host="127.0.0.5", port=0, pull_steps=30, pull_delay=0.01) as fake:
        assert isinstance(tmp_path, Path)
        registry = HostRegistry(
            SettingsStore(tmp_path / "s.json"), SecretStore(MemoryKeyring()), env={}
        )
        config = registry.add(fake.url, "Before")
        old = registry.host(config.id)
        pulling = old.pull("tinyllama")
        first = await anext(pulling)
        assert old.in_flight == 1
        registry.update(config.id, name="After")
        assert registry.host(config.id) is not old
        await registry.close_retired()  # must not close the old host under the pull
        statuses = [p.status async for p in pulling]
        assert first.status == "pulling manifest" and statuses[-1] == "success"
        assert old.in_flight == 0
        await registry.close_retired()
        await registry.aclose()


@pytest.mark.parametrize(
    ("body", "capability"),
    [
        ('{"error":"registry.ollama.ai/library/llava:7b does not support tools"}', "tools"),
        ('{"error":"\\"llama3.2\\" does not support thinking"}', "thinking"),
        ('{"error":"\\"nomic-embed-text\\" does not support chat"}', "chat"),
    ],
)
def test_capability_errors_are_named(body: str, capability: str) -> None:
    """Ollama's 400 "<model> does not support <x>" becomes CapabilityMissing(x)."""
    h = make_host("http://127.0.0.1:1")
    err = h._translate(ollama.ResponseError(body, 400), action="chatting", model="m")
    assert isinstance(err, CapabilityMissing)
    assert err.capability == capability
    assert err.message == f"m on Test host does not support {capability}."
