"""OpenAI-compatible hosts: llama.cpp's llama-server, LM Studio, vLLM and any other /v1 server.

They share ``/v1/models`` and a streamed ``/v1/chat/completions`` (server-sent events);
everything else is per kind: llama.cpp has ``/health`` and ``/props`` and, in router mode,
``/models`` with ``/models/load`` and ``/models/unload``; LM Studio describes its models in
``/api/v0/models``; vLLM reports ``/version``. Models are pulled, deleted and copied by
other means on all of them, so those actions are refused with a reason.

Every call has a deadline (a short connect timeout, a total deadline per request, an idle
deadline between the events of a stream) and every foreign exception is translated into
a CorralError with the cause kept, as in :mod:`app.core.hosts.ollama`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from app.core.errors import (
    BadResponse,
    CapabilityMissing,
    CorralError,
    HostRequestFailed,
    InvalidInput,
    ModelNotFound,
    StreamInterrupted,
)
from app.core.hosts.base import (
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatStats,
    ContentChunk,
    FinalChunk,
    HostCapabilities,
    HostConfig,
    HostHealth,
    HostKind,
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

__all__ = ["OpenAIHost", "SseParser"]

T = TypeVar("T")

_OLLAMA_ONLY = {
    "pull": "Pulling models works on Ollama hosts only.",
    "delete": "Deleting models works on Ollama hosts only.",
    "copy": "Copying models works on Ollama hosts only.",
}
_NO_LOAD = {
    HostKind.LLAMACPP: (
        "This llama.cpp server runs one model; start it in router mode to load and unload models."
    ),
    HostKind.LMSTUDIO: (
        "LM Studio loads a model when a chat asks for it; load and unload models in LM Studio."
    ),
    HostKind.VLLM: (
        "A vLLM server serves the models it was started with; restart it to change them."
    ),
    HostKind.OPENAI: "This server does not offer loading or unloading models.",
}
# Sampling options every OpenAI-compatible server takes, by Corral's (Ollama's) names.
_COMMON_OPTIONS = {"temperature": "temperature", "top_p": "top_p", "seed": "seed", "stop": "stop"}
# Extra sampling options some servers take in the same request body.
_EXTRA_OPTIONS: dict[HostKind, dict[str, str]] = {
    HostKind.LLAMACPP: {"top_k": "top_k", "min_p": "min_p", "repeat_penalty": "repeat_penalty"},
    HostKind.VLLM: {"top_k": "top_k", "min_p": "min_p", "repeat_penalty": "repetition_penalty"},
}


# --------------------------------------------------------------------------- SSE


class SseParser:
    """Turns the lines of a ``text/event-stream`` body into the data of its events.

    Feed it lines without their line ending; it returns the data of an event when a blank
    line ends one. Comment lines (``:``), ``event:``, ``id:`` and ``retry:`` fields are
    skipped; several ``data:`` lines of one event are joined with newlines.
    """

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def flush(self) -> str | None:
        """The data of an event that has not been ended by a blank line yet, if any."""
        if not self._data:
            return None
        data, self._data = "\n".join(self._data), []
        return data


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class _Stream:
    """What one streamed reply has said so far."""

    start: float
    first: float | None = None
    finish_reason: str = ""
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    tokens_per_s: float | None = None
    prompt_tokens_per_s: float | None = None
    calls: dict[int, _PendingCall] = field(default_factory=dict)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _error_text(body: bytes) -> str:
    """The message of an error reply in any of the shapes these servers use."""
    text = body.decode("utf-8", "replace").strip()
    try:
        obj = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(obj, dict):
        err = obj.get("error", obj.get("detail"))
        if isinstance(err, dict):
            return _str(err.get("message")) or json.dumps(err)[:300]
        if isinstance(err, str):
            return err
        if isinstance(obj.get("message"), str):
            return str(obj["message"])
    return text[:300]


def _quantization(ftype: str) -> str:
    """llama.cpp's file type name ("Q4_K - Medium") in the usual short form ("Q4_K_M")."""
    head, _, tail = ftype.partition(" - ")
    suffix = {"Small": "_S", "Medium": "_M", "Large": "_L"}.get(tail.strip(), "")
    return head.strip() + suffix


def _parameter_size(n: int | None) -> str:
    if not n:
        return ""
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


class _HTTPStatus(Exception):
    """A non-2xx reply, carried to the translation step."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


# --------------------------------------------------------------------------- host


class OpenAIHost(HttpHost):
    """An OpenAI-compatible model server reached over HTTP.

    Attributes:
        config: how to reach it; ``config.kind`` says which server it is.
        timeouts: deadlines for its calls.
        in_flight: number of requests running on it right now.
        router: for llama.cpp, whether it runs in router mode (None until first seen).
    """

    def __init__(
        self,
        config: HostConfig,
        *,
        timeouts: Timeouts | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if config.kind is HostKind.OLLAMA:
            raise InvalidInput("An Ollama host is reached through the Ollama host type.")
        self.config = config
        super().__init__(config, timeouts=timeouts, clock=clock)
        self.kind = config.kind
        self.router: bool | None = None if config.kind is HostKind.LLAMACPP else False

    @property
    def capabilities(self) -> HostCapabilities:
        reasons = dict(_OLLAMA_ONLY)
        can_load = self.router is True
        if not can_load:
            reasons["load"] = reasons["unload"] = _NO_LOAD[self.kind]
        return HostCapabilities(
            pull=False,
            load=can_load,
            unload=can_load,
            delete=False,
            copy=False,
            reasons=MappingProxyType(reasons),
        )

    # -- error translation ------------------------------------------------------------
    def _translate_reply(
        self, exc: BaseException, *, action: str, model: str
    ) -> CorralError | None:
        if isinstance(exc, _HTTPStatus):
            return self._status_error(exc.status, exc.body, action=action, model=model)
        return None

    def _status_error(self, status: int, body: bytes, *, action: str, model: str) -> CorralError:
        name = self.config.name
        msg = _error_text(body).rstrip(".")
        route_missing = msg.lower() in ("file not found", "not found")  # no such route
        if status == 404 and model and not route_missing:
            return ModelNotFound(f"{name} has no model named {model!r}.", host=name, model=model)
        if status in (401, 403):
            return HostRequestFailed(
                f"{name} refused access (HTTP {status}): check the host's headers or API key.",
                host=name,
                status=status,
            )
        if status == 503 and "loading" in msg.lower():
            return HostRequestFailed(
                f"{name} is still loading its model; try again in a moment.",
                host=name,
                status=status,
            )
        detail = f": {msg}" if msg else ""
        return HostRequestFailed(
            f"{name} answered HTTP {status} while {action}{detail}.", host=name, status=status
        )

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request; the parsed reply of a 2xx status, else _HTTPStatus."""
        r = await self._client().request(method, path, json=body)
        if not 200 <= r.status_code < 300:
            raise _HTTPStatus(r.status_code, r.content)
        return r.json() if r.content.strip() else None

    async def _get_object(self, path: str) -> dict[str, Any]:
        value = await self._request("GET", path)
        if not isinstance(value, dict):
            raise ValueError(f"{path} did not answer with a JSON object")
        return value

    async def _models(self, path: str = "/v1/models") -> list[dict[str, Any]]:
        body = await self._get_object(path)
        data = body.get("data")
        if not isinstance(data, list):
            raise ValueError(f"{path} has no model list")
        return [e for e in data if isinstance(e, dict) and isinstance(e.get("id"), str)]

    @staticmethod
    def _require_model(model: str, hint: str = "") -> str:
        return HttpHost._require_model(model, hint or "Enter a model name as the server lists it.")

    async def _detect_router(self) -> bool:
        """For llama.cpp: router mode lists each model's status under GET /models."""
        if self.router is not None:
            return self.router
        try:
            entries = await self._models("/models")
        except _HTTPStatus as exc:
            if exc.status != 404:
                raise
            entries = []
        self.router = any(isinstance(e.get("status"), dict) for e in entries)
        return self.router

    # -- operations -------------------------------------------------------------------
    async def _version(self) -> str:
        if self.kind is HostKind.LLAMACPP:
            try:
                return _str((await self._get_object("/props")).get("build_info"))
            except _HTTPStatus:
                return ""  # /props can be switched off, or want a model name in router mode
        if self.kind is HostKind.VLLM:
            return _str((await self._get_object("/version")).get("version"))
        return ""

    async def version(self) -> str:
        return await self._call("asking for its version", self._version)

    async def health(self) -> HostHealth:
        self._client()  # created before the clock starts: its set-up is no part of the RTT
        start = self._clock()
        rtt_ms: float | None = None

        async def go() -> str:
            nonlocal rtt_ms
            if self.kind is HostKind.LLAMACPP:
                r = await self._client().get("/health")
                if r.status_code == 503:
                    raise _Loading(self.config.name)
                if r.status_code != 200:
                    raise _HTTPStatus(r.status_code, r.content)
                rtt_ms = (self._clock() - start) * 1000.0
                if self.router is None:
                    with contextlib.suppress(_HTTPStatus, httpx.HTTPError, ValueError):
                        await self._detect_router()
            else:
                await self._models()
                rtt_ms = (self._clock() - start) * 1000.0
            return await self._version()

        try:
            version = await self._call("checking its health", go, deadline=self.timeouts.probe)
        except _Loading:
            return HostHealth(online=False, checked_at=datetime.now(UTC), error="loading model")
        except CorralError as exc:
            return HostHealth(online=False, checked_at=datetime.now(UTC), error=exc.message)
        return HostHealth(online=True, checked_at=datetime.now(UTC), version=version, rtt_ms=rtt_ms)

    async def list_models(self) -> list[ModelInfo]:
        async def go() -> list[ModelInfo]:
            if self.kind is HostKind.LMSTUDIO:
                return [_lmstudio_info(e) for e in await self._models("/api/v0/models")]
            entries = await self._models()
            if self.kind is HostKind.LLAMACPP:
                await self._detect_router()
                return [_llamacpp_info(e) for e in entries]
            return [ModelInfo(name=str(e["id"]), size=0) for e in entries]

        return await self._call("listing models", go)

    async def running_models(self) -> list[RunningModel]:
        async def go() -> list[RunningModel]:
            if self.kind is HostKind.LLAMACPP:
                if await self._detect_router():
                    return [
                        RunningModel(name=str(e["id"]), size=0, size_vram=0)
                        for e in await self._models("/models")
                        if _router_status(e) == "loaded"
                    ]
                running = []
                for e in await self._models():
                    meta = _obj(e.get("meta"))
                    running.append(
                        RunningModel(
                            name=str(e["id"]),
                            size=_int(meta.get("size")) or 0,
                            size_vram=0,
                            context_length=_int(meta.get("n_ctx")),
                        )
                    )
                return running
            if self.kind is HostKind.LMSTUDIO:
                return [
                    RunningModel(
                        name=str(e["id"]),
                        size=0,
                        size_vram=0,
                        context_length=_int(e.get("loaded_context_length")),
                    )
                    for e in await self._models("/api/v0/models")
                    if e.get("state") == "loaded"
                ]
            return [
                RunningModel(
                    name=str(e["id"]),
                    size=0,
                    size_vram=0,
                    context_length=_int(e.get("max_model_len")),
                )
                for e in await self._models()
            ]

        return await self._call("listing loaded models", go)

    async def show(self, model: str) -> ModelDetail:
        name = self._require_model(model)

        async def go() -> ModelDetail:
            if self.kind is HostKind.LMSTUDIO:
                body = await self._get_object(f"/api/v0/models/{quote(name, safe='')}")
                if isinstance(body.get("error"), str) or body.get("id") != name:
                    raise _HTTPStatus(404, b"")
                return _lmstudio_detail(name, body)
            entries = {str(e["id"]): e for e in await self._models()}
            entry = entries.get(name)
            if entry is None:
                raise _HTTPStatus(404, b"")
            if self.kind is HostKind.LLAMACPP:
                props: dict[str, Any] = {}
                if not await self._detect_router():
                    props = await self._get_object("/props")
                return _llamacpp_detail(name, entry, props)
            info: dict[str, Any] = {}
            if _int(entry.get("max_model_len")):
                info[f"{self.kind.value}.context_length"] = entry["max_model_len"]
            return ModelDetail(name=name, model_info=MappingProxyType(info))

        return await self._call(f"reading details of {name}", go, model=name)

    async def pull(self, model: str) -> AsyncIterator[PullProgress]:
        raise CapabilityMissing(
            _OLLAMA_ONLY["pull"], host=self.config.name, model=model, capability="pull"
        )
        yield  # a generator, like every host's pull

    async def _router_action(self, action: str, model: str, deadline: float) -> None:
        name = self._require_model(model)
        verb = "loading" if action == "load" else "unloading"

        async def go() -> None:
            if self.kind is not HostKind.LLAMACPP or not await self._detect_router():
                raise CapabilityMissing(
                    _NO_LOAD[self.kind], host=self.config.name, model=name, capability=action
                )
            await self._request("POST", f"/models/{action}", {"model": name})

        await self._call(f"{verb} {name}", go, model=name, deadline=deadline)

    async def load(self, model: str, keep_alive: str | float | None = None) -> None:
        """Load a model (llama.cpp router mode only; ``keep_alive`` has no meaning here)."""
        await self._router_action("load", model, self.timeouts.load)

    async def unload(self, model: str) -> None:
        await self._router_action("unload", model, self.timeouts.request)

    async def delete(self, model: str) -> None:
        raise CapabilityMissing(
            _OLLAMA_ONLY["delete"], host=self.config.name, model=model, capability="delete"
        )

    async def copy(self, source: str, destination: str) -> None:
        raise CapabilityMissing(
            _OLLAMA_ONLY["copy"], host=self.config.name, model=source, capability="copy"
        )

    # -- chat -------------------------------------------------------------------------
    def _chat_body(self, request: ChatRequest, model: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [_openai_message(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = [dict(t) for t in request.tools]
        names = {**_COMMON_OPTIONS, **_EXTRA_OPTIONS.get(self.kind, {})}
        for key, value in request.options.items():
            if key == "num_predict":
                if isinstance(value, int) and value > 0:
                    body["max_tokens"] = value
            elif key in names and value is not None:
                body[names[key]] = value
        if isinstance(request.think, str):
            body["reasoning_effort"] = request.think
        elif isinstance(request.think, bool) and self.kind in (HostKind.LLAMACPP, HostKind.VLLM):
            body["chat_template_kwargs"] = {"enable_thinking": request.think}
        return body

    async def chat(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream a reply from /v1/chat/completions (server-sent events)."""
        name = self._require_model(request.model)
        body = self._chat_body(request, name)
        action = f"answering with {name}"
        timeout = self._stream_timeout()
        state = _Stream(start=self._clock())
        self.in_flight += 1
        try:
            client = self._client()
            async with client.stream(
                "POST", "/v1/chat/completions", json=body, timeout=timeout
            ) as r:
                if r.status_code != 200:
                    raise _HTTPStatus(r.status_code, await r.aread())
                parser = SseParser()
                done = False
                lines = r.aiter_lines()
                async for line in lines:
                    data = parser.feed(line)
                    if data is None:
                        continue
                    if data.strip() == "[DONE]":
                        done = True
                        await drain_lines(lines)
                        break
                    for chunk in self._on_event(data, state):
                        yield chunk
                if not done:
                    data = parser.flush()  # a last event without its blank line
                    if data is not None and data.strip() == "[DONE]":
                        done = True
                    elif data is not None:
                        for chunk in self._on_event(data, state):
                            yield chunk
                if not done and not state.finish_reason:
                    raise StreamInterrupted(
                        f"{self.config.name} ended the reply before it was done.",
                        host=self.config.name,
                    )
            for chunk in self._complete_calls(state):
                yield chunk
            yield FinalChunk(self._stats(state, self._clock()))
        except (CorralError, asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            raise self._translate(
                exc, action=action, model=name, deadline=self.timeouts.stream_idle
            ) from exc
        finally:
            self.in_flight -= 1

    def _on_event(self, data: str, state: _Stream) -> list[ChatChunk]:
        """The chunks one event of the stream gives (tool calls wait for their end)."""
        part = json.loads(data)
        if not isinstance(part, dict):
            raise ValueError("stream event is not a JSON object")
        if part.get("error") is not None:
            err = part["error"]
            msg = _str(err.get("message")) if isinstance(err, dict) else str(err)
            raise HostRequestFailed(
                f"{self.config.name} reported an error while answering: {msg}.",
                host=self.config.name,
                status=200,
            )
        out: list[ChatChunk] = []
        usage = part.get("usage")
        if isinstance(usage, dict):
            state.prompt_tokens = _int(usage.get("prompt_tokens"))
            state.output_tokens = _int(usage.get("completion_tokens"))
        timings = part.get("timings")
        if isinstance(timings, dict):
            state.tokens_per_s = _float(timings.get("predicted_per_second"))
            state.prompt_tokens_per_s = _float(timings.get("prompt_per_second"))
            if state.prompt_tokens is None:
                state.prompt_tokens = _int(timings.get("prompt_n"))
            if state.output_tokens is None:
                state.output_tokens = _int(timings.get("predicted_n"))
        choices = part.get("choices")
        if not isinstance(choices, list) or not choices:
            return out
        choice = choices[0]
        if not isinstance(choice, dict):
            raise ValueError("stream choice is not a JSON object")
        delta = choice.get("delta")
        if isinstance(delta, dict):
            thinking = _str(delta.get("reasoning_content")) or _str(delta.get("reasoning"))
            if thinking:
                out.append(ThinkingChunk(thinking))
            content = _str(delta.get("content"))
            if content:
                out.append(ContentChunk(content))
            tool_calls = delta.get("tool_calls")
            if isinstance(tool_calls, list):
                for position, call in enumerate(tool_calls):
                    self._add_fragment(state, position, call)
                if tool_calls and state.first is None:
                    state.first = self._clock()
        if out and state.first is None:
            state.first = self._clock()
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and finish:
            state.finish_reason = finish
            out.extend(self._complete_calls(state))
        return out

    @staticmethod
    def _add_fragment(state: _Stream, position: int, call: object) -> None:
        if not isinstance(call, dict):
            raise ValueError("tool call fragment is not a JSON object")
        index = _int(call.get("index"))
        pending = state.calls.setdefault(position if index is None else index, _PendingCall())
        if _str(call.get("id")) and not pending.id:
            pending.id = str(call["id"])
        function = call.get("function")
        if isinstance(function, dict):
            name = _str(function.get("name"))
            if name and name != pending.name:
                pending.name += name
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                pending.arguments.append(arguments)
            elif isinstance(arguments, dict):  # a few servers send the object itself
                pending.arguments.append(json.dumps(arguments))

    def _complete_calls(self, state: _Stream) -> list[ChatChunk]:
        out: list[ChatChunk] = []
        for index in sorted(state.calls):
            pending = state.calls[index]
            text = "".join(pending.arguments).strip()
            try:
                arguments = json.loads(text) if text else {}
            except ValueError as exc:
                raise BadResponse(
                    f"{self.config.name} asked for tool {pending.name!r} with arguments that "
                    f"are not valid JSON: {text[:200]!r}.",
                    host=self.config.name,
                ) from exc
            if not isinstance(arguments, dict):
                raise BadResponse(
                    f"{self.config.name} asked for tool {pending.name!r} with arguments that "
                    f"are not a JSON object: {text[:200]!r}.",
                    host=self.config.name,
                )
            out.append(
                ToolCallChunk(ToolCall(name=pending.name, arguments=arguments, id=pending.id))
            )
        state.calls.clear()
        return out

    @staticmethod
    def _stats(state: _Stream, end: float) -> ChatStats:
        first = state.first
        return ChatStats(
            done_reason=state.finish_reason,
            prompt_tokens=state.prompt_tokens,
            output_tokens=state.output_tokens,
            time_to_first_token_ms=(first - state.start) * 1000.0 if first is not None else None,
            total_ms=(end - state.start) * 1000.0,
            tokens_per_s=state.tokens_per_s,
            prompt_tokens_per_s=state.prompt_tokens_per_s,
        )


class _Loading(HostRequestFailed):
    """llama.cpp answered 503 to /health: it is still loading its model."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} is still loading its model.", host=host, status=503)


# --------------------------------------------------------------------------- mapping


def _openai_message(m: ChatMessage) -> dict[str, Any]:
    if m.role == "tool":
        out: dict[str, Any] = {"role": "tool", "content": m.content}
        if m.tool_call_id:
            out["tool_call_id"] = m.tool_call_id
        if m.tool_name:
            out["name"] = m.tool_name
        return out
    out = {"role": m.role, "content": m.content}
    if m.role == "assistant" and m.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id or f"call_{i}",
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(dict(c.arguments))},
            }
            for i, c in enumerate(m.tool_calls)
        ]
    return out


def _router_status(entry: Mapping[str, Any]) -> str:
    status = entry.get("status")
    return _str(status.get("value")) if isinstance(status, dict) else ""


def _llamacpp_info(entry: Mapping[str, Any]) -> ModelInfo:
    meta = _obj(entry.get("meta"))
    return ModelInfo(
        name=str(entry["id"]),
        size=_int(meta.get("size")) or 0,
        parameter_size=_parameter_size(_int(meta.get("n_params"))),
        quantization=_quantization(_str(meta.get("ftype"))),
        format="gguf",
    )


def _lmstudio_info(entry: Mapping[str, Any]) -> ModelInfo:
    return ModelInfo(
        name=str(entry["id"]),
        size=0,
        family=_str(entry.get("arch")),
        quantization=_str(entry.get("quantization")),
        format=_str(entry.get("compatibility_type")),
    )


def _lmstudio_detail(name: str, entry: Mapping[str, Any]) -> ModelDetail:
    arch = _str(entry.get("arch"))
    info: dict[str, Any] = {}
    if arch:
        info["general.architecture"] = arch
    ctx = _int(entry.get("max_context_length"))
    if ctx:
        info[f"{arch or 'model'}.context_length"] = ctx
    kind = _str(entry.get("type"))
    capabilities = {"llm": ("completion",), "vlm": ("completion", "vision")}.get(
        kind, ("embedding",) if kind == "embeddings" else ()
    )
    return ModelDetail(
        name=name,
        family=arch,
        quantization=_str(entry.get("quantization")),
        format=_str(entry.get("compatibility_type")),
        capabilities=capabilities,
        model_info=MappingProxyType(info),
    )


def _llamacpp_detail(name: str, entry: Mapping[str, Any], props: Mapping[str, Any]) -> ModelDetail:
    meta = _obj(entry.get("meta"))
    settings = _obj(props.get("default_generation_settings"))
    info: dict[str, Any] = {}
    n_ctx = _int(settings.get("n_ctx")) or _int(meta.get("n_ctx"))
    if n_ctx:
        info["llama.cpp.context_length"] = n_ctx  # what the server runs with, not the maximum
    if _int(meta.get("n_ctx_train")):
        info["general.context_length_trained"] = meta["n_ctx_train"]
    if _int(meta.get("n_params")):
        info["general.parameter_count"] = meta["n_params"]
    if _str(props.get("model_path")):
        info["general.path"] = props["model_path"]
    params = settings.get("params")
    parameters = ""
    if isinstance(params, dict):
        keys = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "n_predict")
        parameters = "\n".join(
            f"{k} {params[k]:g}" if isinstance(params[k], float) else f"{k} {params[k]}"
            for k in keys
            if isinstance(params.get(k), int | float) and not isinstance(params.get(k), bool)
        )
    capabilities = ["completion"]
    caps = props.get("chat_template_caps")
    if isinstance(caps, dict) and caps.get("supports_tools"):
        capabilities.append("tools")
    modalities = props.get("modalities")
    if isinstance(modalities, dict) and modalities.get("vision"):
        capabilities.append("vision")
    return ModelDetail(
        name=name,
        parameter_size=_parameter_size(_int(meta.get("n_params"))),
        quantization=_quantization(_str(props.get("model_ftype")) or _str(meta.get("ftype"))),
        format="gguf",
        parameters=parameters,
        template=_str(props.get("chat_template")),
        capabilities=tuple(capabilities),
        model_info=MappingProxyType(info),
    )
