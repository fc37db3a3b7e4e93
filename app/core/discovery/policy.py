"""Which networks Corral may scan.

Corral looks for model hosts only where a home or office LAN can be: the private ranges
(10/8, 172.16/12, 192.168/16), link-local (169.254/16) and this machine's loopback
(127/8). Nothing is scanned unless the user asks; these functions only decide *what* a
scan may cover.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from typing import Protocol

from app.core.errors import InvalidInput

PRIVATE_NETWORKS: tuple[ipaddress.IPv4Network, ...] = (
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("192.168.0.0/16"),
)
LINK_LOCAL_NETWORK = ipaddress.IPv4Network("169.254.0.0/16")
LOOPBACK_NETWORK = ipaddress.IPv4Network("127.0.0.0/8")
SCANNABLE_NETWORKS: tuple[ipaddress.IPv4Network, ...] = (
    *PRIVATE_NETWORKS,
    LINK_LOCAL_NETWORK,
    LOOPBACK_NETWORK,
)
DEFAULT_MAX_PREFIX = 22
DEFAULT_MAX_ADDRESSES = 4096


class InterfaceAddress(Protocol):
    """What Corral reads of one entry of ``psutil.net_if_addrs()``."""

    @property
    def family(self) -> int: ...

    @property
    def address(self) -> str: ...

    @property
    def netmask(self) -> str | None: ...


def is_scannable(address: ipaddress.IPv4Address | ipaddress.IPv4Network) -> bool:
    """True for addresses (or whole networks) inside the private, link-local or loopback
    ranges."""
    if isinstance(address, ipaddress.IPv4Network):
        return any(address.subnet_of(net) for net in SCANNABLE_NETWORKS)
    return any(address in net for net in SCANNABLE_NETWORKS)


def is_scannable_text(address: str) -> bool:
    """:func:`is_scannable` for an address given as text; False for anything not IPv4."""
    try:
        return is_scannable(ipaddress.IPv4Address(address))
    except ValueError:
        return False


def _system_interfaces() -> Mapping[str, Iterable[InterfaceAddress]]:
    import psutil

    try:
        found: Mapping[str, Iterable[InterfaceAddress]] = psutil.net_if_addrs()
    except OSError:  # an unreadable interface table is "no network", not a crash
        return {}
    return found


def local_scan_networks(
    max_prefix: int = DEFAULT_MAX_PREFIX,
    *,
    interfaces: Mapping[str, Iterable[InterfaceAddress]] | None = None,
) -> list[ipaddress.IPv4Network]:
    """The IPv4 networks of this machine's own interfaces that a LAN scan may cover.

    Only private and link-local networks are returned (loopback is left out). A network
    larger than ``/max_prefix`` is narrowed to the ``/max_prefix`` that contains the
    interface's own address, so a /16 office network costs 1,024 addresses, not 65,536.
    ``interfaces`` replaces ``psutil.net_if_addrs()`` (tests inject it). Sorted, no
    duplicates.
    """
    if not 0 <= max_prefix <= 32:
        raise InvalidInput(f"The largest network to scan must be /0 to /32, not /{max_prefix}.")
    table = _system_interfaces() if interfaces is None else interfaces
    out: set[ipaddress.IPv4Network] = set()
    for addresses in table.values():
        for entry in addresses:
            if entry.family != socket.AF_INET or not entry.netmask:
                continue
            try:
                iface = ipaddress.IPv4Interface(f"{entry.address}/{entry.netmask}")
            except ValueError:
                continue
            if iface.ip in LOOPBACK_NETWORK or not any(
                iface.ip in net for net in (*PRIVATE_NETWORKS, LINK_LOCAL_NETWORK)
            ):
                continue
            network = iface.network
            if network.prefixlen < max_prefix:
                network = ipaddress.IPv4Network(f"{iface.ip}/{max_prefix}", strict=False)
            if is_scannable(network):
                out.add(network)
    return sorted(out)


def parse_scan_target(
    text: str, *, max_addresses: int = DEFAULT_MAX_ADDRESSES
) -> ipaddress.IPv4Network:
    """The network a user typed to scan: a CIDR (``192.168.1.0/24``) or one address.

    Host bits are allowed (``192.168.1.7/24`` means its /24). Raises :class:`InvalidInput`
    with a sentence for the user for anything that is not an IPv4 network, for public
    addresses, and for ranges of more than ``max_addresses`` addresses.
    """
    s = text.strip()
    if not s:
        raise InvalidInput("Enter a network to scan, for example 192.168.1.0/24.")
    try:
        network = ipaddress.ip_network(s, strict=False)
    except ValueError:
        raise InvalidInput(
            f"{s!r} is not a network; enter one like 192.168.1.0/24 or one address "
            "like 192.168.1.20."
        ) from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise InvalidInput(f"{s} is an IPv6 network; Corral scans IPv4 networks only.")
    if not is_scannable(network):
        raise InvalidInput(
            f"{network} is not a local network. Corral scans only private, link-local "
            "and loopback networks (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, "
            "169.254.0.0/16, 127.0.0.0/8)."
        )
    if network.num_addresses > max_addresses:
        smallest = 32 - max(0, max_addresses.bit_length() - 1)
        raise InvalidInput(
            f"{network} has {network.num_addresses:,} addresses; Corral scans at most "
            f"{max_addresses:,} at a time (a /{smallest}). Enter a smaller network."
        )
    return network


def scan_addresses(network: ipaddress.IPv4Network) -> Iterable[ipaddress.IPv4Address]:
    """The addresses of a network a scan probes: all but the network and broadcast
    addresses, except for /31 and /32, where every address is a host."""
    if network.prefixlen >= 31:
        return iter(network)
    return network.hosts()
