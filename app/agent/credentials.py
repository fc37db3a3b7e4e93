"""The agent's token and host id, kept in the user's config folder.

Both files are written atomically with mode 0600 (readable by the owner only); a token
file found readable by others is narrowed to 0600 with a warning. Where they live:
``platformdirs.user_config_path("corral") / "agent-token"`` and ``/ "agent-id"``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import tempfile
import uuid
from pathlib import Path

import platformdirs

from app.core.errors import CorralError
from app.core.settings import APP_NAME

log = logging.getLogger(__name__)

TOKEN_FILE = "agent-token"
HOST_ID_FILE = "agent-id"


class CredentialsError(CorralError):
    """The agent's token or host id could not be read or written."""


def config_dir() -> Path:
    return platformdirs.user_config_path(APP_NAME, appauthor=False)


def token_path() -> Path:
    return config_dir() / TOKEN_FILE


def host_id_path() -> Path:
    return config_dir() / HOST_ID_FILE


def new_token() -> str:
    """A random token (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable and writable by the owner only."""
    tmp = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, 0o600)  # mkstemp makes it 0600 already; be explicit
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = ""
    except OSError as exc:
        raise CredentialsError(f"Could not write {path}: {exc.strerror or exc}.") from exc
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"Could not read {path}: {exc}.") from exc


def _narrow(path: Path) -> None:
    """Make a secret file owner-only if others can read it (POSIX)."""
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("%s was readable by others (mode %o); it is now 0600.", path, mode)
    except OSError as exc:
        log.warning("could not check the permissions of %s: %s", path, exc)


def load_or_create_token(path: Path | None = None) -> tuple[str, bool]:
    """The stored token, or a new one stored now: ``(token, created)``."""
    path = path or token_path()
    token = _read(path)
    if token:
        _narrow(path)
        return token, False
    token = new_token()
    write_private(path, token + "\n")
    return token, True


def load_or_create_host_id(path: Path | None = None) -> str:
    """A stable id for this machine's agent (made once, kept beside the token)."""
    path = path or host_id_path()
    host_id = _read(path)
    if host_id:
        return host_id
    host_id = uuid.uuid4().hex
    write_private(path, host_id + "\n")
    return host_id
