"""Pulling a model through the pull dialog: progress, success, cancel, failure."""

from __future__ import annotations

from collections.abc import Callable

from app.core.hosts.registry import HostRegistry
from app.ui.main_window import MainWindow
from app.ui.pull_dialog import PullDialog
from tests.fakes.ollama import FakeOllama
from tests.support.waiting import wait_for
from tests.ui.conftest import WindowOpener
from tests.ui.helpers import model_names


async def _open_pull_dialog(window: MainWindow, qtbot, model: str) -> PullDialog:
    await wait_for(lambda: window.pull_button.isEnabled())  # the host is online
    window.pull_button.click()
    dialog = window.findChild(PullDialog, "pullDialog")
    assert dialog is not None and dialog.isVisible()
    assert not dialog.pull_button.isEnabled()  # no name yet
    qtbot.keyClicks(dialog.model_edit, model)
    assert dialog.pull_button.isEnabled()
    return dialog


async def test_pull_shows_progress_and_the_model_appears(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, qtbot
) -> None:
    async with open_window(registry_with_fake) as window:
        await wait_for(lambda: model_names(window))
        dialog = await _open_pull_dialog(window, qtbot, "tinyllama:latest")
        seen: list[int] = []
        dialog.overall_bar.valueChanged.connect(seen.append)
        dialog.pull_button.click()
        assert dialog.state == "pulling"
        assert not dialog.pull_button.isEnabled()
        assert dialog.cancel_button.isEnabled()

        await wait_for(lambda: dialog.state == "done")
        assert dialog.status_label.text().startswith("Done")
        assert seen == sorted(seen), f"the overall bar went back: {seen}"
        assert seen[-1] == 100
        assert any(0 < v < 100 for v in seen), f"no progress between 0 and 100: {seen}"
        assert len(dialog.layer_bars) == 2  # tinyllama has two layers in the fake catalog
        assert all(bar.value() == bar.maximum() for bar in dialog.layer_bars.values())
        assert dialog.speed_label.text().endswith("MB/s")
        assert not dialog.cancel_button.isEnabled()
        assert "tinyllama:latest" in fake.installed

        await wait_for(lambda: "tinyllama:latest" in model_names(window))
        dialog.close_button.click()
        assert not dialog.isVisible()


async def test_cancel_stops_the_pull(
    open_window: WindowOpener,
    registry: HostRegistry,
    fakes: Callable[..., FakeOllama],
    qtbot,
) -> None:
    slow = fakes("127.0.0.3", pull_steps=40, pull_delay=0.05)
    registry.remove("local")
    registry.add(slow.url, "Slow box")
    async with open_window(registry) as window:
        dialog = await _open_pull_dialog(window, qtbot, "tinyllama:latest")
        dialog.pull_button.click()
        await wait_for(lambda: dialog.overall_bar.value() > 0)
        assert dialog.overall_bar.value() < 100
        dialog.cancel_button.click()
        await wait_for(lambda: dialog.state == "cancelled")
        assert "Cancelled" in dialog.status_label.text()
        assert dialog.pull_button.isEnabled()  # one can pull again
        assert not dialog.cancel_button.isEnabled()
        assert "tinyllama:latest" not in slow.installed
        # the host stopped sending: its download does not finish afterwards
        window.refresh_now()
        await wait_for(lambda: window.model_model.rowCount() > 0)
        assert "tinyllama:latest" not in model_names(window)
        assert "tinyllama:latest" not in slow.installed


async def test_pull_of_an_unknown_model_fails_in_plain_words(
    open_window: WindowOpener, registry_with_fake: HostRegistry, qtbot
) -> None:
    async with open_window(registry_with_fake) as window:
        dialog = await _open_pull_dialog(window, qtbot, "no-such-model:1b")
        dialog.pull_button.click()
        await wait_for(lambda: dialog.state == "failed")
        text = dialog.status_label.text()
        assert "no-such-model:1b" in text
        assert "failed" in text
        assert "Traceback" not in text and "Error(" not in text
        assert dialog.pull_button.isEnabled()
        assert "no-such-model:1b" not in model_names(window)


async def test_closing_the_dialog_stops_a_running_pull(
    open_window: WindowOpener,
    registry: HostRegistry,
    fakes: Callable[..., FakeOllama],
    qtbot,
) -> None:
    slow = fakes("127.0.0.3", pull_steps=40, pull_delay=0.05)
    registry.remove("local")
    registry.add(slow.url, "Slow box")
    async with open_window(registry) as window:
        dialog = await _open_pull_dialog(window, qtbot, "smollm2:135m")
        states: list[str] = []
        dialog.stateChanged.connect(states.append)
        dialog.pull_button.click()
        await wait_for(lambda: dialog.overall_bar.value() > 0)
        dialog.close_button.click()
        await wait_for(lambda: "cancelled" in states)
        assert "smollm2:135m" not in slow.installed
        await wait_for(lambda: not window.pull_dialogs)
