"""scan: a network scan of a /24 for model hosts, against a plain TCP connect sweep.

Eight fake model hosts (Ollama and the four OpenAI-compatible flavors) and one unrelated
web server listen on 127.0.0.x. Corral's scanner covers 127.0.0.0/24 x 4 ports (connect,
then identify what answers); the baseline is a plain TCP connect sweep of the same
addresses x ports with the same concurrency and no identification. Rounds alternate
(scan, sweep, sweep, scan, ...) and medians are compared.
Targets: scan wall time < 2.0 s, all 8 hosts found, no false positive.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app.core.discovery.policy import scan_addresses
from app.core.discovery.scanner import ScanResult, scan
from app.core.hosts.base import HostKind
from bench import Result
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_server import FakeOpenAI, Flavor

NETWORK = ipaddress.IPv4Network("127.0.0.0/24")
CONCURRENCY = 256
CONNECT_TIMEOUT = 0.5
TARGET_WALL_S = 2.0
USUAL = {"ollama": 11434, "lmstudio": 1234, "llamacpp": 8080, "vllm": 8000}
# (what, address, port role, expected kind)
HOSTS: list[tuple[str, str, str, HostKind]] = [
    ("ollama", "127.0.0.2", "ollama", HostKind.OLLAMA),
    ("ollama", "127.0.0.5", "llamacpp", HostKind.OLLAMA),
    ("ollama", "127.0.0.77", "ollama", HostKind.OLLAMA),
    ("llamacpp", "127.0.0.10", "llamacpp", HostKind.LLAMACPP),
    ("lmstudio", "127.0.0.20", "lmstudio", HostKind.LMSTUDIO),
    ("vllm", "127.0.0.30", "vllm", HostKind.VLLM),
    ("generic", "127.0.0.99", "vllm", HostKind.OPENAI),
    ("llamacpp", "127.0.0.200", "llamacpp", HostKind.LLAMACPP),
]
JUNK = ("127.0.0.50", "vllm")  # an unrelated web server: open port, not a model host


class _NotAModelServer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _pick_ports() -> dict[str, int]:
    """The usual ports where nothing in 127.0.0.0/24 listens yet, else nearby free ones."""
    addresses = [str(a) for a in scan_addresses(NETWORK)]
    out: dict[str, int] = {}
    for role, usual in USUAL.items():
        for port in (usual, *range(usual + 101, usual + 140)):
            if port in out.values() or any(_listening(a, port) for a in addresses):
                continue
            out[role] = port
            break
        else:
            raise RuntimeError(f"no free port near {usual} on {NETWORK}")
    return out


@contextlib.contextmanager
def fake_lan(ports: dict[str, int]) -> Iterator[dict[str, HostKind]]:
    """Start the fakes; yield the URL -> kind of every model host."""
    servers: list[Any] = []
    expected: dict[str, HostKind] = {}
    try:
        for i, (what, address, role, kind) in enumerate(HOSTS):
            server: FakeOllama | FakeOpenAI
            if what == "ollama":
                server = FakeOllama(address, ports[role], models=[f"bench-{i}:1b"]).start()
            else:
                flavor: Flavor = what  # type: ignore[assignment]
                router = address == "127.0.0.200"
                server = FakeOpenAI(address, ports[role], flavor=flavor, router=router).start()
            servers.append(server)
            expected[server.url] = kind
        junk = ThreadingHTTPServer((JUNK[0], ports[JUNK[1]]), _NotAModelServer)
        threading.Thread(target=junk.serve_forever, daemon=True).start()
        servers.append(junk)
        yield expected
    finally:
        for server in servers:
            if isinstance(server, ThreadingHTTPServer):
                server.shutdown()
                server.server_close()
            else:
                server.stop()


async def connect_sweep(ports: list[int], concurrency: int) -> tuple[float, int, int]:
    """The baseline: TCP connect to every address x port, nothing else. (wall s, probes, open)"""
    probes = ((str(a), p) for a in scan_addresses(NETWORK) for p in ports)
    counts = [0, 0]

    async def worker() -> None:
        for address, port in probes:
            counts[0] += 1
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(address, port), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError):
                continue
            counts[1] += 1
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return time.perf_counter() - t0, counts[0], counts[1]


async def corral_scan(ports: list[int], concurrency: int) -> tuple[float, ScanResult]:
    t0 = time.perf_counter()
    result = await scan([NETWORK], ports, concurrency=concurrency, connect_timeout=CONNECT_TIMEOUT)
    return time.perf_counter() - t0, result


async def _measure(
    ports: list[int], rounds: int
) -> tuple[list[float], list[ScanResult], list[float], int]:
    scans: list[float] = []
    results: list[ScanResult] = []
    sweeps: list[float] = []
    sweep_open = 0
    for i in range(rounds):
        order = ("scan", "sweep") if i % 2 == 0 else ("sweep", "scan")
        for what in order:
            if what == "scan":
                wall, result = await corral_scan(ports, CONCURRENCY)
                scans.append(wall)
                results.append(result)
            else:
                wall, _, sweep_open = await connect_sweep(ports, CONCURRENCY)
                sweeps.append(wall)
    return scans, results, sweeps, sweep_open


def run(argv: list[str]) -> Result:
    parser = argparse.ArgumentParser(prog="python -m bench scan")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    roles = _pick_ports()
    ports = sorted(roles.values())
    with fake_lan(roles) as expected:
        scans, results, sweeps, sweep_open = asyncio.run(_measure(ports, args.rounds))

    probes = results[0].probed
    found_sets = [{i.url: i.kind for i in r.found} for r in results]
    found = min(sum(1 for u, k in f.items() if expected.get(u) == k) for f in found_sets)
    false_pos = max(sum(1 for u, k in f.items() if expected.get(u) != k) for f in found_sets)
    missed = len(expected) - found
    wall, wall_max = statistics.median(scans), max(scans)
    base = statistics.median(sweeps)
    ratio = wall / base if base > 0 else float("inf")
    met = wall_max < TARGET_WALL_S and found == len(expected) and false_pos == 0

    print(
        f"scan: {NETWORK} x {len(ports)} ports {ports} = {probes} probes, "
        f"{len(expected)} fake hosts + 1 unrelated web server, concurrency {CONCURRENCY}, "
        f"{args.rounds} rounds"
    )
    print(
        f"  Corral scan (connect + identify)  median {wall:6.3f} s   max {wall_max:6.3f} s   "
        f"{probes / wall:9.0f} probes/s"
    )
    print(
        f"  plain TCP connect sweep           median {base:6.3f} s   max {max(sweeps):6.3f} s   "
        f"{probes / base:9.0f} probes/s"
    )
    print(
        f"  found {found}/{len(expected)}, false positives {false_pos}, missed {missed}, "
        f"open ports {results[0].open_ports} (sweep saw {sweep_open})"
    )
    print(f"  ratio (scan / sweep, medians) {ratio:.2f}   target: wall < {TARGET_WALL_S} s")
    return Result(
        bench="scan",
        figures={
            "probes": probes,
            "wall_s": round(wall, 3),
            "wall_s_max": round(wall_max, 3),
            "probes_per_s": round(probes / wall),
            "found": found,
            "expected": len(expected),
            "false_positives": false_pos,
            "open_ports": results[0].open_ports,
            "concurrency": CONCURRENCY,
            "rounds": args.rounds,
        },
        baseline={
            "wall_s": round(base, 3),
            "wall_s_max": round(max(sweeps), 3),
            "probes_per_s": round(probes / base),
            "open_ports": sweep_open,
        },
        ratios={"wall": round(ratio, 3)},
        targets={
            "wall_s": f"< {TARGET_WALL_S}",
            "found": f"== {len(expected)}",
            "false_positives": "== 0",
        },
        met=met,
    )
