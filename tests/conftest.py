"""Fixtures shared by every test: an isolated config/data home and an in-memory keyring."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from tests.support.memory_keyring import MemoryKeyring

# No display in CI: Qt aborts the process unless told to draw offscreen. A developer with a
# display may still set QT_QPA_PLATFORM=xcb to watch the windows.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the real user's settings, data or logs."""
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "xdg" / var.lower()))
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    # the built-in engine lists what Ollama pulled on this machine: none of the user's
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama-models"))


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """The OS keyring replaced by an in-memory one for the duration of a test."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Take Corral's log handlers off the root logger after the test and put the levels
    back, so that later tests log as before (for tests that call ``setup_logging``)."""
    from app.core.logs import QUIET_LOGGERS, forget_registered_secrets

    root = logging.getLogger()
    level = root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "corral_handler", False):
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
        for name, old in quiet.items():
            logging.getLogger(name).setLevel(old)
        forget_registered_secrets()
