"""A fake Ollama server that speaks the REST API closely enough to test clients against.

It uses only the standard library: a ``ThreadingHTTPServer`` on a loopback address,
served from a daemon thread, HTTP/1.1 with keep-alive, NDJSON streams sent with
chunked transfer encoding. Several instances can run at once on 127.0.0.2, 127.0.0.3,
... to stand for machines on a LAN.

In tests::

    with FakeOllama("127.0.0.2", models=["llama3.2", "qwen3:0.6b"]) as fake:
        httpx.get(f"{fake.url}/api/tags")
        fake.faults.token_delay = 0.05      # faults can be changed while it runs
        fake.now = lambda: some_datetime    # the clock that drives keep_alive expiry

By hand::

    python -m tests.fakes.ollama --host 127.0.0.1 --port 11434 --token-delay 0.05

Attributes of :class:`FakeOllama` that tests use:

- ``url``, ``host``, ``port``: where it listens (``port`` is the real one after ``start``).
- ``faults``: a :class:`Faults`; every field may be changed at run time.
- ``installed``: installed models by full name (``"llama3.2:latest"``).
- ``requests``: a log of ``(method, path, parsed JSON body or None)``.
- ``now``: a callable returning an aware ``datetime``; replace it to move time.
- ``tool_script``: a list of :class:`ToolScriptStep`; each ``/api/chat`` request takes the
  first step off it and answers with its tool calls, or its text. While it is empty a
  request with tools is answered by calling the first tool (its required parameters get
  sample values), and one whose last message is a tool's by ``"The tool returned: ..."``.

Behaviour follows Ollama v0.33 (``server/routes.go``): error bodies are ``{"error": msg}``
with the same status codes and messages, zero-valued metrics are left out, ``/api/ps``
is sorted by ``expires_at`` latest first, and a pull that fails after its stream began
reports one ``{"error": ...}`` line with HTTP 200.

Where it is simpler than Ollama, on purpose:

- ``/api/embed`` with a model that lacks the ``embedding`` capability answers 400
  (real Ollama embeds with any model), so clients can be tested on that path.
- A successful pull always reports ``removing any unused layers``.
- ``/api/ps`` reports the model file size as ``size`` (no KV-cache estimate); VRAM is
  handed out in load order and never rebalanced; nothing is evicted to make room.
- ``drop_after`` only cuts streamed replies; ``stream: false`` replies are whole.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import string
import sys
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from tests.fakes._http import (
    FakeHandler,
    FakeServer,
    Faults,
    Reply,
    add_fault_args,
    add_listen_args,
    name_list,
    serve_until_signalled,
)

__all__ = [
    "DEFAULT_CATALOG",
    "DEFAULT_MODELS",
    "CatalogEntry",
    "FakeModel",
    "FakeOllama",
    "Faults",
    "ToolScriptStep",
    "go_time",
    "main",
    "normalize_name",
    "parse_go_duration",
    "parse_keep_alive",
]

REGISTRY = "registry.ollama.ai"
DEFAULT_KEEP_ALIVE = 300.0  # seconds, Ollama's default of "5m"
# time.Now().Add(math.MaxInt64) in Go: the expiry of a model loaded "forever".
FOREVER = timedelta(microseconds=(2**63 - 1) // 1000)
DEFAULT_NUM_CTX = 4096
NDJSON = "application/x-ndjson"

_DEFAULT_TEMPLATE = (
    "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n"
    "{{ .System }}<|eot_id|>{{ end }}"
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)
_DEFAULT_LICENSE = "Fake model license: for tests only. No rights granted or withheld."
_DEFAULT_PARAMETERS = 'stop "<|eot_id|>"\ntemperature 0.7'


# --------------------------------------------------------------------------- helpers


def normalize_name(name: str) -> str:
    """Return the short display name Ollama uses: ``llama3.2`` -> ``llama3.2:latest``.

    ``registry.ollama.ai/library/x`` is shortened to ``x``; other hosts and namespaces
    are kept. A name without a tag gets ``:latest``.
    """
    n = name.strip()
    if n.startswith(REGISTRY + "/"):
        n = n[len(REGISTRY) + 1 :]
    if n.startswith("library/"):
        n = n[len("library/") :]
    last = n.rsplit("/", 1)[-1]
    if n and ":" not in last:
        n += ":latest"
    return n


def full_name(name: str) -> str:
    """Return the fully qualified name, as Ollama prints it in capability errors."""
    n = normalize_name(name)
    parts = n.split("/")
    if len(parts) >= 3 or (len(parts) == 2 and ("." in parts[0] or ":" in parts[0])):
        return n
    if len(parts) == 2:
        return f"{REGISTRY}/{n}"
    return f"{REGISTRY}/library/{n}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def go_time(dt: datetime) -> str:
    """Format an aware datetime like Go's ``time.Time`` JSON (RFC 3339, trimmed fraction)."""
    if dt.tzinfo is None:
        dt = dt.astimezone()
    out = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        out += f".{dt.microsecond:06d}".rstrip("0")
    offset = dt.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        return out + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{out}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # Go accepts both micro signs
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)([^\d.]*)")


def parse_go_duration(text: str) -> float:
    """Parse a Go duration string (``"5m"``, ``"1h30m"``, ``"300ms"``) into seconds.

    Raises ``ValueError`` with Go's own message for malformed input.
    """
    rest = text
    sign = 1.0
    if rest[:1] in ("+", "-"):
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"time: invalid duration {json.dumps(text)}")
    total = 0.0
    pos = 0
    while pos < len(rest):
        match = _DURATION_PART.match(rest, pos)
        if match is None:
            raise ValueError(f"time: invalid duration {json.dumps(text)}")
        number, unit = match.groups()
        if not unit:
            raise ValueError(f"time: missing unit in duration {json.dumps(text)}")
        if unit not in _DURATION_UNITS:
            raise ValueError(
                f"time: unknown unit {json.dumps(unit)} in duration {json.dumps(text)}"
            )
        total += float(number) * _DURATION_UNITS[unit]
        pos = match.end()
    return sign * total


def parse_keep_alive(value: object) -> float:
    """Seconds a model stays loaded after a request; ``math.inf`` means forever.

    Like Ollama: ``None`` -> 5 minutes, a number is seconds, a string is a Go duration,
    a negative value is forever and 0 unloads at once.
    """
    if value is None:
        return DEFAULT_KEEP_ALIVE
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"Unsupported type: '{_go_type(value)}'")
    seconds = parse_go_duration(value) if isinstance(value, str) else float(value)
    return math.inf if seconds < 0 else seconds


def _go_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, int | float):
        return "float64"
    return "string"


def _go_kind(value: object) -> str:
    """The word Go's encoding/json uses for a JSON value in unmarshal errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _dumps(obj: object) -> bytes:
    """Compact JSON, HTML characters escaped the way Go's encoding/json does."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode()


def _pieces(text: str) -> list[str]:
    """Split text into word-sized tokens that join back to it: "The", " quick", ..."""
    return re.findall(r"\s*\S+", text) or ([text] if text else [])


def _count_tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def _parameter_count(size: str) -> int:
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMBT]?)\s*", size.upper())
    if not match:
        return 0
    scale = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}[match.group(2)]
    return int(float(match.group(1)) * scale)


def _call_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "call_" + "".join(random.choice(alphabet) for _ in range(8))


# --------------------------------------------------------------------------- data


@dataclass
class FakeModel:
    """One installed model and everything ``/api/tags``, ``/api/show`` and ``/api/ps`` say."""

    name: str
    family: str = "llama"
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"
    size: int = 2019393189
    digest: str = ""  # 64 hex; derived from the name when left empty
    capabilities: list[str] = field(default_factory=lambda: ["completion"])
    context_length: int = 4096
    template: str = _DEFAULT_TEMPLATE
    license: str = _DEFAULT_LICENSE
    parameters: str = _DEFAULT_PARAMETERS
    modified_at: str = ""  # RFC 3339 with zone; "now" when left empty
    families: list[str] | None = None  # defaults to [family]
    embedding_length: int = 3072
    format: str = "gguf"
    parent_model: str = ""

    def __post_init__(self) -> None:
        self.name = normalize_name(self.name)
        if not self.digest:
            self.digest = _sha256(self.name)
        if not self.modified_at:
            self.modified_at = go_time(datetime.now().astimezone())
        if self.families is None:
            self.families = [self.family]
        self.capabilities = list(self.capabilities)

    @property
    def architecture(self) -> str:
        return self.family

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": self.parent_model,
            "format": self.format,
            "family": self.family,
            "families": list(self.families or [self.family]),
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }

    def model_info(self) -> dict[str, Any]:
        arch = self.architecture
        info: dict[str, Any] = {
            "general.architecture": arch,
            "general.basename": self.name.split(":", 1)[0].rsplit("/", 1)[-1],
            "general.file_type": 15,
            "general.parameter_count": _parameter_count(self.parameter_size),
            "general.quantization_version": 2,
            f"{arch}.block_count": 28,
            f"{arch}.context_length": self.context_length,
            f"{arch}.embedding_length": self.embedding_length,
            f"{arch}.attention.head_count": 24,
            f"{arch}.attention.head_count_kv": 8,
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.tokens": [],
            "tokenizer.ggml.token_type": [],
        }
        if "embedding" in self.capabilities:
            info[f"{arch}.pooling_type"] = 1
        return info

    def projector_info(self) -> dict[str, Any] | None:
        if "vision" not in self.capabilities:
            return None
        return {
            "clip.has_vision_encoder": True,
            "clip.vision.image_size": 336,
            "clip.vision.patch_size": 14,
            "general.architecture": "clip",
        }

    def modelfile(self) -> str:
        lines = [
            '# Modelfile generated by "ollama show"',
            "# To build a new Modelfile based on this, replace FROM with:",
            f"# FROM {self.name}",
            "",
            f"FROM /usr/share/ollama/.ollama/models/blobs/sha256-{_sha256(self.name + '/model')}",
            f'TEMPLATE """{self.template}"""',
        ]
        for line in self.parameters.splitlines():
            if line.strip():
                key, _, value = line.strip().partition(" ")
                lines.append(f"PARAMETER {key} {value.strip().strip(chr(34))}")
        lines.append(f'LICENSE """{self.license}"""')
        return "\n".join(lines) + "\n"

    def layers(self) -> list[tuple[str, int]]:
        """Blob layers for a re-pull of an installed model that has no catalog entry."""
        small = [len(self.template.encode()), len(self.license.encode()), len(self.parameters)]
        main = max(self.size - sum(small), 1)
        sizes = [main, *small]
        return [(f"sha256:{_sha256(f'{self.name}/layer{i}')}", n) for i, n in enumerate(sizes)]


@dataclass
class CatalogEntry:
    """A model that ``/api/pull`` can fetch: its layers, then the model it installs."""

    name: str
    layers: list[tuple[str, int]]
    family: str = "llama"
    parameter_size: str = "1B"
    quantization_level: str = "Q4_0"
    size: int = 0  # sum of the layers when left 0
    digest: str = ""
    capabilities: list[str] = field(default_factory=lambda: ["completion"])
    context_length: int = 4096
    template: str = _DEFAULT_TEMPLATE
    license: str = _DEFAULT_LICENSE
    parameters: str = _DEFAULT_PARAMETERS
    families: list[str] | None = None
    embedding_length: int = 2048

    def __post_init__(self) -> None:
        self.name = normalize_name(self.name)
        self.layers = [(str(d), int(n)) for d, n in self.layers]
        if not self.size:
            self.size = sum(n for _, n in self.layers)

    def to_model(self, modified_at: str = "") -> FakeModel:
        return FakeModel(
            name=self.name,
            family=self.family,
            parameter_size=self.parameter_size,
            quantization_level=self.quantization_level,
            size=self.size,
            digest=self.digest,
            capabilities=list(self.capabilities),
            context_length=self.context_length,
            template=self.template,
            license=self.license,
            parameters=self.parameters,
            modified_at=modified_at,
            families=None if self.families is None else list(self.families),
            embedding_length=self.embedding_length,
        )


def _layer(name: str, index: int, size: int) -> tuple[str, int]:
    return (f"sha256:{_sha256(f'{name}/layer{index}')}", size)


DEFAULT_MODELS: list[FakeModel] = [
    FakeModel(
        name="llama3.2:latest",
        family="llama",
        parameter_size="3.2B",
        quantization_level="Q4_K_M",
        size=2019393189,
        capabilities=["completion", "tools"],
        context_length=131072,
        embedding_length=3072,
        modified_at="2025-05-04T17:37:44.706015396-07:00",
        license="LLAMA 3.2 COMMUNITY LICENSE AGREEMENT (fake copy for tests)",
    ),
    FakeModel(
        name="qwen3:0.6b",
        family="qwen3",
        parameter_size="751.63M",
        quantization_level="Q4_K_M",
        size=522653767,
        capabilities=["completion", "tools", "thinking"],
        context_length=40960,
        embedding_length=1024,
        modified_at="2025-06-12T09:15:02.118340051+02:00",
        template="{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
        "{{ end }}<|im_start|>assistant\n{{ if .Thinking }}<think>{{ .Thinking }}</think>"
        "{{ end }}",
        parameters='stop "<|im_start|>"\nstop "<|im_end|>"\ntemperature 0.6\ntop_k 20',
        license="Apache License 2.0 (fake copy for tests)",
    ),
    FakeModel(
        name="nomic-embed-text:latest",
        family="nomic-bert",
        parameter_size="137M",
        quantization_level="F16",
        size=274302450,
        capabilities=["embedding"],
        context_length=2048,
        embedding_length=768,
        modified_at="2025-03-21T11:02:33.5123-04:00",
        template="{{ .Prompt }}",
        parameters="num_ctx 8192",
        license="Apache License 2.0 (fake copy for tests)",
    ),
    FakeModel(
        name="llava:7b",
        family="llama",
        families=["llama", "clip"],
        parameter_size="7B",
        quantization_level="Q4_0",
        size=4733363377,
        capabilities=["completion", "vision"],
        context_length=32768,
        embedding_length=4096,
        modified_at="2025-01-30T08:44:10.000912-08:00",
        template="[INST] {{ if .System }}{{ .System }} {{ end }}{{ .Prompt }} [/INST]",
        parameters='stop "[INST]"\nstop "[/INST]"',
        license="Apache License 2.0 (fake copy for tests)",
    ),
]

DEFAULT_CATALOG: list[CatalogEntry] = [
    CatalogEntry(
        name="tinyllama:latest",
        layers=[_layer("tinyllama:latest", 0, 637699456), _layer("tinyllama:latest", 1, 98)],
        family="llama",
        parameter_size="1B",
        quantization_level="Q4_0",
        context_length=2048,
        embedding_length=2048,
        parameters='stop "<|system|>"\nstop "<|user|>"\nstop "<|assistant|>"\nstop "</s>"',
    ),
    CatalogEntry(
        name="smollm2:135m",
        layers=[
            _layer("smollm2:135m", 0, 270898400),
            _layer("smollm2:135m", 1, 1385),
            _layer("smollm2:135m", 2, 11357),
        ],
        family="llama",
        parameter_size="134.52M",
        quantization_level="F16",
        capabilities=["completion", "tools"],
        context_length=8192,
        embedding_length=576,
    ),
]


# --------------------------------------------------------------------------- replies


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Loaded:
    name: str
    expires_at: datetime
    size_vram: int
    context_length: int
    busy: int = 0


@dataclass
class _Plan:
    """What one chat/generate request will produce."""

    thinking: list[str]
    content: list[str]
    tool_calls: list[dict[str, Any]]
    done_reason: str
    prompt_tokens: int
    load_ns: int


_Chunks = Generator[dict[str, Any], None, None]


@dataclass(frozen=True)
class ToolScriptStep:
    """One scripted chat answer: the tool calls ``calls`` (name, arguments), or ``text``
    when there are none. ``ids``: the calls carry ids (``call_...``), as Ollama's do since
    v0.12; False leaves them out, as older versions did."""

    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    text: str = ""
    ids: bool = True

    @classmethod
    def call(cls, name: str, arguments: dict[str, Any] | None = None) -> ToolScriptStep:
        return cls(calls=((name, dict(arguments or {})),))

    @classmethod
    def say(cls, text: str) -> ToolScriptStep:
        return cls(text=text)


# --------------------------------------------------------------------------- server


class _Handler(FakeHandler):
    """Ollama's router also takes PATCH (answered 404/405); other methods get 501."""

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")


class FakeOllama(FakeServer):
    """A fake Ollama server; see the module docstring.

    ``models`` given as names are looked up in ``DEFAULT_MODELS`` (or created with the
    defaults); ``None`` installs ``DEFAULT_MODELS``. ``catalog`` lists what ``/api/pull``
    can fetch (``None``: ``DEFAULT_CATALOG``). ``vram_bytes`` is the GPU memory that loaded
    models fill in load order; a model that does not fit gets a partial ``size_vram``.
    """

    handler_class = _Handler
    stream_headers = (("Content-Type", NDJSON),)

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: Iterable[FakeModel | str] | None = None,
        catalog: Iterable[CatalogEntry] | None = None,
        version: str = "0.33.0",
        pull_steps: int = 8,
        pull_delay: float = 0.005,
        vram_bytes: int = 24 * 2**30,
        chat_reply: str = "The quick brown fox jumps over the lazy dog.",
        thinking_reply: str = "Let me think about that.",
    ) -> None:
        super().__init__(host, port)
        self.version = version
        self.pull_steps = max(1, int(pull_steps))
        self.pull_delay = pull_delay
        self.vram_bytes = vram_bytes
        self.chat_reply = chat_reply
        self.thinking_reply = thinking_reply
        self.now: Callable[[], datetime] = lambda: datetime.now().astimezone()
        self.installed: dict[str, FakeModel] = {}
        self.catalog: dict[str, CatalogEntry] = {}
        self._loaded: dict[str, _Loaded] = {}
        self._blobs: dict[str, int] = {}  # layer digest -> bytes downloaded so far
        self.tool_script: list[ToolScriptStep] = []
        if models is None:
            # Like two real machines, two fakes pulled their models at different instants:
            # each instance gets its own sub-second part of modified_at.
            models = [
                replace(m, modified_at=_with_random_fraction(m.modified_at)) for m in DEFAULT_MODELS
            ]
        for m in models:
            self.add_model(m)
        self.set_catalog(DEFAULT_CATALOG if catalog is None else catalog)

    # -- state helpers (public)

    def add_model(self, model: FakeModel | str) -> FakeModel:
        """Install a model (a ``FakeModel``, or a name looked up in ``DEFAULT_MODELS``)."""
        model = _default_model(model) if isinstance(model, str) else _copy_model(model)
        with self._lock:
            self.installed[model.name] = model
        return model

    def remove_model(self, name: str) -> bool:
        """Uninstall (and unload) a model; False if it was not installed."""
        with self._lock:
            key = self._find_locked(name)
            if key is None:
                return False
            del self.installed[key]
            self._loaded.pop(key, None)
            return True

    def set_catalog(self, entries: Iterable[CatalogEntry]) -> None:
        """Replace what ``/api/pull`` can fetch."""
        with self._lock:
            self.catalog = {e.name: e for e in entries}

    def loaded_names(self) -> list[str]:
        """Names of the models loaded now (expired ones dropped), in load order."""
        with self._lock:
            self._expire_locked()
            return list(self._loaded)

    def load(self, name: str, keep_alive: object = None) -> None:
        """Load an installed model as if a request had asked for it."""
        with self._lock:
            key = self._find_locked(name)
            if key is None:
                raise KeyError(name)
            self._load_locked(key, parse_keep_alive(keep_alive), None)

    def unload(self, name: str) -> None:
        with self._lock:
            key = self._find_locked(name)
            if key is not None:
                self._loaded.pop(key, None)

    def blob_progress(self) -> dict[str, int]:
        """Bytes downloaded so far per layer digest (what an interrupted pull resumes from)."""
        with self._lock:
            return dict(self._blobs)

    # -- state helpers (private; call with the lock held)

    def _find_locked(self, name: str) -> str | None:
        wanted = normalize_name(name)
        if wanted in self.installed:
            return wanted
        folded = wanted.casefold()
        for key in self.installed:
            if key.casefold() == folded:
                return key
        return None

    def _expire_locked(self) -> None:
        now = self.now()
        for key in [k for k, v in self._loaded.items() if not v.busy and v.expires_at <= now]:
            del self._loaded[key]

    def _expiry(self, keep_alive: float) -> datetime:
        now = self.now()
        return now + (FOREVER if math.isinf(keep_alive) else timedelta(seconds=keep_alive))

    def _load_locked(self, key: str, keep_alive: float, num_ctx: object) -> int:
        """Load (or refresh) a model; returns the load duration in ns."""
        self._expire_locked()
        model = self.installed[key]
        loaded = self._loaded.get(key)
        ctx = num_ctx if isinstance(num_ctx, int) and num_ctx > 0 else None
        if loaded is not None and (ctx is None or ctx == loaded.context_length):
            loaded.expires_at = self._expiry(keep_alive)
            return 1_250_000
        if loaded is not None:
            del self._loaded[key]
        used = sum(v.size_vram for v in self._loaded.values())
        free = max(0, self.vram_bytes - used)
        self._loaded[key] = _Loaded(
            name=key,
            expires_at=self._expiry(keep_alive),
            size_vram=min(model.size, free),
            context_length=ctx or min(model.context_length, DEFAULT_NUM_CTX),
        )
        return 250_000_000 + model.size // 100

    def _release(self, key: str, keep_alive: float) -> None:
        """End of a request: the keep_alive timer starts now (0 unloads)."""
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is None:
                return
            loaded.busy = max(0, loaded.busy - 1)
            if keep_alive == 0 and not loaded.busy:
                del self._loaded[key]
            else:
                loaded.expires_at = self._expiry(keep_alive)

    def _created_at(self) -> str:
        return go_time(self.now().astimezone(UTC))

    # -- routing

    _ROUTES: ClassVar[dict[str, dict[str, str]]] = {
        "/": {"GET": "_root", "HEAD": "_root"},
        "/api/version": {"GET": "_version", "HEAD": "_version"},
        "/api/tags": {"GET": "_tags", "HEAD": "_tags"},
        "/api/ps": {"GET": "_ps"},
        "/api/show": {"POST": "_show"},
        "/api/pull": {"POST": "_pull"},
        "/api/delete": {"DELETE": "_delete"},
        "/api/copy": {"POST": "_copy"},
        "/api/generate": {"POST": "_generate"},
        "/api/chat": {"POST": "_chat"},
        "/api/embed": {"POST": "_embed"},
        "/api/embeddings": {"POST": "_embeddings"},
    }

    def _label(self) -> str:
        return "ollama"

    def _dumps(self, obj: object) -> bytes:
        return _dumps(obj)

    def _frame(self, item: Any) -> bytes:
        return _dumps(item) + b"\n"  # NDJSON: one object a line

    def _failure(self, path: str, status: int) -> Reply | None:
        if not path.startswith("/api/"):
            return None
        return Reply(status=status, json={"error": f"fake failure {status}"})

    def _internal_error(self) -> Reply:
        return Reply(status=500, json={"error": "internal fake server error"})

    def _answer(self, method: str, path: str, raw: bytes) -> Reply:
        methods = self._ROUTES.get(path)
        if methods is None:
            return Reply(status=404, text="404 page not found")
        handler_name = methods.get(method)
        if handler_name is None:
            return Reply(status=405, text="405 method not allowed")
        handler: Callable[[bytes], Reply] = getattr(self, handler_name)
        try:
            return handler(raw)
        except _HTTPError as exc:
            return Reply(status=exc.status, json={"error": exc.message})

    @staticmethod
    def _body(raw: bytes, type_name: str, strings: Iterable[str] = ("model",)) -> dict[str, Any]:
        if not raw.strip():
            raise _HTTPError(400, "missing request body")
        try:
            obj = json.loads(raw)
        except UnicodeDecodeError:
            raise _HTTPError(400, "invalid character looking for beginning of value") from None
        except json.JSONDecodeError as exc:
            raise _HTTPError(400, _json_error(raw, exc)) from None
        if obj is None:
            obj = {}
        if not isinstance(obj, dict):
            raise _HTTPError(
                400, f"json: cannot unmarshal {_go_kind(obj)} into Go value of type api.{type_name}"
            )
        for key in strings:
            value = obj.get(key)
            if value is not None and not isinstance(value, str):
                raise _HTTPError(
                    400,
                    f"json: cannot unmarshal {_go_kind(value)} into Go struct field "
                    f"{type_name}.{key} of type string",
                )
        return obj

    @staticmethod
    def _stream_flag(body: dict[str, Any]) -> bool:
        value = body.get("stream")
        if value is not None and not isinstance(value, bool):
            raise _HTTPError(
                400, f"json: cannot unmarshal {_go_kind(value)} into Go value of type bool"
            )
        return value is not False

    @staticmethod
    def _keep_alive(body: dict[str, Any]) -> float:
        try:
            return parse_keep_alive(body.get("keep_alive"))
        except ValueError as exc:
            raise _HTTPError(400, str(exc)) from None

    # -- simple routes

    def _root(self, raw: bytes) -> Reply:
        return Reply(text="Ollama is running")

    def _version(self, raw: bytes) -> Reply:
        return Reply(json={"version": self.version})

    def _tags(self, raw: bytes) -> Reply:
        with self._lock:
            models = list(self.installed.values())
        models.sort(
            key=lambda m: int(datetime.fromisoformat(m.modified_at).timestamp()), reverse=True
        )
        out = []
        for m in models:
            details = m.details()
            details["context_length"] = m.context_length
            details["embedding_length"] = m.embedding_length
            out.append(
                {
                    "name": m.name,
                    "model": m.name,
                    "modified_at": m.modified_at,
                    "size": m.size,
                    "digest": m.digest,
                    "details": details,
                    "capabilities": list(m.capabilities),
                }
            )
        return Reply(json={"models": out})

    def _ps(self, raw: bytes) -> Reply:
        with self._lock:
            self._expire_locked()
            rows = [(v, self.installed.get(k)) for k, v in self._loaded.items()]
        out = []
        for loaded, model in rows:
            if model is None:
                continue
            out.append(
                (
                    int(loaded.expires_at.timestamp()),
                    {
                        "name": model.name,
                        "model": model.name,
                        "size": model.size,
                        "digest": model.digest,
                        "details": model.details(),
                        "expires_at": go_time(loaded.expires_at),
                        "size_vram": loaded.size_vram,
                        "context_length": loaded.context_length,
                    },
                )
            )
        out.sort(key=lambda row: row[0], reverse=True)  # stable: load order among equals
        return Reply(json={"models": [row for _, row in out]})

    def _show(self, raw: bytes) -> Reply:
        body = self._body(raw, "ShowRequest", ("model", "name"))
        requested = body.get("model") or body.get("name") or ""
        if not requested.strip():
            raise _HTTPError(400, "model is required")
        with self._lock:
            key = self._find_locked(requested)
            model = None if key is None else self.installed[key]
        if model is None:
            raise _HTTPError(404, f"model '{normalize_name(requested)}' not found")
        reply: dict[str, Any] = {
            "license": model.license,
            "modelfile": model.modelfile(),
            "parameters": model.parameters,
            "template": model.template,
            "details": model.details(),
            "model_info": model.model_info(),
        }
        projector = model.projector_info()
        if projector is not None:
            reply["projector_info"] = projector
        reply["capabilities"] = list(model.capabilities)
        reply["modified_at"] = model.modified_at
        return Reply(json=reply)

    def _delete(self, raw: bytes) -> Reply:
        body = self._body(raw, "DeleteRequest", ("model", "name"))
        requested = body.get("model") or body.get("name") or ""
        if not requested.strip():
            raise _HTTPError(400, "model is required")
        with self._lock:
            key = self._find_locked(requested)
            if key is None:
                raise _HTTPError(404, f"model '{requested}' not found")
            model = self.installed.pop(key)
            self._loaded.pop(key, None)
            in_use = {d for m in self.installed.values() for d, _ in self._layers_locked(m.name)}
            for digest, _ in self._layers_for_locked(model):
                if digest not in in_use:
                    self._blobs.pop(digest, None)
        return Reply(empty=True)

    def _copy(self, raw: bytes) -> Reply:
        body = self._body(raw, "CopyRequest", ("source", "destination"))
        source = body.get("source") or ""
        destination = body.get("destination") or ""
        if not source.strip():
            raise _HTTPError(400, f"source {json.dumps(source)} is invalid")
        if not destination.strip():
            raise _HTTPError(400, f"destination {json.dumps(destination)} is invalid")
        with self._lock:
            key = self._find_locked(source)
            if key is None:
                raise _HTTPError(404, f"model {json.dumps(source)} not found")
            dst = normalize_name(destination)
            self.installed[dst] = _copy_model(
                self.installed[key], name=dst, modified_at=go_time(self.now())
            )
        return Reply(empty=True)

    # -- pull

    def _layers_for_locked(self, model: FakeModel) -> list[tuple[str, int]]:
        entry = self.catalog.get(model.name)
        return list(entry.layers) if entry is not None else model.layers()

    def _layers_locked(self, name: str) -> list[tuple[str, int]]:
        model = self.installed.get(name)
        return [] if model is None else self._layers_for_locked(model)

    def _pull_source_locked(self, name: str) -> CatalogEntry | None:
        """What a pull of ``name`` fetches: a catalog entry, or an installed/default model."""
        entry = self.catalog.get(name)
        if entry is not None:
            return entry
        key = self._find_locked(name)
        model = self.installed.get(key) if key else None
        if model is None:
            model = next((m for m in DEFAULT_MODELS if m.name == name), None)
        if model is None:
            return None
        return CatalogEntry(
            name=model.name,
            layers=model.layers(),
            family=model.family,
            parameter_size=model.parameter_size,
            quantization_level=model.quantization_level,
            size=model.size,
            digest=model.digest,
            capabilities=list(model.capabilities),
            context_length=model.context_length,
            template=model.template,
            license=model.license,
            parameters=model.parameters,
            families=None if model.families is None else list(model.families),
            embedding_length=model.embedding_length,
        )

    def _pull(self, raw: bytes) -> Reply:
        body = self._body(raw, "PullRequest", ("model", "name"))
        requested = body.get("model") or body.get("name") or ""
        if not requested.strip():
            raise _HTTPError(400, "invalid model name")
        stream = self._stream_flag(body)
        name = normalize_name(requested)
        with self._lock:
            entry = self._pull_source_locked(name)
        lines = self._pull_lines(name, entry)
        if stream:
            return Reply(stream=lines, delay=lambda: self.pull_delay)
        last: dict[str, Any] = {}
        try:
            for index, line in enumerate(lines):
                if index:
                    self._sleep(self.pull_delay)
                if "error" in line:
                    raise _HTTPError(500, line["error"])
                last = line
        finally:
            lines.close()
        return Reply(json=last)

    def _pull_lines(self, name: str, entry: CatalogEntry | None) -> _Chunks:
        yield {"status": "pulling manifest"}
        if entry is None:
            yield {"error": "pull model manifest: file does not exist"}
            return
        steps = self.pull_steps
        with self._lock:
            have_all = self._find_locked(name) is not None
        for digest, total in entry.layers:
            with self._lock:
                start = total if have_all else min(self._blobs.get(digest, 0), total)
            status = f"pulling {digest[7:19]}"
            if start >= total:
                yield {"status": status, "digest": digest, "total": total, "completed": total}
                continue
            for step in range(steps):
                done = total if steps == 1 else start + (total - start) * step // (steps - 1)
                line: dict[str, Any] = {"status": status, "digest": digest, "total": total}
                if done:
                    line["completed"] = done
                yield line
                # Only reached once the line was written: remember it for a resume.
                with self._lock:
                    self._blobs[digest] = max(self._blobs.get(digest, 0), done)
        yield {"status": "verifying sha256 digest"}
        yield {"status": "writing manifest"}
        with self._lock:
            existing = self._find_locked(name)
            modified = go_time(self.now())
            model = entry.to_model(modified_at=modified)
            if existing is not None and existing != model.name:
                del self.installed[existing]
            self.installed[model.name] = model
        yield {"status": "removing any unused layers"}
        yield {"status": "success"}

    # -- inference

    def _lookup_for_inference(self, requested: str) -> FakeModel:
        with self._lock:
            key = self._find_locked(requested)
            model = None if key is None else self.installed[key]
        if model is None:
            raise _HTTPError(404, f"model '{requested}' not found")
        return model

    @staticmethod
    def _think(body: dict[str, Any]) -> object:
        think = body.get("think")
        if think is None or isinstance(think, bool):
            return think
        if isinstance(think, str):
            if think in ("high", "medium", "low", "max"):
                return think
            raise _HTTPError(
                400,
                f"invalid think value: {json.dumps(think)} "
                '(must be "high", "medium", "low", "max", true, or false)',
            )
        raise _HTTPError(
            400,
            'think must be a boolean or string ("high", "medium", "low", "max", true, or false)',
        )

    def _check_caps(
        self, model: FakeModel, requested: str, think: object, endpoint: str, tools: bool
    ) -> bool:
        """Capability checks in Ollama's order; returns whether thinking is on."""
        if "thinking" in model.capabilities:
            thinking = think is None or bool(think)
        else:
            if think:
                raise _HTTPError(400, f"{json.dumps(requested)} does not support thinking")
            thinking = False
        if "completion" not in model.capabilities:
            raise _HTTPError(400, f"{json.dumps(requested)} does not support {endpoint}")
        if tools and "tools" not in model.capabilities:
            raise _HTTPError(400, f"{full_name(model.name)} does not support tools")
        return thinking

    def _begin(self, model: FakeModel, keep_alive: float, options: dict[str, Any]) -> int:
        with self._lock:
            if model.name not in self.installed:
                raise _HTTPError(
                    404, f"model {json.dumps(model.name)} not found, try pulling it first"
                )
            load_ns = self._load_locked(model.name, keep_alive, options.get("num_ctx"))
            self._loaded[model.name].busy += 1
        return load_ns

    def _unload_reply(self, model: FakeModel, requested: str, kind: str) -> Reply:
        with self._lock:
            self._loaded.pop(model.name, None)
        return Reply(json=self._done_stub(requested, kind, "unload"))

    def _done_stub(self, requested: str, kind: str, reason: str) -> dict[str, Any]:
        reply: dict[str, Any] = {"model": requested, "created_at": self._created_at()}
        if kind == "chat":
            reply["message"] = {"role": "assistant", "content": ""}
        else:
            reply["response"] = ""
        reply["done"] = True
        reply["done_reason"] = reason
        return reply

    def _plan(
        self,
        thinking: bool,
        reply_text: str,
        tool_calls: list[dict[str, Any]],
        options: dict[str, Any],
        prompt_tokens: int,
        load_ns: int,
    ) -> _Plan:
        think_pieces = _pieces(self.thinking_reply) if thinking else []
        content = [] if tool_calls else _pieces(reply_text)
        reason = "stop"
        limit = options.get("num_predict")
        if isinstance(limit, int | float) and not isinstance(limit, bool) and limit >= 0:
            limit = int(limit)
            if limit < len(think_pieces) + len(content) + (1 if tool_calls else 0):
                reason = "length"
                think_pieces = think_pieces[:limit]
                content = content[: max(0, limit - len(think_pieces))]
                if limit <= len(think_pieces):
                    tool_calls = []
        return _Plan(think_pieces, content, tool_calls, reason, prompt_tokens, load_ns)

    def _metrics(self, plan: _Plan) -> dict[str, int]:
        eval_count = len(plan.thinking) + len(plan.content) + (8 if plan.tool_calls else 0)
        per_token = max(int(self.faults.token_delay * 1e9), 10_000_000)
        eval_ns = eval_count * per_token
        prompt_ns = plan.prompt_tokens * 1_000_000
        metrics = {
            "total_duration": plan.load_ns + prompt_ns + eval_ns + 1_000_000,
            "load_duration": plan.load_ns,
            "prompt_eval_count": plan.prompt_tokens,
            "prompt_eval_duration": prompt_ns,
            "eval_count": eval_count,
            "eval_duration": eval_ns,
        }
        return {k: v for k, v in metrics.items() if v}

    def _chat(self, raw: bytes) -> Reply:
        body = self._body(raw, "ChatRequest")
        requested = body.get("model") or ""
        if not requested.strip():
            raise _HTTPError(400, "model is required")
        keep_alive = self._keep_alive(body)
        think = self._think(body)
        stream = self._stream_flag(body)
        messages = body.get("messages") or []
        tools = body.get("tools") or []
        options = body.get("options") or {}
        if not isinstance(messages, list) or not isinstance(tools, list):
            raise _HTTPError(
                400, "json: cannot unmarshal object into Go value of type []api.Message"
            )
        if not isinstance(options, dict):
            options = {}
        model = self._lookup_for_inference(requested)
        if not messages and keep_alive == 0:
            return self._unload_reply(model, requested, "chat")
        thinking = self._check_caps(model, requested, think, "chat", bool(tools))
        load_ns = self._begin(model, keep_alive, options)
        if not messages:
            self._release(model.name, keep_alive)
            return Reply(json=self._done_stub(requested, "chat", "load"))
        try:
            last = messages[-1] if isinstance(messages[-1], dict) else {}
            tool_calls: list[dict[str, Any]] = []
            reply_text = self.chat_reply
            with self._lock:
                step = self.tool_script.pop(0) if self.tool_script else None
            if step is not None:
                tool_calls = [
                    _scripted_call(i, n, a, step.ids) for i, (n, a) in enumerate(step.calls)
                ]
                reply_text = step.text
            elif last.get("role") == "tool":
                reply_text = f"The tool returned: {last.get('content', '')}"
            elif tools and last.get("role", "user") == "user":
                tool_calls = [_tool_call(tools[0])]
            prompt_tokens = sum(
                _count_tokens(str(m.get("content", ""))) + 4
                for m in messages
                if isinstance(m, dict)
            )
            plan = self._plan(thinking, reply_text, tool_calls, options, prompt_tokens, load_ns)
        except BaseException:
            self._release(model.name, keep_alive)
            raise
        chunks = self._chat_chunks(requested, plan)
        return self._inference_reply(chunks, "chat", stream, model, keep_alive)

    def _chat_chunks(self, requested: str, plan: _Plan) -> _Chunks:
        for piece in plan.thinking:
            yield {
                "model": requested,
                "created_at": self._created_at(),
                "message": {"role": "assistant", "content": "", "thinking": piece},
                "done": False,
            }
        for piece in plan.content:
            yield {
                "model": requested,
                "created_at": self._created_at(),
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
        if plan.tool_calls:
            yield {
                "model": requested,
                "created_at": self._created_at(),
                "message": {"role": "assistant", "content": "", "tool_calls": plan.tool_calls},
                "done": False,
            }
        final = self._done_stub(requested, "chat", plan.done_reason)
        final.update(self._metrics(plan))
        yield final

    def _generate(self, raw: bytes) -> Reply:
        body = self._body(raw, "GenerateRequest", ("model", "prompt", "suffix", "system"))
        requested = body.get("model") or ""
        if not requested.strip():
            raise _HTTPError(404, f"model '{requested}' not found")
        keep_alive = self._keep_alive(body)
        think = self._think(body)
        stream = self._stream_flag(body)
        prompt = body.get("prompt") or ""
        options = body.get("options") or {}
        if not isinstance(options, dict):
            options = {}
        model = self._lookup_for_inference(requested)
        if not prompt and keep_alive == 0:
            return self._unload_reply(model, requested, "generate")
        thinking = self._check_caps(model, requested, think, "generate", False)
        if body.get("suffix") and "insert" not in model.capabilities:
            raise _HTTPError(400, f"{full_name(model.name)} does not support insert")
        load_ns = self._begin(model, keep_alive, options)
        if not prompt:
            self._release(model.name, keep_alive)
            return Reply(json=self._done_stub(requested, "generate", "load"))
        prompt_tokens = _count_tokens(prompt) + _count_tokens(body.get("system") or "") + 8
        plan = self._plan(thinking, self.chat_reply, [], options, prompt_tokens, load_ns)
        context = [int(_sha256(w)[:8], 16) % 128000 for w in _pieces(prompt) + plan.content]
        chunks = self._generate_chunks(requested, plan, context)
        return self._inference_reply(chunks, "generate", stream, model, keep_alive)

    def _generate_chunks(self, requested: str, plan: _Plan, context: list[int]) -> _Chunks:
        for piece in plan.thinking:
            yield {
                "model": requested,
                "created_at": self._created_at(),
                "response": "",
                "thinking": piece,
                "done": False,
            }
        for piece in plan.content:
            yield {
                "model": requested,
                "created_at": self._created_at(),
                "response": piece,
                "done": False,
            }
        final = self._done_stub(requested, "generate", plan.done_reason)
        final["context"] = context
        final.update(self._metrics(plan))
        yield final

    def _inference_reply(
        self, chunks: _Chunks, kind: str, stream: bool, model: FakeModel, keep_alive: float
    ) -> Reply:
        def release() -> None:
            self._release(model.name, keep_alive)

        if stream:
            return Reply(stream=chunks, delay=lambda: self.faults.token_delay, cleanup=release)
        try:
            return Reply(json=self._collapse(chunks, kind))
        finally:
            release()

    def _collapse(self, chunks: _Chunks, kind: str) -> dict[str, Any]:
        """The single object of a ``stream: false`` reply (after the same token delays)."""
        thinking: list[str] = []
        content: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        final: dict[str, Any] = {}
        try:
            for index, chunk in enumerate(chunks):
                if index:
                    self._sleep(self.faults.token_delay)
                if kind == "chat":
                    part = chunk["message"]
                    thinking.append(part.get("thinking", ""))
                    content.append(part.get("content", ""))
                    tool_calls.extend(part.get("tool_calls", []))
                else:
                    thinking.append(chunk.get("thinking", ""))
                    content.append(chunk.get("response", ""))
                final = chunk
        finally:
            chunks.close()
        if kind == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": "".join(content)}
            if any(thinking):
                message["thinking"] = "".join(thinking)
            if tool_calls:
                message["tool_calls"] = tool_calls
            final["message"] = message
        else:
            final["response"] = "".join(content)
            if any(thinking):
                rebuilt = {}
                for key, value in final.items():
                    rebuilt[key] = value
                    if key == "response":
                        rebuilt["thinking"] = "".join(thinking)
                final = rebuilt
        return final

    def _embed(self, raw: bytes) -> Reply:
        body = self._body(raw, "EmbedRequest")
        requested = body.get("model") or ""
        if not requested.strip():
            raise _HTTPError(404, f"model '{requested}' not found")
        keep_alive = self._keep_alive(body)
        value = body.get("input")
        if isinstance(value, str):
            inputs = [value] if value else []
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            inputs = list(value)
        elif value is None:
            inputs = []
        else:
            raise _HTTPError(400, "invalid input type")
        with self._lock:
            key = self._find_locked(requested)
            model = None if key is None else self.installed[key]
        if model is None:
            raise _HTTPError(404, f"model {json.dumps(requested)} not found, try pulling it first")
        if "embedding" not in model.capabilities:
            raise _HTTPError(400, f"{json.dumps(requested)} does not support embeddings")
        options = body.get("options") if isinstance(body.get("options"), dict) else {}
        load_ns = self._begin(model, keep_alive, options or {})
        self._release(model.name, keep_alive)
        if not inputs:
            return Reply(json={"model": requested, "embeddings": []})
        dims = body.get("dimensions")
        size = model.embedding_length
        if isinstance(dims, int) and not isinstance(dims, bool) and 0 < dims < size:
            size = dims
        tokens = sum(_count_tokens(t) + 2 for t in inputs)
        reply = {
            "model": requested,
            "embeddings": [_embedding(text, size) for text in inputs],
            "total_duration": load_ns + tokens * 500_000 + 1_000_000,
            "load_duration": load_ns,
            "prompt_eval_count": tokens,
        }
        return Reply(json=reply)

    def _embeddings(self, raw: bytes) -> Reply:
        """The legacy single-prompt endpoint."""
        body = self._body(raw, "EmbeddingRequest", ("model", "prompt"))
        requested = body.get("model") or ""
        if not requested.strip():
            raise _HTTPError(400, "model is required")
        keep_alive = self._keep_alive(body)
        with self._lock:
            key = self._find_locked(requested)
            model = None if key is None else self.installed[key]
        if model is None:
            raise _HTTPError(404, f"model {json.dumps(requested)} not found, try pulling it first")
        self._begin(model, keep_alive, {})
        self._release(model.name, keep_alive)
        prompt = body.get("prompt") or ""
        vector = _embedding(prompt, model.embedding_length) if prompt else []
        return Reply(json={"embedding": vector})


# --------------------------------------------------------------------------- small pieces


def _copy_model(model: FakeModel, **changes: Any) -> FakeModel:
    """A copy that shares no lists with the original."""
    families = None if model.families is None else list(model.families)
    changes.setdefault("capabilities", list(model.capabilities))
    changes.setdefault("families", families)
    return replace(model, **changes)


def _with_random_fraction(stamp: str) -> str:
    """The same RFC 3339 time with a random nanosecond fraction."""
    fraction = f".{random.randrange(10**9):09d}"
    return re.sub(r"(T\d\d:\d\d:\d\d)(\.\d+)?", lambda m: m.group(1) + fraction, stamp, count=1)


def _default_model(name: str) -> FakeModel:
    wanted = normalize_name(name)
    for model in DEFAULT_MODELS:
        if model.name == wanted:
            return _copy_model(model)
    for entry in DEFAULT_CATALOG:
        if entry.name == wanted:
            return entry.to_model()
    return FakeModel(name=wanted)


def _json_error(raw: bytes, exc: json.JSONDecodeError) -> str:
    text = exc.doc
    if exc.pos >= len(text.rstrip()):
        return "unexpected EOF"
    return f"invalid character {text[exc.pos]!r} looking for beginning of value"


def _tool_call(tool: object) -> dict[str, Any]:
    function = tool.get("function", {}) if isinstance(tool, dict) else {}
    if not isinstance(function, dict):
        function = {}
    params = function.get("parameters") or {}
    props = params.get("properties") or {} if isinstance(params, dict) else {}
    required = params.get("required") or [] if isinstance(params, dict) else []
    arguments: dict[str, Any] = {}
    for key in required:
        spec = props.get(key, {}) if isinstance(props, dict) else {}
        arguments[key] = _sample_value(spec if isinstance(spec, dict) else {})
    return {
        "id": _call_id(),
        "function": {"index": 0, "name": str(function.get("name", "")), "arguments": arguments},
    }


def _scripted_call(index: int, name: str, arguments: dict[str, Any], ids: bool) -> dict[str, Any]:
    call: dict[str, Any] = {"function": {"index": index, "name": name, "arguments": arguments}}
    if ids:
        call = {"id": _call_id(), **call}
    return call


def _sample_value(spec: dict[str, Any]) -> object:
    enum = spec.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = spec.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return "test"


def _embedding(text: str, size: int) -> list[float]:
    rng = random.Random(_sha256(text))
    vector = [rng.gauss(0.0, 1.0) for _ in range(size)]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [round(v / norm, 7) for v in vector]


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.ollama", description="Run a fake Ollama server."
    )
    add_listen_args(parser, port=11434)
    parser.add_argument("--models", default=None, help="comma-separated installed models")
    add_fault_args(parser)
    parser.add_argument("--pull-delay", type=float, default=0.05, help="seconds between pull lines")
    parser.add_argument("--pull-steps", type=int, default=8, help="progress lines per layer")
    parser.add_argument("--vram-gib", type=float, default=24.0, help="GPU memory to simulate")
    parser.add_argument("--version", default="0.33.0", help="version /api/version reports")
    args = parser.parse_args(argv)

    def build() -> FakeOllama:
        return FakeOllama(
            args.host,
            args.port,
            models=name_list(args.models),
            version=args.version,
            pull_steps=args.pull_steps,
            pull_delay=args.pull_delay,
            vram_bytes=int(args.vram_gib * 2**30),
        )

    def banner(fake: FakeOllama) -> str:
        return f"fake Ollama {args.version} serving {len(fake.installed)} models; Ctrl+C to stop"

    return serve_until_signalled(args, build, banner)


if __name__ == "__main__":
    sys.exit(main())
