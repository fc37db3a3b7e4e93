"""Finding Corral's own files from a checkout, a PyInstaller bundle or a pip install."""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import pytest

from app import resources
from app.resources import (
    TRAY_ICON_SIZES,
    TRAY_STATES,
    app_icon_name,
    resource_path,
    tray_icon_files,
)

CHECKOUT = Path(__file__).resolve().parents[2] / "resources"


def test_a_checkout_finds_its_own_resources() -> None:
    assert resource_path("corral.svg") == CHECKOUT / "corral.svg"
    assert resource_path(app_icon_name(48)).is_file()


def test_a_bundle_is_looked_in_first_and_the_checkout_fills_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = tmp_path / "resources" / "corral.svg"
    bundled.parent.mkdir()
    bundled.write_text("<svg/>")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)

    assert resource_path("corral.svg") == bundled
    assert resource_path("corral.desktop") == CHECKOUT / "corral.desktop"


def test_an_installed_copy_is_found_without_a_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = tmp_path / "prefix" / "share" / "corral" / "tray" / "tray-ok-16.png"
    installed.parent.mkdir(parents=True)
    installed.write_bytes(b"png")
    monkeypatch.setattr(resources, "_SOURCE_DIR", tmp_path / "no-checkout")
    real_get_path = sysconfig.get_path

    def get_path(name: str, scheme: str | None = None) -> str:
        if name == "data" and scheme == sysconfig.get_default_scheme():
            return str(tmp_path / "prefix")
        return real_get_path(name, scheme) if scheme else real_get_path(name)

    monkeypatch.setattr(sysconfig, "get_path", get_path)

    assert resource_path("tray/tray-ok-16.png") == installed
    # not found anywhere: the path in the first place looked, for the caller to check
    assert resource_path("nothing.png") == tmp_path / "no-checkout" / "nothing.png"


@pytest.mark.parametrize("name", ["", "../pyproject.toml", "/etc/passwd", "tray/../../x", "a\\b"])
def test_names_outside_the_resources_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a resource name"):
        resource_path(name)


def test_every_tray_state_has_every_size() -> None:
    for state in TRAY_STATES:
        files = tray_icon_files(state)
        assert [size for size, _ in files] == list(TRAY_ICON_SIZES)
        assert all(path.is_file() for _, path in files)
    with pytest.raises(ValueError, match="not a tray state"):
        tray_icon_files("sunny")
