"""Where Corral's own files (icons, the desktop entry) are, however Corral was started.

The files live in ``resources/`` at the top of the source tree. They are found in, in
this order:

1. the folder of a PyInstaller bundle (``sys._MEIPASS``/resources);
2. the source tree this module was imported from (a checkout or an editable install);
3. an installed copy: ``pip install`` puts them under ``<prefix>/share/corral``.

No Qt here: the desktop entry installer and the packaging scripts use it too.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path, PurePosixPath

#: Square sizes of the app icon, as in resources/icons/hicolor/<N>x<N>/apps/corral.png.
APP_ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
#: Sizes of the tray icon PNGs, as in resources/tray/tray-<state>-<N>.png.
TRAY_ICON_SIZES = (16, 22, 24, 32, 48, 64)
#: The tray icon states: every host answers, some do not (or are slow), none does.
TRAY_STATES = ("ok", "degraded", "offline")

_SOURCE_DIR = Path(__file__).resolve().parent.parent / "resources"
_SHARE = ("share", "corral")


def resource_dirs() -> list[Path]:
    """The folders searched for Corral's files, first choice first."""
    dirs: list[Path] = []
    bundle = getattr(sys, "_MEIPASS", None)
    if isinstance(bundle, str):
        dirs.append(Path(bundle) / "resources")
    dirs.append(_SOURCE_DIR)
    for scheme in (sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user")):
        data = Path(sysconfig.get_path("data", scheme)).joinpath(*_SHARE)
        if data not in dirs:
            dirs.append(data)
    return dirs


def resource_path(name: str) -> Path:
    """The file ``name`` (a relative path with ``/``, e.g. ``"tray-ok.svg"`` or
    ``"icons/hicolor/48x48/apps/corral.png"``) in the first folder that has it.

    When no folder has it, the path in the first folder is returned: check ``is_file()``
    before relying on it. Raises ValueError for an absolute name or one with ``..``.
    """
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts or "\\" in name:
        raise ValueError(f"not a resource name: {name!r}")
    dirs = resource_dirs()
    for folder in dirs:
        path = folder.joinpath(*parts)
        if path.is_file():
            return path
    return dirs[0].joinpath(*parts)


def app_icon_name(size: int) -> str:
    """The resource name of the app icon PNG of one size."""
    return f"icons/hicolor/{size}x{size}/apps/corral.png"


def tray_icon_files(state: str) -> list[tuple[int, Path]]:
    """The tray icon PNGs of a state ("ok", "degraded" or "offline"), as (size, path),
    smallest first; only files that exist. The scalable one is ``tray-<state>.svg``."""
    if state not in TRAY_STATES:
        raise ValueError(f"not a tray state: {state!r}")
    found = []
    for size in TRAY_ICON_SIZES:
        path = resource_path(f"tray/tray-{state}-{size}.png")
        if path.is_file():
            found.append((size, path))
    return found
