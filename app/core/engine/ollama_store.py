"""Models that Ollama has already pulled on this machine, runnable from Ollama's own files.

Ollama keeps a manifest per model under ``manifests/<registry>/<namespace>/<model>/<tag>``
(JSON whose layers name their blobs by sha256 digest) and the blobs themselves as
``blobs/sha256-<hex>``. The layer of media type ``application/vnd.ollama.image.model`` is
a GGUF file that the built-in engine can load as it is, so no second copy is needed.

The store is only ever read: files are opened read-only and nothing is written, renamed,
touched or re-permissioned. A manifest that cannot be read or understood is reported
with its reason and skipped; the other models are still listed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.core.engine.gguf_info import GgufInfo, InvalidModelFile, read_gguf
from app.core.engine.models import ModelFile, ModelProblem, ModelSource

__all__ = ["MODEL_MEDIA_TYPE", "OllamaScan", "OllamaStore", "default_roots"]

#: The media type of the layer that holds a model's weights (a GGUF file).
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
_DEFAULT_REGISTRY = "registry.ollama.ai"
_DEFAULT_NAMESPACE = "library"
_MAX_MANIFEST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class OllamaScan:
    """One look at Ollama's store: its runnable models and the manifests it skipped."""

    models: tuple[ModelFile, ...]
    problems: tuple[ModelProblem, ...]


def default_roots(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where Ollama keeps its models on this machine: ``$OLLAMA_MODELS`` if set, else
    ``~/.ollama/models`` (and on Linux the system service's
    ``/usr/share/ollama/.ollama/models``)."""
    env = os.environ if env is None else env
    configured = env.get("OLLAMA_MODELS", "").strip()
    if configured:
        return [Path(configured).expanduser()]
    roots = [Path.home() / ".ollama" / "models"]
    if sys.platform.startswith("linux"):
        roots.append(Path("/usr/share/ollama/.ollama/models"))
    return roots


class OllamaStore:
    """Ollama's on-disk model store, read-only.

    Attributes:
        roots: the store folders looked at (one given, or the defaults of this machine).
        problems: the manifests the last :meth:`models` skipped, with their reasons.
    """

    def __init__(self, root: Path | None = None, *, env: Mapping[str, str] | None = None) -> None:
        self.roots = [Path(root).expanduser()] if root is not None else default_roots(env)
        self.problems: tuple[ModelProblem, ...] = ()
        self._cache: dict[tuple[str, int, int], GgufInfo] = {}

    def scan(self) -> OllamaScan:
        """Every model of every root, by name; a name seen twice keeps its first root."""
        models: dict[str, ModelFile] = {}
        problems: list[ModelProblem] = []
        for root in self.roots:
            manifests = root / "manifests"
            if not manifests.is_dir():
                continue
            for path in _manifest_files(manifests, problems):
                name = _model_name(path.relative_to(manifests))
                if name is None or name in models:
                    continue
                try:
                    models[name] = self._model(root, path, name)
                except _Skip as exc:
                    problems.append(ModelProblem(path, f"{name}: {exc}"))
        self.problems = tuple(problems)
        return OllamaScan(tuple(sorted(models.values(), key=lambda m: m.name)), self.problems)

    def models(self) -> list[ModelFile]:
        """The models Ollama has pulled that the built-in engine can run."""
        return list(self.scan().models)

    def _model(self, root: Path, manifest: Path, name: str) -> ModelFile:
        digest, size = _model_layer(manifest)
        blob = _blob_path(root, digest)
        if blob is None:
            raise _Skip(f"its model file ({digest}) is missing from Ollama's blobs")
        try:
            st = blob.stat()
        except OSError as exc:
            raise _Skip(f"its model file could not be read ({exc.strerror or exc})") from exc
        if size is not None and size != st.st_size:
            raise _Skip(
                f"its model file is incomplete ({st.st_size:,} of {size:,} bytes; "
                f"Ollama may still be pulling it)"
            )
        key = (str(blob), st.st_size, st.st_mtime_ns)
        info = self._cache.get(key)
        if info is None:
            try:
                info = read_gguf(blob)
            except InvalidModelFile as exc:
                raise _Skip(
                    f"its model file is not one the built-in engine can run: {exc.reason}"
                ) from exc
            self._cache[key] = info
        return ModelFile(name, blob, info, ModelSource.OLLAMA)


class _Skip(Exception):
    """This manifest does not give a runnable model; the message says why."""


def _manifest_files(manifests: Path, problems: list[ModelProblem]) -> list[Path]:
    """Every file four levels down (registry/namespace/model/tag), without following links
    out of the store."""
    found: list[Path] = []

    def failed(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else manifests
        problems.append(ModelProblem(where, f"it could not be read ({exc.strerror or exc})"))

    for folder, dirs, files in os.walk(manifests, onerror=failed):
        depth = len(Path(folder).relative_to(manifests).parts)
        if depth >= 3:
            dirs.clear()
        if depth == 3:
            found += [Path(folder) / f for f in files if not f.startswith(".")]
        dirs.sort()
    return sorted(found)


def _model_name(relative: Path) -> str | None:
    """``registry.ollama.ai/library/llama3.2/latest`` -> ``llama3.2:latest``; another
    namespace keeps it (``ns/model:tag``), another registry too (``host/ns/model:tag``)."""
    if len(relative.parts) != 4:
        return None
    registry, namespace, model, tag = relative.parts
    name = f"{model}:{tag}"
    if namespace != _DEFAULT_NAMESPACE or registry != _DEFAULT_REGISTRY:
        name = f"{namespace}/{name}"
    if registry != _DEFAULT_REGISTRY:
        name = f"{registry}/{name}"
    return name


def _model_layer(manifest: Path) -> tuple[str, int | None]:
    """The digest and size of the manifest's model layer."""
    try:
        with open(manifest, "rb") as fh:  # read-only
            raw = fh.read(_MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise _Skip(f"its manifest could not be read ({exc.strerror or exc})") from exc
    if len(raw) > _MAX_MANIFEST_BYTES:
        raise _Skip("its manifest is too large to be one")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise _Skip(f"its manifest is not valid JSON ({exc})") from exc
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, list):
        raise _Skip("its manifest has no list of layers")
    for layer in layers:
        if isinstance(layer, dict) and layer.get("mediaType") == MODEL_MEDIA_TYPE:
            digest = layer.get("digest")
            if not isinstance(digest, str) or not _valid_digest(digest):
                raise _Skip(f"its model layer has no usable digest ({digest!r})")
            size = layer.get("size")
            valid_size = isinstance(size, int) and not isinstance(size, bool) and size >= 0
            return digest, size if valid_size else None
    raise _Skip("its manifest has no model layer")


def _valid_digest(digest: str) -> bool:
    algo, _, hex_part = digest.partition(":")
    return (
        algo == "sha256"
        and len(hex_part) == 64
        and all(c in "0123456789abcdef" for c in hex_part.lower())
    )


def _blob_path(root: Path, digest: str) -> Path | None:
    """The blob of ``sha256:<hex>``: ``sha256-<hex>`` (older stores: ``sha256:<hex>``)."""
    blobs = root / "blobs"
    for candidate in (blobs / digest.replace(":", "-", 1), blobs / digest):
        try:
            if candidate.is_file():
                return candidate
        except (OSError, ValueError):  # ':' is not allowed in Windows file names
            continue
    return None
