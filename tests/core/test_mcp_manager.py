"""McpManager against the in-repo MCP server (tests/fakes/mcp_server.py), for real.

Over stdio the manager starts the server itself; over streamable HTTP and SSE the server
runs as a child process of the test on a free loopback port (its URL is read from its
first line of output, once its socket listens). Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psutil
import pytest

from app.core.mcp.manager import McpManager
from app.core.mcp.stdio import POSIX_ALLOWED, child_environment
from app.core.mcp.types import (
    ImagePart,
    McpConfigError,
    McpError,
    ServerConfig,
    ServerState,
    ServerStatus,
    ServerUnavailable,
    TextPart,
    ToolCallFailed,
    ToolTimeout,
    Transport,
)
from tests.fakes.mcp_server import ROOT, FakeMcpProcess
from tests.support.waiting import wait_for, wait_for_async

READY_S = 30.0  # a Python child with the SDK imports in well under a second; CI is slow

FAKE_TOOLS = {
    "echo",
    "add",
    "fail",
    "hang",
    "stats",
    "crash",
    "image",
    "toggle_extra",
    "pid",
    "environment",
    "headers",
    "plan_trip",
}


def stdio_config(name: str = "fake", **changes: Any) -> ServerConfig:
    return ServerConfig(
        name=name,
        command=sys.executable,
        args=("-m", "tests.fakes.mcp_server"),
        cwd=str(ROOT),
        **changes,
    )


def python_config(name: str, code: str) -> ServerConfig:
    """A stdio "server" that is just this Python code."""
    return ServerConfig(name=name, command=sys.executable, args=("-c", code))


@pytest.fixture(scope="module")
def http_fake() -> Iterator[FakeMcpProcess]:
    with FakeMcpProcess("http") as fake:
        yield fake


@pytest.fixture(scope="module")
def sse_fake() -> Iterator[FakeMcpProcess]:
    with FakeMcpProcess("sse") as fake:
        yield fake


Make = Callable[..., McpManager]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    made: list[McpManager] = []

    def factory(*configs: ServerConfig, **options: Any) -> McpManager:
        options.setdefault("connect_timeout_s", READY_S)
        options.setdefault("backoff_initial_s", 0.05)
        manager = McpManager(configs, **options)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        await manager.aclose()


@pytest.fixture(params=["stdio", "http", "sse"])
def any_config(request: pytest.FixtureRequest) -> ServerConfig:
    """The fake over each transport (the HTTP ones shared by the module)."""
    if request.param == "stdio":
        return stdio_config()
    fake: FakeMcpProcess = request.getfixturevalue(f"{request.param}_fake")
    return ServerConfig(name="fake", transport=Transport(request.param), url=fake.url)


@pytest.fixture(params=["stdio", "http"])
def config(request: pytest.FixtureRequest) -> ServerConfig:
    """The fake over stdio and over streamable HTTP."""
    if request.param == "stdio":
        return stdio_config()
    fake: FakeMcpProcess = request.getfixturevalue("http_fake")
    return ServerConfig(name="fake", transport=Transport.HTTP, url=fake.url)


async def ready(manager: McpManager, name: str = "fake") -> ServerStatus:
    def check() -> ServerStatus | None:
        status = manager.status(name)
        assert status.state is ServerState.READY, status
        return status

    return await wait_for(check, READY_S, message=f"{name} ready")


async def started(manager: McpManager, name: str = "fake") -> ServerStatus:
    await manager.start()
    return await ready(manager, name)


async def stats(manager: McpManager, name: str = "fake") -> dict[str, Any]:
    result = await manager.call_tool(name, "stats", {})
    assert result.structured is not None
    return dict(result.structured)


async def server_pid(manager: McpManager, name: str = "fake") -> int:
    result = await manager.call_tool(name, "pid", {})
    assert result.structured is not None
    return int(result.structured["pid"])


def breaker_open(manager: McpManager, name: str = "fake") -> ServerStatus | None:
    status = manager.status(name)
    return status if status.breaker_open else None


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- listing and calling ------------------------------------------------------------------
async def test_lists_the_tools_with_titles_annotations_and_schemas(
    make: Make, any_config: ServerConfig
) -> None:
    manager = make(any_config)
    status = await started(manager)
    assert {t.name for t in status.tools} == FAKE_TOOLS
    assert status.server_version == "corral-fake-mcp 1.2.3"
    assert {t.name for t in manager.tools()} == FAKE_TOOLS
    tools = {t.name: t for t in status.tools}
    echo = tools["echo"]
    assert (echo.server, echo.title, echo.display_name) == ("fake", "Echo", "Echo")
    assert (echo.read_only, echo.idempotent, echo.destructive, echo.open_world) == (
        True,
        True,
        None,
        None,
    )
    assert echo.description == "Say the text back."
    assert tools["add"].output_schema is not None
    assert tools["add"].output_schema["properties"]["sum"]["type"] == "number"
    assert tools["add"].read_only is None
    trip = tools["plan_trip"].input_schema
    assert trip["required"] == ["destination", "dates"]
    assert trip["properties"]["budget"]["anyOf"] == [
        {"type": "number"},
        {"type": "string"},
        {"type": "null"},
    ]
    assert trip["properties"]["mode"]["default"] == "train"
    assert trip["$defs"]["DateRange"]["required"] == ["start", "end"]


async def test_text_structured_image_and_error_results(
    make: Make, any_config: ServerConfig
) -> None:
    manager = make(any_config)
    await started(manager)

    echo = await manager.call_tool("fake", "echo", {"text": "grüße"})
    assert echo.content == (TextPart("grüße"),)
    assert not echo.is_error

    added = await manager.call_tool("fake", "add", {"a": 2, "b": 3.5})
    assert added.structured == {"sum": 5.5}
    assert not added.is_error

    image = await manager.call_tool("fake", "image", {})
    (part,) = image.content
    assert isinstance(part, ImagePart)
    assert part.mime_type == "image/png"
    assert base64.b64decode(part.data).startswith(b"\x89PNG\r\n\x1a\n")
    assert image.text_for_model() == "[image image/png]"

    failed = await manager.call_tool("fake", "fail", {"message": "no such file"})
    assert failed.is_error
    assert "no such file" in failed.text_for_model()
    # A failing tool is the tool's business: the server stays ready.
    assert manager.status("fake").state is ServerState.READY


async def test_schema_rich_tool_takes_nested_arguments(make: Make) -> None:
    manager = make(stdio_config())
    await started(manager)
    result = await manager.call_tool(
        "fake",
        "plan_trip",
        {
            "destination": "Kyoto",
            "dates": {"start": "2027-04-01", "end": "2027-04-09"},
            "travellers": [{"name": "Ada"}, {"name": "Alan", "age": 41}],
            "budget": "modest",
        },
    )
    assert not result.is_error, result
    assert result.text_for_model() == (
        "train to Kyoto from 2027-04-01 to 2027-04-09 for Ada, Alan; budget modest; flexible=False"
    )


async def test_unknown_tool_and_unknown_server(make: Make, config: ServerConfig) -> None:
    manager = make(config)
    await started(manager)
    with pytest.raises(ToolCallFailed, match=r"The MCP server fake has no tool named 'nope'"):
        await manager.call_tool("fake", "nope", {})
    with pytest.raises(ServerUnavailable, match="There is no MCP server named 'other'"):
        await manager.call_tool("other", "echo", {"text": "x"})


async def test_rejected_arguments_come_back_as_an_error_result(make: Make) -> None:
    manager = make(stdio_config())
    await started(manager)
    result = await manager.call_tool("fake", "add", {"a": "not a number"})
    assert result.is_error
    assert "add" in result.text_for_model()


async def test_call_to_a_server_that_is_not_running(make: Make) -> None:
    manager = make(stdio_config())  # never started
    with pytest.raises(ServerUnavailable, match=r"The MCP server fake is not running"):
        await manager.call_tool("fake", "echo", {"text": "x"})


# -- timeouts and cancellation ------------------------------------------------------------
async def test_hanging_call_times_out_and_the_server_is_told(
    make: Make, config: ServerConfig
) -> None:
    manager = make(config)
    await started(manager)
    base = await stats(manager)  # the HTTP server is shared by the module's tests
    began = time.monotonic()
    with pytest.raises(
        ToolTimeout, match=r"hang on the MCP server fake did not answer within 0\.5 s"
    ):
        await manager.call_tool("fake", "hang", {"seconds": 60}, timeout_s=0.5)
    assert 0.5 <= time.monotonic() - began < 1.5
    assert manager.status("fake").state is ServerState.DEGRADED
    assert "did not answer within 0.5 s" in manager.status("fake").reason

    # The notifications/cancelled may land just after the timeout: ask the server.
    await wait_for_stats(manager, lambda s: s["cancelled"] == base["cancelled"] + 1)
    assert (await stats(manager))["in_flight"] == 0
    # A call that works makes it ready again.
    assert manager.status("fake").state is ServerState.READY
    if config.transport is Transport.STDIO:
        assert "cancelled" in manager.status("fake").stderr_tail


async def test_the_servers_own_timeout_applies(make: Make) -> None:
    manager = make(stdio_config(timeout_s=0.3))
    await started(manager)
    with pytest.raises(ToolTimeout, match=r"within 0\.3 s"):
        await manager.call_tool("fake", "hang", {"seconds": 60})


async def test_a_cancelled_call_is_cancelled_on_the_server(
    make: Make, config: ServerConfig
) -> None:
    manager = make(config)
    await started(manager)
    base = await stats(manager)  # the HTTP server is shared by the module's tests
    call = asyncio.create_task(manager.call_tool("fake", "hang", {"seconds": 60}))
    await wait_for_stats(manager, lambda s: s["in_flight"] == 1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await wait_for_stats(
        manager, lambda s: s["cancelled"] == base["cancelled"] + 1 and s["in_flight"] == 0
    )
    assert manager.status("fake").state is ServerState.READY


async def wait_for_stats(
    manager: McpManager, check: Callable[[dict[str, Any]], bool], limit_s: float = 10.0
) -> None:
    """Ask the server for its counters until ``check`` holds (fail after ``limit_s``)."""

    async def holds() -> dict[str, Any] | None:
        now = await stats(manager)
        return now if check(now) else None

    await wait_for_async(holds, limit_s, message="the server's counters")


async def test_calls_beyond_the_bound_wait_for_a_slot(make: Make) -> None:
    manager = make(stdio_config(), max_concurrent_calls=2)
    await started(manager)
    results = await asyncio.gather(
        *(manager.call_tool("fake", "hang", {"seconds": 0.3}) for _ in range(6))
    )
    assert [r.text_for_model() for r in results] == ["slept 0.3 s"] * 6
    counters = await stats(manager)
    assert counters["calls"] == 6
    # Six calls of 0.3 s each overlapped, but never more than two at a time.
    assert counters["max_in_flight"] == 2


async def test_the_loop_stays_responsive_while_a_tool_hangs(make: Make) -> None:
    manager = make(stdio_config())
    await started(manager)
    loop = asyncio.get_running_loop()
    lags: list[float] = []

    interval = 0.01
    timer: asyncio.TimerHandle | None = None

    def tick(expected: float) -> None:  # a 10 ms timer: how late each firing is
        nonlocal timer
        now = loop.time()
        lags.append(now - expected)
        timer = loop.call_later(interval, tick, now + interval)

    timer = loop.call_later(interval, tick, loop.time() + interval)
    try:
        with pytest.raises(ToolTimeout):
            await manager.call_tool("fake", "hang", {"seconds": 60}, timeout_s=1.0)
    finally:
        timer.cancel()
    assert len(lags) > 30
    assert max(lags) < 0.05, f"loop lag up to {max(lags) * 1000:.1f} ms"


# -- crashes, restarts, the breaker -------------------------------------------------------
async def test_crash_fails_with_the_stderr_tail_then_restarts(make: Make) -> None:
    manager = make(stdio_config())
    seen: list[ServerStatus] = []
    manager.changed.connect(seen.append)
    await started(manager)
    first_pid = await server_pid(manager)

    with pytest.raises(ToolCallFailed, match="lost its connection while running crash"):
        await manager.call_tool("fake", "crash", {})

    def failed() -> ServerStatus | None:
        return next((s for s in seen if s.state is ServerState.FAILED), None)

    status = await wait_for(failed, READY_S)
    assert status.reason.startswith("fake stopped unexpectedly: the connection was closed")
    assert "Restarting in 0.1 s." in status.reason
    assert status.stderr_tail[-2:] == ("fake-mcp: starting (stdio)", "crashing now")
    assert status.tools == ()
    assert not status.breaker_open

    again = await ready(manager)
    assert again.restarts == 1
    assert await server_pid(manager) != first_pid
    assert (await manager.call_tool("fake", "echo", {"text": "back"})).text_for_model() == "back"
    states = [s.state for s in seen]
    assert states == [
        ServerState.STARTING,
        ServerState.READY,
        ServerState.FAILED,
        ServerState.FAILED,  # restarts counted
        ServerState.STARTING,
        ServerState.READY,
    ]


async def test_breaker_opens_after_repeated_crashes_and_restart_closes_it(make: Make) -> None:
    manager = make(stdio_config(), breaker_crashes=3, breaker_window_s=60)
    await manager.start()
    for _ in range(3):
        await ready(manager)
        with pytest.raises(ToolCallFailed):
            await manager.call_tool("fake", "crash", {})
        await wait_for(lambda: manager.status("fake").state is ServerState.FAILED, READY_S)

    status = await wait_for(lambda: breaker_open(manager))
    assert status.state is ServerState.FAILED
    assert "failed 3 times within 60 s, so it is not restarted any more" in status.reason
    assert status.restarts == 2
    assert manager.tools() == []
    with pytest.raises(ServerUnavailable, match="not restarted any more"):
        await manager.call_tool("fake", "echo", {"text": "x"})

    await manager.restart("fake")
    status = await ready(manager)
    assert not status.breaker_open
    assert (await manager.call_tool("fake", "echo", {"text": "x"})).text_for_model() == "x"


async def test_http_server_that_went_away_is_noticed_and_restarted_by_hand(make: Make) -> None:
    fake = FakeMcpProcess("http")
    fake.start()
    try:
        manager = make(
            ServerConfig(name="fake", transport=Transport.HTTP, url=fake.url),
            breaker_crashes=3,
        )
        await started(manager)
        with pytest.raises(ToolCallFailed, match="lost its connection"):
            await manager.call_tool("fake", "crash", {})
        status = await wait_for(
            lambda: manager.status("fake").breaker_open and manager.status("fake")
        )
        assert status.state is ServerState.FAILED
        assert f"nothing answers at {fake.url}" in status.reason
        fake.stop()

        again = FakeMcpProcess("http", port=fake.port)  # the same address as before
        again.start()
        try:
            await manager.restart("fake")
            await ready(manager)
            assert (await manager.call_tool("fake", "echo", {"text": "x"})).text_for_model() == "x"
        finally:
            await manager.aclose()
            again.stop()
    finally:
        fake.stop()


async def test_a_command_that_does_not_exist(make: Make) -> None:
    manager = make(
        ServerConfig(name="ghost", command="/nonexistent/corral-mcp-server"),
        breaker_crashes=2,
    )
    await manager.start()
    status = await wait_for(
        lambda: manager.status("ghost").breaker_open and manager.status("ghost")
    )
    assert status.reason.startswith(
        "ghost could not start: the command '/nonexistent/corral-mcp-server' was not found."
    )


async def test_a_server_that_exits_at_once_shows_its_stderr(make: Make) -> None:
    code = "import sys; print('missing API token', file=sys.stderr); sys.exit(2)"
    manager = make(python_config("quits", code), backoff_initial_s=5.0)
    await manager.start()

    def failed() -> ServerStatus | None:
        status = manager.status("quits")
        return status if status.state is ServerState.FAILED else None

    status = await wait_for(failed, READY_S)
    assert status.reason.startswith("quits could not start:")
    assert "Restarting in 5.0 s." in status.reason
    assert status.stderr_tail == ("missing API token",)


async def test_a_server_that_never_answers_times_out(make: Make) -> None:
    # says something, then reads its stdin to the end: it never answers the handshake
    code = "import sys; print('thinking', file=sys.stderr, flush=True); sys.stdin.buffer.read()"
    manager = make(python_config("mute", code), connect_timeout_s=0.5, backoff_initial_s=5.0)
    await manager.start()

    def failed() -> ServerStatus | None:
        status = manager.status("mute")
        return status if status.state is ServerState.FAILED else None

    status = await wait_for(failed, 15)
    assert status.reason.startswith("mute could not start: it did not get ready within 0.5 s.")
    assert status.stderr_tail == ("thinking",)


# -- list changes, environment, headers ---------------------------------------------------
async def test_tools_list_changed_refreshes_the_tools(make: Make, config: ServerConfig) -> None:
    manager = make(config)
    await started(manager)
    seen: list[ServerStatus] = []
    manager.changed.connect(seen.append)

    def names() -> set[str]:
        return {t.name for t in manager.tools()}

    assert (await manager.call_tool("fake", "toggle_extra", {})).text_for_model() == "added"
    await wait_for(lambda: "extra" in names())
    assert any("extra" in {t.name for t in s.tools} for s in seen)
    assert (await manager.call_tool("fake", "extra", {})).text_for_model() == "extra"

    assert (await manager.call_tool("fake", "toggle_extra", {})).text_for_model() == "removed"
    await wait_for(lambda: "extra" not in names())
    with pytest.raises(ToolCallFailed, match="no tool named 'extra'"):
        await manager.call_tool("fake", "extra", {})


async def test_stdio_server_gets_only_the_allow_listed_environment(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_TEST_SECRET", "s3cret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("LC_MESSAGES", "C.UTF-8")
    manager = make(stdio_config(env={"CORRAL_CONFIGURED": "yes", "LANG": "en_GB.UTF-8"}))
    await started(manager)
    result = await manager.call_tool("fake", "environment", {})
    env = dict(result.structured or {})
    assert "CORRAL_TEST_SECRET" not in env
    assert env["CORRAL_CONFIGURED"] == "yes"
    assert env["LANG"] == "en_GB.UTF-8"  # configured beats inherited
    assert env["LC_MESSAGES"] == "C.UTF-8"
    assert env["PATH"] == os.environ["PATH"]
    unexpected = {
        name
        for name in env
        if name not in POSIX_ALLOWED and not name.startswith("LC_") and name != "CORRAL_CONFIGURED"
    }
    assert not unexpected, unexpected


def test_child_environment_rules() -> None:
    parent = {
        "PATH": "/bin",
        "HOME": "/home/u",
        "LC_TIME": "C",
        "AWS_SECRET_ACCESS_KEY": "x",
        "BASH_FUNC_f%%": "() { echo; }",
        "TERM": "() { evil; }",
    }
    assert child_environment({"K": "v"}, parent, windows=False) == {
        "PATH": "/bin",
        "HOME": "/home/u",
        "LC_TIME": "C",
        "K": "v",
    }
    windows = {"Path": "C:\\Windows", "SystemRoot": "C:\\Windows", "APPDATA": "a", "GH_TOKEN": "t"}
    assert child_environment({}, windows, windows=True) == {
        "Path": "C:\\Windows",
        "SystemRoot": "C:\\Windows",
        "APPDATA": "a",
    }


async def test_configured_headers_reach_the_http_server(
    make: Make, http_fake: FakeMcpProcess
) -> None:
    headers = {"X-Corral-Test": "abc", "Authorization": "Bearer t0ken"}
    manager = make(
        ServerConfig(name="fake", transport=Transport.HTTP, url=http_fake.url, headers=headers)
    )
    await started(manager)
    seen = (await manager.call_tool("fake", "headers", {})).structured or {}
    assert seen["x-corral-test"] == "abc"
    assert seen["authorization"] == "Bearer t0ken"


# -- configuration changes and shutdown ---------------------------------------------------
async def test_aclose_leaves_no_child_process(make: Make) -> None:
    manager = make(stdio_config("one"), stdio_config("two"))
    await manager.start()
    await ready(manager, "one")
    await ready(manager, "two")
    pids = [await server_pid(manager, "one"), await server_pid(manager, "two")]
    assert all(psutil.pid_exists(pid) for pid in pids)
    await manager.aclose()
    assert all(gone(pid) for pid in pids), pids
    assert [s.state for s in manager.statuses()] == [ServerState.STOPPED] * 2
    assert manager.tools() == []


async def test_set_configs_starts_stops_and_restarts(make: Make) -> None:
    manager = make(stdio_config("keep"), stdio_config("edit"), stdio_config("drop"))
    await manager.start()
    for name in ("keep", "edit", "drop"):
        await ready(manager, name)
    keep, edit, drop = [await server_pid(manager, n) for n in ("keep", "edit", "drop")]

    await manager.set_configs(
        [
            stdio_config("keep"),
            stdio_config("edit", env={"CHANGED": "1"}),
            stdio_config("off", enabled=False),
            stdio_config("new"),
        ]
    )
    assert gone(drop)
    assert gone(edit)
    assert [s.name for s in manager.statuses()] == ["keep", "edit", "off", "new"]
    assert manager.status("drop").reason == "There is no MCP server named 'drop'."
    off = manager.status("off")
    assert (off.state, off.reason) == (ServerState.STOPPED, "Disabled.")
    await ready(manager, "edit")
    await ready(manager, "new")
    assert await server_pid(manager, "keep") == keep  # untouched
    env = (await manager.call_tool("edit", "environment", {})).structured or {}
    assert env["CHANGED"] == "1"

    await manager.set_configs([stdio_config("keep", enabled=False)])
    status = manager.status("keep")
    assert (status.state, status.reason) == (ServerState.STOPPED, "Disabled.")
    assert gone(keep)
    with pytest.raises(ServerUnavailable, match="disabled"):
        await manager.restart("keep")


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(McpConfigError, match="Two MCP servers are named 'x'"):
        McpManager([stdio_config("x"), stdio_config("x")])


# -- one-off sessions ---------------------------------------------------------------------
async def test_test_connection_lists_tools_or_says_why(make: Make) -> None:
    manager = make()
    good = await manager.test_connection(stdio_config())
    assert good.state is ServerState.READY
    assert {t.name for t in good.tools} == FAKE_TOOLS
    assert good.stderr_tail == ("fake-mcp: starting (stdio)",)

    code = "import sys; print('bad flag --x', file=sys.stderr); sys.exit(1)"
    bad = await manager.test_connection(python_config("bad", code))
    assert bad.state is ServerState.FAILED
    assert bad.reason.startswith("bad could not start:")
    assert bad.stderr_tail == ("bad flag --x",)

    nowhere = await manager.test_connection(
        ServerConfig(name="web", transport=Transport.HTTP, url="http://127.0.0.1:9/mcp")
    )
    assert nowhere.reason == "web could not start: nothing answers at http://127.0.0.1:9/mcp."
    empty = await manager.test_connection(ServerConfig(name="empty"))
    assert empty.reason == "empty could not start: no command is configured."


async def test_detect_transport(
    make: Make, http_fake: FakeMcpProcess, sse_fake: FakeMcpProcess
) -> None:
    manager = make()
    assert await manager.detect_transport(http_fake.url) is Transport.HTTP
    assert await manager.detect_transport(sse_fake.url) is Transport.SSE
    with pytest.raises(McpError, match=r"No MCP server answers at http://127.0.0.1:9/x\. "):
        await manager.detect_transport("http://127.0.0.1:9/x")
    with pytest.raises(McpConfigError, match="is not an http:// or https:// address"):
        await manager.detect_transport("ftp://127.0.0.1/x")


async def test_an_idle_http_server_that_dies_is_noticed_without_a_call(make: Make) -> None:
    fake = FakeMcpProcess("http")
    fake.start()
    try:
        manager = make(
            ServerConfig(name="fake", transport=Transport.HTTP, url=fake.url),
            idle_ping_s=0.3,
            breaker_crashes=1,
        )
        await started(manager)
        await ready(manager)
        fake.stop()  # the server goes away while nothing is asked of it
        status = await wait_for(
            lambda: manager.status("fake").state is ServerState.FAILED and manager.status("fake"),
            timeout=10,
        )
        assert "fake" in status.reason
    finally:
        fake.stop()
