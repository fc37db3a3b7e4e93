"""The Settings dialog: polling, network scan, graphs, appearance, tray, data, logging.

Every field is checked as the user types, with a plain message beside it; OK and Apply stay
disabled, with the reason below, until every field is usable. Apply (or OK) writes the
settings file (atomically, through the registry's store) and hands the changes to a
:class:`app.ui.settings_apply.SettingsApplier`, so they take effect at once; only the chat
history location waits for the next start, and the dialog says so. If the file cannot be
written, nothing changes and the dialog stays open with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.discovery.scanner import check_ports
from app.core.errors import CorralError, InvalidInput
from app.core.hosts.ollama import normalize_keep_alive
from app.core.mcp.config import default_mcp_path
from app.core.settings import (
    ENGINE_LIMITS,
    GRAPH_WINDOW_LIMITS,
    LOG_LEVELS,
    TELEMETRY_INTERVAL_LIMITS,
    THEMES,
    Settings,
    default_chat_path,
    default_log_dir,
    default_settings_path,
)
from app.ui.settings_apply import NEXT_START_FIELDS, SettingsApplier

#: Writes the settings as they are now; returns the problem in plain words, or None.
SaveSettings = Callable[[], str | None]
#: Opens a folder in the file manager; returns False when nothing could open it.
OpenFolder = Callable[[Path], bool]

ERROR_STYLE = "color: #b3261e;"
NOTE_STYLE = "color: palette(mid);"

THEME_LABELS = {"system": "Follow the system", "light": "Light", "dark": "Dark"}
LOG_LEVEL_LABELS = {
    "DEBUG": "Debug (everything, for finding a problem)",
    "INFO": "Info",
    "WARNING": "Warnings and errors",
    "ERROR": "Errors only",
}


@dataclass(frozen=True)
class _Number:
    """A numeric field: its label, tab, range, decimals, step, unit and tooltip."""

    name: str
    label: str
    tab: str
    low: float
    high: float
    decimals: int
    step: float
    unit: str
    tip: str = ""


HOSTS_TAB = "Hosts & polling"
SCAN_TAB = "Network scan"
GRAPHS_TAB = "Graphs"
APPEARANCE_TAB = "Appearance"
TRAY_TAB = "Tray"
DATA_TAB = "Data"
ENGINE_TAB = "Built-in engine"
LOGGING_TAB = "Logging"

NUMBERS = (
    _Number(
        "refresh_interval_s",
        "Check hosts every",
        HOSTS_TAB,
        0.25,
        3600.0,
        2,
        0.5,
        " s",
        "How often every host is asked whether it answers (and the models list is read)",
    ),
    _Number(
        "slow_rtt_ms",
        "Slow above",
        HOSTS_TAB,
        10.0,
        60000.0,
        0,
        100.0,
        " ms",
        "A host whose round trip takes longer is shown as degraded",
    ),
    _Number(
        "backoff_max_s",
        "Longest wait for a host that is down",
        HOSTS_TAB,
        1.0,
        3600.0,
        1,
        5.0,
        " s",
        "A host that does not answer is asked less and less often, up to this wait",
    ),
    _Number("connect_timeout_s", "Connect timeout", HOSTS_TAB, 0.1, 120.0, 1, 0.5, " s"),
    _Number("request_timeout_s", "Request timeout", HOSTS_TAB, 1.0, 3600.0, 1, 5.0, " s"),
    _Number(
        "load_timeout_s",
        "Model load timeout",
        HOSTS_TAB,
        5.0,
        7200.0,
        0,
        30.0,
        " s",
        "Big models on slow disks take minutes to load",
    ),
    _Number(
        "probe_timeout_s",
        "Health check timeout",
        HOSTS_TAB,
        0.1,
        120.0,
        1,
        0.5,
        " s",
        "A host that takes longer to answer a health check is offline",
    ),
    _Number(
        "graph_window_s",
        "Graphs show the last",
        GRAPHS_TAB,
        GRAPH_WINDOW_LIMITS[0],
        GRAPH_WINDOW_LIMITS[1],
        0,
        60.0,
        " s",
        "The time span of the hardware and latency graphs",
    ),
    _Number(
        "telemetry_interval_s",
        "Take a hardware sample every",
        GRAPHS_TAB,
        TELEMETRY_INTERVAL_LIMITS[0],
        TELEMETRY_INTERVAL_LIMITS[1],
        1,
        0.5,
        " s",
        "GPU, CPU and memory figures are read this often",
    ),
)

#: The built-in engine's whole-number fields: label, the value that means "automatic"
#: (shown as words), and the tooltip.
ENGINE_NUMBERS = (
    (
        "engine_context",
        "Context size",
        "the model's own",
        " tokens",
        "Tokens of conversation the model can see; a larger context takes more memory. "
        "Never more than the model was trained for.",
    ),
    (
        "engine_threads",
        "CPU threads",
        "one per core",
        "",
        "Threads the engine computes with",
    ),
    (
        "engine_gpu_layers",
        "Layers on the GPU",
        "as many as fit",
        "",
        "Layers of the model put on the GPU when llama.cpp has a GPU build and finds one (0: none)",
    ),
)

#: The settings this dialog edits (the rest of the file is left as it is).
EDITED_FIELDS = frozenset(
    {n.name for n in NUMBERS}
    | {
        "default_keep_alive",
        "scan_ports",
        "scan_max_prefix",
        "theme",
        "close_to_tray",
        "notifications",
        "chat_db_path",
        "log_level",
    }
    | {name for name, *_ in ENGINE_NUMBERS}
)


@dataclass(frozen=True)
class DataPaths:
    """Where Corral keeps its files in this run (shown in the Data tab).

    Attributes:
        settings_file: the settings file.
        chat_db: the chat history in use.
        mcp_config: the MCP servers' config file.
        log_dir: the folder for log files.
        models_dir: the built-in engine's models folder (None: as the settings say).
    """

    settings_file: Path
    chat_db: Path
    mcp_config: Path
    log_dir: Path
    models_dir: Path | None = None

    @classmethod
    def defaults(cls, settings: Settings) -> DataPaths:
        """The default places (the chat history and models folder as the settings say)."""
        return cls(
            default_settings_path(),
            settings.chat_path(),
            default_mcp_path(),
            default_log_dir(),
            settings.models_path(),
        )


def open_in_file_manager(folder: Path) -> bool:
    """Open ``folder`` in the desktop's file manager."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


def parse_ports(text: str) -> list[int]:
    """Ports typed as a list ("11434, 1234 8080"): each once, in order; InvalidInput with
    the reason when one is not a port."""
    tokens = [t for t in re.split(r"[,;\s]+", text.strip()) if t]
    if not tokens:
        raise InvalidInput("Enter at least one port, for example 11434.")
    numbers: list[int] = []
    for token in tokens:
        try:
            numbers.append(int(token))
        except ValueError:
            raise InvalidInput(f"“{token}” is not a port number from 1 to 65535.") from None
    return list(check_ports(numbers))


def check_keep_alive(text: str) -> str:
    """The keep-alive as it will be saved; InvalidInput when Ollama would not take it."""
    value = text.strip()
    if not value:
        raise InvalidInput("Enter how long models stay loaded, for example 5m.")
    try:
        normalize_keep_alive(value)
    except InvalidInput:
        raise InvalidInput(
            f"“{value}” is not a duration Ollama understands: use e.g. 30s, 5m, 1h30m, "
            "a number of seconds, 0 (unload at once) or -1 (keep loaded)."
        ) from None
    return value


def check_chat_path(text: str) -> str:
    """The chat history location as it will be saved ("" for the default); InvalidInput
    when it cannot be a database file."""
    value = text.strip()
    if not value:
        return ""
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise InvalidInput(f"Enter a full path, such as {default_chat_path()}.")
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder: enter a file in it, such as {path / 'chat.db'}.")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise InvalidInput(f"{parent} is a file, so no folder can be made there.")
    return value


def _prefix_note(prefix: int) -> str:
    count = 2 ** (32 - prefix)
    return (
        f"A /{prefix} has {count:,} addresses. A network of this computer that is larger is "
        f"narrowed to the /{prefix} around this computer's own address; a network you type "
        "in the scan dialog is scanned as typed."
    )


class SettingsDialog(QDialog):
    """Corral's settings, in tabs: Hosts & polling, Network scan, Graphs, Appearance, Tray,
    Data and Logging.

    ``settings`` is the live settings object (the registry's): Apply changes its edited
    fields in place, then calls ``save`` (which writes them, or returns why not: then the
    fields are put back and the dialog says why) and the ``applier``.

    Attributes:
        tabs: the tabs.
        spins: the numeric fields by setting name (QDoubleSpinBox).
        keep_alive_edit, ports_edit, prefix_spin, theme_combo, tray_check,
        notifications_check, chat_path_edit, log_level_combo: the other fields.
        field_messages: the message beside each field, by setting name.
        path_edits, open_buttons: the Data tab's locations and their "Open folder" buttons
            (keys: settings, chat, mcp, logs).
        message: below the tabs: why OK is disabled, or what Apply did.
        ok_button, apply_button, cancel_button, defaults_button: the buttons.

    Object names: settingsDialog, settingsTabs, settingsMessage, settingsOkButton,
    settingsApplyButton, settingsCancelButton, settingsDefaultsButton, ``<name>Edit`` for
    each setting (e.g. refresh_interval_sEdit, scan_portsEdit) and ``<name>Message`` for
    its message, ``<key>PathEdit`` / ``<key>OpenButton`` for the Data tab.

    Signals:
        applied(Settings, frozenset): after a successful Apply or OK, with the live
            settings and the names of the fields that changed.
    """

    applied = Signal(object, object)

    def __init__(
        self,
        settings: Settings,
        save: SaveSettings,
        *,
        paths: DataPaths | None = None,
        applier: SettingsApplier | None = None,
        open_folder: OpenFolder = open_in_file_manager,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self._settings = settings
        self._save = save
        self._applier = applier
        self._open_folder = open_folder
        self.paths = paths or DataPaths.defaults(settings)
        self._labels: dict[str, tuple[str, str]] = {}  # setting -> (label, tab)
        self.field_messages: dict[str, QLabel] = {}
        self.spins: dict[str, QDoubleSpinBox] = {}

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("settingsTabs")
        forms = {
            name: self._add_tab(name)
            for name in (
                HOSTS_TAB,
                SCAN_TAB,
                GRAPHS_TAB,
                APPEARANCE_TAB,
                TRAY_TAB,
                DATA_TAB,
                ENGINE_TAB,
                LOGGING_TAB,
            )
        }
        for spec in NUMBERS:
            spin = QDoubleSpinBox(self)
            current = float(getattr(settings, spec.name))
            # a value from the file outside the offered range is shown, not clipped
            spin.setRange(min(spec.low, current), max(spec.high, current))
            spin.setDecimals(spec.decimals)
            spin.setSingleStep(spec.step)
            spin.setSuffix(spec.unit)
            spin.setToolTip(spec.tip)
            spin.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToPreviousValue)
            self.spins[spec.name] = spin
            self._add_field(forms[spec.tab], spec.name, spec.label, spec.tab, spin)
            if spec.name == "probe_timeout_s":
                self._add_keep_alive(forms[HOSTS_TAB])

        self.ports_edit = QLineEdit(self)
        self.ports_edit.setPlaceholderText("11434, 1234, 8080, 8000")
        self.ports_edit.setToolTip(
            "Ports a scan probes (and this computer is checked on): Ollama 11434, LM Studio "
            "1234, llama.cpp 8080, vLLM 8000"
        )
        self._add_field(forms[SCAN_TAB], "scan_ports", "Ports", SCAN_TAB, self.ports_edit)
        self.prefix_spin = QSpinBox(self)
        self.prefix_spin.setRange(16, 32)
        self.prefix_spin.setPrefix("/")
        self.prefix_spin.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToPreviousValue)
        self._add_field(
            forms[SCAN_TAB],
            "scan_max_prefix",
            "Largest network scanned without asking",
            SCAN_TAB,
            self.prefix_spin,
        )
        self.prefix_note = self._note(forms[SCAN_TAB], "")

        self.theme_combo = QComboBox(self)
        for theme in THEMES:
            self.theme_combo.addItem(THEME_LABELS[theme], theme)
        self._add_field(forms[APPEARANCE_TAB], "theme", "Theme", APPEARANCE_TAB, self.theme_combo)

        self.tray_check = QCheckBox("Closing the window keeps Corral running in the tray", self)
        self._add_field(forms[TRAY_TAB], "close_to_tray", "", TRAY_TAB, self.tray_check)
        self.notifications_check = QCheckBox(
            "Show notifications (a download finished, a host stopped answering)", self
        )
        self._add_field(forms[TRAY_TAB], "notifications", "", TRAY_TAB, self.notifications_check)

        self.path_edits: dict[str, QLineEdit] = {}
        self.open_buttons: dict[str, QPushButton] = {}
        data = forms[DATA_TAB]
        self._add_location(data, "settings", "Settings file", self.paths.settings_file.parent)
        self._add_location(data, "chat", "Chat history in use", self.paths.chat_db.parent)
        self.chat_path_edit = QLineEdit(self)
        self.chat_path_edit.setPlaceholderText(f"default: {default_chat_path()}")
        self.chat_path_edit.setToolTip("A SQLite file; leave empty for the default location")
        self._add_field(
            data, "chat_db_path", "Chat history location", DATA_TAB, self.chat_path_edit
        )
        self._note(
            data,
            "Takes effect at the next start (every other setting applies at once). Move the "
            "file there yourself to keep your past chats.",
        )
        self._add_location(data, "mcp", "MCP servers file", self.paths.mcp_config.parent)
        self._add_location(data, "logs", "Log folder", self.paths.log_dir)
        self.path_edits["settings"].setText(str(self.paths.settings_file))
        self.path_edits["chat"].setText(str(self.paths.chat_db))
        self.path_edits["mcp"].setText(str(self.paths.mcp_config))
        self.path_edits["logs"].setText(str(self.paths.log_dir))

        engine = forms[ENGINE_TAB]
        self.engine_spins: dict[str, QSpinBox] = {}
        for name, label, automatic, unit, tip in ENGINE_NUMBERS:
            low, high = ENGINE_LIMITS[name]
            whole = QSpinBox(self)
            whole.setRange(low, high)
            whole.setSpecialValueText(automatic)  # shown for the lowest value
            whole.setSuffix(unit)
            whole.setToolTip(tip)
            whole.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToPreviousValue)
            if name == "engine_context":
                whole.setSingleStep(1024)
            self.engine_spins[name] = whole
            self._add_field(engine, name, label, ENGINE_TAB, whole)
        self._note(engine, "Used from the next model the engine loads.")
        models_dir = self.paths.models_dir or settings.models_path()
        self._add_location(engine, "models", "Models folder", models_dir)
        self.path_edits["models"].setText(str(models_dir))

        self.log_level_combo = QComboBox(self)
        for level in LOG_LEVELS:
            self.log_level_combo.addItem(LOG_LEVEL_LABELS[level], level)
        self._add_field(
            forms[LOGGING_TAB], "log_level", "Log level", LOGGING_TAB, self.log_level_combo
        )
        self._note(forms[LOGGING_TAB], "Messages less important than this are not logged.")

        self.message = QLabel(self)
        self.message.setObjectName("settingsMessage")
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        B = QDialogButtonBox.StandardButton
        self.buttons = QDialogButtonBox(
            B.Ok | B.Apply | B.Cancel | B.RestoreDefaults, Qt.Orientation.Horizontal, self
        )
        self.ok_button = self.buttons.button(B.Ok)
        self.ok_button.setObjectName("settingsOkButton")
        self.apply_button = self.buttons.button(B.Apply)
        self.apply_button.setObjectName("settingsApplyButton")
        self.cancel_button = self.buttons.button(B.Cancel)
        self.cancel_button.setObjectName("settingsCancelButton")
        self.defaults_button = self.buttons.button(B.RestoreDefaults)
        self.defaults_button.setObjectName("settingsDefaultsButton")
        self.defaults_button.setToolTip("Fill in the default values (applied on OK or Apply)")

        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.resize(780, 470)  # every tab's title shows

        self.show_settings(settings)
        self._wire()
        self._refresh_state()

    # -- building ---------------------------------------------------------------------
    def _add_tab(self, title: str) -> QFormLayout:
        page = QWidget(self.tabs)
        page.setObjectName("settingsTab" + "".join(w.title() for w in re.findall(r"\w+", title)))
        form = QFormLayout(page)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.tabs.addTab(page, title.replace("&", "&&"))
        return form

    def _add_field(
        self, form: QFormLayout, name: str, label: str, tab: str, widget: QWidget
    ) -> None:
        widget.setObjectName(f"{name}Edit")
        message = QLabel(self)
        message.setObjectName(f"{name}Message")
        message.setWordWrap(True)
        message.setTextFormat(Qt.TextFormat.PlainText)
        message.setStyleSheet(ERROR_STYLE)
        message.hide()
        box = QWidget(self)
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(widget)
        column.addWidget(message)
        if label:
            form.addRow(f"{label}:", box)
        else:
            form.addRow(box)
        self.field_messages[name] = message
        self._labels[name] = (label or _checkbox_text(widget), tab)

    def _add_keep_alive(self, form: QFormLayout) -> None:
        self.keep_alive_edit = QLineEdit(self)
        self.keep_alive_edit.setPlaceholderText("5m")
        self.keep_alive_edit.setToolTip(
            "How long Ollama keeps a model in memory after Load or a reply: 30s, 5m, 1h, "
            "0 (unload at once) or -1 (keep loaded)"
        )
        self._add_field(
            form, "default_keep_alive", "Keep models loaded for", HOSTS_TAB, self.keep_alive_edit
        )

    def _note(self, form: QFormLayout, text: str) -> QLabel:
        note = QLabel(text, self)
        note.setWordWrap(True)
        note.setTextFormat(Qt.TextFormat.PlainText)
        note.setStyleSheet(NOTE_STYLE)
        form.addRow(note)
        return note

    def _add_location(self, form: QFormLayout, key: str, label: str, folder: Path) -> None:
        edit = QLineEdit(self)
        edit.setObjectName(f"{key}PathEdit")
        edit.setReadOnly(True)
        button = QPushButton("Open folder", self)
        button.setObjectName(f"{key}OpenButton")
        button.setToolTip(str(folder))
        button.clicked.connect(lambda: self.open_folder(folder))
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(button)
        form.addRow(f"{label}:", row)
        self.path_edits[key] = edit
        self.open_buttons[key] = button

    def _wire(self) -> None:
        for spin in self.spins.values():
            spin.textChanged.connect(self._refresh_state)
        self.keep_alive_edit.textChanged.connect(self._refresh_state)
        self.ports_edit.textChanged.connect(self._refresh_state)
        self.prefix_spin.textChanged.connect(self._refresh_state)
        for engine_spin in self.engine_spins.values():
            engine_spin.textChanged.connect(self._refresh_state)
        self.theme_combo.currentIndexChanged.connect(self._refresh_state)
        self.tray_check.toggled.connect(self._refresh_state)
        self.notifications_check.toggled.connect(self._refresh_state)
        self.chat_path_edit.textChanged.connect(self._refresh_state)
        self.log_level_combo.currentIndexChanged.connect(self._refresh_state)
        self.buttons.clicked.connect(self._on_button)

    # -- showing and reading ----------------------------------------------------------
    def show_settings(self, settings: Settings) -> None:
        """Fill the fields from ``settings`` (nothing is applied)."""
        for name, spin in self.spins.items():
            value = float(getattr(settings, name))
            spin.setRange(min(spin.minimum(), value), max(spin.maximum(), value))
            spin.setValue(value)
        self.keep_alive_edit.setText(settings.default_keep_alive)
        self.ports_edit.setText(", ".join(str(p) for p in settings.scan_ports))
        self.prefix_spin.setValue(settings.scan_max_prefix)
        for name, whole in self.engine_spins.items():
            whole.setValue(int(getattr(settings, name)))
        self.theme_combo.setCurrentIndex(max(0, self.theme_combo.findData(settings.theme)))
        self.tray_check.setChecked(settings.close_to_tray)
        self.notifications_check.setChecked(settings.notifications)
        self.chat_path_edit.setText(settings.chat_db_path)
        self.log_level_combo.setCurrentIndex(
            max(0, self.log_level_combo.findData(settings.log_level))
        )

    def restore_defaults(self) -> None:
        """Fill in the default values; they are applied on OK or Apply, not before."""
        self.show_settings(Settings())
        self.message.setStyleSheet("")
        self.message.setText("Default values filled in: press OK or Apply to use them.")

    def read(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The values of the fields by setting name, and the problems by setting name."""
        values: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for spec in NUMBERS:
            spin = self.spins[spec.name]
            if not spin.hasAcceptableInput():
                problems[spec.name] = (
                    f"Enter a number from {spin.minimum():g} to {spin.maximum():g}."
                )
                continue
            current = float(getattr(self._settings, spec.name))
            value = spin.value()
            # a value shown rounded and left alone stays as it was
            unchanged = spin.textFromValue(value) == spin.textFromValue(current)
            values[spec.name] = current if unchanged else value
        checks: tuple[tuple[str, Callable[[], Any]], ...] = (
            ("default_keep_alive", lambda: check_keep_alive(self.keep_alive_edit.text())),
            ("scan_ports", lambda: parse_ports(self.ports_edit.text())),
            ("chat_db_path", lambda: check_chat_path(self.chat_path_edit.text())),
        )
        for name, check in checks:
            try:
                values[name] = check()
            except CorralError as exc:
                problems[name] = exc.message
        for name, whole in self.engine_spins.items():
            if whole.hasAcceptableInput():
                values[name] = whole.value()
            else:
                problems[name] = (
                    f"Enter a whole number from {whole.minimum()} to {whole.maximum()}."
                )
        if self.prefix_spin.hasAcceptableInput():
            values["scan_max_prefix"] = self.prefix_spin.value()
        else:
            problems["scan_max_prefix"] = "Enter a network size from /16 to /32."
        values["theme"] = str(self.theme_combo.currentData())
        values["close_to_tray"] = self.tray_check.isChecked()
        values["notifications"] = self.notifications_check.isChecked()
        values["log_level"] = str(self.log_level_combo.currentData())
        return values, problems

    def changes(self) -> frozenset[str]:
        """The settings whose fields differ from the live settings (valid fields only)."""
        values, _ = self.read()
        return frozenset(n for n, v in values.items() if getattr(self._settings, n) != v)

    def _refresh_state(self) -> None:
        values, problems = self.read()
        for name, label in self.field_messages.items():
            text = problems.get(name, "")
            label.setText(text)
            label.setVisible(bool(text))
        self.prefix_note.setText(_prefix_note(self.prefix_spin.value()))
        changed = {n for n, v in values.items() if getattr(self._settings, n) != v}
        if problems:
            where = ", ".join(
                f"{self._labels[n][0]} ({self._labels[n][1]})" for n in sorted(problems)
            )
            reason = f"Nothing can be applied until these are fixed: {where}."
            self.message.setStyleSheet(ERROR_STYLE)
            self.message.setText(reason)
            for button in (self.ok_button, self.apply_button):
                button.setEnabled(False)
                button.setToolTip(reason)
            return
        if self.message.styleSheet() == ERROR_STYLE:
            self.message.setStyleSheet("")
            self.message.clear()
        self.ok_button.setEnabled(True)
        self.ok_button.setToolTip("")
        self.apply_button.setEnabled(bool(changed))
        self.apply_button.setToolTip("" if changed else "Nothing has changed.")

    # -- applying ---------------------------------------------------------------------
    def _on_button(self, button: QAbstractButton) -> None:
        if button is self.apply_button:
            self.apply()
        elif button is self.ok_button:
            self.accept()
        elif button is self.defaults_button:
            self.restore_defaults()
        elif button is self.cancel_button:
            self.reject()

    def apply(self) -> bool:
        """Save the changed fields and apply them; False (with the reason shown) when the
        input is not usable, the file could not be written, or a change did not apply."""
        values, problems = self.read()
        if problems:
            self._refresh_state()
            return False
        changed = frozenset(n for n, v in values.items() if getattr(self._settings, n) != v)
        if not changed:
            return True
        before = {n: getattr(self._settings, n) for n in changed}
        for name in changed:
            setattr(self._settings, name, values[name])
        problem = self._save()
        if problem is not None:
            for name, value in before.items():
                setattr(self._settings, name, value)
            self._say(problem, error=True)
            return False
        failures = self._applier.apply(self._settings, changed) if self._applier else []
        self.applied.emit(self._settings, changed)
        self._refresh_state()
        if failures:
            self._say(" ".join(failures), error=True)
            return False
        done = "Settings saved and applied."
        if changed & NEXT_START_FIELDS:
            done += " The chat history location takes effect at the next start."
        self._say(done)
        return True

    def accept(self) -> None:
        """OK: apply, and close unless something went wrong (then the reason is shown)."""
        if self.apply():
            super().accept()

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message.setStyleSheet(ERROR_STYLE if error else "")
        self.message.setText(text)

    # -- folders ----------------------------------------------------------------------
    def open_folder(self, folder: Path) -> bool:
        """Open ``folder`` in the file manager, or say why not."""
        if not folder.is_dir():
            self._say(
                f"The folder {folder} does not exist yet: Corral makes it when it first "
                "writes a file there.",
                error=True,
            )
            return False
        if not self._open_folder(folder):
            self._say(
                f"The folder {folder} could not be opened: no file manager answered.", error=True
            )
            return False
        return True


def _checkbox_text(widget: QWidget) -> str:
    return widget.text() if isinstance(widget, QCheckBox) else ""


__all__ = [
    "EDITED_FIELDS",
    "DataPaths",
    "SettingsDialog",
    "check_chat_path",
    "check_keep_alive",
    "parse_ports",
]
