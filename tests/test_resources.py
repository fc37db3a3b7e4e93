"""The icon files and the desktop entry in resources/, and that they are up to date."""

from __future__ import annotations

import configparser
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage, QImageReader

from app.resources import APP_ICON_SIZES, TRAY_ICON_SIZES, TRAY_STATES, app_icon_name

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
#: The badge colours: the host status colours of the window.
BADGE_COLORS = {
    "ok": (0x2E, 0x9D, 0x4F),
    "degraded": (0xE0, 0xA2, 0x1B),
    "offline": (0xD0, 0x39, 0x3E),
}


def pixels(image: QImage) -> np.ndarray:
    """The image as a height x width x 4 array of bytes (B, G, R, A)."""
    image = image.convertToFormat(QImage.Format.Format_ARGB32)
    data = np.frombuffer(bytes(image.constBits()), dtype=np.uint8)
    return data.reshape(image.height(), image.bytesPerLine() // 4, 4)[:, : image.width()]


def load(path: Path) -> QImage:
    image = QImage(str(path))
    assert not image.isNull(), f"{path} cannot be read as an image"
    return image


def ico_images(path: Path) -> list[QImage]:
    reader = QImageReader(str(path), b"ico")
    images = []
    for index in range(reader.imageCount()):
        assert reader.jumpToImage(index)
        image = reader.read()
        assert not image.isNull(), f"image {index} of {path}: {reader.errorString()}"
        images.append(image)
    return images


def generated_files(root: Path) -> set[str]:
    """Every file under ``root`` that the icon script makes (relative paths)."""
    made = {"corral.ico", *(f"tray-{state}.svg" for state in TRAY_STATES)}
    made |= {p.relative_to(root).as_posix() for p in (root / "icons").rglob("*") if p.is_file()}
    made |= {p.relative_to(root).as_posix() for p in (root / "tray").rglob("*") if p.is_file()}
    return made


@pytest.mark.parametrize("size", APP_ICON_SIZES)
def test_the_app_icon_exists_in_every_size(size: int) -> None:
    image = load(RESOURCES / app_icon_name(size))
    assert (image.width(), image.height()) == (size, size)
    alpha = pixels(image)[:, :, 3]
    assert alpha[size // 2, size // 2] == 255, "the middle of the icon is not drawn"
    assert alpha[0, 0] < 255, "the corners are not transparent"


@pytest.mark.parametrize("state", TRAY_STATES)
def test_the_tray_icons_show_their_state_in_every_size(state: str) -> None:
    for size in TRAY_ICON_SIZES:
        image = load(RESOURCES / "tray" / f"tray-{state}-{size}.png")
        assert (image.width(), image.height()) == (size, size)
    # the badge (bottom right), beside its glyph, has the state's colour
    image = load(RESOURCES / "tray" / f"tray-{state}-64.png")
    b, g, r, a = (int(v) for v in pixels(image)[48, 56])
    expected = BADGE_COLORS[state]
    assert a == 255
    assert max(abs(r - expected[0]), abs(g - expected[1]), abs(b - expected[2])) < 24, (
        f"tray-{state} badge is #{r:02x}{g:02x}{b:02x}, not the {state} colour"
    )


def test_the_ico_holds_every_size_with_the_app_icon() -> None:
    data = (RESOURCES / "corral.ico").read_bytes()
    reserved, kind, count = struct.unpack_from("<HHH", data)
    assert (reserved, kind) == (0, 1), "corral.ico is not an icon file"
    sizes = [(data[6 + 16 * i] or 256) for i in range(count)]
    assert sizes == list(ICO_SIZES)

    images = ico_images(RESOURCES / "corral.ico")
    assert [image.width() for image in images] == list(ICO_SIZES)
    for image in images:
        png = load(RESOURCES / app_icon_name(image.width()))
        assert np.array_equal(pixels(image), pixels(png)), f"{image.width()} px differs"


def test_the_desktop_entry_has_what_a_menu_needs() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(RESOURCES / "corral.desktop", encoding="utf-8")
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Name"] == "Corral"
    assert entry["Exec"] == "corral"
    assert entry["Icon"] == "corral"
    assert entry["Terminal"] == "false"
    assert entry["Categories"] == "Development;Utility;"
    assert entry["StartupWMClass"] == "corral"
    assert entry["Comment"]
    assert entry["Keywords"].endswith(";")


def test_the_generated_files_are_up_to_date(tmp_path: Path) -> None:
    """What build_icons.py makes now is what is committed (run it after editing the SVG)."""
    done = subprocess.run(
        [sys.executable, str(RESOURCES / "build_icons.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    stale = "is out of date: run python resources/build_icons.py"

    assert generated_files(tmp_path) == generated_files(RESOURCES), (
        "the icon files differ from what build_icons.py makes: run it"
    )
    for name in sorted(generated_files(tmp_path)):
        fresh, committed = tmp_path / name, RESOURCES / name
        if name.endswith(".svg"):
            assert fresh.read_text() == committed.read_text(), f"{name} {stale}"
        elif name.endswith(".ico"):
            pairs = zip(ico_images(fresh), ico_images(committed), strict=True)
            for new, old in pairs:
                assert close(pixels(new), pixels(old)), f"{name} ({new.width()} px) {stale}"
        else:
            assert close(pixels(load(fresh)), pixels(load(committed))), f"{name} {stale}"


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Same pixels, give or take the rounding of another Qt version's renderer."""
    if a.shape != b.shape:
        return False
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()) <= 3
