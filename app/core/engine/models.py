"""The models folder: the GGUF files the built-in engine can run.

The folder is a setting (``Settings.models_dir``, else :func:`default_models_dir`). Every
readable ``*.gguf`` in it is a model; a file that is not a usable GGUF is reported as a
problem with its reason and not offered. Partial downloads (``*.part``) and the temporary
files of an import never show up.

Files come in by import (a copy with progress, or a link that takes no space) or by
download (:mod:`app.core.engine.download`). Removing a model deletes only the entry in
this folder: for a link, the file it points at stays where it is.

Everything here is blocking file I/O: the UI calls it through ``asyncio.to_thread`` (or
:meth:`ModelsFolder.import_file_async`, which keeps progress on the event loop).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from app.core.engine import DEMO_FILE_NAME, DEMO_REPLY_LIMIT, EngineModel, templates
from app.core.engine.gguf_info import GGUF_SUFFIX, GgufInfo, InvalidModelFile, read_gguf
from app.core.errors import CorralError, InvalidInput
from app.core.settings import Settings, default_models_dir

__all__ = [
    "DEMO_FILE_NAME",
    "DEMO_MODEL_NAME",
    "FolderScan",
    "ImportCancelled",
    "ModelFile",
    "ModelFolderError",
    "ModelProblem",
    "ModelSource",
    "ModelsFolder",
    "TemplateNote",
    "note_for",
    "template_note",
]

#: The name the demo model has in the fleet, in chats and on the engine's server (its
#: source, :attr:`ModelSource.DEMO`, lets the UI mark it as the demo).
DEMO_MODEL_NAME = "gemma-3-270m"

#: Ending of a download that has not finished; never listed.
PART_SUFFIX = ".part"

_CHUNK = 4 * 1024 * 1024
_PROGRESS_EVERY_S = 0.1
_TEMPLATE_NAMES = {
    templates.GEMMA3_TEMPLATE: "Gemma 3",
    templates.LLAMA3_TEMPLATE: "Llama 3",
    templates.CHATML_TEMPLATE: "ChatML",
    templates.PHI3_TEMPLATE: "Phi-3",
    templates.MISTRAL_TEMPLATE: "Mistral",
}

Progress = Callable[[int, int], None]


class ModelFolderError(CorralError):
    """The models folder could not be read or changed (no space, no permission, a clash)."""


class ImportCancelled(ModelFolderError):
    """The user stopped an import; nothing of it was left behind."""


class ModelSource(StrEnum):
    """Where a model file lives."""

    FOLDER = "folder"  # Corral's models folder
    DEMO = "demo"  # the demo model, assembled into the models folder
    OLLAMA = "ollama"  # Ollama's blob store, read-only


@dataclass(frozen=True)
class ModelFile:
    """A GGUF file the built-in engine can run.

    Attributes:
        name: what the user sees and picks ("qwen3-4b-q4_k_m", "llama3.2:latest").
        path: the GGUF file (for Ollama models a blob in Ollama's store, never changed).
        info: what its header says (architecture, size, quantization, context, template).
        source: where it lives.
        linked: True when the folder holds a link to a file elsewhere.
    """

    name: str
    path: Path
    info: GgufInfo
    source: ModelSource = ModelSource.FOLDER
    linked: bool = False

    @property
    def size(self) -> int:
        return self.info.file_size

    def engine_model(self) -> EngineModel:
        """What the built-in engine needs to run this model."""
        info = self.info
        return EngineModel(
            name=self.name,
            path=self.path,
            size=info.file_size,
            context_length=info.context_length,
            has_template=info.has_chat_template,
            architecture=info.architecture,
            source=str(self.source),
            parameters=info.parameters_label,
            quantization=info.quantization,
            info=info,
            reply_limit=DEMO_REPLY_LIMIT if self.source == ModelSource.DEMO else 0,
        )


@dataclass(frozen=True)
class ModelProblem:
    """A file that looks like a model but cannot be used; shown with its reason."""

    path: Path
    reason: str

    @property
    def message(self) -> str:
        return f"{self.path.name} is not offered as a model: {self.reason}."


@dataclass(frozen=True)
class FolderScan:
    """One look at a folder: the usable models and the files that are not."""

    models: tuple[ModelFile, ...]
    problems: tuple[ModelProblem, ...]


@dataclass(frozen=True)
class TemplateNote:
    """The chat template Corral supplies for a model whose file has none.

    Attributes:
        architecture: the model's architecture.
        template: the Jinja template to give the engine, or None when none is known.
        message: the sentence the UI shows beside the model.
    """

    architecture: str
    template: str | None
    message: str


def template_note(info: GgufInfo) -> TemplateNote | None:
    """None when the model carries its own chat template; otherwise the template Corral
    chooses by architecture and the sentence that says so."""
    return note_for(info.architecture, has_template=info.has_chat_template)


def note_for(arch: str, *, has_template: bool) -> TemplateNote | None:
    """:func:`template_note` from the architecture and whether the file has a template."""
    if has_template:
        return None
    template = templates.template_for(arch)
    if template is None:
        return TemplateNote(
            arch,
            None,
            f"This model has no chat template and Corral knows none for its architecture "
            f"({arch}); chat replies may be garbage. It can still complete plain text.",
        )
    label = _TEMPLATE_NAMES.get(template) or _pretty_architecture(arch)
    return TemplateNote(
        arch,
        template,
        f"This model has no chat template; Corral uses the {label} template for its "
        f"architecture ({arch}).",
    )


def _pretty_architecture(arch: str) -> str:
    """ "qwen2" -> "Qwen 2": a readable label for a template named after an architecture."""
    match = re.fullmatch(r"([a-z]+)(\d.*)?", arch)
    if match is None:
        return arch
    word, number = match.groups()
    return word.capitalize() + (f" {number}" if number else "")


def _model_name(path: Path) -> str:
    if path.name == DEMO_FILE_NAME:
        return DEMO_MODEL_NAME
    return path.name[: -len(GGUF_SUFFIX)]


def _is_model_file_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(GGUF_SUFFIX)


class ModelsFolder:
    """The folder of GGUF files of the built-in engine.

    Attributes:
        path: the folder (created on the first import or download).
        problems: the files the last :meth:`list` could not use, with their reasons.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser()
        self.problems: tuple[ModelProblem, ...] = ()
        self._cache: dict[tuple[str, int, int], GgufInfo] = {}

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ModelsFolder:
        """The folder the settings name, or the default one."""
        return cls(settings.models_path() if settings is not None else default_models_dir())

    # -- reading -------------------------------------------------------------------------

    def scan(self) -> FolderScan:
        """Look at the folder: every usable ``*.gguf``, and the problems with the rest."""
        models: builtins.list[ModelFile] = []
        problems: builtins.list[ModelProblem] = []
        try:
            entries = sorted(os.scandir(self.path), key=lambda e: e.name.lower())
        except FileNotFoundError:
            entries = []
        except OSError as exc:
            raise ModelFolderError(
                f"The models folder {self.path} could not be read: {exc.strerror or exc}."
            ) from exc
        seen: set[tuple[str, int, int]] = set()
        for entry in entries:
            if not _is_model_file_name(entry.name):
                continue
            path = Path(entry.path)
            linked = entry.is_symlink()
            if linked and not path.exists():
                target = os.readlink(path)
                problems.append(ModelProblem(path, f"it links to {target}, which is gone"))
                continue
            try:
                info = self._info(path)
            except InvalidModelFile as exc:
                problems.append(ModelProblem(path, exc.reason))
                continue
            source = ModelSource.DEMO if entry.name == DEMO_FILE_NAME else ModelSource.FOLDER
            models.append(ModelFile(_model_name(path), path, info, source, linked))
            seen.add(self._key(path))
        self._cache = {k: v for k, v in self._cache.items() if k in seen}
        self.problems = tuple(problems)
        return FolderScan(tuple(models), self.problems)

    def list(self) -> builtins.list[ModelFile]:
        """The usable models, by name; the unusable files go to :attr:`problems`."""
        return builtins.list(self.scan().models)

    def get(self, name: str) -> ModelFile:
        """The model called ``name``; InvalidInput if the folder has none."""
        for model in self.scan().models:
            if model.name == name:
                return model
        raise InvalidInput(f"There is no model called {name!r} in {self.path}.")

    def _key(self, path: Path) -> tuple[str, int, int]:
        st = path.stat()
        return (str(path), st.st_size, st.st_mtime_ns)

    def _info(self, path: Path) -> GgufInfo:
        try:
            key = self._key(path)
        except OSError as exc:
            raise InvalidModelFile(path, f"it could not be read ({exc.strerror or exc})") from exc
        info = self._cache.get(key)
        if info is None:
            info = read_gguf(path)
            self._cache[key] = info
        return info

    # -- changing ------------------------------------------------------------------------

    def import_file(
        self,
        src: Path,
        *,
        link: bool = False,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> ModelFile:
        """Bring the GGUF file ``src`` into the folder and return it as a model.

        ``link=False`` copies it in chunks, calling ``progress(done, total)`` as it goes
        (at most ten times a second, and once at the end); ``link=True`` makes a symbolic
        link (a hard link where symbolic ones are not allowed), which takes no space. A
        file of the same name already here gets a numbered name ("model-2.gguf"). A file
        that is not GGUF is refused with the reason, and a failed or cancelled import
        (``cancel`` set) leaves nothing behind.
        """
        src = Path(src).expanduser()
        info = read_gguf(src)  # refuses anything that is not a usable GGUF, before any write
        self._ensure_folder()
        name = src.name if src.name.lower().endswith(GGUF_SUFFIX) else src.name + GGUF_SUFFIX
        with contextlib.suppress(OSError):
            if src.resolve().parent == self.path.resolve():
                raise InvalidInput(f"{src.name} is already in the models folder.")
        if link:
            dest = self._link(src, name)
        else:
            dest = self._copy(src, name, info.file_size, progress, cancel)
        linked = dest.is_symlink()
        return ModelFile(_model_name(dest), dest, read_gguf(dest), ModelSource.FOLDER, linked)

    async def import_file_async(
        self, src: Path, *, link: bool = False, progress: Progress | None = None
    ) -> ModelFile:
        """:meth:`import_file` in a worker thread, with ``progress`` called on the event
        loop. Cancelling the awaiting task stops the copy and removes what it wrote."""
        loop = asyncio.get_running_loop()
        cancel = threading.Event()

        def report(done: int, total: int) -> None:
            if progress is not None:
                loop.call_soon_threadsafe(progress, done, total)

        worker = asyncio.ensure_future(
            asyncio.to_thread(self.import_file, src, link=link, progress=report, cancel=cancel)
        )
        try:
            return await asyncio.shield(worker)
        except asyncio.CancelledError:
            cancel.set()
            with contextlib.suppress(ImportCancelled):
                await worker  # let the worker clean up before the task ends
            raise

    def remove(self, name: str) -> None:
        """Delete the model called ``name`` from the folder (for a link: only the link)."""
        model = self.get(name)
        if model.path.parent != self.path:
            raise InvalidInput(f"{name!r} is not a file of the models folder.")
        try:
            model.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ModelFolderError(
                f"{model.path.name} could not be deleted: {exc.strerror or exc}."
            ) from exc
        self._cache = {k: v for k, v in self._cache.items() if k[0] != str(model.path)}

    def _ensure_folder(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelFolderError(
                f"The models folder {self.path} could not be created: {exc.strerror or exc}."
            ) from exc

    def _free_name(self, name: str) -> Path:
        stem = name[: -len(GGUF_SUFFIX)]
        candidate = self.path / name
        n = 2
        while candidate.exists() or candidate.is_symlink() or _part_of(candidate).exists():
            candidate = self.path / f"{stem}-{n}{GGUF_SUFFIX}"
            n += 1
        return candidate

    def _link(self, src: Path, name: str) -> Path:
        dest = self._free_name(name)
        try:
            dest.symlink_to(src.resolve())
        except OSError:
            try:
                os.link(src, dest)  # Windows without the right to make symbolic links
            except OSError as exc:
                raise ModelFolderError(
                    f"{src.name} could not be linked into the models folder "
                    f"({exc.strerror or exc}); copy it instead."
                ) from exc
        return dest

    def _copy(
        self,
        src: Path,
        name: str,
        total: int,
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> Path:
        free = shutil.disk_usage(self.path).free
        if free < total:
            raise ModelFolderError(
                f"{src.name} needs {total / 1e9:.2f} GB but the models folder's drive has "
                f"only {free / 1e9:.2f} GB free."
            )
        temp = self.path / f".{name}.importing-{os.getpid()}-{threading.get_ident()}"
        done = 0
        last = 0.0
        try:
            with open(src, "rb") as fin, open(temp, "xb") as fout:
                while chunk := fin.read(_CHUNK):
                    if cancel is not None and cancel.is_set():
                        raise ImportCancelled(f"The import of {src.name} was stopped.")
                    fout.write(chunk)
                    done += len(chunk)
                    now = time.monotonic()
                    if progress is not None and now - last >= _PROGRESS_EVERY_S:
                        last = now
                        progress(done, total)
                fout.flush()
                os.fsync(fout.fileno())
            if done != total:
                raise ModelFolderError(f"{src.name} changed while it was being copied.")
            dest = self._free_name(name)
            os.replace(temp, dest)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            if isinstance(exc, OSError):
                raise ModelFolderError(
                    f"{src.name} could not be copied into the models folder: {exc.strerror or exc}."
                ) from exc
            raise
        if progress is not None:
            progress(total, total)
        return dest


def _part_of(path: Path) -> Path:
    return path.with_name(path.name + PART_SUFFIX)
