"""MCP tools in the chat: the offer, the names, approval, the tool-call loop, the history.

Against the fake Ollama (and the fake OpenAI-compatible server) on 127.0.0.x, a real
SQLite file, and a tool provider written here (the real MCP manager is tested on its own).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from app.core.chat import (
    ApprovalRequest,
    ApprovalRules,
    ChatEngine,
    ChatStore,
    Decision,
    MemoryAllowList,
    MessageStatus,
    ReplyContinued,
    ReplyEvent,
    ReplyFinished,
    ReplyStopped,
    StoredMessage,
    ToolCallDecided,
    ToolCallFinished,
    ToolCallRequested,
    ToolCatalog,
    ToolsDropped,
)
from app.core.chat.engine import DECLINED, NO_RESULT, NOT_ASKED, STOPPED_CALL
from app.core.chat.store import EXPORT_VERSION, SCHEMA_VERSION, ReplyState, migrate, new_id
from app.core.hosts.base import ContentChunk, HostKind, ToolCall
from app.core.hosts.registry import HostRegistry
from app.core.mcp.types import (
    AudioPart,
    ImagePart,
    McpError,
    ResourcePart,
    ServerConfig,
    ServerUnavailable,
    TextPart,
    ToolCallFailed,
    ToolInfo,
    ToolResult,
    ToolTimeout,
)
from tests.fakes.ollama import FakeModel, FakeOllama, ToolScriptStep
from tests.fakes.openai_server import FakeOpenAI

# -- the tools ------------------------------------------------------------------------------

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "location": {
            "type": "object",
            "description": "Where to look",
            "properties": {
                "city": {"type": "string", "default": "Oslo"},
                "coords": {
                    "type": "object",
                    "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                    "required": ["lat", "lon"],
                },
            },
            "required": ["city"],
        },
        "units": {
            "anyOf": [{"type": "string", "enum": ["metric", "imperial"]}, {"type": "null"}],
            "default": None,
        },
        "days": {"type": "integer", "minimum": 1, "maximum": 7, "default": 1},
    },
    "required": ["location"],
    "additionalProperties": False,
}

WEATHER = ToolInfo(
    server="weather",
    name="get_weather",
    title="Weather",
    description="The weather in a place",
    input_schema=MappingProxyType(WEATHER_SCHEMA),  # as a read-only mapping, copied whole
    read_only=True,
)
FILES_SEARCH = ToolInfo(server="files", name="search", description="Search files")
WEB_SEARCH = ToolInfo(server="web", name="search", description="Search the web")
READ_FILE = ToolInfo(
    server="files",
    name="read.file",
    description="Read a file",
    input_schema={"type": "object", "properties": {"path": {"type": "string"}}},
)
DELETE = ToolInfo(server="files", name="delete", description="Delete a file", destructive=True)
SLOW = ToolInfo(server="slow", name="slow", description="Takes its time")
STUCK = ToolInfo(server="slow", name="stuck", description="Never answers, ignores timeouts")
ALL_TOOLS = [WEATHER, FILES_SEARCH, WEB_SEARCH, READ_FILE, DELETE, SLOW, STUCK]


class FakeTools:
    """A ToolProvider: the tools listed, and what each call gives.

    Attributes:
        calls: ``(server, tool, arguments, timeout_s)`` of every call made.
        outcomes: what a call of ``(server, tool)`` returns, or raises (default: a text).
        started: set when the slow or stuck tool begins.
        cancelled: calls cancelled while they ran.
    """

    def __init__(self, tools: list[ToolInfo] | None = None) -> None:
        self.listed = list(ALL_TOOLS if tools is None else tools)
        self.calls: list[tuple[str, str, dict[str, Any], float | None]] = []
        self.outcomes: dict[tuple[str, str], ToolResult | McpError] = {}
        self.started = asyncio.Event()
        self.cancelled = 0

    def tools(self) -> list[ToolInfo]:
        return list(self.listed)

    async def call_tool(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        timeout_s: float | None = None,
    ) -> ToolResult:
        self.calls.append((server, tool, dict(arguments), timeout_s))
        if tool in ("slow", "stuck"):
            self.started.set()
            never = asyncio.get_running_loop().create_future()
            try:
                if tool == "slow" and timeout_s is not None:
                    try:
                        async with asyncio.timeout(timeout_s):
                            await never
                    except TimeoutError:
                        raise ToolTimeout(
                            f"{tool} on {server} did not answer within {timeout_s:g} s; "
                            "it was told to stop."
                        ) from None
                await never
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        outcome = self.outcomes.get((server, tool), ToolResult((TextPart(f"{tool} ran"),)))
        if isinstance(outcome, McpError):
            raise outcome
        return outcome


class Approver:
    """Answers approval requests with the decisions given, in order; records each."""

    def __init__(self, *decisions: Decision) -> None:
        self.decisions = list(decisions)
        self.asked: list[ApprovalRequest] = []

    async def approve(self, request: ApprovalRequest) -> Decision:
        self.asked.append(request)
        return self.decisions.pop(0)


class WaitingApprover:
    """Never answers: the user is still looking at the prompt."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.cancelled = False

    async def approve(self, request: ApprovalRequest) -> Decision:
        self.waiting.set()
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        raise AssertionError("unreachable")


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def box() -> Iterator[FakeOllama]:
    models: list[FakeModel | str] = ["llama3.2", FakeModel("tinyllama")]  # no tools there
    with FakeOllama(host="127.0.0.5", port=0, models=models) as server:
        yield server


@pytest.fixture
def registry(chat_registry: HostRegistry) -> HostRegistry:
    return chat_registry


@pytest.fixture
def provider() -> FakeTools:
    return FakeTools()


MakeEngine = Callable[..., ChatEngine]


@pytest.fixture
async def make_engine(
    registry: HostRegistry, store: ChatStore, provider: FakeTools
) -> AsyncIterator[MakeEngine]:
    engines: list[ChatEngine] = []

    def make(**kwargs: Any) -> ChatEngine:
        kwargs.setdefault("tools", provider)
        engine = ChatEngine(registry, store, flush_interval_s=0.05, **kwargs)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.aclose()
    await registry.aclose()


@pytest.fixture
def host_id(registry: HostRegistry, box: FakeOllama) -> str:
    return registry.add(box.url, "Box").id


async def collect(handle: AsyncIterable[ReplyEvent]) -> list[ReplyEvent]:
    return [e async for e in handle]


def bodies(fake: FakeOllama | FakeOpenAI, path: str = "/api/chat") -> list[dict[str, Any]]:
    return [b for _, p, b in fake.requests if p == path and b is not None]


def allowing(*tools: ToolInfo) -> ApprovalRules:
    """Rules that let ``tools`` run without asking."""
    allowed = MemoryAllowList()
    for tool in tools:
        allowed.allow_always(tool.server, tool.name)
    return ApprovalRules(allowed)


def of_type(events: list[ReplyEvent], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def last_end(events: list[ReplyEvent]) -> ReplyEvent:
    ends = [e for e in events if isinstance(e, ReplyFinished | ReplyStopped)]
    assert len(ends) == 1 and events[-1] is ends[0], events
    return ends[0]


# -- what is offered ------------------------------------------------------------------------


def test_catalog_names_are_sanitised_and_only_collisions_are_prefixed() -> None:
    long_name = "x" * 80
    catalog = ToolCatalog(
        [
            *ALL_TOOLS,
            FILES_SEARCH,  # listed twice by its server: counts once
            ToolInfo(server="files", name=long_name),
            ToolInfo(server="a b", name="read_file"),  # takes read.file's sanitised name
        ]
    )
    assert catalog.names == (
        "get_weather",
        "files__search",
        "web__search",
        "files__read_file",
        "delete",
        "slow",
        "stuck",
        "x" * 64,
        "a_b__read_file",
    )
    assert catalog.resolve("web__search") == WEB_SEARCH
    assert catalog.resolve("files__read_file") == READ_FILE
    assert catalog.resolve("search") is None  # ambiguous: not offered under that name
    assert catalog.name_for("files", "search") == "files__search"
    assert catalog.name_for("web", "nope") is None

    clash = ToolCatalog([ToolInfo("s", "a.b"), ToolInfo("s", "a_b"), ToolInfo("s", "a b")])
    assert clash.names == ("a_b", "a_b_2", "a_b_3")  # one server: numbered, not prefixed
    long_pair = ToolCatalog([ToolInfo("s", "y" * 70 + "."), ToolInfo("s", "y" * 70 + "!")])
    assert long_pair.names == ("y" * 64, "y" * 62 + "_2")


async def test_tools_are_offered_with_their_schemas_whole(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str
) -> None:
    engine = make_engine(rules=allowing(WEATHER))
    box.tool_script = [ToolScriptStep.say("Nothing to call.")]
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    await collect(await engine.send(conv.id, "What can you do?"))

    offered = bodies(box)[-1]["tools"]
    assert offered[0] == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a place",
            "parameters": WEATHER_SCHEMA,
        },
    }
    parameters = offered[0]["function"]["parameters"]
    assert parameters["properties"]["units"]["anyOf"][1] == {"type": "null"}
    assert parameters["properties"]["location"]["properties"]["city"]["default"] == "Oslo"
    assert parameters["properties"]["location"]["properties"]["coords"]["required"] == [
        "lat",
        "lon",
    ]
    assert [t["function"]["name"] for t in offered] == list(ToolCatalog(ALL_TOOLS).names)
    # a tool without a schema still gets an object schema
    assert offered[1]["function"]["parameters"] == {"type": "object", "properties": {}}


async def test_no_tools_are_offered_when_the_conversation_has_them_off(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    engine = make_engine()
    conv = await store.create_conversation("llama3.2", host_id=host_id, tools_enabled=False)
    assert conv.tools_enabled is False
    await collect(await engine.send(conv.id, "Hi"))
    assert "tools" not in bodies(box)[-1]

    on = await store.update_conversation(conv.id, tools_enabled=True)
    assert on.tools_enabled and (await store.conversation(conv.id)).tools_enabled
    box.tool_script = [ToolScriptStep.say("fine")]
    await collect(await engine.send(conv.id, "Again"))
    assert len(bodies(box)[-1]["tools"]) == len(ALL_TOOLS)
    assert provider.calls == []

    without = make_engine(tools=None)  # no provider: nothing offered
    await collect(await without.send(conv.id, "And without a provider"))
    assert "tools" not in bodies(box)[-1]


# -- the loop -------------------------------------------------------------------------------


async def test_a_tool_call_is_made_and_the_model_answers_with_its_result(
    make_engine: MakeEngine,
    store: ChatStore,
    box: FakeOllama,
    host_id: str,
    provider: FakeTools,
) -> None:
    engine = make_engine(rules=allowing(WEATHER))
    arguments = {"location": {"city": "Bergen", "coords": {"lat": 60.4, "lon": 5.3}}}
    box.tool_script = [ToolScriptStep.call("get_weather", arguments), ToolScriptStep.say("Rain.")]
    provider.outcomes[("weather", "get_weather")] = ToolResult(
        (TextPart("12 °C and rain"),), structured={"temp": 12}
    )
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    handle = await engine.send(conv.id, "Weather in Bergen?")
    first_id = handle.message_id
    events = await collect(handle)

    kinds = [type(e).__name__ for e in events if not isinstance(e, ContentChunk)]
    assert kinds == [
        "ReplyStarted",
        "ToolCallChunk",
        "ToolCallRequested",
        "ToolCallDecided",
        "ToolCallFinished",
        "ReplyContinued",
        "ReplyFinished",
    ]
    (requested,) = of_type(events, ToolCallRequested)
    assert (requested.server, requested.tool, requested.name) == ("weather", WEATHER, "get_weather")
    assert requested.arguments == arguments and requested.message_id == first_id
    assert not requested.needs_approval
    (decided,) = of_type(events, ToolCallDecided)
    assert (decided.call_id, decided.decision, decided.asked) == (
        requested.call_id,
        Decision.ALLOW_ALWAYS,
        False,
    )
    (finished,) = of_type(events, ToolCallFinished)
    assert finished.call_id == requested.call_id and finished.error == ""
    assert finished.result == provider.outcomes[("weather", "get_weather")]
    assert finished.duration_ms is not None and finished.duration_ms >= 0
    (continued,) = of_type(events, ReplyContinued)
    assert continued.round == 1 and handle.message_id == continued.message_id != first_id
    end = events[-1]
    assert isinstance(end, ReplyFinished) and end.message.id == continued.message_id
    assert end.message.content == "Rain." and end.stats.output_tokens

    assert provider.calls == [("weather", "get_weather", arguments, None)]
    saved = await store.messages(conv.id)
    assert [(m.role, m.status) for m in saved] == [
        ("user", MessageStatus.COMPLETE),
        ("assistant", MessageStatus.COMPLETE),
        ("tool", MessageStatus.COMPLETE),
        ("assistant", MessageStatus.COMPLETE),
    ]
    asking, told = saved[1], saved[2]
    assert asking.id == first_id and asking.content == "" and asking.stats is not None
    assert asking.tool_calls == (ToolCall("get_weather", arguments, requested.call_id),)
    assert told.id == finished.message_id and told.content == "12 °C and rain"
    assert told.tool is not None and told.tool.result == finished.result
    assert (told.tool.server, told.tool.tool, told.tool.decision) == (
        "weather",
        "get_weather",
        Decision.ALLOW_ALWAYS,
    )

    # the second request carried the call and its result
    second = bodies(box)[-1]["messages"]
    assert second[-2:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": arguments}}],
        },
        {"role": "tool", "content": "12 °C and rain", "tool_name": "get_weather"},
    ]


async def test_several_calls_in_one_answer_are_made_in_order_and_get_ids(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    engine = make_engine(rules=allowing(FILES_SEARCH, WEB_SEARCH))
    box.tool_script = [
        ToolScriptStep(
            calls=(("files__search", {"q": "a"}), ("web__search", {"q": "b"})), ids=False
        ),
        ToolScriptStep.say("Both done."),
    ]
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    events = await collect(await engine.send(conv.id, "Search twice"))

    tool_events = [
        (type(e).__name__, e.call_id)
        for e in events
        if isinstance(e, ToolCallRequested | ToolCallDecided | ToolCallFinished)
    ]
    first, second = of_type(events, ToolCallRequested)
    assert tool_events == [
        ("ToolCallRequested", first.call_id),
        ("ToolCallDecided", first.call_id),
        ("ToolCallFinished", first.call_id),
        ("ToolCallRequested", second.call_id),
        ("ToolCallDecided", second.call_id),
        ("ToolCallFinished", second.call_id),
    ]
    assert first.call_id and second.call_id and first.call_id != second.call_id
    assert [c[:2] for c in provider.calls] == [("files", "search"), ("web", "search")]
    saved = await store.messages(conv.id)
    assert [c.id for c in saved[1].tool_calls] == [first.call_id, second.call_id]
    assert [m.tool.call_id for m in saved if m.tool is not None] == [
        first.call_id,
        second.call_id,
    ]
    assert isinstance(events[-1], ReplyFinished) and events[-1].message.content == "Both done."


async def test_openai_compatible_hosts_get_the_call_ids_back(
    make_engine: MakeEngine, store: ChatStore, registry: HostRegistry, provider: FakeTools
) -> None:
    with FakeOpenAI(host="127.0.0.6", port=0, flavor="vllm", models=["qwen3"]) as server:
        openai_id = registry.add(server.url, "vLLM box", kind=HostKind.VLLM).id
        engine = make_engine(rules=allowing(WEATHER))
        server.tool_script = [
            ToolScriptStep.call("get_weather", {"location": {"city": "Oslo"}}),
            ToolScriptStep.say("Cold."),
        ]
        conv = await store.create_conversation("qwen3", host_id=openai_id)
        events = await collect(await engine.send(conv.id, "Weather?"))
        assert isinstance(events[-1], ReplyFinished) and events[-1].message.content == "Cold."
        (requested,) = of_type(events, ToolCallRequested)
        messages = bodies(server, "/v1/chat/completions")[-1]["messages"]
        asked, answered = messages[-2], messages[-1]
        assert asked["tool_calls"][0]["id"] == requested.call_id
        assert json.loads(asked["tool_calls"][0]["function"]["arguments"]) == {
            "location": {"city": "Oslo"}
        }
        assert answered == {
            "role": "tool",
            "content": "get_weather ran",
            "tool_call_id": requested.call_id,
            "name": "get_weather",
        }


# -- approval -------------------------------------------------------------------------------


async def send_and_collect(engine: ChatEngine, conversation_id: str, text: str) -> list[Any]:
    return await collect(await engine.send(conversation_id, text))


def script_weather(box: FakeOllama, times: int = 1) -> None:
    for _ in range(times):
        box.tool_script += [
            ToolScriptStep.call("get_weather", {"location": {"city": "Oslo"}}),
            ToolScriptStep.say("Done."),
        ]


async def test_allow_once_asks_again_next_time(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    approver = Approver(Decision.ALLOW_ONCE, Decision.ALLOW_ONCE)
    rules = ApprovalRules()
    engine = make_engine(approver=approver, rules=rules)
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    script_weather(box, 2)
    events = await send_and_collect(engine, conv.id, "one")
    (requested,) = of_type(events, ToolCallRequested)
    assert requested.needs_approval
    (decided,) = of_type(events, ToolCallDecided)
    assert (decided.decision, decided.asked) == (Decision.ALLOW_ONCE, True)
    request = approver.asked[0]
    assert (request.conversation_id, request.call_id, request.server) == (
        conv.id,
        requested.call_id,
        "weather",
    )
    assert request.tool == WEATHER and request.tool.read_only is True
    assert request.arguments == {"location": {"city": "Oslo"}}

    await send_and_collect(engine, conv.id, "two")
    assert len(approver.asked) == 2 and len(provider.calls) == 2
    assert rules.granted(conv.id) == frozenset()
    assert rules.always.always_allowed("weather") == set()


async def test_allow_for_the_conversation_holds_there_only(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    approver = Approver(Decision.ALLOW_CONVERSATION, Decision.ALLOW_ONCE)
    rules = ApprovalRules()
    engine = make_engine(approver=approver, rules=rules)
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    other = await store.create_conversation("llama3.2", host_id=host_id)
    script_weather(box, 3)
    await send_and_collect(engine, conv.id, "one")
    events = await send_and_collect(engine, conv.id, "two")
    assert len(approver.asked) == 1
    (requested,) = of_type(events, ToolCallRequested)
    assert not requested.needs_approval
    (decided,) = of_type(events, ToolCallDecided)
    assert (decided.decision, decided.asked) == (Decision.ALLOW_CONVERSATION, False)

    await send_and_collect(engine, other.id, "elsewhere")
    assert [r.conversation_id for r in approver.asked] == [conv.id, other.id]
    assert len(provider.calls) == 3

    # deleting the conversation forgets what was granted there
    assert rules.granted(conv.id) == {("weather", "get_weather")}
    await store.delete_conversation(conv.id)
    assert rules.granted(conv.id) == frozenset()


async def test_allow_always_is_kept_by_the_rules_and_can_be_revoked(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    approver = Approver(Decision.ALLOW_ALWAYS, Decision.ALLOW_ONCE)
    kept = MemoryAllowList()
    rules = ApprovalRules(kept)
    engine = make_engine(approver=approver, rules=rules)
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    other = await store.create_conversation("llama3.2", host_id=host_id)
    script_weather(box, 3)
    await send_and_collect(engine, conv.id, "one")
    assert kept.always_allowed("weather") == {"get_weather"}
    events = await send_and_collect(engine, other.id, "elsewhere")
    assert len(approver.asked) == 1
    assert of_type(events, ToolCallDecided)[0].decision is Decision.ALLOW_ALWAYS

    rules.revoke("weather", "get_weather")
    assert kept.always_allowed("weather") == set()
    await send_and_collect(engine, other.id, "after revoking")
    assert len(approver.asked) == 2 and len(provider.calls) == 3


async def test_auto_approve_of_the_server_config_counts_as_always(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    servers = [ServerConfig(name="weather", command="w", auto_approve=("get_weather",))]
    approver = Approver()
    engine = make_engine(
        approver=approver, rules=ApprovalRules(MemoryAllowList.from_servers(servers))
    )
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    script_weather(box)
    events = await send_and_collect(engine, conv.id, "one")
    assert approver.asked == [] and len(provider.calls) == 1
    assert of_type(events, ToolCallDecided)[0].decision is Decision.ALLOW_ALWAYS


class BrokenAllowList(MemoryAllowList):
    def allow_always(self, server: str, tool: str) -> None:
        raise McpError("the MCP config file is read-only")


async def test_allow_always_that_cannot_be_saved_holds_for_the_conversation(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    approver = Approver(Decision.ALLOW_ALWAYS)
    rules = ApprovalRules(BrokenAllowList())
    engine = make_engine(approver=approver, rules=rules)
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    script_weather(box, 2)
    events = await send_and_collect(engine, conv.id, "one")
    (decided,) = of_type(events, ToolCallDecided)
    assert decided.decision is Decision.ALLOW_ALWAYS and "read-only" in decided.note
    assert len(provider.calls) == 1
    await send_and_collect(engine, conv.id, "two")
    assert len(approver.asked) == 1 and len(provider.calls) == 2


async def test_deny_tells_the_model_the_user_declined(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    engine = make_engine(approver=Approver(Decision.DENY))
    box.tool_script = [ToolScriptStep.call("delete", {"path": "/etc/passwd"})]
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    events = await send_and_collect(engine, conv.id, "Delete it")

    assert provider.calls == []
    (decided,) = of_type(events, ToolCallDecided)
    assert (decided.decision, decided.asked) == (Decision.DENY, True)
    (finished,) = of_type(events, ToolCallFinished)
    assert finished.result is None and finished.error == DECLINED
    assert finished.duration_ms is None
    assert bodies(box)[-1]["messages"][-1] == {
        "role": "tool",
        "content": DECLINED,
        "tool_name": "delete",
    }
    end = events[-1]
    assert (
        isinstance(end, ReplyFinished) and end.message.content == f"The tool returned: {DECLINED}"
    )
    told = next(m for m in await store.messages(conv.id) if m.role == "tool")
    assert told.tool is not None and told.tool.is_error and told.tool.decision is Decision.DENY


async def test_without_an_approver_calls_that_need_approval_are_not_made(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    engine = make_engine()
    box.tool_script = [ToolScriptStep.call("delete", {"path": "x"})]
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    events = await send_and_collect(engine, conv.id, "Delete it")
    assert provider.calls == []
    assert not of_type(events, ToolCallRequested)[0].needs_approval
    decided = of_type(events, ToolCallDecided)[0]
    assert (decided.decision, decided.asked) == (Decision.DENY, False)
    assert bodies(box)[-1]["messages"][-1]["content"] == NOT_ASKED
    assert isinstance(events[-1], ReplyFinished)


# -- calls that go wrong --------------------------------------------------------------------


async def test_an_unknown_tool_is_reported_to_the_model(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    approver = Approver()
    engine = make_engine(approver=approver)
    box.tool_script = [ToolScriptStep.call("search", {"q": "x"})]  # ambiguous: not offered
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    events = await send_and_collect(engine, conv.id, "Find it")

    assert approver.asked == [] and provider.calls == [] and not of_type(events, ToolCallDecided)
    (requested,) = of_type(events, ToolCallRequested)
    assert (requested.server, requested.tool) == ("", ToolInfo(server="", name="search"))
    (finished,) = of_type(events, ToolCallFinished)
    assert finished.error.startswith("There is no tool named 'search'")
    assert "files__search, web__search" in finished.error
    told = bodies(box)[-1]["messages"][-1]
    assert told["role"] == "tool" and told["content"] == finished.error
    end = events[-1]
    assert isinstance(end, ReplyFinished) and end.message.content.startswith("The tool returned:")
    record = (await store.messages(conv.id))[2].tool
    assert (
        record is not None and record.is_error and record.server == "" and record.decision is None
    )


@pytest.mark.parametrize(
    ("outcome", "told"),
    [
        (
            ServerUnavailable("The MCP server weather is not running."),
            "The tool call failed: The MCP server weather is not running.",
        ),
        (
            ToolCallFailed("weather refused the arguments: city is required."),
            "The tool call failed: weather refused the arguments: city is required.",
        ),
        (
            ToolResult((TextPart("No such city"),), is_error=True),
            "The tool reported an error: No such city",
        ),
    ],
    ids=["server unavailable", "call failed", "tool error"],
)
async def test_a_failing_call_is_told_to_the_model_and_the_chat_goes_on(
    make_engine: MakeEngine,
    store: ChatStore,
    box: FakeOllama,
    host_id: str,
    provider: FakeTools,
    outcome: ToolResult | McpError,
    told: str,
) -> None:
    engine = make_engine(rules=allowing(WEATHER))
    provider.outcomes[("weather", "get_weather")] = outcome
    script_weather(box)
    box.tool_script[-1] = ToolScriptStep.say("Sorry, no weather.")
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    events = await send_and_collect(engine, conv.id, "Weather?")

    (finished,) = of_type(events, ToolCallFinished)
    assert finished.error == told
    assert finished.result == (outcome if isinstance(outcome, ToolResult) else None)
    assert bodies(box)[-1]["messages"][-1]["content"] == told
    end = events[-1]
    assert isinstance(end, ReplyFinished) and end.message.content == "Sorry, no weather."
    record = (await store.messages(conv.id))[2].tool
    assert record is not None and record.is_error

    # and the conversation goes on
    box.tool_script = [ToolScriptStep.say("Still here.")]
    again = await send_and_collect(engine, conv.id, "Anything else?")
    assert isinstance(again[-1], ReplyFinished) and again[-1].message.content == "Still here."


async def test_a_call_that_times_out_is_told_to_the_model(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    engine = make_engine(rules=allowing(SLOW, STUCK), tool_timeout_s=0.05)
    box.tool_script = [
        ToolScriptStep.call("slow"),
        ToolScriptStep.say("It timed out."),
        ToolScriptStep.call("stuck"),
        ToolScriptStep.say("That one too."),
    ]
    conv = await store.create_conversation("llama3.2", host_id=host_id)

    events = await send_and_collect(engine, conv.id, "Slow one")
    assert provider.calls == [("slow", "slow", {}, 0.05)]
    (finished,) = of_type(events, ToolCallFinished)
    assert (
        finished.error
        == "The tool call failed: slow on slow did not answer within 0.05 s; it was told to stop."
    )
    assert finished.duration_ms is not None and finished.duration_ms >= 49
    assert isinstance(events[-1], ReplyFinished)

    # a provider that ignores its timeout is given up on by the engine itself
    engine.tool_grace_s = 0.0
    events = await send_and_collect(engine, conv.id, "Stuck one")
    (finished,) = of_type(events, ToolCallFinished)
    assert finished.error == "The tool call failed: stuck on slow did not answer within 0.05 s."
    assert provider.cancelled == 1
    assert isinstance(events[-1], ReplyFinished) and events[-1].message.content == "That one too."


async def test_a_reply_stops_after_the_most_rounds_of_tool_calls(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    engine = make_engine(rules=allowing(WEATHER), max_tool_rounds=2)
    box.tool_script = [ToolScriptStep.call("get_weather", {"location": {"city": c}}) for c in "ABC"]
    box.tool_script.append(ToolScriptStep.say("never asked for"))
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    events = await send_and_collect(engine, conv.id, "Loop")

    assert len(provider.calls) == 2 and len(bodies(box)) == 3
    assert [e.round for e in of_type(events, ReplyContinued)] == [1, 2]
    assert len(of_type(events, ToolCallRequested)) == 2  # the third request is not announced
    end = events[-1]
    assert isinstance(end, ReplyFinished)
    assert end.message.note.startswith("Stopped after 2 rounds of tool calls")
    assert "get_weather" in end.message.note
    saved = await store.messages(conv.id)
    assert [m.role for m in saved] == ["user"] + ["assistant", "tool"] * 3
    assert saved[-2].id == end.message.id and saved[-2].note == end.message.note
    assert saved[-1].content.startswith("Not run: this reply reached its limit of 2 rounds")
    assert saved[-1].tool is not None and saved[-1].tool.is_error
    assert saved[-1].tool.call_id == saved[-2].tool_calls[0].id

    # the next message is sent with the whole exchange, the calls not run included
    box.tool_script = [ToolScriptStep.say("OK.")]
    await send_and_collect(engine, conv.id, "Fine")
    roles = [m["role"] for m in bodies(box)[-1]["messages"]]
    assert roles == ["user"] + ["assistant", "tool"] * 3 + ["user"]


# -- stop -----------------------------------------------------------------------------------


async def test_stop_while_the_user_is_asked_cancels_cleanly(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    approver = WaitingApprover()
    engine = make_engine(approver=approver)
    box.tool_script = [ToolScriptStep(calls=(("delete", {"path": "a"}), ("delete", {"path": "b"})))]
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    handle = await engine.send(conv.id, "Delete both")
    asking_id = handle.message_id
    await asyncio.wait_for(approver.waiting.wait(), 10)
    handle.stop()
    events = await collect(handle)

    assert approver.cancelled and provider.calls == []
    end = last_end(events)
    assert isinstance(end, ReplyStopped) and end.message.id == asking_id
    assert end.message.status is MessageStatus.STOPPED and len(end.message.tool_calls) == 2
    (requested,) = of_type(events, ToolCallRequested)  # the second was never announced
    (finished,) = of_type(events, ToolCallFinished)
    assert finished.call_id == requested.call_id and finished.error == STOPPED_CALL
    assert not of_type(events, ToolCallDecided)
    saved = await store.messages(conv.id)
    assert [(m.role, m.status) for m in saved] == [
        ("user", MessageStatus.COMPLETE),
        ("assistant", MessageStatus.STOPPED),
        ("tool", MessageStatus.STOPPED),
        ("tool", MessageStatus.STOPPED),
    ]
    assert [m.tool.call_id for m in saved[2:] if m.tool] == [c.id for c in saved[1].tool_calls]
    assert all(m.content == STOPPED_CALL for m in saved[2:])

    # the conversation goes on, the stopped calls in its history
    box.tool_script = [ToolScriptStep.say("Understood.")]
    after = await send_and_collect(engine, conv.id, "Never mind")
    assert isinstance(after[-1], ReplyFinished)
    sent = bodies(box)[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "user"]
    assert sent[2]["content"] == STOPPED_CALL


async def test_stop_while_a_tool_runs_cancels_the_call(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    engine = make_engine(rules=allowing(SLOW))
    box.tool_script = [ToolScriptStep.call("slow")]
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    handle = await engine.send(conv.id, "Take your time")
    await asyncio.wait_for(provider.started.wait(), 10)
    handle.stop()
    events = await collect(handle)

    assert provider.cancelled == 1
    end = last_end(events)
    assert isinstance(end, ReplyStopped) and end.message.status is MessageStatus.STOPPED
    (decided,) = of_type(events, ToolCallDecided)
    assert decided.decision is Decision.ALLOW_ALWAYS
    (finished,) = of_type(events, ToolCallFinished)
    assert finished.error == STOPPED_CALL and finished.result is None
    told = (await store.messages(conv.id))[-1]
    assert told.role == "tool" and told.status is MessageStatus.STOPPED
    assert told.tool is not None and told.tool.server == "slow" and told.tool.is_error


async def test_stop_while_the_model_answers_again_keeps_what_arrived(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str
) -> None:
    engine = make_engine(rules=allowing(WEATHER))
    box.tool_script = [
        ToolScriptStep.call("get_weather", {"location": {"city": "Oslo"}}),
        ToolScriptStep.say(" ".join(f"w{i}" for i in range(400))),
    ]
    box.faults.token_delay = 0.01
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    handle = await engine.send(conv.id, "Go")
    seen: list[ReplyEvent] = []
    async for event in handle:
        seen.append(event)
        if isinstance(event, ContentChunk):
            handle.stop()
    end = last_end(seen)
    assert isinstance(end, ReplyStopped) and end.message.id == handle.message_id
    saved = await store.messages(conv.id)
    assert [(m.role, m.status) for m in saved] == [
        ("user", MessageStatus.COMPLETE),
        ("assistant", MessageStatus.COMPLETE),
        ("tool", MessageStatus.COMPLETE),
        ("assistant", MessageStatus.STOPPED),
    ]
    assert saved[-1].content.startswith("w0") and saved[-1].content == end.message.content


# -- the host cannot use tools --------------------------------------------------------------


async def test_a_model_without_tools_answers_without_them(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    engine = make_engine()
    conv = await store.create_conversation("tinyllama", host_id=host_id)
    events = await send_and_collect(engine, conv.id, "Hello")
    (dropped,) = of_type(events, ToolsDropped)
    assert dropped.host_id == host_id and "cannot use tools" in dropped.text
    assert isinstance(events[-1], ReplyFinished) and events[-1].message.content == box.chat_reply
    first, second = bodies(box)
    assert "tools" in first and "tools" not in second


# -- what is kept ---------------------------------------------------------------------------

RICH = ToolResult(
    (
        TextPart("Two files"),
        ImagePart("image/png", "iVBORw0KGgoAAAANSUhEUg=="),
        ResourcePart("file:///tmp/a.txt", "hello", "text/plain"),
        AudioPart("audio/wav", "UklGRg=="),
    ),
    structured={"files": ["a.txt", {"nested": [1, 2.5, None, True]}]},
)


async def rich_exchange(
    engine: ChatEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> str:
    provider.outcomes[("files", "read.file")] = RICH
    box.tool_script = [
        ToolScriptStep.call("read_file", {"path": "/tmp"}),
        ToolScriptStep.say("There are two."),
    ]
    conv = await store.create_conversation("llama3.2", host_id=host_id, title="Files")
    events = await send_and_collect(engine, conv.id, "What is in /tmp?")
    assert isinstance(events[-1], ReplyFinished)
    return conv.id


async def test_results_are_kept_and_read_back_whole(
    make_engine: MakeEngine,
    store: ChatStore,
    box: FakeOllama,
    host_id: str,
    provider: FakeTools,
    tmp_path: Path,
) -> None:
    engine = make_engine(rules=allowing(READ_FILE))
    conv_id = await rich_exchange(engine, store, box, host_id, provider)
    before = await store.messages(conv_id)
    told = before[2]
    assert told.content == "Two files\n[image image/png]\nhello\n[audio audio/wav]"
    assert told.tool is not None and told.tool.result == RICH
    assert told.tool.name == "read_file" and told.tool.tool == "read.file"

    async with ChatStore(tmp_path / "chat.db") as again:  # a fresh read of the file
        after = await again.messages(conv_id)
        assert after == before
        assert after[1].tool_calls[0].name == "read_file"
        assert after[2].tool is not None and after[2].tool.content[1] == RICH.content[1]
        assert after[2].tool.structured == RICH.structured
        hits = await again.search("hello")
        assert [h.message_id for h in hits] == [told.id]


async def test_a_later_message_is_sent_with_the_tool_exchange(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    engine = make_engine(rules=allowing(READ_FILE))
    conv_id = await rich_exchange(engine, store, box, host_id, provider)
    box.tool_script = [ToolScriptStep.say("Sure.")]
    await send_and_collect(engine, conv_id, "Thanks")
    assert bodies(box)[-1]["messages"] == [
        {"role": "user", "content": "What is in /tmp?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "read_file", "arguments": {"path": "/tmp"}}}],
        },
        {
            "role": "tool",
            "content": "Two files\n[image image/png]\nhello\n[audio audio/wav]",
            "tool_name": "read_file",
        },
        {"role": "assistant", "content": "There are two."},
        {"role": "user", "content": "Thanks"},
    ]


async def test_retry_replaces_the_whole_tool_exchange(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    engine = make_engine(rules=allowing(READ_FILE))
    conv_id = await rich_exchange(engine, store, box, host_id, provider)
    assert [m.role for m in await store.messages(conv_id)] == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    box.tool_script = [ToolScriptStep.say("Again.")]
    events = await collect(await engine.retry(conv_id))
    assert isinstance(events[-1], ReplyFinished)
    saved = await store.messages(conv_id)
    assert [(m.role, m.content) for m in saved] == [
        ("user", "What is in /tmp?"),
        ("assistant", "Again."),
    ]
    assert bodies(box)[-1]["messages"] == [{"role": "user", "content": "What is in /tmp?"}]


async def test_calls_cut_off_by_a_crash_are_sent_as_without_result(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str
) -> None:
    engine = make_engine()
    conv = await store.create_conversation("llama3.2", host_id=host_id)
    reply_id = new_id()
    await store.open_reply(conv.id, "Weather?", reply_id)
    call = ToolCall("get_weather", {"location": {"city": "Oslo"}}, "call_1")
    state = ReplyState(
        reply_id, "", "", host_id, "llama3.2", MessageStatus.COMPLETE, None, "", (call,)
    )
    await store.submit(store.finish_reply_sync, state)

    box.tool_script = [ToolScriptStep.say("Hm.")]
    await send_and_collect(engine, conv.id, "Hello?")
    sent = bodies(box)[-1]["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "content": NO_RESULT, "tool_name": "get_weather"}
    assert sent[3] == {"role": "user", "content": "Hello?"}


async def test_export_and_import_keep_the_tool_exchange(
    make_engine: MakeEngine, store: ChatStore, box: FakeOllama, host_id: str, provider: FakeTools
) -> None:
    engine = make_engine(rules=allowing(READ_FILE))
    conv_id = await rich_exchange(engine, store, box, host_id, provider)
    await store.update_conversation(conv_id, tools_enabled=False)
    exported = await store.export_json(conv_id)
    assert exported["version"] == EXPORT_VERSION == 2
    text = json.dumps(exported)  # what the file holds
    imported = await store.import_json(text)
    assert imported.tools_enabled is False

    def comparable(messages: list[StoredMessage]) -> list[tuple[Any, ...]]:
        return [(m.role, m.content, m.tool_calls, m.tool, m.note, m.status) for m in messages]

    original = await store.messages(conv_id)
    copied = await store.messages(imported.id)
    assert comparable(copied) == comparable(original)
    assert copied[2].tool is not None and copied[2].tool.result == RICH
    assert (await store.export_json(imported.id))["conversation"]["messages"] == exported[
        "conversation"
    ]["messages"]
    markdown = await store.export_markdown(conv_id)
    assert "`read.file` on files called with" in markdown
    assert "Asked for the tool `read_file`" in markdown

    broken = json.loads(text)
    broken["conversation"]["messages"][2]["tool"]["content"] = [{"type": "video"}]
    with pytest.raises(Exception, match="Message 3: unknown kind of tool result part 'video'"):
        await store.import_json(broken)


# -- the schema -----------------------------------------------------------------------------


async def test_migration_from_version_2_keeps_the_history_and_takes_tool_calls(
    tmp_path: Path,
    registry: HostRegistry,
    box: FakeOllama,
    host_id: str,
    provider: FakeTools,
) -> None:
    path = tmp_path / "v2.db"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, target=2) == 0
    db.execute(
        "INSERT INTO conversations (id, title, host_id, model, created_at, updated_at)"
        f" VALUES ('c1', 'Before tools', '{host_id}', 'llama3.2', 1.0, 2.0)"
    )
    for seq, (role, content) in enumerate([("user", "Hi"), ("assistant", "Hello!")]):
        db.execute(
            "INSERT INTO messages (id, conversation_id, seq, role, content, created_at,"
            " updated_at) VALUES (?, 'c1', ?, ?, ?, 1.0, 1.0)",
            (f"m{seq}", seq, role, content),
        )
    db.close()

    async with ChatStore(path) as store:
        conv = await store.conversation("c1")
        assert conv.title == "Before tools" and conv.tools_enabled is True
        old = await store.messages("c1")
        assert [(m.content, m.tool_calls, m.tool, m.note) for m in old] == [
            ("Hi", (), None, ""),
            ("Hello!", (), None, ""),
        ]
        engine = ChatEngine(registry, store, tools=provider, rules=allowing(WEATHER))
        script_weather(box)
        events = await send_and_collect(engine, "c1", "Weather?")
        assert isinstance(events[-1], ReplyFinished)
        assert [m.role for m in await store.messages("c1")] == [
            "user",
            "assistant",
            "user",
            "assistant",
            "tool",
            "assistant",
        ]
        await engine.aclose()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()


async def test_an_export_of_version_1_still_imports(store: ChatStore) -> None:
    imported = await store.import_json(
        {
            "format": "corral.chat",
            "version": 1,
            "conversation": {
                "model": "llama3.2",
                "messages": [{"role": "user", "content": "old"}],
            },
        }
    )
    assert imported.tools_enabled is True
    (message,) = await store.messages(imported.id)
    assert (message.content, message.tool_calls, message.tool) == ("old", (), None)
