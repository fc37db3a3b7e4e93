"""Latency figures per host and per host x model, with rolling percentiles.

Two kinds of figures are kept:

- per host, the round-trip time of health probes (fed by :meth:`LatencyBook.attach`
  from :attr:`HealthMonitor.probed`, or by :meth:`LatencyBook.record_rtt`);
- per reply (:meth:`LatencyBook.record_reply` with a reply's :class:`ChatStats`): time to
  first token, decode speed, prompt speed and load time; and per explicit model load
  (:meth:`LatencyBook.record_load`) its wall-clock duration.

Decode speed is taken from the host's own figures where it gives them (Ollama's
``eval_count / eval_duration``), else from the wall clock: the tokens after the first one
over the time from the first token to the end of the reply. The wall-clock figure is
also kept on its own (``wall_tokens_per_s``), so that the two can be compared.

Every figure lives in a :class:`RingBuffer` of the last ``window`` samples; summaries
(count, min, max, mean, p50, p95) are computed on demand. Times ``t`` are seconds since
the epoch. Nothing here does I/O; every method is cheap and synchronous.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.core.events import Event
from app.core.metrics.ring import RingBuffer, Summary

if TYPE_CHECKING:
    from app.core.hosts.base import ChatStats
    from app.core.hosts.health import HealthMonitor, HostStatus

#: The per-reply figures, as named in :class:`ModelLatency` and :class:`HostLatency`.
REPLY_FIGURES = ("ttft_ms", "tokens_per_s", "wall_tokens_per_s", "prompt_tokens_per_s", "load_ms")


@dataclass(frozen=True)
class ModelLatency:
    """Rolling figures of one model on one host.

    Attributes:
        host_id, model: which model on which host.
        replies: replies recorded since the start (the summaries cover the last ``window``).
        ttft_ms: time to first token (wall clock), milliseconds.
        tokens_per_s: decode speed, host-reported where given, else from the wall clock.
        wall_tokens_per_s: decode speed from the wall clock only.
        prompt_tokens_per_s: prompt processing speed (host-reported).
        load_ms: time the host spent loading the model for a reply, and explicit loads.
        last_t: when the last figure was recorded (epoch seconds), None if never.
    """

    host_id: str
    model: str
    replies: int = 0
    ttft_ms: Summary | None = None
    tokens_per_s: Summary | None = None
    wall_tokens_per_s: Summary | None = None
    prompt_tokens_per_s: Summary | None = None
    load_ms: Summary | None = None
    last_t: float | None = None


@dataclass(frozen=True)
class HostLatency:
    """Rolling figures of one host: probe round trips, and every reply over all models.

    Attributes:
        host_id: the registry id.
        rtt_ms: round-trip time of health probes, milliseconds.
        replies: replies recorded since the start, all models.
        ttft_ms, tokens_per_s, wall_tokens_per_s, prompt_tokens_per_s, load_ms: as in
            :class:`ModelLatency`, over every model of the host.
        models: the models with figures, sorted by name.
    """

    host_id: str
    rtt_ms: Summary | None = None
    replies: int = 0
    ttft_ms: Summary | None = None
    tokens_per_s: Summary | None = None
    wall_tokens_per_s: Summary | None = None
    prompt_tokens_per_s: Summary | None = None
    load_ms: Summary | None = None
    models: tuple[str, ...] = ()


def wall_tokens_per_s(stats: ChatStats) -> float | None:
    """Decode speed from the wall clock: tokens after the first over the time from the
    first token to the end; None when the reply does not say enough (fewer than two
    tokens, no time to first token, no time in between)."""
    n, total, first = stats.output_tokens, stats.total_ms, stats.time_to_first_token_ms
    if n is None or n < 2 or total is None or first is None:
        return None
    decode_ms = total - first
    if decode_ms <= 0:
        return None
    return (n - 1) / (decode_ms / 1000.0)


class _Figures:
    """The ring buffers of one host or one host x model."""

    def __init__(self, capacity: int) -> None:
        self.rings = {name: RingBuffer(capacity) for name in REPLY_FIGURES}
        self.replies = 0
        self.last_t: float | None = None

    def add(self, name: str, t: float, value: float | None) -> None:
        if value is not None:
            self.rings[name].append(t, float(value))
        self.touch(t)

    def touch(self, t: float) -> None:
        self.last_t = t if self.last_t is None else max(self.last_t, t)

    def summary(self, name: str) -> Summary | None:
        return self.rings[name].summary()


class LatencyBook:
    """Latency figures of every host and model, with rolling percentiles.

    Attributes:
        window: samples kept per figure (per host, and per host x model).
        changed: emitted with a host id after a figure of that host was recorded or the
            host was forgotten.
    """

    def __init__(self, window: int = 500, *, clock: Callable[[], float] = time.time) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.window = window
        self.changed: Event[str] = Event("latency.changed")
        self._clock = clock
        self._rtt: dict[str, RingBuffer] = {}
        self._hosts: dict[str, _Figures] = {}
        self._models: dict[str, dict[str, _Figures]] = {}
        self._attached: list[HealthMonitor] = []

    # -- feeding ----------------------------------------------------------------------
    def attach(self, health: HealthMonitor) -> None:
        """Record the round-trip time of every good probe of ``health``."""
        if health not in self._attached:
            self._attached.append(health)
            health.probed.connect(self._on_probed)

    def detach(self, health: HealthMonitor) -> None:
        if health in self._attached:
            self._attached.remove(health)
            health.probed.disconnect(self._on_probed)

    def _on_probed(self, status: HostStatus) -> None:
        # an offline status keeps the last good round trip: only answers count
        if status.reachable and status.rtt_ms is not None:
            self.record_rtt(status.host_id, self._clock(), status.rtt_ms)

    def record_rtt(self, host_id: str, t: float, ms: float) -> None:
        ring = self._rtt.get(host_id)
        if ring is None:
            ring = self._rtt[host_id] = RingBuffer(self.window)
        ring.append(t, float(ms))
        self.changed.emit(host_id)

    def record_reply(
        self, host_id: str, model: str, stats: ChatStats, t: float | None = None
    ) -> None:
        """Record the figures of one finished reply of ``model`` on ``host_id``."""
        when = self._clock() if t is None else t
        wall = wall_tokens_per_s(stats)
        values = {
            "ttft_ms": stats.time_to_first_token_ms,
            "tokens_per_s": stats.tokens_per_s if stats.tokens_per_s is not None else wall,
            "wall_tokens_per_s": wall,
            "prompt_tokens_per_s": stats.prompt_tokens_per_s,
            "load_ms": stats.load_ms,
        }
        for figures in (self._host(host_id), self._model(host_id, model)):
            figures.replies += 1
            for name, value in values.items():
                figures.add(name, when, value)
        self.changed.emit(host_id)

    def record_load(self, host_id: str, model: str, ms: float, t: float | None = None) -> None:
        """Record how long an explicit load of ``model`` took (wall clock)."""
        when = self._clock() if t is None else t
        for figures in (self._host(host_id), self._model(host_id, model)):
            figures.add("load_ms", when, float(ms))
        self.changed.emit(host_id)

    def forget(self, host_id: str) -> None:
        """Drop every figure of a host (e.g. once it is removed from the fleet)."""
        known = host_id in self._rtt or host_id in self._hosts
        self._rtt.pop(host_id, None)
        self._hosts.pop(host_id, None)
        self._models.pop(host_id, None)
        if known:
            self.changed.emit(host_id)

    def _host(self, host_id: str) -> _Figures:
        figures = self._hosts.get(host_id)
        if figures is None:
            figures = self._hosts[host_id] = _Figures(self.window)
        return figures

    def _model(self, host_id: str, model: str) -> _Figures:
        per_host = self._models.setdefault(host_id, {})
        figures = per_host.get(model)
        if figures is None:
            figures = per_host[model] = _Figures(self.window)
        return figures

    # -- reading ----------------------------------------------------------------------
    def hosts(self) -> list[str]:
        """Hosts with any figure, in the order they were first seen."""
        return list(dict.fromkeys([*self._rtt, *self._hosts]))

    def models(self, host_id: str) -> list[str]:
        """Models of a host with any figure, sorted by name."""
        return sorted(self._models.get(host_id, {}), key=str.lower)

    def rtt(self, host_id: str) -> RingBuffer:
        """Round trips of a host: ``(epoch seconds, milliseconds)`` (empty if none)."""
        return self._rtt.get(host_id) or RingBuffer(self.window)

    def series(self, host_id: str, figure: str, model: str | None = None) -> RingBuffer:
        """The samples of one reply figure (one of :data:`REPLY_FIGURES`) of a host, or of
        one of its models; empty if none."""
        if figure not in REPLY_FIGURES:
            raise ValueError(f"unknown figure {figure!r}; one of {', '.join(REPLY_FIGURES)}")
        figures = (
            self._hosts.get(host_id) if model is None else self._models.get(host_id, {}).get(model)
        )
        return figures.rings[figure] if figures is not None else RingBuffer(self.window)

    def host_summary(self, host_id: str) -> HostLatency:
        figures = self._hosts.get(host_id)
        rtt = self._rtt.get(host_id)
        rtt_summary = rtt.summary() if rtt is not None else None
        if figures is None:
            return HostLatency(host_id, rtt_ms=rtt_summary)
        return HostLatency(
            host_id,
            rtt_ms=rtt_summary,
            replies=figures.replies,
            ttft_ms=figures.summary("ttft_ms"),
            tokens_per_s=figures.summary("tokens_per_s"),
            wall_tokens_per_s=figures.summary("wall_tokens_per_s"),
            prompt_tokens_per_s=figures.summary("prompt_tokens_per_s"),
            load_ms=figures.summary("load_ms"),
            models=tuple(self.models(host_id)),
        )

    def model_summary(self, host_id: str, model: str) -> ModelLatency:
        figures = self._models.get(host_id, {}).get(model)
        if figures is None:
            return ModelLatency(host_id, model)
        return ModelLatency(
            host_id,
            model,
            replies=figures.replies,
            ttft_ms=figures.summary("ttft_ms"),
            tokens_per_s=figures.summary("tokens_per_s"),
            wall_tokens_per_s=figures.summary("wall_tokens_per_s"),
            prompt_tokens_per_s=figures.summary("prompt_tokens_per_s"),
            load_ms=figures.summary("load_ms"),
            last_t=figures.last_t,
        )
