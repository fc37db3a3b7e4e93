"""The Linux desktop entry: what ``corral --install-desktop-entry`` puts in the menu."""

from __future__ import annotations

import configparser
import os
import struct
import sys
from pathlib import Path

import pytest

from app import desktop_entry
from app.desktop_entry import (
    DesktopEntryError,
    install_desktop_entry,
    installed_files,
    uninstall_desktop_entry,
)
from app.resources import APP_ICON_SIZES

PROGRAM = "/opt/corral/corral"


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def read_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def all_files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def test_install_puts_the_entry_and_every_icon_size_in_the_data_home(data_home: Path) -> None:
    written = install_desktop_entry(exec_path=PROGRAM)

    entry_file = data_home / "applications" / "corral.desktop"
    icons = data_home / "icons" / "hicolor"
    expected = {entry_file, icons / "scalable" / "apps" / "corral.svg"}
    expected |= {icons / f"{n}x{n}" / "apps" / "corral.png" for n in APP_ICON_SIZES}
    assert set(written) == expected
    assert all_files(data_home) == expected
    for size in APP_ICON_SIZES:
        assert png_size(icons / f"{size}x{size}" / "apps" / "corral.png") == (size, size)
    assert "<svg" in (icons / "scalable" / "apps" / "corral.svg").read_text(encoding="utf-8")

    entry = read_entry(entry_file)
    assert entry["Type"] == "Application"
    assert entry["Name"] == "Corral"
    assert entry["Exec"] == PROGRAM
    assert entry["TryExec"] == PROGRAM
    assert entry["Icon"] == "corral"
    assert entry["Terminal"] == "false"
    assert entry["StartupWMClass"] == "corral"
    assert set(entry["Categories"].split(";")) >= {"Development", "Utility"}
    assert entry["Comment"]
    assert entry["Keywords"]


def test_the_default_entry_starts_this_corral(data_home: Path) -> None:
    install_desktop_entry()

    entry = read_entry(data_home / "applications" / "corral.desktop")
    program = entry["Exec"].split(" ")[0]
    assert os.path.isabs(program)
    assert os.access(program, os.X_OK), f"Exec={entry['Exec']} does not name a program"


def test_a_path_with_spaces_and_specials_is_quoted_as_the_spec_asks(data_home: Path) -> None:
    install_desktop_entry(exec_path="/opt/My Apps/corral$1%")

    line = next(
        raw
        for raw in (data_home / "applications" / "corral.desktop").read_text().splitlines()
        if raw.startswith("Exec=")
    )
    # quoted, "$" escaped inside the quotes, that backslash doubled in the file, "%" doubled
    assert line == r'Exec="/opt/My Apps/corral\\$1%%"'


def test_installing_again_replaces_the_files_and_follows_a_moved_program(
    data_home: Path,
) -> None:
    first = install_desktop_entry(exec_path=PROGRAM)
    contents = {path: path.read_bytes() for path in first}

    again = install_desktop_entry(exec_path=PROGRAM)
    assert again == first
    assert {path: path.read_bytes() for path in again} == contents
    assert all_files(data_home) == set(first)  # no temporary files left

    install_desktop_entry(exec_path="/srv/corral-new/corral")
    assert read_entry(data_home / "applications" / "corral.desktop")["Exec"] == (
        "/srv/corral-new/corral"
    )


def test_uninstall_removes_exactly_the_installed_files(data_home: Path) -> None:
    other_entry = data_home / "applications" / "other.desktop"
    other_icon = data_home / "icons" / "hicolor" / "48x48" / "apps" / "other.png"
    for path in (other_entry, other_icon):
        path.parent.mkdir(parents=True)
        path.write_text("someone else's")
    installed = install_desktop_entry(exec_path=PROGRAM)

    removed = uninstall_desktop_entry()

    assert set(removed) == set(installed)
    assert all_files(data_home) == {other_entry, other_icon}
    assert other_entry.read_text() == "someone else's"
    assert uninstall_desktop_entry() == []  # nothing left to remove is not an error


def test_a_given_home_is_used_instead_of_the_data_home(tmp_path: Path, data_home: Path) -> None:
    home = tmp_path / "someone"
    written = install_desktop_entry(home=home, exec_path=PROGRAM)

    assert (home / ".local" / "share" / "applications" / "corral.desktop") in written
    assert all_files(home) == set(written) == set(installed_files(home))
    assert not data_home.exists()
    assert set(uninstall_desktop_entry(home=home)) == set(written)


def test_missing_icon_files_install_nothing_and_say_which(
    data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = desktop_entry.resource_path
    gone = tmp_path / "gone" / "corral.png"

    def lookup(name: str) -> Path:
        return gone if name.endswith("48x48/apps/corral.png") else real(name)

    monkeypatch.setattr(desktop_entry, "resource_path", lookup)

    with pytest.raises(DesktopEntryError, match="missing") as caught:
        install_desktop_entry(exec_path=PROGRAM)
    assert str(gone) in caught.value.message
    assert not data_home.exists()


def test_an_unwritable_place_gives_a_message_naming_it(data_home: Path) -> None:
    data_home.mkdir()
    (data_home / "applications").write_text("a file where a folder should be")

    with pytest.raises(DesktopEntryError, match="cannot be written") as caught:
        install_desktop_entry(exec_path=PROGRAM)
    assert "corral.desktop" in caught.value.message


def test_an_empty_program_is_refused(data_home: Path) -> None:
    with pytest.raises(DesktopEntryError, match="empty"):
        install_desktop_entry(exec_path="  ")
    assert not data_home.exists()


def test_other_systems_are_told_the_installer_does_this(
    data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(DesktopEntryError, match="installer"):
        install_desktop_entry(exec_path=PROGRAM)
    assert not data_home.exists()
