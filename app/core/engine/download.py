"""Download a GGUF model from a URL into the models folder.

The file is streamed to ``<name>.part`` beside its final place, with progress (bytes,
speed as a moving average, time left). A cut connection is retried from where it stopped
with an HTTP Range request; so is a later call after the app was closed or the task
cancelled, because the ``.part`` file is kept (with a small ``.part.json`` note of where
it came from, so that a changed file on the server starts over instead of being patched
together). A server that ignores Range is handled by starting again from the first byte.

When a sha256 is given the finished file must match it; otherwise it is deleted and the
download fails with both digests in the message. The result must also be a usable GGUF
(a web page or a truncated file is refused) before it is renamed into place, so a file
that failed never shows up in the models folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

from app.core.engine.gguf_info import GGUF_SUFFIX, InvalidModelFile, read_gguf
from app.core.engine.models import PART_SUFFIX
from app.core.errors import CorralError, InvalidInput

__all__ = [
    "ChecksumMismatch",
    "DownloadFailed",
    "DownloadProgress",
    "PausedDownload",
    "download",
    "download_name",
    "part_path",
    "paused_downloads",
]

_MAGIC = b"GGUF"
_SPEED_WINDOW_S = 3.0
_PROGRESS_EVERY_S = 0.1
_HASH_CHUNK = 4 * 1024 * 1024
_WRITE_BLOCK = 1024 * 1024
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


@dataclass(frozen=True)
class DownloadProgress:
    """How far a download is, as the UI shows it.

    Attributes:
        name: the model file being downloaded ("qwen3-4b-q4_k_m.gguf").
        done: bytes on disk so far (including what an earlier attempt left).
        total: the size of the whole file, or None while the server has not said.
        speed: bytes per second over the last few seconds (0 at the start).
        eta_s: seconds left at that speed, or None when unknown.
        resumed_from: bytes that were already there when this attempt started.
        phase: "downloading"; "verifying" while the finished file is checked; "done".
    """

    name: str
    done: int
    total: int | None
    speed: float
    eta_s: float | None
    resumed_from: int = 0
    phase: str = "downloading"

    @property
    def fraction(self) -> float | None:
        """0..1, or None while the total is unknown."""
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


class DownloadFailed(CorralError):
    """A download could not finish.

    Attributes:
        url: what was being downloaded.
        part: the partial file kept for a later resume, or None when nothing was kept.
    """

    def __init__(self, message: str, *, url: str = "", part: Path | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.part = part


class ChecksumMismatch(DownloadFailed):
    """The downloaded bytes are not the expected ones; the file was deleted."""

    def __init__(self, *, url: str, expected: str, actual: str) -> None:
        super().__init__(
            f"The downloaded file does not match its sha256 (expected {expected}, got "
            f"{actual}); it was deleted.",
            url=url,
        )
        self.expected = expected
        self.actual = actual


class _Retry(Exception):
    """An attempt stopped in a way that another attempt may get past."""


class _Restart(Exception):
    """The partial file cannot be continued; start again from the first byte."""


def download_name(url: str) -> str:
    """The file name a download of ``url`` gets: the last part of its path, ending in
    ``.gguf``. InvalidInput for a URL that is not http(s) or has no file name."""
    parsed = _check_url(url)
    name = unquote(parsed.path.rstrip("/").rsplit("/", 1)[-1])
    return _check_name(name, url)


@dataclass(frozen=True)
class PausedDownload:
    """A download left unfinished in the models folder (its ``.part`` file kept).

    Attributes:
        name: the model file it becomes ("qwen3-4b-q4_k_m.gguf").
        url: where it comes from.
        done: bytes downloaded so far.
        total: the whole file's size, when the server said.
        sha256: the checksum it was started with ("" none).
    """

    name: str
    url: str
    done: int
    total: int | None = None
    sha256: str = ""


def paused_downloads(folder: Path) -> list[PausedDownload]:
    """The downloads left unfinished in ``folder``, by name: every ``.part`` whose note
    says where it came from (a part without one cannot be resumed and is not listed).
    Blocking (a stat and a small read per part)."""
    out: list[PausedDownload] = []
    try:
        parts = sorted(Path(folder).expanduser().glob("*" + GGUF_SUFFIX + PART_SUFFIX))
    except OSError:
        return out
    for part in parts:
        try:
            done = part.stat().st_size
            data = json.loads(part.with_name(part.name + ".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        url = data.get("url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            continue
        size = str(data.get("size", ""))
        sha = data.get("sha256", "")
        out.append(
            PausedDownload(
                part.name[: -len(PART_SUFFIX)],
                url,
                done,
                int(size) if size.isdigit() else None,
                sha if isinstance(sha, str) else "",
            )
        )
    return out


def part_path(folder: Path, name: str) -> Path:
    """Where the unfinished download of the file ``name`` is kept."""
    return Path(folder) / (name + PART_SUFFIX)


def _check_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidInput(f"{url!r} is not a valid web address.") from exc
    if parsed.scheme not in ("http", "https"):
        raise InvalidInput(f"Only http and https addresses can be downloaded, not {url!r}.")
    if not parsed.host:
        raise InvalidInput(f"{url!r} has no server name.")
    return parsed


def _check_name(name: str, url: str) -> str:
    name = name.strip()
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise InvalidInput(f"{url!r} does not end in a file name to save the model as.")
    if not name.lower().endswith(GGUF_SUFFIX):
        name += GGUF_SUFFIX
    return name


def _check_sha256(sha256: str | None) -> str | None:
    if sha256 is None or not sha256.strip():
        return None
    digest = sha256.strip().lower().removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise InvalidInput(f"{sha256!r} is not a sha256 checksum (64 hexadecimal digits).")
    return digest


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


class _Rate:
    """Bytes per second over a sliding window of recent samples."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, done: int) -> float:
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= _SPEED_WINDOW_S:
            self._samples.popleft()
        t0, d0 = self._samples[0]
        return (done - d0) / (now - t0) if now > t0 else 0.0


class _Job:
    """One download's state across its attempts."""

    def __init__(
        self,
        url: str,
        folder: Path,
        name: str,
        sha256: str | None,
        progress: Callable[[DownloadProgress], None] | None,
    ) -> None:
        self.url = url
        self.name = name
        self.dest = folder.expanduser() / name
        self.part = part_path(self.dest.parent, name)
        self.note = self.part.with_name(self.part.name + ".json")
        self.sha256 = sha256
        self.progress = progress
        self.hasher: Any = None
        self.hashed = 0  # bytes of the part the hasher has seen
        self.total: int | None = None
        self.done = 0
        self.resumed_from = 0
        self.rate = _Rate()
        self.last_report = 0.0

    # -- progress

    def report(self, *, force: bool = False, phase: str = "downloading") -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if not force and now - self.last_report < _PROGRESS_EVERY_S:
            return
        self.last_report = now
        speed = self.rate.add(now, self.done)
        eta = None
        if self.total is not None and speed > 0:
            eta = max(0.0, (self.total - self.done) / speed)
        self.progress(
            DownloadProgress(self.name, self.done, self.total, speed, eta, self.resumed_from, phase)
        )

    # -- the partial file

    def part_size(self) -> int:
        try:
            return self.part.stat().st_size
        except FileNotFoundError:
            return 0

    def read_note(self) -> dict[str, str]:
        try:
            data = json.loads(self.note.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    def write_note(self, response: httpx.Response) -> None:
        note = {"url": self.url}
        etag = response.headers.get("etag", "")
        if etag and not etag.startswith("W/"):
            note["etag"] = etag
        modified = response.headers.get("last-modified", "")
        if modified:
            note["last_modified"] = modified
        if self.sha256:  # so that a download resumed later is checked as this one was
            note["sha256"] = self.sha256
        if self.total:
            note["size"] = str(self.total)
        with contextlib.suppress(OSError):
            self.note.write_text(json.dumps(note), encoding="utf-8")

    def discard(self) -> None:
        for path in (self.part, self.note):
            with contextlib.suppress(OSError):
                path.unlink()
        self.hasher = None
        self.hashed = 0

    async def hasher_for(self, have: int) -> Any:
        """A sha256 that has seen the first ``have`` bytes of the part (None: no check)."""
        if self.sha256 is None:
            return None
        if self.hasher is None or self.hashed != have:
            self.hasher = await asyncio.to_thread(_hash_prefix, self.part, have)
            self.hashed = have
        return self.hasher


def _hash_prefix(path: Path, length: int) -> Any:
    digest = hashlib.sha256()
    left = length
    with open(path, "rb") as fh:
        while left > 0:
            chunk = fh.read(min(_HASH_CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    return digest


def _hash_file(path: Path) -> str:
    return str(_hash_prefix(path, path.stat().st_size).hexdigest())


async def download(
    url: str,
    dest_folder: Path,
    *,
    sha256: str | None = None,
    progress: Callable[[DownloadProgress], None] | None = None,
    client: httpx.AsyncClient | None = None,
    name: str | None = None,
    connect_timeout: float = 10.0,
    read_timeout: float = 30.0,
    retries: int = 3,
    retry_delay: float = 1.0,
) -> Path:
    """Download the GGUF model at ``url`` into ``dest_folder``; return its final path.

    ``name`` overrides the file name taken from the URL. ``progress`` is called on the
    event loop at most ten times a second and once at the end. A dropped connection or a
    server error is retried ``retries`` times from where it stopped. Cancelling the task
    keeps the partial file, and the next call for the same URL resumes it.

    Raises InvalidInput for a bad URL, name or checksum (before anything is fetched),
    :class:`ChecksumMismatch` when the bytes are not the expected ones, and
    :class:`DownloadFailed` for everything else; its message says whether the partial
    file was kept.
    """
    _check_url(url)
    file_name = _check_name(name, url) if name is not None else download_name(url)
    expected = _check_sha256(sha256)
    job = _Job(url, Path(dest_folder), file_name, expected, progress)
    await asyncio.to_thread(_prepare, job)

    timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
    own_client = client is None
    http = client or httpx.AsyncClient(follow_redirects=True, timeout=timeout)
    try:
        attempt = 0
        restarted = False
        while True:
            done_before = job.part_size() if job.done == 0 else job.done
            try:
                await _attempt(job, http, timeout)
                break
            except _Restart:
                if restarted:
                    raise DownloadFailed(
                        f"The server does not send {file_name} consistently; try again later.",
                        url=url,
                    ) from None
                restarted = True
                job.discard()
            except _Retry as exc:
                # a connection that carried data before it broke starts the count again
                attempt = 1 if job.done > done_before else attempt + 1
                if attempt > retries:
                    raise _failed(job, str(exc)) from exc.__cause__
                await asyncio.sleep(retry_delay * attempt)
    finally:
        if own_client:
            await http.aclose()
    return await _finish(job)


def _prepare(job: _Job) -> None:
    if job.dest.exists():
        raise InvalidInput(f"{job.name} is already in the models folder.")
    try:
        job.dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadFailed(
            f"The models folder {job.dest.parent} could not be created: {exc.strerror or exc}.",
            url=job.url,
        ) from exc


def _failed(job: _Job, reason: str) -> DownloadFailed:
    have = job.part_size()
    if have:
        kept = f" The {_mb(have)} downloaded so far are kept; download it again to resume."
        return DownloadFailed(
            f"{job.name} could not be downloaded: {reason}.{kept}", url=job.url, part=job.part
        )
    return DownloadFailed(f"{job.name} could not be downloaded: {reason}.", url=job.url)


async def _attempt(job: _Job, http: httpx.AsyncClient, limits: httpx.Timeout) -> None:
    """One request: continue the part (or start it), write until the body ends."""
    host = httpx.URL(job.url).host
    have = job.part_size()
    note = job.read_note()
    if have and note.get("url", job.url) != job.url:
        job.discard()
        have = 0
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = note.get("etag") or note.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    try:
        async with http.stream(
            "GET", job.url, headers=headers, timeout=limits, follow_redirects=True
        ) as response:
            start = await _start_at(job, response, have)
            if start is None:
                return  # the part was already complete
            await _receive(job, response, start)
    except httpx.TimeoutException as exc:
        raise _Retry(f"the server at {host} stopped sending (no data for a while)") from exc
    except httpx.ConnectError as exc:
        raise _Retry(f"no connection could be made to {host}") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise _Retry(
            f"the connection to {host} was cut after {_mb(job.done)}"
            + (f" of {_mb(job.total)}" if job.total else "")
        ) from exc
    except httpx.HTTPError as exc:
        raise DownloadFailed(
            f"{job.name} could not be downloaded from {host}: {exc}.", url=job.url
        ) from exc


async def _start_at(job: _Job, response: httpx.Response, have: int) -> int | None:
    """The byte the body starts at, after checking the status; None: nothing to fetch."""
    status = response.status_code
    if status == 416 and have:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
        if match and match.group(3) != "*" and int(match.group(3)) == have:
            job.total = job.done = have
            job.resumed_from = have
            return None  # everything is already here
        raise _Restart
    if status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
        if not have or match is None or match.group(1) is None or int(match.group(1)) != have:
            raise _Restart
        job.total = None if match.group(3) == "*" else int(match.group(3))
        start = have
    elif status == 200:
        length = response.headers.get("content-length", "")
        job.total = int(length) if length.isdigit() else None
        start = 0
    elif status in _RETRY_STATUSES:
        raise _Retry(f"the server answered {status} {response.reason_phrase}")
    else:
        raise DownloadFailed(
            f"{job.name} could not be downloaded: the server answered {status} "
            f"{response.reason_phrase}.",
            url=job.url,
            part=job.part if have else None,
        )
    if start == 0 and have:
        job.discard()  # the server sends the whole file again
    job.write_note(response)
    job.done = job.resumed_from = start
    if job.total is not None:
        _check_space(job, job.total - start)
    return start


def _check_space(job: _Job, needed: int) -> None:
    try:
        free = shutil.disk_usage(job.part.parent).free
    except OSError:
        return
    if free < needed:
        raise DownloadFailed(
            f"{job.name} needs {_mb(needed)} more but the models folder's drive has only "
            f"{_mb(free)} free.",
            url=job.url,
            part=job.part if job.part_size() else None,
        )


class _PartWriter:
    """The open partial file, written (and hashed) from worker threads one block at a time."""

    def __init__(self, path: Path, append: bool, hasher: Any) -> None:
        self._file = open(path, "ab" if append else "wb")  # noqa: SIM115 (closed in close)
        self._hasher = hasher
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._file.write(data)
            if self._hasher is not None:
                self._hasher.update(data)

    def close(self) -> None:
        with self._lock:
            self._file.close()


async def _receive(job: _Job, response: httpx.Response, start: int) -> None:
    """Write the body to the part; on any exit the bytes received so far are on disk."""
    job.report(force=True)
    hasher = await job.hasher_for(start) if start else None
    if start == 0 and job.sha256 is not None:
        hasher = hashlib.sha256()
    head = b""
    not_gguf = False
    try:
        writer = await asyncio.to_thread(_PartWriter, job.part, start > 0, hasher)
    except OSError as exc:
        raise _write_failed(job, exc) from exc
    buffer = bytearray()
    write_error: OSError | None = None
    try:
        async for chunk in response.aiter_bytes():
            if start == 0 and len(head) < len(_MAGIC):
                head += chunk[: len(_MAGIC) - len(head)]
                if not _MAGIC.startswith(head):
                    not_gguf = True
                    break
            buffer += chunk
            job.done += len(chunk)
            if len(buffer) >= _WRITE_BLOCK:
                block, buffer = bytes(buffer), bytearray()
                await asyncio.to_thread(writer.write, block)
            job.report()
    except OSError as exc:
        raise _write_failed(job, exc) from exc
    finally:
        # Keep what arrived, whatever stopped the transfer (a cut, a cancel); the lock in
        # the writer puts this after a block a cancelled worker thread is still writing.
        try:
            if buffer and not not_gguf:
                writer.write(bytes(buffer))
            job.hasher, job.hashed = hasher, job.done
        except OSError as exc:
            write_error, job.hasher = exc, None
        finally:
            try:
                writer.close()
            except OSError as exc:
                write_error, job.hasher = write_error or exc, None
    if write_error is not None:
        raise _write_failed(job, write_error) from write_error
    if not_gguf or (start == 0 and head != _MAGIC):
        job.discard()
        kind = response.headers.get("content-type", "").split(";", 1)[0].strip()
        what = f" (the server sent {kind})" if kind else ""
        raise DownloadFailed(
            f"{job.url} is not a GGUF model file{what}; nothing was saved.", url=job.url
        )
    if job.total is not None and job.done < job.total:
        raise _Retry(f"the server sent {_mb(job.done)} of {_mb(job.total)}")


def _write_failed(job: _Job, exc: OSError) -> DownloadFailed:
    return DownloadFailed(
        f"{job.name} could not be written to the models folder: {exc.strerror or exc}.",
        url=job.url,
        part=job.part if job.part_size() else None,
    )


async def _finish(job: _Job) -> Path:
    """Check the finished part (sha256, GGUF header) and move it into place."""
    job.report(force=True, phase="verifying")
    if job.sha256 is not None:
        if job.hasher is not None and job.hashed == job.part_size():
            actual = str(job.hasher.hexdigest())
        else:
            actual = await asyncio.to_thread(_hash_file, job.part)
        if actual != job.sha256:
            job.discard()
            raise ChecksumMismatch(url=job.url, expected=job.sha256, actual=actual)
    try:
        await asyncio.to_thread(read_gguf, job.part)
    except InvalidModelFile as exc:
        job.discard()
        raise DownloadFailed(
            f"{job.name} from {job.url} is not a usable GGUF model file: {exc.reason}; it was "
            f"deleted.",
            url=job.url,
        ) from exc
    await asyncio.to_thread(_move_into_place, job)
    job.report(force=True, phase="done")
    return job.dest


def _move_into_place(job: _Job) -> None:
    if job.dest.exists():
        raise DownloadFailed(
            f"{job.name} appeared in the models folder while it was downloading; the download "
            f"is kept as {job.part.name}.",
            url=job.url,
            part=job.part,
        )
    try:
        os.replace(job.part, job.dest)
    except OSError as exc:
        raise DownloadFailed(
            f"{job.name} could not be moved into place: {exc.strerror or exc}.",
            url=job.url,
            part=job.part,
        ) from exc
    with contextlib.suppress(OSError):
        job.note.unlink()
    job.total = job.done = job.dest.stat().st_size
