"""A small MCP client for the official conformance suite, built on :class:`McpManager`.

    python -m app.core.mcp.conformance <server-url>

The suite (``npx @modelcontextprotocol/conformance client --command "<this command>"
--scenario initialize``) starts a scenario server, runs this command with the server's URL
as the last argument and names the scenario in ``MCP_CONFORMANCE_SCENARIO``. The client
connects over streamable HTTP, initializes, lists the tools and, except in the
``initialize`` scenario, calls every tool once with arguments made up from its input
schema. It exits 0 when all of that worked, 1 otherwise, with the reason on stderr.

``localhost`` in the URL is replaced by ``127.0.0.1``: Corral connects to IPv4 loopback,
and the suite's servers listen on every address. In the ``auth/*`` scenarios the URL is
kept as it is (the protected resource metadata names it), the sign-in "browser" is an
HTTP client that follows the redirects to Corral's loopback callback, the tokens are
kept in memory only, and a client given in ``MCP_CONFORMANCE_CONTEXT`` (``client_id``,
``client_secret``) is used as a pre-registered client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from keyring.backends import fail

from app.core.mcp.manager import McpManager
from app.core.mcp.oauth import follow_in_http_client
from app.core.mcp.types import McpError, ServerConfig, ServerState, ServerStatus, Transport
from app.core.secrets import SecretStore

NAME = "conformance"
# The client id metadata document the suite's auth/basic-cimd scenario expects.
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"


def loopback_url(url: str) -> str:
    """``url`` with a ``localhost`` host replaced by ``127.0.0.1``."""
    parts = urlsplit(url)
    if parts.hostname != "localhost":
        return url
    netloc = "127.0.0.1" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit(parts._replace(netloc=netloc))


def sample_arguments(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments for a tool: each required property (and every property with a default)
    gets its default, its first enum value, or a small value of its type."""
    properties: Mapping[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    out: dict[str, Any] = {}
    for index, (name, spec) in enumerate(properties.items()):
        if not isinstance(spec, Mapping):
            continue
        if "default" in spec:
            out[name] = spec["default"]
        elif name in required:
            out[name] = _sample_value(spec, index)
    return out


def _sample_value(spec: Mapping[str, Any], index: int) -> Any:
    if spec.get("enum"):
        return spec["enum"][0]
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind is None and isinstance(spec.get("anyOf"), list) and spec["anyOf"]:
        return _sample_value(spec["anyOf"][0], index)
    if kind in ("number", "integer"):
        return index + 1
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return sample_arguments(spec)
    return "test"


async def run(url: str, scenario: str, timeout_s: float = 20.0) -> int:
    auth = scenario.startswith("auth/")
    config = ServerConfig(
        name=NAME, transport=Transport.HTTP, url=url if auth else loopback_url(url)
    )
    manager = McpManager(
        [config],
        connect_timeout_s=timeout_s,
        call_timeout_s=timeout_s,
        breaker_crashes=1,
        oauth_secrets=SecretStore(fail.Keyring()),  # type: ignore[no-untyped-call]
        open_browser=follow_in_http_client,
        sign_in_timeout_s=timeout_s,
        oauth_client_metadata_url=CLIENT_METADATA_URL if auth else None,
    )
    context = _context()
    if context.get("client_id"):
        client = {
            "client_id": context["client_id"],
            "client_secret": context.get("client_secret"),
            "token_endpoint_auth_method": "client_secret_basic",
        }
        manager.oauth_store(NAME).save("client", json.dumps(client))
    settled = asyncio.Event()

    def on_change(status: ServerStatus) -> None:
        if status.state in (ServerState.READY, ServerState.FAILED):
            settled.set()

    manager.changed.connect(on_change)
    try:
        await manager.start()
        async with asyncio.timeout(timeout_s + 5.0):
            await settled.wait()
        status = manager.status(NAME)
        if status.state is not ServerState.READY:
            print(f"could not connect: {status.reason}", file=sys.stderr)
            return 1
        print(f"connected to {status.server_version or url}: {len(status.tools)} tools")
        if scenario == "initialize":
            return 0
        failures = 0
        for tool in status.tools:
            arguments = sample_arguments(tool.input_schema)
            try:
                result = await manager.call_tool(NAME, tool.name, arguments)
            except McpError as exc:
                print(f"{tool.name}: {exc}", file=sys.stderr)
                failures += 1
                continue
            print(f"{tool.name}({arguments}) -> {result.text_for_model()}")
            failures += result.is_error
        return 1 if failures else 0
    except TimeoutError:
        print(f"no answer from {url} within {timeout_s:g} s", file=sys.stderr)
        return 1
    finally:
        await manager.aclose()


def _context() -> dict[str, Any]:
    try:
        context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    except ValueError:
        return {}
    return context if isinstance(context, dict) else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.core.mcp.conformance")
    parser.add_argument("url", help="the MCP server's URL (streamable HTTP)")
    parser.add_argument(
        "--scenario",
        default=os.environ.get("MCP_CONFORMANCE_SCENARIO", ""),
        help="the scenario (default: $MCP_CONFORMANCE_SCENARIO)",
    )
    args = parser.parse_args(argv)
    return asyncio.run(run(args.url, args.scenario))


if __name__ == "__main__":
    sys.exit(main())
