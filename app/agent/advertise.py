"""Announcing the agent on the local network: ``_corral._tcp.local.`` over mDNS.

The announcement carries the port and a TXT record with ``host_id`` (the agent's stable
id), ``version``, ``path`` (``/v1/telemetry``) and ``auth`` (``bearer`` or ``none``).
mDNS runs only on the interface of the address the agent is bound to; an agent bound to
``0.0.0.0`` announces every IPv4 address of this machine but loopback.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket

import psutil
from zeroconf import Error as ZeroconfError
from zeroconf import InterfaceChoice, IPVersion, ServiceInfo, Zeroconf

from app import __version__
from app.core.discovery.mdns import CORRAL_SERVICE
from app.core.errors import MdnsUnavailable
from app.core.telemetry.sources import AGENT_PATH

log = logging.getLogger(__name__)


def _instance_label(hostname: str) -> str:
    label = re.sub(r"[^A-Za-z0-9-]+", "-", hostname.split(".")[0]).strip("-")
    return (label or "corral-agent")[:63]


def _addresses(bound: str) -> list[str]:
    ip = ipaddress.ip_address(bound)
    if not ip.is_unspecified:
        return [str(ip)]
    out = []
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback:
                out.append(a.address)
    return sorted(set(out))


class Advertiser:
    """Announces one agent until :meth:`close`.

    Attributes:
        info: the registered service (after :meth:`start`).
    """

    def __init__(
        self, bound: str, port: int, host_id: str, *, hostname: str, token_required: bool
    ) -> None:
        self._bound = bound.strip("[]")
        self._port = port
        self._host_id = host_id
        self._hostname = hostname
        self._token_required = token_required
        self._zc: Zeroconf | None = None
        self.info: ServiceInfo | None = None

    def start(self) -> ServiceInfo:
        """Register the service (blocks while mDNS probes the name, about a second)."""
        addresses = _addresses(self._bound)
        if not addresses:
            raise MdnsUnavailable("This machine has no address to announce the agent on.")
        v6 = ipaddress.ip_address(addresses[0]).version == 6
        family = socket.AF_INET6 if v6 else socket.AF_INET
        interfaces: InterfaceChoice | list[str | int] = (
            InterfaceChoice.All
            if ipaddress.ip_address(self._bound).is_unspecified
            else list(addresses)
        )
        label = _instance_label(self._hostname)
        info = ServiceInfo(
            CORRAL_SERVICE,
            f"{label}.{CORRAL_SERVICE}",
            addresses=[socket.inet_pton(family, a) for a in addresses],
            port=self._port,
            properties={
                "host_id": self._host_id,
                "version": __version__,
                "path": AGENT_PATH,
                "auth": "bearer" if self._token_required else "none",
            },
            server=f"{label}.local.",
        )
        try:
            zc = Zeroconf(
                interfaces=interfaces, ip_version=IPVersion.V6Only if v6 else IPVersion.V4Only
            )
        except (OSError, ValueError, RuntimeError, ZeroconfError) as exc:
            raise MdnsUnavailable(f"The agent cannot be announced (mDNS): {exc}.") from exc
        try:
            zc.register_service(info, allow_name_change=True)
        except (OSError, ZeroconfError) as exc:
            zc.close()
            raise MdnsUnavailable(f"The agent cannot be announced (mDNS): {exc}.") from exc
        self._zc = zc
        self.info = info
        log.info("announced %s on %s", info.name, ", ".join(addresses))
        return info

    def close(self) -> None:
        zc, self._zc = self._zc, None
        if zc is None:
            return
        try:
            if self.info is not None:
                zc.unregister_service(self.info)
        except (OSError, ZeroconfError) as exc:
            log.info("withdrawing the mDNS announcement failed: %s", exc)
        finally:
            zc.close()
