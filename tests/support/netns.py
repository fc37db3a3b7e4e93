"""A network namespace with nothing but loopback, for tests whose packets must stay inside
it (mDNS multicast). Creating one needs root and iproute2; CI has both."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15, check=False)


@contextmanager
def loopback_namespace(prefix: str) -> Iterator[str]:
    """Create ``<prefix>-<random>`` with lo up and multicast on; always delete it after.

    Skips the test, saying why, where namespaces cannot be made (no iproute2, not root).
    """
    if shutil.which("ip") is None:
        pytest.skip("the ip command (iproute2) is not installed; it creates the namespace")
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace (ip netns add) needs root; CI runs as root")
    name = f"{prefix}-{secrets.token_hex(4)}"
    added = ip("netns", "add", name)
    if added.returncode != 0:
        pytest.skip(f"ip netns add {name} failed: {added.stderr.strip() or added.returncode}")
    try:
        for args in (("link", "set", "lo", "up"), ("link", "set", "lo", "multicast", "on")):
            done = ip("netns", "exec", name, "ip", *args)
            assert done.returncode == 0, f"ip {' '.join(args)} in {name}: {done.stderr}"
        yield name
    finally:
        deleted = ip("netns", "delete", name)
        assert deleted.returncode == 0, f"ip netns delete {name}: {deleted.stderr}"
