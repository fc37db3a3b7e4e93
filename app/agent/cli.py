"""Command line of the host agent: ``python -m app agent`` and ``corral-agent``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from app import __version__
from app.agent import credentials
from app.agent.server import AgentServer, needs_token
from app.core.errors import CorralError
from app.core.telemetry.local import LocalSampler
from app.core.telemetry.sources import DEFAULT_AGENT_PORT

log = logging.getLogger("corral.agent")

DESCRIPTION = f"""\
Corral's host agent: serves this machine's CPU, memory, GPU (NVIDIA, through NVML) and
model-server figures over HTTP, as JSON for Corral (GET /v1/telemetry) and in Prometheus
text format (GET /metrics), so that Prometheus and Grafana can scrape it too.

It listens on 127.0.0.1 by default. Only 127.0.0.1 and ::1 count as loopback: bound to
any other address (0.0.0.0, a LAN address, even 127.0.0.2) it requires a bearer token on
every request (401 without it). Without --token it makes one on first run, prints it, and
keeps it in {credentials.token_path()} (mode 0600) for the next runs.
On 127.0.0.1 or ::1 a token is required only when --token is given.
"""


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="corral-agent",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to listen on (default 127.0.0.1; any address but 127.0.0.1 and ::1 "
        "requires a token)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_AGENT_PORT,
        metavar="N",
        help=f"port to listen on (default {DEFAULT_AGENT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--token",
        metavar="T",
        help="bearer token clients must send (default: none on 127.0.0.1/::1; elsewhere the "
        "stored one, made and printed on first run)",
    )
    parser.add_argument(
        "--advertise",
        action="store_true",
        help="announce the agent on the local network as _corral._tcp (mDNS) with its port "
        "and host id",
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="seconds between samples"
    )
    parser.add_argument(
        "--window", type=float, default=900.0, metavar="S", help="seconds of history kept"
    )
    parser.add_argument("--no-gpu", action="store_true", help="do not read GPUs (NVML)")
    parser.add_argument("--version", action="version", version=f"corral-agent {__version__}")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be from 0 to 65535")
    if args.interval <= 0 or args.window <= 0:
        parser.error("--interval and --window must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the agent until SIGINT or SIGTERM; returns the exit status."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    host = args.host.strip("[]")
    token: str | None = args.token
    token_note = ""
    try:
        if token is None and needs_token(host):
            token, created = credentials.load_or_create_token()
            where = credentials.token_path()
            token_note = (
                f"token: {token}  (new; kept in {where})" if created else f"token: kept in {where}"
            )
        host_id = credentials.load_or_create_host_id()
        agent = AgentServer(
            host=host,
            port=args.port,
            token=token,
            host_id=host_id,
            sampler=LocalSampler(gpu=not args.no_gpu),
            interval_s=args.interval,
            window_s=args.window,
        ).start()
    except CorralError as exc:
        print(f"corral-agent: {exc.message}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    advertiser = None
    try:
        print(f"corral-agent {__version__} listening on {agent.url}", flush=True)
        print(f"host id: {host_id}", flush=True)
        if token_note:
            print(token_note, flush=True)
        if args.advertise:
            from app.agent.advertise import Advertiser

            advertiser = Advertiser(
                host,
                agent.port,
                host_id,
                hostname=agent.hostname,
                token_required=agent.token_required,
            )
            try:
                info = advertiser.start()
                print(f"announced as {info.name}", flush=True)
            except CorralError as exc:
                advertiser = None
                print(f"corral-agent: not announced: {exc.message}", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            pass
        log.info("stopping")
        return 0
    finally:
        if advertiser is not None:
            advertiser.close()
        agent.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
