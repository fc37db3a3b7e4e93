"""The log panel: new lines appear, the filters hide and show them, the folder opens."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication

from app.core.logs import LogSetup, setup_logging
from app.ui.log_panel import LogPanel

pytestmark = pytest.mark.usefixtures("restore_logging")


log = logging.getLogger("corral.panel-test")


@pytest.fixture
def setup(tmp_path: Path) -> LogSetup:
    return setup_logging("DEBUG", tmp_path / "logs", stderr=False)


@pytest.fixture
def panel(qtbot: Any, setup: LogSetup) -> LogPanel:
    widget = LogPanel(setup.buffer, setup, interval_ms=50)
    qtbot.addWidget(widget)
    widget.resize(700, 300)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def shows(panel: LogPanel, text: str) -> bool:
    return text in panel.shown_text()


def test_new_records_appear_with_the_file_path(
    qtbot: Any, panel: LogPanel, setup: LogSetup
) -> None:
    log.info("first line of the session")
    qtbot.waitUntil(lambda: shows(panel, "first line of the session"), timeout=3000)
    log.warning("second line")
    qtbot.waitUntil(lambda: shows(panel, "second line"), timeout=3000)

    assert panel.shown_text().count("first line of the session") == 1
    assert panel.path_label.text() == f"Log file: {setup.path}"
    assert panel.problem_label.isHidden()
    assert panel.open_failed.isHidden()


def test_records_logged_before_the_panel_and_from_threads_show(qtbot: Any, setup: LogSetup) -> None:
    log.info("logged at start-up")
    panel = LogPanel(setup.buffer, setup, interval_ms=50)
    qtbot.addWidget(panel)
    panel.show()
    assert shows(panel, "logged at start-up")

    worker = threading.Thread(target=lambda: log.info("from a worker thread"))
    worker.start()
    worker.join(timeout=5)
    qtbot.waitUntil(lambda: shows(panel, "from a worker thread"), timeout=3000)


def test_the_level_filter_hides_and_shows_info_lines(qtbot: Any, panel: LogPanel) -> None:
    log.info("chatty info")
    log.warning("important warning")
    qtbot.waitUntil(lambda: shows(panel, "important warning"), timeout=3000)
    assert shows(panel, "chatty info")

    panel.level_combo.setCurrentIndex(panel.level_combo.findText("Warning"))
    assert not shows(panel, "chatty info")
    assert shows(panel, "important warning")

    log.info("more chatter")
    log.error("an error")
    qtbot.waitUntil(lambda: shows(panel, "an error"), timeout=3000)
    assert not shows(panel, "more chatter")

    panel.level_combo.setCurrentIndex(panel.level_combo.findText("Info"))
    assert shows(panel, "chatty info")
    assert shows(panel, "more chatter")
    text = panel.shown_text()
    assert text.index("chatty info") < text.index("important warning") < text.index("an error")


def test_the_level_filter_changes_the_view_not_the_file(
    qtbot: Any, panel: LogPanel, setup: LogSetup
) -> None:
    panel.level_combo.setCurrentIndex(panel.level_combo.findText("Error"))
    log.info("kept in the file")
    log.error("shown and kept")
    qtbot.waitUntil(lambda: shows(panel, "shown and kept"), timeout=3000)

    assert not shows(panel, "kept in the file")
    assert setup.path is not None
    for handler in setup.handlers:
        handler.flush()
    assert "kept in the file" in setup.path.read_text("utf-8")


def test_the_search_box_filters_lines(qtbot: Any, panel: LogPanel) -> None:
    log.info("GPU 0 at 71 C")
    log.info("host Fake box answered")
    log.info("gpu 1 idle")
    qtbot.waitUntil(lambda: shows(panel, "gpu 1 idle"), timeout=3000)

    qtbot.keyClicks(panel.search_edit, "gpu")
    assert shows(panel, "GPU 0 at 71 C")
    assert shows(panel, "gpu 1 idle")
    assert not shows(panel, "Fake box")

    log.info("Fake box again")
    log.info("gpu 2 busy")
    qtbot.waitUntil(lambda: shows(panel, "gpu 2 busy"), timeout=3000)
    assert not shows(panel, "Fake box")

    panel.search_edit.clear()
    assert shows(panel, "host Fake box answered")
    assert shows(panel, "Fake box again")


def test_clear_view_keeps_only_later_lines(qtbot: Any, panel: LogPanel, setup: LogSetup) -> None:
    log.info("before clearing")
    qtbot.waitUntil(lambda: shows(panel, "before clearing"), timeout=3000)

    panel.clear_button.click()
    assert panel.shown_text() == ""
    log.info("after clearing")
    qtbot.waitUntil(lambda: shows(panel, "after clearing"), timeout=3000)
    panel.level_combo.setCurrentIndex(panel.level_combo.findText("Info"))  # rebuilds the view
    assert not shows(panel, "before clearing")
    assert shows(panel, "after clearing")
    assert any("before clearing" in line.text for line in setup.buffer.records_since(0))


def test_the_view_follows_new_lines_only_at_the_bottom(qtbot: Any, panel: LogPanel) -> None:
    for i in range(200):
        log.info("filler %d", i)
    qtbot.waitUntil(lambda: shows(panel, "filler 199"), timeout=3000)
    bar = panel.view.verticalScrollBar()
    assert bar.maximum() > 0
    assert bar.value() == bar.maximum()

    log.info("followed")
    qtbot.waitUntil(lambda: shows(panel, "followed"), timeout=3000)
    assert bar.value() == bar.maximum()

    bar.setValue(10)  # the user scrolls up to read
    log.info("not followed")
    qtbot.waitUntil(lambda: shows(panel, "not followed"), timeout=3000)
    assert bar.value() == 10
    assert bar.value() < bar.maximum()


def test_secrets_do_not_show(qtbot: Any, panel: LogPanel) -> None:
    log.info("Authorization: Bearer %s", "tok-0123456789abcdef")
    qtbot.waitUntil(lambda: shows(panel, "Authorization: Bearer [redacted]"), timeout=3000)
    assert not shows(panel, "tok-0123456789abcdef")


def test_open_log_folder_opens_the_directory(
    qtbot: Any, panel: LogPanel, setup: LogSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[QUrl] = []

    def open_url(url: QUrl) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)
    panel.open_button.click()

    assert [u.toLocalFile() for u in opened] == [str(setup.directory)]
    assert panel.open_failed.isHidden()


def test_a_folder_that_cannot_be_opened_is_shown_with_a_copy_button(
    qtbot: Any, panel: LogPanel, setup: LogSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[QUrl] = []

    def open_url(url: QUrl) -> bool:
        opened.append(url)
        return False

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)
    panel.open_button.click()

    assert len(opened) == 1
    assert panel.open_failed.isVisible()
    assert "could not be opened" in panel.open_failed_text.text()
    assert str(setup.directory) in panel.open_failed_text.text()

    panel.copy_button.click()
    assert QGuiApplication.clipboard().text() == str(setup.directory)

    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: True)
    panel.open_button.click()
    assert panel.open_failed.isHidden()


def test_without_a_log_file_the_panel_says_why(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    setup = setup_logging("INFO", blocker / "logs", stderr=False)
    panel = LogPanel(setup.buffer, setup, interval_ms=50)
    qtbot.addWidget(panel)
    panel.show()

    assert setup.problem is not None
    assert panel.problem_label.isVisible()
    assert panel.problem_label.text() == setup.problem
    assert panel.path_label.text() == "Log file: none"
    assert shows(panel, setup.problem)  # it is in the log too

    opened: list[QUrl] = []

    def open_url(url: QUrl) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)
    panel.open_button.click()
    assert opened == []
    assert "does not exist" in panel.open_failed_text.text()
    assert panel.open_failed.isVisible()


def test_polling_stops_while_hidden_and_catches_up(qtbot: Any, panel: LogPanel) -> None:
    assert panel.timer.isActive()
    panel.hide()
    assert not panel.timer.isActive()
    log.info("while hidden")
    assert not shows(panel, "while hidden")
    panel.show()
    assert shows(panel, "while hidden")
    assert panel.timer.isActive()
