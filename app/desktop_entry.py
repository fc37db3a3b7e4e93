"""Put Corral in the Linux desktop's application menu, for the current user.

``corral --install-desktop-entry`` writes the desktop entry (corral.desktop, whose Exec
starts the Corral that ran the command) and the app icon in every size into the user's
data folder (``$XDG_DATA_HOME``, else ``~/.local/share``)::

    applications/corral.desktop
    icons/hicolor/<N>x<N>/apps/corral.png
    icons/hicolor/scalable/apps/corral.svg

Installing again replaces those files; uninstalling removes exactly those files and
nothing else (folders stay: other programs use them too). No Qt here.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from app.core.errors import CorralError
from app.resources import APP_ICON_SIZES, app_icon_name, resource_path

DESKTOP_FILE = "corral.desktop"
ICON_NAME = "corral"

#: Characters that make an Exec argument need double quotes (Desktop Entry spec).
_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")
#: Characters escaped with a backslash inside a quoted Exec argument.
_ESCAPED_IN_QUOTES = set('"`$\\')


class DesktopEntryError(CorralError):
    """The desktop entry could not be installed or removed (the message says why)."""


def data_home(home: Path | None = None) -> Path:
    """The user's data folder: ``home/.local/share`` when ``home`` is given, otherwise
    ``$XDG_DATA_HOME`` where it is set to an absolute path, otherwise
    ``~/.local/share``."""
    if home is not None:
        return home / ".local" / "share"
    xdg = os.environ.get("XDG_DATA_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg)
    return Path.home() / ".local" / "share"


def _targets(base: Path) -> list[tuple[str, Path]]:
    """(resource name, where it goes) for every icon file of the entry."""
    icons = base / "icons" / "hicolor"
    pairs = [
        (app_icon_name(size), icons / f"{size}x{size}" / "apps" / f"{ICON_NAME}.png")
        for size in APP_ICON_SIZES
    ]
    pairs.append(("corral.svg", icons / "scalable" / "apps" / f"{ICON_NAME}.svg"))
    return pairs


def installed_files(home: Path | None = None) -> list[Path]:
    """Every file :func:`install_desktop_entry` writes (whether or not it is there now)."""
    base = data_home(home)
    return [base / "applications" / DESKTOP_FILE] + [path for _, path in _targets(base)]


def default_command() -> list[str]:
    """The command that starts the running Corral: the bundle's program, else the
    ``corral`` script of this Python environment or of the PATH, else
    ``python -m app``."""
    if getattr(sys, "frozen", False):
        return [os.path.abspath(sys.executable)]
    beside = Path(os.path.abspath(sys.executable)).parent / "corral"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("corral")
    if found:
        return [os.path.abspath(found)]
    return [os.path.abspath(sys.executable), "-m", "app"]


def _quote(arg: str) -> str:
    """One Exec argument, quoted where the Desktop Entry spec asks for it."""
    if not arg or _RESERVED.intersection(arg):
        arg = '"' + "".join("\\" + c if c in _ESCAPED_IN_QUOTES else c for c in arg) + '"'
    return arg.replace("%", "%%")


def _escape_value(value: str) -> str:
    """A string as a desktop entry value (backslashes doubled)."""
    return value.replace("\\", "\\\\")


def exec_line(command: list[str]) -> str:
    """The Exec value that runs ``command`` (already escaped for the file)."""
    if not command or any(c in arg for arg in command for c in "\n\r\0"):
        raise DesktopEntryError(
            "Corral's program path contains a line break, which a desktop entry cannot "
            "hold; move Corral to a folder with a plain name."
        )
    return _escape_value(" ".join(_quote(arg) for arg in command))


def desktop_entry_text(template: str, command: list[str]) -> str:
    """The desktop entry ``template`` with Exec (and TryExec) set to run ``command``."""
    lines = template.splitlines()
    out: list[str] = []
    group = ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            group = stripped
        key = stripped.split("=", 1)[0].strip() if "=" in stripped else ""
        if group == "[Desktop Entry]" and key in ("Exec", "TryExec"):
            if key == "Exec":
                out.append(f"Exec={exec_line(command)}")
                if os.path.isabs(command[0]):
                    out.append(f"TryExec={_escape_value(command[0])}")
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_platform() -> None:
    if sys.platform in ("win32", "cygwin", "darwin"):
        raise DesktopEntryError(
            "A desktop entry is for Linux desktops; on this system the installer adds "
            "Corral to the menu."
        )


def install_desktop_entry(home: Path | None = None, exec_path: str | None = None) -> list[Path]:
    """Install Corral's desktop entry and icons for the user; the files written.

    ``home``: install under ``home/.local/share`` instead of the user's data folder.
    ``exec_path``: the program the entry starts (default: the running Corral).
    Installing again replaces the files. Raises DesktopEntryError with a message for the
    user when Corral's own files are missing or a file cannot be written; nothing is
    written then unless the problem is met halfway (a full disk).
    """
    _check_platform()
    if exec_path is not None and not exec_path.strip():
        raise DesktopEntryError("The program for the desktop entry to start is empty.")
    command = [exec_path] if exec_path is not None else default_command()
    base = data_home(home)
    template_path = resource_path(DESKTOP_FILE)
    sources = [(resource_path(name), target) for name, target in _targets(base)]
    needed = [template_path, *(src for src, _ in sources)]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise DesktopEntryError(
            "Corral's desktop entry files are missing, so nothing was installed: "
            + ", ".join(missing)
        )
    try:
        text = desktop_entry_text(template_path.read_text(encoding="utf-8"), command)
        payload = [(base / "applications" / DESKTOP_FILE, text.encode("utf-8"))]
        payload += [(target, src.read_bytes()) for src, target in sources]
    except (OSError, UnicodeDecodeError) as exc:
        raise DesktopEntryError(f"Corral's desktop entry files cannot be read: {exc}") from exc
    written: list[Path] = []
    for target, data in payload:
        try:
            _write_atomic(target, data)
        except OSError as exc:
            raise DesktopEntryError(
                f"The desktop entry could not be installed: {target} cannot be written "
                f"({exc.strerror or exc})."
            ) from exc
        written.append(target)
    return written


def uninstall_desktop_entry(home: Path | None = None) -> list[Path]:
    """Remove the files :func:`install_desktop_entry` writes; the files removed.

    Other files in those folders, and the folders, stay. Removing what is not there is
    not an error."""
    _check_platform()
    removed: list[Path] = []
    for path in installed_files(home):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise DesktopEntryError(
                f"The desktop entry could not be removed: {path} cannot be deleted "
                f"({exc.strerror or exc})."
            ) from exc
        removed.append(path)
    return removed
