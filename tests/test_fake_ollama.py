"""The fake Ollama server answers like the real one: routes, shapes, streams and faults."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from tests.fakes.ollama import (
    DEFAULT_CATALOG,
    DEFAULT_MODELS,
    CatalogEntry,
    FakeModel,
    FakeOllama,
    normalize_name,
    parse_go_duration,
    parse_keep_alive,
)

ROOT = Path(__file__).resolve().parents[1]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
                "note": {"type": "string"},
            },
            "required": ["city", "days", "metric"],
        },
    },
}
USER_HI = [{"role": "user", "content": "Hello there"}]


# --------------------------------------------------------------------------- helpers


class Clock:
    """A settable clock for ``FakeOllama.now``."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    server = FakeOllama("127.0.0.1", 0, pull_delay=0.0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(fake: FakeOllama) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=5) as c:
        yield c


@pytest.fixture
def clock(fake: FakeOllama) -> Clock:
    c = Clock(datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC))
    fake.now = c
    return c


def ndjson(data: bytes) -> list[dict[str, Any]]:
    """Parse an NDJSON body, checking the framing on the way."""
    assert data.endswith(b"\n")
    assert b"\n\n" not in data
    lines = data.decode().split("\n")[:-1]
    out = []
    for line in lines:
        assert line.strip() == line and line
        assert ": " not in line.split('"')[0]  # compact separators
        out.append(json.loads(line))
    return out


def stream(client: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with client.stream("POST", path, json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/x-ndjson"
        assert resp.headers["transfer-encoding"] == "chunked"
        data = b"".join(resp.iter_raw())
    return ndjson(data)


def read_until_error(
    client: httpx.Client, path: str, body: dict[str, Any]
) -> tuple[list[dict[str, Any]], Exception | None]:
    lines: list[dict[str, Any]] = []
    try:
        with client.stream("POST", path, json=body) as resp:
            for line in resp.iter_lines():
                lines.append(json.loads(line))
    except httpx.HTTPError as exc:
        return lines, exc
    return lines, None


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        event.wait(0.005)


def ps_names(client: httpx.Client) -> list[str]:
    return [m["name"] for m in client.get("/api/ps").json()["models"]]


# --------------------------------------------------------------------------- basics


def test_root_and_version(client: httpx.Client) -> None:
    r = client.get("/")
    assert (r.status_code, r.text) == (200, "Ollama is running")
    assert r.headers["content-type"].startswith("text/plain")
    h = client.head("/")
    assert h.status_code == 200 and h.content == b""
    assert h.headers["content-length"] == "17"
    v = client.get("/api/version")
    assert v.json() == {"version": "0.33.0"}
    assert v.headers["content-type"].startswith("application/json")
    assert client.head("/api/version").status_code == 200


def test_unknown_path_and_wrong_method(client: httpx.Client) -> None:
    r = client.get("/api/nope")
    assert (r.status_code, r.text) == (404, "404 page not found")
    assert r.headers["content-type"].startswith("text/plain")
    assert client.get("/api/chat").status_code == 405
    assert client.post("/api/tags", json={}).status_code == 405
    assert client.post("/api/delete", json={"model": "llama3.2"}).status_code == 405
    assert client.head("/api/ps").status_code == 405


def test_tags_shape_and_order(client: httpx.Client) -> None:
    models = client.get("/api/tags").json()["models"]
    names = [m["name"] for m in models]
    assert set(names) == {m.name for m in DEFAULT_MODELS}
    for m in models:
        assert m["model"] == m["name"]
        assert re.fullmatch(r"[0-9a-f]{64}", m["digest"])
        datetime.fromisoformat(m["modified_at"])
        assert m["details"]["format"] == "gguf"
        assert m["details"]["parent_model"] == ""
        assert m["details"]["families"]
        assert {"family", "parameter_size", "quantization_level"} <= m["details"].keys()
    stamps = [datetime.fromisoformat(m["modified_at"]) for m in models]
    assert stamps == sorted(stamps, reverse=True)
    llama = next(m for m in models if m["name"] == "llama3.2:latest")
    assert llama["size"] == 2019393189
    assert llama["details"]["family"] == "llama"
    nomic = next(m for m in models if m["name"] == "nomic-embed-text:latest")
    assert nomic["details"]["family"] == "nomic-bert"
    assert client.head("/api/tags").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/show"),
        ("POST", "/api/pull"),
        ("POST", "/api/copy"),
        ("POST", "/api/chat"),
        ("POST", "/api/generate"),
        ("POST", "/api/embed"),
        ("DELETE", "/api/delete"),
    ],
)
def test_missing_and_invalid_body(client: httpx.Client, method: str, path: str) -> None:
    r = client.request(method, path)
    assert r.status_code == 400
    assert r.json() == {"error": "missing request body"}
    r = client.request(method, path, content=b"{nope")
    assert r.status_code == 400
    assert isinstance(r.json()["error"], str) and r.json()["error"]
    r = client.request(method, path, content=b"[1, 2]")
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("POST", "/api/chat", 400, "model is required"),
        ("POST", "/api/show", 400, "model is required"),
        ("DELETE", "/api/delete", 400, "model is required"),
        ("POST", "/api/pull", 400, "invalid model name"),
        ("POST", "/api/generate", 404, "model '' not found"),
        ("POST", "/api/embed", 404, "model '' not found"),
    ],
)
def test_model_required(
    client: httpx.Client, method: str, path: str, status: int, error: str
) -> None:
    r = client.request(method, path, json={"model": ""})
    assert (r.status_code, r.json()) == (status, {"error": error})


def test_requests_are_logged(fake: FakeOllama, client: httpx.Client) -> None:
    client.post("/api/show", json={"model": "llama3.2"})
    client.get("/api/tags")
    assert fake.requests[-2:] == [
        ("POST", "/api/show", {"model": "llama3.2"}),
        ("GET", "/api/tags", None),
    ]


def test_only_loopback_addresses() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FakeOllama("0.0.0.0")
    with pytest.raises(ValueError, match="loopback"):
        FakeOllama("192.168.1.10")


def test_names_and_keep_alive_parsing() -> None:
    assert normalize_name("llama3.2") == "llama3.2:latest"
    assert normalize_name("registry.ollama.ai/library/qwen3:0.6b") == "qwen3:0.6b"
    assert normalize_name("hf.co/org/repo") == "hf.co/org/repo:latest"
    assert FakeModel("phi3").name == "phi3:latest"
    assert parse_go_duration("1h30m") == 5400
    assert parse_go_duration("300ms") == pytest.approx(0.3)
    assert parse_keep_alive(None) == 300
    assert parse_keep_alive("5m") == 300
    assert parse_keep_alive("10m") == 600
    assert parse_keep_alive("24h") == 86400
    assert parse_keep_alive(3600) == 3600
    assert parse_keep_alive(1.5) == 1.5
    assert parse_keep_alive(0) == 0
    assert parse_keep_alive("0") == 0
    assert parse_keep_alive(-1) == math.inf
    assert parse_keep_alive("-1m") == math.inf
    with pytest.raises(ValueError, match="invalid duration"):
        parse_keep_alive("soon")
    with pytest.raises(ValueError, match="missing unit"):
        parse_keep_alive("5")
    with pytest.raises(ValueError, match="Unsupported type"):
        parse_keep_alive(True)


def test_bad_keep_alive_is_400(client: httpx.Client) -> None:
    r = client.post("/api/generate", json={"model": "llama3.2", "keep_alive": "soon"})
    assert (r.status_code, r.json()) == (400, {"error": 'time: invalid duration "soon"'})


# --------------------------------------------------------------------------- show, delete, copy


def test_show(client: httpx.Client) -> None:
    r = client.post("/api/show", json={"model": "llama3.2"})
    assert r.status_code == 200
    body = r.json()
    assert {"modelfile", "parameters", "template", "details", "model_info", "capabilities"} <= (
        body.keys()
    )
    assert body["capabilities"] == ["completion", "tools"]
    info = body["model_info"]
    assert info["general.architecture"] == "llama"
    assert info["general.parameter_count"] == 3_200_000_000
    assert info["llama.context_length"] == 131072
    assert body["details"]["quantization_level"] == "Q4_K_M"
    datetime.fromisoformat(body["modified_at"])
    assert "FROM " in body["modelfile"]
    embed = client.post("/api/show", json={"name": "nomic-embed-text"}).json()
    assert embed["model_info"]["general.architecture"] == "nomic-bert"
    assert embed["capabilities"] == ["embedding"]
    vision = client.post("/api/show", json={"model": "llava:7b"}).json()
    assert "vision" in vision["capabilities"]
    assert vision["projector_info"]["clip.has_vision_encoder"] is True


def test_show_unknown(client: httpx.Client) -> None:
    r = client.post("/api/show", json={"model": "nope"})
    assert (r.status_code, r.json()) == (404, {"error": "model 'nope:latest' not found"})


def test_delete(fake: FakeOllama, client: httpx.Client) -> None:
    client.post("/api/generate", json={"model": "llama3.2"})
    assert ps_names(client) == ["llama3.2:latest"]
    r = client.request("DELETE", "/api/delete", json={"model": "llama3.2"})
    assert (r.status_code, r.content) == (200, b"")
    assert ps_names(client) == []
    assert "llama3.2:latest" not in fake.installed
    names = [m["name"] for m in client.get("/api/tags").json()["models"]]
    assert "llama3.2:latest" not in names
    r = client.request("DELETE", "/api/delete", json={"model": "llama3.2"})
    assert (r.status_code, r.json()) == (404, {"error": "model 'llama3.2' not found"})


def test_copy(fake: FakeOllama, client: httpx.Client) -> None:
    r = client.post("/api/copy", json={"source": "llama3.2", "destination": "my-llama"})
    assert (r.status_code, r.content) == (200, b"")
    models = {m["name"]: m for m in client.get("/api/tags").json()["models"]}
    assert models["my-llama:latest"]["digest"] == models["llama3.2:latest"]["digest"]
    r = client.post("/api/copy", json={"source": "nope", "destination": "x"})
    assert (r.status_code, r.json()) == (404, {"error": 'model "nope" not found'})


# --------------------------------------------------------------------------- load, unload, ps


def test_load_and_unload_with_generate(client: httpx.Client, clock: Clock) -> None:
    r = client.post("/api/generate", json={"model": "llama3.2"})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "llama3.2"
    assert body["response"] == ""
    assert (body["done"], body["done_reason"]) == (True, "load")
    datetime.fromisoformat(body["created_at"])
    (row,) = client.get("/api/ps").json()["models"]
    assert row["name"] == row["model"] == "llama3.2:latest"
    assert {"size", "digest", "details", "expires_at", "size_vram", "context_length"} <= (
        row.keys()
    )
    assert datetime.fromisoformat(row["expires_at"]) == clock() + timedelta(minutes=5)
    assert row["context_length"] == 4096
    r = client.post("/api/generate", json={"model": "llama3.2", "keep_alive": 0})
    assert r.json()["done_reason"] == "unload"
    assert r.json()["response"] == ""
    assert ps_names(client) == []


def test_load_and_unload_with_chat(fake: FakeOllama, client: httpx.Client) -> None:
    r = client.post("/api/chat", json={"model": "qwen3:0.6b", "messages": []})
    body = r.json()
    assert body["message"] == {"role": "assistant", "content": ""}
    assert (body["done"], body["done_reason"]) == (True, "load")
    assert fake.loaded_names() == ["qwen3:0.6b"]
    r = client.post("/api/chat", json={"model": "qwen3:0.6b", "keep_alive": "0"})
    assert r.json()["done_reason"] == "unload"
    assert fake.loaded_names() == []


def test_keep_alive_expiry_uses_the_clock(
    fake: FakeOllama, client: httpx.Client, clock: Clock
) -> None:
    client.post("/api/generate", json={"model": "llama3.2", "keep_alive": "1s"})
    client.post("/api/generate", json={"model": "qwen3:0.6b", "keep_alive": -1})
    client.post("/api/generate", json={"model": "llava:7b", "keep_alive": "1h30m"})
    rows = client.get("/api/ps").json()["models"]
    assert [r["name"] for r in rows] == ["qwen3:0.6b", "llava:7b", "llama3.2:latest"]
    assert rows[0]["expires_at"].startswith("23")  # "forever": about 292 years ahead
    assert rows[2]["expires_at"] == "2026-01-01T12:00:01Z"
    clock.advance(seconds=2)
    assert ps_names(client) == ["qwen3:0.6b", "llava:7b"]
    clock.advance(hours=2)
    assert ps_names(client) == ["qwen3:0.6b"]
    clock.advance(days=365 * 100)
    assert fake.loaded_names() == ["qwen3:0.6b"]


def test_chat_refreshes_expiry_and_keep_alive_zero_unloads_after(
    client: httpx.Client, clock: Clock
) -> None:
    client.post("/api/chat", json={"model": "llama3.2", "messages": USER_HI, "stream": False})
    (row,) = client.get("/api/ps").json()["models"]
    assert datetime.fromisoformat(row["expires_at"]) == clock() + timedelta(minutes=5)
    r = client.post(
        "/api/chat",
        json={"model": "llama3.2", "messages": USER_HI, "stream": False, "keep_alive": 0},
    )
    assert r.json()["message"]["content"]
    assert ps_names(client) == []


def test_vram_split() -> None:
    with FakeOllama(vram_bytes=3 * 2**30) as fake, httpx.Client(base_url=fake.url) as c:
        for name in ("llama3.2", "llava:7b", "qwen3:0.6b"):
            c.post("/api/generate", json={"model": name, "keep_alive": -1})
        rows = {r["name"]: r for r in c.get("/api/ps").json()["models"]}
        assert rows["llama3.2:latest"]["size_vram"] == rows["llama3.2:latest"]["size"]
        llava = rows["llava:7b"]
        assert llava["size_vram"] == 3 * 2**30 - 2019393189
        assert 0 < llava["size_vram"] < llava["size"]
        assert rows["qwen3:0.6b"]["size_vram"] == 0
    with FakeOllama(vram_bytes=0) as fake, httpx.Client(base_url=fake.url) as c:
        c.post("/api/generate", json={"model": "llama3.2"})
        assert c.get("/api/ps").json()["models"][0]["size_vram"] == 0


def test_num_ctx_sets_ps_context_length(client: httpx.Client) -> None:
    client.post("/api/generate", json={"model": "llama3.2", "options": {"num_ctx": 8192}})
    assert client.get("/api/ps").json()["models"][0]["context_length"] == 8192


# --------------------------------------------------------------------------- chat and generate


def test_chat_stream(fake: FakeOllama, client: httpx.Client) -> None:
    lines = stream(client, "/api/chat", {"model": "llama3.2", "messages": USER_HI})
    *tokens, final = lines
    assert all(line["done"] is False for line in tokens)
    assert tokens[0]["message"] == {"role": "assistant", "content": "The"}
    assert tokens[1]["message"]["content"] == " quick"
    assert "".join(t["message"]["content"] for t in tokens) == fake.chat_reply
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["message"] == {"role": "assistant", "content": ""}
    assert final["model"] == "llama3.2"
    for key in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration"):
        assert final[key] > 0
    assert final["eval_count"] == len(tokens)
    assert final["eval_duration"] > 0
    assert "context" not in final
    assert fake.loaded_names() == ["llama3.2:latest"]


def test_chat_not_streamed(fake: FakeOllama, client: httpx.Client) -> None:
    r = client.post("/api/chat", json={"model": "llama3.2", "messages": USER_HI, "stream": False})
    assert r.headers["content-type"].startswith("application/json")
    assert "content-length" in r.headers
    body = r.json()
    assert body["message"] == {"role": "assistant", "content": fake.chat_reply}
    assert (body["done"], body["done_reason"]) == (True, "stop")
    assert body["eval_count"] == 9


def test_zero_metrics_are_left_out(client: httpx.Client) -> None:
    body = client.post(
        "/api/chat",
        json={
            "model": "llama3.2",
            "messages": USER_HI,
            "stream": False,
            "options": {"num_predict": 0},
        },
    ).json()
    assert body["done_reason"] == "length"
    assert body["message"]["content"] == ""
    assert "eval_count" not in body and "eval_duration" not in body
    assert body["prompt_eval_count"] > 0


def test_num_predict_limits_tokens(client: httpx.Client) -> None:
    lines = stream(
        client,
        "/api/chat",
        {"model": "llama3.2", "messages": USER_HI, "options": {"num_predict": 3}},
    )
    assert "".join(line["message"]["content"] for line in lines) == "The quick brown"
    assert lines[-1]["done_reason"] == "length"
    assert lines[-1]["eval_count"] == 3


def test_generate_stream_and_context(fake: FakeOllama, client: httpx.Client) -> None:
    lines = stream(client, "/api/generate", {"model": "llama3.2", "prompt": "Why is the sky blue?"})
    *tokens, final = lines
    assert "".join(t["response"] for t in tokens) == fake.chat_reply
    assert all("message" not in t for t in lines)
    assert final["response"] == "" and final["done_reason"] == "stop"
    assert isinstance(final["context"], list) and final["context"]
    assert all(isinstance(t, int) for t in final["context"])
    body = client.post(
        "/api/generate", json={"model": "llama3.2", "prompt": "hi", "stream": False}
    ).json()
    assert body["response"] == fake.chat_reply
    assert body["context"]


def test_unknown_model_for_inference(client: httpx.Client) -> None:
    for path, body in (
        ("/api/chat", {"model": "nope", "messages": USER_HI}),
        ("/api/generate", {"model": "nope", "prompt": "hi"}),
    ):
        r = client.post(path, json=body)
        assert (r.status_code, r.json()) == (404, {"error": "model 'nope' not found"})
    r = client.post("/api/embed", json={"model": "nope", "input": "x"})
    assert r.status_code == 404
    assert r.json() == {"error": 'model "nope" not found, try pulling it first'}


def test_names_are_normalised(client: httpx.Client) -> None:
    r = client.post(
        "/api/chat", json={"model": "LLAMA3.2:Latest", "messages": USER_HI, "stream": False}
    )
    assert r.status_code == 200
    assert r.json()["model"] == "LLAMA3.2:Latest"  # echoed as given, like Ollama
    assert ps_names(client) == ["llama3.2:latest"]


def test_thinking(fake: FakeOllama, client: httpx.Client) -> None:
    lines = stream(client, "/api/chat", {"model": "qwen3:0.6b", "messages": USER_HI, "think": True})
    thinking = [line for line in lines if line["message"].get("thinking")]
    content = [line for line in lines if line["message"]["content"]]
    assert thinking and content
    assert lines.index(thinking[-1]) < lines.index(content[0])
    assert "".join(t["message"]["thinking"] for t in thinking) == fake.thinking_reply
    assert all(t["message"]["content"] == "" for t in thinking)
    off = client.post(
        "/api/chat",
        json={"model": "qwen3:0.6b", "messages": USER_HI, "think": False, "stream": False},
    ).json()
    assert "thinking" not in off["message"]
    gen = client.post(
        "/api/generate",
        json={"model": "qwen3:0.6b", "prompt": "hi", "think": "high", "stream": False},
    ).json()
    assert gen["thinking"] == fake.thinking_reply
    assert gen["response"] == fake.chat_reply


def test_thinking_not_supported(client: httpx.Client) -> None:
    for think in (True, "low"):
        r = client.post(
            "/api/chat", json={"model": "llama3.2", "messages": USER_HI, "think": think}
        )
        assert r.status_code == 400
        assert r.json() == {"error": '"llama3.2" does not support thinking'}
    r = client.post("/api/generate", json={"model": "llava:7b", "prompt": "x", "think": True})
    assert r.json() == {"error": '"llava:7b" does not support thinking'}
    r = client.post("/api/chat", json={"model": "qwen3:0.6b", "messages": [], "think": "lots"})
    assert r.status_code == 400


def test_embedding_model_cannot_chat(client: httpx.Client) -> None:
    r = client.post("/api/chat", json={"model": "nomic-embed-text", "messages": USER_HI})
    assert (r.status_code, r.json()) == (
        400,
        {"error": '"nomic-embed-text" does not support chat'},
    )


def test_tool_call(client: httpx.Client) -> None:
    lines = stream(
        client,
        "/api/chat",
        {"model": "llama3.2", "messages": USER_HI, "tools": [WEATHER_TOOL]},
    )
    call_chunk, final = lines
    assert call_chunk["done"] is False
    message = call_chunk["message"]
    assert message["role"] == "assistant" and message["content"] == ""
    (call,) = message["tool_calls"]
    assert re.fullmatch(r"call_[a-z0-9]{8}", call["id"])
    assert call["function"] == {
        "index": 0,
        "name": "get_weather",
        "arguments": {"city": "test", "days": 1, "metric": True},
    }
    assert final["done"] is True and final["done_reason"] == "stop"
    followup = [
        *USER_HI,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "11 degrees celsius", "tool_name": "get_weather"},
    ]
    body = client.post(
        "/api/chat",
        json={"model": "llama3.2", "messages": followup, "tools": [WEATHER_TOOL], "stream": False},
    ).json()
    assert "11 degrees celsius" in body["message"]["content"]
    assert "tool_calls" not in body["message"]


def test_tools_not_supported(client: httpx.Client) -> None:
    r = client.post(
        "/api/chat", json={"model": "llava:7b", "messages": USER_HI, "tools": [WEATHER_TOOL]}
    )
    assert r.status_code == 400
    assert r.json() == {"error": "registry.ollama.ai/library/llava:7b does not support tools"}
    assert r.json()["error"].endswith("does not support tools")


# --------------------------------------------------------------------------- embed


def test_embed(client: httpx.Client) -> None:
    body = client.post("/api/embed", json={"model": "nomic-embed-text", "input": "hello"}).json()
    assert body["model"] == "nomic-embed-text"
    (vector,) = body["embeddings"]
    assert len(vector) == 768
    assert sum(v * v for v in vector) == pytest.approx(1.0, abs=1e-4)
    for key in ("total_duration", "load_duration", "prompt_eval_count"):
        assert body[key] > 0
    two = client.post(
        "/api/embed", json={"model": "nomic-embed-text", "input": ["hello", "world"]}
    ).json()["embeddings"]
    assert len(two) == 2 and two[0] == vector and two[1] != vector
    small = client.post(
        "/api/embed", json={"model": "nomic-embed-text", "input": "x", "dimensions": 64}
    ).json()["embeddings"][0]
    assert len(small) == 64
    r = client.post("/api/embed", json={"model": "llama3.2", "input": "hello"})
    assert (r.status_code, r.json()) == (400, {"error": '"llama3.2" does not support embeddings'})
    r = client.post("/api/embed", json={"model": "nomic-embed-text", "input": 5})
    assert (r.status_code, r.json()) == (400, {"error": "invalid input type"})


# --------------------------------------------------------------------------- pull


def test_pull_progress(fake: FakeOllama, client: httpx.Client) -> None:
    assert "tinyllama:latest" not in fake.installed
    entry = next(e for e in DEFAULT_CATALOG if e.name == "tinyllama:latest")
    lines = stream(client, "/api/pull", {"model": "tinyllama"})
    statuses = [line["status"] for line in lines]
    assert statuses[0] == "pulling manifest"
    assert statuses[-4:] == [
        "verifying sha256 digest",
        "writing manifest",
        "removing any unused layers",
        "success",
    ]
    progress = lines[1:-4]
    assert len(progress) == len(entry.layers) * fake.pull_steps
    for index, (digest, total) in enumerate(entry.layers):
        layer = progress[index * fake.pull_steps : (index + 1) * fake.pull_steps]
        assert all(p["digest"] == digest and p["total"] == total for p in layer)
        assert all(p["status"] == f"pulling {digest[7:19]}" for p in layer)
        assert "completed" not in layer[0]
        done = [p["completed"] for p in layer[1:]]
        assert done == sorted(done) and done[-1] == total
    assert "tinyllama:latest" in fake.installed
    names = [m["name"] for m in client.get("/api/tags").json()["models"]]
    assert names[0] == "tinyllama:latest"  # just modified: listed first


def test_pull_unknown_model_reports_error_line_with_200(client: httpx.Client) -> None:
    lines = stream(client, "/api/pull", {"model": "does-not-exist"})
    assert lines == [
        {"status": "pulling manifest"},
        {"error": "pull model manifest: file does not exist"},
    ]


def test_pull_not_streamed(fake: FakeOllama, client: httpx.Client) -> None:
    r = client.post("/api/pull", json={"model": "smollm2:135m", "stream": False})
    assert (r.status_code, r.json()) == (200, {"status": "success"})
    assert "smollm2:135m" in fake.installed
    r = client.post("/api/pull", json={"model": "does-not-exist", "stream": False})
    assert (r.status_code, r.json()) == (
        500,
        {"error": "pull model manifest: file does not exist"},
    )


def test_pull_installed_model_is_quick(client: httpx.Client) -> None:
    lines = stream(client, "/api/pull", {"model": "llama3.2"})
    progress = [line for line in lines if "digest" in line]
    assert progress
    assert all(p["completed"] == p["total"] for p in progress)
    assert len({p["digest"] for p in progress}) == len(progress)
    assert lines[-1] == {"status": "success"}


def test_pull_resumes_after_interruption(fake: FakeOllama, client: httpx.Client) -> None:
    entry = CatalogEntry(
        name="resume-me", layers=[("sha256:" + "ab" * 32, 7000), ("sha256:" + "cd" * 32, 70)]
    )
    fake.set_catalog([entry])
    fake.faults.drop_after = 3  # manifest, layer 1 at 0, layer 1 at 1000: then the cut
    lines, error = read_until_error(client, "/api/pull", {"model": "resume-me"})
    assert isinstance(error, httpx.RemoteProtocolError)
    assert len(lines) == 3 and lines[-1]["completed"] == 1000
    assert "resume-me:latest" not in fake.installed
    fake.faults.drop_after = None
    lines = stream(client, "/api/pull", {"model": "resume-me"})
    first = next(line for line in lines if line.get("digest") == entry.layers[0][0])
    assert first["completed"] == 1000
    assert lines[-1] == {"status": "success"}
    assert "resume-me:latest" in fake.installed


def test_delete_then_pull_back(fake: FakeOllama, client: httpx.Client) -> None:
    client.request("DELETE", "/api/delete", json={"model": "qwen3:0.6b"})
    lines = stream(client, "/api/pull", {"model": "qwen3:0.6b"})
    assert lines[-1] == {"status": "success"}
    assert any("completed" not in line for line in lines if "digest" in line)
    assert fake.installed["qwen3:0.6b"].capabilities == ["completion", "tools", "thinking"]


# --------------------------------------------------------------------------- faults


def test_drop_after_cuts_a_chat_stream(fake: FakeOllama, client: httpx.Client) -> None:
    fake.faults.drop_after = 2
    lines, error = read_until_error(client, "/api/chat", {"model": "llama3.2", "messages": USER_HI})
    assert isinstance(error, httpx.RemoteProtocolError)
    assert [line["message"]["content"] for line in lines] == ["The", " quick"]
    fake.faults.drop_after = None
    assert client.get("/api/version").status_code == 200


def test_fail_status_with_paths(fake: FakeOllama, client: httpx.Client) -> None:
    fake.faults.fail_status = 503
    r = client.get("/api/tags")
    assert (r.status_code, r.json()) == (503, {"error": "fake failure 503"})
    assert client.get("/").status_code == 200  # only /api/* fails
    fake.faults.paths = {"/api/ps"}
    assert client.get("/api/tags").status_code == 200
    assert client.get("/api/ps").status_code == 503
    fake.faults.fail_status = None
    assert client.get("/api/ps").status_code == 200


def test_latency(fake: FakeOllama, client: httpx.Client) -> None:
    fake.faults.latency = 0.15
    started = time.monotonic()
    assert client.get("/api/version").status_code == 200
    assert time.monotonic() - started >= 0.15


def test_token_delay_spaces_out_lines(fake: FakeOllama, client: httpx.Client) -> None:
    fake.faults.token_delay = 0.02
    started = time.monotonic()
    lines = stream(client, "/api/chat", {"model": "llama3.2", "messages": USER_HI})
    assert time.monotonic() - started >= 0.02 * (len(lines) - 1)


def test_hang_then_stop_is_quick() -> None:
    fake = FakeOllama().start()
    fake.faults.hang = True
    with httpx.Client(base_url=fake.url, timeout=httpx.Timeout(0.3)) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.get("/api/tags")
        started = time.monotonic()
        fake.stop()
        assert time.monotonic() - started < 1.0
        with pytest.raises(httpx.ConnectError):
            c.get("/api/tags")
    fake.stop()  # idempotent


def test_stop_with_an_open_stream_is_quick() -> None:
    fake = FakeOllama().start()
    fake.faults.token_delay = 30
    with (
        httpx.Client(base_url=fake.url, timeout=5) as c,
        c.stream("POST", "/api/chat", json={"model": "llama3.2", "messages": USER_HI}) as r,
    ):
        lines = r.iter_lines()
        assert json.loads(next(lines))["message"]["content"] == "The"
        started = time.monotonic()
        fake.stop()
        assert time.monotonic() - started < 1.0
        with pytest.raises(httpx.RemoteProtocolError):
            list(lines)


def test_client_disconnect_is_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    fake = FakeOllama().start()
    fake.faults.token_delay = 0.005
    with (
        httpx.Client(base_url=fake.url, timeout=5) as c,
        c.stream("POST", "/api/chat", json={"model": "llama3.2", "messages": USER_HI}) as r,
    ):
        next(r.iter_lines())
    # The handler notices the closed socket on its next writes and ends quietly.
    wait_until(lambda: not fake._conns)
    fake.stop()
    assert capfd.readouterr().err == ""


def test_two_instances_on_lan_like_addresses() -> None:
    with (
        FakeOllama("127.0.0.2") as a,
        FakeOllama("127.0.0.3", models=["llama3.2", FakeModel("mistral:7b")]) as b,
    ):
        assert a.url.startswith("http://127.0.0.2:") and b.url.startswith("http://127.0.0.3:")
        names_a = {m["name"] for m in httpx.get(f"{a.url}/api/tags").json()["models"]}
        names_b = {m["name"] for m in httpx.get(f"{b.url}/api/tags").json()["models"]}
        assert names_a == {m.name for m in DEFAULT_MODELS}
        assert names_b == {"llama3.2:latest", "mistral:7b"}
        httpx.post(f"{b.url}/api/generate", json={"model": "mistral:7b"})
        assert b.loaded_names() == ["mistral:7b"] and a.loaded_names() == []


def test_command_line() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.ollama",
            "--port",
            "0",
            "--models",
            "llama3.2,qwen3:0.6b",
            "--version",
            "9.9.9",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert httpx.get(f"{url}/api/version", timeout=5).json() == {"version": "9.9.9"}
        names = {m["name"] for m in httpx.get(f"{url}/api/tags", timeout=5).json()["models"]}
        assert names == {"llama3.2:latest", "qwen3:0.6b"}
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    if sys.platform != "win32":
        assert proc.returncode == 0


# --------------------------------------------------------------------------- the ollama client


def _async_client(fake: FakeOllama) -> ollama.AsyncClient:
    return ollama.AsyncClient(host=fake.url, timeout=httpx.Timeout(5))


async def test_ollama_client_list_show_ps(fake: FakeOllama) -> None:
    async with _async_client(fake) as c:
        listed = await c.list()
        assert {m.model for m in listed.models} == {m.name for m in DEFAULT_MODELS}
        shown = await c.show("llama3.2")
        assert shown.modelinfo is not None
        assert shown.modelinfo["general.architecture"] == "llama"
        assert shown.capabilities == ["completion", "tools"]
        await c.generate(model="llama3.2", keep_alive="10m")
        ps = await c.ps()
        assert [m.model for m in ps.models] == ["llama3.2:latest"]
        assert ps.models[0].expires_at is not None
        assert ps.models[0].size_vram == ps.models[0].size


async def test_ollama_client_chat_stream_and_tools(fake: FakeOllama) -> None:
    async with _async_client(fake) as c:
        parts = [p async for p in await c.chat(model="qwen3:0.6b", messages=USER_HI, stream=True)]
        assert "".join(p.message.content or "" for p in parts) == fake.chat_reply
        assert "".join(p.message.thinking or "" for p in parts) == fake.thinking_reply
        assert parts[-1].done and parts[-1].eval_count
        reply = await c.chat(model="llama3.2", messages=USER_HI, tools=[WEATHER_TOOL])
        (call,) = reply.message.tool_calls or []
        assert call.function.name == "get_weather"
        assert call.function.arguments == {"city": "test", "days": 1, "metric": True}


async def test_ollama_client_pull_and_errors(fake: FakeOllama) -> None:
    async with _async_client(fake) as c:
        statuses = [p.status async for p in await c.pull("smollm2:135m", stream=True)]
        assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
        with pytest.raises(ollama.ResponseError) as info:
            async for _ in await c.pull("does-not-exist", stream=True):
                pass
        assert info.value.status_code == -1
        assert "file does not exist" in info.value.error
        with pytest.raises(ollama.ResponseError) as info:
            await c.delete("nope")
        assert info.value.status_code == 404
        with pytest.raises(ollama.ResponseError) as info:
            await c.chat(model="llava:7b", messages=USER_HI, tools=[WEATHER_TOOL])
        assert info.value.status_code == 400
        assert info.value.error.endswith("does not support tools")
