"""Find out what kind of model server answers at a base URL, and fingerprint it.

:func:`identify` asks a handful of cheap GET routes at once (one round trip), decides
which kind of server answered, then asks at most one more route for what makes this
server instance different from another with the same models. It never raises for a
server that is down, slow or not a model server: it returns ``None``.

The fingerprint is a hex digest of facts that belong to the server, not to the address
it was reached at, so the same server seen through two addresses (127.0.0.1 and its LAN
address, a name and an IP) gives the same fingerprint, and two servers give different
ones wherever their APIs say anything that tells them apart:

- Ollama: version, and every model's name, digest and modified_at (the time it was pulled
  or created on that machine).
- llama.cpp: build_info, model path, context size, the per-process random ``media_marker``
  of ``/props`` and the model ids.
- LM Studio: the model ids with their types, quantizations and load states (its API offers
  nothing per installation, so two LM Studios with the same models in the same states look
  the same).
- vLLM: version, each model's id, root and max_model_len, and the process start time from
  ``/metrics``.
- any other OpenAI-compatible server: each model's id, owned_by and created.

A ``created`` that is the time of the request (llama.cpp and vLLM stamp every reply with
"now") would change the fingerprint from one probe to the next, so a ``created`` within a
few seconds of the server's ``Date`` header is left out. When a server says too little to
tell it apart from another (an Ollama whose model list did not come, a llama.cpp still
loading its model), the URL goes into the fingerprint: two addresses of one server then
look like two servers, which is the safe mistake.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from app.core.hosts.base import HostKind

__all__ = ["Identity", "identify", "identify_url"]

_MAX_BODY = 4 * 2**20  # a model list bigger than this is not what we are looking for
_REQUEST_TIME_SLACK_S = 5.0
_START_TIME = re.compile(r"^process_start_time_seconds\s+([0-9.eE+]+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Identity:
    """What answered at a base URL.

    Attributes:
        url: the base URL that was probed (without a trailing slash).
        kind: the kind of server.
        version: the server's version ("" where it reports none; llama.cpp's build_info).
        models: model ids or names the server offers, in its order.
        fingerprint: hex digest that is the same for the same server through any address.
        router: a llama.cpp server in router mode (it loads and unloads models).
        ready: False while a llama.cpp server is still loading its model.
    """

    url: str
    kind: HostKind
    version: str
    models: tuple[str, ...]
    fingerprint: str
    router: bool = False
    ready: bool = True


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def obj(self) -> dict[str, Any] | None:
        """The JSON object of a 200 reply, else None."""
        if self.status != 200:
            return None
        value = self.json()
        return value if isinstance(value, dict) else None

    def server_time(self) -> float:
        """The server's clock from its Date header (this machine's clock if absent)."""
        date = self.headers.get("date")
        if date:
            try:
                return parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
        return time.time()


async def _get(client: httpx.AsyncClient, url: str, deadline: float) -> _Answer | None:
    """GET a URL; None for anything that is not a complete HTTP reply before the deadline."""
    loop = asyncio.get_running_loop()
    remaining = deadline - loop.time()
    if remaining <= 0:
        return None
    try:
        async with asyncio.timeout_at(deadline):
            timeout = httpx.Timeout(remaining)
            async with client.stream("GET", url, timeout=timeout) as r:
                body = bytearray()
                async for part in r.aiter_bytes():
                    body += part
                    if len(body) > _MAX_BODY:
                        return None
                return _Answer(r.status_code, r.headers, bytes(body))
    except (TimeoutError, httpx.HTTPError, httpx.InvalidURL, OSError, ValueError):
        return None


def _digest(*parts: object) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _model_entries(answer: _Answer | None) -> list[dict[str, Any]] | None:
    """The ``data`` entries of an OpenAI ``/v1/models`` reply, or None if it is not one."""
    body = answer.obj() if answer is not None else None
    if body is None:
        return None
    data = body.get("data")
    if not isinstance(data, list):
        return None
    entries = [e for e in data if isinstance(e, dict) and isinstance(e.get("id"), str)]
    if len(entries) != len(data):
        return None
    if not entries and body.get("object") != "list":
        return None
    return entries


def _stable_created(entry: dict[str, Any], answer: _Answer) -> int | None:
    """``created`` unless it is merely the time of the request."""
    created = entry.get("created")
    if not isinstance(created, int | float) or isinstance(created, bool):
        return None
    if abs(answer.server_time() - float(created)) <= _REQUEST_TIME_SLACK_S:
        return None
    return int(created)


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


class _Probe:
    """One identification run against one base URL."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, timeout: float) -> None:
        self.client = client
        self.base = base_url.rstrip("/")
        self.deadline = asyncio.get_running_loop().time() + timeout

    async def get(self, path: str) -> _Answer | None:
        return await _get(self.client, self.base + path, self.deadline)

    async def run(self) -> Identity | None:
        paths = ("/api/version", "/health", "/props", "/api/v0/models", "/version", "/v1/models")
        answers = await asyncio.gather(*(self.get(p) for p in paths))
        api_version, health, props, lms, version, v1 = answers
        models = _model_entries(v1)
        return (
            await self._ollama(api_version)
            or await self._llamacpp(health, props, v1, models)
            or self._lmstudio(lms)
            or await self._vllm(version, health, v1, models)
            or self._generic(v1, models)
        )

    # -- one method per kind: each returns None when the answers do not fit -----------

    async def _ollama(self, api_version: _Answer | None) -> Identity | None:
        body = api_version.obj() if api_version is not None else None
        if body is None or not isinstance(body.get("version"), str):
            return None
        version = str(body["version"])
        tags = await self.get("/api/tags")
        if tags is None:  # no answer in time: an Ollama, but one that says too little
            return Identity(
                self.base, HostKind.OLLAMA, version, (), _digest("ollama", version, self.base)
            )
        listed = tags.obj()
        rows = listed.get("models") if listed is not None else None
        if not isinstance(rows, list):
            return None  # some other API with a /api/version route
        names: list[str] = []
        facts: list[tuple[str, str, str]] = []
        for row in rows:
            if not isinstance(row, dict):
                continue
            name = _str(row.get("model")) or _str(row.get("name"))
            names.append(name)
            facts.append((name, _str(row.get("digest")), _str(row.get("modified_at"))))
        fingerprint = _digest("ollama", version, sorted(facts))
        return Identity(self.base, HostKind.OLLAMA, version, tuple(names), fingerprint)

    async def _llamacpp(
        self,
        health: _Answer | None,
        props: _Answer | None,
        v1: _Answer | None,
        models: list[dict[str, Any]] | None,
    ) -> Identity | None:
        said_llamacpp = any(
            a is not None and a.headers.get("server", "").lower() == "llama.cpp"
            for a in (health, props, v1)
        )
        if health is not None and health.status == 503 and _is_loading(health):
            if not said_llamacpp:
                return None
            return Identity(
                self.base,
                HostKind.LLAMACPP,
                "",
                (),
                _digest("llama.cpp", "loading", self.base),
                ready=False,
            )
        info = props.obj() if props is not None else None
        keys = ("build_info", "model_path", "default_generation_settings")
        props_match = info is not None and any(k in info for k in keys)
        health_ok = health is not None and health.obj() == {"status": "ok"}
        owned = models is not None and any(e.get("owned_by") == "llamacpp" for e in models)
        if not (props_match or (health_ok and (owned or said_llamacpp))):
            return None
        info = info or {}
        listing = await self.get("/models")
        router_models = _model_entries(listing)
        router = router_models is not None and any(
            isinstance(e.get("status"), dict) for e in router_models
        )
        source, answer = (router_models, listing) if router else (models, v1)
        entries = source or []
        ids = tuple(str(e["id"]) for e in entries)
        created = sorted(
            (str(e["id"]), _stable_created(e, answer) if answer is not None else None)
            for e in entries
        )
        paths = sorted(_str(e.get("path")) for e in entries) if router else []
        settings = info.get("default_generation_settings")
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        build = _str(info.get("build_info"))
        model_path = _str(info.get("model_path"))
        marker = _str(info.get("media_marker"))
        weak = not (marker or model_path or any(paths))
        fingerprint = _digest(
            "llama.cpp",
            build,
            model_path,
            n_ctx,
            marker,
            created,
            paths,
            self.base if weak else "",
        )
        return Identity(self.base, HostKind.LLAMACPP, build, ids, fingerprint, router=router)

    def _lmstudio(self, lms: _Answer | None) -> Identity | None:
        entries = _model_entries(lms)
        if entries is None:
            return None
        lms_keys = ("state", "compatibility_type", "publisher", "arch")
        if entries and not all(any(k in e for k in lms_keys) for e in entries):
            return None
        ids = tuple(str(e["id"]) for e in entries)
        facts = sorted(
            (
                str(e["id"]),
                _str(e.get("state")),
                _str(e.get("type")),
                _str(e.get("quantization")),
                _str(e.get("publisher")),
            )
            for e in entries
        )
        return Identity(self.base, HostKind.LMSTUDIO, "", ids, _digest("lmstudio", facts))

    async def _vllm(
        self,
        version: _Answer | None,
        health: _Answer | None,
        v1: _Answer | None,
        models: list[dict[str, Any]] | None,
    ) -> Identity | None:
        body = version.obj() if version is not None else None
        if body is None or not isinstance(body.get("version"), str):
            return None
        owned = models is not None and any(e.get("owned_by") == "vllm" for e in models)
        # With --api-key, /v1/models wants the key but /version and /health stay open.
        locked = (
            v1 is not None
            and v1.status in (401, 403)
            and health is not None
            and health.status == 200
            and not health.body.strip()
        )
        if not (owned or locked):
            return None
        ver = str(body["version"])
        entries = models or []
        metrics = await self.get("/metrics")
        started = _start_time(metrics)
        facts = sorted(
            (
                str(e["id"]),
                _str(e.get("root")),
                e.get("max_model_len") if isinstance(e.get("max_model_len"), int) else None,
                _stable_created(e, v1) if v1 is not None else None,
            )
            for e in entries
        )
        fingerprint = _digest("vllm", ver, facts, started, self.base if started is None else "")
        ids = tuple(str(e["id"]) for e in entries)
        return Identity(self.base, HostKind.VLLM, ver, ids, fingerprint)

    def _generic(self, v1: _Answer | None, models: list[dict[str, Any]] | None) -> Identity | None:
        if v1 is None or models is None:
            return None
        facts = sorted(
            (str(e["id"]), _str(e.get("owned_by")), _stable_created(e, v1)) for e in models
        )
        ids = tuple(str(e["id"]) for e in models)
        return Identity(self.base, HostKind.OPENAI, "", ids, _digest("openai", facts))


def _is_loading(answer: _Answer) -> bool:
    body = answer.json()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return False
    return (
        error.get("type") == "unavailable_error" or "loading" in _str(error.get("message")).lower()
    )


def _start_time(answer: _Answer | None) -> float | None:
    if answer is None or answer.status != 200:
        return None
    match = _START_TIME.search(answer.body.decode("utf-8", "replace"))
    if match is None:
        return None
    try:
        value = float(match.group(1))
    except ValueError:
        return None
    return round(value, 2) if math.isfinite(value) else None


async def identify(
    client: httpx.AsyncClient,
    base_url: str,
    *,
    timeout: float = 2.0,  # noqa: ASYNC109 (the probe's own deadline, shared by its requests)
) -> Identity | None:
    """Probe one base URL; return what answers there, or None if nothing model-like does.

    ``client`` is used as given (its headers go with every request); ``timeout`` bounds the
    whole probe. Never raises, except CancelledError when the caller cancels.
    """
    return await _Probe(client, base_url, timeout).run()


async def identify_url(
    base_url: str,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 2.0,  # noqa: ASYNC109 (the probe's own deadline, shared by its requests)
) -> Identity | None:
    """:func:`identify` with a short-lived client of its own."""
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout)) as client:
        return await identify(client, base_url, timeout=timeout)
