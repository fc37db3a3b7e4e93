"""Render the README's screenshots: the real window against fake hosts on loopback.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m docs.screenshots

Writes docs/main-window.png, docs/all-models.png, docs/scan.png, docs/pull.png,
docs/hardware.png, docs/chat.png and docs/mcp.png.
Nothing outside 127.0.0.0/8 is contacted: the hosts shown at LAN addresses are fakes on
loopback addresses, reached through a host factory (and an identify function for the
discovery service) that swaps the address before any connection is made.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["QT_API"] = "pyside6"

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

# isort: split
from app.core.chat import ChatEngine, ChatStore
from app.core.discovery.service import DiscoveryService
from app.core.hosts.base import Host, HostConfig, HostKind
from app.core.hosts.health import HealthMonitor, HealthPolicy
from app.core.hosts.identify import Identity, identify_url
from app.core.hosts.registry import HostRegistry, default_host_factory
from app.core.metrics.latency import LatencyBook
from app.core.secrets import SecretStore
from app.core.settings import Settings, SettingsStore
from app.core.telemetry.service import TelemetryService
from app.ui.event_loop import CorralEventLoop
from app.ui.main_window import MainWindow
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.support.memory_keyring import MemoryKeyring
from tests.support.waiting import wait_for

OUT = Path(__file__).resolve().parent
T = TypeVar("T")


def _fixed_port(start: Callable[[int], T], first: int = 18200) -> T:
    """``start(port)`` on the first port from ``first`` nothing listens on (a scan needs
    ports known in advance)."""
    for port in range(first, first + 100):
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                continue
        try:
            return start(port)
        except OSError:
            continue
    raise RuntimeError("no free port for the scan screenshot")


class Stage:
    """LAN addresses shown in the window, each answered by a fake on loopback."""

    def __init__(self) -> None:
        self.redirect: dict[str, str] = {}

    def to_loopback(self, url: str) -> str:
        return self.redirect.get(url, url)

    def host_factory(self, config: HostConfig, settings: Settings) -> Host:
        # The window reads names and addresses from the registry, not from the host object.
        return default_host_factory(replace(config, url=self.to_loopback(config.url)), settings)

    async def identify(self, base_url: str, **kwargs: Any) -> Identity | None:
        return await identify_url(self.to_loopback(base_url), **kwargs)


async def shoot(app: QApplication) -> None:
    stage = Stage()
    workstation = FakeOllama(host="127.0.0.2", port=0, vram_bytes=3 * 2**30).start()
    basement = FakeOllama(
        host="127.0.0.3",
        port=0,
        models=["llama3.2", "qwen3:0.6b"],
        pull_steps=400,
        pull_delay=0.02,
    ).start()
    serving = FakeOpenAI(host="127.0.0.4", port=0, flavor="vllm").start()
    laptop = FakeOpenAI(host="127.0.0.5", port=0, flavor="lmstudio").start()
    laptop.faults.latency = 0.45  # answers, but slowly: degraded
    gone = FakeOpenAI(host="127.0.0.8", port=0, flavor="llamacpp").start()
    gone.stop()  # nothing answers there any more: offline
    # found by the scan, not in the fleet yet
    spare = _fixed_port(lambda p: FakeOllama(host="127.0.0.6", port=p, models=["smollm2"]).start())
    router = _fixed_port(
        lambda p: FakeOpenAI(host="127.0.0.7", port=p, flavor="llamacpp", router=True).start(),
        first=spare.port + 1,
    )
    fakes: list[FakeOllama | FakeOpenAI] = [workstation, basement, serving, laptop, spare, router]
    workstation.load("llava:7b", keep_alive="10m")
    workstation.load("llama3.2", keep_alive=-1)
    basement.load("qwen3:0.6b")

    stage.redirect = {
        f"http://192.168.1.30:{11434}": basement.url,
        f"http://192.168.1.30:{8000}": serving.url,
        f"http://192.168.1.41:{1234}": laptop.url,
        f"http://192.168.1.52:{8080}": gone.url,
    }
    with tempfile.TemporaryDirectory() as tmp:
        registry = HostRegistry(
            SettingsStore(Path(tmp) / "settings.json"),
            SecretStore(MemoryKeyring()),
            env={},
            host_factory=stage.host_factory,
        )
        registry.remove("local")
        ws = registry.add(workstation.url, "Workstation (RTX 4090)")
        registry.add("http://192.168.1.30:11434", "Basement rig")
        registry.add("http://192.168.1.30:8000", "Serving box", kind=HostKind.VLLM)
        registry.add("http://192.168.1.41:1234", "Laptop", kind=HostKind.LMSTUDIO)
        registry.add("http://192.168.1.52:8080", "Old tower", kind=HostKind.LLAMACPP)
        health = HealthMonitor(registry, HealthPolicy(interval_s=0.5, jitter=0.0, slow_ms=300.0))
        discovery = DiscoveryService(
            registry,
            local_ports=(),
            identify_url_fn=stage.identify,  # type: ignore[arg-type]
        )
        window = MainWindow(registry, health, discovery)
        window.resize(1240, 600)
        window.show()
        health.start()
        window.start()
        window.select_host(ws.id)
        await wait_for(lambda: window.model_model.rowCount() == 4, timeout=10)
        await wait_for(
            lambda: all(r.state != "unknown" for r in window.fleet_model.rows()), timeout=10
        )
        await wait_for(lambda: window.model_model.loaded_names(), timeout=10)
        # The first probes run while the window starts; later ones show the real round trip.
        fast = [r.config.id for r in window.fleet_model.rows() if r.config.name != "Laptop"]
        await wait_for(
            lambda: all((health.status(i).rtt_ms or 0) < 50 for i in fast[:3]), timeout=10
        )
        window.select_model("llava:7b")
        await asyncio.sleep(0.3)
        window.grab().save(str(OUT / "main-window.png"))

        window.show_all_models()
        await wait_for(lambda: window.all_models.model.get("llama3.2:latest"), timeout=10)
        await wait_for(
            lambda: len(window.all_models.model.get("llama3.2:latest").copies) == 2, timeout=10
        )
        window.all_models.select("llama3.2:latest", ws.id)
        await asyncio.sleep(0.3)
        window.grab().save(str(OUT / "all-models.png"))

        scan = window.open_scan_dialog()
        assert scan is not None
        scan.targets_edit.setText("127.0.0.0/28")
        scan.ports_edit.setText(f"11434, {spare.port}, {router.port}")
        scan.start_scan()
        await wait_for(lambda: scan.state == "done", timeout=30)
        await asyncio.sleep(0.2)
        scan.grab().save(str(OUT / "scan.png"))
        scan.reject()

        window.model_tabs.setCurrentIndex(0)
        window.select_host(registry.hosts()[1].id)
        dialog = window.open_pull_dialog()
        assert dialog is not None
        dialog.model_edit.setText("tinyllama")
        dialog.pull_button.click()
        await wait_for(lambda: dialog.overall_bar.value() >= 35, timeout=20)
        dialog.grab().save(str(OUT / "pull.png"))
        await dialog.cancel_and_wait()
        await window.shutdown()
        window.close()
        await discovery.aclose()
        await health.aclose()
        await registry.aclose()
    for fake in fakes:
        fake.stop()
    await shoot_hardware()


async def shoot_hardware() -> None:
    """The Hardware dock on this computer: real CPU / RAM samples, a model load marker."""
    local = FakeOllama(host="127.0.0.1", port=0).start()  # telemetry: this machine's sampler
    with tempfile.TemporaryDirectory() as tmp:
        registry = HostRegistry(
            SettingsStore(Path(tmp) / "settings.json"), SecretStore(MemoryKeyring()), env={}
        )
        registry.remove("local")
        host = registry.add(local.url, "This computer (Ollama)")
        health = HealthMonitor(registry, HealthPolicy(interval_s=0.5, jitter=0.0))
        telemetry = TelemetryService(registry, health, interval_s=0.1, window_s=60.0)
        latency = LatencyBook()
        latency.attach(health)
        window = MainWindow(registry, health, None, telemetry=telemetry, latency=latency)
        window.resize(1240, 820)
        window.show()
        health.start()
        telemetry.start()
        window.start()
        window.select_host(host.id)
        await wait_for(lambda: len(telemetry.store.series(host.id, "cpu_pct")) >= 250, timeout=60)
        local.load("llama3.2")  # seen at the next probe: a "loaded" marker on every plot
        await wait_for(lambda: telemetry.store.markers(host.id), timeout=10)
        await wait_for(lambda: len(telemetry.store.series(host.id, "cpu_pct")) >= 580, timeout=60)
        window.hardware_panel.set_window(60)  # the minute the samples above cover
        await asyncio.sleep(0.5)
        window.grab().save(str(OUT / "hardware.png"))
        await window.shutdown()
        window.close()
        await telemetry.aclose()
        await health.aclose()
        await registry.aclose()
    local.stop()
    await shoot_chat()
    await shoot_mcp()


CHAT_REPLY = """Here is a small function that retries a call with exponential backoff:

```python
import time


def retry(call, attempts=5, base=0.5):
    for n in range(attempts):
        try:
            return call()
        except OSError:
            time.sleep(base * 2**n)
    return call()
```

| attempt | wait before it |
|---|---|
| 2 | 0.5 s |
| 3 | 1 s |
| 4 | 2 s |

Keep the **last** attempt outside the loop so that its error reaches the caller."""


async def shoot_chat() -> None:
    """The Chat dock beside the Hardware dock: a reply with thinking, code and a table."""
    local = FakeOllama(
        host="127.0.0.1",
        port=0,
        chat_reply=CHAT_REPLY,
        thinking_reply="The user wants retries; a loop with a doubling sleep will do.",
    ).start()
    with tempfile.TemporaryDirectory() as tmp:
        registry = HostRegistry(
            SettingsStore(Path(tmp) / "settings.json"), SecretStore(MemoryKeyring()), env={}
        )
        registry.remove("local")
        host = registry.add(local.url, "This computer (Ollama)")
        health = HealthMonitor(registry, HealthPolicy(interval_s=0.5, jitter=0.0))
        telemetry = TelemetryService(registry, health, interval_s=0.1, window_s=60.0)
        latency = LatencyBook()
        latency.attach(health)
        async with ChatStore(Path(tmp) / "chat.db") as store:
            for title in ("Tromsø trip: aurora forecast", "Prometheus alert rules review"):
                old = await store.create_conversation("llama3.2:latest", title=title)
                await store.add_message(old.id, "user", title)
            engine = ChatEngine(registry, store, health=health, latency=latency)
            window = MainWindow(
                registry, health, None, telemetry=telemetry, latency=latency, chat=engine
            )
            window.resize(1500, 900)
            window.show()
            health.start()
            telemetry.start()
            window.start()
            window.select_host(host.id)
            panel = window.chat_panel
            await wait_for(lambda: panel.choose_model(host.id, "qwen3:0.6b"), timeout=20)
            local.faults.token_delay = 0.01
            panel.composer.setPlainText("Write a Python retry helper with backoff.")
            panel.send()
            await wait_for(lambda: not panel.busy and panel.view.widgets, timeout=30)
            await wait_for(lambda: len(telemetry.store.series(host.id, "cpu_pct")) >= 200, 60)
            window.hardware_panel.set_window(60)
            await asyncio.sleep(0.5)
            window.grab().save(str(OUT / "chat.png"))
            await window.shutdown()
            window.close()
            await engine.aclose()
        await telemetry.aclose()
        await health.aclose()
        await registry.aclose()
    local.stop()


async def shoot_mcp() -> None:
    """The MCP servers dock: the in-repo test server running over stdio, a server that
    fails to start, the tools with their hints and the result of a test call."""
    import json

    from app.core.mcp.config import McpConfigStore
    from app.core.mcp.manager import McpManager
    from app.core.mcp.types import ServerState

    local = FakeOllama(host="127.0.0.1", port=0).start()
    root = OUT.parent
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "mcp.json"
        config.write_text(
            json.dumps(
                {
                    "mcpServers": {
                        "toolbox": {
                            "command": sys.executable,
                            "args": ["-m", "tests.fakes.mcp_server"],
                            "cwd": str(root),
                            "autoApprove": ["echo"],
                        },
                        "time": {"command": sys.executable, "args": ["-m", "mcp_server_time"]},
                        "old-notes": {"command": sys.executable, "args": ["-c", "import nope"]},
                    }
                }
            ),
            encoding="utf-8",
        )
        secrets = SecretStore(MemoryKeyring())
        registry = HostRegistry(SettingsStore(Path(tmp) / "settings.json"), secrets, env={})
        registry.remove("local")
        registry.add(local.url, "This computer (Ollama)")
        store = McpConfigStore(config, secrets)
        store.load()
        mcp = McpManager(store.servers())
        health = HealthMonitor(registry, HealthPolicy(interval_s=0.5, jitter=0.0))
        window = MainWindow(registry, health, None, mcp=mcp, mcp_store=store)
        window.resize(1240, 820)
        window.show()
        health.start()
        await mcp.start()
        window.start()
        assert window.mcp_dock is not None and window.mcp_panel is not None
        window.mcp_dock.raise_()
        panel = window.mcp_panel
        await wait_for(lambda: mcp.status("toolbox").state is ServerState.READY, timeout=30)
        await wait_for(lambda: mcp.status("time").state is ServerState.READY, timeout=30)
        await wait_for(lambda: mcp.status("old-notes").state is ServerState.FAILED, timeout=30)
        panel.select_server("toolbox")
        panel.tabs.setCurrentIndex(2)
        assert panel.choose_tool("add")
        panel.arguments_edit.setPlainText('{"a": 2, "b": 40}')
        panel.run_test()
        await wait_for(lambda: "42" in panel.result_view.toPlainText(), timeout=10)
        window.resizeDocks([window.mcp_dock], [520], Qt.Orientation.Vertical)
        await asyncio.sleep(0.3)
        window.grab().save(str(OUT / "mcp.png"))
        await window.shutdown()
        window.close()
        await mcp.aclose()
        await health.aclose()
        await registry.aclose()
    local.stop()


def main() -> int:
    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    with asyncio.Runner(loop_factory=lambda: CorralEventLoop(app)) as runner:
        runner.run(shoot(app))
    shots = ("main-window", "all-models", "scan", "pull", "hardware", "chat", "mcp")
    names = ", ".join(f"docs/{n}.png" for n in shots)
    print(f"wrote {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
