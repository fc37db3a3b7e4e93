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
import contextlib
import json
import random
import secrets
import selectors
import signal
import socket
import socketserver
import string
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from tests.fakes.ollama import (
    Faults,
    _check_loopback,
    _count_tokens,
    _pieces,
    _sample_value,
    _shutdown_socket,
)

__all__ = ["DEFAULT_MODELS", "FLAVORS", "FakeOpenAI", "Faults", "Flavor", "main"]

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
JSON_CT = "application/json; charset=utf-8"
TEXT_CT = "text/plain; charset=utf-8"
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


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


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
class _Reply:
    status: int = 200
    json: Any = None  # a JSON reply
    text: str | None = None  # a text/plain reply
    empty: bool = False  # an empty body
    events: Iterator[dict[str, Any] | str] | None = None  # an SSE stream; str is sent raw
    hang: bool = False
    content_type: str | None = None  # overrides the default for json/text


class _Stop(Exception):
    """The server is stopping: abandon the request."""


class _ClientGone(ConnectionError):
    """The client closed its end while we were writing."""


@dataclass
class _Plan:
    """What one chat request will produce."""

    model: str
    reasoning: list[str]
    content: list[str]
    tool: dict[str, Any] | None  # {"id", "name", "arguments" (JSON text)}
    finish_reason: str
    prompt_tokens: int
    include_usage: bool

    @property
    def completion_tokens(self) -> int:
        tool_tokens = _count_tokens(self.tool["arguments"]) + 2 if self.tool else 0
        return len(self.reasoning) + len(self.content) + tool_tokens


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    timeout = 0.05

    def __init__(self, address: tuple[str, int], fake: FakeOpenAI) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError | ValueError) or self.fake._stopping.is_set():
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._register(self)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.fake._unregister(self)

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())
        for name, value in self.server.fake._server_headers():
            self.send_header(name, value)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size_line = self.rfile.readline(1024)
                if not size_line:
                    break
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        path = urlsplit(self.path).path
        raw = self._read_body()
        fake._log_request(method, path, raw, dict(self.headers.items()))
        self._head = method == "HEAD"
        self._started = False
        try:
            self._send(fake._handle(method, path, raw))
        except (_ClientGone, _Stop, OSError):
            self._abort()
        except Exception:
            if not fake._stopping.is_set():
                traceback.print_exc()
            if self._started:
                self._abort()
            else:
                err = {
                    "error": {
                        "code": 500,
                        "message": "internal fake server error",
                        "type": "server_error",
                    }
                }
                self._send(_Reply(status=500, json=err))

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except (OSError, ValueError) as exc:
            raise _ClientGone from exc

    def _abort(self) -> None:
        self.close_connection = True
        _shutdown_socket(self.connection)

    def _end_headers(self) -> None:
        self._started = True
        try:
            self.end_headers()
        except (OSError, ValueError) as exc:
            raise _ClientGone from exc

    def _send(self, reply: _Reply) -> None:
        fake = self.server.fake
        if reply.hang:
            fake._stopping.wait()
            raise _Stop
        if reply.events is not None:
            self._send_events(reply.events)
            return
        if reply.text is not None:
            body, ctype = reply.text.encode(), reply.content_type or TEXT_CT
        elif reply.empty:
            body, ctype = b"", reply.content_type
        else:
            body, ctype = _dumps(reply.json), reply.content_type or JSON_CT
        self.send_response(reply.status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self._end_headers()
        if body and not self._head:
            self._write(body)

    def _send_events(self, events: Iterator[dict[str, Any] | str]) -> None:
        fake = self.server.fake
        path = urlsplit(self.path).path
        self.send_response(200)
        self.send_header("Content-Type", SSE_CT)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self._end_headers()
        written = 0
        try:
            for index, event in enumerate(events):
                if index:
                    fake._sleep(fake.faults.token_delay)
                if fake._drop_due(path, written):
                    self._abort()
                    return
                payload = event.encode() if isinstance(event, str) else _dumps(event)
                data = b"data: " + payload + b"\n\n"
                self._write(b"%x\r\n%s\r\n" % (len(data), data))
                written += 1
            if fake._drop_due(path, written):
                self._abort()
                return
            self._write(b"0\r\n\r\n")
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()


class FakeOpenAI:
    """A fake OpenAI-compatible server; see the module docstring.

    ``models`` are the ids it serves (``None``: a small default list for the flavor). A
    llama.cpp server that is not a ``router`` serves exactly one model. ``version`` is what
    the server reports (llama.cpp's ``build_info``, vLLM's ``/version``); ``None`` picks
    the flavor's default.
    """

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
        _check_loopback(host)
        if flavor not in FLAVORS:
            raise ValueError(f"unknown flavor {flavor!r}; use one of {', '.join(FLAVORS)}")
        if router and flavor != "llamacpp":
            raise ValueError("router mode is a llama.cpp feature")
        self.host = host
        self.port = port
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
        self.faults = Faults()
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self.request_headers: list[dict[str, str]] = []
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
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._conns: dict[_Handler, threading.Thread] = {}
        self._stopped = False

    # -- lifecycle

    def start(self) -> FakeOpenAI:
        """Bind (port 0 picks a free port) and serve from a daemon thread."""
        if self._httpd is not None or self._stopped:
            raise RuntimeError("a FakeOpenAI can be started once")
        self._httpd = _Server((self.host, self.port), self)
        self.port = int(self._httpd.server_address[1])
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(
            target=self._serve, name=f"fake-{self.flavor}-{self.host}:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def _serve(self) -> None:
        httpd = self._httpd
        assert httpd is not None and self._wake_r is not None
        with selectors.DefaultSelector() as selector:
            selector.register(httpd, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is httpd and not self._stopping.is_set():
                        httpd.handle_request()

    def stop(self) -> None:
        """Stop serving: wake hung requests, close every connection, join the threads."""
        with self._lock:
            if self._httpd is None or self._stopped:
                self._stopped = True
                return
            self._stopped = True
            self._stopping.set()
            conns = list(self._conns.items())
        deadline = time.monotonic() + 1.0
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self._httpd.server_close()
        for handler, _ in conns:
            _shutdown_socket(handler.connection)
        for _, thread in conns:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def model_path(self) -> str:
        return f"/models/{self.models[0]}.gguf"

    def _register(self, handler: _Handler) -> None:
        with self._lock:
            self._conns[handler] = threading.current_thread()
            stopping = self._stopping.is_set()
        if stopping:
            _shutdown_socket(handler.connection)

    def _unregister(self, handler: _Handler) -> None:
        with self._lock:
            self._conns.pop(handler, None)

    def _sleep(self, seconds: float) -> None:
        """Wait, but give up at once when the server stops."""
        if seconds > 0 and self._stopping.wait(seconds):
            raise _Stop
        if self._stopping.is_set():
            raise _Stop

    def _drop_due(self, path: str, written: int) -> bool:
        f = self.faults
        return f.drop_after is not None and f.applies(path) and written >= f.drop_after

    def _log_request(self, method: str, path: str, raw: bytes, headers: dict[str, str]) -> None:
        body: dict[str, Any] | None = None
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            body = parsed if isinstance(parsed, dict) else None
        with self._lock:
            self.requests.append((method, path, body))
            self.request_headers.append({k.lower(): v for k, v in headers.items()})

    def _server_headers(self) -> list[tuple[str, str]]:
        if self.flavor == "llamacpp":
            return [("Server", "llama.cpp")]
        if self.flavor == "vllm":
            return [("Server", "uvicorn")]
        if self.flavor == "lmstudio":
            return [("X-Powered-By", "Express")]
        return []

    # -- routing

    def _handle(self, method: str, path: str, raw: bytes) -> _Reply:
        faults = self.faults
        if faults.applies(path):
            if faults.hang:
                return _Reply(hang=True)
            if faults.latency > 0:
                self._sleep(faults.latency)
            if faults.fail_status is not None:
                status = faults.fail_status
                return self._error(status, f"fake failure {status}", "server_error")
        if self.flavor == "llamacpp" and self.loading:
            return self._error(503, "Loading model", "unavailable_error")
        route = self._route(method, path)
        if route is None:
            return self._not_found(method, path)
        try:
            return route(raw)
        except _HTTPError as exc:
            return self._error(exc.status, exc.message, exc.type)

    def _route(self, method: str, path: str) -> Callable[[bytes], _Reply] | None:
        get = method in ("GET", "HEAD")
        if path == "/v1/models" and get:
            return self._v1_models
        if path == "/v1/chat/completions" and method == "POST":
            return self._chat
        if self.flavor == "llamacpp":
            if path in ("/health", "/v1/health") and get:
                return lambda raw: _Reply(json={"status": "ok"})
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
                return lambda raw: _Reply(json={"version": self.version})
            if path == "/health" and get:
                return lambda raw: _Reply(empty=True)
            if path == "/metrics" and get:
                return self._metrics
        return None

    def _not_found(self, method: str, path: str) -> _Reply:
        if self.flavor == "llamacpp":
            return self._error(404, "File Not Found", "not_found_error")
        if self.flavor == "lmstudio":
            return _Reply(json={"error": f"Unexpected endpoint or method. ({method} {path})"})
        if self.flavor == "vllm":
            return _Reply(status=404, json={"detail": "Not Found"})
        return _Reply(status=404, text="Not Found")

    def _error(self, status: int, message: str, type_: str) -> _Reply:
        if self.flavor == "vllm":
            vllm_type = {404: "NotFoundError", 400: "BadRequestError"}.get(status, type_)
            err = {"message": message, "type": vllm_type, "param": None, "code": status}
            return _Reply(status=status, json={"error": err})
        return _Reply(
            status=status, json={"error": {"code": status, "message": message, "type": type_}}
        )

    # -- model routes

    def _find(self, name: str) -> str | None:
        if name in self.models:
            return name
        folded = name.casefold()
        return next((m for m in self.models if m.casefold() == folded), None)

    def _v1_models(self, raw: bytes) -> _Reply:
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
        return _Reply(json=body)

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

    def _props(self, raw: bytes) -> _Reply:
        if self.router:
            return _Reply(json={"role": "router", "build_info": self.version, "max_instances": 4})
        spec = _spec(self.models[0])
        return _Reply(
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

    def _slots(self, raw: bytes) -> _Reply:
        return _Reply(
            json=[{"id": 0, "n_ctx": self.n_ctx, "speculative": False, "is_processing": False}]
        )

    def _router_models(self, raw: bytes) -> _Reply:
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
        return _Reply(json={"object": "list", "data": data})

    def _model_arg(self, raw: bytes) -> str:
        body = self._json_body(raw)
        name = body.get("model")
        if not isinstance(name, str) or not name.strip():
            raise _HTTPError(400, '"model" is required')
        found = self._find(name)
        if found is None:
            raise _HTTPError(404, f"model '{name}' not found", "not_found_error")
        return found

    def _router_load(self, raw: bytes) -> _Reply:
        model = self._model_arg(raw)
        with self._lock:
            self.loaded.add(model)
        return _Reply(json={"success": True})

    def _router_unload(self, raw: bytes) -> _Reply:
        model = self._model_arg(raw)
        with self._lock:
            if model not in self.loaded:
                raise _HTTPError(400, f"model '{model}' is not loaded")
            self.loaded.discard(model)
        return _Reply(json={"success": True})

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

    def _lms_models(self, raw: bytes) -> _Reply:
        return _Reply(json={"object": "list", "data": [self._lms_entry(m) for m in self.models]})

    def _lms_model(self, model_id: str) -> _Reply:
        found = self._find(model_id)
        if found is None:
            return _Reply(status=404, json={"error": f"Model '{model_id}' not found"})
        return _Reply(json=self._lms_entry(found))

    def _metrics(self, raw: bytes) -> _Reply:
        lines = [
            "# HELP process_start_time_seconds Start time of the process since unix epoch.",
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {self.started_at:.2f}",
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f'vllm:num_requests_running{{engine="0",model_name="{self.models[0]}"}} 0.0',
        ]
        return _Reply(
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

    def _chat(self, raw: bytes) -> _Reply:
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
        tool: dict[str, Any] | None = None
        if tools and last.get("role", "user") == "user":
            function = tools[0].get("function", {}) if isinstance(tools[0], dict) else {}
            tool = {
                "id": _random_id("call_", 24),
                "name": str(function.get("name", "")) if isinstance(function, dict) else "",
                "arguments": self.tool_arguments
                if self.tool_arguments is not None
                else json.dumps(_sample_arguments(tools[0]), separators=(",", ":")),
            }
        content = [] if tool else _pieces(text)
        reasoning = _pieces(self.reasoning)
        finish = "tool_calls" if tool else "stop"
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
        plan = _Plan(model, reasoning, content, tool, finish, prompt_tokens, include_usage)
        if body.get("stream") is True:
            return _Reply(events=self._chunks(plan))
        return _Reply(json=self._completion(plan))

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
        if plan.tool is not None:
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": plan.tool["id"],
                            "type": "function",
                            "function": {"name": plan.tool["name"], "arguments": ""},
                        }
                    ]
                }
            )
            for fragment in _fragments(plan.tool["arguments"]):
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]})
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
        if plan.tool is not None:
            message["tool_calls"] = [
                {
                    "id": plan.tool["id"],
                    "type": "function",
                    "function": {"name": plan.tool["name"], "arguments": plan.tool["arguments"]},
                }
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
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    parser.add_argument("--models", default=None, help="comma-separated model ids")
    parser.add_argument("--router", action="store_true", help="llama.cpp router mode")
    parser.add_argument("--version", default=None, help="version the server reports")
    parser.add_argument("--reasoning", default="", help="reasoning text streamed before replies")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between tokens")
    args = parser.parse_args(argv)

    models = None
    if args.models is not None:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        fake = FakeOpenAI(
            args.host,
            args.port,
            flavor=args.flavor,
            models=models,
            router=args.router,
            version=args.version,
            reasoning=args.reasoning,
        )
        fake.faults.latency = args.latency
        fake.faults.token_delay = args.token_delay
        fake.start()
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print(fake.url, flush=True)
    print(
        f"fake {args.flavor} server serving {', '.join(fake.models)}; Ctrl+C to stop",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not done.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
