"""mDNS end to end, run inside a network namespace a test created (see tests/core/test_mdns.py).

    ip netns exec corral-mdns-XXXX python -m tests.support.mdns_netns

The namespace has only its own loopback interface (up, multicast on), so every mDNS packet
stays inside it. This module starts a fake Ollama on 127.0.0.1, announces it as
``_ollama._tcp`` and a Corral agent as ``_corral._tcp`` with zeroconf bound to 127.0.0.1
only, and runs Corral's discovery service with its mDNS browser on 127.0.0.1 and a
scanner that refuses to scan. It waits (on events, with deadlines) for the suggestion and
the agent, withdraws the Ollama announcement, waits for the suggestion to go, and prints
one JSON line with what it saw. Exit status 0 when everything was seen, 1 otherwise.

It refuses to run outside a namespace that has nothing but loopback.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from app.core.discovery import (
    CORRAL_SERVICE,
    OLLAMA_SERVICE,
    DiscoveryService,
    MdnsBrowser,
    MdnsService,
    NetworkScanner,
    ScanResult,
)
from app.core.events import Event
from app.core.hosts.registry import HostRegistry
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from tests.fakes.ollama import FakeOllama
from tests.support.memory_keyring import MemoryKeyring

DEADLINE_S = 20.0
ADDRESS = "127.0.0.1"


class NoScan(NetworkScanner):
    """Fails the run if anything asks for a scan: mDNS hosts must appear without one."""

    calls = 0

    async def scan(self, *args: Any, **kwargs: Any) -> ScanResult:
        NoScan.calls += 1
        raise AssertionError("a scan was started")


def only_loopback() -> bool:
    """True inside a namespace whose only interface is loopback."""
    names = set(psutil.net_if_addrs())
    return names <= {"lo"}


async def until(events: list[Event[Any]], condition: Callable[[], bool], deadline_s: float) -> bool:
    """Wait until ``condition()`` holds, checking it each time one of ``events`` fires."""
    fired = asyncio.Event()

    def wake(_: object) -> None:
        fired.set()

    for event in events:
        event.connect(wake)
    try:
        async with asyncio.timeout(deadline_s):
            while not condition():
                await fired.wait()
                fired.clear()
        return True
    except TimeoutError:
        return False
    finally:
        for event in events:
            event.disconnect(wake)


async def run(workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "scans": 0}
    fake = FakeOllama(ADDRESS, 0, models=["netns-model:1b"]).start()
    out["fake_url"] = fake.url
    advertiser = AsyncZeroconf(interfaces=[ADDRESS], ip_version=IPVersion.V4Only)
    host_info = AsyncServiceInfo(
        OLLAMA_SERVICE,
        f"gpu-box.{OLLAMA_SERVICE}",
        addresses=[socket.inet_aton(ADDRESS)],
        port=fake.port,
        properties={"version": fake.version},
        server="gpu-box.local.",
    )
    agent_info = AsyncServiceInfo(
        CORRAL_SERVICE,
        f"gpu-box.{CORRAL_SERVICE}",
        addresses=[socket.inet_aton(ADDRESS)],
        port=9101,
        properties={"host_id": "gpu-box-1", "agent": "0.1"},
        server="gpu-box.local.",
    )
    registry = HostRegistry(
        SettingsStore(workdir / "settings.json"), SecretStore(MemoryKeyring()), env={}
    )
    browser = MdnsBrowser(interfaces=[ADDRESS])
    found: list[MdnsService] = []
    lost: list[MdnsService] = []
    browser.found.connect(found.append)
    browser.lost.connect(lost.append)
    service = DiscoveryService(registry, scanner=NoScan(), mdns_interfaces=[ADDRESS])
    try:
        await service.start_mdns(browser)
        announced = await asyncio.gather(
            advertiser.async_register_service(host_info),
            advertiser.async_register_service(agent_info),
        )
        await asyncio.gather(*announced)
        seen = await until(
            [service.suggestions_changed, service.agents_changed],
            lambda: bool(service.suggestions) and bool(service.agents),
            DEADLINE_S,
        )
        out["suggestions"] = [
            {"url": s.url, "name": s.name, "source": s.source} for s in service.suggestions
        ]
        out["agents"] = [
            {"name": a.name, "url": a.url, "properties": dict(a.properties)} for a in service.agents
        ]
        out["found"] = [
            {
                "name": s.name,
                "server": s.server,
                "addresses": list(s.addresses),
                "port": s.port,
                "kind": s.identity.kind.value if s.identity else None,
                "models": list(s.identity.models) if s.identity else [],
                "url": s.url,
            }
            for s in found
        ]
        if not seen:
            out["error"] = "the announced host or agent was not listed in time"
            return out
        await (await advertiser.async_unregister_service(host_info))
        gone = await until(
            [service.suggestions_changed], lambda: not service.suggestions, DEADLINE_S
        )
        out["lost"] = [s.name for s in lost]
        if not gone:
            out["error"] = "the withdrawn host was still suggested"
            return out
        out["ok"] = True
        return out
    finally:
        out["scans"] = NoScan.calls
        await service.aclose()
        await advertiser.async_close()
        fake.stop()


def main() -> int:
    if not only_loopback():
        print(json.dumps({"ok": False, "error": "run this only inside a loopback-only netns"}))
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        try:
            out = asyncio.run(asyncio.wait_for(run(Path(tmp)), DEADLINE_S * 3))
        except TimeoutError:
            out = {"ok": False, "error": "the mDNS run did not finish in time"}
    print(json.dumps(out), flush=True)
    return 0 if out.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
