"""Pure functions that turn core values into the short texts the tables and dialogs show."""

from __future__ import annotations

import math

from app.core.hosts.base import RunningModel

DASH = "—"
_NEVER_AFTER_S = 365 * 24 * 3600.0  # Ollama reports keep_alive=-1 as a date centuries away


def human_size(n: int | float | None) -> str:
    """Bytes in decimal units, as Ollama itself prints them: ``4.7 GB``, ``274 MB``."""
    if n is None or n < 0:
        return DASH
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def human_speed(bytes_per_s: float | None) -> str:
    """Download speed in MB/s (``12.5 MB/s``); a dash before it can be measured."""
    if bytes_per_s is None:
        return DASH
    return f"{bytes_per_s / 1e6:.1f} MB/s"


def human_duration(seconds: float | None) -> str:
    """A short duration: ``42 s``, ``4 min``, ``2 h 5 min``."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return DASH
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def eta_text(seconds: float | None) -> str:
    """Time left of a pull: ``about 4 min left``."""
    if seconds is None:
        return DASH
    if seconds <= 0:
        return "0 s left"
    return f"about {human_duration(seconds)} left"


def vram_share(running: RunningModel | None) -> str:
    """Where a loaded model sits: ``100% GPU``, ``40% GPU / 60% CPU`` or ``CPU``; a dash
    when not loaded, or when the host does not tell (OpenAI-compatible servers)."""
    if running is None or (running.size <= 0 and running.size_vram <= 0):
        return DASH
    if running.size_vram <= 0:
        return "CPU"
    if running.size_vram >= running.size:
        return "100% GPU"
    gpu = min(99, max(1, round(running.vram_fraction * 100)))
    return f"{gpu}% GPU / {100 - gpu}% CPU"


def expires_text(seconds: float | None, *, loaded: bool) -> str:
    """When the host unloads a model: ``in 4 min``, ``never``, or a dash."""
    if not loaded or seconds is None:
        return DASH
    if seconds >= _NEVER_AFTER_S:
        return "never"
    if seconds <= 0:
        return "now"
    return f"in {human_duration(seconds)}"


def rtt_text(rtt_ms: float | None) -> str:
    if rtt_ms is None:
        return DASH
    return f"{rtt_ms:.0f} ms" if rtt_ms >= 10 else f"{rtt_ms:.1f} ms"


def short_digest(digest: str) -> str:
    """``sha256:4e7ab1c2…`` -> ``4e7ab1c2d3e4`` (12 hex digits, as Ollama shows them)."""
    return digest.split(":", 1)[-1][:12]


def ms_text(ms: float | None) -> str:
    """A duration in milliseconds, to a sensible precision: ``4.2 ms``, ``180 ms``, ``2.4 s``."""
    if ms is None or math.isnan(ms):
        return DASH
    if ms >= 10_000:
        return f"{ms / 1000:.0f} s"
    if ms >= 1000:
        return f"{ms / 1000:.1f} s"
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def rate_text(per_s: float | None) -> str:
    """A rate in tokens per second: ``52.3``, ``310``."""
    if per_s is None or math.isnan(per_s):
        return DASH
    return f"{per_s:.0f}" if per_s >= 100 else f"{per_s:.1f}"
