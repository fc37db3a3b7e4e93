"""The main window's frame: what Corral paints first, and the layout it keeps between runs.

The frame imports nothing but Qt and the settings types, so that it is on screen a moment
after launch; the fleet, the models and the panels are then built into this same window
(:meth:`app.ui.main_window.MainWindow.adopt`). Until then it says that Corral is starting.

It also keeps the window's layout: geometry and dock state are saved as base64 text in the
settings (``window_geometry``, ``window_state``) and restored at the next start; the
layout the window had when it was first built is kept, so "Reset layout" can bring it back.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QByteArray, QElapsedTimer, QEvent, QEventLoop, QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QWidget

log = logging.getLogger(__name__)

DEFAULT_SIZE = (1500, 900)


def _decode(text: str) -> QByteArray | None:
    if not text:
        return None
    data = QByteArray.fromBase64(text.encode("ascii", errors="replace"))
    return data if not data.isEmpty() else None


def _encode(data: QByteArray) -> str:
    return bytes(data.toBase64().data()).decode("ascii")


class _FirstPaint(QObject):
    """Tells the frame when it has painted for the first time."""

    def __init__(self, frame: WindowFrame) -> None:
        super().__init__(frame)
        self._frame = frame

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and not self._frame.painted:
            self._frame.painted = True
            watched.removeEventFilter(self)
            self._frame.firstPainted.emit()
        return False


class WindowFrame(QMainWindow):
    """Corral's top-level window, before and after its content is built.

    Signals:
        firstPainted: the window has painted once (the start-up benchmark and the
            launcher wait on it).

    Attributes:
        painted: whether the window has painted yet.
    """

    firstPainted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle("Corral")
        self.painted = False
        self._default_state: QByteArray | None = None
        self._paint_probe = _FirstPaint(self)
        self.installEventFilter(self._paint_probe)
        self._placeholder: QLabel | None = None
        self.resize(*self._default_size())

    def wait_painted(self, app: QApplication, timeout_s: float) -> bool:
        """Let Qt paint the shown frame before anything else is loaded (at start-up,
        before the event loop runs); False when it did not paint within ``timeout_s``."""
        clock = QElapsedTimer()
        clock.start()
        while not self.painted and clock.elapsed() < timeout_s * 1000:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        return self.painted

    def show_starting(self) -> None:
        """Show "Starting Corral…" until the content is built."""
        label = QLabel("Starting Corral…", self)
        label.setObjectName("startingLabel")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder = label
        self.setCentralWidget(label)
        self.statusBar().showMessage("Starting…")

    def _default_size(self) -> tuple[int, int]:
        screen = self.screen() or QGuiApplication.primaryScreen()
        width, height = DEFAULT_SIZE
        if screen is None:
            return width, height
        area = screen.availableGeometry()
        return min(width, max(640, area.width() - 40)), min(height, max(480, area.height() - 40))

    # -- layout -----------------------------------------------------------------------
    def restore_geometry(self, text: str) -> bool:
        """Put the window where it was (``text`` from :meth:`saved_layout`); False when
        there is nothing usable to restore (the default size is kept)."""
        data = _decode(text)
        if data is None:
            return False
        if not self.restoreGeometry(data):
            log.info("The saved window geometry could not be used; default size kept")
            return False
        return True

    def remember_default_layout(self) -> None:
        """Keep the dock layout as built now, for :meth:`reset_layout`."""
        self._default_state = self.saveState()

    def restore_layout(self, text: str) -> bool:
        """Restore the docks as they were saved; False (default layout kept) when the
        saved state is missing or does not fit these docks."""
        data = _decode(text)
        if data is None:
            return False
        if not self.restoreState(data):
            log.info("The saved dock layout could not be used; default layout kept")
            return False
        return True

    def saved_layout(self) -> tuple[str, str]:
        """The window's geometry and dock state, as text for the settings file."""
        return _encode(self.saveGeometry()), _encode(self.saveState())

    def reset_layout(self) -> None:
        """The docks as they were first built, at the default size."""
        if self._default_state is not None:
            self.restoreState(self._default_state)
        if self.isMaximized() or self.isFullScreen():
            self.showNormal()
        self.resize(*self._default_size())
