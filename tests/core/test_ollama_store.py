"""Models Ollama has pulled, read from a fake Ollama store that the test builds: listed with
their GGUF details, bad manifests reported, and not one byte or timestamp changed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from app.core.engine.models import ModelSource
from app.core.engine.ollama_store import MODEL_MEDIA_TYPE, OllamaStore, default_roots
from tests.fakes.gguf_files import write_gguf

REGISTRY = "registry.ollama.ai"


def add_blob(root: Path, data: bytes, *, legacy_name: bool = False) -> str:
    """Store ``data`` as Ollama does; return its digest ("sha256:<hex>")."""
    hex_digest = hashlib.sha256(data).hexdigest()
    name = f"sha256:{hex_digest}" if legacy_name else f"sha256-{hex_digest}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / name).write_bytes(data)
    return f"sha256:{hex_digest}"


def add_manifest(root: Path, name: str, layers: list[dict[str, object]]) -> Path:
    """A manifest at manifests/<name> (registry/namespace/model/tag)."""
    config = add_blob(root, b'{"model_format":"gguf"}')
    path = root / "manifests" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": config,
            "size": 23,
        },
        "layers": layers,
    }
    path.write_text(json.dumps(manifest))
    return path


def model_layer(root: Path, gguf: Path, **kwargs: bool) -> dict[str, object]:
    data = gguf.read_bytes()
    return {
        "mediaType": MODEL_MEDIA_TYPE,
        "digest": add_blob(root, data, **kwargs),
        "size": len(data),
    }


def template_layer(root: Path) -> dict[str, object]:
    data = b"{{ .Prompt }}"
    return {
        "mediaType": "application/vnd.ollama.image.template",
        "digest": add_blob(root, data),
        "size": len(data),
    }


def snapshot(root: Path) -> dict[str, tuple[bytes | None, int, int]]:
    """Every entry under ``root``: its bytes (files), modification time and mode."""
    out: dict[str, tuple[bytes | None, int, int]] = {}
    for folder, dirs, files in os.walk(root):
        for entry in dirs + files:
            path = Path(folder) / entry
            st = path.lstat()
            data = path.read_bytes() if path.is_file() else None
            out[str(path.relative_to(root))] = (data, st.st_mtime_ns, st.st_mode)
    return out


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    root = tmp_path / "ollama" / "models"
    sources = tmp_path / "sources"
    gemma = write_gguf(sources / "g.gguf", architecture="gemma3", name="Gemma", chat_template=None)
    llama = write_gguf(sources / "l.gguf", architecture="llama", name="Llama", seed=3)
    qwen = write_gguf(sources / "q.gguf", architecture="qwen3", name="Qwen", seed=4)
    add_manifest(
        root, f"{REGISTRY}/library/gemma3/270m", [model_layer(root, gemma), template_layer(root)]
    )
    add_manifest(root, f"{REGISTRY}/someone/llama-tuned/q4", [model_layer(root, llama)])
    add_manifest(
        root, "hf.co/bartowski/Qwen3-GGUF/Q4_K_M", [model_layer(root, qwen, legacy_name=True)]
    )
    return root


def test_the_models_ollama_pulled_are_listed_from_its_blobs(store_root: Path) -> None:
    models = OllamaStore(store_root).models()

    assert [m.name for m in models] == [
        "gemma3:270m",
        "hf.co/bartowski/Qwen3-GGUF:Q4_K_M",
        "someone/llama-tuned:q4",
    ]
    gemma = models[0]
    assert gemma.source is ModelSource.OLLAMA
    assert gemma.path.parent == store_root / "blobs"
    assert gemma.path.name.startswith("sha256-")
    assert (gemma.info.architecture, gemma.info.name) == ("gemma3", "Gemma")
    assert gemma.info.has_chat_template is False
    assert gemma.size == gemma.path.stat().st_size
    assert [m.info.architecture for m in models[1:]] == ["qwen3", "llama"]


def test_reading_the_store_changes_no_file(store_root: Path) -> None:
    add_manifest(store_root, f"{REGISTRY}/library/broken/latest", [])
    (store_root / "manifests" / REGISTRY / "library" / "broken" / "latest").write_text("{oops")
    before = snapshot(store_root)

    store = OllamaStore(store_root)
    store.models()
    store.models()

    assert snapshot(store_root) == before


def test_bad_manifests_are_reported_and_the_rest_still_listed(store_root: Path) -> None:
    library = store_root / "manifests" / REGISTRY / "library"
    (library / "broken").mkdir()
    (library / "broken" / "latest").write_text("{oops")
    add_manifest(store_root, f"{REGISTRY}/library/textonly/latest", [template_layer(store_root)])
    missing = {"mediaType": MODEL_MEDIA_TYPE, "digest": "sha256:" + "ab" * 32, "size": 10}
    add_manifest(store_root, f"{REGISTRY}/library/nofile/latest", [missing])
    pulling = write_gguf(store_root.parent / "p.gguf", seed=9)
    layer = model_layer(store_root, pulling)
    layer["size"] = int(str(layer["size"])) + 5000
    add_manifest(store_root, f"{REGISTRY}/library/pulling/latest", [layer])
    not_gguf = b"safetensors or anything else" * 10
    odd = {"mediaType": MODEL_MEDIA_TYPE, "digest": add_blob(store_root, not_gguf), "size": 280}
    add_manifest(store_root, f"{REGISTRY}/library/odd/latest", [odd])

    store = OllamaStore(store_root)
    names = [m.name for m in store.models()]

    assert names == ["gemma3:270m", "hf.co/bartowski/Qwen3-GGUF:Q4_K_M", "someone/llama-tuned:q4"]
    reasons = {p.path.parent.name: p.reason for p in store.problems}
    assert set(reasons) == {"broken", "textonly", "nofile", "pulling", "odd"}
    assert reasons["broken"].startswith("broken:latest: its manifest is not valid JSON")
    assert reasons["textonly"] == "textonly:latest: its manifest has no model layer"
    assert "is missing from Ollama's blobs" in reasons["nofile"]
    assert "Ollama may still be pulling it" in reasons["pulling"]
    assert "does not start with the GGUF signature" in reasons["odd"]


def test_the_store_is_found_where_ollama_keeps_it(tmp_path: Path) -> None:
    assert default_roots({"OLLAMA_MODELS": str(tmp_path / "custom")}) == [tmp_path / "custom"]
    assert default_roots({})[0] == Path.home() / ".ollama" / "models"
    store = OllamaStore(env={"OLLAMA_MODELS": str(tmp_path / "nothing")})
    assert store.models() == [] and store.problems == ()
