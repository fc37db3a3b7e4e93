"""Getting model files into the built-in engine: import a GGUF file from this computer
(copied, or linked to save space), download one from a URL, or open the models folder.

When the built-in engine is the current host, "Add model…" stands where the other hosts
have "Pull…"; GGUF files dropped onto the fleet go to the engine as well. The work runs
as tasks on the event loop (the window's :class:`~app.ui.tasks.TaskRunner`, so closing
Corral cancels it): the copy in a worker thread, the download on the loop. Each import or
download shows a modeless :class:`TransferDialog` with its progress and Cancel.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from PySide6.QtCore import QEvent, QMimeData, QObject, QPoint, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QDropEvent, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractButton,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.engine import engine_installed
from app.core.engine.download import (
    DownloadProgress,
    PausedDownload,
    download,
    download_name,
    paused_downloads,
)
from app.core.engine.gguf_info import GGUF_SUFFIX
from app.core.engine.models import ModelsFolder
from app.core.errors import CorralError, InvalidInput
from app.core.hosts.engine import ENGINE_ID
from app.ui import formatting as fmt
from app.ui.tasks import TaskRunner

if TYPE_CHECKING:
    from app.ui.main_window import MainWindow

log = logging.getLogger(__name__)

NOT_INSTALLED = (
    "The built-in engine is not installed: install Corral with its engine extra "
    "(pip install 'corral[engine]')."
)
TURNED_OFF = (
    "The built-in engine is turned off (CORRAL_ENGINE=0 in Corral's environment); start "
    "Corral without it to add models to the engine."
)
REMOVED = "The built-in engine was removed from the fleet, so no model files can be added to it."
PAUSED = "Download paused; start it again from the same URL to resume."

RUNNING, DONE, STOPPED, FAILED = "running", "done", "stopped", "failed"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]*")


def gguf_paths(mime: QMimeData) -> list[Path]:
    """The local ``.gguf`` files among dropped URLs (other files and links are left out)."""
    out: list[Path] = []
    for url in mime.urls():
        if url.isLocalFile():
            path = url.toLocalFile()
            if path.lower().endswith(GGUF_SUFFIX):
                out.append(Path(path))
    return out


def gguf_links(mime: QMimeData) -> list[str]:
    """The web addresses of ``.gguf`` files among dropped URLs (a link dragged from a
    browser); query and fragment aside, the path must end in ``.gguf``."""
    return [
        url.toString()
        for url in mime.urls()
        if url.scheme() in ("http", "https") and url.path().lower().endswith(GGUF_SUFFIX)
    ]


def sha256_problem(text: str) -> str | None:
    """Why ``text`` is not a SHA-256 as the download takes it (None: it is, or empty)."""
    digest = text.strip().lower().removeprefix("sha256:")
    if not digest or _SHA256.fullmatch(digest):
        return None
    if not _HEX.fullmatch(digest):
        return "A SHA-256 has only the hexadecimal digits 0-9 and a-f."
    return f"A SHA-256 is 64 hexadecimal digits; this has {len(digest)}."


class DownloadUrlDialog(QDialog):
    """Asks for the URL of a GGUF file and, optionally, its SHA-256.

    Download stays disabled until the URL names a file and the SHA-256 field is empty or
    holds 64 hexadecimal digits; a line beside each field says what is wrong.

    Attributes:
        url_edit, sha_edit: the fields ("downloadUrlEdit", "downloadShaEdit").
        url_message, sha_message: what is wrong with them, or what will happen
            ("downloadUrlMessage", "downloadShaMessage").
        ok_button: Download ("downloadOkButton").

    Signals:
        submitted(str, str): the URL and the SHA-256 ("" for none), on Download.
    """

    submitted = Signal(str, str)

    def __init__(self, folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("downloadUrlDialog")
        self.setWindowTitle("Download a model for the built-in engine")
        intro = QLabel(
            f"The GGUF file is saved in the models folder ({folder}). An interrupted download "
            "is kept and resumes when it is started again from the same URL.",
            self,
        )
        intro.setWordWrap(True)
        self.url_edit = QLineEdit(self)
        self.url_edit.setObjectName("downloadUrlEdit")
        self.url_edit.setPlaceholderText("https://…/model-Q4_K_M.gguf")
        self.url_message = QLabel(self)
        self.url_message.setObjectName("downloadUrlMessage")
        self.url_message.setWordWrap(True)
        self.sha_edit = QLineEdit(self)
        self.sha_edit.setObjectName("downloadShaEdit")
        self.sha_edit.setPlaceholderText("optional: 64 hexadecimal digits")
        self.sha_message = QLabel(self)
        self.sha_message.setObjectName("downloadShaMessage")
        self.sha_message.setWordWrap(True)
        sha_row = QHBoxLayout()
        sha_row.addWidget(self.sha_edit, 3)
        sha_row.addWidget(self.sha_message, 2)
        form = QFormLayout()
        form.addRow("&URL:", self.url_edit)
        form.addRow("", self.url_message)
        sha_label = QLabel("&SHA-256:", self)
        sha_label.setBuddy(self.sha_edit)
        form.addRow(sha_label, sha_row)
        buttons = QDialogButtonBox(self)
        self.ok_button = buttons.addButton("Download", QDialogButtonBox.ButtonRole.AcceptRole)
        self.ok_button.setObjectName("downloadOkButton")
        self.ok_button.setDefault(True)
        cancel = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        cancel.setObjectName("downloadCancelButton")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addStretch(1)
        layout.addWidget(buttons)
        self.url_edit.textChanged.connect(self._check)
        self.sha_edit.textChanged.connect(self._check)
        self.resize(620, 200)
        self._check()

    def _check(self) -> None:
        url = self.url_edit.text().strip()
        url_ok = False
        if not url:
            self.url_message.setText("")
        else:
            try:
                name = download_name(url)
            except InvalidInput as exc:
                self.url_message.setText(exc.message)
            else:
                self.url_message.setText(f"It is saved as {name}.")
                url_ok = True
        problem = sha256_problem(self.sha_edit.text())
        if problem is not None:
            self.sha_message.setText(problem)
        elif self.sha_edit.text().strip():
            self.sha_message.setText("The file is checked against it.")
        else:
            self.sha_message.setText("Without it, only the file's format is checked.")
        self.ok_button.setEnabled(url_ok and problem is None)

    def accept(self) -> None:
        if not self.ok_button.isEnabled():
            return
        super().accept()
        self.submitted.emit(self.url_edit.text().strip(), self.sha_edit.text().strip())


class TransferDialog(QDialog):
    """The progress of model files coming into the built-in engine's folder: an import
    (one or more files, copied or linked) or a download.

    Cancel (or closing the dialog) cancels the task: a stopped import leaves nothing of
    the file it was copying; a stopped download keeps its partial file, and Resume starts
    it again from there.

    Attributes:
        kind: "import" or "download".
        state: "running", "done", "stopped" or "failed".
        task: the task doing the work.
        progress: the last progress of a download (None before the first).
        name_label, bar, bytes_label, speed_label, eta_label, status_label: what is shown
            ("transferName", "transferBar", "transferBytes", "transferSpeed",
            "transferEta", "transferStatus"; speed and time left only for downloads).
        cancel_button, resume_button, close_button: the controls ("transferCancelButton",
            "transferResumeButton" (downloads that stopped), "transferCloseButton").

    Signals:
        stateChanged(str): the new state.
        resumeRequested: Resume was pressed.
    """

    stateChanged = Signal(str)
    resumeRequested = Signal()

    def __init__(self, kind: str, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("transferDialog")
        self.setWindowTitle(title)
        self.kind = kind
        self.state = RUNNING
        self.task: asyncio.Task[Any] | None = None
        self.progress: DownloadProgress | None = None

        def label(name: str, text: str = fmt.DASH) -> QLabel:
            widget = QLabel(text, self)
            widget.setObjectName(name)
            widget.setWordWrap(True)
            widget.setTextFormat(Qt.TextFormat.PlainText)
            return widget

        self.name_label = label("transferName", "")
        self.name_label.setStyleSheet("font-weight: bold;")
        self.status_label = label("transferStatus", "")
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.bar = QProgressBar(self)
        self.bar.setObjectName("transferBar")
        self.bar.setRange(0, 1000)
        self.bytes_label = label("transferBytes")
        self.speed_label = label("transferSpeed")
        self.eta_label = label("transferEta")
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("transferCancelButton")
        self.resume_button = QPushButton("Resume", self)
        self.resume_button.setObjectName("transferResumeButton")
        self.resume_button.setToolTip("Download again from the same URL, from where it stopped")
        self.close_button = QPushButton("Close", self)
        self.close_button.setObjectName("transferCloseButton")
        self.close_button.setToolTip(
            "Closing the dialog stops the transfer if it is still running."
        )

        figures = QFormLayout()
        figures.addRow("Progress:", self.bar)
        figures.addRow("Done:", self.bytes_label)
        if kind == "download":
            figures.addRow("Speed:", self.speed_label)
            figures.addRow("Time left:", self.eta_label)
        else:
            self.speed_label.hide()
            self.eta_label.hide()
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.resume_button)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.name_label)
        layout.addWidget(self.status_label)
        layout.addLayout(figures)
        layout.addStretch(1)
        layout.addLayout(bottom)
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button.clicked.connect(self.resumeRequested)
        self.close_button.clicked.connect(self.reject)
        self.resize(520, 220)
        self._update_buttons()

    # -- state ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def begin(self, task: asyncio.Task[Any], name: str, text: str) -> None:
        """Follow ``task``, which brings ``name`` in; ``text`` says what happens first."""
        self.task = task
        self.progress = None
        self.name_label.setText(name)
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        for widget in (self.bytes_label, self.speed_label, self.eta_label):
            widget.setText(fmt.DASH)
        self._set_state(RUNNING, text)
        task.add_done_callback(self._task_ended)

    def _task_ended(self, task: asyncio.Task[Any]) -> None:
        if task is self.task and self.running:
            # the task ended by a bug (the runner logs it and tells the user)
            self._set_state(FAILED, "The transfer stopped unexpectedly; see Corral's log.")

    def _set_state(self, state: str, text: str) -> None:
        self.state = state
        self.status_label.setText(text)
        if state != RUNNING:
            self.bar.setRange(0, 1000)
            if state == DONE:
                self.bar.setValue(1000)
        self._update_buttons()
        self.stateChanged.emit(state)

    def _update_buttons(self) -> None:
        self.cancel_button.setEnabled(self.running)
        self.resume_button.setVisible(self.kind == "download" and self.state in (STOPPED, FAILED))
        self.resume_button.setText("Resume" if self.state == STOPPED else "Try again")

    def finish(self, text: str) -> None:
        self._set_state(DONE, text)

    def fail(self, text: str) -> None:
        self._set_state(FAILED, text)

    def stop(self, text: str) -> None:
        self._set_state(STOPPED, text)

    def cancel(self) -> None:
        """Stop the transfer (the task ends, then the dialog says what was kept)."""
        if self.running and self.task is not None and not self.task.done():
            self.task.cancel()
            self.status_label.setText("Stopping…")
            self.cancel_button.setEnabled(False)

    def done(self, result: int) -> None:
        """Closing the dialog (Close, Escape, the window's X) stops a running transfer."""
        self.cancel()
        super().done(result)

    # -- progress ---------------------------------------------------------------------
    def show_text(self, text: str) -> None:
        if self.running:
            self.status_label.setText(text)

    def show_busy(self) -> None:
        """No figures to show (a link is being made): a busy bar."""
        self.bar.setRange(0, 0)

    def show_bytes(self, done: int, total: int | None) -> None:
        if not self.running:
            return
        if total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(min(1000, int(1000 * done / total)))
            self.bytes_label.setText(f"{fmt.human_size(done)} of {fmt.human_size(total)}")
        else:
            self.bar.setRange(0, 0)
            self.bytes_label.setText(fmt.human_size(done))

    def show_download(self, progress: DownloadProgress) -> None:
        """One step of a download: bytes, speed, time left and its phase."""
        if not self.running:
            return
        self.progress = progress
        self.show_bytes(progress.done, progress.total)
        if progress.phase == "verifying":
            self.speed_label.setText(fmt.DASH)
            self.eta_label.setText(fmt.DASH)
            self.status_label.setText(f"Checking {progress.name}…")
            return
        speed = fmt.human_speed(progress.speed) if progress.speed > 0 else fmt.DASH
        self.speed_label.setText(speed)
        self.eta_label.setText(fmt.eta_text(progress.eta_s))
        if progress.phase == "downloading":
            text = f"Downloading {progress.name}…"
            if progress.resumed_from:
                text += (
                    f" Resumed at {fmt.human_size(progress.resumed_from)}, where the last "
                    "attempt stopped."
                )
            self.status_label.setText(text)


def _model_name(path: Path) -> str:
    name = path.name
    return name[: -len(GGUF_SUFFIX)] if name.lower().endswith(GGUF_SUFFIX) else name


def _size_of(paths: Sequence[Path]) -> int | None:
    total = 0
    for path in paths:
        try:
            total += path.stat().st_size
        except OSError:
            return None
    return total


class EngineModelsController(QObject):
    """Adds model files to the built-in engine's models folder for the main window.

    Attributes:
        window: the main window (its registry, fleet, status bar and models table).
        tasks: where imports and downloads run (the window's task runner: closing Corral
            cancels them).
        button: "Add model…", shown in place of Pull… while the engine is the current host.
        menu: the button's menu ("addModelMenu"): import_action ("Import GGUF file…"),
            download_action ("Download from URL…"), open_folder_action ("Open models
            folder").
        dialogs: the progress dialogs open or still ending.
        file_dialog, mode_box, url_dialog, folder_box: the file chooser, the copy-or-link
            question ("importModeBox"), the URL dialog and the box with the folder's path
            ("modelsFolderBox") while they are open, else None.

    Signals:
        modelsAdded(list): the names of models that arrived in the folder.
    """

    modelsAdded = Signal(list)

    def __init__(self, window: MainWindow, tasks: TaskRunner, button: QPushButton) -> None:
        super().__init__(window)
        self.window = window
        self.tasks = tasks
        self.button = button
        self.dialogs: list[TransferDialog] = []
        self.file_dialog: QFileDialog | None = None
        self.mode_box: QMessageBox | None = None
        self.url_dialog: DownloadUrlDialog | None = None
        self.folder_box: QMessageBox | None = None
        self._downloading: set[str] = set()  # URLs with a download running
        self._select_after = ""  # a model to select once the engine's models are listed
        self._last_dir = Path.home()

        self.menu = QMenu("Add model", window)
        self.menu.setObjectName("addModelMenu")
        self.import_action = self._action("&Import GGUF file…", "importModelAction")
        self.import_action.setToolTip("Copy or link a GGUF file from this computer")
        self.download_action = self._action("&Download from URL…", "downloadModelAction")
        self.download_action.setToolTip("Download a GGUF file; an interrupted one resumes")
        self.open_folder_action = self._action("&Open models folder", "openModelsFolderAction")
        self.menu.addAction(self.import_action)
        self.menu.addAction(self.download_action)
        # downloads left unfinished (also by an earlier run): read off the disk in a worker
        # thread whenever the engine's models are read, never when the menu opens
        self.paused_menu = self.menu.addMenu("&Resume a paused download")
        self.paused_menu.setObjectName("pausedDownloadsMenu")
        self.paused_menu.setEnabled(False)
        self.menu.aboutToShow.connect(self.refresh_paused)  # filled in a moment later
        self.paused: list[PausedDownload] = []
        self._paused_task: asyncio.Task[None] | None = None
        self.menu.addSeparator()
        self.menu.addAction(self.open_folder_action)
        button.setToolTip(
            "Add a GGUF model file to the built-in engine: import one from this computer, "
            "download one, or open its models folder"
        )

        button.clicked.connect(self.show_menu)
        self.import_action.triggered.connect(self.choose_files)
        self.download_action.triggered.connect(lambda: self.ask_url())
        self.open_folder_action.triggered.connect(self.open_folder)
        window.modelsRefreshed.connect(self._on_models_refreshed)

    def _action(self, text: str, name: str) -> QAction:
        action = QAction(text, self.menu)
        action.setObjectName(name)
        return action

    # -- where models go --------------------------------------------------------------
    def models_path(self) -> Path:
        """The built-in engine's models folder, as the settings name it now."""
        return self.window.registry.settings.models_path()

    def unavailable_reason(self) -> str | None:
        """Why no model can be added to the built-in engine now (None: it can)."""
        if self.window.fleet_model.get(ENGINE_ID) is not None:
            return None
        if ENGINE_ID in self.window.registry.settings.hidden_hosts:
            return REMOVED
        if engine_installed():
            return TURNED_OFF
        return NOT_INSTALLED

    def _available(self) -> bool:
        reason = self.unavailable_reason()
        if reason is not None:
            self.window.show_error(reason)
            return False
        return True

    # -- the menu ---------------------------------------------------------------------
    def show_menu(self) -> None:
        """Open the menu under the button (without a nested event loop)."""
        self.menu.popup(self.button.mapToGlobal(QPoint(0, self.button.height())))

    def choose_files(self) -> QFileDialog | None:
        """Ask for GGUF files to import (modeless); the choice goes to :meth:`import_files`."""
        if not self._available():
            return None
        dialog = QFileDialog(self.window, "Import GGUF model files", str(self._last_dir))
        dialog.setObjectName("importFileDialog")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        dialog.setNameFilters(["GGUF model files (*.gguf)", "All files (*)"])
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.filesSelected.connect(self._files_chosen)
        dialog.finished.connect(lambda _r=0, d=dialog: self._forget_file_dialog(d))
        self.file_dialog = dialog
        dialog.open()
        return dialog

    def _forget_file_dialog(self, dialog: QFileDialog) -> None:
        if self.file_dialog is dialog:
            self.file_dialog = None

    def _files_chosen(self, files: Sequence[str]) -> None:
        paths = [Path(f) for f in files if f]
        if paths:
            self._last_dir = paths[0].parent
            self.import_files(paths)

    def ask_url(self, url: str = "", sha256: str = "") -> DownloadUrlDialog | None:
        """Ask for a URL and a SHA-256 to download (modeless; ``url`` and ``sha256``
        filled in)."""
        if not self._available():
            return None
        dialog = DownloadUrlDialog(self.models_path(), self.window)
        if url:
            dialog.url_edit.setText(url)
        if sha256:
            dialog.sha_edit.setText(sha256)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.submitted.connect(self.start_download)
        dialog.finished.connect(lambda _r=0, d=dialog: self._forget_url_dialog(d))
        self.url_dialog = dialog
        dialog.open()
        return dialog

    def _forget_url_dialog(self, dialog: DownloadUrlDialog) -> None:
        if self.url_dialog is dialog:
            self.url_dialog = None

    def open_folder(self) -> None:
        """Open the models folder in the file manager (made first if it is not there);
        when that fails, show its path with Copy path."""
        self.tasks.spawn(self._open_folder(self.models_path()), name="open models folder")

    async def _open_folder(self, path: Path) -> None:
        try:
            await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            self._show_folder(
                f"The models folder {path} could not be created: {exc.strerror or exc}.", path
            )
            return
        if QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
            return
        log.warning("The file manager could not open the models folder %s", path)
        self._show_folder(
            f"The models folder could not be opened in a file manager. It is {path}", path
        )

    def _show_folder(self, text: str, path: Path) -> None:
        box = QMessageBox(self.window)
        box.setObjectName("modelsFolderBox")
        box.setIcon(QMessageBox.Icon.Information)
        box.setWindowTitle("Models folder")
        box.setText(text)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        copy = box.addButton("Copy path", QMessageBox.ButtonRole.ActionRole)
        copy.setObjectName("modelsFolderCopyButton")
        close = box.addButton(QMessageBox.StandardButton.Close)
        close.setObjectName("modelsFolderCloseButton")
        box.setDefaultButton(close)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(button: QAbstractButton) -> None:
            if button.objectName() == "modelsFolderCopyButton":
                QGuiApplication.clipboard().setText(str(path))
                self.window.statusBar().showMessage(f"Copied {path}.", 8000)

        box.buttonClicked.connect(answered)
        box.finished.connect(lambda _r=0, b=box: self._forget_folder_box(b))
        self.folder_box = box
        box.open()

    def _forget_folder_box(self, box: QMessageBox) -> None:
        if self.folder_box is box:
            self.folder_box = None

    # -- drops on the fleet -----------------------------------------------------------
    def accept_drops_on(self, widget: QWidget) -> None:
        """Take GGUF files dropped onto ``widget`` (a view: onto its viewport)."""
        widget.setAcceptDrops(True)
        widget.installEventFilter(self)
        viewport = getattr(widget, "viewport", None)
        if callable(viewport):
            target = viewport()
            target.setAcceptDrops(True)
            target.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            return super().eventFilter(watched, event)
        if not isinstance(event, QDropEvent):
            return False
        mime = event.mimeData()
        if not gguf_paths(mime) and not gguf_links(mime):
            event.ignore()  # not ours: the drag is not accepted
            return True
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        if kind == QEvent.Type.Drop:
            self.drop(event.mimeData())
        return True

    def drop(self, mime: QMimeData) -> bool:
        """Import the GGUF files of a drop (one copy-or-link question for all of them), or
        for a dropped link to a GGUF file, open the download dialog with its address;
        False when the drop holds neither."""
        paths = gguf_paths(mime)
        if not paths:
            links = gguf_links(mime)
            if not links:
                return False
            if len(links) > 1:
                self.window.statusBar().showMessage(
                    f"{len(links)} links dropped: one download at a time, the first is filled in.",
                    8000,
                )
            self.ask_url(links[0])
            return True
        others = len(mime.urls()) - len(paths)
        if others:
            self.window.statusBar().showMessage(
                f"{others} dropped item(s) left out: only .gguf files can be added.", 8000
            )
        self.import_files(paths)
        return True

    # -- importing --------------------------------------------------------------------
    def import_files(self, paths: Sequence[Path], *, link: bool | None = None) -> None:
        """Bring ``paths`` into the models folder, copied or (``link``) linked; with
        ``link`` None, ask first (one question for all of them)."""
        paths = [Path(p) for p in paths]
        if not paths or not self._available():
            return
        if link is None:
            self._ask_mode(paths)
        else:
            self.start_import(paths, link=link)

    def _ask_mode(self, paths: list[Path]) -> None:
        folder = self.models_path()
        what = paths[0].name if len(paths) == 1 else f"{len(paths)} model files"
        size = _size_of(paths)  # a stat per file: cheap
        space = f"takes {fmt.human_size(size)} more" if size is not None else "takes space"
        box = QMessageBox(self.window)
        box.setObjectName("importModeBox")
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Add to the built-in engine")
        box.setText(f"Add {what} to the built-in engine's models folder?")
        box.setInformativeText(
            f"A copy {space} on the drive of {folder} and keeps working whatever happens to "
            "the original. A link takes no extra space, but the model stops working if the "
            "original file is moved or deleted."
        )
        copy = box.addButton("Copy into the models folder", QMessageBox.ButtonRole.AcceptRole)
        copy.setObjectName("importCopyButton")
        link = box.addButton("Link (no extra space)", QMessageBox.ButtonRole.AcceptRole)
        link.setObjectName("importLinkButton")
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        cancel.setObjectName("importCancelButton")
        box.setDefaultButton(copy)
        box.setEscapeButton(cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def answered(button: QAbstractButton) -> None:
            name = button.objectName()
            if name in ("importCopyButton", "importLinkButton"):
                self.start_import(paths, link=name == "importLinkButton")

        box.buttonClicked.connect(answered)
        box.finished.connect(lambda _r=0, b=box: self._forget_mode_box(b))
        self.mode_box = box
        box.open()

    def _forget_mode_box(self, box: QMessageBox) -> None:
        if self.mode_box is box:
            self.mode_box = None

    def start_import(self, paths: Sequence[Path], *, link: bool) -> TransferDialog:
        """Import ``paths`` one after the other, with a progress dialog."""
        paths = [Path(p) for p in paths]
        how = "Link" if link else "Import"
        dialog = self._new_dialog("import", f"{how} into the built-in engine")
        task = self.tasks.spawn(self._import(dialog, paths, link), name="import models")
        dialog.begin(task, paths[0].name, "Reading the file…")
        return dialog

    async def _import(self, dialog: TransferDialog, paths: list[Path], link: bool) -> None:
        folder = ModelsFolder(self.models_path())
        imported: list[str] = []
        problems: list[str] = []
        for number, src in enumerate(paths, 1):
            of = f" ({number} of {len(paths)})" if len(paths) > 1 else ""
            dialog.name_label.setText(src.name + of)
            dialog.bytes_label.setText(fmt.DASH)
            if link:
                dialog.show_busy()
                dialog.show_text(f"Linking {src.name} into {folder.path}…")
            else:
                dialog.bar.setValue(0)
                dialog.show_text(f"Copying {src.name} into {folder.path}…")
            try:
                model = await folder.import_file_async(src, link=link, progress=dialog.show_bytes)
            except asyncio.CancelledError:
                text = f"Import stopped; nothing of {src.name} was left in the models folder."
                if imported:  # listed at the next refresh (nothing new starts while stopping)
                    text += f" Imported before the stop: {', '.join(imported)}."
                dialog.stop(text)
                raise
            except CorralError as exc:
                log.info("import of %s refused: %s", src, exc.message)
                problems.append(exc.message)
                continue
            imported.append(model.name)
        if problems:
            text = " ".join(problems)
            if imported:
                text = f"Imported {', '.join(imported)}. Not imported: {text}"
                self._added(imported, f"Imported {', '.join(imported)} into the built-in engine.")
            dialog.fail(text)
            self.window.show_error(text)
            return
        verb = "Linked" if link else "Imported"
        names = ", ".join(imported)
        dialog.finish(f"{verb} {names}; the built-in engine lists it now.")
        self._added(imported, f"{verb} {names} into the built-in engine's models folder.")

    # -- downloading ------------------------------------------------------------------
    def start_download(
        self, url: str, sha256: str = "", *, dialog: TransferDialog | None = None
    ) -> TransferDialog | None:
        """Download ``url`` into the models folder (checked against ``sha256`` when given)
        with a progress dialog; a download of the same URL stopped earlier resumes."""
        url = url.strip()
        if not self._available():
            return None
        try:
            name = download_name(url)
        except InvalidInput as exc:
            self.window.show_error(exc.message)
            return None
        if url in self._downloading:
            self.window.show_error(f"{name} is already being downloaded from {url}.")
            return None
        if dialog is None:
            dialog = self._new_dialog("download", "Download into the built-in engine")
            dialog.resumeRequested.connect(
                lambda d=dialog: self.start_download(url, sha256, dialog=d)
            )
        self._downloading.add(url)
        task = self.tasks.spawn(self._download(dialog, url, sha256), name=f"download {name}")
        dialog.begin(task, name, f"Connecting to {httpx.URL(url).host}…")
        dialog.show()
        return dialog

    async def _download(self, dialog: TransferDialog, url: str, sha256: str) -> None:
        try:
            path = await download(
                url, self.models_path(), sha256=sha256 or None, progress=dialog.show_download
            )
        except asyncio.CancelledError:
            dialog.stop(PAUSED)
            self.window.statusBar().showMessage(PAUSED, 8000)
            raise
        except CorralError as exc:
            dialog.fail(exc.message)
            self.window.show_error(exc.message)
            self._downloading.discard(url)
            self.refresh_paused()
            return
        finally:
            self._downloading.discard(url)
        name = _model_name(path)
        checked = " and matches its SHA-256" if sha256 else ""
        dialog.finish(f"{path.name} is in the models folder{checked}; it is listed as {name}.")
        self.window.tray.notify("Download finished", f"{name} is ready in the built-in engine.")
        self._added([name], f"Downloaded {name} into the built-in engine's models folder.")

    # -- dialogs and results ----------------------------------------------------------
    def _new_dialog(self, kind: str, title: str) -> TransferDialog:
        dialog = TransferDialog(kind, title, self.window)
        self.dialogs.append(dialog)
        dialog.finished.connect(lambda _r=0, d=dialog: self._dispose(d))
        dialog.stateChanged.connect(lambda _s, d=dialog: self._dispose(d))
        dialog.show()
        return dialog

    def _dispose(self, dialog: TransferDialog) -> None:
        """Delete a progress dialog once it is closed and its work has ended."""
        if dialog in self.dialogs and not dialog.isVisible() and not dialog.running:
            self.dialogs.remove(dialog)
            dialog.deleteLater()

    def _added(self, names: list[str], message: str) -> None:
        self.window.statusBar().showMessage(message, 8000)
        self._select_after = names[-1]
        self.window.models_changed(ENGINE_ID)
        self.modelsAdded.emit(list(names))

    # -- paused downloads -------------------------------------------------------------
    def refresh_paused(self) -> asyncio.Task[None]:
        """Read the paused downloads of the models folder again (in a worker thread)."""
        if self._paused_task is None or self._paused_task.done():
            self._paused_task = self.tasks.spawn(self._read_paused(), name="paused downloads")
        return self._paused_task

    async def _read_paused(self) -> None:
        try:
            async with asyncio.timeout(10.0):
                found = await asyncio.to_thread(paused_downloads, self.models_path())
        except TimeoutError:
            log.warning("The models folder %s took too long to read", self.models_path())
            return
        running = self._downloading
        self.paused = [p for p in found if p.url not in running]
        self.paused_menu.clear()
        for paused in self.paused:
            done = fmt.human_size(paused.done)
            of = f" of {fmt.human_size(paused.total)}" if paused.total else ""
            action = self.paused_menu.addAction(f"{paused.name}: {done}{of} so far")
            action.setToolTip(paused.url)
            action.triggered.connect(lambda _checked=False, p=paused: self.ask_url(p.url, p.sha256))
        self.paused_menu.setEnabled(bool(self.paused))

    def _on_models_refreshed(self, host_id: str) -> None:
        if host_id == ENGINE_ID:
            self.refresh_paused()
        if (
            host_id == ENGINE_ID
            and self._select_after
            and self.window.select_model(self._select_after)
        ):
            self._select_after = ""
