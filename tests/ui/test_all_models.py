"""The "All models" tab: models merged across every reachable host, actions per host."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QMessageBox, QPushButton

from app.core.hosts.base import HostConfig, HostKind
from app.core.hosts.registry import HostRegistry
from app.ui.host_chooser import HostChooserDialog
from app.ui.item_models import AllModelsModel
from app.ui.main_window import MainWindow
from app.ui.pull_dialog import PullDialog
from tests.fakes.ollama import FakeOllama
from tests.support.waiting import wait_for
from tests.ui.conftest import OpenAIFactory, WindowOpener
from tests.ui.helpers import all_models_cell, host_state

LLAMA = "llama3.2:latest"


def _copies(window: MainWindow, name: str) -> dict[str, bool]:
    """host name -> loaded, for one model of the all-models view."""
    merged = window.all_models.model.get(name)
    return {c.host.name: c.loaded for c in merged.copies} if merged else {}


def _two_boxes(
    registry: HostRegistry, fakes: Callable[..., FakeOllama]
) -> tuple[FakeOllama, FakeOllama, HostConfig, HostConfig]:
    big = fakes("127.0.0.2")  # all four default models
    small = fakes("127.0.0.3", models=["llama3.2", "qwen3:0.6b"])
    big.load("llama3.2")
    registry.remove("local")
    a = registry.add(big.url, "Workstation")
    b = registry.add(small.url, "Basement")
    return big, small, a, b


async def test_all_models_merges_hosts_and_shows_where_a_model_is_loaded(
    open_window: WindowOpener, registry: HostRegistry, fakes: Callable[..., FakeOllama]
) -> None:
    big, small, a, b = _two_boxes(registry, fakes)
    async with open_window(registry) as window:
        await wait_for(lambda: host_state(window, a.id) == "online")
        await wait_for(lambda: host_state(window, b.id) == "online")
        window.show_all_models()
        await wait_for(lambda: len(_copies(window, LLAMA)) == 2)

        col = AllModelsModel
        assert all_models_cell(window, LLAMA, None, col.HOSTS) == "2"
        assert all_models_cell(window, LLAMA, None, col.LOADED) == "on Workstation"
        assert all_models_cell(window, LLAMA, a.id, col.NAME) == "Workstation"
        assert all_models_cell(window, LLAMA, a.id, col.LOADED) == "yes"
        assert all_models_cell(window, LLAMA, a.id, col.MEMORY) == "100% GPU"
        assert all_models_cell(window, LLAMA, b.id, col.NAME) == "Basement"
        assert all_models_cell(window, LLAMA, b.id, col.LOADED) == "no"
        assert all_models_cell(window, LLAMA, b.id, col.MEMORY) == "—"
        assert all_models_cell(window, LLAMA, b.id, col.SIZE) == "2.0 GB"
        assert all_models_cell(window, "llava:7b", None, col.HOSTS) == "1"
        assert all_models_cell(window, "llava:7b", None, col.LOADED) == "no"
        assert "4 models on 2 reachable hosts, 1 loaded" in window.all_models.status.text()

        # Load acts on the host of the selected child row
        panel = window.all_models
        assert panel.select(LLAMA, b.id)
        assert panel.load_button.isEnabled()
        assert not panel.unload_button.isEnabled()
        panel.load_button.click()
        await wait_for(lambda: _copies(window, LLAMA) == {"Workstation": True, "Basement": True})
        assert small.loaded_names() == [LLAMA]
        assert all_models_cell(window, LLAMA, None, col.LOADED) == "on Workstation, Basement"
        assert panel.selected_copy() is not None
        assert panel.selected_copy().host.id == b.id  # the selection stays on the row

        # Unload on the other host's row
        assert panel.select(LLAMA, a.id)
        await wait_for(lambda: panel.unload_button.isEnabled())
        panel.unload_button.click()
        await wait_for(lambda: _copies(window, LLAMA) == {"Workstation": False, "Basement": True})
        assert big.loaded_names() == []

        # a model row (no host) offers no load or delete, only "Pull to…"
        assert panel.select(LLAMA)
        assert not panel.load_button.isEnabled()
        assert not panel.delete_button.isEnabled()


async def test_pull_to_another_host_and_delete_from_one(
    open_window: WindowOpener,
    registry: HostRegistry,
    fakes: Callable[..., FakeOllama],
    openai_fakes: OpenAIFactory,
) -> None:
    big, small, a, b = _two_boxes(registry, fakes)
    vllm = openai_fakes("127.0.0.4", flavor="vllm")
    c = registry.add(vllm.url, "Serving box", kind=HostKind.VLLM)
    async with open_window(registry) as window:
        for config in (a, b, c):
            await wait_for(lambda cfg=config: host_state(window, cfg.id) == "online")
        window.show_all_models()
        panel = window.all_models
        await wait_for(lambda: _copies(window, "llava:7b"))
        await wait_for(lambda: _copies(window, vllm.models[0]))

        # the vLLM host's model is listed; actions it cannot do are disabled with the reason
        assert panel.select(vllm.models[0], c.id)
        assert not panel.load_button.isEnabled()
        assert "restart it" in panel.load_button.toolTip()
        assert not panel.delete_button.isEnabled()
        assert "Ollama hosts only" in panel.delete_button.toolTip()

        # Pull to…: only reachable hosts that can pull and lack the model are offered
        assert panel.select("llava:7b", a.id)
        assert panel.pull_button.isEnabled()
        chooser = window.choose_pull_target()
        assert isinstance(chooser, HostChooserDialog) and chooser.isVisible()
        assert [h.id for h in chooser.hosts] == [b.id]
        chooser.ok_button.click()
        dialog = await wait_for(lambda: window.findChild(PullDialog, "pullDialog"))
        assert dialog.model_edit.text() == "llava:7b"
        await wait_for(lambda: dialog.state == "done", timeout=10)
        assert "llava:7b" in small.installed
        await wait_for(
            lambda: _copies(window, "llava:7b") == {"Workstation": False, "Basement": False}
        )
        dialog.close_button.click()

        # a model every Ollama host has: nowhere to pull it
        assert panel.select(LLAMA, a.id)
        assert not panel.pull_button.isEnabled()
        assert "No other reachable host" in panel.pull_button.toolTip()

        # Delete… asks, then removes the model from that host only
        assert panel.select("llava:7b", b.id)
        assert panel.delete_button.isEnabled()
        panel.delete_button.click()
        box = await wait_for(lambda: window.findChild(QMessageBox, "confirmDelete"))
        assert "Basement" in box.text()
        box.findChild(QPushButton, "confirmDeleteAccept").click()
        await wait_for(lambda: _copies(window, "llava:7b") == {"Workstation": False})
        assert "llava:7b" not in small.installed
        assert "llava:7b" in big.installed


async def test_all_models_follows_a_host_going_offline(
    open_window: WindowOpener, registry: HostRegistry, fakes: Callable[..., FakeOllama]
) -> None:
    _big, small, _a, b = _two_boxes(registry, fakes)
    async with open_window(registry) as window:
        window.show_all_models()
        await wait_for(lambda: len(_copies(window, LLAMA)) == 2)
        small.stop()
        await wait_for(lambda: host_state(window, b.id) == "offline")
        await wait_for(lambda: list(_copies(window, LLAMA)) == ["Workstation"])
        assert "on 1 reachable host" in window.all_models.status.text()
