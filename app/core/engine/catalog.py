"""What the built-in engine offers: the models folder, the demo model, Ollama's models.

:class:`EngineCatalog` puts together, by name:

1. the demo model (Gemma 3 270M) when its package (``corral[demo]``) is installed: first,
   as the engine's default model. Before its first use it is listed from what the package
   says (name, size, architecture); :meth:`EngineCatalog.prepare` assembles it into the
   models folder when it is loaded;
2. every usable GGUF file of the models folder;
3. the models Ollama has pulled on this machine, run from Ollama's own files (read-only).

A name seen twice keeps its first entry. Files that cannot be used are collected in
:attr:`EngineCatalog.problems` with their reasons. Everything here blocks on the file
system: the engine host calls it in a worker thread.
"""

from __future__ import annotations

import importlib
import logging
import threading
from pathlib import Path

from app.core.engine import DEMO_REPLY_LIMIT, EngineModel
from app.core.engine.demo import DEMO_PACKAGE, DemoUnavailable, demo_available, ensure_demo_model
from app.core.engine.models import (
    DEMO_FILE_NAME,
    DEMO_MODEL_NAME,
    ModelFile,
    ModelFolderError,
    ModelProblem,
    ModelsFolder,
    ModelSource,
)
from app.core.engine.ollama_store import OllamaStore
from app.core.errors import InvalidInput

__all__ = ["DEMO_CONTEXT", "EngineCatalog"]

log = logging.getLogger(__name__)

#: What Gemma 3 270M was trained for (its file says so once assembled).
DEMO_CONTEXT = 32768
_DEMO_ARCHITECTURE = "gemma3"


class EngineCatalog:
    """The models the built-in engine can run.

    Attributes:
        folder: the models folder.
        ollama: Ollama's store on this machine (None: not looked at).
        demo: whether the demo model is offered (its package is installed).
        problems: the files the last :meth:`models` could not use, with their reasons.
    """

    def __init__(
        self,
        folder: ModelsFolder,
        ollama: OllamaStore | None = None,
        *,
        demo: bool | None = None,
    ) -> None:
        self.folder = folder
        self.ollama = ollama
        self.demo = demo_available() if demo is None else demo
        self.problems: tuple[ModelProblem, ...] = ()
        self.can_remove = True
        self._demo_size: int | None = None
        self._assembling = threading.Lock()

    @property
    def default_model(self) -> str:
        """The model offered first (the demo's name when it is offered; "" otherwise)."""
        return DEMO_MODEL_NAME if self.demo else ""

    def files(self) -> list[ModelFile]:
        """The model files there are now (the demo only once it is assembled), by name."""
        problems: list[ModelProblem] = []
        out: dict[str, ModelFile] = {}
        try:
            scan = self.folder.scan()
        except ModelFolderError as exc:
            log.warning("%s", exc.message)
            problems.append(ModelProblem(self.folder.path, exc.message.rstrip(".")))
        else:
            problems += scan.problems
            for model in scan.models:
                out.setdefault(model.name, model)
        if self.ollama is not None:
            try:
                found = self.ollama.scan()
            except OSError as exc:  # a store that vanished mid-scan: the rest still counts
                log.warning("Ollama's models could not be read: %s", exc)
            else:
                problems += found.problems
                for model in found.models:
                    out.setdefault(model.name, model)
        self.problems = tuple(problems)
        return sorted(out.values(), key=_order)

    def models(self) -> list[EngineModel]:
        """Everything the engine can run, the demo first (listed before it is assembled)."""
        files = self.files()
        out = [f.engine_model() for f in files]
        if self.demo and all(f.name != DEMO_MODEL_NAME for f in files):
            out.insert(0, self._demo_entry())
        return out

    def prepare(self, model: EngineModel) -> EngineModel:
        """The model ready to load: the demo is assembled into the models folder on its
        first use (seconds, once); every other model is returned as it is."""
        if model.source != ModelSource.DEMO or model.path.is_file():
            return model
        with self._assembling:  # two loads at once assemble it once
            try:
                return ensure_demo_model(self.folder.path).engine_model()
            except DemoUnavailable:
                self.demo = False
                raise

    def remove(self, model: EngineModel) -> None:
        """Delete a model of the models folder (for a link, only the link). Ollama's
        models are Ollama's: refused with how to remove them there. The demo model's file
        goes, and the demo is put together again on its next use."""
        if model.source == ModelSource.OLLAMA:
            raise InvalidInput(
                f"{model.name} is one of Ollama's models, run from Ollama's own files, which "
                f"Corral never changes; remove it with Ollama (ollama rm {model.name})."
            )
        if model.source == ModelSource.DEMO and not model.path.exists():
            raise InvalidInput(
                f"{model.name} is the demo model and takes no space until its first use; "
                "uninstall Corral's demo extra to remove it."
            )
        self.folder.remove(model.name)

    def _demo_entry(self) -> EngineModel:
        return EngineModel(
            DEMO_MODEL_NAME,
            self.folder.path / DEMO_FILE_NAME,
            self._demo_bytes(),
            context_length=DEMO_CONTEXT,
            has_template=False,
            architecture=_DEMO_ARCHITECTURE,
            source=ModelSource.DEMO,
            parameters="270M",
            quantization="Q4_K_M",
            reply_limit=DEMO_REPLY_LIMIT,
        )

    def _demo_bytes(self) -> int:
        """The demo's size from its package's pieces (0 when they cannot be read)."""
        if self._demo_size is None:
            try:
                package = importlib.import_module(DEMO_PACKAGE)
                self._demo_size = sum(Path(p).stat().st_size for p in package.chunk_paths())
            except (ImportError, OSError, AttributeError) as exc:
                log.warning("The demo model's package could not be read: %s", exc)
                self._demo_size = 0
        return self._demo_size


def _order(model: ModelFile) -> tuple[int, str]:
    rank = {ModelSource.DEMO: 0, ModelSource.FOLDER: 1, ModelSource.OLLAMA: 2}
    return rank.get(model.source, 3), model.name.lower()
