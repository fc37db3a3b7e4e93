"""The MCP SDK is not imported until a server is connected.

Importing ``mcp`` costs tens of megabytes and most of a second, so a start of the app with
no MCP server configured must not pay for it. Checked in a fresh interpreter (this one has
imported the SDK long ago): the MCP services are built the way ``app.main.compose`` builds
them, on an empty configuration, started and stopped; then a server is configured, and
the SDK comes in (off the event loop's thread) and the server gets ready.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SDK_MODULES = ("mcp", "httpx2", "app.core.mcp.session")

SCRIPT = textwrap.dedent(
    """
    import asyncio, importlib.abc, sys, threading
    from pathlib import Path

    SDK_MODULES = {sdk_modules!r}
    imported_on_main_thread = []

    class Watch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "mcp":
                on_main = threading.current_thread() is threading.main_thread()
                imported_on_main_thread.append(on_main)
            return None

    sys.meta_path.insert(0, Watch())

    from keyring.backends import fail

    from app.core.mcp.allow import ConfigAllowList
    from app.core.mcp.config import McpConfigStore
    from app.core.mcp.manager import McpManager
    from app.core.mcp.types import ServerConfig, ServerState
    from app.core.secrets import SecretStore
    from tests.support.waiting import wait_for

    def sdk_loaded():
        return [name for name in SDK_MODULES if name in sys.modules]

    async def main(folder, root):
        secrets = SecretStore(fail.Keyring())
        store = McpConfigStore(folder / "mcp.json", secrets)  # no file: nothing configured
        assert not store.load().problem
        ConfigAllowList(store)
        manager = McpManager(store.servers(), oauth_secrets=secrets)
        await manager.start()
        assert manager.statuses() == [] and manager.tools() == []
        await manager.aclose()
        assert not sdk_loaded(), sdk_loaded()
        print("empty: not imported", flush=True)

        await manager.start()
        fake = ServerConfig(
            name="fake",
            command=sys.executable,
            args=("-m", "tests.fakes.mcp_server"),
            cwd=root,
        )
        await manager.set_configs([fake])

        def ready():
            status = manager.status("fake")
            assert status.state is ServerState.READY, status
            return status

        try:
            status = await wait_for(ready, 30.0, message="fake ready")
            result = await manager.call_tool("fake", "echo", {{"text": "hello"}})
        finally:
            await manager.aclose()
        assert len(status.tools) > 1 and result.content[0].text == "hello", result
        assert sdk_loaded() == list(SDK_MODULES), sdk_loaded()
        assert imported_on_main_thread == [False], imported_on_main_thread
        print("configured: imported off the loop and ready", flush=True)

    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
    """
).format(sdk_modules=SDK_MODULES)


def test_the_sdk_is_imported_only_once_a_server_is_configured(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(folder), str(ROOT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "empty: not imported",
        "configured: imported off the loop and ready",
    ]
