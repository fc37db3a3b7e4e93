"""The built-in engine's child process: started with one model, watched, stopped.

:class:`EngineProcess` spawns ``python -m app.core.engine.server`` (see
:mod:`app.core.engine.server`), waits for its ready line (the URL it serves on) within
the load deadline, keeps the last lines of its log, and notices when it exits without
being asked to: then :attr:`EngineProcess.crash` says so in a sentence with the last
lines the engine wrote. Stopping sends SIGTERM to the child by its process id and, if it
has not exited within the stop deadline, SIGKILL. Nothing else is ever signalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import sys
import tempfile
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.engine import API_KEY_ENV, EngineError
from app.core.errors import HostTimeout, InvalidInput
from app.core.events import Event
from app.core.logs import register_secret

__all__ = ["EngineExit", "EngineProcess", "engine_command"]

log = logging.getLogger(__name__)

TAIL_LINES = 200  # log lines of the child kept for messages and the UI
_LINE_LIMIT = 1 << 20  # longest line read from the child
# llama.cpp's log lines: "0.01.480.780 I srv    load_model: the message"
_LOG_LEVELS = {"E": logging.WARNING, "W": logging.INFO}  # llama.cpp's level letters
_LOG_LINE = re.compile(r"^\s*[\d.]+ ([DIWE]) \S+\s+(?:[\w:~<>()]+: )?(.*)$")


def engine_command() -> list[str]:
    """How to start the engine's child process with this Python (or this bundle)."""
    if getattr(sys, "frozen", False):  # a bundled app: its executable takes "engine"
        return [sys.executable, "engine"]
    return [sys.executable, "-m", "app.core.engine.server"]


def _child_env() -> dict[str, str]:
    """The environment of the child: this one, with the app's folder on PYTHONPATH so
    that ``-m app.core.engine.server`` is found whatever the working directory."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    return env


def _message_of(line: str) -> tuple[str, str]:
    """``(level, text)`` of one llama.cpp log line (level "" when it is not one)."""
    m = _LOG_LINE.match(line)
    return (m.group(1), m.group(2).strip()) if m else ("", line.strip())


def _exit_words(code: int) -> str:
    return f"exit code {code}"


@dataclass(frozen=True)
class EngineExit:
    """How the engine's child process ended.

    Attributes:
        pid: its process id.
        returncode: its exit status (negative: the signal that ended it, on POSIX).
        expected: Corral stopped it (unload, quit); False for a crash or a kill from outside.
        reason: the sentence for the user when not expected ("" otherwise).
    """

    pid: int
    returncode: int
    expected: bool
    reason: str = ""


class EngineProcess:
    """One llama.cpp server child process, on one model at a time.

    Attributes:
        load_timeout: seconds the child may take from spawning to serving its model.
        stop_timeout: seconds it may take to exit after SIGTERM before it gets SIGKILL.
        url: the base URL it serves on ("" while none runs).
        api_key: the key its server wants (``Authorization: Bearer <key>``) on every route
            but /health, new for each start, so that other programs and web pages on this
            computer cannot use it ("" while none runs).
        model: the model name it serves ("" while none runs).
        gpu: the child found a GPU (its llama.cpp build has a GPU backend and a device).
        devices: the devices llama.cpp reported.
        load_s: seconds the last start took, spawn to ready.
        crash: why the last child stopped when nobody asked it to ("" if it did not).
        exited: emitted on the loop with an :class:`EngineExit` whenever a child that was
            serving has exited (asked to or not).
    """

    def __init__(
        self,
        *,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        load_timeout: float = 300.0,
        stop_timeout: float = 10.0,
        tail_lines: int = TAIL_LINES,
    ) -> None:
        if load_timeout <= 0 or stop_timeout <= 0:
            raise InvalidInput("The engine's load and stop deadlines must be positive.")
        self._command = list(command) if command is not None else engine_command()
        self._env = dict(env) if env is not None else None
        self.load_timeout = load_timeout
        self.stop_timeout = stop_timeout
        self.url = ""
        self.api_key = ""
        self.model = ""
        self.gpu = False
        self.devices: tuple[str, ...] = ()
        self.load_s: float | None = None
        self.crash = ""
        self.exited: Event[EngineExit] = Event("engine.exited")
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self._proc: asyncio.subprocess.Process | None = None
        self._returncode: int | None = None
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._watch: asyncio.Task[None] | None = None

    # -- reading ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """A child serves (or is starting)."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        """The running child's process id (None when none runs)."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit status of the last child that ended (None: none has ended yet)."""
        return self._returncode

    def stderr_tail(self, lines: int | None = None) -> list[str]:
        """The last lines the engine wrote to its log (oldest first)."""
        tail = list(self._tail)
        return tail if lines is None else tail[-lines:] if lines > 0 else []

    def _summary(self, lines: int = 3) -> str:
        """The last few log lines, errors first, for a one-sentence message."""
        texts = [_message_of(line) for line in self._tail if line.strip()]
        errors = [t for level, t in texts if level == "E"]
        chosen = errors[-lines:] if errors else [t for _, t in texts][-lines:]
        return " | ".join(chosen)

    # -- starting ---------------------------------------------------------------------
    async def start(
        self,
        model: Path,
        alias: str,
        *,
        ctx: int = 4096,
        threads: int = 0,
        gpu_layers: int = -1,
        template: str | None = None,
        max_tokens: int = 0,
    ) -> str:
        """Start a child serving ``model`` as ``alias``; return its URL once it serves.

        EngineError when it cannot (the engine's own words attached), HostTimeout when it
        is not serving within :attr:`load_timeout` (the child is killed then), InvalidInput
        when a child already runs. A cancelled start kills the child.
        """
        if self.running:
            raise InvalidInput("The built-in engine already runs a model; stop it first.")
        if not alias.strip():
            raise InvalidInput("The model needs a name.")
        args = ["--model", str(model), "--alias", alias, "--host", "127.0.0.1", "--port", "0"]
        args += ["--ctx", str(ctx), "--threads", str(threads), "--gpu-layers", str(gpu_layers)]
        args += ["--max-tokens", str(max_tokens), "--watch-stdin"]
        template_file: Path | None = None
        if template:
            template_file = await asyncio.to_thread(_write_template, template)
            args += ["--template-file", str(template_file)]
        self.crash = ""
        self._stopping = False
        self._tail.clear()
        key = secrets.token_urlsafe(24)
        register_secret(key)
        env = dict(self._env) if self._env is not None else _child_env()
        env[API_KEY_ENV] = key
        began = time.perf_counter()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._command,
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                limit=_LINE_LIMIT,
            )
        except OSError as exc:
            if template_file is not None:
                await asyncio.to_thread(template_file.unlink, missing_ok=True)
            raise EngineError(f"The built-in engine could not be started: {exc}.") from exc
        self._proc = proc
        self._returncode = None
        log.info("Built-in engine starting %s (pid %d)", alias, proc.pid)
        assert proc.stderr is not None and proc.stdout is not None
        stderr_task = asyncio.get_running_loop().create_task(
            self._read_log(proc.stderr), name=f"engine log {proc.pid}"
        )
        self._tasks = [stderr_task]
        try:
            try:
                async with asyncio.timeout(self.load_timeout):
                    ready = await self._ready_line(proc.stdout)
            except TimeoutError:
                raise HostTimeout(
                    f"The built-in engine did not load {alias} within {self.load_timeout:g} s; "
                    "it was stopped."
                ) from None
            if ready is None or "error" in ready or not isinstance(ready.get("url"), str):
                raise await self._start_failure(proc, alias, ready)
        except BaseException:
            await self._kill(proc)
            await self._finish_tasks()
            self._proc = None
            self._returncode = proc.returncode
            raise
        finally:
            if template_file is not None:
                await asyncio.to_thread(template_file.unlink, missing_ok=True)
        self.url = str(ready["url"])
        self.api_key = key
        self.model = alias
        self.gpu = bool(ready.get("gpu"))
        devices = ready.get("devices")
        self.devices = tuple(str(d) for d in devices) if isinstance(devices, list) else ()
        self.load_s = time.perf_counter() - began
        self._tasks.append(
            asyncio.get_running_loop().create_task(
                self._read_log(proc.stdout), name=f"engine output {proc.pid}"
            )
        )
        self._watch = asyncio.get_running_loop().create_task(
            self._watch_exit(proc), name=f"engine watch {proc.pid}"
        )
        log.info(
            "Built-in engine serves %s at %s (pid %d, %.1f s)",
            alias,
            self.url,
            proc.pid,
            self.load_s,
        )
        return self.url

    async def _ready_line(self, stdout: asyncio.StreamReader) -> dict[str, Any] | None:
        """The first JSON object the child writes to stdout (None: it closed stdout first);
        other lines are kept with its log."""
        while True:
            try:
                raw = await stdout.readline()
            except ValueError:  # a line longer than the limit: not the ready line
                continue
            if not raw:
                return None
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    obj = json.loads(line)
                    if isinstance(obj, dict):
                        return obj
            if line:
                self._tail.append(line)

    async def _start_failure(
        self, proc: asyncio.subprocess.Process, alias: str, ready: dict[str, Any] | None
    ) -> EngineError:
        """The error for a child that stopped (or said it failed) before serving."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await proc.wait()
        await self._finish_tasks()
        said = str(ready.get("error", "")) if ready else ""
        if not said and proc.returncode is not None:
            said = f"it stopped with {_exit_words(proc.returncode)}"
        said = said or "it did not say where it serves"
        detail = self._summary()
        more = f" Its last lines: {detail}" if detail and detail not in said else ""
        return EngineError(f"The built-in engine could not load {alias}: {said}.{more}")

    # -- watching ---------------------------------------------------------------------
    async def _read_log(self, stream: asyncio.StreamReader) -> None:
        """Keep the child's lines (the last :data:`TAIL_LINES`) and log them: llama.cpp's
        errors as warnings, its warnings as information, the rest at debug level."""
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # an over-long line: keep its start
                raw = await stream.read(4096)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._tail.append(line)
                level = _LOG_LEVELS.get(_message_of(line)[0], logging.DEBUG)
                log.log(level, "engine: %s", line)

    async def _watch_exit(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):  # the last lines it wrote
                await asyncio.gather(*self._tasks, return_exceptions=True)
        self._returncode = code
        expected = self._stopping
        reason = ""
        if not expected:
            detail = self._summary()
            last = f"; last lines: {detail}" if detail else "; it wrote nothing before it stopped"
            reason = f"The built-in engine stopped unexpectedly ({_exit_words(code)}){last}."
            self.crash = reason
            log.warning("%s", reason)
        else:
            log.info("Built-in engine stopped (pid %d, %s)", proc.pid, _exit_words(code))
        if self._proc is proc:
            self._proc = None
            self.url = ""
            self.api_key = ""
            self.model = ""
        self.exited.emit(EngineExit(proc.pid, code, expected, reason))

    async def wait_exited(self) -> int | None:
        """Wait until the running child (if any) has exited and been noticed; its status."""
        watch = self._watch
        if watch is not None:
            await asyncio.shield(watch)
        return self._returncode

    # -- stopping ---------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop the child: SIGTERM, then SIGKILL after :attr:`stop_timeout`. Returns once it
        has exited; does nothing when none runs."""
        proc = self._proc
        if proc is None:
            return
        self._stopping = True
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                async with asyncio.timeout(self.stop_timeout):
                    await proc.wait()
            except TimeoutError:
                log.warning(
                    "Built-in engine (pid %d) did not stop within %g s; killing it",
                    proc.pid,
                    self.stop_timeout,
                )
                await self._kill(proc)
        watch = self._watch
        if watch is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await asyncio.shield(watch)
        self._close_stdin(proc)

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        """SIGKILL the child (by its process id) and wait for it."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10.0):
                    await proc.wait()
        self._close_stdin(proc)

    @staticmethod
    def _close_stdin(proc: asyncio.subprocess.Process) -> None:
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()

    async def _finish_tasks(self) -> None:
        tasks, self._tasks = self._tasks, []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _write_template(text: str) -> Path:
    fd, name = tempfile.mkstemp(prefix="corral-template-", suffix=".jinja")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(name)
