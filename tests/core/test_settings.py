"""The settings file survives round trips and never silently loses the user's file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.core.errors import SettingsError
from app.core.settings import (
    SCHEMA_VERSION,
    HeaderEntry,
    HostEntry,
    Settings,
    SettingsStore,
    default_chat_path,
    default_models_dir,
    default_settings_path,
)


def _store(tmp_path: Path) -> SettingsStore:
    return SettingsStore(tmp_path / "cfg" / "settings.json")


def test_default_path_is_under_the_platform_config_dir(tmp_path: Path) -> None:
    # conftest points XDG_CONFIG_HOME into tmp_path
    assert str(default_settings_path()).startswith(str(tmp_path))
    assert default_settings_path().name == "settings.json"


def test_missing_file_gives_defaults_without_a_problem(tmp_path: Path) -> None:
    result = _store(tmp_path).load()
    assert result.settings == Settings()
    assert result.problem is None


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    store = _store(tmp_path)
    settings = Settings(
        hosts=[
            HostEntry(
                "h-1",
                "GPU box",
                "http://192.168.1.20:11434",
                headers=[HeaderEntry("X-Team", "ml"), HeaderEntry("Authorization", secret=True)],
            )
        ],
        hidden_hosts=["local"],
        default_keep_alive="30m",
        refresh_interval_s=2.5,
        scan_ports=[11434, 9999],
        slow_rtt_ms=250.0,
        extra={"future_setting": {"a": 1}},
    )
    store.save(settings)
    on_disk = json.loads(store.path.read_text())
    assert on_disk["schema_version"] == SCHEMA_VERSION
    assert on_disk["future_setting"] == {"a": 1}  # unknown keys are kept, not dropped
    loaded = SettingsStore(store.path).load()
    assert loaded.problem is None
    assert loaded.settings == settings


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.save(Settings(default_keep_alive="1h"))
    store.save(Settings(default_keep_alive="2h"))
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["settings.json"]
    assert json.loads(store.path.read_text())["default_keep_alive"] == "2h"


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path)
    store.save(Settings(default_keep_alive="1h"))

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(SettingsError, match="no space left on device"):
        store.save(Settings(default_keep_alive="2h"))
    monkeypatch.undo()
    assert json.loads(store.path.read_text())["default_keep_alive"] == "1h"
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["settings.json"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2, 3]", "does not hold a JSON object"),
        ('{"hosts": []}', "no schema_version"),
        ('{"schema_version": 99}', "newer Corral"),
        ('{"schema_version": 1, "hosts": {"a": 1}}', "hosts must be a list"),
        ('{"schema_version": 1, "hosts": [{"id": "x", "name": "n"}]}', "host #1 has no url"),
        ('{"schema_version": 1, "refresh_interval_s": -5}', "positive number"),
        ('{"schema_version": 1, "default_keep_alive": 5}', "must be text"),
        ('{"schema_version": 1, "scan_ports": [80, 70000]}', "scan_ports"),
        ('{"schema_version": 1, "scan_max_prefix": 8}', "scan_max_prefix"),
        ('{"schema_version": 1, "theme": "purple"}', "theme must be one of system, light, dark"),
        ('{"schema_version": 1, "theme": 1}', "theme must be one of"),
        ('{"schema_version": 1, "close_to_tray": "yes"}', "close_to_tray must be true or false"),
        ('{"schema_version": 1, "notifications": 1}', "notifications must be true or false"),
        ('{"schema_version": 1, "log_level": "LOUD"}', "log_level must be one of DEBUG, INFO"),
        (
            '{"schema_version": 1, "graph_window_s": 10}',
            "graph_window_s must be a number of seconds from 60 to 3600",
        ),
        ('{"schema_version": 1, "graph_window_s": 7200}', "from 60 to 3600"),
        ('{"schema_version": 1, "graph_window_s": "5m"}', "graph_window_s must be a number"),
        (
            '{"schema_version": 1, "telemetry_interval_s": 0.1}',
            "telemetry_interval_s must be a number of seconds from 0.5 to 60",
        ),
        ('{"schema_version": 1, "telemetry_interval_s": true}', "telemetry_interval_s must be"),
        ('{"schema_version": 1, "window_geometry": 5}', "window_geometry must be text"),
        ('{"schema_version": 1, "window_state": ["a"]}', "window_state must be text"),
        ('{"schema_version": 1, "chat_db_path": null}', "chat_db_path must be text"),
        ('{"schema_version": 1, "models_dir": {}}', "models_dir must be text"),
        (
            '{"schema_version": 1, "engine_context": -1}',
            "engine_context must be a whole number from 0 to 1048576",
        ),
        ('{"schema_version": 1, "engine_threads": 2.5}', "engine_threads must be a whole number"),
        ('{"schema_version": 1, "engine_gpu_layers": -2}', "engine_gpu_layers must be"),
    ],
)
def test_unusable_file_is_kept_aside_reported_and_replaced_by_defaults(
    tmp_path: Path, content: str, reason: str
) -> None:
    store = _store(tmp_path)
    store.path.parent.mkdir(parents=True)
    store.path.write_text(content)
    result = store.load()
    assert result.settings == Settings()
    assert result.problem is not None and reason in result.problem
    assert result.backup is not None and result.backup.read_text() == content
    assert str(result.backup) in result.problem
    assert not store.path.exists()
    # Saving now writes a fresh file and leaves the backup alone.
    store.save(result.settings)
    assert result.backup.read_text() == content


def test_two_bad_files_in_a_row_get_two_backups(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.path.parent.mkdir(parents=True)
    backups = []
    for content in ("{bad one", "{bad two"):
        store.path.write_text(content)
        result = SettingsStore(store.path).load()
        assert result.backup is not None
        backups.append(result.backup)
    assert backups[0] != backups[1]
    assert {b.read_text() for b in backups} == {"{bad one", "{bad two"}


def test_unreadable_file_is_moved_aside(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.path.mkdir(parents=True)  # a folder where the file should be: reading fails
    result = store.load()
    assert result.problem is not None and "could not be read" in result.problem
    assert result.backup is not None and result.backup.is_dir()


def test_file_that_cannot_be_moved_aside_is_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{precious but broken")

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "rename", refuse)
    result = store.load()
    assert store.read_only
    assert result.problem is not None and "will not save" in result.problem
    with pytest.raises(SettingsError, match="left untouched"):
        store.save(Settings())
    assert store.path.read_text() == "{precious but broken"


def test_the_new_settings_round_trip(tmp_path: Path) -> None:
    store = _store(tmp_path)
    settings = Settings(
        theme="dark",
        close_to_tray=True,
        notifications=False,
        log_level="DEBUG",
        graph_window_s=900.0,
        telemetry_interval_s=0.5,
        window_geometry="AdnQywADAAA=",
        window_state="AAAA/wAAAAD9",
        chat_db_path="/data/corral/chat.db",
        models_dir="/data/models",
    )
    assert settings != Settings()
    store.save(settings)
    on_disk = json.loads(store.path.read_text())
    assert on_disk["theme"] == "dark" and on_disk["close_to_tray"] is True
    assert on_disk["graph_window_s"] == 900.0 and on_disk["window_state"] == "AAAA/wAAAAD9"
    loaded = SettingsStore(store.path).load()
    assert loaded.problem is None
    assert loaded.settings == settings
    assert loaded.settings.extra == {}  # known keys are not kept a second time as unknown ones


def test_a_file_from_before_the_new_settings_loads_with_their_defaults(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.path.parent.mkdir(parents=True)
    store.path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "hosts": [{"id": "h-1", "name": "Box", "url": "http://10.0.0.5:11434"}],
                "refresh_interval_s": 2.0,
                "future_setting": [1, 2],
            }
        )
    )
    result = store.load()
    assert result.problem is None
    s = result.settings
    assert [h.name for h in s.hosts] == ["Box"] and s.refresh_interval_s == 2.0
    assert (s.theme, s.close_to_tray, s.notifications, s.log_level) == (
        "system",
        False,
        True,
        "INFO",
    )
    assert (s.graph_window_s, s.telemetry_interval_s) == (300.0, 1.0)
    assert (s.window_geometry, s.window_state, s.chat_db_path, s.models_dir) == ("", "", "", "")
    assert s.extra == {"future_setting": [1, 2]}
    # saved again, the new keys appear once each and the unknown key is still there
    store.save(s)
    on_disk = json.loads(store.path.read_text())
    assert on_disk["theme"] == "system" and on_disk["future_setting"] == [1, 2]
    assert SettingsStore(store.path).load().settings == s


def test_theme_and_log_level_are_read_in_any_case(tmp_path: Path) -> None:
    loaded = Settings.from_json({"schema_version": 1, "theme": "Dark", "log_level": "warning"})
    assert (loaded.theme, loaded.log_level) == ("dark", "WARNING")


def test_default_locations_are_used_until_the_settings_name_others(tmp_path: Path) -> None:
    settings = Settings()
    # conftest points XDG_DATA_HOME into tmp_path
    assert settings.chat_path() == default_chat_path()
    assert str(default_chat_path()).startswith(str(tmp_path))
    assert settings.models_path() == default_models_dir()
    settings.chat_db_path = "~/corral/chat.db"
    settings.models_dir = str(tmp_path / "models")
    assert settings.chat_path() == Path.home() / "corral" / "chat.db"
    assert settings.models_path() == tmp_path / "models"
