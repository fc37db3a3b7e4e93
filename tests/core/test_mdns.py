"""mDNS discovery end to end, confined to a network namespace the test creates.

The namespace has nothing but its own loopback interface, so the multicast packets of the
announcer and of Corral's browser never leave it. Creating a namespace needs root (CI runs
the tests as root); elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import loopback_namespace

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace with nothing but loopback: mDNS packets stay inside it."""
    with loopback_namespace("corral-mdns") as name:
        yield name


@pytest.mark.timeout(90)
def test_an_announced_ollama_is_suggested_without_a_scan(netns: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "tests.support.mdns_netns"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=75,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{done.stderr}"
    report = json.loads(lines[-1])
    assert report["ok"], f"{report}\nstderr:\n{done.stderr}"
    assert done.returncode == 0

    fake_url = report["fake_url"]
    port = int(fake_url.rsplit(":", 1)[1])
    assert report["scans"] == 0
    assert report["suggestions"] == [
        {"url": fake_url, "name": f"Ollama on this computer (port {port})", "source": "mdns"}
    ]
    [host] = [f for f in report["found"] if f["kind"] is not None]
    assert host["name"] == "gpu-box._ollama._tcp.local."
    assert host["server"] == "gpu-box.local."
    assert host["kind"] == "ollama"
    assert host["models"] == ["netns-model:1b"]
    assert host["url"] == fake_url
    assert report["agents"] == [
        {
            "name": "gpu-box._corral._tcp.local.",
            "url": "http://127.0.0.1:9101",
            "properties": {"host_id": "gpu-box-1", "agent": "0.1"},
        }
    ]
    assert report["lost"] == ["gpu-box._ollama._tcp.local."]
