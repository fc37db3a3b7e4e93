"""The built-in engine as a host: "This computer (built-in)" in the fleet.

Corral runs llama.cpp's server itself (the optional ``xllamacpp`` wheel), in a child
process on 127.0.0.1 with a free port, one model at a time (see
:mod:`app.core.engine.process`). Load starts the child with the model, Unload stops it,
and every memory the model held goes back with the process. While a model runs, the
host answers through an :class:`~app.core.hosts.openai.OpenAIHost` on the child's URL;
while none runs, it is online with no model loaded (it is on this computer, nothing to
reach). When the child stops without being asked, the host is offline with the reason
and the engine's last lines until the next Load.

The models it offers come from a catalog (the demo model, the models folder and Ollama's
store; see :class:`app.core.engine.catalog.EngineCatalog`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol

from app.core.engine import EngineError, EngineModel
from app.core.engine.process import EngineExit, EngineProcess
from app.core.engine.templates import template_for
from app.core.errors import (
    CapabilityMissing,
    CorralError,
    InvalidInput,
    ModelNotFound,
)
from app.core.events import Event
from app.core.hosts.base import (
    ChatChunk,
    ChatRequest,
    FinalChunk,
    HostCapabilities,
    HostConfig,
    HostHealth,
    HostKind,
    ModelDetail,
    ModelInfo,
    PullProgress,
    RunningModel,
    Timeouts,
)
from app.core.hosts.openai import OpenAIHost
from app.core.settings import Settings

__all__ = [
    "ENGINE_ID",
    "ENGINE_NAME",
    "ENGINE_URL",
    "EngineHost",
    "EngineSettings",
    "EngineStatus",
    "engine_config",
    "engine_settings",
]

log = logging.getLogger(__name__)

ENGINE_ID = "builtin"
ENGINE_NAME = "This computer (built-in)"
#: Not reached over HTTP: it only names the host (and groups it under this computer).
ENGINE_URL = "builtin://localhost"

#: What the fleet's Version column says while no model runs (kept short: the column
#: takes the width it needs from the hosts' names).
IDLE_TEXT = "idle, no model loaded"

_REASONS = {
    "pull": "The built-in engine runs the GGUF files in its models folder; add models there.",
    "delete": "This catalog of the built-in engine cannot delete models.",
    "copy": "The built-in engine cannot copy models.",
}


def engine_config() -> HostConfig:
    """The built-in engine host's config as the registry lists it."""
    return HostConfig(ENGINE_ID, ENGINE_NAME, ENGINE_URL, HostKind.LLAMACPP, source="default")


class Catalog(Protocol):
    """Where the engine's models come from (blocking calls, made in a worker thread)."""

    @property
    def default_model(self) -> str:
        """The model offered first ("" when none is)."""
        ...

    def models(self) -> list[EngineModel]:
        """Every model the engine can run."""
        ...

    def prepare(self, model: EngineModel) -> EngineModel:
        """The model ready to load (a file put in place first where needed)."""
        ...

    #: whether :meth:`remove` can delete models at all
    can_remove: bool

    def remove(self, model: EngineModel) -> None:
        """Delete the model's file (InvalidInput, with why, where it is not Corral's)."""
        ...


class _ListCatalog:
    """A catalog from a function that lists the models (nothing to prepare)."""

    def __init__(self, models: Callable[[], list[EngineModel]]) -> None:
        self.models = models
        self.default_model = ""
        self.can_remove = False

    def prepare(self, model: EngineModel) -> EngineModel:
        return model

    def remove(self, model: EngineModel) -> None:
        raise CapabilityMissing(_REASONS["delete"], model=model.name, capability="delete")


@dataclass(frozen=True)
class EngineSettings:
    """How models are started.

    Attributes:
        ctx: context size in tokens (0: the model's own, often large and memory-hungry);
            never more than the model was trained for.
        threads: CPU threads (0: one per physical core).
        gpu_layers: layers offloaded to the GPU when llama.cpp was built with a GPU
            backend and finds a device (-1: as many as llama.cpp sees fit; 0: none).
        max_tokens: longest reply in tokens (0: the model's own limit where it has one,
            see :attr:`EngineModel.reply_limit`; otherwise the context).
    """

    ctx: int = 4096
    threads: int = 0
    gpu_layers: int = -1
    max_tokens: int = 0

    def __post_init__(self) -> None:
        if self.ctx < 0 or self.threads < 0 or self.max_tokens < 0:
            raise InvalidInput("The context size, threads and reply length must not be negative.")


def engine_settings(settings: Settings) -> EngineSettings:
    """How the engine starts models, as the user's settings say."""
    return EngineSettings(
        ctx=settings.engine_context,
        threads=settings.engine_threads,
        gpu_layers=settings.engine_gpu_layers,
    )


@dataclass(frozen=True)
class EngineStatus:
    """What the built-in engine does now.

    Attributes:
        state: ``idle`` (no model), ``loading``, ``running`` or ``crashed``.
        model: the model loading or running ("" otherwise).
        pid: the child process's id while one runs.
        url: where the child serves while it runs.
        reason: why it stopped, when it crashed.
    """

    state: str
    model: str = ""
    pid: int | None = None
    url: str = ""
    reason: str = ""


class EngineHost:
    """The built-in llama.cpp engine, behind the host protocol.

    Attributes:
        config: the host's config (id ``builtin``).
        in_flight: loads, unloads and chats running on it now.
        timeouts: deadlines (``load`` bounds a model's start).
        settings: how models are started.
        process: the child process.
        changed: emitted with an :class:`EngineStatus` when a load starts or ends, a model
            is unloaded, or the engine stopped on its own.
    """

    def __init__(
        self,
        config: HostConfig,
        *,
        catalog: Catalog | None = None,
        models: Callable[[], list[EngineModel]] | None = None,
        settings: EngineSettings | None = None,
        timeouts: Timeouts | None = None,
        process: EngineProcess | None = None,
    ) -> None:
        self.config = config
        self.in_flight = 0
        self.timeouts = timeouts or Timeouts()
        self.settings = settings or EngineSettings()
        self.process = process or EngineProcess(load_timeout=self.timeouts.load)
        self.changed: Event[EngineStatus] = Event("engine.changed")
        if catalog is None:
            if models is None:
                raise TypeError("EngineHost needs a catalog or a models function")
            catalog = _ListCatalog(models)
        self.catalog_source = catalog
        self._delegate: OpenAIHost | None = None
        self._stale: list[OpenAIHost] = []
        self._loading = ""
        self._lock = asyncio.Lock()
        self.process.exited.connect(self._on_exit)

    # -- state ------------------------------------------------------------------------
    @property
    def status(self) -> EngineStatus:
        p = self.process
        if self._loading:
            return EngineStatus("loading", self._loading, p.pid)
        if p.running and self._delegate is not None:
            return EngineStatus("running", p.model, p.pid, p.url)
        if p.crash:
            return EngineStatus("crashed", reason=p.crash)
        return EngineStatus("idle")

    @property
    def loaded_model(self) -> str:
        """The model the engine serves now ("" when none)."""
        return self.process.model if self._serving() else ""

    def _serving(self) -> bool:
        return self.process.running and self._delegate is not None and not self._loading

    def _on_exit(self, exit: EngineExit) -> None:
        if self._delegate is not None:
            self._stale.append(self._delegate)
            self._delegate = None
        if not exit.expected:
            self.changed.emit(self.status)

    @property
    def capabilities(self) -> HostCapabilities:
        return HostCapabilities(
            pull=False,
            load=True,
            unload=True,
            delete=self.catalog_source.can_remove,
            copy=False,
            reasons=MappingProxyType(dict(_REASONS)),
        )

    # -- catalog ----------------------------------------------------------------------
    async def catalog(self) -> list[EngineModel]:
        """The models the engine can run (read off the disk in a worker thread)."""
        try:
            async with asyncio.timeout(self.timeouts.request):
                return await asyncio.to_thread(self.catalog_source.models)
        except CorralError:
            raise
        except TimeoutError as exc:
            raise EngineError(
                f"Listing the built-in engine's models took more than {self.timeouts.request:g} s."
            ) from exc
        except OSError as exc:
            raise EngineError(f"The built-in engine's models cannot be listed: {exc}.") from exc

    @property
    def default_model(self) -> str:
        """The model the engine offers first (the demo model when installed; "" none)."""
        return self.catalog_source.default_model

    async def _find(self, name: str) -> EngineModel:
        wanted = name.strip()
        if not wanted:
            raise InvalidInput("Choose a model for the built-in engine.")
        for model in await self.catalog():
            if model.name == wanted:
                return model
        raise ModelNotFound(
            f"The built-in engine has no model named {wanted!r}; add its GGUF file to the "
            "models folder.",
            host=self.config.name,
            model=wanted,
        )

    # -- health -----------------------------------------------------------------------
    async def health(self) -> HostHealth:
        now = datetime.now
        if self._loading:
            return HostHealth(
                online=True,
                checked_at=now(UTC),
                version=f"loading {self._loading}",
            )
        delegate = self._delegate
        if self.process.running and delegate is not None:
            health = await delegate.health()
            if health.online:
                return health
            await self._notice_exit()
            if self.process.running:
                return health
        if self.process.crash:
            return HostHealth(online=False, checked_at=now(UTC), error=self.process.crash)
        return HostHealth(online=True, checked_at=now(UTC), version=IDLE_TEXT)

    async def _notice_exit(self, within: float = 0.5) -> None:
        """Give a child that is going away a moment to be seen gone."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self.process.wait_exited()

    async def version(self) -> str:
        delegate = self._delegate
        if self._serving() and delegate is not None:
            return await delegate.version()
        if self.process.crash and not self._loading:
            raise EngineError(self.process.crash, host=self.config.name)
        return IDLE_TEXT

    # -- models -----------------------------------------------------------------------
    async def list_models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                name=m.name,
                size=m.size,
                family=m.architecture,
                parameter_size=m.parameters,
                quantization=m.quantization,
                format="gguf",
            )
            for m in await self.catalog()
        ]

    async def running_models(self) -> list[RunningModel]:
        delegate = self._delegate
        if not self._serving() or delegate is None:
            return []
        name, pid = self.process.model, self.process.pid
        served = await delegate.running_models()
        context = next((r.context_length for r in served), None)
        return [RunningModel(name, await _rss(pid), 0, context_length=context)]

    async def show(self, model: str) -> ModelDetail:
        """What the model's file says (architecture, parameters, quantization, context,
        whether it has a chat template), and the template Corral supplies if it has none."""
        entry = await self._find(model)
        detail = _detail(entry)
        delegate = self._delegate
        if self._serving() and delegate is not None and self.process.model == entry.name:
            served = await delegate.show(entry.name)
            detail = replace(
                detail,
                capabilities=served.capabilities or detail.capabilities,
                model_info=MappingProxyType({**served.model_info, **detail.model_info}),
            )
        return detail

    async def pull(self, model: str) -> AsyncIterator[PullProgress]:
        raise CapabilityMissing(
            _REASONS["pull"], host=self.config.name, model=model, capability="pull"
        )
        yield  # a generator, like every host's pull

    async def delete(self, model: str) -> None:
        """Delete a model's file from the models folder (the engine stops first if it runs
        that model). Ollama's models are refused: their files are Ollama's."""
        self.in_flight += 1
        try:
            async with self._lock:
                entry = await self._find(model)
                if self.process.running and self.process.model == entry.name:
                    await self._stop_child()
                    self.changed.emit(self.status)
                try:
                    async with asyncio.timeout(self.timeouts.request):
                        await asyncio.to_thread(self.catalog_source.remove, entry)
                except TimeoutError as exc:
                    raise EngineError(
                        f"Deleting {entry.name} took more than {self.timeouts.request:g} s."
                    ) from exc
                except CorralError as exc:
                    if exc.host is None:
                        exc.host = self.config.name
                    raise
        finally:
            self.in_flight -= 1

    async def copy(self, source: str, destination: str) -> None:
        raise CapabilityMissing(
            _REASONS["copy"], host=self.config.name, model=source, capability="copy"
        )

    # -- load / unload ----------------------------------------------------------------
    async def load(self, model: str, keep_alive: str | float | None = None) -> None:
        """Start the engine with ``model`` (stopping the model it runs first, if another).
        ``keep_alive`` has no meaning here: a model runs until it is unloaded."""
        self.in_flight += 1
        try:
            async with self._lock:
                entry = await self._find(model)
                if self._serving() and self.process.model == entry.name:
                    return
                await self._stop_child()
                await self._start(entry)
        finally:
            self.in_flight -= 1

    async def _start(self, entry: EngineModel) -> None:
        s = self.settings
        self._loading = entry.name
        self.changed.emit(self.status)
        try:
            entry = await self._prepare(entry)
            template = None if entry.has_template else template_for(entry.architecture)
            ctx = s.ctx
            if entry.context_length:
                ctx = min(ctx, entry.context_length) if ctx else entry.context_length
            url = await self.process.start(
                entry.path,
                entry.name,
                ctx=ctx,
                threads=s.threads,
                gpu_layers=s.gpu_layers,
                template=template,
                max_tokens=s.max_tokens or entry.reply_limit,
            )
            self._delegate = OpenAIHost(
                HostConfig(
                    self.config.id,
                    self.config.name,
                    url,
                    HostKind.LLAMACPP,
                    _headers(self.process.api_key),
                ),
                timeouts=self.timeouts,
            )
        except CorralError as exc:
            if exc.host is None:
                exc.host = self.config.name
            raise
        finally:
            self._loading = ""
            self.changed.emit(self.status)

    async def _prepare(self, entry: EngineModel) -> EngineModel:
        """Put the model's file in place (the demo is assembled on its first load)."""
        try:
            async with asyncio.timeout(self.timeouts.load):
                return await asyncio.to_thread(self.catalog_source.prepare, entry)
        except TimeoutError as exc:
            raise EngineError(
                f"Preparing {entry.name} took more than {self.timeouts.load:g} s."
            ) from exc

    async def unload(self, model: str) -> None:
        """Stop the engine (its memory goes back to the system). Unloading a model that
        does not run does nothing."""
        self.in_flight += 1
        try:
            async with self._lock:
                name = model.strip()
                if not self.process.running or (name and name != self.process.model):
                    return
                await self._stop_child()
                self.changed.emit(self.status)
        finally:
            self.in_flight -= 1

    async def _stop_child(self) -> None:
        delegate, self._delegate = self._delegate, None
        if delegate is not None:
            self._stale.append(delegate)
        await self.process.stop()
        await self._close_stale()

    async def _close_stale(self) -> None:
        stale, self._stale = self._stale, []
        await asyncio.gather(*(h.aclose() for h in stale), return_exceptions=True)

    # -- chat -------------------------------------------------------------------------
    async def chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream a reply; a model that does not run yet is loaded first (its load time
        is in the reply's figures)."""
        self.in_flight += 1
        try:
            load_ms: float | None = None
            if not (self._serving() and self.process.model == request.model.strip()):
                began = asyncio.get_running_loop().time()
                await self.load(request.model)
                load_ms = (asyncio.get_running_loop().time() - began) * 1000.0
            delegate = self._delegate
            if delegate is None:  # stopped while the reply was being prepared
                raise EngineError(
                    self.process.crash or "The built-in engine stopped before it could answer.",
                    host=self.config.name,
                )
            try:
                async for chunk in delegate.chat(request):
                    if load_ms is not None and isinstance(chunk, FinalChunk):
                        chunk = FinalChunk(replace(chunk.stats, load_ms=load_ms))
                    yield chunk
            except CorralError as exc:
                await self._notice_exit()
                if self.process.crash and not self.process.running:
                    raise EngineError(self.process.crash, host=self.config.name) from exc
                raise
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        """Stop the engine's child and close its connections."""
        self.process.exited.disconnect(self._on_exit)
        await self._stop_child()


def _headers(api_key: str) -> tuple[tuple[str, str], ...]:
    """The headers of every request to the engine's server: its key. (Its connections are
    kept alive like every host's; one the server closed after a streamed reply is replaced
    by the host's HTTP client, see :class:`app.core.hosts.http.RetryStaleConnection`.)"""
    return (("Authorization", f"Bearer {api_key}"),)


_SOURCE_NOTES = {
    "demo": "The demo model (Gemma 3 270M, a small base model): assembled into the models "
    "folder the first time it is loaded.",
    "ollama": "Run from Ollama's own model files, which Corral only reads.",
}


def _detail(entry: EngineModel) -> ModelDetail:
    """The Details of a model of the engine, from its catalog entry."""
    from app.core.engine.models import note_for  # reads GGUF: kept off the start-up path

    note = note_for(entry.architecture, has_template=entry.has_template)
    notes = tuple(n for n in (note.message if note else "", _SOURCE_NOTES.get(entry.source)) if n)
    return ModelDetail(
        name=entry.name,
        family=entry.architecture,
        parameter_size=entry.parameters,
        quantization=entry.quantization,
        format="gguf",
        template=(note.template or "") if note else "",
        capabilities=("completion",),
        model_info=MappingProxyType(_model_info(entry)),
        notes=notes,
    )


def _model_info(entry: EngineModel) -> dict[str, Any]:
    arch = entry.architecture or "model"
    info: dict[str, Any] = {"general.path": str(entry.path), "corral.source": entry.source}
    if entry.architecture:
        info["general.architecture"] = entry.architecture
    if entry.context_length:
        info[f"{arch}.context_length"] = entry.context_length
    info["tokenizer.chat_template present"] = entry.has_template
    info["file size (bytes)"] = entry.size
    gguf = entry.info
    if gguf is not None:
        if gguf.name:
            info["general.name"] = gguf.name
        info["general.parameter_count"] = gguf.parameters
        if gguf.size_label:
            info["general.size_label"] = gguf.size_label
        info["general.file_type"] = gguf.quantization
        info["gguf.version"] = gguf.gguf_version
        info["gguf.tensor_count"] = gguf.tensor_count
    return info


async def _rss(pid: int | None) -> int:
    """Resident memory of the engine's child in bytes (0 when it cannot be read)."""
    if pid is None:
        return 0

    def read() -> int:
        import psutil

        try:
            return int(psutil.Process(pid).memory_info().rss)
        except (psutil.Error, OSError):
            return 0

    return await asyncio.to_thread(read)
