"""The Ollama host: the only module that imports the ``ollama`` client.

Every call has a deadline: a short connect timeout on the HTTP client, a total deadline
on every request that is not a stream, and an idle deadline between the lines of a stream
(a pull may run for hours, but a pull that says nothing for ``stream_idle`` seconds is
dead). Every foreign exception is translated into a CorralError with the cause kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TypeVar

import ollama

from app.core.errors import (
    CapabilityMissing,
    CorralError,
    HostRequestFailed,
    HostUnreachable,
    InvalidInput,
    ModelNotFound,
    PullFailed,
    StreamInterrupted,
)
from app.core.hosts.base import (
    OLLAMA_CAPABILITIES,
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatStats,
    ContentChunk,
    FinalChunk,
    HostCapabilities,
    HostConfig,
    HostHealth,
    ModelDetail,
    ModelInfo,
    PullProgress,
    RunningModel,
    ThinkingChunk,
    Timeouts,
    ToolCall,
    ToolCallChunk,
)
from app.core.hosts.http import HttpHost, drain_lines
from app.core.models.progress import PullTracker

T = TypeVar("T")

_GO_DURATION = re.compile(r"^-?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def normalize_keep_alive(value: str | float | int) -> str | float:
    """Check a keep_alive the way Ollama accepts it: a Go duration string or seconds."""
    if isinstance(value, bool):
        raise InvalidInput("keep_alive must be a duration such as '5m' or a number of seconds.")
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if _GO_DURATION.match(text):
        return text
    raise InvalidInput(
        f"{value!r} is not a keep-alive duration: use e.g. '5m', '1h30m', '-1' (forever) or '0'."
    )


def _details(d: ollama.ListResponse.Model | ollama.ProcessResponse.Model) -> dict[str, str]:
    det = d.details
    if det is None:
        return {"family": "", "parameter_size": "", "quantization": "", "format": ""}
    return {
        "family": det.family or "",
        "parameter_size": det.parameter_size or "",
        "quantization": det.quantization_level or "",
        "format": det.format or "",
    }


class OllamaHost(HttpHost):
    """An Ollama server reached over HTTP.

    Attributes:
        config: how to reach it.
        timeouts: deadlines for its calls.
        default_keep_alive: keep_alive sent by :meth:`load` when none is given.
    """

    def __init__(
        self,
        config: HostConfig,
        *,
        timeouts: Timeouts | None = None,
        default_keep_alive: str | float = "5m",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(config, timeouts=timeouts, clock=clock)
        self.default_keep_alive = normalize_keep_alive(default_keep_alive)
        self._ollama_client: ollama.AsyncClient | None = None

    @property
    def capabilities(self) -> HostCapabilities:
        return OLLAMA_CAPABILITIES

    # -- clients (created lazily, inside the running loop) ----------------------------
    def _ollama(self) -> ollama.AsyncClient:
        if self._ollama_client is None:
            client = ollama.AsyncClient(
                host=self.config.url,
                timeout=self._httpx_timeout(),
                headers=self.config.header_dict(),
            )
            # The ollama client adds OLLAMA_API_KEY (a cloud credential) to every request
            # when no Authorization header is given; never send it to a host that was not
            # configured with it.
            if not any(k.lower() == "authorization" for k, _ in self.config.headers):
                client._client.headers.pop("authorization", None)
            self._ollama_client = client
        return self._ollama_client

    async def aclose(self) -> None:
        client, self._ollama_client = self._ollama_client, None
        if client is not None:
            await client.close()  # type: ignore[no-untyped-call]
        await super().aclose()

    # -- error translation ------------------------------------------------------------
    def _translate_reply(
        self, exc: BaseException, *, action: str, model: str
    ) -> CorralError | None:
        name = self.config.name
        if isinstance(exc, ollama.ResponseError):
            msg, status = str(exc.error).strip(), exc.status_code
            if status == 404:
                return ModelNotFound(
                    f"{name} has no model named {model!r}." if model else f"{name}: {msg}.",
                    host=name,
                    model=model,
                )
            if status == 400 and "does not support" in msg:
                capability = msg.rsplit("does not support", 1)[1].strip(" .")
                return CapabilityMissing(
                    f"{model or 'The model'} on {name} does not support {capability}.",
                    host=name,
                    model=model,
                    capability=capability,
                )
            if status in (401, 403):
                return HostRequestFailed(
                    f"{name} refused access (HTTP {status}): check the host's headers or token.",
                    host=name,
                    status=status,
                )
            if status == -1:
                return HostRequestFailed(
                    f"{name} reported an error while {action}: {msg}.", host=name, status=200
                )
            return HostRequestFailed(
                f"{name} failed while {action}: {msg} (HTTP {status}).", host=name, status=status
            )
        return None

    @staticmethod
    def _require_model(model: str, hint: str = "") -> str:
        return HttpHost._require_model(
            model, hint or "Enter a model name, for example llama3.2 or qwen3:0.6b."
        )

    # -- operations -------------------------------------------------------------------
    async def version(self) -> str:
        return await self._version(self.timeouts.request)

    async def _version(self, deadline: float) -> str:
        async def go() -> str:
            r = await self._client().get("/api/version")
            if r.status_code != 200:
                raise ollama.ResponseError(r.text, r.status_code)
            version = r.json().get("version")
            if not isinstance(version, str):
                raise ValueError("no version in reply")
            return version

        return await self._call("asking for its version", go, deadline=deadline)

    async def health(self) -> HostHealth:
        self._client()  # the client is set up before the clock starts: only the round trip counts
        start = self._clock()
        try:
            version = await self._version(self.timeouts.probe)
        except CorralError as exc:
            return HostHealth(online=False, checked_at=datetime.now(UTC), error=exc.message)
        rtt_ms = (self._clock() - start) * 1000.0
        return HostHealth(online=True, checked_at=datetime.now(UTC), version=version, rtt_ms=rtt_ms)

    async def list_models(self) -> list[ModelInfo]:
        resp = await self._call("listing models", lambda: self._ollama().list())
        out = []
        for m in resp.models:
            out.append(
                ModelInfo(
                    name=m.model or "",
                    size=int(m.size or 0),
                    digest=m.digest or "",
                    modified_at=m.modified_at,
                    **_details(m),
                )
            )
        return out

    async def running_models(self) -> list[RunningModel]:
        resp = await self._call("listing loaded models", lambda: self._ollama().ps())
        return [
            RunningModel(
                name=m.model or m.name or "",
                size=int(m.size or 0),
                size_vram=int(m.size_vram or 0),
                context_length=m.context_length,
                expires_at=m.expires_at,
                digest=m.digest or "",
            )
            for m in resp.models
        ]

    async def show(self, model: str) -> ModelDetail:
        name = self._require_model(model)
        r = await self._call(
            f"reading details of {name}", lambda: self._ollama().show(name), model=name
        )
        det = r.details
        info: dict[str, Any] = dict(r.modelinfo or {})
        return ModelDetail(
            name=name,
            family=(det.family or "") if det else "",
            parameter_size=(det.parameter_size or "") if det else "",
            quantization=(det.quantization_level or "") if det else "",
            format=(det.format or "") if det else "",
            parameters=r.parameters or "",
            template=r.template or "",
            license=r.license or "",
            modelfile=r.modelfile or "",
            capabilities=tuple(r.capabilities or ()),
            model_info=MappingProxyType(info),
            modified_at=r.modified_at,
        )

    async def pull(self, model: str) -> AsyncIterator[PullProgress]:
        name = self._require_model(model)
        tracker = PullTracker(name)
        host = self.config.name
        action = f"pulling {name}"
        self.in_flight += 1
        try:
            stream = await self._ollama().pull(name, stream=True)
            async with contextlib.aclosing(stream):  # type: ignore[type-var]
                while True:
                    try:
                        async with asyncio.timeout(self.timeouts.stream_idle):
                            part = await anext(stream)
                    except StopAsyncIteration:
                        break
                    yield tracker.update(part.status or "", part.digest, part.total, part.completed)
        except (HostUnreachable, InvalidInput):
            raise
        except ollama.ResponseError as exc:
            reason = str(exc.error).strip()
            if "file does not exist" in reason:
                reason = f"the registry has no model named {name!r} ({reason})"
            raise PullFailed(
                f"Pull of {name} on {host} failed: {reason}.", host=host, model=name
            ) from exc
        except TimeoutError as exc:
            raise PullFailed(
                f"Pull of {name} on {host} failed: no progress for "
                f"{self.timeouts.stream_idle:g} s.",
                host=host,
                model=name,
            ) from exc
        except Exception as exc:
            err = self._translate(exc, action=action, model=name)
            if isinstance(err, HostUnreachable):
                raise err from exc
            if isinstance(err, StreamInterrupted):
                raise PullFailed(
                    f"Pull of {name} on {host} failed: the connection was lost. "
                    "Pull again to resume where it stopped.",
                    host=host,
                    model=name,
                ) from exc
            raise PullFailed(
                f"Pull of {name} on {host} failed: {err.message}", host=host, model=name
            ) from exc
        finally:
            self.in_flight -= 1
        if not tracker.snapshot().done:
            raise PullFailed(
                f"Pull of {name} on {host} ended before the host reported success.",
                host=host,
                model=name,
            )

    async def load(self, model: str, keep_alive: str | float | None = None) -> None:
        name = self._require_model(model)
        ka = normalize_keep_alive(keep_alive) if keep_alive is not None else self.default_keep_alive
        try:
            await self._call(
                f"loading {name}",
                lambda: self._ollama().generate(model=name, keep_alive=ka),
                model=name,
                deadline=self.timeouts.load,
            )
        except CapabilityMissing as exc:
            if exc.capability != "generate":
                raise
            # An embedding-only model cannot be loaded through generate; Ollama loads it
            # for an embed request with no input.
            await self._call(
                f"loading {name}",
                lambda: self._ollama().embed(model=name, input="", keep_alive=ka),
                model=name,
                deadline=self.timeouts.load,
            )

    async def unload(self, model: str) -> None:
        name = self._require_model(model)
        await self._call(
            f"unloading {name}",
            lambda: self._ollama().generate(model=name, keep_alive=0),
            model=name,
        )

    async def delete(self, model: str) -> None:
        name = self._require_model(model)
        await self._call(f"deleting {name}", lambda: self._ollama().delete(name), model=name)

    async def copy(self, source: str, destination: str) -> None:
        src = self._require_model(source)
        dst = self._require_model(destination)
        await self._call(
            f"copying {src} to {dst}", lambda: self._ollama().copy(src, dst), model=src
        )

    # -- chat -------------------------------------------------------------------------
    async def chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream a reply from /api/chat.

        Posted with plain httpx rather than the ollama client: the client's tool model
        drops anyOf, defaults and nested properties from tool schemas.
        """
        name = self._require_model(request.model)
        body: dict[str, Any] = {
            "model": name,
            "messages": [_ollama_message(m) for m in request.messages],
            "stream": True,
        }
        if request.tools:
            body["tools"] = [dict(t) for t in request.tools]
        if request.options:
            body["options"] = dict(request.options)
        if request.think is not None:
            body["think"] = request.think
        if request.keep_alive is not None:
            body["keep_alive"] = normalize_keep_alive(request.keep_alive)
        action = f"answering with {name}"
        timeout = self._stream_timeout()
        start = self._clock()
        first: float | None = None
        self.in_flight += 1
        try:
            async with self._client().stream("POST", "/api/chat", json=body, timeout=timeout) as r:
                if r.status_code != 200:
                    text = (await r.aread()).decode("utf-8", "replace")
                    raise ollama.ResponseError(text, r.status_code)
                lines = r.aiter_lines()
                async for line in lines:
                    if not line.strip():
                        continue
                    part = json.loads(line)
                    if not isinstance(part, dict):
                        raise ValueError("chat line is not an object")
                    if part.get("error"):
                        raise ollama.ResponseError(str(part["error"]))
                    msg = part.get("message") or {}
                    if msg.get("thinking"):
                        first = first if first is not None else self._clock()
                        yield ThinkingChunk(str(msg["thinking"]))
                    if msg.get("content"):
                        first = first if first is not None else self._clock()
                        yield ContentChunk(str(msg["content"]))
                    for call in msg.get("tool_calls") or ():
                        fn = call.get("function") or {}
                        first = first if first is not None else self._clock()
                        yield ToolCallChunk(
                            ToolCall(
                                name=str(fn.get("name", "")),
                                arguments=dict(fn.get("arguments") or {}),
                                id=str(call.get("id", "")),
                            )
                        )
                    if part.get("done"):
                        end = self._clock()
                        await drain_lines(lines)
                        yield FinalChunk(_ollama_stats(part, start, first, end))
                        return
            raise StreamInterrupted(
                f"{self.config.name} ended the reply before it was done.", host=self.config.name
            )
        except (CorralError, asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            raise self._translate(
                exc, action=action, model=name, deadline=self.timeouts.stream_idle
            ) from exc
        finally:
            self.in_flight -= 1


def _ollama_message(m: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.thinking:
        out["thinking"] = m.thinking
    if m.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": c.name, "arguments": dict(c.arguments)}} for c in m.tool_calls
        ]
    if m.tool_name:
        out["tool_name"] = m.tool_name
    return out


def _ollama_stats(part: dict[str, Any], start: float, first: float | None, end: float) -> ChatStats:
    def ns(key: str) -> int | None:
        value = part.get(key)
        return int(value) if isinstance(value, int | float) else None

    eval_count, eval_ns = ns("eval_count"), ns("eval_duration")
    prompt_count, prompt_ns = ns("prompt_eval_count"), ns("prompt_eval_duration")
    load_ns = ns("load_duration")
    return ChatStats(
        done_reason=str(part.get("done_reason") or ""),
        prompt_tokens=prompt_count,
        output_tokens=eval_count,
        time_to_first_token_ms=(first - start) * 1000.0 if first is not None else None,
        total_ms=(end - start) * 1000.0,
        tokens_per_s=eval_count / eval_ns * 1e9 if eval_count and eval_ns else None,
        prompt_tokens_per_s=prompt_count / prompt_ns * 1e9 if prompt_count and prompt_ns else None,
        load_ms=load_ns / 1e6 if load_ns is not None else None,
    )
