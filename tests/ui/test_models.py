"""The models of the selected host: load, unload, delete, details."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QPushButton

from app.core.hosts.registry import HostRegistry
from app.ui.details_dialog import ModelDetailsDialog
from app.ui.item_models import ModelTableModel
from app.ui.main_window import MainWindow
from tests.fakes.ollama import FakeOllama
from tests.support.waiting import wait_for
from tests.ui.conftest import WindowOpener
from tests.ui.helpers import model_cell, model_names


async def _ready(window: MainWindow, model: str) -> None:
    """Wait until the fake's models are listed, then select ``model``."""
    await wait_for(lambda: model in model_names(window))
    assert window.select_model(model)


async def test_load_and_unload_a_model(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama
) -> None:
    name = "qwen3:0.6b"
    async with open_window(registry_with_fake) as window:
        await _ready(window, name)
        assert window.load_button.isEnabled()
        assert not window.unload_button.isEnabled()

        window.load_button.click()
        assert not window.load_button.isEnabled()  # busy while the load runs
        await wait_for(lambda: model_cell(window, name, ModelTableModel.LOADED) == "yes")
        assert fake.loaded_names() == [name]
        assert model_cell(window, name, ModelTableModel.MEMORY) == "100% GPU"
        assert model_cell(window, name, ModelTableModel.EXPIRES) in ("in 5 min", "in 4 min")
        assert window.selected_model() is not None
        assert window.selected_model().name == name
        await wait_for(lambda: window.unload_button.isEnabled())
        assert not window.load_button.isEnabled()
        assert "1 loaded" in window.models_status.text()

        window.unload_button.click()
        await wait_for(lambda: model_cell(window, name, ModelTableModel.LOADED) == "no")
        assert fake.loaded_names() == []
        assert model_cell(window, name, ModelTableModel.MEMORY) == "—"
        await wait_for(lambda: window.load_button.isEnabled())
        assert not window.unload_button.isEnabled()


async def test_delete_asks_and_removes_the_model(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama
) -> None:
    name = "llava:7b"
    async with open_window(registry_with_fake) as window:
        await _ready(window, name)
        window.delete_button.click()
        box = window.findChild(QMessageBox, "confirmDelete")
        assert box is not None and box.isVisible()
        assert name in box.text()
        box.button(QMessageBox.StandardButton.Cancel).click()
        assert name in fake.installed

        window.delete_button.click()
        await wait_for(lambda: window.findChild(QMessageBox, "confirmDelete"))
        box = window.findChild(QMessageBox, "confirmDelete")
        box.findChild(QPushButton, "confirmDeleteAccept").click()
        await wait_for(lambda: name not in model_names(window))
        assert name not in fake.installed
        assert "llama3.2:latest" in model_names(window)


async def test_details_show_what_the_host_reports(
    open_window: WindowOpener, registry_with_fake: HostRegistry
) -> None:
    async with open_window(registry_with_fake) as window:
        await _ready(window, "llama3.2:latest")
        assert window.details_button.isEnabled()
        window.details_button.click()
        dialog = await wait_for(lambda: window.findChild(ModelDetailsDialog, "modelDetailsDialog"))
        assert dialog.isVisible()
        assert "tools" in dialog.capabilities_label.text()
        assert dialog.context_label.text() == "131,072 tokens"
        assert (
            "LLAMA 3.2 COMMUNITY LICENSE"
            in dialog.findChild(type(dialog.tabs.widget(0)), "detailsLicense").toPlainText()
        )
        assert "temperature" in dialog.tabs.widget(0).toPlainText()
        assert dialog.findChild(type(dialog.tabs.widget(3)), "detailsModelInfo").rowCount() > 3
        dialog.reject()


async def test_an_action_error_reaches_the_banner(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama
) -> None:
    async with open_window(registry_with_fake) as window:
        await _ready(window, "qwen3:0.6b")
        fake.faults.fail_status = 500
        fake.faults.paths = {"/api/generate"}
        window.load_button.click()
        await wait_for(lambda: "fake failure 500" in window.banner.text())
        assert window.banner.level == "error"
        assert "fake failure 500" in window.statusBar().currentMessage()
        assert fake.loaded_names() == []
        await wait_for(lambda: window.load_button.isEnabled())  # no longer busy


async def test_unload_all_asks_then_empties_the_hosts_loaded_models(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama
) -> None:
    fake.load("llama3.2", keep_alive=-1)
    fake.load("qwen3:0.6b")
    async with open_window(registry_with_fake) as window:
        await wait_for(lambda: window.model_model.loaded_names() == sorted(fake.loaded_names()))
        assert len(window.model_model.loaded_names()) == 2
        await wait_for(lambda: window.unload_all_button.isEnabled())
        assert window.unload_all_action.isEnabled()

        # the menu action asks too; Cancel leaves everything loaded
        window.unload_all_action.trigger()
        box = await wait_for(lambda: window.findChild(QMessageBox, "confirmUnloadAll"))
        assert "Fake box" in box.text()
        assert "llama3.2:latest" in box.informativeText()
        box.findChild(QPushButton, "confirmUnloadAllCancel").click()
        await wait_for(lambda: window.findChild(QMessageBox, "confirmUnloadAll") is None)
        assert len(fake.loaded_names()) == 2

        window.unload_all_button.click()
        box = await wait_for(lambda: window.findChild(QMessageBox, "confirmUnloadAll"))
        box.findChild(QPushButton, "confirmUnloadAllAccept").click()
        await wait_for(lambda: fake.loaded_names() == [])
        await wait_for(lambda: window.model_model.loaded_names() == [])
        assert model_cell(window, "llama3.2:latest", ModelTableModel.LOADED) == "no"
        assert "0 loaded" in window.models_status.text()
        await wait_for(lambda: not window.unload_all_button.isEnabled())
        assert "Unloaded every model on Fake box" in window.statusBar().currentMessage()
