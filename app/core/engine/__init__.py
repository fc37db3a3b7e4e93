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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.errors import HostError

if TYPE_CHECKING:
    from app.core.engine.gguf_info import GgufInfo

__all__ = [
    "API_KEY_ENV",
    "DEMO_FILE_NAME",
    "DEMO_REPLY_LIMIT",
    "EngineError",
    "EngineModel",
    "engine_installed",
    "module_installed",
]

#: The engine's child reads the key its server wants from this variable (never from its
#: arguments, which every user of the machine can see).
API_KEY_ENV = "CORRAL_ENGINE_API_KEY"
#: The file name of the demo model (Gemma 3 270M, Q4_K_M), as its package assembles it.
DEMO_FILE_NAME = "gemma-3-270m-q4_k_m.gguf"
#: The demo is a small base model: it rarely ends a reply by itself, and would write
#: until its context is full (minutes on a laptop). Its replies stop at this length.
DEMO_REPLY_LIMIT = 256


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
        source: where the file lives: "folder" (the models folder), "demo" (the demo
            model, assembled into the folder on first use), "ollama" (Ollama's store).
        parameters: the weight count as the user reads it ("268M"; "" unknown).
        quantization: "Q4_K_M", "F16", ... ("" unknown).
        info: everything the file's header says, once the file has been read.
        reply_limit: the longest reply in tokens when the engine's settings set none
            (0: until the model ends it or the context is full).
    """

    name: str
    path: Path
    size: int
    context_length: int | None = None
    has_template: bool = True
    architecture: str = ""
    source: str = "folder"
    parameters: str = ""
    quantization: str = ""
    info: GgufInfo | None = None
    reply_limit: int = 0


def module_installed(name: str) -> bool:
    """Whether the top-level module ``name`` can be imported; it is not imported."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def engine_installed() -> bool:
    """Whether llama.cpp's server (``xllamacpp``) is installed; it is not imported."""
    return module_installed("xllamacpp")
