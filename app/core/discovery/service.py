"""Finding hosts for the user: network scans, this machine's servers, mDNS announcements.

:class:`DiscoveryService` is what the UI talks to. What it finds becomes a
:class:`Suggestion` the user can keep (it is added to the registry) or dismiss. A host the
registry already lists is never suggested: found hosts are compared with the registry's
hosts by URL and by fingerprint (each registry host is identified once, lazily), so the
same server under another address is recognised too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.core.discovery.local import (
    THIS_MACHINE,
    host_and_port,
    local_host_configs,
    suggested_name,
)
from app.core.discovery.mdns import MdnsBrowser, MdnsService
from app.core.discovery.policy import (
    DEFAULT_MAX_ADDRESSES,
    DEFAULT_MAX_PREFIX,
    InterfaceAddress,
    local_scan_networks,
    parse_scan_target,
)
from app.core.discovery.scanner import (
    DEFAULT_PORTS,
    NetworkScanner,
    ScanProgress,
    ScanResult,
    UrlIdentifyFn,
    check_ports,
)
from app.core.errors import InvalidInput, ScanFailed
from app.core.events import Event
from app.core.hosts.address import normalize_host_url
from app.core.hosts.base import HostConfig
from app.core.hosts.identify import Identity, identify_url
from app.core.hosts.registry import HostRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Suggestion:
    """A host Corral found and proposes to add.

    Attributes:
        identity: what the host is and where it answered.
        name: the display name proposed for it.
        source: how it was found: ``scan`` or ``mdns``.
    """

    identity: Identity
    name: str
    source: str

    @property
    def url(self) -> str:
        return self.identity.url

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint


def _canonical(url: str) -> str:
    try:
        return normalize_host_url(url)
    except InvalidInput:
        return url


def _preference(url: str) -> tuple[int, int, int]:
    """Loopback first, then the lowest address (then port); names after addresses."""
    host, port = host_and_port(url)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return (2, 0, port)
    return (0 if ip.is_loopback else 1, int(ip), port)


class DiscoveryService:
    """Scans, this machine's hosts and mDNS, turned into suggestions for the registry.

    Attributes:
        suggestions_changed: emitted with the new suggestion list whenever it changes.
        scan_progress: emitted with a :class:`ScanProgress` while a scan runs (~20/s).
        scan_finished: emitted with the :class:`ScanResult` when a scan completes
            (not when it is cancelled or fails).
        agents_changed: emitted with the list of Corral agents announced by mDNS.

    ``ports`` are the ports scanned when :meth:`scan` is given none; ``max_prefix`` the
    largest network of this machine's own scanned without asking; ``max_addresses`` the
    largest network a user may type. ``scanner``, ``identify_url_fn`` and ``interfaces``
    (``psutil.net_if_addrs()``-shaped) replace the real ones in tests.
    """

    def __init__(
        self,
        registry: HostRegistry,
        *,
        ports: Sequence[int] = DEFAULT_PORTS,
        local_ports: Sequence[int] | None = None,
        max_prefix: int = DEFAULT_MAX_PREFIX,
        max_addresses: int = DEFAULT_MAX_ADDRESSES,
        probe_timeout: float = 2.0,
        scanner: NetworkScanner | None = None,
        identify_url_fn: UrlIdentifyFn | None = None,
        interfaces: Mapping[str, Iterable[InterfaceAddress]] | None = None,
        mdns_interfaces: Sequence[str] | None = None,
    ) -> None:
        self.registry = registry
        self.ports = check_ports(ports)
        self.local_ports = check_ports(local_ports if local_ports is not None else ports)
        self._local_follows_ports = local_ports is None
        self.max_prefix = max_prefix
        self.max_addresses = max_addresses
        self.probe_timeout = probe_timeout
        self.suggestions_changed: Event[list[Suggestion]] = Event("discovery.suggestions")
        self.scan_progress: Event[ScanProgress] = Event("discovery.scan_progress")
        self.scan_finished: Event[ScanResult] = Event("discovery.scan_finished")
        self.agents_changed: Event[list[MdnsService]] = Event("discovery.agents")
        self._scanner = scanner or NetworkScanner(probe_timeout=probe_timeout)
        self._identify_url: UrlIdentifyFn = identify_url_fn or identify_url
        self._identify_found: UrlIdentifyFn | None = identify_url_fn  # None: no proxies
        self._interfaces = interfaces
        self._mdns_interfaces = list(mdns_interfaces) if mdns_interfaces is not None else None
        self._suggestions: list[Suggestion] = []
        self._dismissed: set[str] = set()  # fingerprints and URLs the user dismissed
        # fingerprints of registry hosts, by (url, headers); only successes are kept
        self._fingerprints: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self._scanning = False
        self._mdns: MdnsBrowser | None = None
        self._agents: dict[str, MdnsService] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        registry.changed.connect(self._on_registry_changed)

    # -- reading ----------------------------------------------------------------------
    @property
    def suggestions(self) -> list[Suggestion]:
        return list(self._suggestions)

    @property
    def agents(self) -> list[MdnsService]:
        return [self._agents[k] for k in sorted(self._agents)]

    @property
    def scanning(self) -> bool:
        return self._scanning

    def networks(self, targets: Sequence[str] | None = None) -> list[ipaddress.IPv4Network]:
        """What :meth:`scan` would cover for ``targets`` (None: this machine's networks)."""
        if targets is None:
            found = local_scan_networks(self.max_prefix, interfaces=self._interfaces)
            if not found:
                raise ScanFailed(
                    "This computer is not on a private network Corral can scan; enter a "
                    "network to scan, for example 192.168.1.0/24."
                )
            return found
        networks = [
            parse_scan_target(t, max_addresses=self.max_addresses) for t in targets if t.strip()
        ]
        if not networks:
            raise InvalidInput("Enter a network to scan, for example 192.168.1.0/24.")
        return networks

    # -- settings ---------------------------------------------------------------------
    def set_scan_options(self, ports: Sequence[int], max_prefix: int) -> None:
        """Scan ``ports`` (and look for hosts on this machine on them, unless other local
        ports were given) and narrow this machine's networks to ``/max_prefix``, from the
        next scan on. Raises :class:`InvalidInput` for a bad port or prefix (nothing
        changes then)."""
        checked = check_ports(ports)
        if not checked:
            raise InvalidInput("Enter at least one port to scan.")
        if isinstance(max_prefix, bool) or not isinstance(max_prefix, int):
            raise InvalidInput(f"{max_prefix!r} is not a network size such as /22.")
        if not 0 <= max_prefix <= 32:
            raise InvalidInput(f"The largest network to scan must be /0 to /32, not /{max_prefix}.")
        self.ports = checked
        if self._local_follows_ports:
            self.local_ports = checked
        self.max_prefix = max_prefix

    # -- scanning ---------------------------------------------------------------------
    async def scan(
        self, targets: Sequence[str] | None = None, ports: Sequence[int] | None = None
    ) -> ScanResult:
        """Scan ``targets`` (typed networks; None: this machine's own networks) on ``ports``
        (None: the configured ports) and turn what is found into suggestions.

        Cancel the awaiting task to stop. Raises :class:`InvalidInput` for bad targets or
        ports, :class:`ScanFailed` when a scan is already running or cannot go on.
        """
        if self._scanning:
            raise ScanFailed("A scan is already running; wait for it to finish or stop it.")
        networks = self.networks(targets)
        port_list = check_ports(self.ports if ports is None else ports)
        self._scanning = True
        known = asyncio.get_running_loop().create_task(self._known_fingerprints())
        try:
            result = await self._scanner.scan(
                networks, port_list, on_progress=self.scan_progress.emit
            )
            fingerprints = await known
        finally:
            self._scanning = False
            if not known.done():
                known.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await known
        self._drop_missing(networks, port_list, result.found)
        self._offer([(i, "scan", "") for i in result.found], fingerprints)
        self.scan_finished.emit(result)
        return result

    def _drop_missing(
        self,
        networks: Sequence[ipaddress.IPv4Network],
        ports: Sequence[int],
        found: Sequence[Identity],
    ) -> None:
        """Forget scan suggestions a new scan covered and did not find again."""
        still = {i.fingerprint for i in found}

        def covered(s: Suggestion) -> bool:
            host, port = host_and_port(s.url)
            try:
                ip = ipaddress.IPv4Address(host)
            except ValueError:
                return False
            return port in ports and any(ip in n for n in networks)

        keep = [
            s
            for s in self._suggestions
            if s.source != "scan" or s.fingerprint in still or not covered(s)
        ]
        self._set_suggestions(keep)

    # -- this machine -----------------------------------------------------------------
    async def refresh_local(self) -> list[HostConfig]:
        """Look for model hosts on this machine and show them in the registry.

        Probes 127.0.0.1 on the configured ports; what answers (other than the default
        Ollama at 127.0.0.1:11434, and servers the user already added under another
        address) is listed with id ``local-<port>`` without being saved.
        """
        scanner = NetworkScanner(
            concurrency=max(1, len(self.local_ports)),
            connect_timeout=0.3,
            probe_timeout=self.probe_timeout,
        )
        scan_task = asyncio.get_running_loop().create_task(
            scanner.scan([THIS_MACHINE], self.local_ports)
        )
        user_fps = asyncio.get_running_loop().create_task(
            self._known_fingerprints(include_local=False)
        )
        try:
            result = await scan_task
            fingerprints = await user_fps
        finally:
            for task in (scan_task, user_fps):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        identities = [i for i in result.found if i.fingerprint not in fingerprints]
        configs = local_host_configs(identities)
        for config, identity in zip(configs, _matching(identities, configs), strict=True):
            self._fingerprints[(config.url, config.headers)] = identity.fingerprint
        self.registry.set_local_hosts(configs)
        shown = {i.fingerprint for i in result.found}
        self._set_suggestions([s for s in self._suggestions if s.fingerprint not in shown])
        return configs

    # -- the user's answers -----------------------------------------------------------
    def keep(self, suggestion: Suggestion) -> HostConfig:
        """Add a suggested host to the registry; it is no longer suggested."""
        try:
            config = self.registry.add(
                suggestion.url, suggestion.name, kind=suggestion.identity.kind
            )
        finally:
            self._set_suggestions(
                [s for s in self._suggestions if s.fingerprint != suggestion.fingerprint]
            )
        self._fingerprints[(config.url, config.headers)] = suggestion.fingerprint
        return config

    def dismiss(self, suggestion: Suggestion) -> None:
        """Stop suggesting a host (for as long as this service lives)."""
        self._dismissed.add(suggestion.fingerprint)
        self._dismissed.add(_canonical(suggestion.url))
        self._set_suggestions(
            [s for s in self._suggestions if s.fingerprint != suggestion.fingerprint]
        )

    # -- mDNS -------------------------------------------------------------------------
    async def start_mdns(self, browser: MdnsBrowser | None = None) -> None:
        """Listen for hosts and agents announcing themselves (mDNS).

        Raises :class:`app.core.discovery.mdns.MdnsUnavailable` if it cannot start.
        """
        if self._mdns is not None:
            return
        self._mdns = browser or MdnsBrowser(
            interfaces=self._mdns_interfaces,
            probe_timeout=self.probe_timeout,
            identify_fn=self._identify_found,
        )
        self._mdns.found.connect(self._on_mdns_found)
        self._mdns.lost.connect(self._on_mdns_lost)
        try:
            await self._mdns.start()
        except BaseException:
            await self._stop_mdns()
            raise

    async def _stop_mdns(self) -> None:
        browser, self._mdns = self._mdns, None
        if browser is None:
            return
        browser.found.disconnect(self._on_mdns_found)
        browser.lost.disconnect(self._on_mdns_lost)
        await browser.aclose()

    def _on_mdns_found(self, service: MdnsService) -> None:
        if service.is_agent:
            self._agents[service.name] = service
            self.agents_changed.emit(self.agents)
            return
        task = asyncio.get_running_loop().create_task(self._offer_mdns(service))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _offer_mdns(self, service: MdnsService) -> None:
        if service.identity is None:
            return
        fingerprints = await self._known_fingerprints()
        self._offer([(service.identity, "mdns", service.host_label)], fingerprints)

    def _on_mdns_lost(self, service: MdnsService) -> None:
        if service.is_agent:
            if self._agents.pop(service.name, None) is not None:
                self.agents_changed.emit(self.agents)
            return
        if service.identity is None:
            return
        gone = service.identity.fingerprint
        self._set_suggestions(
            [s for s in self._suggestions if not (s.source == "mdns" and s.fingerprint == gone)]
        )

    async def aclose(self) -> None:
        """Stop mDNS and background work; the registry is left as it is."""
        self.registry.changed.disconnect(self._on_registry_changed)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stop_mdns()

    # -- suggestions ------------------------------------------------------------------
    def _known_urls(self) -> set[str]:
        return {c.url for c in self.registry.hosts()}

    async def _known_fingerprints(self, *, include_local: bool = True) -> set[str]:
        """Fingerprints of the registry's hosts; each is identified once (until it works)."""
        configs = [c for c in self.registry.hosts() if include_local or c.source != "local"]
        missing = [c for c in configs if (c.url, c.headers) not in self._fingerprints]

        async def one(config: HostConfig) -> None:
            try:
                async with asyncio.timeout(self.probe_timeout + 1.0):
                    identity = await self._identify_url(
                        config.url, headers=config.header_dict(), timeout=self.probe_timeout
                    )
            except TimeoutError:
                identity = None
            if identity is not None:
                self._fingerprints[(config.url, config.headers)] = identity.fingerprint

        if missing:
            async with asyncio.TaskGroup() as group:
                for config in missing:
                    group.create_task(one(config))
        return {
            self._fingerprints[(c.url, c.headers)]
            for c in configs
            if (c.url, c.headers) in self._fingerprints
        }

    def _offer(
        self, found: Iterable[tuple[Identity, str, str]], known_fingerprints: set[str]
    ) -> None:
        known_urls = self._known_urls()
        current = list(self._suggestions)
        for identity, source, label in found:
            url = _canonical(identity.url)
            if url in known_urls or identity.fingerprint in known_fingerprints:
                continue
            if url in self._dismissed or identity.fingerprint in self._dismissed:
                continue
            new = Suggestion(identity, suggested_name(identity, host_label=label), source)
            index = next(
                (i for i, s in enumerate(current) if s.fingerprint == identity.fingerprint), None
            )
            if index is None:
                current.append(new)
            elif _preference(new.url) < _preference(current[index].url) or (
                current[index].url == new.url and current[index].source == source
            ):
                current[index] = new
        current = [s for s in current if s.fingerprint not in known_fingerprints]
        self._set_suggestions(current)

    def _on_registry_changed(self, hosts: list[HostConfig]) -> None:
        urls = {c.url for c in hosts}
        known = {
            self._fingerprints[(c.url, c.headers)]
            for c in hosts
            if (c.url, c.headers) in self._fingerprints
        }
        self._set_suggestions(
            [
                s
                for s in self._suggestions
                if _canonical(s.url) not in urls and s.fingerprint not in known
            ]
        )

    def _set_suggestions(self, suggestions: list[Suggestion]) -> None:
        suggestions = sorted(suggestions, key=lambda s: _preference(s.url))
        if suggestions == self._suggestions:
            return
        self._suggestions = suggestions
        self.suggestions_changed.emit(self.suggestions)


def _matching(identities: Sequence[Identity], configs: Sequence[HostConfig]) -> list[Identity]:
    """The identity each local config was made from (same URL)."""
    by_url = {_canonical(i.url): i for i in identities}
    return [by_url[c.url] for c in configs]
