"""The built-in engine host with a stand-in child process (no real model, fast).

The child is a small script that takes the engine server's arguments, serves the fake
llama.cpp server of :mod:`tests.fakes.openai_server` on a free loopback port and prints
the ready line, as ``python -m app.core.engine.server`` does; ``FAKE_ENGINE_MODE`` makes
it fail to load, hang, ignore SIGTERM or write a lot of log lines.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from app.core.engine import EngineError, EngineModel
from app.core.engine.catalog import EngineCatalog
from app.core.engine.models import ModelsFolder
from app.core.engine.process import EngineExit, EngineProcess
from app.core.engine.server import main as server_main
from app.core.engine.templates import (
    CHATML_TEMPLATE,
    GEMMA3_TEMPLATE,
    LLAMA3_TEMPLATE,
    MISTRAL_TEMPLATE,
    PHI3_TEMPLATE,
    template_for,
)
from app.core.errors import CapabilityMissing, HostTimeout, InvalidInput, ModelNotFound
from app.core.hosts.base import (
    ChatMessage,
    ChatRequest,
    ContentChunk,
    FinalChunk,
    HostKind,
    Timeouts,
)
from app.core.hosts.engine import (
    ENGINE_ID,
    ENGINE_NAME,
    ENGINE_URL,
    IDLE_TEXT,
    EngineHost,
    EngineSettings,
    EngineStatus,
    engine_config,
)
from app.core.hosts.health import HealthMonitor, HealthPolicy, HostState
from app.core.hosts.registry import HostRegistry, default_host_factory
from app.core.secrets import SecretStore
from app.core.settings import Settings, SettingsStore
from tests.fakes.gguf_files import write_gguf
from tests.fakes.openai_server import FakeOpenAI
from tests.support.engine import engine_registry
from tests.support.memory_keyring import MemoryKeyring
from tests.support.waiting import wait_for, wait_for_async

ROOT = Path(__file__).resolve().parents[2]
REPLY = FakeOpenAI().reply  # what the stand-in answers every chat with

CHILD = r"""
import json, os, signal, sys, threading
from app.core.engine.server import parse_args
from tests.fakes.openai_server import FakeOpenAI

args = parse_args(sys.argv[1:])
mode = os.environ.get("FAKE_ENGINE_MODE", "ok")
def log(line):
    print(line, file=sys.stderr, flush=True)
record = os.environ.get("FAKE_ENGINE_RECORD")
if record:
    template = args.template_file.read_text() if args.template_file else None
    with open(record, "a") as f:
        key = os.environ.get("CORRAL_ENGINE_API_KEY")
        f.write(json.dumps({"argv": sys.argv[1:], "template": template, "key": key}) + "\n")
log("0.00.000.100 I srv          init: loading model")
if mode == "fail":
    log(f"0.00.004.121 E cmn  common_init_: failed to load model '{args.model}'")
    print(json.dumps({"error": f"llama.cpp could not load {args.model.name}"}), flush=True)
    sys.exit(1)
if mode == "hang":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Event().wait()
if mode == "chatty":
    for i in range(500):
        log(f"0.00.000.200 I srv   chatter: line {i}")
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
fake = FakeOpenAI("127.0.0.1", 0, flavor="llamacpp", models=[args.alias]).start()
log(f"0.01.480.819 I srv          init: listening on {fake.url}")
print("not the ready line", flush=True)
print(json.dumps({"url": fake.url, "pid": os.getpid(), "gpu": False, "devices": ["CPU"]}),
      flush=True)
while True:
    signal.pause()
"""


@pytest.fixture
def child_script(tmp_path: Path) -> Path:
    path = tmp_path / "fake_engine.py"
    path.write_text(CHILD)
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("tiny.gguf", "other.gguf"):
        (folder / name).write_bytes(b"GGUF" + bytes(1000))
    return folder


MakeProcess = Callable[..., EngineProcess]


@pytest.fixture
def make_process(child_script: Path, tmp_path: Path) -> MakeProcess:
    """``make_process(mode="ok", **options)``: an EngineProcess whose child is the stand-in
    (its arguments and template recorded in ``tmp_path / "record.jsonl"``)."""

    def make(mode: str = "ok", **options: Any) -> EngineProcess:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FAKE_ENGINE_MODE": mode,
            "FAKE_ENGINE_RECORD": str(tmp_path / "record.jsonl"),
        }
        options.setdefault("load_timeout", 20.0)
        options.setdefault("stop_timeout", 5.0)
        return EngineProcess(command=[sys.executable, str(child_script)], env=env, **options)

    return make


def recorded(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "record.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def catalog(folder: Path) -> Callable[[], list[EngineModel]]:
    def models() -> list[EngineModel]:
        out = [EngineModel(p.stem, p, p.stat().st_size) for p in sorted(folder.glob("*.gguf"))]
        return [
            EngineModel(m.name, m.path, m.size, 8192, has_template=False, architecture="gemma3")
            if m.name == "tiny"
            else m
            for m in out
        ]

    return models


@pytest.fixture
async def host(make_process: MakeProcess, model_dir: Path) -> AsyncIterator[EngineHost]:
    h = EngineHost(
        engine_config(),
        models=catalog(model_dir),
        timeouts=Timeouts(request=10.0, probe=5.0, load=20.0),
        process=make_process(),
    )
    yield h
    await h.aclose()


def gone(pid: int) -> bool:
    """The process is gone (or a zombie nobody waits for any more)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def request(model: str = "tiny") -> ChatRequest:
    return ChatRequest(model=model, messages=(ChatMessage("user", "Hello"),))


# --------------------------------------------------------------------------- the host


async def test_an_idle_engine_is_online_with_no_model_loaded(host: EngineHost) -> None:
    health = await host.health()
    assert health.online and health.version == IDLE_TEXT and health.error is None
    assert await host.version() == IDLE_TEXT
    assert await host.running_models() == []
    assert host.status == EngineStatus("idle")
    assert {m.name for m in await host.list_models()} == {"tiny", "other"}
    assert all(m.format == "gguf" and m.size == 1004 for m in await host.list_models())

    caps = host.capabilities
    assert caps.load and caps.unload and not caps.pull and not caps.delete and not caps.copy
    assert "models folder" in (caps.why_not("pull") or "")
    with pytest.raises(CapabilityMissing):
        async for _ in host.pull("tiny"):
            pass
    with pytest.raises(CapabilityMissing):
        await host.delete("tiny")
    assert host.process.pid is None  # nothing was started by any of it


async def test_load_starts_the_child_and_the_host_serves_the_model(
    host: EngineHost, tmp_path: Path
) -> None:
    seen: list[EngineStatus] = []
    host.changed.connect(seen.append)
    await host.load("tiny")

    pid = host.process.pid
    assert pid is not None and psutil.pid_exists(pid)
    assert host.process.url.startswith("http://127.0.0.1:")
    assert [s.state for s in seen] == ["loading", "running"]
    assert host.loaded_model == "tiny"
    health = await host.health()
    assert health.online and health.version == "b6000-abcdef" and health.rtt_ms is not None
    [running] = await host.running_models()
    assert running.name == "tiny" and running.size > 1_000_000  # the child's resident memory
    assert running.context_length == 4096  # what the server reports it runs with
    detail = await host.show("tiny")
    assert detail.model_info["general.path"].endswith("tiny.gguf")
    assert detail.family == "gemma3"

    chunks = [c async for c in host.chat(request())]
    assert "".join(c.text for c in chunks if isinstance(c, ContentChunk)) == REPLY
    final = chunks[-1]
    assert isinstance(final, FinalChunk) and final.stats.load_ms is None  # already loaded

    # the child got the model, loopback, a free port, the context (capped by the model's)
    # and, as the file has no template of its own, the Gemma template
    [call] = recorded(tmp_path)
    argv = call["argv"]
    assert argv[argv.index("--model") + 1].endswith("tiny.gguf")
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "0"
    assert argv[argv.index("--ctx") + 1] == "4096"
    assert call["template"] == GEMMA3_TEMPLATE

    # the server wants a key of its own, handed over in the environment, not the arguments
    key = call["key"]
    assert key and len(key) >= 24 and host.process.api_key == key
    assert not any(key in a for a in argv)

    await host.load("tiny")  # already running: nothing restarts
    assert host.process.pid == pid and len(recorded(tmp_path)) == 1


async def test_a_model_with_its_own_template_gets_none(host: EngineHost, tmp_path: Path) -> None:
    await host.load("other")
    [call] = recorded(tmp_path)
    assert call["template"] is None and "--template-file" not in call["argv"]


async def test_a_models_reply_limit_applies_unless_the_settings_set_one(
    make_process: MakeProcess, model_dir: Path, tmp_path: Path
) -> None:
    def models() -> list[EngineModel]:
        return [
            replace(m, reply_limit=256) if m.name == "tiny" else m for m in catalog(model_dir)()
        ]

    host = EngineHost(engine_config(), models=models, process=make_process())
    try:
        await host.load("tiny")  # the demo model's kind: a base model that rambles
        await host.load("other")  # no limit of its own
        host.settings = EngineSettings(max_tokens=50)
        await host.load("tiny")  # the user's setting wins
        limits = [c["argv"][c["argv"].index("--max-tokens") + 1] for c in recorded(tmp_path)]
        assert limits == ["256", "0", "50"]
    finally:
        await host.aclose()


async def test_deleting_the_running_model_stops_the_engine_first(
    make_process: MakeProcess, tmp_path: Path
) -> None:
    folder = tmp_path / "gguf"
    write_gguf(folder / "small.gguf")
    catalog = EngineCatalog(ModelsFolder(folder), demo=False)
    host = EngineHost(engine_config(), catalog=catalog, process=make_process())
    statuses: list[EngineStatus] = []
    host.changed.connect(statuses.append)
    try:
        await host.load("small")
        pid = host.process.pid
        assert pid is not None
        await host.delete("small")
        assert gone(pid) and not host.process.running
        assert statuses[-1] == EngineStatus("idle")  # said, so the fleet shows it at once
        assert not (folder / "small.gguf").exists() and await host.list_models() == []
    finally:
        await host.aclose()


async def test_loading_another_model_stops_the_first(host: EngineHost, tmp_path: Path) -> None:
    await host.load("tiny")
    first = host.process.pid
    assert first is not None
    await host.load("other")
    assert gone(first)
    assert host.process.pid not in (None, first)
    assert [r.name for r in await host.running_models()] == ["other"]
    first_key, second_key = (c["key"] for c in recorded(tmp_path))
    assert first_key != second_key  # a new key for each start


async def test_unload_stops_the_child_and_gives_its_memory_back(host: EngineHost) -> None:
    await host.load("tiny")
    pid = host.process.pid
    assert pid is not None
    await host.unload("other")  # not the running model: nothing happens
    assert host.process.pid == pid
    await host.unload("tiny")

    assert gone(pid)
    assert pid not in [c.pid for c in psutil.Process().children(recursive=True)]
    assert host.process.returncode == 0  # it exited on SIGTERM
    assert host.status == EngineStatus("idle")
    assert await host.running_models() == []
    health = await host.health()
    assert health.online and health.version == IDLE_TEXT
    await host.unload("tiny")  # nothing runs: nothing to do


async def test_chat_loads_the_model_on_demand(host: EngineHost) -> None:
    chunks = [c async for c in host.chat(request("other"))]
    assert "".join(c.text for c in chunks if isinstance(c, ContentChunk)) == REPLY
    final = chunks[-1]
    assert isinstance(final, FinalChunk) and final.stats.load_ms and final.stats.load_ms > 0
    assert host.loaded_model == "other"


async def test_an_unknown_model_is_refused_and_nothing_starts(host: EngineHost) -> None:
    with pytest.raises(ModelNotFound, match="no model named 'nope'"):
        await host.load("nope")
    with pytest.raises(InvalidInput):
        await host.load("  ")
    assert host.process.pid is None and host.status.state == "idle"


async def test_a_killed_engine_is_offline_with_the_reason_until_load(host: EngineHost) -> None:
    seen: list[EngineStatus] = []
    await host.load("tiny")
    host.changed.connect(seen.append)
    pid = host.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    health = await wait_for_async(
        lambda: _offline(host), timeout=5.0, message="the host to go offline"
    )
    assert "stopped unexpectedly (exit code -9)" in (health.error or "")
    assert "listening on http://127.0.0.1:" in (health.error or "")  # its last lines
    assert [s.state for s in seen] == ["crashed"]
    assert await host.running_models() == []
    with pytest.raises(EngineError, match="stopped unexpectedly"):
        await host.version()
    assert any("listening on" in line for line in host.process.stderr_tail(2))

    await host.load("tiny")  # Load starts it again
    health = await host.health()
    assert health.online and host.status.state == "running" and host.process.pid != pid


@contextlib.asynccontextmanager
async def engine_fleet(
    make_process: MakeProcess, model_dir: Path, tmp_path: Path, policy: HealthPolicy
) -> AsyncIterator[tuple[HostRegistry, HealthMonitor]]:
    """A registry holding only the engine host (its child the stand-in) and a health
    monitor on it; both closed at the end."""

    def factory(config: Any, settings: Settings) -> Any:
        if config.id == ENGINE_ID:
            return EngineHost(config, models=catalog(model_dir), process=make_process())
        return default_host_factory(config, settings)

    registry = engine_registry(tmp_path / "s.json", model_dir, host_factory=factory)
    assert [c.id for c in registry.hosts()] == [ENGINE_ID]
    monitor = HealthMonitor(registry, policy)
    monitor.start()
    try:
        yield registry, monitor
    finally:
        await monitor.aclose()
        await registry.aclose()


async def _offline(host: EngineHost) -> Any:
    health = await host.health()
    return health if not health.online else None


async def test_the_fleet_shows_the_engine_online_then_offline_with_the_reason(
    make_process: MakeProcess, model_dir: Path, tmp_path: Path
) -> None:
    policy = HealthPolicy(interval_s=0.1, jitter=0.0, backoff_max_s=0.2)
    async with engine_fleet(make_process, model_dir, tmp_path, policy) as (registry, monitor):
        await wait_for(lambda: monitor.status(ENGINE_ID).state is HostState.ONLINE)
        assert monitor.status(ENGINE_ID).version == IDLE_TEXT
        host = registry.host(ENGINE_ID)
        assert isinstance(host, EngineHost)
        await host.load("tiny")
        await wait_for(lambda: monitor.loaded(ENGINE_ID) == {"tiny"})
        assert monitor.status(ENGINE_ID).state is HostState.ONLINE

        pid = host.process.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: monitor.status(ENGINE_ID).state is HostState.OFFLINE, timeout=5.0)
        assert "stopped unexpectedly" in monitor.status(ENGINE_ID).reason

        await host.load("tiny")
        await wait_for(lambda: monitor.status(ENGINE_ID).state is HostState.ONLINE, timeout=5.0)
        await wait_for(lambda: monitor.loaded(ENGINE_ID) == {"tiny"})
    assert not psutil.Process().children(recursive=True)  # closing the registry stopped it


async def test_the_fleet_sees_the_engines_changes_without_waiting_for_its_interval(
    make_process: MakeProcess, model_dir: Path, tmp_path: Path
) -> None:
    # an hour between probes: only the engine's own announcements can show its changes
    policy = HealthPolicy(interval_s=3600.0, jitter=0.0)
    async with engine_fleet(make_process, model_dir, tmp_path, policy) as (registry, monitor):
        await wait_for(lambda: monitor.status(ENGINE_ID).state is HostState.ONLINE)
        host = registry.host(ENGINE_ID)
        assert isinstance(host, EngineHost)
        await host.load("tiny")
        await wait_for(lambda: monitor.loaded(ENGINE_ID) == {"tiny"}, timeout=5.0)
        pid = host.process.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: monitor.status(ENGINE_ID).state is HostState.OFFLINE, timeout=5.0)
        await host.load("tiny")
        await wait_for(lambda: monitor.status(ENGINE_ID).state is HostState.ONLINE, timeout=5.0)
        await host.unload("tiny")
        await wait_for(lambda: monitor.loaded(ENGINE_ID) == frozenset(), timeout=5.0)


# --------------------------------------------------------------------------- the process


async def test_stop_kills_a_child_that_ignores_sigterm(make_process: MakeProcess) -> None:
    process = make_process("ignore-term", stop_timeout=0.5)
    exits: list[EngineExit] = []
    process.exited.connect(exits.append)
    await process.start(Path("tiny.gguf"), "tiny")
    pid = process.pid
    assert pid is not None
    await process.stop()
    assert gone(pid) and not process.running
    assert process.returncode == -signal.SIGKILL
    assert exits == [EngineExit(pid, -signal.SIGKILL, expected=True)]
    assert process.crash == ""  # asked to stop: not a crash


async def test_a_failed_load_says_why_in_the_engines_words(
    make_process: MakeProcess, caplog: pytest.LogCaptureFixture
) -> None:
    process = make_process("fail")
    with (
        caplog.at_level(logging.INFO, logger="app.core.engine.process"),
        pytest.raises(EngineError) as caught,
    ):
        await process.start(Path("/models/broken.gguf"), "broken")
    # llama.cpp's error line reaches the log (and the Log dock) at the default level
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("failed to load model '/models/broken.gguf'" in m for m in warned), warned
    assert not any("loading model" in m for m in warned)  # its ordinary lines stay below
    message = caught.value.message
    assert message.startswith("The built-in engine could not load broken:")
    assert "llama.cpp could not load broken.gguf" in message
    assert "failed to load model '/models/broken.gguf'" in message
    assert not process.running and process.returncode == 1 and process.crash == ""


async def test_a_failed_load_leaves_the_host_idle(
    make_process: MakeProcess, model_dir: Path
) -> None:
    host = EngineHost(engine_config(), models=catalog(model_dir), process=make_process("fail"))
    try:
        with pytest.raises(EngineError) as caught:
            await host.load("tiny")
        assert caught.value.host == ENGINE_NAME
        health = await host.health()
        assert health.online and health.version == IDLE_TEXT
        assert host.status == EngineStatus("idle")
    finally:
        await host.aclose()


async def test_a_load_that_takes_too_long_is_stopped(make_process: MakeProcess) -> None:
    process = make_process("hang", load_timeout=1.0)
    children_before = {c.pid for c in psutil.Process().children()}
    with pytest.raises(HostTimeout, match="did not load slow within 1 s"):
        await process.start(Path("slow.gguf"), "slow")
    assert not process.running
    assert process.returncode == -signal.SIGKILL  # it ignored SIGTERM, so it was killed
    assert {c.pid for c in psutil.Process().children()} <= children_before


async def test_the_log_keeps_the_last_200_lines(make_process: MakeProcess) -> None:
    process = make_process("chatty")
    try:
        await process.start(Path("tiny.gguf"), "tiny")
        await wait_for(lambda: any("listening on" in line for line in process.stderr_tail()))
        tail = process.stderr_tail()
        assert len(tail) == 200
        assert "not the ready line" in tail  # other stdout lines are kept with the log
        chatter = [line for line in tail if "chatter" in line]
        assert chatter[-1].endswith("chatter: line 499")
        assert chatter[0].endswith(f"chatter: line {500 - len(chatter)}")  # the oldest went
        assert process.stderr_tail(2) == tail[-2:]
    finally:
        await process.stop()


async def test_a_second_start_is_refused_while_one_runs(make_process: MakeProcess) -> None:
    process = make_process()
    try:
        await process.start(Path("tiny.gguf"), "tiny")
        with pytest.raises(InvalidInput, match="already runs"):
            await process.start(Path("tiny.gguf"), "tiny")
    finally:
        await process.stop()


# --------------------------------------------------------------------------- registry


def make_registry(tmp_path: Path, env: dict[str, str] | None = None) -> HostRegistry:
    env = {"CORRAL_ENGINE": "1"} if env is None else env
    return HostRegistry(SettingsStore(tmp_path / "s.json"), SecretStore(MemoryKeyring()), env=env)


async def test_the_registry_lists_the_engine_when_it_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.core.hosts.registry.engine_installed", lambda: True)
    registry = make_registry(tmp_path)
    try:
        config = registry.get(ENGINE_ID)
        assert (config.name, config.url, config.kind) == (
            ENGINE_NAME,
            ENGINE_URL,
            HostKind.LLAMACPP,
        )
        user = registry.add("http://127.0.0.9:11434", "Box")
        # last, after the user's hosts: they are picked before it
        assert [c.id for c in registry.hosts()] == ["local", user.id, ENGINE_ID]
        host = registry.host(ENGINE_ID)
        assert isinstance(host, EngineHost)
        health = await host.health()  # nothing is reached over the network for it
        assert health.online and health.version == IDLE_TEXT

        registry.remove(ENGINE_ID)  # hidden like the other built-in hosts
        assert ENGINE_ID not in [c.id for c in registry.hosts()]
        assert ENGINE_ID in make_registry(tmp_path).settings.hidden_hosts  # and it stays so
        registry.restore_builtin_hosts()
        assert ENGINE_ID in [c.id for c in registry.hosts()]
    finally:
        await registry.aclose()


def test_the_registry_leaves_the_engine_out_when_not_installed_or_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.core.hosts.registry.engine_installed", lambda: False)
    assert ENGINE_ID not in [c.id for c in make_registry(tmp_path).hosts()]
    monkeypatch.setattr("app.core.hosts.registry.engine_installed", lambda: True)
    assert ENGINE_ID not in [c.id for c in make_registry(tmp_path, {"CORRAL_ENGINE": "0"}).hosts()]
    # an environment given for a test lists it only when asked to
    assert ENGINE_ID not in [c.id for c in make_registry(tmp_path, {}).hosts()]
    # the app's registry reads this process's environment: listed unless turned off
    monkeypatch.delenv("CORRAL_ENGINE", raising=False)
    app_registry = HostRegistry(SettingsStore(tmp_path / "s.json"), SecretStore(MemoryKeyring()))
    assert ENGINE_ID in [c.id for c in app_registry.hosts()]
    monkeypatch.setenv("CORRAL_ENGINE", "off")
    app_registry = HostRegistry(SettingsStore(tmp_path / "s.json"), SecretStore(MemoryKeyring()))
    assert ENGINE_ID not in [c.id for c in app_registry.hosts()]


def test_engine_settings_refuse_negative_numbers() -> None:
    with pytest.raises(InvalidInput):
        EngineSettings(ctx=-1)


# --------------------------------------------------------------------------- server, templates


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--host", "0.0.0.0"], "loopback addresses only"),
        (["--host", "not-an-address"], "loopback addresses only"),
        (["--port", "70000"], "not a port number"),
        (["--ctx", "-5"], "must not be negative"),
        ([], "there is no model file at /no/such.gguf"),
    ],
)
def test_the_server_refuses_bad_arguments_before_loading_anything(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = server_main(["--model", "/no/such.gguf", "--alias", "x", *argv])
    out = capsys.readouterr().out
    assert status == 2
    assert said in json.loads(out.splitlines()[-1])["error"]


def test_templates_cover_the_common_architectures() -> None:
    assert template_for("gemma3") == template_for("gemma2") == template_for("gemma")
    assert template_for("gemma3") == GEMMA3_TEMPLATE
    assert template_for("Qwen3") == template_for("qwen2") == CHATML_TEMPLATE
    assert template_for("llama3") == LLAMA3_TEMPLATE
    assert template_for("phi3") == PHI3_TEMPLATE
    assert template_for("mistral") == MISTRAL_TEMPLATE
    assert template_for("bert") is None
