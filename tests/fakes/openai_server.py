"""A fake OpenAI-compatible model server in four flavors: llama.cpp, LM Studio, vLLM, generic.

Like :mod:`tests.fakes.ollama` it uses only the standard library: a ``ThreadingHTTPServer``
on a loopback address, served from a daemon thread, HTTP/1.1 with keep-alive. Streamed
chat replies are server-sent events (``data: {json}`` lines, a blank line after each,
``data: [DONE]`` at the end) sent with chunked transfer encoding.

In tests::

    with FakeOpenAI("127.0.0.3", flavor="llamacpp", router=True) as fake:
        httpx.get(f"{fake.url}/v1/models")
        fake.faults.token_delay = 0.05      # faults can be changed while it runs
        fake.loading = True                 # llama.cpp: every route answers 503 "Loading model"

By hand::

    python -m tests.fakes.openai_server --flavor llamacpp --host 127.0.0.1 --port 0

prints its URL as the first line of stdout.

Attributes of :class:`FakeOpenAI` that tests use:

- ``url``, ``host``, ``port``: where it listens (``port`` is the real one after ``start``).
- ``flavor``, ``router``, ``version``: what it pretends to be.
- ``models``: the model ids it serves, in order.
- ``loaded``: ids of the models loaded now (llama.cpp router mode and LM Studio; the other
  flavors serve every model all the time).
- ``faults``: a :class:`tests.fakes.ollama.Faults`; every field may be changed at run time.
  ``fail_status`` applies to every path (narrow it with ``faults.paths``).
- ``requests``: a log of ``(method, path, parsed JSON body or None)``.
- ``reply``, ``reasoning``: the text of every chat reply, and the reasoning streamed before
  it (none when empty); ``reasoning_field`` names the delta key it is sent under
  (``reasoning_content``, or ``reasoning`` as newer servers name it).
- ``tool_arguments``: if set, the raw text streamed as a tool call's arguments (to test
  clients against broken JSON); otherwise the required parameters get sample values.
- ``loading``: llama.cpp only; while True every route answers 503 ``Loading model``.
- ``tool_script``: a list of :class:`tests.fakes.ollama.ToolScriptStep`; each chat request
  takes the first step off it and answers with its tool calls (ids are always given), or
  its text. While it is empty, the behaviour below.

What each flavor answers, modelled on the servers' documented and observed replies:

- every flavor: ``GET /v1/models`` and ``POST /v1/chat/completions`` (stream or not, with
  ``stream_options.include_usage``, tool calls streamed in fragments the OpenAI way).
  Errors are ``{"error": {"code", "message", "type"}}``.
- ``llamacpp``: ``GET /health``, ``GET /props``, ``GET /slots``, ``GET /models``. The
  ``created`` of ``/v1/models`` is the time of the request and ``/props`` has a random
  ``media_marker`` per instance, as llama-server has. Without ``router`` it serves its one
  model whatever model a request names. With ``router``: ``GET /models`` gives each model's
  ``status``, ``POST /models/load`` and ``/models/unload`` change it, and a chat request
  for an unloaded model loads it first. Unknown routes: 404 ``File Not Found``.
- ``lmstudio``: ``GET /api/v0/models`` and ``GET /api/v0/models/<id>``; a chat request
  loads its model just in time. Unknown routes answer HTTP 200 with
  ``{"error": "Unexpected endpoint or method. (GET /x)"}``, as LM Studio does.
- ``vllm``: ``GET /version``, ``GET /health`` (empty 200), ``GET /metrics`` (Prometheus
  text with a per-instance ``process_start_time_seconds``); ``created`` is request time.
  Unknown routes: 404 ``{"detail": "Not Found"}``.
- ``generic``: nothing else; unknown routes 404 ``Not Found``. ``created`` is fixed per
  instance.

Where it is simpler than the real servers, on purpose: token counts are word counts,
timings are made up from ``faults.token_delay``, ``max_tokens`` cuts the reply at a piece
boundary, and a tool call is made whenever tools are given and the last message is the
user's (its arguments fill the required parameters with sample values).
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import string
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

from tests.fakes._http import (
    FakeServer,
    Faults,
    Reply,
    add_fault_args,
    add_listen_args,
    dumps,
    name_list,
    serve_until_signalled,
)
from tests.fakes.ollama import ToolScriptStep, _count_tokens, _pieces, _sample_value

__all__ = ["DEFAULT_MODELS", "FLAVORS", "FakeOpenAI", "Faults", "Flavor", "ToolScriptStep", "main"]

Flavor = Literal["llamacpp", "lmstudio", "vllm", "generic"]
FLAVORS: tuple[Flavor, ...] = ("llamacpp", "lmstudio", "vllm", "generic")

DEFAULT_MODELS: dict[str, list[str]] = {
    "llamacpp": ["gemma-3-270m-it"],
    "llamacpp-router": ["gemma-3-270m-it", "qwen3-0.6b", "llama-3.2-1b-instruct"],
    "lmstudio": [
        "qwen2.5-7b-instruct",
        "llama-3.2-3b-instruct",
        "text-embedding-nomic-embed-text-v1.5",
    ],
    "vllm": ["Qwen/Qwen2.5-1.5B-Instruct"],
    "generic": ["local-model"],
}
DEFAULT_VERSIONS: dict[str, str] = {
    "llamacpp": "b6000-abcdef",
    "lmstudio": "0.3.30",
    "vllm": "0.11.0",
    "generic": "",
}
OWNED_BY: dict[str, str] = {
    "llamacpp": "llamacpp",
    "lmstudio": "organization_owner",
    "vllm": "vllm",
    "generic": "system",
}
SSE_CT = "text/event-stream"
N_CTX = 4096

GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# --------------------------------------------------------------------------- model facts


@dataclass(frozen=True)
class _Spec:
    """What the fake says about one model id."""

    id: str
    arch: str
    publisher: str
    quantization: str
    n_params: int
    size: int
    n_ctx_train: int
    type: str = "llm"  # "llm" | "embeddings" (LM Studio's words)


def _spec(model_id: str) -> _Spec:
    low = model_id.lower()
    if "embed" in low:
        return _Spec(
            model_id,
            "nomic-bert",
            "nomic-ai",
            "Q4_K_M",
            137_000_000,
            84_106_624,
            2048,
            "embeddings",
        )
    if "gemma" in low:
        return _Spec(
            model_id, "gemma3", "lmstudio-community", "Q4_K_M", 268_098_176, 246_587_904, 32768
        )
    if "qwen3" in low:
        return _Spec(
            model_id, "qwen3", "lmstudio-community", "Q4_K_M", 751_632_384, 522_653_767, 40960
        )
    if "qwen" in low:
        return _Spec(
            model_id, "qwen2", "lmstudio-community", "Q4_K_M", 7_615_616_512, 4_683_073_952, 32768
        )
    if "llama" in low:
        return _Spec(
            model_id, "llama", "lmstudio-community", "Q4_K_M", 3_212_749_888, 2_019_393_189, 131072
        )
    return _Spec(model_id, "llama", "local", "Q4_K_M", 1_235_814_400, 807_694_464, 8192)


def _random_id(prefix: str, n: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(random.choice(alphabet) for _ in range(n))


def _fragments(text: str, parts: int = 3) -> list[str]:
    """Split a string into ``parts`` non-empty pieces (fewer if it is short)."""
    if len(text) <= parts:
        return list(text) or [""]
    step = -(-len(text) // parts)
    return [text[i : i + step] for i in range(0, len(text), step)]


def _sample_arguments(tool: object) -> dict[str, Any]:
    function = tool.get("function", {}) if isinstance(tool, dict) else {}
    params = function.get("parameters") if isinstance(function, dict) else None
    params = params if isinstance(params, dict) else {}
    props = params.get("properties") if isinstance(params.get("properties"), dict) else {}
    required = params.get("required") if isinstance(params.get("required"), list) else []
    out: dict[str, Any] = {}
    for key in required:
        spec = props.get(key, {}) if isinstance(props, dict) else {}
        out[str(key)] = _sample_value(spec if isinstance(spec, dict) else {})
    return out


# --------------------------------------------------------------------------- replies


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_


@dataclass
class _Plan:
    """What one chat request will produce."""

    model: str
    reasoning: list[str]
    content: list[str]
    tools: list[dict[str, Any]]  # each {"id", "name", "arguments" (JSON text)}
    finish_reason: str
    prompt_tokens: int
    include_usage: bool

    @property
    def completion_tokens(self) -> int:
        tool_tokens = sum(_count_tokens(t["arguments"]) + 2 for t in self.tools)
        return len(self.reasoning) + len(self.content) + tool_tokens


# --------------------------------------------------------------------------- server


class FakeOpenAI(FakeServer):
    """A fake OpenAI-compatible server; see the module docstring.

    ``models`` are the ids it serves (``None``: a small default list for the flavor). A
    llama.cpp server that is not a ``router`` serves exactly one model. ``version`` is what
    the server reports (llama.cpp's ``build_info``, vLLM's ``/version``); ``None`` picks
    the flavor's default.
    """

    stream_headers = (("Content-Type", SSE_CT), ("Cache-Control", "no-cache"))

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        flavor: Flavor = "llamacpp",
        models: Iterable[str] | None = None,
        router: bool = False,
        version: str | None = None,
        reply: str = "The quick brown fox jumps over the lazy dog.",
        reasoning: str = "",
        n_ctx: int = N_CTX,
    ) -> None:
        super().__init__(host, port)
        if flavor not in FLAVORS:
            raise ValueError(f"unknown flavor {flavor!r}; use one of {', '.join(FLAVORS)}")
        if router and flavor != "llamacpp":
            raise ValueError("router mode is a llama.cpp feature")
        self.flavor: Flavor = flavor
        self.router = router
        self.version = DEFAULT_VERSIONS[flavor] if version is None else version
        key = "llamacpp-router" if router else flavor
        self.models: list[str] = list(DEFAULT_MODELS[key] if models is None else models)
        if not self.models:
            raise ValueError("a fake server serves at least one model")
        if flavor == "llamacpp" and not router and len(self.models) != 1:
            raise ValueError("a llama.cpp server without router mode serves exactly one model")
        self.reply = reply
        self.reasoning = reasoning
        self.reasoning_field = "reasoning_content"
        self.tool_arguments: str | None = None  # raw text streamed as a tool call's arguments
        self.n_ctx = n_ctx
        self.loading = False  # llama.cpp: every route answers 503 "Loading model"
        self.tool_script: list[ToolScriptStep] = []
        if flavor == "llamacpp" and router:
            self.loaded: set[str] = set()
        elif flavor == "lmstudio":
            self.loaded = {self.models[0]}
        else:
            self.loaded = set(self.models)
        # per-instance facts that tell two servers with the same models apart
        self.started_at = round(time.time() - random.uniform(1.0, 3600.0), 2)  # process start
        self.media_marker = f"<__media_{secrets.token_urlsafe(24)}__>"
        self.created = int(self.started_at) - random.randint(86_400, 90 * 86_400)

    @property
    def model_path(self) -> str:
        return f"/models/{self.models[0]}.gguf"

    def _server_headers(self) -> list[tuple[str, str]]:
        if self.flavor == "llamacpp":
            return [("Server", "llama.cpp")]
        if self.flavor == "vllm":
            return [("Server", "uvicorn")]
        if self.flavor == "lmstudio":
            return [("X-Powered-By", "Express")]
        return []

    # -- routing

    def _label(self) -> str:
        return self.flavor

    def _frame(self, item: Any) -> bytes:
        payload = item.encode() if isinstance(item, str) else dumps(item)
        return b"data: " + payload + b"\n\n"  # an SSE event; a str is sent raw

    def _failure(self, path: str, status: int) -> Reply:
        return self._error(status, f"fake failure {status}", "server_error")

    def _internal_error(self) -> Reply:
        err = {"code": 500, "message": "internal fake server error", "type": "server_error"}
        return Reply(status=500, json={"error": err})

    def _answer(self, method: str, path: str, raw: bytes) -> Reply:
        if self.flavor == "llamacpp" and self.loading:
            return self._error(503, "Loading model", "unavailable_error")
        route = self._route(method, path)
        if route is None:
            return self._not_found(method, path)
        try:
            return route(raw)
        except _HTTPError as exc:
            return self._error(exc.status, exc.message, exc.type)

    def _route(self, method: str, path: str) -> Callable[[bytes], Reply] | None:
        get = method in ("GET", "HEAD")
        if path == "/v1/models" and get:
            return self._v1_models
        if path == "/v1/chat/completions" and method == "POST":
            return self._chat
        if self.flavor == "llamacpp":
            if path in ("/health", "/v1/health") and get:
                return lambda raw: Reply(json={"status": "ok"})
            if path == "/props" and get:
                return self._props
            if path == "/slots" and get:
                return self._slots
            if path == "/models" and get:
                return self._router_models if self.router else self._v1_models
            if path in ("/models/load", "/models/unload") and method == "POST" and self.router:
                return self._router_load if path.endswith("/load") else self._router_unload
        elif self.flavor == "lmstudio":
            if path == "/api/v0/models" and get:
                return self._lms_models
            if path.startswith("/api/v0/models/") and get:
                model_id = unquote(path[len("/api/v0/models/") :])
                return lambda raw: self._lms_model(model_id)
        elif self.flavor == "vllm":
            if path == "/version" and get:
                return lambda raw: Reply(json={"version": self.version})
            if path == "/health" and get:
                return lambda raw: Reply(empty=True)
            if path == "/metrics" and get:
                return self._metrics
        return None

    def _not_found(self, method: str, path: str) -> Reply:
        if self.flavor == "llamacpp":
            return self._error(404, "File Not Found", "not_found_error")
        if self.flavor == "lmstudio":
            return Reply(json={"error": f"Unexpected endpoint or method. ({method} {path})"})
        if self.flavor == "vllm":
            return Reply(status=404, json={"detail": "Not Found"})
        return Reply(status=404, text="Not Found")

    def _error(self, status: int, message: str, type_: str) -> Reply:
        if self.flavor == "vllm":
            vllm_type = {404: "NotFoundError", 400: "BadRequestError"}.get(status, type_)
            err = {"message": message, "type": vllm_type, "param": None, "code": status}
            return Reply(status=status, json={"error": err})
        return Reply(
            status=status, json={"error": {"code": status, "message": message, "type": type_}}
        )

    # -- model routes

    def _find(self, name: str) -> str | None:
        if name in self.models:
            return name
        folded = name.casefold()
        return next((m for m in self.models if m.casefold() == folded), None)

    def _v1_models(self, raw: bytes) -> Reply:
        now = int(time.time())
        data: list[dict[str, Any]] = []
        for model_id in self.models:
            spec = _spec(model_id)
            entry: dict[str, Any] = {"id": model_id, "object": "model"}
            if self.flavor == "llamacpp":
                entry.update(
                    aliases=[model_id],
                    tags=[],
                    created=now,
                    owned_by="llamacpp",
                    meta={
                        "vocab_type": 1,
                        "n_vocab": 262144,
                        "n_ctx": self.n_ctx,
                        "n_ctx_train": spec.n_ctx_train,
                        "n_embd": 640,
                        "n_params": spec.n_params,
                        "size": spec.size,
                        "ftype": "Q4_K - Medium",
                    },
                )
            elif self.flavor == "lmstudio":
                entry["owned_by"] = OWNED_BY["lmstudio"]
            elif self.flavor == "vllm":
                entry.update(
                    created=now,
                    owned_by="vllm",
                    root=model_id,
                    parent=None,
                    max_model_len=self.n_ctx,
                    permission=[
                        {
                            "id": _random_id("modelperm-", 32),
                            "object": "model_permission",
                            "created": now,
                            "allow_create_engine": False,
                            "allow_sampling": True,
                            "allow_logprobs": True,
                            "allow_search_indices": False,
                            "allow_view": True,
                            "allow_fine_tuning": False,
                            "organization": "*",
                            "group": None,
                            "is_blocking": False,
                        }
                    ],
                )
            else:
                entry.update(created=self.created, owned_by="system")
            data.append(entry)
        body: dict[str, Any] = {"object": "list", "data": data}
        if self.flavor == "llamacpp":
            body = {"models": [self._ollama_style(m) for m in self.models], **body}
        return Reply(json=body)

    @staticmethod
    def _ollama_style(model_id: str) -> dict[str, Any]:
        return {
            "name": model_id,
            "model": model_id,
            "modified_at": "",
            "size": "",
            "digest": "",
            "type": "model",
            "description": "",
            "tags": [""],
            "capabilities": ["completion"],
            "parameters": "",
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "",
                "families": [""],
                "parameter_size": "",
                "quantization_level": "",
            },
        }

    def _props(self, raw: bytes) -> Reply:
        if self.router:
            return Reply(json={"role": "router", "build_info": self.version, "max_instances": 4})
        spec = _spec(self.models[0])
        return Reply(
            json={
                "default_generation_settings": {
                    "params": {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "n_predict": -1},
                    "n_ctx": self.n_ctx,
                },
                "total_slots": 1,
                "model_alias": self.models[0],
                "model_ftype": "Q4_K - Medium",
                "model_path": self.model_path,
                "modalities": {"vision": False, "video": False, "audio": False},
                "media_marker": self.media_marker,
                "endpoint_slots": True,
                "endpoint_props": False,
                "endpoint_metrics": False,
                "chat_template": GEMMA_TEMPLATE if spec.arch == "gemma3" else CHATML_TEMPLATE,
                "bos_token": "<bos>",
                "eos_token": "<eos>",
                "build_info": self.version,
                "is_sleeping": False,
            }
        )

    def _slots(self, raw: bytes) -> Reply:
        return Reply(
            json=[{"id": 0, "n_ctx": self.n_ctx, "speculative": False, "is_processing": False}]
        )

    def _router_models(self, raw: bytes) -> Reply:
        now = int(time.time())
        with self._lock:
            loaded = set(self.loaded)
        data = [
            {
                "id": m,
                "object": "model",
                "owned_by": "llamacpp",
                "created": now,
                "in_cache": True,
                "path": f"/models/{m}.gguf",
                "status": {"value": "loaded" if m in loaded else "unloaded"},
            }
            for m in self.models
        ]
        return Reply(json={"object": "list", "data": data})

    def _model_arg(self, raw: bytes) -> str:
        body = self._json_body(raw)
        name = body.get("model")
        if not isinstance(name, str) or not name.strip():
            raise _HTTPError(400, '"model" is required')
        found = self._find(name)
        if found is None:
            raise _HTTPError(404, f"model '{name}' not found", "not_found_error")
        return found

    def _router_load(self, raw: bytes) -> Reply:
        model = self._model_arg(raw)
        with self._lock:
            self.loaded.add(model)
        return Reply(json={"success": True})

    def _router_unload(self, raw: bytes) -> Reply:
        model = self._model_arg(raw)
        with self._lock:
            if model not in self.loaded:
                raise _HTTPError(400, f"model '{model}' is not loaded")
            self.loaded.discard(model)
        return Reply(json={"success": True})

    def _lms_entry(self, model_id: str) -> dict[str, Any]:
        spec = _spec(model_id)
        with self._lock:
            loaded = model_id in self.loaded
        return {
            "id": model_id,
            "object": "model",
            "type": spec.type,
            "publisher": spec.publisher,
            "arch": spec.arch,
            "compatibility_type": "gguf",
            "quantization": spec.quantization,
            "state": "loaded" if loaded else "not-loaded",
            "max_context_length": spec.n_ctx_train,
        }

    def _lms_models(self, raw: bytes) -> Reply:
        return Reply(json={"object": "list", "data": [self._lms_entry(m) for m in self.models]})

    def _lms_model(self, model_id: str) -> Reply:
        found = self._find(model_id)
        if found is None:
            return Reply(status=404, json={"error": f"Model '{model_id}' not found"})
        return Reply(json=self._lms_entry(found))

    def _metrics(self, raw: bytes) -> Reply:
        lines = [
            "# HELP process_start_time_seconds Start time of the process since unix epoch.",
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {self.started_at:.2f}",
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f'vllm:num_requests_running{{engine="0",model_name="{self.models[0]}"}} 0.0',
        ]
        return Reply(
            text="\n".join(lines) + "\n", content_type="text/plain; version=0.0.4; charset=utf-8"
        )

    # -- chat

    @staticmethod
    def _json_body(raw: bytes) -> dict[str, Any]:
        try:
            obj = json.loads(raw) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _HTTPError(400, f"parse error: {exc}") from None
        if not isinstance(obj, dict):
            raise _HTTPError(400, "the request body must be a JSON object")
        return obj

    def _chat_model(self, requested: object) -> str:
        name = requested if isinstance(requested, str) else ""
        if self.flavor == "llamacpp" and not self.router:
            return name or self.models[0]  # llama-server answers with its one model
        if not name:
            raise _HTTPError(400, '"model" is required')
        found = self._find(name)
        if found is None:
            if self.flavor == "vllm":
                raise _HTTPError(404, f"The model `{name}` does not exist.", "NotFoundError")
            raise _HTTPError(404, f"model '{name}' not found", "not_found_error")
        if _spec(found).type == "embeddings":
            raise _HTTPError(400, f"'{found}' is an embedding model and cannot chat")
        with self._lock:
            self.loaded.add(found)  # router autoload; LM Studio just-in-time loading
        return found

    def _chat(self, raw: bytes) -> Reply:
        body = self._json_body(raw)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _HTTPError(400, "'messages' is required and must be a non-empty array")
        model = self._chat_model(body.get("model"))
        tools = body.get("tools") if isinstance(body.get("tools"), list) else []
        last = messages[-1] if isinstance(messages[-1], dict) else {}
        text = self.reply
        if last.get("role") == "tool":
            text = f"The tool returned: {last.get('content', '')}"
        calls: list[dict[str, Any]] = []
        with self._lock:
            step = self.tool_script.pop(0) if self.tool_script else None
        if step is not None:
            text = step.text
            calls = [
                {
                    "id": _random_id("call_", 24),
                    "name": name,
                    "arguments": json.dumps(arguments, separators=(",", ":")),
                }
                for name, arguments in step.calls
            ]
        elif tools and last.get("role", "user") == "user":
            function = tools[0].get("function", {}) if isinstance(tools[0], dict) else {}
            calls = [
                {
                    "id": _random_id("call_", 24),
                    "name": str(function.get("name", "")) if isinstance(function, dict) else "",
                    "arguments": self.tool_arguments
                    if self.tool_arguments is not None
                    else json.dumps(_sample_arguments(tools[0]), separators=(",", ":")),
                }
            ]
        content = [] if calls else _pieces(text)
        reasoning = _pieces(self.reasoning)
        finish = "tool_calls" if calls else "stop"
        limit = body.get("max_tokens", body.get("max_completion_tokens"))
        if (
            isinstance(limit, int)
            and not isinstance(limit, bool)
            and 0 < limit < len(reasoning) + len(content)
        ):
            keep = max(0, limit - len(reasoning))
            reasoning, content, finish = reasoning[:limit], content[:keep], "length"
        prompt_tokens = sum(
            _count_tokens(str(m.get("content") or "")) + 4 for m in messages if isinstance(m, dict)
        )
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        plan = _Plan(model, reasoning, content, calls, finish, prompt_tokens, include_usage)
        if body.get("stream") is True:
            return Reply(stream=self._chunks(plan), delay=lambda: self.faults.token_delay)
        return Reply(json=self._completion(plan))

    def _timings(self, plan: _Plan) -> dict[str, Any]:
        per_token_ms = self.faults.token_delay * 1000.0 if self.faults.token_delay > 0 else 12.5
        predicted_n = max(plan.completion_tokens, 1)
        prompt_ms = plan.prompt_tokens * 2.5
        predicted_ms = predicted_n * per_token_ms
        return {
            "cache_n": 0,
            "prompt_n": plan.prompt_tokens,
            "prompt_ms": prompt_ms,
            "prompt_per_token_ms": prompt_ms / max(plan.prompt_tokens, 1),
            "prompt_per_second": plan.prompt_tokens / prompt_ms * 1000.0 if prompt_ms else 0.0,
            "predicted_n": predicted_n,
            "predicted_ms": predicted_ms,
            "predicted_per_token_ms": per_token_ms,
            "predicted_per_second": predicted_n / predicted_ms * 1000.0,
        }

    def _usage(self, plan: _Plan) -> dict[str, int]:
        out = plan.completion_tokens
        return {
            "prompt_tokens": plan.prompt_tokens,
            "completion_tokens": out,
            "total_tokens": plan.prompt_tokens + out,
        }

    def _chunks(self, plan: _Plan) -> Iterator[dict[str, Any] | str]:
        chunk_id = _random_id("chatcmpl-", 32)
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": plan.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if self.flavor == "llamacpp":
                out["system_fingerprint"] = self.version
            return out

        yield chunk({"role": "assistant", "content": None})
        for piece in plan.reasoning:
            yield chunk({self.reasoning_field: piece})
        for piece in plan.content:
            yield chunk({"content": piece})
        for index, tool in enumerate(plan.tools):
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": tool["id"],
                            "type": "function",
                            "function": {"name": tool["name"], "arguments": ""},
                        }
                    ]
                }
            )
            for fragment in _fragments(tool["arguments"]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
        final = chunk({}, plan.finish_reason)
        if plan.include_usage:
            yield final
            final = chunk({})
            final["choices"] = []
            final["usage"] = self._usage(plan)
        if self.flavor == "llamacpp":
            final["timings"] = self._timings(plan)
        yield final
        yield "[DONE]"

    def _completion(self, plan: _Plan) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.content) or None}
        if plan.reasoning:
            message[self.reasoning_field] = "".join(plan.reasoning)
        if plan.tools:
            message["tool_calls"] = [
                {
                    "id": tool["id"],
                    "type": "function",
                    "function": {"name": tool["name"], "arguments": tool["arguments"]},
                }
                for tool in plan.tools
            ]
        out: dict[str, Any] = {
            "id": _random_id("chatcmpl-", 32),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": plan.model,
            "choices": [{"index": 0, "message": message, "finish_reason": plan.finish_reason}],
            "usage": self._usage(plan),
        }
        if self.flavor == "llamacpp":
            out["system_fingerprint"] = self.version
            out["timings"] = self._timings(plan)
        return out


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.openai_server",
        description="Run a fake OpenAI-compatible server (llama.cpp, LM Studio, vLLM or generic).",
    )
    parser.add_argument("--flavor", choices=FLAVORS, default="llamacpp")
    add_listen_args(parser, port=8080)
    parser.add_argument("--models", default=None, help="comma-separated model ids")
    parser.add_argument("--router", action="store_true", help="llama.cpp router mode")
    parser.add_argument("--version", default=None, help="version the server reports")
    parser.add_argument("--reasoning", default="", help="reasoning text streamed before replies")
    add_fault_args(parser)
    args = parser.parse_args(argv)

    def build() -> FakeOpenAI:
        return FakeOpenAI(
            args.host,
            args.port,
            flavor=args.flavor,
            models=name_list(args.models),
            router=args.router,
            version=args.version,
            reasoning=args.reasoning,
        )

    def banner(fake: FakeOpenAI) -> str:
        return f"fake {args.flavor} server serving {', '.join(fake.models)}; Ctrl+C to stop"

    return serve_until_signalled(args, build, banner)


if __name__ == "__main__":
    sys.exit(main())
