"""Render the README's screenshots: the real window against fake hosts on loopback.

    docs/screenshots.sh                  # under Xvfb with Qt's xcb platform (the usual way)
    QT_QPA_PLATFORM=offscreen .venv/bin/python -m docs.screenshots   # without a display

What is on screen: a fleet of three hosts (a workstation with an RTX 4090 and a model
loaded, a rig in the basement, a slow laptop), a chat in which the model calls an MCP tool
(the in-repo test server over stdio, through the real manager, approved in the chat), the
hardware graphs of the workstation, the MCP servers, the log, and the dialogs.

Writes into docs/: main-window, chat, hardware, mcp, log, all-models, settings, about,
tray, scan and pull (``.png``). Each image is checked after it is written: one that is
mostly a single colour (an empty panel) ends the script with an error.

Nothing outside 127.0.0.0/8 is contacted: the hosts shown at LAN addresses are fakes on
loopback addresses, reached through a host factory (and an identify function for the
discovery service) that swaps the address before any connection is made. The
workstation's hardware figures come from a made-up source that follows what its fake
Ollama does (the VRAM of the loaded model, a burst of GPU work while it answers), with
a quarter of an hour of history before the run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

os.environ["QT_API"] = "pyside6"  # qasync picks its binding from this

import numpy as np
from gguf import LlamaFileType
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QMenu, QWidget

# isort: split
from app import __version__
from app.core.chat import ChatEngine, ChatStore
from app.core.chat.tools import ApprovalRules
from app.core.discovery.service import DiscoveryService
from app.core.engine.demo import DEMO_MODEL_NAME
from app.core.hosts.base import Host, HostConfig, HostKind
from app.core.hosts.engine import ENGINE_ID
from app.core.hosts.health import HealthMonitor, HealthPolicy
from app.core.hosts.identify import Identity, identify_url
from app.core.hosts.registry import HostRegistry, default_host_factory
from app.core.logs import LogSetup, setup_logging
from app.core.mcp.allow import ConfigAllowList
from app.core.mcp.config import McpConfigStore, default_mcp_path
from app.core.mcp.manager import McpManager
from app.core.mcp.types import ServerConfig, ServerState
from app.core.metrics.latency import LatencyBook
from app.core.secrets import SecretStore
from app.core.settings import (
    Settings,
    SettingsStore,
    default_chat_path,
    default_log_dir,
    default_models_dir,
    default_settings_path,
)
from app.core.telemetry.service import (
    SourceKind,
    SourceSpec,
    TelemetryService,
    default_source_factory,
)
from app.core.telemetry.sources import History, TelemetrySource
from app.core.telemetry.store import sample_metrics
from app.core.telemetry.types import (
    GpuProcess,
    GpuSample,
    GpuState,
    HostSample,
    Marker,
    ProcessSample,
)
from app.ui.chat.panel import ChatPanel
from app.ui.chat.tool_card import ToolCallCard
from app.ui.details_dialog import ModelDetailsDialog
from app.ui.event_loop import CorralEventLoop
from app.ui.icons import app_icon
from app.ui.main_window import MainWindow
from app.ui.theme import apply_theme
from tests.fakes.gguf_files import write_gguf
from tests.fakes.ollama import DEFAULT_MODELS, FakeModel, FakeOllama, ToolScriptStep
from tests.fakes.openai_server import FakeOpenAI
from tests.support.memory_keyring import MemoryKeyring
from tests.support.waiting import wait_for

OUT = Path(__file__).resolve().parent
ROOT = OUT.parent
T = TypeVar("T")

GIB = 1 << 30
MIB = 1 << 20

#: A shot whose most common colour covers more than this is taken for an empty panel.
MAX_ONE_COLOUR = 0.90
#: Above this a PNG is too heavy for the README (a warning, not an error).
MAX_BYTES = 400 * 1024

SHOTS = (
    "main-window",
    "chat",
    "hardware",
    "mcp",
    "log",
    "all-models",
    "settings",
    "about",
    "tray",
    "scan",
    "pull",
)

WORKSTATION = "Workstation"
#: What the workstation runs for the chat: big enough to show on its GPU's memory graph.
CHAT_MODEL = "qwen2.5:14b"
BIG_MODEL = FakeModel(
    name=CHAT_MODEL,
    family="qwen2",
    parameter_size="14.8B",
    quantization_level="Q4_K_M",
    size=8988124069,
    capabilities=["completion", "tools"],
    context_length=32768,
)
#: A model both Ollama hosts have (the all-models view shows its two copies).
SHARED_MODEL = "llama3.2:latest"
QUESTION = "Plan a train trip to Bergen for Ana and me, 12 to 16 February. Our dates can move."
TRIP = {
    "destination": "Bergen",
    "dates": {"start": "2027-02-12", "end": "2027-02-16"},
    "travellers": [{"name": "Ana"}, {"name": "Sam"}],
    "mode": "train",
    "flexible": True,
}
ANSWER = """The trip planner has it: **train to Bergen**, 12 to 16 February 2027, for Ana and \
Sam, with flexible dates and no budget set yet.

- Take the morning train from Oslo: the line crosses the Hardangervidda plateau in daylight.
- Book both seats together once tickets open, about 90 days ahead.
- Tell me a budget and I will add hotels near Bryggen."""


# -- the stage: fakes behind LAN addresses ---------------------------------------------------


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


# -- the workstation's hardware ----------------------------------------------------------------


@dataclass(frozen=True)
class Episode:
    """A model on the workstation's GPU from ``start`` to ``end`` (seconds before the run
    began; ``end`` None: still loaded), busy answering during each ``bursts`` span."""

    model: str
    vram: int
    start: float
    end: float | None
    bursts: tuple[tuple[float, float], ...]


#: The quarter of an hour before the run: a small model tried and put away, then the
#: model the chat uses loaded, and a few questions asked of it.
EPISODES = (
    Episode("qwen3:0.6b", 940 * MIB, 760.0, 520.0, ((752, 741), (688, 676), (611, 593))),
    Episode(CHAT_MODEL, 0, 262.0, None, ((255, 243), (187, 171), (118, 109), (52, 44))),
)
HISTORY_S = 900.0
DESKTOP_VRAM = 612 * MIB  # the display server and a browser
VRAM_TOTAL = 24564 * MIB
GPU_NAME = "NVIDIA GeForce RTX 4090"


class StagedWorkstation:
    """A telemetry source for "this computer" as the screenshots show it: one RTX 4090,
    16 cores and 64 GiB of RAM. Live samples follow the workstation's fake Ollama: the
    loaded models' VRAM, and GPU work for a few seconds after each chat request. The
    first sample brings :data:`HISTORY_S` seconds of history along (as an agent's does).
    """

    def __init__(self, fake: FakeOllama, began: float) -> None:
        self.fake = fake
        self.began = began
        self.rng = random.Random(4090)
        self._history_taken = False
        self._chats = 0
        self._busy_until = 0.0
        self._temp = 36.0

    def _model_vram(self) -> int:
        """What the fake's loaded models take on the GPU, as its runner would use it."""
        names = self.fake.loaded_names()
        return int(sum(self.fake.installed[n].size for n in names) * 1.04)

    def _make(self, t: float, model_vram: int, busy: bool, loading: bool) -> HostSample:
        rng = self.rng
        util = rng.uniform(88, 97) if busy else rng.uniform(0, 3)
        if loading:
            util = max(util, rng.uniform(25, 40))
        target = 34.0 + 0.42 * util
        self._temp += (target - self._temp) * 0.08 + rng.uniform(-0.15, 0.15)
        power = 24.0 + 2.95 * util + rng.uniform(-3, 3)
        cpu = rng.uniform(2.5, 7.5) + (9 if busy else 0) + (28 if loading else 0)
        ram = 14.6 * GIB + (0.7 * GIB if model_vram else 0) + rng.uniform(-40, 40) * MIB
        runner = ProcessSample(
            4242,
            "ollama runner",
            cpu_pct=95.0 if busy else 0.4,
            rss=612 * MIB,
            vram=model_vram,
            kind="ollama",
        )
        server = ProcessSample(4102, "ollama serve", cpu_pct=0.6, rss=88 * MIB, kind="ollama")
        processes = (server, runner) if model_vram else (server,)
        gpu = GpuSample(
            index=0,
            name=GPU_NAME,
            utilization_pct=round(util, 1),
            memory_utilization_pct=round(util * 0.6, 1),
            memory_used=DESKTOP_VRAM + model_vram + int(rng.uniform(-6, 6) * MIB),
            memory_total=VRAM_TOTAL,
            temperature_c=round(self._temp),
            power_w=round(power, 1),
            power_limit_w=450.0,
            sm_clock_mhz=2520.0 if busy else 210.0,
            memory_clock_mhz=10501.0 if busy else 405.0,
            fan_pct=30.0 if self._temp < 50 else 30.0 + (self._temp - 50) * 2,
            processes=(GpuProcess(4242, "ollama", model_vram),) if model_vram else (),
        )
        return HostSample(
            t=t,
            cpu_pct=round(cpu, 1),
            ram_used=int(ram),
            ram_total=64 * GIB,
            swap_used=0,
            swap_total=8 * GIB,
            gpus=(gpu,),
            gpu_state=GpuState.OK,
            model_processes=processes if model_vram else (),
            cost_ms=round(rng.uniform(0.9, 1.6), 2),
        )

    async def sample(self) -> HostSample:
        now = time.time()
        chats = sum(1 for r in self.fake.requests if r[1] == "/api/chat")
        if chats > self._chats:
            self._chats = chats
            self._busy_until = now + 3.0
        return self._make(now, self._model_vram(), now < self._busy_until, False)

    def take_history(self) -> History | None:
        if self._history_taken:
            return None
        self._history_taken = True
        live_vram = self._model_vram()
        history: History = {}
        for i in range(int(HISTORY_S), 0, -1):
            ago = float(i)
            vram, busy, loading = 0, False, False
            for episode in EPISODES:
                end = episode.end if episode.end is not None else -1.0
                if end < ago <= episode.start:
                    vram += episode.vram or live_vram
                    loading = loading or episode.start - ago < 4
                    busy = busy or any(b >= ago > e for b, e in episode.bursts)
            sample = self._make(self.began - ago, vram, busy, loading)
            for metric, value in sample_metrics(sample).items():
                history.setdefault(metric, []).append((sample.t, value))
        return history

    def markers(self, host_id: str) -> list[Marker]:
        """The loads and unloads of the history, as the health monitor would have seen them."""
        out = []
        for episode in EPISODES:
            loaded = f"{episode.model} loaded"
            out.append(Marker(self.began - episode.start, host_id, "load", loaded))
            if episode.end is not None:
                unloaded = f"{episode.model} unloaded"
                out.append(Marker(self.began - episode.end, host_id, "unload", unloaded))
        return out

    async def aclose(self) -> None:
        return None


# -- checking the images --------------------------------------------------------------------


@dataclass(frozen=True)
class Shot:
    path: Path
    width: int
    height: int
    size: int
    top_colour: float


class EmptyShot(RuntimeError):
    pass


def top_colour_fraction(image: QImage) -> float:
    """The share of the pixels that have the image's most common colour."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB32)
    pixels = np.frombuffer(rgb.constBits(), dtype=np.uint32, count=rgb.width() * rgb.height())
    _, counts = np.unique(pixels, return_counts=True)
    return float(counts.max()) / float(pixels.size)


def save(pixmap: QPixmap, name: str, shots: list[Shot]) -> None:
    """Write ``docs/<name>.png`` if it shows something (an empty view is not written over
    the last good picture: the run fails instead)."""
    path = OUT / f"{name}.png"
    print(f"screenshots: {path.name}", file=sys.stderr, flush=True)
    image = pixmap.toImage()
    if image.isNull() or image.width() < 50 or image.height() < 50:
        raise EmptyShot(f"{path.name}: nothing was drawn ({image.width()}x{image.height()}).")
    fraction = top_colour_fraction(image)
    if fraction > MAX_ONE_COLOUR:
        raise EmptyShot(
            f"{path.name} would be {fraction:.0%} one colour: the view it shows is empty "
            f"(more than {MAX_ONE_COLOUR:.0%} means nothing real was drawn); not written."
        )
    if not image.save(str(path), quality=0):
        raise EmptyShot(f"{path.name}: could not be written to {path}.")
    shots.append(Shot(path, image.width(), image.height(), path.stat().st_size, fraction))


def grab(widget: QWidget) -> QPixmap:
    """What the widget shows now (after a :func:`settle`)."""
    return widget.grab()


async def settle(seconds: float = 0.3) -> None:
    """Let layouts, timers and repaints that follow a change run before a grab (the Qt
    loop runs them while this waits: no nested event loop under qasync)."""
    await asyncio.sleep(seconds)


async def tray_picture(window: MainWindow, host_id: str) -> QPixmap:
    """The tray's menu with the workstation's submenu and its loaded model's open, on a
    plain backdrop (no tray host runs under Xvfb, so the menus are popped up at a fixed
    place and drawn).

    The tray rebuilds its menu when what it shows changes (a degraded host's reason names
    its latest round trip), so the submenus are opened and drawn in one step, with no
    wait in between."""
    tray = window.tray
    menu = tray.menu
    menu.popup(QPoint(200, 200))  # showing it reads the loaded models again
    await wait_for(lambda: tray.loaded_models(host_id) == [CHAT_MODEL], timeout=15)
    await settle(0.3)
    menus = [menu]
    action = tray.host_entry(host_id)
    while action is not None:
        parent, submenu = menus[-1], action.menu()
        if not isinstance(submenu, QMenu):
            raise EmptyShot("tray.png: the workstation's entry in the tray menu has no submenu.")
        parent.setActiveAction(action)
        place = parent.actionGeometry(action)
        submenu.popup(parent.mapToGlobal(place.topRight()) + QPoint(-2, 0))
        menus.append(submenu)
        models = [a for a in submenu.actions() if a.objectName().startswith("trayModel:")]
        action = models[0] if models and len(menus) == 2 else None
    pictures = [(QRect(m.pos(), m.size()), grab(m)) for m in menus]
    for shown in reversed(menus):
        shown.hide()
    margin = 18
    area = pictures[0][0]
    for rect, _ in pictures[1:]:
        area = area.united(rect)
    area = area.adjusted(-margin, -margin, margin, margin)
    ratio = pictures[0][1].devicePixelRatio()
    picture = QPixmap(area.size() * ratio)
    picture.setDevicePixelRatio(ratio)
    picture.fill(QColor("#4a5a6a"))
    painter = QPainter(picture)
    for rect, pixmap in pictures:
        painter.drawPixmap(rect.topLeft() - area.topLeft(), pixmap)
    painter.end()
    return picture


def _cards(panel: ChatPanel) -> list[ToolCallCard]:
    return [w for w in panel.view.widgets if isinstance(w, ToolCallCard)]


# -- the run --------------------------------------------------------------------------------


def _mcp_config(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "toolbox": {
                        "command": sys.executable,
                        "args": ["-m", "tests.fakes.mcp_server"],
                        "cwd": str(ROOT),
                        "autoApprove": ["echo"],
                    },
                    "time": {"command": sys.executable, "args": ["-m", "mcp_server_time"]},
                }
            },
            indent=2,
        ),
        encoding="utf-8",
    )


async def shoot(shots: list[Shot], log_setup: LogSetup) -> None:
    stage = Stage()
    began = time.time()
    workstation = FakeOllama(host="127.0.0.1", port=0, models=[*DEFAULT_MODELS, BIG_MODEL])
    workstation.start()
    basement = FakeOllama(
        host="127.0.0.3",
        port=0,
        models=["llama3.2", "qwen3:0.6b", "nomic-embed-text"],
        pull_steps=400,
        pull_delay=0.02,
    ).start()
    laptop = FakeOpenAI(host="127.0.0.5", port=0, flavor="lmstudio").start()
    laptop.faults.latency = 0.45  # it answers, but slowly: degraded
    # found by the scan, not in the fleet yet
    spare = _fixed_port(lambda p: FakeOllama(host="127.0.0.6", port=p, models=["smollm2"]).start())
    router = _fixed_port(
        lambda p: FakeOpenAI(host="127.0.0.7", port=p, flavor="llamacpp", router=True).start(),
        first=spare.port + 1,
    )
    fakes: list[FakeOllama | FakeOpenAI] = [workstation, basement, laptop, spare, router]
    workstation.load(CHAT_MODEL, keep_alive="30m")
    stage.redirect = {
        "http://192.168.1.30:11434": basement.url,
        "http://192.168.1.41:1234": laptop.url,
    }
    staged = StagedWorkstation(workstation, began)

    def sources(spec: SourceSpec) -> TelemetrySource:
        return staged if spec.kind is SourceKind.LOCAL else default_source_factory(spec)

    secrets = SecretStore(MemoryKeyring())
    # the built-in engine, on a models folder of the throw-away home: the demo model (from
    # its package) and one small GGUF file
    write_gguf(
        default_models_dir() / "qwen3-0.6b-q4_k_m.gguf",
        architecture="qwen3",
        name="Qwen3 0.6B",
        size_label="0.6B",
        context_length=40960,
        file_type=LlamaFileType.MOSTLY_Q4_K_M,
        megabytes=4,
    )
    registry = HostRegistry(
        SettingsStore(default_settings_path()),
        secrets,
        env={"CORRAL_ENGINE": "1"},
        host_factory=stage.host_factory,
    )
    for builtin in registry.hosts():  # only the stage's hosts and the built-in engine
        if builtin.id != ENGINE_ID:
            registry.remove(builtin.id)
    ws = registry.add(workstation.url, WORKSTATION)
    rig = registry.add("http://192.168.1.30:11434", "Basement rig")
    registry.add("http://192.168.1.41:1234", "Laptop", kind=HostKind.LMSTUDIO)
    registry.save_settings()

    health = HealthMonitor(registry, HealthPolicy(interval_s=1.0, jitter=0.0, slow_ms=300.0))
    discovery = DiscoveryService(
        registry,
        local_ports=(),
        identify_url_fn=stage.identify,
    )
    telemetry = TelemetryService(
        registry, health, interval_s=1.0, window_s=HISTORY_S, source_factory=sources
    )
    latency = LatencyBook()
    latency.attach(health)
    mcp_path = default_mcp_path()
    _mcp_config(mcp_path)
    mcp_store = McpConfigStore(mcp_path, secrets)
    mcp_store.load()
    mcp = McpManager(mcp_store.servers(), oauth_secrets=secrets)
    chat_store = ChatStore(default_chat_path())
    await chat_store.open()
    for title in ("Aurora forecast for Tromsø", "Prometheus alert rules review"):
        old = await chat_store.create_conversation(CHAT_MODEL, title=title)
        await chat_store.add_message(old.id, "user", title)
    engine = ChatEngine(
        registry,
        chat_store,
        health=health,
        latency=latency,
        tools=mcp,
        rules=ApprovalRules(ConfigAllowList(mcp_store)),
    )
    window = MainWindow(
        registry,
        health,
        discovery,
        telemetry=telemetry,
        latency=latency,
        chat=engine,
        mcp=mcp,
        mcp_store=mcp_store,
        log_setup=log_setup,
    )
    window.resize(1600, 960)
    window.move(0, 0)
    window.show()
    window.resizeDocks([window.chat_dock], [560], Qt.Orientation.Horizontal)
    window.splitter.setSizes([470, 570])
    health.start()
    await mcp.start()
    telemetry.start()
    window.start()
    try:
        await _main_and_chat(window, telemetry, staged, workstation, ws.id, shots)
        await _dialogs(window, ws.id, shots)
        await _all_models(window, ws.id, shots)
        await _scan_and_pull(window, rig.id, spare, router, shots)
        await _engine(window, shots)
        await _docks(window, ws.id, mcp, mcp_store, workstation, shots)
    finally:
        await _closing("the window", window.shutdown())
        window.close()
        await _closing("the chat engine", engine.aclose())
        await _closing("the MCP servers", mcp.aclose())
        await _closing("the chat history", chat_store.close())
        await _closing("telemetry", telemetry.aclose())
        latency.detach(health)
        await _closing("discovery", discovery.aclose())
        await _closing("the health monitor", health.aclose())
        await _closing("the hosts", registry.aclose())
        for fake in fakes:
            fake.stop()


async def _closing(what: str, closing: Awaitable[object]) -> None:
    """Close one part, giving up (and saying so) after 15 s."""
    try:
        async with asyncio.timeout(15):
            await closing
    except TimeoutError:
        print(f"screenshots: closing {what} took over 15 s; left behind", file=sys.stderr)


async def _main_and_chat(
    window: MainWindow,
    telemetry: TelemetryService,
    staged: StagedWorkstation,
    workstation: FakeOllama,
    host_id: str,
    shots: list[Shot],
) -> None:
    """The whole window: the fleet, the workstation's models (one loaded), its graphs, and
    a chat in which the model called a tool; then the chat on its own."""
    mcp = window.mcp
    assert mcp is not None
    window.select_host(host_id)
    await wait_for(lambda: window.model_model.loaded_names(), timeout=15)
    await wait_for(lambda: all(r.state != "unknown" for r in window.fleet_model.rows()), 15)
    await wait_for(lambda: telemetry.store.latest(host_id) is not None, timeout=15)
    for marker in staged.markers(host_id):
        telemetry.store.add_marker(marker)
    telemetry.markers_changed.emit(host_id)
    await wait_for(lambda: mcp.status("toolbox").state is ServerState.READY, timeout=30)
    await wait_for(lambda: mcp.status("time").state is ServerState.READY, timeout=30)

    panel = window.chat_panel
    await wait_for(lambda: panel.choose_model(host_id, CHAT_MODEL), timeout=15)
    workstation.faults.token_delay = 0.01
    workstation.tool_script = [ToolScriptStep.call("plan_trip", TRIP), ToolScriptStep.say(ANSWER)]
    panel.composer.setPlainText(QUESTION)
    panel.send()
    found = await wait_for(
        lambda: [c for c in _cards(panel) if c.asking] if panel.pending_approvals() else [],
        timeout=20,
    )
    card = found[-1]
    card.allow_once_button.click()
    await wait_for(lambda: not panel.busy, timeout=30)
    if "Bergen" not in card.result_label.text():
        raise EmptyShot(f"chat: the tool's result is not shown ({card.result_label.text()!r}).")
    replies = [w for w in panel.view.message_widgets() if w.role == "assistant"]
    if not replies or replies[-1].text() != ANSWER:
        raise EmptyShot("chat: the model's final answer is not shown after the tool call.")

    window.select_model(CHAT_MODEL)
    hardware = window.hardware_panel
    hardware.set_window(300.0)
    await wait_for(lambda: len(hardware.marker_lines("gpu_util")) == 3, timeout=15)
    await wait_for(lambda: window.vram_check.isVisible(), timeout=15)
    fast = [r.config.id for r in window.fleet_model.rows() if r.config.name != "Laptop"]
    await wait_for(
        lambda: all((window.health.status(i).rtt_ms or 0) < 50 for i in fast), timeout=15
    )
    await settle(1.2)  # one more sample and redraw of the graphs
    save(grab(window), "main-window", shots)
    save(grab(window.chat_dock), "chat", shots)


async def _dialogs(window: MainWindow, host_id: str, shots: list[Shot]) -> None:
    """Settings, About, and the tray's menu."""
    settings = window.open_settings()
    await settle()
    save(grab(settings), "settings", shots)
    settings.reject()

    about = window.show_about()
    about.resize(780, 250)
    about.table.setCurrentCell(-1, -1)
    about.copy_button.setFocus()
    await settle()
    save(grab(about), "about", shots)
    about.reject()

    save(await tray_picture(window, host_id), "tray", shots)
    await settle(0.1)


async def _all_models(window: MainWindow, host_id: str, shots: list[Shot]) -> None:
    window.show_all_models()
    model = window.all_models.model
    await wait_for(lambda: len(getattr(model.get(SHARED_MODEL), "copies", ())) == 2, timeout=15)
    window.all_models.select(SHARED_MODEL, host_id)
    await settle()
    central = window.centralWidget()
    assert central is not None
    save(grab(central), "all-models", shots)
    window.model_tabs.setCurrentIndex(0)


async def _scan_and_pull(
    window: MainWindow, rig_id: str, spare: FakeOllama, router: FakeOpenAI, shots: list[Shot]
) -> None:
    scan = window.open_scan_dialog()
    assert scan is not None
    scan.targets_edit.setText("127.0.0.0/28")
    scan.ports_edit.setText(f"11434, {spare.port}, {router.port}")
    scan.start_scan()
    await wait_for(lambda: scan.state == "done", timeout=60)
    await settle(0.2)
    save(grab(scan), "scan", shots)
    scan.reject()

    window.select_host(rig_id)
    dialog = window.open_pull_dialog()
    assert dialog is not None
    dialog.model_edit.setText("tinyllama")
    dialog.pull_button.click()
    await wait_for(lambda: dialog.overall_bar.value() >= 35, timeout=30)
    save(grab(dialog), "pull", shots)
    await dialog.cancel_and_wait()
    dialog.reject()


async def _docks(
    window: MainWindow,
    host_id: str,
    mcp: McpManager,
    mcp_store: McpConfigStore,
    workstation: FakeOllama,
    shots: list[Shot],
) -> None:
    """The Hardware, MCP servers and Log docks, tabbed under the fleet: each raised and
    made tall, with the chat closed so that they take the window's width."""
    window.chat_dock.hide()
    window.select_host(host_id)
    window.resize(1320, 960)
    window.resizeDocks([window.hardware_dock], [620], Qt.Orientation.Vertical)
    hardware = window.hardware_panel
    window.hardware_dock.raise_()
    hardware.set_window(900.0)
    await wait_for(lambda: _span(hardware.x_range("cpu")) >= 899, timeout=15)
    await settle(1.2)
    save(grab(window.hardware_dock), "hardware", shots)

    # A server that cannot start, added after the chat: its tools were never offered.
    mcp_store.add(
        ServerConfig("old-notes", command=sys.executable, args=("-c", "import notes_server"))
    )
    await mcp.set_configs(mcp_store.servers())
    await wait_for(lambda: mcp.status("old-notes").state is ServerState.FAILED, timeout=30)
    panel = window.mcp_panel
    assert window.mcp_dock is not None and panel is not None
    window.mcp_dock.raise_()
    window.resizeDocks([window.mcp_dock], [470], Qt.Orientation.Vertical)
    panel.select_server("toolbox")
    panel.tabs.setCurrentIndex(2)
    if not panel.choose_tool("add"):
        raise EmptyShot("mcp: the toolbox server lists no tool called add.")
    panel.arguments_edit.setPlainText('{"a": 2, "b": 40}')
    panel.run_test()
    await wait_for(lambda: "42" in panel.result_view.toPlainText(), timeout=15)
    await settle()
    save(grab(window.mcp_dock), "mcp", shots)

    assert window.log_dock is not None and window.log_panel is not None
    log_panel = window.log_panel
    # The workstation's server is stopped: the window says so, and the log keeps it.
    workstation.stop()
    await wait_for(lambda: not window.health.status(host_id).reachable, timeout=30)
    # On its own (tabbed, the dock is as tall as the graphs need): a log is a few lines.
    log_dock = window.log_dock
    log_dock.setFloating(True)
    log_dock.resize(1200, 250)
    log_dock.raise_()
    await wait_for(lambda: "shown to the user" in log_panel.shown_text(), timeout=15)
    await wait_for(lambda: log_panel.shown_text().count("\n") >= 4, timeout=15)
    await settle()
    save(grab(log_dock), "log", shots)
    log_dock.setFloating(False)


async def _engine(window: MainWindow, shots: list[Shot]) -> None:
    """The built-in engine selected: its models (the demo first) and Add model…; then the
    demo model's Details, with the chat template Corral supplies."""
    if ENGINE_ID not in [c.id for c in window.registry.hosts()]:
        raise EmptyShot("engine: the built-in engine is not installed (pip install '.[engine]').")
    window.chat_dock.hide()
    window.resize(1320, 960)
    window.select_host(ENGINE_ID)
    await wait_for(lambda: window.model_model.row_of(DEMO_MODEL_NAME) >= 0, timeout=15)
    window.select_model(DEMO_MODEL_NAME)
    await wait_for(lambda: window.add_model_button.isVisible(), timeout=15)
    await settle()
    central = window.centralWidget()
    assert central is not None
    save(grab(central), "engine", shots)

    window.show_details()
    dialog = await wait_for(lambda: window.findChild(ModelDetailsDialog), timeout=15)
    await wait_for(lambda: dialog.isVisible(), timeout=15)
    dialog.resize(720, 560)
    await settle()
    save(grab(dialog), "engine-details", shots)
    dialog.close()


def _span(bounds: tuple[float, float]) -> float:
    return bounds[1] - bounds[0] if all(math.isfinite(b) for b in bounds) else 0.0


def choose_platform() -> str:
    """Qt's platform: the one asked for in QT_QPA_PLATFORM, else xcb where there is an X
    display, else offscreen (and it says so)."""
    asked = os.environ.get("QT_QPA_PLATFORM", "")
    if not asked:
        asked = "xcb" if os.environ.get("DISPLAY") else "offscreen"
        if asked == "offscreen":
            print(
                "screenshots: no X display; rendering with Qt's offscreen platform "
                "(docs/screenshots.sh renders under Xvfb instead).",
                file=sys.stderr,
            )
        os.environ["QT_QPA_PLATFORM"] = asked
    return asked


def main() -> int:
    platform = choose_platform()
    with tempfile.TemporaryDirectory(prefix="corral-demo-") as tmp:
        # Settings, chat history, MCP config and log in a throw-away home, as the app
        # would place them on a fresh machine (the Settings dialog shows these paths).
        for name, sub in (
            ("XDG_CONFIG_HOME", ".config"),
            ("XDG_DATA_HOME", ".local/share"),
            ("XDG_STATE_HOME", ".local/state"),
        ):
            os.environ[name] = str(Path(tmp) / sub)
        log_setup = setup_logging("INFO", default_log_dir(), stderr=False)
        app = QApplication(sys.argv[:1])
        app.setApplicationName("Corral")
        app.setApplicationDisplayName("Corral")
        app.setApplicationVersion(__version__)
        app.setDesktopFileName("corral")
        app.setWindowIcon(app_icon())
        app.setQuitOnLastWindowClosed(False)
        apply_theme(app, "system")
        shots: list[Shot] = []
        failure = ""
        with asyncio.Runner(loop_factory=lambda: CorralEventLoop(app)) as runner:
            try:
                runner.run(shoot(shots, log_setup))
            except EmptyShot as exc:
                failure = str(exc)
            except AssertionError as exc:  # wait_for's: a view did not fill in time
                failure = str(exc)
        for handler in log_setup.handlers:  # the log file lives in the throw-away home
            logging.getLogger().removeHandler(handler)
            handler.close()
    print(f"screenshots: rendered with Qt's {platform} platform")
    for shot in shots:
        heavy = "  (over 400 KB: too heavy for the README)" if shot.size > MAX_BYTES else ""
        print(
            f"  docs/{shot.path.name:16} {shot.width}x{shot.height}  {shot.size / 1024:.0f} KB"
            f"  most common colour {shot.top_colour:.0%}{heavy}"
        )
    if failure:
        print(f"screenshots: FAILED: {failure}", file=sys.stderr)
        return 1
    missing = [n for n in SHOTS if n not in {s.path.stem for s in shots}]
    if missing:
        print(f"screenshots: FAILED: not written: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
