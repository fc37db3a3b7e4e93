"""Fixtures for the widget tests: a qasync loop per test, fake hosts, registry, window.

Every ``async def`` test under tests/ui runs on a qasync loop (the Qt event loop), so that
widgets, timers and httpx all run together as they do in the app. Inside such a test,
wait with :func:`tests.support.waiting.wait_for`, not with ``qtbot.waitUntil``/``waitSignal``
(they spin a nested Qt loop, which qasync refuses while a task runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from PySide6.QtWidgets import QApplication

from app.core.chat import ChatEngine, ChatStore
from app.core.chat.tools import ApprovalRules
from app.core.discovery.service import DiscoveryService
from app.core.hosts.health import HealthMonitor, HealthPolicy
from app.core.hosts.registry import HostRegistry
from app.core.mcp.allow import ConfigAllowList
from app.core.mcp.config import McpConfigStore
from app.core.mcp.manager import McpManager
from app.core.metrics.latency import LatencyBook
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from app.ui.event_loop import CorralEventLoop
from app.ui.main_window import MainWindow
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.support.engine import engine_registry
from tests.support.memory_keyring import MemoryKeyring
from tests.support.waiting import wait_for

HERE = Path(__file__).resolve().parent

#: The offscreen platform warns once when a top-level window is first shown; harmless.
OFFSCREEN_NOISE = r"This plugin does not support propagateSizeHints\(\)"


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    # The app's loop: qasync's QEventLoop with asyncio's async-generator hooks added.
    return {"qasync": lambda: CorralEventLoop(QApplication.instance() or QApplication([]))}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE))


FakeFactory = Callable[..., FakeOllama]


@pytest.fixture
def fakes() -> Iterator[FakeFactory]:
    """Start fake Ollama servers on loopback addresses; all are stopped after the test.

    ``fakes("127.0.0.3", pull_delay=0.2)`` starts one on a free port of that address.
    """
    started: list[FakeOllama] = []

    def start(host: str = "127.0.0.2", **options: Any) -> FakeOllama:
        options.setdefault("pull_steps", 8)
        options.setdefault("pull_delay", 0.005)
        options.setdefault("port", 0)
        fake = FakeOllama(host=host, **options).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


OpenAIFactory = Callable[..., FakeOpenAI]


@pytest.fixture
def openai_fakes() -> Iterator[OpenAIFactory]:
    """Start fake OpenAI-compatible servers on loopback addresses; all are stopped after
    the test. ``openai_fakes("127.0.0.4", flavor="vllm")`` starts one on a free port."""
    started: list[FakeOpenAI] = []

    def start(host: str = "127.0.0.4", **options: Any) -> FakeOpenAI:
        options.setdefault("port", 0)
        fake = FakeOpenAI(host=host, **options).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


T = TypeVar("T")


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def on_fixed_port(start: Callable[[int], T], *, first: int = 18000, last: int = 18100) -> T:
    """Call ``start(port)`` with the first port of ``first..last`` that nothing on this
    machine listens on (127.0.0.1 checked) and that ``start`` can bind; for scans, which
    need ports known in advance."""
    for port in range(first, last + 1):
        if _listening("127.0.0.1", port):
            continue
        try:
            return start(port)
        except OSError:
            continue
    raise AssertionError(f"no free port from {first} to {last}")


@pytest.fixture
def fake(fakes: FakeFactory) -> FakeOllama:
    """One fake Ollama host on 127.0.0.2 with the default models."""
    return fakes("127.0.0.2")


@pytest.fixture
def settings_path(tmp_path: Path) -> Path:
    return tmp_path / "corral-settings.json"


@pytest.fixture
def registry(settings_path: Path, memory_keyring: MemoryKeyring) -> HostRegistry:
    """A registry on a temporary settings file, no OLLAMA_HOST, secrets in memory.

    It holds only the built-in "This computer" host (nothing listens there in tests).
    The refresh interval is short so that tests see status changes quickly.
    """
    reg = HostRegistry(SettingsStore(settings_path), SecretStore(memory_keyring), env={})
    reg.settings.refresh_interval_s = 0.3
    return reg


def engine_registry_at(settings_path: Path, models_dir: Path) -> HostRegistry:
    """A registry that lists the built-in engine (``CORRAL_ENGINE=1``; llama.cpp's server
    must be installed, or ``engine_installed`` patched) on the models folder ``models_dir``
    (never the user's), without the built-in Ollama host; secrets in memory."""
    reg = engine_registry(settings_path, models_dir)
    reg.settings.refresh_interval_s = 0.3
    return reg


@pytest.fixture
def registry_with_fake(registry: HostRegistry, fake: FakeOllama) -> HostRegistry:
    """The registry with only the fake host in it (the built-in host removed)."""
    registry.remove("local")
    registry.add(fake.url, "Fake box")
    return registry


async def _finish_orphans() -> None:
    """Let async generators that were dropped mid-iteration close while the loop runs.

    httpx line iterators left behind by an exception (the ollama client raises from inside
    ``async for line in r.aiter_lines()``) are closed by the loop's async-generator
    finalizer once garbage collection finds them; that close is a task, and it must run
    now, not when pytest-qt processes Qt events after the test with no loop running.
    """
    gc.collect()
    me = asyncio.current_task()
    await wait_for(
        lambda: not [t for t in asyncio.all_tasks() if t is not me],
        timeout=5.0,
        message="background tasks to finish after the window closed",
    )


#: The health policy of the widget tests: probes every 0.3 s, no jitter, short backoff.
TEST_POLICY = HealthPolicy(interval_s=0.3, jitter=0.0, backoff_max_s=0.6, slow_ms=1000.0)


class WindowOpener(Protocol):
    def __call__(
        self,
        registry: HostRegistry,
        *,
        policy: HealthPolicy | None = ...,
        discovery: DiscoveryService | None = ...,
        telemetry: Any = ...,
        latency: LatencyBook | None = ...,
        make_telemetry: Callable[[HostRegistry, HealthMonitor], Any] | None = ...,
        chat_db: Path | None = ...,
        mcp_config: Path | None = ...,
        log_setup: Any = ...,
    ) -> AbstractAsyncContextManager[MainWindow]: ...


@pytest.fixture
def open_window(qtbot: Any) -> WindowOpener:
    """``async with open_window(registry) as window:`` shows and starts a MainWindow.

    As the app does, it builds a health monitor for the registry (``policy``, by default
    :data:`TEST_POLICY`) and a discovery service (``discovery``, by default one that
    looks at no port of this machine, so that what runs on the developer's machine does
    not show up), starts them with the window and closes them after it.
    ``chat_db`` (a path) gives the window a chat engine on a store in that file;
    ``mcp_config`` (an MCP config file) an MCP manager on its servers, whose tools the chat
    offers (the allow list kept in that file). ``log_setup`` (from
    ``app.core.logs.setup_logging``) gives it a Log dock.
    ``telemetry`` (a telemetry service, or ``make_telemetry(registry, monitor)`` to build
    one on the monitor) and ``latency`` (a :class:`LatencyBook`, attached to the monitor)
    are handed to the window, started with it and closed after it.

    The window lives inside the test coroutine: pytest-qt processes Qt events between
    setup, call and teardown while no asyncio loop runs, so a window whose timer and
    tasks outlived the test would run them outside the loop. On leaving the block the
    window's tasks are cancelled and awaited, the services closed and the registry's
    hosts closed.
    """

    @contextlib.asynccontextmanager
    async def open_(
        reg: HostRegistry,
        *,
        policy: HealthPolicy | None = None,
        discovery: DiscoveryService | None = None,
        telemetry: Any = None,
        latency: LatencyBook | None = None,
        make_telemetry: Callable[[HostRegistry, HealthMonitor], Any] | None = None,
        chat_db: Path | None = None,
        mcp_config: Path | None = None,
        log_setup: Any = None,
    ) -> AsyncIterator[MainWindow]:
        health = HealthMonitor(reg, policy or TEST_POLICY)
        store: ChatStore | None = None
        engine: ChatEngine | None = None
        mcp: McpManager | None = None
        mcp_store: McpConfigStore | None = None
        if mcp_config is not None:
            mcp_store = McpConfigStore(mcp_config, reg.secrets)
            mcp_store.load()
            mcp = McpManager(
                mcp_store.servers(),
                call_timeout_s=5.0,
                backoff_initial_s=0.2,
                oauth_secrets=reg.secrets,
            )
        if chat_db is not None:
            store = ChatStore(chat_db)
            await store.open()
            engine = ChatEngine(
                reg,
                store,
                health=health,
                latency=latency,
                tools=mcp,
                rules=ApprovalRules(ConfigAllowList(mcp_store)) if mcp_store else None,
            )
        if discovery is None:
            discovery = DiscoveryService(reg, ports=reg.settings.scan_ports, local_ports=())
        if latency is not None:
            latency.attach(health)
        if make_telemetry is not None:
            telemetry = make_telemetry(reg, health)
        window = MainWindow(
            reg,
            health,
            discovery,
            telemetry=telemetry,
            latency=latency,
            chat=engine,
            mcp=mcp,
            mcp_store=mcp_store,
            log_setup=log_setup,
        )
        qtbot.addWidget(window)
        window.show()
        health.start()
        if mcp is not None:
            await mcp.start()
        if telemetry is not None:
            telemetry.start()
        window.start()
        try:
            yield window
        finally:
            await window.shutdown()
            if engine is not None:
                await engine.aclose()
            if mcp is not None:
                await mcp.aclose()
            if store is not None:
                await store.close()
            if telemetry is not None:
                await telemetry.aclose()
            if latency is not None:
                latency.detach(health)
            await discovery.aclose()
            await health.aclose()
            await reg.aclose()
            await _finish_orphans()

    return open_
