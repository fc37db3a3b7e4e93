"""Hosts that announce themselves on the local network with mDNS / DNS-SD.

:class:`MdnsBrowser` browses ``_ollama._tcp.local.`` (model hosts) and
``_corral._tcp.local.`` (Corral's host agent). A model host is resolved (addresses, port,
with a deadline), identified over HTTP and reported with its :class:`Identity`; an agent
is not a model host and is reported with its TXT properties (its host id, version, ...).
Only addresses in the private, link-local and loopback ranges are contacted.
Nothing is sent before :meth:`MdnsBrowser.start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from zeroconf import Error as ZeroconfError
from zeroconf import (
    InterfaceChoice,
    IPVersion,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from app.core.discovery.policy import LOOPBACK_NETWORK, is_scannable_text
from app.core.discovery.scanner import UrlIdentifyFn, identify_direct
from app.core.errors import MdnsUnavailable
from app.core.events import Event
from app.core.hosts.identify import Identity

log = logging.getLogger(__name__)

OLLAMA_SERVICE = "_ollama._tcp.local."
CORRAL_SERVICE = "_corral._tcp.local."
SERVICE_TYPES: tuple[str, ...] = (OLLAMA_SERVICE, CORRAL_SERVICE)
AGENT_SERVICES = frozenset({CORRAL_SERVICE})


@dataclass(frozen=True)
class MdnsService:
    """One service announced on the local network.

    Attributes:
        name: the full instance name (``gpu-box._ollama._tcp.local.``).
        service_type: ``_ollama._tcp.local.`` or ``_corral._tcp.local.``.
        server: the host name it announced (``gpu-box.local.``), may be empty.
        addresses: its IPv4 addresses as announced.
        port: its TCP port.
        properties: its TXT record (a key without a value maps to "").
        identity: what the model host is, for a model host; None for an agent.
    """

    name: str
    service_type: str
    server: str
    addresses: tuple[str, ...]
    port: int
    properties: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    identity: Identity | None = None

    @property
    def is_agent(self) -> bool:
        return self.service_type in AGENT_SERVICES

    @property
    def instance(self) -> str:
        """The instance label: ``gpu-box`` of ``gpu-box._ollama._tcp.local.``."""
        return self.name.removesuffix("." + self.service_type)

    @property
    def host_label(self) -> str:
        """The announced host name without ``.local.``, else the instance label."""
        label = self.server.removesuffix(".").removesuffix(".local")
        return label or self.instance

    @property
    def url(self) -> str:
        if self.identity is not None:
            return self.identity.url
        address = self.addresses[0] if self.addresses else self.host_label
        return f"http://{address}:{self.port}"


def _text_properties(raw: Mapping[bytes, bytes | None]) -> dict[str, str]:
    """A TXT record as text; a key without a value maps to ""."""
    out: dict[str, str] = {}
    for key, value in raw.items():
        name = key.decode("utf-8", "replace")
        if name:
            out[name] = value.decode("utf-8", "replace") if value is not None else ""
    return out


def _address_order(address: str) -> tuple[int, int]:
    ip = ipaddress.IPv4Address(address)
    return (0 if ip in LOOPBACK_NETWORK else 1, int(ip))


class MdnsBrowser:
    """Browses mDNS for model hosts and Corral agents.

    Attributes:
        found: emitted with an :class:`MdnsService` when one appears or its details change.
        lost: emitted with the last known :class:`MdnsService` when it goes away.

    ``interfaces`` lists the IPv4 addresses of the interfaces to use (None: all);
    ``zeroconf`` is an existing instance to share (it is then not closed by
    :meth:`aclose`). ``identify_fn`` replaces the identification of a model host's URL.
    """

    def __init__(
        self,
        *,
        interfaces: Sequence[str] | None = None,
        zeroconf: AsyncZeroconf | None = None,
        service_types: Sequence[str] = SERVICE_TYPES,
        resolve_timeout: float = 3.0,
        probe_timeout: float = 2.0,
        identify_fn: UrlIdentifyFn | None = None,
    ) -> None:
        self.found: Event[MdnsService] = Event("mdns.found")
        self.lost: Event[MdnsService] = Event("mdns.lost")
        self._interfaces = list(interfaces) if interfaces is not None else None
        self._zc = zeroconf
        self._owns_zc = zeroconf is None
        self._types = list(service_types)
        self._resolve_timeout = resolve_timeout
        self._probe_timeout = probe_timeout
        self._identify_fn: UrlIdentifyFn = (
            identify_fn if identify_fn is not None else identify_direct
        )
        self._browser: AsyncServiceBrowser | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._services: dict[str, MdnsService] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    @property
    def services(self) -> list[MdnsService]:
        """What is announced now, sorted by name."""
        return [self._services[k] for k in sorted(self._services)]

    @property
    def running(self) -> bool:
        return self._browser is not None

    async def start(self) -> None:
        """Open the mDNS sockets and start browsing. Raises :class:`MdnsUnavailable`."""
        if self._browser is not None:
            return
        if self._closed:
            raise MdnsUnavailable("This mDNS browser was closed; make a new one.")
        self._loop = asyncio.get_running_loop()
        if self._zc is None:
            choice: list[str | int] | InterfaceChoice = (
                InterfaceChoice.All if self._interfaces is None else list(self._interfaces)
            )
            try:
                self._zc = AsyncZeroconf(interfaces=choice, ip_version=IPVersion.V4Only)
            except (OSError, ValueError, RuntimeError) as exc:
                raise MdnsUnavailable(
                    f"Corral cannot listen for hosts announcing themselves (mDNS): {exc}."
                ) from exc
        self._browser = AsyncServiceBrowser(
            self._zc.zeroconf, list(self._types), handlers=[self._on_state_change]
        )

    async def aclose(self) -> None:
        """Stop browsing, cancel resolutions in flight, close what this browser opened."""
        self._closed = True
        pending = list(self._pending.values())
        self._pending.clear()
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        browser, self._browser = self._browser, None
        if browser is not None:
            await browser.async_cancel()
        zc = self._zc
        if zc is not None and self._owns_zc:
            self._zc = None
            await zc.async_close()

    # -- zeroconf callbacks -----------------------------------------------------------
    def _on_state_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._handle_change, service_type, name, state_change)

    def _handle_change(
        self, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if self._closed:
            return
        previous = self._pending.pop(name, None)
        if previous is not None:
            previous.cancel()
        if state_change is ServiceStateChange.Removed:
            gone = self._services.pop(name, None)
            if gone is not None:
                self.lost.emit(gone)
            return
        task = asyncio.get_running_loop().create_task(self._resolve(service_type, name))
        self._pending[name] = task
        task.add_done_callback(lambda t: self._forget(name, t))

    def _forget(self, name: str, task: asyncio.Task[None]) -> None:
        if self._pending.get(name) is task:
            del self._pending[name]
        if not task.cancelled() and task.exception() is not None:
            log.error("resolving %s failed", name, exc_info=task.exception())

    # -- resolution -------------------------------------------------------------------
    async def _resolve(self, service_type: str, name: str) -> None:
        zc = self._zc
        if zc is None:
            return
        try:
            info = AsyncServiceInfo(service_type, name)
            resolved = await info.async_request(zc.zeroconf, int(self._resolve_timeout * 1000))
        except ZeroconfError as exc:  # a malformed name, or zeroconf is shutting down
            log.info("mDNS service %s could not be resolved: %s", name, exc)
            return
        if not resolved or info.port is None:
            log.info("mDNS service %s did not answer with its address in time", name)
            return
        addresses = tuple(info.parsed_addresses(IPVersion.V4Only))
        properties = MappingProxyType(_text_properties(info.properties))
        service = MdnsService(
            name=name,
            service_type=service_type,
            server=info.server or "",
            addresses=addresses,
            port=info.port,
            properties=properties,
        )
        if not service.is_agent:
            identity = await self._identify(addresses, info.port)
            if identity is None:
                log.info("mDNS service %s does not answer as a model host", name)
                return
            service = MdnsService(
                name=name,
                service_type=service_type,
                server=service.server,
                addresses=addresses,
                port=info.port,
                properties=properties,
                identity=identity,
            )
        if self._closed or self._services.get(name) == service:
            return
        self._services[name] = service
        self.found.emit(service)

    async def _identify(self, addresses: Sequence[str], port: int) -> Identity | None:
        allowed = sorted((a for a in addresses if is_scannable_text(a)), key=_address_order)
        for address in allowed:
            url = f"http://{address}:{port}"
            try:
                async with asyncio.timeout(self._probe_timeout + 1.0):
                    identity = await self._identify_fn(url, timeout=self._probe_timeout)
            except TimeoutError:
                identity = None
            if identity is not None:
                return identity
        return None
