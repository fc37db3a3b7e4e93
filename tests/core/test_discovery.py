"""Discovery: scan policy, the network scanner, this machine's hosts, the discovery service.

Every packet stays on loopback: fake servers listen on 127.0.0.x, scans cover
127.0.0.0/26 (or single loopback addresses), and the policy tests inject interface tables
instead of reading this machine's.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import itertools
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.discovery import (
    DiscoveryService,
    MdnsBrowser,
    MdnsService,
    NetworkScanner,
    ScanFailed,
    ScanProgress,
    ScanResult,
    Suggestion,
    discover_local,
    host_config_for,
    local_host_configs,
    local_scan_networks,
    parse_scan_target,
    scan,
    suggested_name,
)
from app.core.discovery.policy import SCANNABLE_NETWORKS, scan_addresses
from app.core.discovery.scanner import _Tally
from app.core.errors import InvalidInput
from app.core.hosts.base import HostConfig, HostKind
from app.core.hosts.identify import Identity, identify_url
from app.core.hosts.registry import HostRegistry
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_server import FakeOpenAI
from tests.support.forward import TcpForwarder
from tests.support.memory_keyring import MemoryKeyring
from tests.support.waiting import wait_for

N = ipaddress.IPv4Network
LAN = N("127.0.0.0/26")

# ---------------------------------------------------------------------------- policy


class Addr(NamedTuple):
    """The shape of a psutil ``snicaddr``."""

    family: int
    address: str
    netmask: str | None
    broadcast: str | None = None
    ptp: str | None = None


def v4(address: str, netmask: str | None) -> Addr:
    return Addr(socket.AF_INET, address, netmask)


INTERFACES: dict[str, list[Addr]] = {
    "lo": [v4("127.0.0.1", "255.0.0.0"), Addr(socket.AF_INET6, "::1", "ffff:ffff::")],
    "eth0": [
        v4("192.168.1.23", "255.255.255.0"),
        Addr(socket.AF_INET6, "fe80::1", "ffff:ffff:ffff:ffff::"),
        Addr(psutil.AF_LINK, "00:11:22:33:44:55", None),
    ],
    "wlan0": [v4("10.1.2.3", "255.0.0.0")],  # a /8: narrowed to its /22
    "docker0": [v4("172.17.0.1", "255.255.0.0")],
    "zeroconf": [v4("169.254.10.20", "255.255.0.0")],
    "wan": [v4("8.8.4.4", "255.255.255.0")],  # public: never scanned
    "tailscale0": [v4("100.101.102.103", "255.192.0.0")],  # CGNAT: not private
    "vpn": [v4("10.9.9.9", None)],  # no netmask: skipped
    "eth1": [v4("192.168.1.99", "255.255.255.0")],  # the same /24 again: listed once
    "p2p": [v4("192.168.7.7", "255.255.255.255")],
}


def test_local_scan_networks_are_private_and_link_local_only() -> None:
    assert local_scan_networks(interfaces=INTERFACES) == [
        N("10.1.0.0/22"),
        N("169.254.8.0/22"),
        N("172.17.0.0/22"),
        N("192.168.1.0/24"),
        N("192.168.7.7/32"),
    ]


def test_local_scan_networks_narrow_to_the_configured_prefix() -> None:
    assert local_scan_networks(24, interfaces={"eth0": [v4("192.168.5.77", "255.255.0.0")]}) == [
        N("192.168.5.0/24")
    ]
    assert local_scan_networks(interfaces={"lo": [v4("127.0.0.1", "255.0.0.0")]}) == []
    with pytest.raises(InvalidInput):
        local_scan_networks(33, interfaces={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.168.1.0/24", "192.168.1.0/24"),
        (" 192.168.1.7/24 ", "192.168.1.0/24"),
        ("10.0.0.5", "10.0.0.5/32"),
        ("172.16.4.0/22", "172.16.4.0/22"),
        ("169.254.1.0/24", "169.254.1.0/24"),
        ("127.0.0.0/26", "127.0.0.0/26"),
        ("10.0.0.0/20", "10.0.0.0/20"),
    ],
)
def test_parse_scan_target_accepts_local_networks(text: str, expected: str) -> None:
    assert parse_scan_target(text) == N(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8.8.8.0/24", "Corral scans only private, link-local and loopback networks"),
        ("172.0.0.0/8", "Corral scans only private, link-local and loopback networks"),
        ("1.1.1.1", "1.1.1.1/32 is not a local network"),
        ("192.168.0.0/16", "has 65,536 addresses; Corral scans at most 4,096 at a time (a /20)"),
        ("10.0.0.0/19", "Corral scans at most 4,096"),
        ("127.0.0.0/8", "Corral scans at most 4,096"),
        ("", "Enter a network to scan"),
        ("my lan", "is not a network"),
        ("192.168.1.0/33", "is not a network"),
        ("fe80::/64", "Corral scans IPv4 networks only"),
    ],
)
def test_parse_scan_target_refuses_with_plain_words(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_scan_target(text)


def test_parse_scan_target_limit_is_a_parameter() -> None:
    assert parse_scan_target("192.168.0.0/16", max_addresses=65536) == N("192.168.0.0/16")
    with pytest.raises(InvalidInput, match="at most 256 at a time \\(a /24\\)"):
        parse_scan_target("192.168.0.0/23", max_addresses=256)


@given(st.ip_addresses(v=4), st.integers(min_value=0, max_value=32))
def test_parse_scan_target_never_returns_anything_outside_the_policy(
    address: ipaddress.IPv4Address, prefix: int
) -> None:
    try:
        network = parse_scan_target(f"{address}/{prefix}")
    except InvalidInput:
        return
    assert network.num_addresses <= 4096
    assert any(network.subnet_of(allowed) for allowed in SCANNABLE_NETWORKS)


def test_network_and_broadcast_addresses_are_skipped_except_on_31_and_32() -> None:
    assert [str(a) for a in scan_addresses(N("192.168.1.0/30"))] == [
        "192.168.1.1",
        "192.168.1.2",
    ]
    assert len(list(scan_addresses(N("192.168.1.0/31")))) == 2
    assert [str(a) for a in scan_addresses(N("192.168.1.9/32"))] == ["192.168.1.9"]
    assert len(list(scan_addresses(LAN))) == 62


# ---------------------------------------------------------------------------- names


def ident(url: str, kind: HostKind = HostKind.OLLAMA, fingerprint: str = "fp") -> Identity:
    return Identity(url, kind, "1", ("m",), fingerprint)


def test_suggested_names() -> None:
    assert suggested_name(ident("http://127.0.0.1:1234", HostKind.LMSTUDIO)) == (
        "LM Studio on this computer"
    )
    assert suggested_name(ident("http://127.0.0.1:8081", HostKind.LLAMACPP)) == (
        "llama.cpp on this computer (port 8081)"
    )
    assert suggested_name(ident("http://192.168.1.20:8080", HostKind.LLAMACPP)) == (
        "llama.cpp (192.168.1.20:8080)"
    )
    assert suggested_name(
        ident("http://192.168.1.20:8080", HostKind.LLAMACPP), host_label="gpu-box.local."
    ) == ("llama.cpp (gpu-box:8080)")
    assert suggested_name(ident("http://10.0.0.2:8000", HostKind.VLLM)) == "vLLM (10.0.0.2:8000)"


def test_host_configs_for_found_hosts() -> None:
    local = host_config_for(ident("http://127.0.0.1:1234", HostKind.LMSTUDIO))
    assert local == HostConfig(
        "local-1234",
        "LM Studio on this computer",
        "http://127.0.0.1:1234",
        HostKind.LMSTUDIO,
        source="local",
    )
    remote = host_config_for(ident("http://192.168.1.20:8080", HostKind.LLAMACPP))
    assert (remote.id, remote.kind, remote.source) == (
        "found-192-168-1-20-8080",
        HostKind.LLAMACPP,
        "user",
    )
    configs = local_host_configs(
        [
            ident("http://127.0.0.1:11434"),  # the built-in host: left out
            ident("http://127.0.0.1:8000", HostKind.VLLM),
            ident("http://192.168.1.20:8080", HostKind.LLAMACPP),  # not this machine
        ]
    )
    assert [(c.id, c.name, c.kind) for c in configs] == [
        ("local-8000", "vLLM on this computer", HostKind.VLLM)
    ]


def test_the_same_server_keeps_a_loopback_address_then_the_lowest() -> None:
    tally = _Tally(total=3, started=0.0)
    lan_b = ident("http://192.168.1.30:11434")
    lan_a = ident("http://192.168.1.4:11434")
    loop = ident("http://127.0.0.1:11434")
    tally.add(ipaddress.IPv4Address("192.168.1.30"), 11434, lan_b)
    tally.add(ipaddress.IPv4Address("192.168.1.4"), 11434, lan_a)
    assert tally.result().found == [lan_a]
    tally.add(ipaddress.IPv4Address("127.0.0.1"), 11434, loop)
    assert tally.result().found == [loop]


# ---------------------------------------------------------------------------- a fake LAN


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _free_port(usual: int, network: ipaddress.IPv4Network, taken: set[int]) -> int:
    """The usual port if nothing in ``network`` listens on it, else a nearby free one."""
    addresses = [str(a) for a in network]
    for port in (usual, *range(usual + 101, usual + 140)):
        if port in taken or any(_listening(a, port) for a in addresses):
            continue
        return port
    raise RuntimeError(f"no free port near {usual} on {network}")


class _NotAModelServer(BaseHTTPRequestHandler):
    """An unrelated web server: every path is 404."""

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "9")
        self.end_headers()
        self.wfile.write(b"not here\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class FakeLan:
    ports: dict[str, int]
    expected: dict[str, HostKind]  # url -> kind
    ollamas: dict[str, FakeOllama] = field(default_factory=dict)
    servers: list[Any] = field(default_factory=list)

    @property
    def port_list(self) -> list[int]:
        return sorted(set(self.ports.values()))


@pytest.fixture(scope="module")
def lan() -> Iterator[FakeLan]:
    taken: set[int] = set()
    ports: dict[str, int] = {}
    for role, usual in (("ollama", 11434), ("lmstudio", 1234), ("llamacpp", 8080), ("vllm", 8000)):
        ports[role] = _free_port(usual, LAN, taken)
        taken.add(ports[role])
    fake = FakeLan(ports, {})
    plan: list[tuple[str, str, str, HostKind]] = [
        ("ollama", "127.0.0.2", "ollama", HostKind.OLLAMA),
        ("ollama", "127.0.0.7", "llamacpp", HostKind.OLLAMA),
        ("ollama", "127.0.0.12", "lmstudio", HostKind.OLLAMA),
        ("ollama", "127.0.0.40", "ollama", HostKind.OLLAMA),
        ("llamacpp", "127.0.0.20", "llamacpp", HostKind.LLAMACPP),
        ("lmstudio", "127.0.0.25", "lmstudio", HostKind.LMSTUDIO),
        ("vllm", "127.0.0.33", "vllm", HostKind.VLLM),
        ("generic", "127.0.0.40", "vllm", HostKind.OPENAI),
    ]
    try:
        for i, (what, host, role, kind) in enumerate(plan):
            server: FakeOllama | FakeOpenAI
            if what == "ollama":
                server = FakeOllama(host, ports[role], models=[f"model-{i}:1b"]).start()
                fake.ollamas[host] = server
            else:
                server = FakeOpenAI(host, ports[role], flavor=what).start()  # type: ignore[arg-type]
            fake.servers.append(server)
            fake.expected[server.url] = kind
        junk = ThreadingHTTPServer(("127.0.0.15", ports["vllm"]), _NotAModelServer)
        threading.Thread(target=junk.serve_forever, daemon=True).start()
        fake.servers.append(junk)
        yield fake
    finally:
        for server in fake.servers:
            if isinstance(server, ThreadingHTTPServer):
                server.shutdown()
                server.server_close()
            else:
                server.stop()


def _kinds(result: ScanResult | Sequence[Identity]) -> dict[str, HostKind]:
    found = result.found if isinstance(result, ScanResult) else result
    return {i.url: i.kind for i in found}


# ---------------------------------------------------------------------------- scanner


async def test_a_scan_finds_exactly_the_model_hosts(lan: FakeLan) -> None:
    result = await scan([LAN], lan.port_list)
    assert _kinds(result) == lan.expected
    assert result.probed == 62 * len(lan.port_list)
    assert result.open_ports == len(lan.expected) + 1  # the unrelated web server
    assert len({i.fingerprint for i in result.found}) == len(result.found)
    host_port = [u.removeprefix("http://").split(":") for u in lan.expected]
    ordered = sorted(host_port, key=lambda hp: (ipaddress.ip_address(hp[0]), int(hp[1])))
    assert [i.url for i in result.found] == [f"http://{h}:{p}" for h, p in ordered]


async def test_the_same_server_on_two_addresses_is_found_once(lan: FakeLan) -> None:
    port = lan.ports["ollama"]
    async with (
        TcpForwarder("127.0.0.2", port, host="127.0.0.9", port=port) as fwd,
        TcpForwarder("127.0.0.40", lan.ports["vllm"], host="127.0.0.3", port=lan.ports["vllm"]),
    ):
        direct = await identify_url(f"http://127.0.0.2:{port}")
        through = await identify_url(fwd.url)
        assert direct is not None and through is not None
        assert direct.fingerprint == through.fingerprint
        result = await scan([LAN], lan.port_list)
    # Each server once: the Ollama under 127.0.0.2 (lower than 127.0.0.9), the generic
    # server under the forwarder's 127.0.0.3 (lower than 127.0.0.40).
    expected = dict(lan.expected)
    del expected[f"http://127.0.0.40:{lan.ports['vllm']}"]
    expected[f"http://127.0.0.3:{lan.ports['vllm']}"] = HostKind.OPENAI
    assert _kinds(result) == expected
    assert result.open_ports == len(lan.expected) + 1 + 2


async def test_progress_is_throttled_and_reaches_the_total(lan: FakeLan) -> None:
    seen: list[ScanProgress] = []
    result = await scan([N("127.0.0.0/25")], lan.port_list, on_progress=seen.append)
    assert seen, "no progress reported"
    last = seen[-1]
    assert (last.probed, last.total) == (result.probed, 126 * len(lan.port_list))
    assert (last.open, last.found) == (result.open_ports, len(result.found))
    assert all(a.probed <= b.probed for a, b in itertools.pairwise(seen))
    assert all(p.total == last.total for p in seen)
    assert len(seen) <= result.elapsed_s * 20 + 2
    assert last.fraction == 1.0


def _client_sockets_to(host: str, port: int) -> list[Any]:
    return [
        c
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and (c.raddr.ip, c.raddr.port) == (host, port)
    ]


async def test_cancelling_a_scan_closes_everything_and_leaves_no_task(lan: FakeLan) -> None:
    port = lan.ports["ollama"]
    with FakeOllama("127.0.0.50", port, models=["hangs:1b"]) as hanging:
        hanging.faults.hang = True  # identification waits for an answer that never comes
        before = asyncio.all_tasks()
        task = asyncio.create_task(scan([LAN], lan.port_list, concurrency=16, probe_timeout=30.0))
        await wait_for(lambda: hanging.requests, timeout=10.0)
        assert not task.done()
        assert _client_sockets_to(hanging.host, port)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == before
        assert _client_sockets_to(hanging.host, port) == []


async def test_cancelling_during_the_connect_sweep(lan: FakeLan) -> None:
    before = asyncio.all_tasks()
    fds = psutil.Process().num_fds()
    reports: list[ScanProgress] = []
    task = asyncio.create_task(scan([N("127.0.0.0/22")], lan.port_list, on_progress=reports.append))
    await wait_for(lambda: reports, timeout=10.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reports[-1].probed < reports[-1].total
    assert asyncio.all_tasks() == before
    # the fake servers close their side of the identification connections on their own
    await wait_for(lambda: psutil.Process().num_fds() <= fds, timeout=5.0)


async def test_bounded_workers_not_a_task_per_probe(lan: FakeLan) -> None:
    peak = 0

    def watch(_: ScanProgress) -> None:
        nonlocal peak
        peak = max(peak, len(asyncio.all_tasks()))

    result = await scan([N("127.0.0.0/24")], lan.port_list, concurrency=8, on_progress=watch)
    assert result.probed == 254 * len(lan.port_list)
    # 8 workers, each with at most one identification (6 requests at once), and the test:
    # nowhere near one task per probe (1,016 here)
    assert peak <= 8 * (1 + 6) + 2


async def test_out_of_sockets_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_more_sockets(*args: object, **kwargs: object) -> socket.socket:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr("app.core.discovery.scanner.socket.socket", no_more_sockets)
    with pytest.raises(ScanFailed, match="ran out of network sockets") as info:
        await scan([N("127.0.0.0/30")], [9])
    assert isinstance(info.value.__cause__, OSError)


async def test_bad_ports_and_settings_are_refused() -> None:
    with pytest.raises(InvalidInput, match="port number"):
        await scan([N("127.0.0.1/32")], [0])
    with pytest.raises(InvalidInput, match="port number"):
        await scan([N("127.0.0.1/32")], [70000])
    with pytest.raises(InvalidInput, match="concurrency"):
        NetworkScanner(concurrency=0)
    empty = await scan([], [11434])
    assert (empty.found, empty.probed) == ([], 0)


async def test_discover_local_finds_this_machines_servers() -> None:
    taken: set[int] = set()
    this = N("127.0.0.1/32")
    lms_port = _free_port(1234, this, taken)
    taken.add(lms_port)
    llama_port = _free_port(8080, this, taken)
    taken.add(llama_port)
    idle_port = _free_port(8000, this, taken)
    with (
        FakeOpenAI("127.0.0.1", lms_port, flavor="lmstudio"),
        FakeOpenAI("127.0.0.1", llama_port, flavor="llamacpp"),
        FakeOllama("127.0.0.2", lms_port, models=["elsewhere:1b"]),  # not 127.0.0.1
    ):
        found = await discover_local((lms_port, llama_port, idle_port))
    assert _kinds(found) == {
        f"http://127.0.0.1:{lms_port}": HostKind.LMSTUDIO,
        f"http://127.0.0.1:{llama_port}": HostKind.LLAMACPP,
    }


# ---------------------------------------------------------------------------- service


def make_registry(tmp_path: Path) -> HostRegistry:
    return HostRegistry(
        SettingsStore(tmp_path / "settings.json"), SecretStore(MemoryKeyring()), env={}
    )


@pytest.fixture
def registry(tmp_path: Path) -> HostRegistry:
    return make_registry(tmp_path)


async def test_service_scan_suggests_what_it_found(lan: FakeLan, registry: HostRegistry) -> None:
    service = DiscoveryService(registry, ports=lan.port_list)
    changes: list[list[Suggestion]] = []
    progress: list[ScanProgress] = []
    finished: list[ScanResult] = []
    service.suggestions_changed.connect(changes.append)
    service.scan_progress.connect(progress.append)
    service.scan_finished.connect(finished.append)
    result = await service.scan(["127.0.0.0/26"])
    assert finished == [result]
    assert progress and progress[-1].probed == progress[-1].total
    assert {s.url: s.identity.kind for s in service.suggestions} == lan.expected
    assert changes[-1] == service.suggestions
    assert {s.source for s in service.suggestions} == {"scan"}
    names = {s.url: s.name for s in service.suggestions}
    assert names[f"http://127.0.0.25:{lan.ports['lmstudio']}"] == (
        f"LM Studio (127.0.0.25:{lan.ports['lmstudio']})"
    )
    await service.aclose()


async def test_keep_and_dismiss(lan: FakeLan, registry: HostRegistry) -> None:
    service = DiscoveryService(registry, ports=lan.port_list)
    await service.scan(["127.0.0.0/26"])
    by_url = {s.url: s for s in service.suggestions}
    vllm = by_url[f"http://127.0.0.33:{lan.ports['vllm']}"]
    llama = by_url[f"http://127.0.0.20:{lan.ports['llamacpp']}"]

    config = service.keep(vllm)
    assert (config.url, config.kind, config.name) == (vllm.url, HostKind.VLLM, vllm.name)
    assert registry.get(config.id) == config
    service.dismiss(llama)
    left = {s.url for s in service.suggestions}
    assert vllm.url not in left and llama.url not in left
    assert len(left) == len(lan.expected) - 2

    await service.scan(["127.0.0.0/26"])  # neither comes back
    assert {s.url for s in service.suggestions} == left
    await service.aclose()


async def test_hosts_the_registry_knows_under_another_address_are_not_suggested(
    lan: FakeLan, registry: HostRegistry
) -> None:
    port = lan.ports["ollama"]
    # The user added the Ollama at 127.0.0.2 through another route (its "LAN address").
    async with TcpForwarder("127.0.0.2", port, host="127.0.0.60") as fwd:
        registry.add(fwd.url, "My GPU box")
        service = DiscoveryService(registry, ports=lan.port_list)
        await service.scan(["127.0.0.0/26"])
        await service.aclose()
    urls = {s.url for s in service.suggestions}
    assert f"http://127.0.0.2:{port}" not in urls
    assert len(urls) == len(lan.expected) - 1


async def test_adding_a_host_by_hand_removes_its_suggestion(
    lan: FakeLan, registry: HostRegistry
) -> None:
    service = DiscoveryService(registry, ports=lan.port_list)
    await service.scan(["127.0.0.0/26"])
    target = service.suggestions[0]
    registry.add(target.url, "typed in")
    assert target.url not in {s.url for s in service.suggestions}
    await service.aclose()


async def test_a_rescan_forgets_a_host_that_went_away(lan: FakeLan, registry: HostRegistry) -> None:
    port = lan.ports["ollama"]
    service = DiscoveryService(registry, ports=lan.port_list)
    with FakeOllama("127.0.0.55", port, models=["brief:1b"]):
        await service.scan(["127.0.0.48/28"])
        assert [s.url for s in service.suggestions] == [f"http://127.0.0.55:{port}"]
    await service.scan(["127.0.0.0/26"])
    assert f"http://127.0.0.55:{port}" not in {s.url for s in service.suggestions}
    await service.aclose()


async def test_service_refuses_bad_targets_and_a_second_scan(
    lan: FakeLan, registry: HostRegistry
) -> None:
    service = DiscoveryService(registry, ports=lan.port_list)
    with pytest.raises(InvalidInput, match="only private, link-local and loopback"):
        await service.scan(["8.8.8.0/24"])
    with pytest.raises(InvalidInput, match="Enter a network"):
        await service.scan(["  "])
    with pytest.raises(InvalidInput, match="port number"):
        await service.scan(["127.0.0.1"], ports=[0])
    first = asyncio.create_task(service.scan(["127.0.0.0/24"]))
    await wait_for(lambda: service.scanning)
    with pytest.raises(ScanFailed, match="already running"):
        await service.scan(["127.0.0.1"])
    await first
    assert not service.scanning
    await service.aclose()


class RecordingScanner(NetworkScanner):
    """Sends nothing: records what it was asked to scan."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[list[ipaddress.IPv4Network], list[int]]] = []

    async def scan(self, networks: Any, ports: Any, *, on_progress: Any = None) -> ScanResult:
        self.calls.append((list(networks), list(ports)))
        return ScanResult([], 0, 0, 0.0)


async def test_no_targets_means_this_machines_private_networks(registry: HostRegistry) -> None:
    scanner = RecordingScanner()
    service = DiscoveryService(
        registry,
        ports=[11434, 8080],
        max_prefix=23,
        scanner=scanner,
        interfaces={"eth0": [v4("192.168.8.9", "255.255.0.0")], "lo": INTERFACES["lo"]},
    )
    await service.scan()
    assert scanner.calls == [([N("192.168.8.0/23")], [11434, 8080])]
    lonely = DiscoveryService(registry, scanner=scanner, interfaces={"lo": INTERFACES["lo"]})
    with pytest.raises(ScanFailed, match="not on a private network"):
        await lonely.scan()
    assert len(scanner.calls) == 1
    await service.aclose()
    await lonely.aclose()


async def test_refresh_local_lists_this_machines_servers(registry: HostRegistry) -> None:
    this = N("127.0.0.1/32")
    port = _free_port(1234, this, set())
    idle = _free_port(8000, this, {port})
    with FakeOpenAI("127.0.0.1", port, flavor="lmstudio"):
        service = DiscoveryService(registry, ports=[port, idle])
        configs = await service.refresh_local()
    assert [(c.id, c.kind) for c in configs] == [(f"local-{port}", HostKind.LMSTUDIO)]
    listed = {c.id: c for c in registry.hosts()}
    assert listed[f"local-{port}"].source == "local"
    assert listed[f"local-{port}"].name.startswith("LM Studio on this computer")
    await service.aclose()


class SilentBrowser(MdnsBrowser):
    """An mDNS browser that opens no socket; the test announces services by hand."""

    async def start(self) -> None:
        pass


async def test_mdns_announcements_become_suggestions_and_agents(
    lan: FakeLan, registry: HostRegistry
) -> None:
    port = lan.ports["ollama"]
    identity = await identify_url(f"http://127.0.0.7:{lan.ports['llamacpp']}")
    assert identity is not None
    browser = SilentBrowser()
    service = DiscoveryService(registry, ports=lan.port_list)
    agents: list[list[MdnsService]] = []
    service.agents_changed.connect(agents.append)
    await service.start_mdns(browser)
    host = MdnsService(
        "gpu-box._ollama._tcp.local.",
        "_ollama._tcp.local.",
        "gpu-box.local.",
        ("127.0.0.7",),
        lan.ports["llamacpp"],
        identity=identity,
    )
    agent = MdnsService(
        "gpu-box._corral._tcp.local.",
        "_corral._tcp.local.",
        "gpu-box.local.",
        ("127.0.0.7",),
        9101,
        properties={"host_id": "gpu-box-1"},
    )
    browser.found.emit(host)
    browser.found.emit(agent)
    suggestion = await wait_for(lambda: service.suggestions)
    assert [(s.url, s.source, s.name) for s in suggestion] == [
        (identity.url, "mdns", f"Ollama (gpu-box:{lan.ports['llamacpp']})")
    ]
    assert agents[-1] == [agent] and agents[-1][0].properties["host_id"] == "gpu-box-1"
    assert agent.is_agent and agent.url == "http://127.0.0.7:9101"

    # a scan that finds it too does not list it twice
    await service.scan(["127.0.0.0/26"], ports=[port, lan.ports["llamacpp"]])
    assert [s.url for s in service.suggestions].count(identity.url) == 1

    browser.lost.emit(host)
    browser.lost.emit(agent)
    assert agents[-1] == []
    await service.aclose()
