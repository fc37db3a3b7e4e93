"""The short texts the tables and dialogs show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.core.hosts.base import RunningModel
from app.ui import formatting as fmt


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1500, "1.5 KB"),
        (274_302_450, "274 MB"),
        (2_019_393_189, "2.0 GB"),
        (4_733_363_377, "4.7 GB"),
        (12_500_000_000_000, "12.5 TB"),
        (None, "—"),
    ],
)
def test_human_size(size: int | None, text: str) -> None:
    assert fmt.human_size(size) == text


def _running(size: int, vram: int) -> RunningModel:
    return RunningModel(name="m", size=size, size_vram=vram)


def test_vram_share() -> None:
    assert fmt.vram_share(None) == "—"
    assert fmt.vram_share(_running(100, 100)) == "100% GPU"
    assert fmt.vram_share(_running(100, 40)) == "40% GPU / 60% CPU"
    assert fmt.vram_share(_running(100, 0)) == "CPU"
    assert fmt.vram_share(_running(1000, 999)) == "99% GPU / 1% CPU"  # never "100% / 0%"
    assert fmt.vram_share(_running(1000, 1)) == "1% GPU / 99% CPU"
    assert fmt.vram_share(_running(0, 0)) == "—"  # the host does not say


def test_expires_text() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    soon = RunningModel("m", 1, 1, expires_at=now + timedelta(minutes=4, seconds=10))
    forever = RunningModel("m", 1, 1, expires_at=now + timedelta(days=100_000))
    assert fmt.expires_text(soon.expires_in(now), loaded=True) == "in 4 min"
    assert fmt.expires_text(forever.expires_in(now), loaded=True) == "never"
    assert fmt.expires_text(42, loaded=True) == "in 42 s"
    assert fmt.expires_text(-3, loaded=True) == "now"
    assert fmt.expires_text(None, loaded=True) == "—"
    assert fmt.expires_text(300, loaded=False) == "—"


def test_speed_eta_and_digest() -> None:
    assert fmt.human_speed(None) == "—"
    assert fmt.human_speed(12_500_000) == "12.5 MB/s"
    assert fmt.eta_text(None) == "—"
    assert fmt.eta_text(0) == "0 s left"
    assert fmt.eta_text(150) == "about 2 min left"
    assert fmt.eta_text(2 * 3600 + 5 * 60) == "about 2 h 5 min left"
    assert fmt.short_digest("sha256:4e7ab1c2d3e4f5a6b7c8") == "4e7ab1c2d3e4"
    assert fmt.rtt_text(3.25) == "3.2 ms"
    assert fmt.rtt_text(42.4) == "42 ms"
