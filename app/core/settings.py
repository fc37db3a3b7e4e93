"""The settings file: JSON under the platform config directory, with a schema version.

Writes are atomic (a temporary file in the same folder, flushed and fsynced, then renamed
over the old one), so a crash never leaves half a file. A file that cannot be used
(corrupt JSON, wrong shape, written by a newer Corral, unreadable) is moved aside as a
backup, the problem is reported in plain words, and defaults are used. Nothing the user
configured is silently overwritten: if the bad file cannot even be moved aside, the store
goes read-only and says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import platformdirs

from app.core.errors import SettingsError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
APP_NAME = "corral"


#: The choices of the Appearance setting.
THEMES = ("system", "light", "dark")
#: The choices of the log level setting, most talkative first.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Seconds the hardware and latency graphs may show: 1 minute to 1 hour.
GRAPH_WINDOW_LIMITS = (60.0, 3600.0)
#: Seconds between two hardware samples: 0.5 s to 1 minute.
TELEMETRY_INTERVAL_LIMITS = (0.5, 60.0)


def default_settings_path() -> Path:
    return platformdirs.user_config_path(APP_NAME, appauthor=False) / "settings.json"


def default_chat_path() -> Path:
    """Where the chat history lives unless the settings name another file."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "chat.db"


def default_models_dir() -> Path:
    """Where model files of a built-in engine go unless the settings name another folder."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "models"


def default_log_dir() -> Path:
    """The folder for Corral's log files."""
    return platformdirs.user_log_path(APP_NAME, appauthor=False)


#: The ranges the built-in engine's settings accept.
ENGINE_LIMITS = {
    "engine_context": (0, 1 << 20),
    "engine_threads": (0, 1024),
    "engine_gpu_layers": (-1, 10000),
}


@dataclass
class HeaderEntry:
    """A header of a host. A secret header's value lives in the OS keyring, not here."""

    name: str
    value: str = ""
    secret: bool = False


@dataclass
class HostEntry:
    """A host the user added (or a built-in host the user edited, under the same id).

    ``agent_url`` / ``exporter_url`` say where its hardware figures come from ("" for
    none); ``agent_token`` says that a token for them is kept in the OS keyring (the token
    itself is never written here).
    """

    id: str
    name: str
    url: str
    kind: str = "ollama"
    headers: list[HeaderEntry] = field(default_factory=list)
    agent_url: str = ""
    exporter_url: str = ""
    agent_token: bool = False


@dataclass
class Settings:
    """Everything Corral keeps between runs (schema version 1)."""

    hosts: list[HostEntry] = field(default_factory=list)
    hidden_hosts: list[str] = field(default_factory=list)
    default_keep_alive: str = "5m"
    refresh_interval_s: float = 5.0
    connect_timeout_s: float = 3.0
    request_timeout_s: float = 30.0
    load_timeout_s: float = 300.0
    probe_timeout_s: float = 5.0
    backoff_max_s: float = 30.0
    slow_rtt_ms: float = 1000.0
    # ports probed on this machine and in network scans: Ollama, LM Studio, llama.cpp, vLLM
    scan_ports: list[int] = field(default_factory=lambda: [11434, 1234, 8080, 8000])
    scan_max_prefix: int = 22  # the largest network scanned without asking: a /22
    theme: str = "system"  # one of THEMES
    close_to_tray: bool = False  # closing the window hides it in the tray
    notifications: bool = True  # tray notifications (a pull finished, a host went down)
    log_level: str = "INFO"  # one of LOG_LEVELS
    graph_window_s: float = 300.0  # what the hardware and latency graphs show
    telemetry_interval_s: float = 1.0  # seconds between hardware samples
    window_geometry: str = ""  # base64 of the main window's saved geometry
    window_state: str = ""  # base64 of the main window's saved dock layout
    chat_db_path: str = ""  # "" = default_chat_path()
    models_dir: str = ""  # "" = default_models_dir()
    # the built-in engine: context in tokens (0: the model's own), CPU threads (0: one per
    # physical core), layers on the GPU (-1: as many as fit; 0: none)
    engine_context: int = 4096
    engine_threads: int = 0
    engine_gpu_layers: int = -1
    extra: dict[str, Any] = field(default_factory=dict)  # keys from newer minor versions, kept

    def chat_path(self) -> Path:
        """The chat history file these settings name (the default one when none)."""
        return Path(self.chat_db_path).expanduser() if self.chat_db_path else default_chat_path()

    def models_path(self) -> Path:
        """The folder for model files these settings name (the default one when none)."""
        return Path(self.models_dir).expanduser() if self.models_dir else default_models_dir()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {"schema_version": SCHEMA_VERSION, **extra, **data}

    @classmethod
    def from_json(cls, data: object) -> Settings:
        """Build settings from parsed JSON; raises ValueError with a reason if unusable."""
        if not isinstance(data, dict):
            raise ValueError("the file does not hold a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError("the file has no schema_version")
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"it was written by a newer Corral (schema {version}, "
                f"this one reads {SCHEMA_VERSION})"
            )
        out = cls()
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        for key in (
            "default_keep_alive",
            "window_geometry",
            "window_state",
            "chat_db_path",
            "models_dir",
        ):
            if key in data:
                if not isinstance(data[key], str):
                    raise ValueError(f"{key} must be text")
                setattr(out, key, data[key])
        for key in ("close_to_tray", "notifications"):
            if key in data:
                if not isinstance(data[key], bool):
                    raise ValueError(f"{key} must be true or false")
                setattr(out, key, data[key])
        theme = data.get("theme", out.theme)
        if not isinstance(theme, str) or theme.lower() not in THEMES:
            raise ValueError(f"theme must be one of {', '.join(THEMES)}")
        out.theme = theme.lower()
        level = data.get("log_level", out.log_level)
        if not isinstance(level, str) or level.upper() not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        out.log_level = level.upper()
        for key, (low, high) in (
            ("graph_window_s", GRAPH_WINDOW_LIMITS),
            ("telemetry_interval_s", TELEMETRY_INTERVAL_LIMITS),
        ):
            if key in data:
                value = data[key]
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or not low <= value <= high
                ):
                    raise ValueError(f"{key} must be a number of seconds from {low:g} to {high:g}")
                setattr(out, key, float(value))
        for key in (
            "refresh_interval_s",
            "connect_timeout_s",
            "request_timeout_s",
            "load_timeout_s",
            "probe_timeout_s",
            "backoff_max_s",
            "slow_rtt_ms",
        ):
            if key in data:
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise ValueError(f"{key} must be a positive number")
                setattr(out, key, float(value))
        for key, (low, high) in ENGINE_LIMITS.items():
            if key in data:
                value = data[key]
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int)
                    or not low <= value <= high
                ):
                    raise ValueError(f"{key} must be a whole number from {low} to {high}")
                setattr(out, key, value)
        ports = data.get("scan_ports", out.scan_ports)
        if (
            not isinstance(ports, list)
            or not ports
            or not all(
                isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports
            )
        ):
            raise ValueError("scan_ports must be a list of port numbers")
        out.scan_ports = list(ports)
        prefix = data.get("scan_max_prefix", out.scan_max_prefix)
        if isinstance(prefix, bool) or not isinstance(prefix, int) or not 16 <= prefix <= 32:
            raise ValueError("scan_max_prefix must be a whole number from 16 to 32")
        out.scan_max_prefix = prefix
        hidden = data.get("hidden_hosts", [])
        if not isinstance(hidden, list) or not all(isinstance(h, str) for h in hidden):
            raise ValueError("hidden_hosts must be a list of host ids")
        out.hidden_hosts = list(hidden)
        hosts = data.get("hosts", [])
        if not isinstance(hosts, list):
            raise ValueError("hosts must be a list")
        for i, raw in enumerate(hosts):
            out.hosts.append(_host_from_json(raw, i))
        out.extra = {k: v for k, v in data.items() if k not in known and k != "schema_version"}
        return out


def _host_from_json(raw: object, index: int) -> HostEntry:
    where = f"host #{index + 1}"
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is not an object")
    for key in ("id", "name", "url"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ValueError(f"{where} has no {key}")
    kind = raw.get("kind", "ollama")
    if not isinstance(kind, str):
        raise ValueError(f"{where} has a bad kind")
    headers = []
    raw_headers = raw.get("headers", [])
    if not isinstance(raw_headers, list):
        raise ValueError(f"{where} has bad headers")
    for h in raw_headers:
        if (
            not isinstance(h, dict)
            or not isinstance(h.get("name"), str)
            or not isinstance(h.get("value", ""), str)
            or not isinstance(h.get("secret", False), bool)
        ):
            raise ValueError(f"{where} has a bad header")
        headers.append(HeaderEntry(h["name"], h.get("value", ""), h.get("secret", False)))
    for key in ("agent_url", "exporter_url"):
        if not isinstance(raw.get(key, ""), str):
            raise ValueError(f"{where} has a bad {key}")
    if not isinstance(raw.get("agent_token", False), bool):
        raise ValueError(f"{where} has a bad agent_token")
    return HostEntry(
        id=raw["id"],
        name=raw["name"],
        url=raw["url"],
        kind=kind,
        headers=headers,
        agent_url=raw.get("agent_url", ""),
        exporter_url=raw.get("exporter_url", ""),
        agent_token=raw.get("agent_token", False),
    )


@dataclass(frozen=True)
class LoadResult:
    """What :meth:`SettingsStore.load` found.

    Attributes:
        settings: the settings to use (defaults when the file was unusable or absent).
        problem: a sentence for the user when the file could not be used, else None.
        backup: where the unusable file was moved, if it was.
    """

    settings: Settings
    problem: str | None = None
    backup: Path | None = None


class SettingsStore:
    """Reads and writes the settings file at ``path``.

    Attributes:
        path: the settings file.
        read_only: True when an unusable file could not be moved aside; :meth:`save` then
            refuses, so that the user's file is not overwritten.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_settings_path()
        self.read_only = False

    def load(self) -> LoadResult:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return LoadResult(Settings())
        except (OSError, UnicodeDecodeError) as exc:
            return self._set_aside(f"it could not be read ({_reason(exc)})")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return self._set_aside(f"it is not valid JSON (line {exc.lineno}: {exc.msg})")
        try:
            return LoadResult(Settings.from_json(data))
        except ValueError as exc:
            return self._set_aside(str(exc))

    def _set_aside(self, reason: str) -> LoadResult:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        backup = self.path.with_name(f"{self.path.name}.bad-{stamp}")
        n = 1
        while backup.exists():
            n += 1
            backup = self.path.with_name(f"{self.path.name}.bad-{stamp}-{n}")
        try:
            os.rename(self.path, backup)
        except OSError as exc:
            self.read_only = True
            problem = (
                f"The settings file {self.path} cannot be used: {reason}. It could not be moved "
                f"aside either ({_reason(exc)}), so Corral uses defaults and will not save "
                "settings until the file is fixed or removed."
            )
            log.warning("%s", problem)
            return LoadResult(Settings(), problem)
        problem = (
            f"The settings file could not be used: {reason}. It was kept as {backup} and "
            "Corral started with default settings."
        )
        log.warning("%s", problem)
        return LoadResult(Settings(), problem, backup)

    def save(self, settings: Settings) -> None:
        if self.read_only:
            raise SettingsError(
                f"Settings were not saved: {self.path} is unusable and was left untouched."
            )
        payload = json.dumps(settings.to_json(), indent=2, ensure_ascii=False) + "\n"
        try:
            atomic_write_text(self.path, payload)
        except OSError as exc:
            raise SettingsError(
                f"Settings could not be saved to {self.path}: {_reason(exc)}."
            ) from exc


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, fsync and rename (OSError on
    failure; the old file is then untouched)."""
    folder = path.parent
    tmp_name = ""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
        tmp_name = ""
        with contextlib.suppress(OSError):  # make the rename durable where possible
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        if tmp_name:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
