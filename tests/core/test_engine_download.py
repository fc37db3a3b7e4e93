"""Downloading a model: progress, a cut or cancelled transfer resumed from its partial file,
the sha256 check, and everything that must be refused, against a local file server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.engine.download import (
    ChecksumMismatch,
    DownloadFailed,
    DownloadProgress,
    download,
    part_path,
    paused_downloads,
)
from app.core.engine.models import ModelsFolder
from app.core.errors import InvalidInput
from tests.fakes.file_server import FileServer
from tests.fakes.gguf_files import sha256_of, write_gguf
from tests.support.waiting import wait_for

NAME = "tiny-model.gguf"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid GGUF of about 3 MB."""
    return write_gguf(tmp_path_factory.mktemp("src") / NAME, megabytes=3, seed=7)


@pytest.fixture
def model_bytes(model_file: Path) -> bytes:
    return model_file.read_bytes()


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer("127.0.0.1") as srv:
        yield srv


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "models"


def leftovers(folder: Path) -> list[str]:
    """The names in the models folder (none when it was never made)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def put(path: Path, data: bytes) -> None:
    """Leave a file where a download or an earlier attempt would have."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def test_cut_download_resumes_from_its_part_and_passes_the_sha256_check(
    server: FileServer, folder: Path, model_bytes: bytes, model_file: Path
) -> None:
    url = server.serve(f"/files/{NAME}", model_bytes)
    server.cuts = [1_000_000]
    seen: list[DownloadProgress] = []

    with pytest.raises(DownloadFailed) as cut:
        await download(url, folder, sha256=sha256_of(model_file), progress=seen.append, retries=0)
    part = part_path(folder, NAME)
    kept = part.stat().st_size
    assert 0 < kept <= 1_000_000
    assert cut.value.part == part and "kept; download it again to resume" in cut.value.message
    assert seen and seen[0].total == len(model_bytes)
    assert ModelsFolder(folder).list() == []  # a partial download is never a model

    seen.clear()
    result = await download(url, folder, sha256=sha256_of(model_file), progress=seen.append)

    assert result == folder / NAME and result.read_bytes() == model_bytes
    first, second = server.get_requests()
    assert "range" not in first.headers
    assert second.headers["range"] == f"bytes={kept}-"
    assert second.headers["if-range"] == server.etag(f"/files/{NAME}")
    assert second.status == 206
    assert seen[0].resumed_from == kept and seen[0].done == kept
    assert seen[-1].phase == "done" and seen[-1].done == seen[-1].total == len(model_bytes)
    assert [m.name for m in ModelsFolder(folder).list()] == ["tiny-model"]
    assert leftovers(folder) == [NAME]


async def test_a_cut_connection_is_retried_from_where_it_stopped(
    server: FileServer, folder: Path, model_bytes: bytes, model_file: Path
) -> None:
    url = server.serve("/m.gguf", model_bytes)
    server.cuts = [700_000, 1_900_000]

    result = await download(url, folder, sha256=sha256_of(model_file), retry_delay=0.01)

    assert result.read_bytes() == model_bytes
    ranges = [r.headers.get("range") for r in server.get_requests()]
    assert ranges[0] is None
    assert ranges[1] == "bytes=700000-"
    assert ranges[2] == "bytes=2600000-"


async def test_progress_shows_bytes_speed_and_time_left(
    server: FileServer, folder: Path, model_bytes: bytes
) -> None:
    url = server.serve("/slow.gguf", model_bytes)
    server.bytes_per_s = 8_000_000  # about 0.4 s for the file
    seen: list[DownloadProgress] = []

    await download(url, folder, progress=seen.append)

    downloading = [p for p in seen if p.phase == "downloading"]
    assert len(downloading) >= 3
    dones = [p.done for p in seen]
    assert dones == sorted(dones)
    moving = [p for p in downloading if p.speed > 0]
    assert moving, seen
    assert all(p.eta_s is not None and p.eta_s >= 0 for p in moving)
    assert 1_000_000 < moving[-1].speed < 100_000_000
    assert all(p.total == len(model_bytes) for p in seen)
    assert [p.phase for p in seen][-2:] == ["verifying", "done"]
    assert seen[-1].fraction == 1.0


async def test_cancelled_download_keeps_its_part_and_a_later_one_resumes(
    server: FileServer, folder: Path, model_bytes: bytes, model_file: Path
) -> None:
    url = server.serve("/held.gguf", model_bytes)
    server.hold_after = 1_500_000
    part = part_path(folder, "held.gguf")
    task = asyncio.ensure_future(download(url, folder))
    await wait_for(lambda: part.exists() and part.stat().st_size >= 1_000_000, timeout=10)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    kept = part.stat().st_size
    assert 1_000_000 <= kept <= 1_500_000  # what arrived before the cancel is kept
    assert not (folder / "held.gguf").exists()

    server.release()
    result = await download(url, folder, sha256=sha256_of(model_file))

    assert result.read_bytes() == model_bytes
    assert server.get_requests()[-1].headers["range"] == f"bytes={kept}-"


async def test_a_paused_download_is_listed_with_what_it_needs_to_resume(
    server: FileServer, folder: Path, model_bytes: bytes, model_file: Path
) -> None:
    url = server.serve("/paused.gguf", model_bytes)
    server.hold_after = 1_500_000
    digest = sha256_of(model_file)
    part = part_path(folder, "paused.gguf")
    task = asyncio.ensure_future(download(url, folder, sha256=digest))
    await wait_for(lambda: part.exists() and part.stat().st_size >= 1_000_000, timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (folder / "orphan.gguf.part").write_bytes(b"GGUF")  # no note: cannot be resumed

    [paused] = paused_downloads(folder)
    assert (paused.name, paused.url, paused.sha256) == ("paused.gguf", url, digest)
    assert paused.done == part.stat().st_size and paused.total == len(model_bytes)

    server.release()
    await download(paused.url, folder, sha256=paused.sha256)
    assert paused_downloads(folder) == []
    assert paused_downloads(folder / "no-such-folder") == []


async def test_corrupted_file_fails_the_sha256_check_and_is_not_listed(
    server: FileServer, folder: Path, model_bytes: bytes, model_file: Path
) -> None:
    damaged = bytearray(model_bytes)
    damaged[-1000] ^= 0xFF  # a flipped bit in the weights: still a readable GGUF
    url = server.serve("/bad.gguf", bytes(damaged))
    expected = sha256_of(model_file)

    with pytest.raises(ChecksumMismatch) as failed:
        await download(url, folder, sha256=expected)

    assert failed.value.expected == expected and failed.value.actual != expected
    assert (
        f"does not match its sha256 (expected {expected}, got {failed.value.actual})"
        in failed.value.message
    )
    assert ModelsFolder(folder).list() == []
    assert leftovers(folder) == []  # neither the model nor its part


async def test_a_resumed_part_is_checked_as_a_whole(
    server: FileServer, folder: Path, model_bytes: bytes, model_file: Path
) -> None:
    """The bytes of an earlier attempt count: damage in them fails the check too."""
    url = server.serve("/resumed.gguf", model_bytes)
    start = bytearray(model_bytes[:1_200_000])
    start[1_100_000] ^= 0x01
    put(part_path(folder, "resumed.gguf"), bytes(start))

    with pytest.raises(ChecksumMismatch):
        await download(url, folder, sha256=sha256_of(model_file))

    assert server.get_requests()[0].headers["range"] == "bytes=1200000-"
    assert leftovers(folder) == []


async def test_a_server_that_ignores_range_starts_over_cleanly(
    server: FileServer, folder: Path, model_bytes: bytes, model_file: Path
) -> None:
    url = server.serve("/norange.gguf", model_bytes)
    server.cuts = [900_000]
    with pytest.raises(DownloadFailed):
        await download(url, folder, retries=0)
    server.ignore_range = True

    result = await download(url, folder, sha256=sha256_of(model_file))

    assert result.read_bytes() == model_bytes
    last = server.get_requests()[-1]
    assert last.headers["range"].startswith("bytes=") and last.status == 200


async def test_a_file_changed_on_the_server_is_fetched_again_not_patched(
    server: FileServer, folder: Path, model_bytes: bytes, tmp_path: Path
) -> None:
    url = server.serve("/changing.gguf", model_bytes)
    server.cuts = [800_000]
    with pytest.raises(DownloadFailed):
        await download(url, folder, retries=0)
    newer = write_gguf(tmp_path / "newer.gguf", megabytes=3, seed=99)
    server.serve("/changing.gguf", newer.read_bytes())

    result = await download(url, folder, sha256=sha256_of(newer))

    assert result.read_bytes() == newer.read_bytes()
    assert server.get_requests()[-1].status == 200  # If-Range did not match the new ETag


async def test_a_part_that_is_already_complete_is_finished_without_fetching_it_again(
    server: FileServer, folder: Path, model_bytes: bytes, model_file: Path
) -> None:
    url = server.serve("/done.gguf", model_bytes)
    put(part_path(folder, "done.gguf"), model_bytes)

    result = await download(url, folder, sha256=sha256_of(model_file))

    assert result.read_bytes() == model_bytes
    (only,) = server.get_requests()
    assert only.status == 416
    assert leftovers(folder) == ["done.gguf"]


async def test_a_body_that_is_not_gguf_is_refused(server: FileServer, folder: Path) -> None:
    server.content_type = "text/html; charset=utf-8"
    url = server.serve("/page.gguf", b"<!doctype html><html><body>Sign in</body></html>" * 100)

    with pytest.raises(DownloadFailed) as failed:
        await download(url, folder)

    assert "is not a GGUF model file (the server sent text/html)" in failed.value.message
    assert failed.value.part is None
    assert leftovers(folder) == []


async def test_a_truncated_gguf_is_refused_after_the_download(
    server: FileServer, folder: Path, model_bytes: bytes
) -> None:
    """Without a checksum the GGUF check still catches a file that is cut short."""
    url = server.serve("/short.gguf", model_bytes[:2_000_000])

    with pytest.raises(DownloadFailed) as failed:
        await download(url, folder)

    assert "not a usable GGUF model file: it is truncated" in failed.value.message
    assert leftovers(folder) == []


async def test_a_server_that_stops_sending_times_out_and_keeps_the_part(
    server: FileServer, folder: Path, model_bytes: bytes
) -> None:
    url = server.serve("/stall.gguf", model_bytes)
    server.hold_after = 1_200_000

    with pytest.raises(DownloadFailed) as failed:
        await download(url, folder, read_timeout=0.3, retries=0)

    assert "stopped sending" in failed.value.message
    assert failed.value.part is not None and failed.value.part.stat().st_size > 0


async def test_an_error_status_is_reported_in_plain_words(server: FileServer, folder: Path) -> None:
    with pytest.raises(DownloadFailed) as failed:
        await download(server.url("/missing.gguf"), folder)
    assert "the server answered 404 Not Found" in failed.value.message
    assert leftovers(folder) == []


@pytest.mark.parametrize(
    ("url", "sha256", "words"),
    [
        ("ftp://127.0.0.1/x.gguf", None, "Only http and https"),
        ("file:///etc/passwd", None, "Only http and https"),
        ("http://127.0.0.1/", None, "does not end in a file name"),
        ("http://127.0.0.1/x.gguf", "abc123", "is not a sha256 checksum"),
    ],
)
async def test_bad_input_is_refused_before_anything_is_fetched(
    folder: Path, url: str, sha256: str | None, words: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await download(url, folder, sha256=sha256)
    assert words in refused.value.message
    assert leftovers(folder) == []


async def test_a_model_already_in_the_folder_is_not_overwritten(
    server: FileServer, folder: Path, model_bytes: bytes
) -> None:
    put(folder / NAME, b"mine")
    with pytest.raises(InvalidInput, match="already in the models folder"):
        await download(server.serve(f"/{NAME}", model_bytes), folder)
    assert (folder / NAME).read_bytes() == b"mine"
    assert server.get_requests() == []
