"""Getting model files into the built-in engine from the window: Add model… (import a
GGUF file, copied or linked; download one from a URL; open the models folder), GGUF files
dropped onto the fleet, the progress dialog with Cancel, and the notes in Details.

Real files in a temporary models folder, a real HTTP file server on 127.0.0.1; the file
chooser is the real (non-native) dialog, given its choice as a user would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox, QPushButton

from app.core.hosts.base import ModelDetail
from app.core.hosts.engine import ENGINE_ID
from app.core.hosts.registry import HostRegistry
from app.ui import engine_models
from app.ui.details_dialog import ModelDetailsDialog
from app.ui.engine_models import NOT_INSTALLED, PAUSED, TransferDialog
from app.ui.formatting import human_size
from app.ui.main_window import MainWindow
from tests.fakes.file_server import FileServer
from tests.fakes.gguf_files import sha256_of, write_gguf
from tests.support.memory_keyring import MemoryKeyring
from tests.support.waiting import wait_for
from tests.ui.conftest import OFFSCREEN_NOISE, WindowOpener, engine_registry_at
from tests.ui.helpers import host_state, model_names


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def engine_registry(
    settings_path: Path,
    memory_keyring: MemoryKeyring,
    models_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> HostRegistry:
    """A registry that lists only the built-in engine, on a models folder of the test's."""
    monkeypatch.setattr("app.core.hosts.registry.engine_installed", lambda: True)
    registry = engine_registry_at(settings_path, models_dir)
    assert [c.id for c in registry.hosts()] == [ENGINE_ID]
    return registry


@pytest.fixture
def server() -> Any:
    with FileServer("127.0.0.1") as srv:
        yield srv


async def _engine_shown(window: MainWindow) -> None:
    await wait_for(lambda: window.current_host_id() == ENGINE_ID)
    await wait_for(lambda: host_state(window, ENGINE_ID) == "online")
    await wait_for(lambda: window.add_model_button.isVisible())


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def _drag(window: MainWindow, mime: QMimeData, kind: str) -> QDropEvent:
    """Send a drag-enter (``kind`` "enter") or a drop ("drop") of ``mime`` to the fleet,
    as Qt delivers them; return the event to see whether it was accepted."""
    point = QPoint(20, 20)
    actions = Qt.DropAction.CopyAction | Qt.DropAction.LinkAction
    button, keys = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    event = (
        QDragEnterEvent(point, actions, mime, button, keys)
        if kind == "enter"
        else QDropEvent(QPointF(point), actions, mime, button, keys)
    )
    QApplication.sendEvent(window.fleet_view.viewport(), event)
    return event


async def _answer(window: MainWindow, button: str) -> None:
    """Press ``button`` of the copy-or-link question."""
    box = await wait_for(lambda: window.engine_models.mode_box)
    assert box.isVisible()
    choice = box.findChild(QPushButton, button)
    assert choice is not None, button
    choice.click()


async def _transfer(window: MainWindow, count: int = 1) -> TransferDialog:
    return await wait_for(
        lambda: len(window.engine_models.dialogs) >= count and window.engine_models.dialogs[-1]
    )


def _held_file(server: FileServer, tmp_path: Path, name: str, *, seed: int) -> str:
    """Serve a 3 MB GGUF file that stops after 1.5 MB until ``server.release()``; its URL."""
    src = write_gguf(tmp_path / "src" / f"{name}.gguf", megabytes=3, seed=seed)
    url: str = server.serve(f"/{name}.gguf", src.read_bytes())
    server.hold_after = 1_500_000
    return url


async def _download_under_way(window: MainWindow, url: str, part: Path) -> TransferDialog:
    """Start downloading ``url`` into the engine and wait until a megabyte is in its part."""
    await _engine_shown(window)
    transfer = window.engine_models.start_download(url)
    assert transfer is not None
    await wait_for(lambda: part.exists() and part.stat().st_size >= 1_000_000, timeout=10)
    return transfer


#: A popup menu asks the offscreen platform for things it does not do; harmless.
MENU_NOISE = r"This plugin does not support (raise\(\)|grabbing the keyboard)"


@pytest.mark.qt_log_ignore(OFFSCREEN_NOISE, MENU_NOISE)
async def test_import_by_the_menu_copies_the_file_and_lists_the_model(
    open_window: WindowOpener, engine_registry: HostRegistry, models_dir: Path, tmp_path: Path
) -> None:
    src = write_gguf(tmp_path / "elsewhere" / "tiny-chat.gguf", megabytes=2, seed=1)
    async with open_window(engine_registry) as window:
        await _engine_shown(window)
        assert not window.pull_button.isVisible()  # Add model… stands where Pull… is
        controller = window.engine_models

        window.add_model_button.click()
        await wait_for(lambda: controller.menu.isVisible())
        texts = [a.text().replace("&", "") for a in controller.menu.actions() if a.text()]
        assert texts == [
            "Import GGUF file…",
            "Download from URL…",
            "Resume a paused download",
            "Open models folder",
        ]
        controller.menu.hide()
        window.pull_action.trigger()  # Ctrl+P on the engine: the same menu, not a pull
        await wait_for(lambda: controller.menu.isVisible())
        assert not window.pull_dialogs
        controller.menu.hide()

        controller.import_action.trigger()
        chooser = controller.file_dialog
        assert chooser is not None and chooser.isVisible()
        assert "*.gguf" in chooser.nameFilters()[0]
        chooser.selectFile(str(src))
        chooser.accept()
        await _answer(window, "importCopyButton")

        transfer = await _transfer(window)
        await wait_for(lambda: transfer.state == "done", timeout=10)
        copied = models_dir / "tiny-chat.gguf"
        assert not copied.is_symlink() and copied.read_bytes() == src.read_bytes()
        assert src.exists()  # a copy: the original stays
        assert _files(models_dir) == ["tiny-chat.gguf"]  # no temporary file left
        assert transfer.bytes_label.text() == "2.1 MB of 2.1 MB"
        assert "Imported tiny-chat" in transfer.status_label.text()
        await wait_for(lambda: "tiny-chat" in model_names(window), timeout=10)
        await wait_for(lambda: window.selected_model() is not None)
        assert window.selected_model().name == "tiny-chat"

        transfer.close_button.click()
        await wait_for(lambda: transfer not in controller.dialogs)


async def test_gguf_files_dropped_on_the_fleet_are_linked_in_one_go(
    open_window: WindowOpener, engine_registry: HostRegistry, models_dir: Path, tmp_path: Path
) -> None:
    first = write_gguf(tmp_path / "drop" / "first-model.gguf", seed=2)
    second = write_gguf(tmp_path / "drop" / "second-model.gguf", seed=3)
    async with open_window(engine_registry) as window:
        await _engine_shown(window)
        mime = _mime(first, second)
        assert _drag(window, mime, "enter").isAccepted()
        drop = _drag(window, mime, "drop")
        assert drop.isAccepted()

        await _answer(window, "importLinkButton")  # one question for the whole drop
        transfer = await _transfer(window)
        await wait_for(lambda: transfer.state == "done", timeout=10)
        assert "Linked first-model, second-model" in transfer.status_label.text()
        for src in (first, second):
            link = models_dir / src.name
            assert link.is_symlink() and link.resolve() == src.resolve()
        await wait_for(
            lambda: {"first-model", "second-model"} <= set(model_names(window)), timeout=10
        )
        assert "Linked first-model, second-model" in window.statusBar().currentMessage()


async def test_a_drop_without_gguf_files_is_not_accepted(
    open_window: WindowOpener, engine_registry: HostRegistry, models_dir: Path, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a model", encoding="utf-8")
    async with open_window(engine_registry) as window:
        await _engine_shown(window)
        mime = _mime(text)
        assert not _drag(window, mime, "enter").isAccepted()
        assert not _drag(window, mime, "drop").isAccepted()
        assert window.engine_models.mode_box is None
        assert window.engine_models.dialogs == []
        assert _files(models_dir) == []


async def test_a_link_to_a_gguf_file_dropped_on_the_fleet_opens_the_download(
    open_window: WindowOpener,
    engine_registry: HostRegistry,
    models_dir: Path,
    tmp_path: Path,
    server: FileServer,
) -> None:
    src = write_gguf(tmp_path / "src" / "linked-model.gguf", seed=13)
    url = server.serve("/models/linked-model.gguf", src.read_bytes())
    async with open_window(engine_registry) as window:
        await _engine_shown(window)
        web_page = QMimeData()
        web_page.setUrls([QUrl("http://127.0.0.1:9/about.html")])
        assert not _drag(window, web_page, "enter").isAccepted()  # not a model: refused

        link = QMimeData()
        link.setUrls([QUrl(url + "?download=true")])
        assert _drag(window, link, "enter").isAccepted()
        assert _drag(window, link, "drop").isAccepted()
        asked = window.engine_models.url_dialog
        assert asked is not None and asked.isVisible()
        assert asked.url_edit.text() == url + "?download=true"  # to check, then Download
        assert _files(models_dir) == []  # nothing fetched before the user says so
        asked.sha_edit.setText(sha256_of(src))
        asked.ok_button.click()
        await wait_for(lambda: "linked-model" in model_names(window), timeout=15)


async def test_a_file_that_is_not_gguf_is_refused_and_nothing_is_written(
    open_window: WindowOpener, engine_registry: HostRegistry, models_dir: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "fake-model.gguf"
    fake.write_bytes(b"<html>this is a web page, not a model</html>" * 100)
    async with open_window(engine_registry) as window:
        await _engine_shown(window)
        window.engine_models.import_files([fake])
        await _answer(window, "importCopyButton")
        transfer = await _transfer(window)
        await wait_for(lambda: transfer.state == "failed", timeout=10)

        message = transfer.status_label.text()
        assert "fake-model.gguf" in message and "GGUF" in message
        assert message in window.banner.text()
        assert not transfer.resume_button.isVisible()  # nothing to resume for an import
        assert _files(models_dir) == []
        assert "fake-model" not in model_names(window)


async def test_a_drop_when_the_engine_is_not_listed_says_how_to_install_it(
    open_window: WindowOpener,
    registry: HostRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_models, "engine_installed", lambda: False)
    models = tmp_path / "models"
    registry.settings.models_dir = str(models)
    src = write_gguf(tmp_path / "src" / "lonely.gguf", seed=4)
    async with open_window(registry) as window:
        assert window.fleet_model.get(ENGINE_ID) is None
        await wait_for(lambda: window.current_host_id() is not None)
        assert not window.add_model_button.isVisible()  # not the engine: Pull… as before
        assert window.pull_button.isVisible()

        mime = _mime(src)
        assert _drag(window, mime, "enter").isAccepted()
        assert _drag(window, mime, "drop").isAccepted()

        await wait_for(lambda: NOT_INSTALLED in window.banner.text())
        assert window.engine_models.mode_box is None
        assert window.engine_models.dialogs == []
        assert _files(models) == []


async def test_a_download_shows_progress_pauses_on_cancel_and_resumes_from_its_part(
    open_window: WindowOpener,
    engine_registry: HostRegistry,
    models_dir: Path,
    tmp_path: Path,
    server: FileServer,
) -> None:
    src = write_gguf(tmp_path / "src" / "tiny-download.gguf", megabytes=3, seed=5)
    data = src.read_bytes()
    url = server.serve("/models/tiny-download.gguf", data)
    server.bytes_per_s = 3_000_000  # slow enough to see progress on the way
    server.hold_after = 2_000_000
    part = models_dir / "tiny-download.gguf.part"
    async with open_window(engine_registry) as window:
        await _engine_shown(window)
        controller = window.engine_models

        controller.download_action.trigger()
        asked = controller.url_dialog
        assert asked is not None and asked.isVisible()
        assert not asked.ok_button.isEnabled()  # no URL yet
        asked.url_edit.setText(url)
        assert asked.ok_button.isEnabled()  # the SHA-256 is optional
        assert "tiny-download.gguf" in asked.url_message.text()
        asked.sha_edit.setText("abc123")
        assert not asked.ok_button.isEnabled()
        assert asked.sha_message.text() == "A SHA-256 is 64 hexadecimal digits; this has 6."
        asked.sha_edit.setText("z" * 64)
        assert not asked.ok_button.isEnabled()
        assert "hexadecimal" in asked.sha_message.text()
        asked.sha_edit.setText(sha256_of(src).upper())
        assert asked.ok_button.isEnabled()
        asked.ok_button.click()
        assert controller.url_dialog is None

        transfer = await _transfer(window)
        assert transfer.kind == "download" and transfer.isVisible()
        assert transfer.name_label.text() == "tiny-download.gguf"
        await wait_for(
            lambda: transfer.progress is not None and transfer.progress.done >= 1_000_000,
            timeout=10,
        )
        assert transfer.bytes_label.text().endswith(f"of {human_size(len(data))}")
        assert transfer.speed_label.text().endswith("MB/s")
        assert transfer.eta_label.text().endswith("left")
        assert 0 < transfer.bar.value() < 1000
        await wait_for(lambda: part.exists() and part.stat().st_size >= 1_000_000, timeout=10)

        transfer.cancel_button.click()
        await wait_for(lambda: transfer.state == "stopped", timeout=10)
        assert transfer.status_label.text() == PAUSED
        assert transfer.resume_button.isVisible() and transfer.resume_button.text() == "Resume"
        kept = part.stat().st_size
        assert 1_000_000 <= kept <= 2_000_000
        assert not (models_dir / "tiny-download.gguf").exists()
        assert "tiny-download" not in model_names(window)

        # started again from the same URL, it goes on from the part
        server.release()
        server.bytes_per_s = None
        controller.download_action.trigger()
        again = controller.url_dialog
        assert again is not None
        again.url_edit.setText(url)
        again.sha_edit.setText(sha256_of(src))
        again.ok_button.click()
        resumed = await _transfer(window, count=2)
        assert resumed is not transfer
        await wait_for(lambda: resumed.state == "done", timeout=15)
        assert resumed.progress is not None and resumed.progress.resumed_from == kept
        assert server.get_requests()[-1].headers["range"] == f"bytes={kept}-"
        assert "matches its SHA-256" in resumed.status_label.text()
        assert (models_dir / "tiny-download.gguf").read_bytes() == data
        assert _files(models_dir) == ["tiny-download.gguf"]
        await wait_for(lambda: "tiny-download" in model_names(window), timeout=10)
        assert "Downloaded tiny-download" in window.statusBar().currentMessage()


async def test_resume_in_the_progress_dialog_continues_a_paused_download(
    open_window: WindowOpener,
    engine_registry: HostRegistry,
    models_dir: Path,
    tmp_path: Path,
    server: FileServer,
) -> None:
    url = _held_file(server, tmp_path, "held", seed=6)
    part = models_dir / "held.gguf.part"
    async with open_window(engine_registry) as window:
        transfer = await _download_under_way(window, url, part)
        transfer.cancel_button.click()
        await wait_for(lambda: transfer.state == "stopped", timeout=10)

        server.release()
        transfer.resume_button.click()
        await wait_for(lambda: transfer.state == "done", timeout=15)
        assert transfer.progress is not None and transfer.progress.resumed_from >= 1_000_000
        await wait_for(lambda: "held" in model_names(window), timeout=10)


async def test_a_download_with_the_wrong_sha256_fails_and_adds_nothing(
    open_window: WindowOpener,
    engine_registry: HostRegistry,
    models_dir: Path,
    tmp_path: Path,
    server: FileServer,
) -> None:
    src = write_gguf(tmp_path / "src" / "checked.gguf", seed=7)
    url = server.serve("/checked.gguf", src.read_bytes())
    wrong = "0" * 64
    async with open_window(engine_registry) as window:
        await _engine_shown(window)
        transfer = window.engine_models.start_download(url, wrong)
        assert transfer is not None
        await wait_for(lambda: transfer.state == "failed", timeout=10)

        message = transfer.status_label.text()
        assert f"does not match its sha256 (expected {wrong}" in message
        assert message in window.banner.text()
        assert transfer.resume_button.text() == "Try again"
        assert _files(models_dir) == []  # neither the model nor its part
        assert "checked" not in model_names(window)


async def test_closing_the_window_pauses_a_running_download(
    open_window: WindowOpener,
    engine_registry: HostRegistry,
    models_dir: Path,
    tmp_path: Path,
    server: FileServer,
) -> None:
    url = _held_file(server, tmp_path, "long", seed=8)
    part = models_dir / "long.gguf.part"
    async with open_window(engine_registry) as window:
        transfer = await _download_under_way(window, url, part)
    # the window's shutdown cancelled the download and waited for it
    assert transfer.state == "stopped"
    assert part.stat().st_size >= 1_000_000
    assert not (models_dir / "long.gguf").exists()
    server.release()


async def test_open_models_folder_opens_it_or_shows_its_path_to_copy(
    open_window: WindowOpener,
    engine_registry: HostRegistry,
    models_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[str] = []
    answer = {"ok": True}

    def open_url(url: QUrl) -> bool:
        opened.append(url.toLocalFile())
        return answer["ok"]

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)
    async with open_window(engine_registry) as window:
        await _engine_shown(window)
        controller = window.engine_models
        controller.open_folder_action.trigger()
        # made first, so that there is something to open
        await wait_for(lambda: opened == [str(models_dir)] and models_dir.is_dir())
        assert controller.folder_box is None

        answer["ok"] = False
        controller.open_folder_action.trigger()
        box = await wait_for(lambda: controller.folder_box)
        assert isinstance(box, QMessageBox) and box.isVisible()
        assert str(models_dir) in box.text() and "could not be opened" in box.text()
        copy = box.findChild(QPushButton, "modelsFolderCopyButton")
        assert copy is not None
        copy.click()
        assert QGuiApplication.clipboard().text() == str(models_dir)
        await wait_for(lambda: controller.folder_box is None)


def test_details_show_the_hosts_notes_above_the_form(qtbot: Any) -> None:
    note = (
        "This model has no chat template; Corral uses the Gemma 3 template for its "
        "architecture (gemma3)."
    )
    detail = ModelDetail(
        name="gemma-3-270m",
        family="gemma3",
        parameter_size="268M",
        quantization="Q4_K_M",
        format="gguf",
        notes=(note,),
    )
    dialog = ModelDetailsDialog(detail, host_name="This computer (built-in)")
    qtbot.addWidget(dialog)
    dialog.show()
    label = dialog.findChild(QLabel, "detailsNotes")
    assert label is dialog.notes_label
    assert label.isVisible() and label.wordWrap()
    assert label.text() == note
    assert dialog.findChild(QLabel, "detailsQuantization").text() == "Q4_K_M"

    plain = ModelDetailsDialog(ModelDetail(name="llama3.2"), host_name="Box")
    qtbot.addWidget(plain)
    plain.show()
    assert not plain.notes_label.isVisible()


async def test_delete_takes_a_model_file_out_of_the_models_folder(
    open_window: WindowOpener, engine_registry: HostRegistry, models_dir: Path
) -> None:
    write_gguf(models_dir / "old-model.gguf", seed=11)
    write_gguf(models_dir / "keeper.gguf", seed=12)
    async with open_window(engine_registry) as window:
        await _engine_shown(window)
        await wait_for(lambda: "old-model" in model_names(window))
        assert window.select_model("old-model")
        await wait_for(lambda: window.delete_button.isEnabled())
        window.delete_button.click()
        box = await wait_for(lambda: window.findChild(QMessageBox, "confirmDelete"))
        assert "old-model" in box.text()
        box.findChild(QPushButton, "confirmDeleteAccept").click()
        await wait_for(lambda: "old-model" not in model_names(window))
        assert _files(models_dir) == ["keeper.gguf"]
        assert "keeper" in model_names(window)


async def test_a_paused_download_is_offered_again_from_the_menu(
    open_window: WindowOpener,
    engine_registry: HostRegistry,
    models_dir: Path,
    tmp_path: Path,
    server: FileServer,
) -> None:
    url = _held_file(server, tmp_path, "later", seed=14)
    digest = sha256_of(tmp_path / "src" / "later.gguf")
    part = models_dir / "later.gguf.part"
    async with open_window(engine_registry) as window:
        controller = window.engine_models
        await _engine_shown(window)
        await controller.refresh_paused()
        assert not controller.paused_menu.isEnabled()  # nothing paused yet

        dialog = controller.start_download(url, digest)
        assert dialog is not None
        await wait_for(lambda: part.exists() and part.stat().st_size >= 1_000_000, timeout=10)
        dialog.cancel_button.click()
        await wait_for(lambda: dialog.state == "stopped", timeout=10)
        dialog.close()

        # as after a restart: the menu reads what the models folder keeps
        await controller.refresh_paused()
        [action] = controller.paused_menu.actions()
        assert action.text().startswith("later.gguf: ") and action.text().endswith("so far")
        assert action.toolTip() == url and controller.paused_menu.isEnabled()
        action.trigger()
        asked = controller.url_dialog
        assert asked is not None and asked.isVisible()
        assert (asked.url_edit.text(), asked.sha_edit.text()) == (url, digest)
        server.release()
        asked.ok_button.click()
        await wait_for(lambda: "later" in model_names(window), timeout=15)
        await controller.refresh_paused()
        assert controller.paused_menu.actions() == [] and not controller.paused_menu.isEnabled()
