"""A bounded, cancellable scan for model hosts: TCP connect first, identify what answers.

Every address x port of the given networks gets one quick TCP connect (the socket is closed
at once); only the ports that accept are identified over HTTP. A fixed pool of workers
pulls probes from one shared generator, so a scan of thousands of probes never holds more
than ``concurrency`` sockets or tasks. Cancelling the task that awaits :meth:`scan` stops
every worker, closes every socket and the HTTP client, and leaves no task behind.

The same server reached on several addresses (this machine through 127.0.0.1 and its LAN
address, a port forward) is reported once: identities with the same fingerprint are merged,
keeping a loopback address first, then the lowest address.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from app.core.discovery.policy import LOOPBACK_NETWORK, scan_addresses
from app.core.errors import CorralError, InvalidInput, ScanFailed
from app.core.hosts.identify import Identity, identify

log = logging.getLogger(__name__)

DEFAULT_PORTS: tuple[int, ...] = (11434, 1234, 8080, 8000)
PROGRESS_INTERVAL_S = 0.05  # at most ~20 progress reports a second
_OUT_OF_SOCKETS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS}


class IdentifyFn(Protocol):
    """How the scanner identifies an open port (``app.core.hosts.identify.identify``)."""

    def __call__(
        self, client: httpx.AsyncClient, base_url: str, *, timeout: float = ...
    ) -> Awaitable[Identity | None]: ...


class UrlIdentifyFn(Protocol):
    """How a single URL is identified (``app.core.hosts.identify.identify_url``)."""

    def __call__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = ...,
        timeout: float = ...,
    ) -> Awaitable[Identity | None]: ...


@dataclass(frozen=True)
class ScanProgress:
    """Where a scan stands.

    Attributes:
        probed: address x port pairs whose TCP connect has finished.
        total: address x port pairs the scan will probe.
        open: pairs that accepted a connection.
        found: distinct model hosts identified so far.
        elapsed_s: seconds since the scan began.
    """

    probed: int
    total: int
    open: int
    found: int
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return self.probed / self.total if self.total else 1.0


@dataclass(frozen=True)
class ScanResult:
    """What a finished scan found.

    Attributes:
        found: one identity per server, sorted by address then port.
        probed: address x port pairs probed.
        open_ports: pairs that accepted a TCP connection (model hosts or not).
        elapsed_s: wall time of the scan in seconds.
    """

    found: list[Identity]
    probed: int
    open_ports: int
    elapsed_s: float


def check_ports(ports: Iterable[int]) -> tuple[int, ...]:
    """The ports as a tuple without repeats; InvalidInput for anything not a TCP port."""
    out: list[int] = []
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidInput(f"{port!r} is not a port number from 1 to 65535.")
        if port not in out:
            out.append(port)
    return tuple(out)


def unique_addresses(
    networks: Iterable[ipaddress.IPv4Network],
) -> list[ipaddress.IPv4Address]:
    """Every address the networks' scan probes, in order, each once (networks may overlap)."""
    seen: set[ipaddress.IPv4Address] = set()
    out: list[ipaddress.IPv4Address] = []
    for network in networks:
        for address in scan_addresses(network):
            if address not in seen:
                seen.add(address)
                out.append(address)
    return out


def _preference(address: ipaddress.IPv4Address, port: int) -> tuple[int, int, int]:
    return (0 if address in LOOPBACK_NETWORK else 1, int(address), port)


class _Tally:
    """Counters and findings of one running scan."""

    def __init__(self, total: int, started: float) -> None:
        self.total = total
        self.started = started
        self.probed = 0
        self.open = 0
        self.by_fingerprint: dict[str, tuple[tuple[int, int, int], Identity]] = {}
        self.last_report = float("-inf")

    def add(self, address: ipaddress.IPv4Address, port: int, identity: Identity) -> None:
        key = _preference(address, port)
        current = self.by_fingerprint.get(identity.fingerprint)
        if current is None or key < current[0]:
            self.by_fingerprint[identity.fingerprint] = (key, identity)

    def progress(self) -> ScanProgress:
        return ScanProgress(
            probed=self.probed,
            total=self.total,
            open=self.open,
            found=len(self.by_fingerprint),
            elapsed_s=time.monotonic() - self.started,
        )

    def result(self) -> ScanResult:
        ordered = sorted(self.by_fingerprint.values(), key=lambda kv: kv[0][1:])
        return ScanResult(
            found=[identity for _, identity in ordered],
            probed=self.probed,
            open_ports=self.open,
            elapsed_s=time.monotonic() - self.started,
        )


class NetworkScanner:
    """Finds model hosts on networks by TCP connect + identification.

    Attributes:
        concurrency: probes (sockets) in flight at most.
        connect_timeout: seconds a TCP connect may take before the port counts as closed.
        probe_timeout: seconds the identification of one open port may take.
    """

    def __init__(
        self,
        *,
        concurrency: int = 256,
        connect_timeout: float = 0.5,
        probe_timeout: float = 2.0,
        identify_fn: IdentifyFn | None = None,
    ) -> None:
        if concurrency < 1:
            raise InvalidInput("A scan needs a concurrency of at least 1.")
        if connect_timeout <= 0 or probe_timeout <= 0:
            raise InvalidInput("Scan timeouts must be more than 0 seconds.")
        self.concurrency = concurrency
        self.connect_timeout = connect_timeout
        self.probe_timeout = probe_timeout
        self._identify: IdentifyFn = identify_fn if identify_fn is not None else identify

    async def scan(
        self,
        networks: Iterable[ipaddress.IPv4Network],
        ports: Sequence[int],
        *,
        on_progress: Callable[[ScanProgress], None] | None = None,
    ) -> ScanResult:
        """Probe every address x port and identify what answers; see the module docstring.

        ``on_progress`` is called at most ~20 times a second, and once at the end with
        ``probed == total``. Raises :class:`InvalidInput` for bad ports and
        :class:`ScanFailed` when this machine runs out of sockets.
        """
        port_list = check_ports(ports)
        addresses = unique_addresses(networks)
        tally = _Tally(len(addresses) * len(port_list), time.monotonic())
        probes: Iterator[tuple[ipaddress.IPv4Address, int]] = (
            (address, port) for address in addresses for port in port_list
        )

        def report(final: bool = False) -> None:
            if on_progress is None:
                return
            now = time.monotonic()
            if not final and now - tally.last_report < PROGRESS_INTERVAL_S:
                return
            tally.last_report = now
            try:
                on_progress(tally.progress())
            except Exception:
                log.exception("scan progress listener failed")

        if tally.total:
            limits = httpx.Limits(
                max_connections=self.concurrency, max_keepalive_connections=self.concurrency
            )
            timeout = httpx.Timeout(self.probe_timeout, connect=self.connect_timeout * 4)
            async with httpx.AsyncClient(
                limits=limits, timeout=timeout, trust_env=False, follow_redirects=False
            ) as client:

                async def worker() -> None:
                    for address, port in probes:
                        if await self._connect(str(address), port):
                            tally.open += 1
                            identity = await self._identify_one(client, str(address), port)
                            if identity is not None:
                                tally.add(address, port, identity)
                        tally.probed += 1
                        report()

                try:
                    async with asyncio.TaskGroup() as group:
                        for _ in range(min(self.concurrency, tally.total)):
                            group.create_task(worker())
                except* CorralError as errors:
                    first = errors.exceptions[0]
                    raise first from first.__cause__
        report(final=True)
        return tally.result()

    async def _connect(self, address: str, port: int) -> bool:
        """True when ``address:port`` accepts a TCP connection; the socket is closed at once."""
        loop = asyncio.get_running_loop()
        sock: socket.socket | None = None
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            async with asyncio.timeout(self.connect_timeout):
                await loop.sock_connect(sock, (address, port))
            return True
        except TimeoutError:
            return False
        except OSError as exc:
            if exc.errno in _OUT_OF_SOCKETS:
                raise ScanFailed(
                    "This computer ran out of network sockets during the scan "
                    f"({exc.strerror}); scan with fewer probes at a time."
                ) from exc
            return False  # refused, unreachable, reset: nothing to find there
        finally:
            if sock is not None:
                sock.close()

    async def _identify_one(
        self, client: httpx.AsyncClient, address: str, port: int
    ) -> Identity | None:
        # identify() keeps to probe_timeout itself; this is the backstop.
        try:
            async with asyncio.timeout(self.probe_timeout + 1.0):
                return await self._identify(
                    client, f"http://{address}:{port}", timeout=self.probe_timeout
                )
        except TimeoutError:
            log.debug("identification of %s:%s timed out", address, port)
            return None


async def identify_direct(
    base_url: str,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 2.0,  # noqa: ASYNC109 (identification's own deadline)
) -> Identity | None:
    """Identify one URL with a short-lived client that ignores proxy settings.

    For addresses Corral found by itself on the local network: the environment's HTTP
    proxy is for reaching the outside world, never for probing the LAN.
    """
    async with httpx.AsyncClient(
        headers=headers, timeout=httpx.Timeout(timeout), trust_env=False
    ) as client:
        return await identify(client, base_url, timeout=timeout)


async def scan(
    networks: Iterable[ipaddress.IPv4Network],
    ports: Sequence[int],
    *,
    concurrency: int = 256,
    connect_timeout: float = 0.5,
    probe_timeout: float = 2.0,
    on_progress: Callable[[ScanProgress], None] | None = None,
) -> ScanResult:
    """Scan with a :class:`NetworkScanner` made for the call; see :meth:`NetworkScanner.scan`."""
    scanner = NetworkScanner(
        concurrency=concurrency, connect_timeout=connect_timeout, probe_timeout=probe_timeout
    )
    return await scanner.scan(networks, ports, on_progress=on_progress)
