"""Corral's OpenAI-compatible host against the fake server of every flavor, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.core.errors import (
    BadResponse,
    CapabilityMissing,
    HostRequestFailed,
    HostTimeout,
    HostUnreachable,
    InvalidInput,
    ModelNotFound,
    StreamInterrupted,
)
from app.core.hosts.base import (
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ContentChunk,
    FinalChunk,
    Host,
    HostConfig,
    HostKind,
    ThinkingChunk,
    Timeouts,
    ToolCall,
    ToolCallChunk,
)
from app.core.hosts.openai import OpenAIHost, SseParser
from tests.fakes.openai_server import FakeOpenAI, Flavor
from tests.support.tools import WEATHER_TOOL
from tests.support.waiting import wait_for

KINDS: dict[Flavor, HostKind] = {
    "llamacpp": HostKind.LLAMACPP,
    "lmstudio": HostKind.LMSTUDIO,
    "vllm": HostKind.VLLM,
    "generic": HostKind.OPENAI,
}
FLAVORS = list(KINDS)


# -- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[Callable[..., FakeOpenAI]]:
    """Start fakes on 127.0.0.3; all are stopped at the end of the test."""
    started: list[FakeOpenAI] = []

    def start(flavor: Flavor = "llamacpp", **kw: Any) -> FakeOpenAI:
        fake = FakeOpenAI("127.0.0.3", flavor=flavor, **kw).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
async def hosts() -> AsyncIterator[Callable[..., OpenAIHost]]:
    made: list[OpenAIHost] = []

    def make(url: str, kind: HostKind, **timeouts: float) -> OpenAIHost:
        host = OpenAIHost(HostConfig("t", "Test host", url, kind), timeouts=Timeouts(**timeouts))
        made.append(host)
        return host

    yield make
    for host in made:
        await host.aclose()


def host_for(
    servers: Callable[..., FakeOpenAI],
    hosts: Callable[..., OpenAIHost],
    flavor: Flavor,
    **kw: Any,
) -> tuple[FakeOpenAI, OpenAIHost]:
    fake = servers(flavor, **kw)
    return fake, hosts(fake.url, KINDS[flavor])


def ask(model: str, text: str = "Hello", **kw: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=(ChatMessage("user", text),), **kw)


async def collect(host: OpenAIHost, request: ChatRequest) -> list[ChatChunk]:
    return [chunk async for chunk in host.chat(request)]


def text_of(chunks: list[ChatChunk]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, ContentChunk))


def sent_chat(fake: FakeOpenAI) -> dict[str, Any]:
    body = [b for m, p, b in fake.requests if p == "/v1/chat/completions"][-1]
    assert body is not None
    return body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


@pytest.fixture
def raw_server() -> Iterator[Callable[[bytes, str], str]]:
    """A server that answers every request with fixed bytes (for malformed replies)."""
    running: list[ThreadingHTTPServer] = []

    def start(body: bytes, content_type: str = "text/event-stream") -> str:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes

            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _reply

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.9", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
        running.append(server)
        return f"http://127.0.0.9:{server.server_address[1]}"

    yield start
    for server in running:
        server.shutdown()
        server.server_close()


def sse(*events: object) -> bytes:
    return b"".join(
        b"data: " + (e.encode() if isinstance(e, str) else json.dumps(e).encode()) + b"\n\n"
        for e in events
    )


def delta(**fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


def finish(reason: str = "stop") -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


# -- the protocol -------------------------------------------------------------------------


def test_is_a_host_and_refuses_the_ollama_kind() -> None:
    host = OpenAIHost(HostConfig("t", "T", "http://127.0.0.1:1", HostKind.VLLM))
    assert isinstance(host, Host)
    with pytest.raises(InvalidInput):
        OpenAIHost(HostConfig("t", "T", "http://127.0.0.1:1", HostKind.OLLAMA))


# -- health, version, models --------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_health_is_online_with_version_and_rtt(
    flavor: Flavor, servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    _fake, host = host_for(servers, hosts, flavor)
    health = await host.health()
    assert health.online and health.error is None
    assert health.version == {"llamacpp": "b6000-abcdef", "vllm": "0.11.0"}.get(flavor, "")
    assert health.rtt_ms is not None and 0 < health.rtt_ms < 5000
    assert await host.version() == health.version
    assert host.in_flight == 0


async def test_llamacpp_loading_is_offline_with_a_reason(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, "llamacpp")
    fake.loading = True
    health = await host.health()
    assert not health.online and health.error == "loading model"
    with pytest.raises(HostRequestFailed, match="still loading") as info:
        await host.list_models()
    assert info.value.status == 503
    fake.loading = False
    assert (await host.health()).online


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_list_models(
    flavor: Flavor, servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, flavor)
    models = await host.list_models()
    assert [m.name for m in models] == fake.models
    first = models[0]
    if flavor == "llamacpp":
        assert first.size > 0 and first.quantization == "Q4_K_M" and first.format == "gguf"
        assert first.parameter_size == "268.10M"
    elif flavor == "lmstudio":
        assert first.family == "qwen2" and first.quantization == "Q4_K_M"
        assert first.format == "gguf" and first.size == 0
    else:
        assert first.size == 0


@pytest.mark.parametrize(
    ("flavor", "expected"),
    [
        ("llamacpp", ["gemma-3-270m-it"]),
        ("lmstudio", ["qwen2.5-7b-instruct"]),
        ("vllm", ["Qwen/Qwen2.5-1.5B-Instruct"]),
        ("generic", ["local-model"]),
    ],
)
async def test_running_models(
    flavor: Flavor,
    expected: list[str],
    servers: Callable[..., FakeOpenAI],
    hosts: Callable[..., OpenAIHost],
) -> None:
    fake, host = host_for(servers, hosts, flavor)
    running = await host.running_models()
    assert [r.name for r in running] == expected
    if flavor == "llamacpp":
        assert running[0].size > 0 and running[0].context_length == fake.n_ctx
    if flavor == "vllm":
        assert running[0].context_length == fake.n_ctx


async def test_lmstudio_running_follows_just_in_time_loading(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    _fake, host = host_for(servers, hosts, "lmstudio")
    await collect(host, ask("llama-3.2-3b-instruct"))
    assert {r.name for r in await host.running_models()} == {
        "qwen2.5-7b-instruct",
        "llama-3.2-3b-instruct",
    }


# -- capabilities, load and unload --------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_capabilities_say_why_not(
    flavor: Flavor, servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, flavor)
    await host.list_models()
    caps = host.capabilities
    assert not (caps.pull or caps.delete or caps.copy or caps.load or caps.unload)
    assert caps.why_not("pull") == "Pulling models works on Ollama hosts only."
    assert caps.why_not("delete") == "Deleting models works on Ollama hosts only."
    assert caps.why_not("copy") == "Copying models works on Ollama hosts only."
    reason = caps.why_not("load")
    assert reason and reason == caps.why_not("unload")
    if flavor == "llamacpp":
        assert reason == (
            "This llama.cpp server runs one model; "
            "start it in router mode to load and unload models."
        )
    with pytest.raises(CapabilityMissing) as info:
        await host.load(fake.models[0])
    assert info.value.capability == "load" and info.value.message == reason
    with pytest.raises(CapabilityMissing) as info:
        await host.unload(fake.models[0])
    assert info.value.capability == "unload"
    with pytest.raises(CapabilityMissing) as info:
        async for _ in host.pull("anything"):
            pass
    assert info.value.capability == "pull"
    with pytest.raises(CapabilityMissing):
        await host.delete(fake.models[0])
    with pytest.raises(CapabilityMissing):
        await host.copy(fake.models[0], "copy")
    assert host.in_flight == 0
    assert not any(p.startswith("/models/") for _, p, _ in fake.requests)


async def test_router_mode_loads_and_unloads(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, "llamacpp", router=True)
    assert host.capabilities.load is False  # not known before the first call
    assert [m.name for m in await host.list_models()] == fake.models
    caps = host.capabilities
    assert caps.load and caps.unload and caps.why_not("load") is None
    assert await host.running_models() == []

    await host.load("qwen3-0.6b")
    assert fake.loaded == {"qwen3-0.6b"}
    running = await host.running_models()
    assert [r.name for r in running] == ["qwen3-0.6b"]

    await host.load("gemma-3-270m-it")
    await host.unload("qwen3-0.6b")
    assert [r.name for r in await host.running_models()] == ["gemma-3-270m-it"]

    with pytest.raises(ModelNotFound) as info:
        await host.load("nope")
    assert info.value.model == "nope"
    with pytest.raises(InvalidInput):
        await host.load("  ")


async def test_router_mode_is_also_found_by_health(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    _fake, host = host_for(servers, hosts, "llamacpp", router=True)
    assert (await host.health()).online
    assert host.router is True and host.capabilities.load


async def test_router_chat_loads_the_model(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, "llamacpp", router=True)
    assert text_of(await collect(host, ask("qwen3-0.6b"))) == fake.reply
    assert [r.name for r in await host.running_models()] == ["qwen3-0.6b"]


# -- show ---------------------------------------------------------------------------------


async def test_show_llamacpp(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, "llamacpp")
    detail = await host.show(fake.models[0])
    assert detail.template.startswith("{{ bos_token }}")
    assert detail.context_length == fake.n_ctx
    assert detail.format == "gguf" and detail.quantization == "Q4_K_M"
    assert "temperature 0.8" in detail.parameters
    assert detail.model_info["general.path"] == fake.model_path
    with pytest.raises(ModelNotFound):
        await host.show("other-model")


async def test_show_lmstudio_and_vllm(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    _lms, lms_host = host_for(servers, hosts, "lmstudio")
    detail = await lms_host.show("llama-3.2-3b-instruct")
    assert detail.family == "llama" and detail.context_length == 131072
    assert detail.capabilities == ("completion",)
    embed = await lms_host.show("text-embedding-nomic-embed-text-v1.5")
    assert embed.capabilities == ("embedding",)
    with pytest.raises(ModelNotFound):
        await lms_host.show("nope")

    vllm, vllm_host = host_for(servers, hosts, "vllm")
    detail = await vllm_host.show(vllm.models[0])
    assert detail.context_length == vllm.n_ctx
    with pytest.raises(ModelNotFound):
        await vllm_host.show("nope")


# -- chat ---------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_reply_streams_in_order_with_final_stats(
    flavor: Flavor, servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, flavor)
    chunks = await collect(host, ask(fake.models[0]))
    assert text_of(chunks) == fake.reply
    assert sum(isinstance(c, ContentChunk) for c in chunks) > 3  # token by token
    assert all(not isinstance(c, FinalChunk) for c in chunks[:-1])
    final = chunks[-1]
    assert isinstance(final, FinalChunk)
    s = final.stats
    assert s.done_reason == "stop"
    assert s.prompt_tokens and s.output_tokens == 9  # from usage
    assert s.time_to_first_token_ms is not None and s.total_ms is not None
    assert 0 <= s.time_to_first_token_ms <= s.total_ms
    if flavor == "llamacpp":
        assert s.tokens_per_s and s.tokens_per_s > 0
        assert s.prompt_tokens_per_s and s.prompt_tokens_per_s > 0
    else:
        assert s.tokens_per_s is None  # only llama.cpp reports its speed
    body = sent_chat(fake)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert host.in_flight == 0


async def test_timings_give_token_counts_when_usage_is_missing(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost], raw_server: Any
) -> None:
    url = raw_server(
        sse(
            delta(role="assistant", content=None),
            delta(content="Hi"),
            {**finish(), "timings": {"prompt_n": 7, "predicted_n": 1, "predicted_per_second": 5.0}},
            "[DONE]",
        )
    )
    host = hosts(url, HostKind.LLAMACPP)
    final = (await collect(host, ask("m")))[-1]
    assert isinstance(final, FinalChunk)
    assert final.stats.prompt_tokens == 7 and final.stats.output_tokens == 1
    assert final.stats.tokens_per_s == 5.0


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_comes_first_as_thinking(
    field: str, servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, "vllm", reasoning="Let me think about that.")
    fake.reasoning_field = field
    chunks = await collect(host, ask(fake.models[0]))
    kinds = [type(c).__name__ for c in chunks]
    assert kinds.index("ThinkingChunk") < kinds.index("ContentChunk")
    thinking = "".join(c.text for c in chunks if isinstance(c, ThinkingChunk))
    assert thinking == "Let me think about that."
    assert text_of(chunks) == fake.reply


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_tool_call_is_assembled_from_fragments(
    flavor: Flavor, servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, flavor)
    chunks = await collect(host, ask(fake.models[0], "Weather?", tools=(WEATHER_TOOL,)))
    calls = [c.call for c in chunks if isinstance(c, ToolCallChunk)]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and call.arguments == {"city": "test"}
    assert call.id.startswith("call_")
    final = chunks[-1]
    assert isinstance(final, FinalChunk) and final.stats.done_reason == "tool_calls"
    sent = sent_chat(fake)["tools"][0]["function"]["parameters"]["properties"]
    assert sent["city"]["default"] == "Oslo" and "anyOf" in sent["units"]  # nothing dropped


async def test_tool_call_with_broken_arguments_is_a_bad_response(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, "llamacpp")
    fake.tool_arguments = '{"city": "Os'
    with pytest.raises(BadResponse, match=r"get_weather.*not valid JSON") as info:
        await collect(host, ask(fake.models[0], tools=(WEATHER_TOOL,)))
    assert isinstance(info.value.__cause__, json.JSONDecodeError)
    fake.tool_arguments = "[1, 2]"
    with pytest.raises(BadResponse, match="not a JSON object"):
        await collect(host, ask(fake.models[0], tools=(WEATHER_TOOL,)))


async def test_conversation_with_tool_results_is_sent_the_openai_way(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, "llamacpp")
    call = ToolCall(name="get_weather", arguments={"city": "Oslo"}, id="call_abc")
    request = ChatRequest(
        model=fake.models[0],
        messages=(
            ChatMessage("system", "Be brief."),
            ChatMessage("user", "Weather?"),
            ChatMessage("assistant", "", thinking="hm", tool_calls=(call,)),
            ChatMessage("tool", "Sunny, 21 C", tool_name="get_weather", tool_call_id="call_abc"),
        ),
        tools=(WEATHER_TOOL,),
        options={"temperature": 0.2, "top_k": 20, "num_predict": 64, "num_ctx": 8192, "seed": 7},
    )
    chunks = await collect(host, request)
    assert text_of(chunks) == "The tool returned: Sunny, 21 C"
    body = sent_chat(fake)
    assert body["messages"][2] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_abc",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }
    assert body["messages"][3] == {
        "role": "tool",
        "content": "Sunny, 21 C",
        "tool_call_id": "call_abc",
        "name": "get_weather",
    }
    assert body["temperature"] == 0.2 and body["top_k"] == 20 and body["seed"] == 7
    assert body["max_tokens"] == 64 and "num_ctx" not in body and "options" not in body


async def test_options_only_go_where_the_server_takes_them(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, "lmstudio")
    await collect(host, ask(fake.models[0], options={"top_k": 20, "top_p": 0.9, "num_ctx": 4}))
    body = sent_chat(fake)
    assert body["top_p"] == 0.9 and "top_k" not in body and "num_ctx" not in body


async def test_think_is_passed_the_way_each_server_takes_it(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, "llamacpp")
    await collect(host, ask(fake.models[0], think=False))
    assert sent_chat(fake)["chat_template_kwargs"] == {"enable_thinking": False}
    await collect(host, ask(fake.models[0], think="high"))
    body = sent_chat(fake)
    assert body["reasoning_effort"] == "high" and "chat_template_kwargs" not in body
    generic, generic_host = host_for(servers, hosts, "generic")
    await collect(generic_host, ask(generic.models[0], think=True))
    assert "chat_template_kwargs" not in sent_chat(generic)


async def test_max_tokens_cuts_the_reply_with_reason_length(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, "generic")
    chunks = await collect(host, ask(fake.models[0], options={"num_predict": 3}))
    assert text_of(chunks) == "The quick brown"
    final = chunks[-1]
    assert isinstance(final, FinalChunk) and final.stats.done_reason == "length"


@pytest.mark.parametrize("flavor", ["lmstudio", "vllm", "generic"])
async def test_unknown_model_is_model_not_found(
    flavor: Flavor, servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    _fake, host = host_for(servers, hosts, flavor)
    with pytest.raises(ModelNotFound) as info:
        await collect(host, ask("no-such-model"))
    assert info.value.model == "no-such-model" and "no-such-model" in info.value.message
    assert host.in_flight == 0
    with pytest.raises(InvalidInput):
        await collect(host, ask(""))


async def test_host_dying_mid_reply_keeps_what_arrived(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, "llamacpp")
    fake.faults.drop_after = 4  # the role-only event, then three words
    got: list[ChatChunk] = []
    with pytest.raises(StreamInterrupted, match="closed the connection") as info:
        async for chunk in host.chat(ask(fake.models[0])):
            got.append(chunk)
    assert [c.text for c in got if isinstance(c, ContentChunk)] == ["The", " quick", " brown"]
    assert len(got) == 3
    assert info.value.__cause__ is not None
    assert host.in_flight == 0


async def test_hanging_host_times_out_and_leaves_no_task(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake = servers("llamacpp")
    fake.faults.hang = True
    host = hosts(fake.url, HostKind.LLAMACPP, request=0.3, stream_idle=0.3, probe=0.3)
    with pytest.raises(HostTimeout, match=r"did not answer within 0\.3 s"):
        await host.list_models()
    with pytest.raises(HostTimeout, match=r"within 0\.3 s while answering"):
        await collect(host, ask(fake.models[0]))
    health = await host.health()
    assert not health.online and health.error and "did not answer" in health.error
    assert host.in_flight == 0
    assert other_tasks() == set()
    loop = asyncio.get_running_loop()
    began = loop.time()
    fake.stop()  # fast, although its handlers still hang
    assert loop.time() - began < 1.5


async def test_silence_mid_stream_times_out(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake = servers("vllm")
    host = hosts(fake.url, HostKind.VLLM, stream_idle=0.3)
    fake.faults.token_delay = 5.0
    got: list[ChatChunk] = []
    with pytest.raises(HostTimeout):
        async for chunk in host.chat(ask(fake.models[0])):
            got.append(chunk)
    assert got == []  # the first event carries only the role
    assert other_tasks() == set()


async def test_cancelling_a_reply_closes_the_stream(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, "llamacpp")
    fake.faults.token_delay = 0.05
    got: list[ChatChunk] = []

    async def consume() -> None:
        async for chunk in host.chat(ask(fake.models[0])):
            got.append(chunk)

    task = asyncio.create_task(consume())
    await wait_for(lambda: len(got) >= 2)
    assert host.in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert host.in_flight == 0
    assert other_tasks() == set()


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_unreachable_host(flavor: Flavor, hosts: Callable[..., OpenAIHost]) -> None:
    host = hosts(f"http://127.0.0.1:{free_port()}", KINDS[flavor])
    with pytest.raises(HostUnreachable, match="Cannot connect") as info:
        await host.list_models()
    assert info.value.__cause__ is not None
    with pytest.raises(HostUnreachable):
        await collect(host, ask("m"))
    health = await host.health()
    assert not health.online and health.error and "Cannot connect" in health.error


async def test_server_error_status_carries_the_servers_message(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake, host = host_for(servers, hosts, "generic")
    fake.faults.fail_status = 500
    with pytest.raises(HostRequestFailed, match="fake failure 500") as info:
        await host.running_models()
    assert info.value.status == 500
    with pytest.raises(HostRequestFailed, match="HTTP 500"):
        await collect(host, ask(fake.models[0]))
    fake.faults.fail_status = 401
    with pytest.raises(HostRequestFailed, match="refused access"):
        await host.list_models()


async def test_configured_headers_reach_the_host(
    servers: Callable[..., FakeOpenAI],
) -> None:
    fake = servers("vllm")
    host = OpenAIHost(
        HostConfig("t", "T", fake.url, HostKind.VLLM, headers=(("Authorization", "Bearer k"),))
    )
    try:
        await host.list_models()
        await collect(host, ask(fake.models[0]))
    finally:
        await host.aclose()
    assert [h.get("authorization") for h in fake.request_headers] == ["Bearer k"] * 2


async def test_garbage_is_a_bad_response(raw_server: Any, hosts: Callable[..., OpenAIHost]) -> None:
    page = raw_server(b"<html>hello</html>", "text/html")
    host = hosts(page, HostKind.OPENAI)
    with pytest.raises(BadResponse) as info:
        await host.list_models()
    assert info.value.__cause__ is not None
    stream = raw_server(sse(delta(content="Hi"), "this is not json", "[DONE]"))
    host = hosts(stream, HostKind.OPENAI)
    got: list[ChatChunk] = []
    with pytest.raises(BadResponse):
        async for chunk in host.chat(ask("m")):
            got.append(chunk)
    assert got == [ContentChunk("Hi")]


async def test_sse_with_comments_multiline_data_and_no_done(
    raw_server: Any, hosts: Callable[..., OpenAIHost]
) -> None:
    first = json.dumps(delta(content="Hel")).replace('"delta"', '\n"delta"', 1)
    body = (
        b": keep-alive comment\n\n"
        b"event: message\nid: 1\n"
        + b"".join(b"data: " + line.encode() + b"\n" for line in first.split("\n"))
        + b"\n"
        + b'data:{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}\r\n\r\n'
        + b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'  # no blank line
    )
    host = hosts(raw_server(body), HostKind.OPENAI)
    chunks = await collect(host, ask("m"))
    assert text_of(chunks) == "Hello"
    final = chunks[-1]
    assert isinstance(final, FinalChunk) and final.stats.done_reason == "stop"


async def test_stream_that_ends_early_without_an_error(
    raw_server: Any, hosts: Callable[..., OpenAIHost]
) -> None:
    host = hosts(raw_server(sse(delta(content="Hi"))), HostKind.OPENAI)
    with pytest.raises(StreamInterrupted, match="before it was done"):
        await collect(host, ask("m"))


async def test_error_event_inside_the_stream(
    raw_server: Any, hosts: Callable[..., OpenAIHost]
) -> None:
    url = raw_server(sse(delta(content="Hi"), {"error": {"message": "out of memory"}}))
    host = hosts(url, HostKind.VLLM)
    with pytest.raises(HostRequestFailed, match="out of memory"):
        await collect(host, ask("m"))


def test_sse_parser() -> None:
    p = SseParser()
    assert p.feed(": comment") is None
    assert p.feed("event: x") is None
    assert p.feed("data: a") is None
    assert p.feed("data:b") is None
    assert p.feed("data:  c") is None
    assert p.feed("") == "a\nb\n c"
    assert p.feed("") is None  # a blank line with nothing before it dispatches nothing
    assert p.feed("data: [DONE]") is None
    assert p.flush() == "[DONE]"
    assert p.flush() is None


async def test_a_missing_route_is_not_a_missing_model(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake = servers("generic")
    host = hosts(fake.url, HostKind.LLAMACPP)
    host.router = True  # as if identify had said so; this server has no /models/load
    with pytest.raises(HostRequestFailed, match="HTTP 404") as info:
        await host.load("local-model")
    assert not isinstance(info.value, ModelNotFound)


async def test_a_finished_reply_leaves_its_connection_for_the_next(
    servers: Callable[..., FakeOpenAI], hosts: Callable[..., OpenAIHost]
) -> None:
    fake = servers("llamacpp")
    host = hosts(fake.url, HostKind.LLAMACPP)
    model = (await host.list_models())[0].name
    await collect(host, ask(model))
    after_first = fake.accepted
    for _ in range(3):
        await collect(host, ask(model))
    assert fake.accepted == after_first
