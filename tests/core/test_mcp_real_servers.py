"""McpManager against MCP servers written by others, over stdio.

- ``mcp-server-time`` (PyPI, a test dependency): run as ``python -m mcp_server_time``.
- ``@modelcontextprotocol/server-everything`` (npm): installed once per test session with
  ``npm install --prefix`` into a temporary directory and run with node. Skipped, with the
  reason, when node or npm is missing; a failing install (no registry) fails the tests.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from app.core.mcp.manager import McpManager
from app.core.mcp.types import (
    ImagePart,
    ResourcePart,
    ServerConfig,
    ServerState,
    ServerStatus,
    TextPart,
    ToolTimeout,
)
from tests.support.waiting import wait_for

EVERYTHING = "@modelcontextprotocol/server-everything"
READY_S = 30.0


async def ready(manager: McpManager, name: str) -> ServerStatus:
    def check() -> ServerStatus:
        status = manager.status(name)
        assert status.state is ServerState.READY, status
        return status

    return await wait_for(check, READY_S, message=f"{name} ready")


@pytest.fixture
async def time_server() -> AsyncIterator[McpManager]:
    config = ServerConfig(
        name="time",
        command=sys.executable,
        args=("-m", "mcp_server_time", "--local-timezone", "UTC"),
    )
    manager = McpManager([config], connect_timeout_s=READY_S)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.aclose()


async def test_mcp_server_time(time_server: McpManager) -> None:
    status = await ready(time_server, "time")
    assert status.server_version.startswith("mcp-time ")
    assert {t.name for t in status.tools} == {"get_current_time", "convert_time"}

    now = await time_server.call_tool("time", "get_current_time", {"timezone": "UTC"})
    assert not now.is_error
    assert now.structured is not None
    assert now.structured["timezone"] == "UTC"
    assert now.structured["datetime"].endswith("+00:00")

    converted = await time_server.call_tool(
        "time",
        "convert_time",
        {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
    )
    assert converted.structured is not None
    assert converted.structured["target"]["datetime"].endswith("T21:00:00+09:00")
    assert converted.structured["time_difference"] == "+9.0h"

    bad = await time_server.call_tool("time", "get_current_time", {"timezone": "Mars/Olympus"})
    assert bad.is_error
    assert "Mars/Olympus" in bad.text_for_model()


@pytest.fixture(scope="session")
def everything_js(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(f"node and npm are needed to run {EVERYTHING} (not found on PATH)")
    prefix = tmp_path_factory.mktemp("npm")
    try:
        subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", EVERYTHING],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(
            f"npm could not install {EVERYTHING} (is the npm registry reachable?):\n"
            f"{exc.stderr[-2000:]}"
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"npm did not install {EVERYTHING} within 300 s (no registry?)")
    package = json.loads((prefix / "node_modules" / EVERYTHING / "package.json").read_text())
    yield prefix / "node_modules" / EVERYTHING / package["bin"]["mcp-server-everything"]


@pytest.fixture
async def everything(
    everything_js: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[McpManager]:
    monkeypatch.setenv("CORRAL_TEST_SECRET", "s3cret")  # must not reach the server
    node = shutil.which("node")
    assert node is not None
    config = ServerConfig(
        name="everything",
        command=node,
        args=(str(everything_js), "stdio"),
        env={"CORRAL_CONFIGURED": "yes"},
    )
    manager = McpManager([config], connect_timeout_s=READY_S)
    await manager.start()
    try:
        yield manager
    finally:
        await manager.aclose()


async def test_server_everything(everything: McpManager) -> None:
    status = await ready(everything, "everything")
    tools = {t.name: t for t in status.tools}
    assert {"echo", "get-sum", "get-tiny-image", "get-env", "get-structured-content"} <= set(tools)
    assert tools["echo"].read_only is True
    assert tools["echo"].display_name == "Echo Tool"
    assert tools["get-structured-content"].output_schema is not None

    echo = await everything.call_tool("everything", "echo", {"message": "hi"})
    assert echo.content == (TextPart("Echo: hi"),)

    total = await everything.call_tool("everything", "get-sum", {"a": 2, "b": 3})
    assert "5" in total.text_for_model()

    image = await everything.call_tool("everything", "get-tiny-image", {})
    images = [p for p in image.content if isinstance(p, ImagePart)]
    assert len(images) == 1
    assert images[0].mime_type == "image/png"
    assert base64.b64decode(images[0].data).startswith(b"\x89PNG")

    weather = await everything.call_tool(
        "everything", "get-structured-content", {"location": "Chicago"}
    )
    assert weather.structured is not None
    assert set(weather.structured) == {"temperature", "conditions", "humidity"}

    links = await everything.call_tool("everything", "get-resource-links", {"count": 2})
    uris = [p.uri for p in links.content if isinstance(p, ResourcePart)]
    assert len(uris) == 2
    assert all(uri.startswith("demo://") for uri in uris)

    reference = await everything.call_tool(
        "everything", "get-resource-reference", {"resourceType": "Text", "resourceId": 1}
    )
    (embedded,) = [p for p in reference.content if isinstance(p, ResourcePart)]
    assert embedded.text.startswith("Resource 1:")

    env = json.loads((await everything.call_tool("everything", "get-env", {})).text_for_model())
    assert env["CORRAL_CONFIGURED"] == "yes"
    assert "CORRAL_TEST_SECRET" not in env
    assert "PATH" in env


async def test_server_everything_long_operation_times_out(everything: McpManager) -> None:
    await ready(everything, "everything")
    with pytest.raises(ToolTimeout, match="trigger-long-running-operation"):
        await everything.call_tool(
            "everything",
            "trigger-long-running-operation",
            {"duration": 30, "steps": 3},
            timeout_s=0.5,
        )
    # The server is still there and answers the next call.
    echo = await everything.call_tool("everything", "echo", {"message": "still here"})
    assert echo.text_for_model() == "Echo: still here"
    assert everything.status("everything").state is ServerState.READY
