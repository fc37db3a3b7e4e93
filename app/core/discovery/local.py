"""Model hosts on this machine, and the names and configs Corral suggests for found hosts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network
from urllib.parse import urlsplit

from app.core.discovery.scanner import DEFAULT_PORTS, NetworkScanner
from app.core.hosts.address import DEFAULT_OLLAMA_URL, normalize_host_url
from app.core.hosts.base import HostConfig, HostKind
from app.core.hosts.identify import Identity

THIS_MACHINE = IPv4Network("127.0.0.1/32")

# The port each kind of server listens on unless told otherwise.
USUAL_PORTS: dict[HostKind, int] = {
    HostKind.OLLAMA: 11434,
    HostKind.LMSTUDIO: 1234,
    HostKind.LLAMACPP: 8080,
    HostKind.VLLM: 8000,
}


async def discover_local(
    ports: Sequence[int] = DEFAULT_PORTS,
    *,
    connect_timeout: float = 0.3,
    probe_timeout: float = 2.0,
    scanner: NetworkScanner | None = None,
) -> list[Identity]:
    """Model hosts listening on this machine (127.0.0.1) on ``ports``, sorted by port."""
    if scanner is None:
        scanner = NetworkScanner(
            concurrency=max(1, len(ports)),
            connect_timeout=connect_timeout,
            probe_timeout=probe_timeout,
        )
    result = await scanner.scan([THIS_MACHINE], ports)
    return result.found


def host_and_port(url: str) -> tuple[str, int]:
    """``("192.168.1.20", 8080)`` for ``http://192.168.1.20:8080``."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


def is_this_machine(url: str) -> bool:
    """True for a URL on 127.0.0.1, ``localhost`` or ``::1``: where this machine's servers
    are reached. (Other 127.x addresses are loopback too, but a server bound to one of them
    is named by its address so that two of them do not get the same name.)"""
    host, _ = host_and_port(url)
    return host.lower() in ("127.0.0.1", "localhost", "::1")


def suggested_name(identity: Identity, *, host_label: str = "") -> str:
    """A display name for a found host.

    ``"LM Studio on this computer"`` for this machine (with ``(port N)`` when it is not the
    kind's usual port), ``"llama.cpp (gpu-box:8080)"`` elsewhere, where ``host_label`` is a
    host name (from mDNS) shown instead of the address.
    """
    host, port = host_and_port(identity.url)
    label = identity.kind.label
    if is_this_machine(identity.url):
        name = f"{label} on this computer"
        if USUAL_PORTS.get(identity.kind) != port:
            name += f" (port {port})"
        return name
    shown = host_label.strip().removesuffix(".").removesuffix(".local") or host
    return f"{label} ({shown}:{port})"


def host_config_for(identity: Identity, *, host_label: str = "") -> HostConfig:
    """A HostConfig suggestion for a found host.

    This machine's hosts get the id ``local-<port>`` and source ``local`` (the registry
    shows them without saving them); others get ``found-<address>-<port>`` and source
    ``user``, the id being replaced when the user keeps one.
    """
    host, port = host_and_port(identity.url)
    url = normalize_host_url(identity.url)
    name = suggested_name(identity, host_label=host_label)
    if is_this_machine(identity.url):
        return HostConfig(f"local-{port}", name, url, identity.kind, source="local")
    slug = host.replace(".", "-").replace(":", "-")
    return HostConfig(f"found-{slug}-{port}", name, url, identity.kind, source="user")


def local_host_configs(identities: Iterable[Identity]) -> list[HostConfig]:
    """HostConfigs for this machine's found hosts, leaving out the default Ollama
    (127.0.0.1:11434, which the registry always lists) and anything not on this machine."""
    out: list[HostConfig] = []
    for identity in identities:
        if not is_this_machine(identity.url):
            continue
        config = host_config_for(identity)
        if config.url == DEFAULT_OLLAMA_URL or any(c.id == config.id for c in out):
            continue
        out.append(config)
    return out


__all__ = [
    "USUAL_PORTS",
    "discover_local",
    "host_and_port",
    "host_config_for",
    "is_this_machine",
    "local_host_configs",
    "suggested_name",
]
