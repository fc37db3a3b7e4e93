"""The MCP manager: every configured tool server kept running, its tools listed and callable.

What leaves it is plain values from :mod:`app.core.mcp.types`: statuses, tools, results
and :class:`McpError`\\ s. The ``mcp`` SDK itself is used through
:mod:`app.core.mcp.session`, which is imported only when the first server is connected
(or tested), in a worker thread: the SDK is big and slow to import, and most starts of the
app have no MCP server configured at all.

One owner task per server opens the SDK's client inside itself and keeps it open: the SDK
enters anyio cancel scopes and task groups when a connection opens, and they must be left
in the task that entered them. The owner connects (stdio child process, streamable HTTP
or SSE), initializes in the 2025 handshake mode (``mode="legacy"``: the discovery probe of
``auto`` can add ten seconds to every connect of a server that ignores it), lists the tools
and then waits for work of its own: a ``tools/list_changed`` notification (list again), a
call that lost its connection (ping to see whether the server is still there), a stop, or
the end of the connection (the server crashed). Tool calls themselves are requests on the
open session, made from the caller's task: each call's timeout and cancellation scopes
are entered and left there, and a call that times out or is cancelled sends
``notifications/cancelled`` to the server (the SDK does that for an abandoned request).

A server that crashes or cannot start is restarted after a growing delay (exponential
backoff). If it fails too often in a short time, a circuit breaker stops the restarts
until the user asks for one (:meth:`McpManager.restart`). The last 200 lines a stdio
server wrote to stderr are kept with its status, so the reason can be shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
import webbrowser
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from app.core.events import Event
from app.core.mcp.oauth import BrowserOpener, OAuthTokenStore, SignInError
from app.core.mcp.stdio import StderrTail
from app.core.mcp.types import (
    McpConfigError,
    McpError,
    ServerConfig,
    ServerState,
    ServerStatus,
    ServerUnavailable,
    ToolCallFailed,
    ToolInfo,
    ToolResult,
    ToolTimeout,
    Transport,
)
from app.core.secrets import SecretStore

if TYPE_CHECKING:
    from mcp import Client

    from app.core.mcp.session import ConnectOptions

log = logging.getLogger(__name__)

__all__ = ["McpManager"]

# The SDK's own per-request timer is set a little later than Corral's, so that Corral's
# fires first and the caller gets a ToolTimeout either way.
_SDK_TIMER_MARGIN_S: Final = 1.0
# How long a server may take to stop when asked before it is cancelled hard (a stdio
# child gets stdin closed, then SIGTERM, then SIGKILL: about six seconds at most).
_STOP_GRACE_S: Final = 10.0
# The longest a ping may take after a call lost its connection.
_PING_TIMEOUT_S: Final = 10.0
# Where the SDK is used; imported by _import_sdk() when it is first needed.
_SDK_MODULE: Final = "app.core.mcp.session"
_sdk_imported = False

_LIVE = (ServerState.READY, ServerState.DEGRADED)


class _ConnectionLost(Exception):
    """The session ended or stopped answering (a crash, from the manager's point of view)."""


@dataclass(eq=False)
class _Slot:
    """One configured server and its owner task (internal, touched only on the loop)."""

    config: ServerConfig
    status: ServerStatus
    semaphore: asyncio.Semaphore
    tail: StderrTail = field(default_factory=StderrTail)
    task: asyncio.Task[None] | None = None
    client: Client | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pending: set[str] = field(default_factory=set)
    stopping: bool = False
    serving: bool = False
    reached_ready: bool = False
    crashes: deque[float] = field(default_factory=deque)

    def ask(self, what: str) -> None:
        """Hand the owner task a piece of work ("closed", "refresh", "check")."""
        self.pending.add(what)
        self.wake.set()


class McpManager:
    """Runs the configured MCP servers and calls their tools.

    Attributes:
        changed: emitted with a server's new status whenever its state, reason, tools,
            restart count or breaker changes (the stderr tail rides along, up to date).
        connect_timeout_s: limit for starting, initializing and listing the tools.
        call_timeout_s: default limit of a tool call (a server's ``timeout_s`` and the
            ``timeout_s`` of a call take precedence).
        max_concurrent_calls: calls in flight per server; more wait for a free slot
            (the wait counts against the call's timeout).
        backoff_initial_s, backoff_max_s: the delay before restarting a failed server
            doubles from the first to at most the second.
        breaker_crashes, breaker_window_s: that many failures within the window open the
            circuit breaker: no more restarts until :meth:`restart`.
        oauth_secrets: where OAuth tokens of remote servers are kept (the OS keyring).
        open_browser: opens an authorization URL for the user (``webbrowser.open``).
        sign_in_timeout_s: how long a sign-in in the browser may take.
        oauth_client_metadata_url: an https URL of Corral's client metadata document, used
            as the client id where the authorization server supports that (none: the
            client registers itself).
        idle_ping_s: an HTTP or SSE server that has had nothing to do for this long is
            pinged, so that one that died while idle is marked failed (0: never).

    A streamable HTTP or SSE server configured without an ``Authorization`` header signs
    in with OAuth when it answers 401: the authorization URL is opened in the browser and
    the status says "waiting for you to sign in in the browser" until the redirect comes
    back to a loopback address, or the sign-in times out (then the server is not
    restarted by itself).
    """

    def __init__(
        self,
        configs: Iterable[ServerConfig] = (),
        *,
        connect_timeout_s: float = 30.0,
        call_timeout_s: float = 120.0,
        max_concurrent_calls: int = 4,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        breaker_crashes: int = 5,
        breaker_window_s: float = 120.0,
        idle_ping_s: float = 30.0,
        oauth_secrets: SecretStore | None = None,
        open_browser: BrowserOpener = webbrowser.open,
        sign_in_timeout_s: float = 300.0,
        oauth_client_metadata_url: str | None = None,
    ) -> None:
        if max_concurrent_calls < 1:
            raise ValueError("max_concurrent_calls must be at least 1")
        if breaker_crashes < 1:
            raise ValueError("breaker_crashes must be at least 1")
        self.changed: Event[ServerStatus] = Event("mcp.changed")
        self.connect_timeout_s = connect_timeout_s
        self.call_timeout_s = call_timeout_s
        self.max_concurrent_calls = max_concurrent_calls
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.breaker_crashes = breaker_crashes
        self.breaker_window_s = breaker_window_s
        self.idle_ping_s = idle_ping_s
        self.open_browser = open_browser
        self.sign_in_timeout_s = sign_in_timeout_s
        self.oauth_client_metadata_url = oauth_client_metadata_url
        self._oauth_secrets = oauth_secrets
        self._oauth_stores: dict[str, OAuthTokenStore] = {}
        self._slots: dict[str, _Slot] = {}
        self._running = False
        for config in _unique(configs):
            self._slots[config.name] = self._new_slot(config)

    # -- reading ----------------------------------------------------------------------
    def status(self, name: str) -> ServerStatus:
        """The server's status now (a stopped one with a reason if it is not configured)."""
        slot = self._slots.get(name)
        if slot is None:
            return ServerStatus(name, reason=f"There is no MCP server named {name!r}.")
        return replace(slot.status, stderr_tail=slot.tail.lines())

    def statuses(self) -> list[ServerStatus]:
        return [self.status(name) for name in self._slots]

    def tools(self) -> list[ToolInfo]:
        """The tools of every running (ready or degraded) server, in configuration order."""
        out: list[ToolInfo] = []
        for slot in self._slots.values():
            if slot.config.enabled and slot.status.state in _LIVE:
                out.extend(slot.status.tools)
        return out

    # -- running ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start every enabled server (call with the event loop running)."""
        if self._running:
            return
        self._running = True
        for slot in self._slots.values():
            if slot.config.enabled:
                self._launch(slot)
            else:
                self._publish(slot, state=ServerState.STOPPED, reason="Disabled.")

    async def aclose(self) -> None:
        """Stop every server (stdio children are ended) and wait until they are down."""
        self._running = False
        await asyncio.gather(
            *(
                self._halt(slot, "Stopped." if slot.config.enabled else "Disabled.")
                for slot in self._slots.values()
            )
        )

    async def set_configs(self, configs: Iterable[ServerConfig]) -> None:
        """Replace the configuration: start new or enabled servers, stop removed or disabled
        ones, restart the ones whose configuration changed. Unchanged ones keep running."""
        wanted = {config.name: config for config in _unique(configs)}
        halts: list[Awaitable[None]] = []
        for name in [n for n in self._slots if n not in wanted]:
            gone = self._slots.pop(name)
            halts.append(self._halt(gone, "Removed from the configuration."))
        added: list[_Slot] = []
        edited: list[tuple[_Slot, ServerConfig]] = []
        for name, config in wanted.items():
            slot = self._slots.get(name)
            if slot is None:
                self._slots[name] = slot = self._new_slot(config)
                added.append(slot)
            elif slot.config != config:
                halts.append(self._halt(slot, "Disabled." if not config.enabled else "Restarting."))
                edited.append((slot, config))
        await asyncio.gather(*halts)
        self._slots = {name: self._slots[name] for name in wanted}  # configuration order
        for slot in added:
            self.changed.emit(self.status(slot.config.name))
        for slot, config in edited:
            slot.config = config
            slot.crashes.clear()
            self._publish(
                slot,
                state=ServerState.STOPPED,
                reason="" if config.enabled else "Disabled.",
                breaker_open=False,
            )
        for slot in [*added, *(s for s, _ in edited)]:
            if slot.config.enabled and self._running:
                self._launch(slot)

    async def restart(self, name: str) -> None:
        """Stop the server if it runs and start it again; closes an open circuit breaker."""
        slot = self._slots.get(name)
        if slot is None:
            raise ServerUnavailable(f"There is no MCP server named {name!r}.")
        if not slot.config.enabled:
            raise ServerUnavailable(f"The MCP server {name} is disabled; enable it first.")
        await self._halt(slot, "Restarting.")
        slot.crashes.clear()
        self._publish(slot, breaker_open=False)
        if self._running:
            self._launch(slot)

    # -- calling ----------------------------------------------------------------------
    async def call_tool(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        timeout_s: float | None = None,
    ) -> ToolResult:
        """Call one tool and return its result (an ``is_error`` result is the tool's own
        failure, for the model to see).

        Raises:
            ServerUnavailable: the server is not running; nothing was sent.
            ToolTimeout: no answer in time; the server was told to cancel the call.
            ToolCallFailed: unknown tool, rejected arguments, a protocol error, or the
                connection was lost during the call.
        """
        slot = self._slots.get(server)
        if slot is None:
            raise ServerUnavailable(f"There is no MCP server named {server!r}.")
        client = slot.client
        status = slot.status
        if client is None or status.state not in _LIVE:
            why = f": {status.reason}" if status.reason else f" ({status.state.value})."
            raise ServerUnavailable(
                f"The MCP server {server} is not running, so {tool} was not called{why}"
            )
        if all(t.name != tool for t in status.tools):
            raise ToolCallFailed(f"The MCP server {server} has no tool named {tool!r}.")
        timeout = timeout_s if timeout_s is not None else slot.config.timeout_s
        if timeout is None:
            timeout = self.call_timeout_s
        from app.core.mcp import session as sdk  # imported already: the client came from it

        try:
            async with asyncio.timeout(timeout):
                async with slot.semaphore:
                    result = await client.call_tool(
                        tool, dict(arguments), read_timeout_seconds=timeout + _SDK_TIMER_MARGIN_S
                    )
        except TimeoutError as exc:
            raise self._timed_out(slot, tool, timeout) from exc
        except sdk.MCPError as exc:
            if exc.code == sdk.REQUEST_TIMEOUT:
                raise self._timed_out(slot, tool, timeout) from exc
            if exc.code == sdk.CONNECTION_CLOSED:
                slot.ask("check")
                raise ToolCallFailed(
                    f"The MCP server {server} lost its connection while running {tool}."
                ) from exc
            raise ToolCallFailed(
                f"{tool} on the MCP server {server} failed: {exc.message}"
            ) from exc
        except (sdk.ValidationError, RuntimeError) as exc:
            raise ToolCallFailed(
                f"The MCP server {server} sent a result for {tool} that is not valid: {exc}"
            ) from exc
        if slot.status.state is ServerState.DEGRADED and slot.client is client:
            self._publish(slot, state=ServerState.READY, reason="")
        return sdk.tool_result(result)

    def _timed_out(self, slot: _Slot, tool: str, timeout: float) -> ToolTimeout:
        if slot.status.state is ServerState.READY:
            self._publish(
                slot,
                state=ServerState.DEGRADED,
                reason=f"A call of {tool} did not answer within {timeout:g} s.",
            )
        return ToolTimeout(
            f"{tool} on the MCP server {slot.config.name} did not answer within {timeout:g} s; "
            "the server was told to stop it."
        )

    # -- one-off sessions -------------------------------------------------------------
    async def test_connection(self, config: ServerConfig) -> ServerStatus:
        """Start a one-off session with ``config``, list its tools and close it.

        Never raises for a server that does not work: the status says why (state
        ``failed``, reason and stderr tail), or lists the tools (state ``ready``).
        """
        tail = StderrTail()
        try:
            _check_config(config)
            await _import_sdk()
            from app.core.mcp import session as sdk

            async with contextlib.AsyncExitStack() as stack:
                async with asyncio.timeout(self.connect_timeout_s) as deadline:
                    on_waiting = self._pause_while_waiting(deadline, None)
                    client = await sdk.open_client(
                        config, stack, tail, self._connect_options(), on_waiting=on_waiting
                    )
                    tools = await sdk.list_tools(client, config.name)
                version = sdk.server_version(client)
        except Exception as exc:
            why = self._describe(exc, config)
            return ServerStatus(
                config.name,
                ServerState.FAILED,
                reason=f"{config.name} could not start: {why}.",
                stderr_tail=tail.lines(),
            )
        return ServerStatus(
            config.name,
            ServerState.READY,
            stderr_tail=tail.lines(),
            tools=tools,
            server_version=version,
        )

    async def detect_transport(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> Transport:
        """Which HTTP transport the server at ``url`` speaks: streamable HTTP is tried first,
        then SSE.

        Raises:
            McpConfigError: not an http(s) URL.
            McpError: it answers neither way (the message has both reasons).
        """
        _check_url(url)
        reasons: list[str] = []
        for transport in (Transport.HTTP, Transport.SSE):
            config = ServerConfig(name=url, transport=transport, url=url, headers=headers or {})
            status = await self.test_connection(config)
            if status.state is ServerState.READY:
                return transport
            label = "streamable HTTP" if transport is Transport.HTTP else "SSE"
            reasons.append(f"{label}: {status.reason.removeprefix(f'{url} could not start: ')}")
        raise McpError(f"No MCP server answers at {url}. " + " ".join(reasons))

    # -- the owner task ---------------------------------------------------------------
    def _new_slot(self, config: ServerConfig) -> _Slot:
        state_reason = "" if config.enabled else "Disabled."
        return _Slot(
            config=config,
            status=ServerStatus(config.name, ServerState.STOPPED, reason=state_reason),
            semaphore=asyncio.Semaphore(self.max_concurrent_calls),
        )

    def _launch(self, slot: _Slot) -> None:
        if slot.task is not None and not slot.task.done():
            return
        slot.stopping = False
        slot.pending.clear()
        slot.wake.clear()
        slot.task = asyncio.get_running_loop().create_task(
            self._own(slot), name=f"mcp server {slot.config.name}"
        )

    async def _halt(self, slot: _Slot, reason: str) -> None:
        task, slot.task = slot.task, None
        if task is not None and not task.done():
            slot.stopping = True
            if slot.serving:
                slot.wake.set()  # a graceful stop: the session is closed by its owner
                await asyncio.wait({task}, timeout=_STOP_GRACE_S)
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        slot.client = None
        slot.serving = False
        self._publish(slot, state=ServerState.STOPPED, reason=reason, tools=())

    async def _own(self, slot: _Slot) -> None:
        failures = 0
        name = slot.config.name
        while True:
            self._publish(slot, state=ServerState.STARTING, reason="", tools=())
            try:
                await self._session(slot)
            except Exception as exc:
                why = self._describe(exc, slot.config)
                log.warning(
                    "MCP server %s failed: %s", name, why, exc_info=log.isEnabledFor(logging.DEBUG)
                )
                if _signing_in_failed(exc):
                    self._publish(
                        slot,
                        state=ServerState.FAILED,
                        reason=f"{name} could not sign in: {why}. Restart it to try again.",
                        tools=(),
                        breaker_open=True,
                    )
                    return
            else:
                return  # stopped on request
            finally:
                slot.serving = False
                slot.client = None
            verb = "stopped unexpectedly" if slot.reached_ready else "could not start"
            now = time.monotonic()
            slot.crashes.append(now)
            while slot.crashes and now - slot.crashes[0] > self.breaker_window_s:
                slot.crashes.popleft()
            failures = 1 if slot.reached_ready else failures + 1
            if len(slot.crashes) >= self.breaker_crashes:
                self._publish(
                    slot,
                    state=ServerState.FAILED,
                    reason=(
                        f"{name} {verb}: {why}. It failed {len(slot.crashes)} times within "
                        f"{self.breaker_window_s:g} s, so it is not restarted any more; "
                        "restart it by hand once the cause is fixed."
                    ),
                    tools=(),
                    breaker_open=True,
                )
                return
            delay = min(self.backoff_initial_s * 2 ** (failures - 1), self.backoff_max_s)
            self._publish(
                slot,
                state=ServerState.FAILED,
                reason=f"{name} {verb}: {why}. Restarting in {delay:.1f} s.",
                tools=(),
            )
            await asyncio.sleep(delay)
            self._publish(slot, restarts=slot.status.restarts + 1)

    async def _session(self, slot: _Slot) -> None:
        """One connection, from connect to close; returns when asked to stop."""
        slot.reached_ready = False
        config = slot.config
        _check_config(config)
        await _import_sdk()
        from app.core.mcp import session as sdk

        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(self.connect_timeout_s) as deadline:
                on_waiting = self._pause_while_waiting(deadline, slot)
                client = await sdk.open_client(
                    config,
                    stack,
                    slot.tail,
                    self._connect_options(),
                    on_waiting=on_waiting,
                    on_closed=lambda: slot.ask("closed"),
                    on_tools_changed=lambda: slot.ask("refresh"),
                )
                tools = await sdk.list_tools(client, config.name)
            slot.client = client
            slot.reached_ready = True
            store = self._oauth_stores.get(config.name)
            self._publish(
                slot,
                state=ServerState.READY,
                reason=store.not_kept if store is not None else "",
                tools=tools,
                server_version=sdk.server_version(client),
            )
            slot.serving = True
            await self._serve(slot, client)

    async def _serve(self, slot: _Slot, client: Client) -> None:
        from app.core.mcp import session as sdk  # imported already: the client came from it

        remote = slot.config.transport is not Transport.STDIO
        while True:
            if remote and self.idle_ping_s > 0:
                # an HTTP server that died while idle is only noticed by asking it
                try:
                    async with asyncio.timeout(self.idle_ping_s):
                        await slot.wake.wait()
                except TimeoutError:
                    slot.pending.add("check")
            else:
                await slot.wake.wait()
            slot.wake.clear()
            work, slot.pending = slot.pending, set()
            if "closed" in work and not slot.stopping:
                ended = " (its process ended)" if slot.config.transport is Transport.STDIO else ""
                raise _ConnectionLost(f"the connection was closed{ended}")
            if slot.stopping:
                return
            if "check" in work:
                limit = min(self.connect_timeout_s, _PING_TIMEOUT_S)
                try:
                    async with asyncio.timeout(limit):
                        await client.session.send_ping()
                except TimeoutError as exc:
                    raise _ConnectionLost(f"it did not answer a ping within {limit:g} s") from exc
                except sdk.MCPError as exc:
                    why = self._describe(exc, slot.config)
                    raise _ConnectionLost(f"it stopped answering ({why})") from exc
            if "refresh" in work:
                await self._refresh(slot, client)

    async def _refresh(self, slot: _Slot, client: Client) -> None:
        from app.core.mcp import session as sdk  # imported already: the client came from it

        try:
            async with asyncio.timeout(self.connect_timeout_s):
                tools = await sdk.list_tools(client, slot.config.name)
        except (sdk.MCPError, TimeoutError, sdk.ValidationError) as exc:
            why = self._describe(exc, slot.config)
            self._publish(
                slot,
                state=ServerState.DEGRADED,
                reason=f"Its tool list changed but could not be read again: {why}.",
            )
            return
        self._publish(slot, tools=tools)

    # -- connecting -------------------------------------------------------------------
    def _pause_while_waiting(
        self, deadline: asyncio.Timeout, slot: _Slot | None
    ) -> Callable[[str], None]:
        """A callback for the sign-in: while the user is expected in the browser the
        connect deadline is off and the status says so; afterwards the deadline restarts."""

        def on_waiting(text: str) -> None:
            when = None if text else asyncio.get_running_loop().time() + self.connect_timeout_s
            # Once connected, a later sign-in (a scope step-up) has no connect deadline.
            with contextlib.suppress(RuntimeError):
                deadline.reschedule(when)
            if slot is not None and slot.status.state is ServerState.STARTING:
                self._publish(slot, reason=text)

        return on_waiting

    def oauth_store(self, name: str) -> OAuthTokenStore:
        """The OAuth tokens of the server ``name`` (kept in the OS keyring)."""
        store = self._oauth_stores.get(name)
        if store is None:
            store = self._oauth_stores[name] = OAuthTokenStore(name, self._oauth_secrets)
        return store

    def _connect_options(self) -> ConnectOptions:
        from app.core.mcp.session import ConnectOptions

        return ConnectOptions(
            connect_timeout_s=self.connect_timeout_s,
            call_timeout_s=self.call_timeout_s,
            oauth_store=self.oauth_store,
            open_browser=self.open_browser,
            sign_in_timeout_s=self.sign_in_timeout_s,
            oauth_client_metadata_url=self.oauth_client_metadata_url,
        )

    def _describe(self, exc: BaseException, config: ServerConfig) -> str:
        """Why a connection failed, in a few plain words (no final full stop)."""
        exc = _leaf(exc)
        where = config.url or config.command
        if isinstance(exc, _ConnectionLost | McpError):
            return str(exc)
        if isinstance(exc, TimeoutError):  # before OSError: it is one
            return f"it did not get ready within {self.connect_timeout_s:g} s"
        if isinstance(exc, FileNotFoundError):
            return f"the command {config.command!r} was not found"
        if isinstance(exc, PermissionError):
            return f"the command {config.command!r} may not be run (permission denied)"
        if isinstance(exc, OSError) and config.transport is Transport.STDIO:
            return f"the command {config.command!r} could not be started ({exc.strerror or exc})"
        if _sdk_imported:  # an error of the SDK or of HTTP can only come once it is in use
            from app.core.mcp import session as sdk

            said = sdk.describe(exc, where, self.connect_timeout_s)
            if said is not None:
                return said
        return f"{type(exc).__name__}: {exc}"

    def _publish(self, slot: _Slot, **changes: Any) -> None:
        """Update a server's status; emit it if anything but the stderr tail changed."""
        old = slot.status
        new = replace(old, **changes)
        if new == old:
            return
        slot.status = new
        if self._slots.get(slot.config.name) is slot or new.state is ServerState.STOPPED:
            self.changed.emit(replace(new, stderr_tail=slot.tail.lines()))


# -- helpers ------------------------------------------------------------------------------
def _unique(configs: Iterable[ServerConfig]) -> list[ServerConfig]:
    out: dict[str, ServerConfig] = {}
    for config in configs:
        if config.name in out:
            raise McpConfigError(f"Two MCP servers are named {config.name!r}; names must differ.")
        out[config.name] = config
    return list(out.values())


async def _import_sdk() -> None:
    """Import :mod:`app.core.mcp.session` (and with it the ``mcp`` SDK) if that has not been
    done yet. In a worker thread: the import takes most of a second, and on the event loop
    it would freeze the UI for that long."""
    global _sdk_imported
    if not _sdk_imported:
        await asyncio.to_thread(importlib.import_module, _SDK_MODULE)
        _sdk_imported = True


def _signing_in_failed(exc: BaseException) -> bool:
    """Whether ``exc`` (or the first one inside it) ended a sign-in with OAuth."""
    leaf = _leaf(exc)
    if isinstance(leaf, SignInError):
        return True
    if not _sdk_imported:
        return False
    from app.core.mcp import session as sdk

    return sdk.is_oauth_failure(leaf)


def _check_config(config: ServerConfig) -> None:
    """Refuse a server that cannot be connected as configured (no command, or no http(s)
    URL), before anything is started for it."""
    if config.transport is Transport.STDIO:
        if not config.command.strip():
            raise McpConfigError("no command is configured")
    else:
        _check_url(config.url)


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise McpConfigError(f"{url!r} is not an http:// or https:// address")


def _leaf(exc: BaseException) -> BaseException:
    """The first exception inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
