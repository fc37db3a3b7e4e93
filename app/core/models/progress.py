"""Pull progress accounting: per-layer bytes, overall fraction, speed and ETA."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from app.core.hosts.base import LayerProgress, PullProgress


class PullTracker:
    """Folds a host's raw progress lines into :class:`PullProgress` snapshots.

    Speed is measured over a sliding window of recent samples (default 5 s) so that it
    follows the real rate without jumping on every line. A resumed layer that starts
    with bytes already on disk does not count those bytes as speed.

    The host announces layers one after another, so the grand total grows during a pull;
    the overall fraction is kept from going backwards when a new layer appears, and it
    reaches 1.0 only when the host reports success.
    """

    def __init__(
        self, model: str, *, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.model = model
        self._window_s = window_s
        self._clock = clock
        self._layers: dict[str, LayerProgress] = {}
        self._samples: deque[tuple[float, int]] = deque()
        self._downloaded = 0  # bytes seen arriving during this pull (for speed)
        self._status = "starting"
        self._done = False
        self._fraction: float | None = None

    def update(
        self, status: str, digest: str | None, total: int | None, completed: int | None
    ) -> PullProgress:
        now = self._clock()
        self._status = status or self._status
        if digest and total:
            previous = self._layers.get(digest)
            done_bytes = max(0, min(completed or 0, total))
            if previous is not None:
                done_bytes = max(done_bytes, previous.completed)
                self._downloaded += done_bytes - previous.completed
            self._layers[digest] = LayerProgress(digest=digest, total=total, completed=done_bytes)
        if status == "success":
            self._done = True
            self._layers = {
                d: LayerProgress(d, layer.total, layer.total) for d, layer in self._layers.items()
            }
        self._samples.append((now, self._downloaded))
        while len(self._samples) > 2 and now - self._samples[0][0] > self._window_s:
            self._samples.popleft()
        total = sum(layer.total for layer in self._layers.values())
        if self._done:
            self._fraction = 1.0
        elif total > 0:
            completed = sum(layer.completed for layer in self._layers.values())
            current = min(completed / total, 0.999)
            self._fraction = max(current, self._fraction or 0.0)
        return self.snapshot()

    def snapshot(self) -> PullProgress:
        layers = tuple(self._layers.values())
        total = sum(layer.total for layer in layers)
        completed = sum(layer.completed for layer in layers)
        fraction = self._fraction
        rate: float | None = None
        if len(self._samples) >= 2:
            (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
            if t1 - t0 > 0.05:
                rate = max(0.0, (b1 - b0) / (t1 - t0))
        eta: float | None = None
        if self._done:
            eta = 0.0
        elif rate and total > 0:
            eta = (total - completed) / rate
        return PullProgress(
            model=self.model,
            status=self._status,
            layers=layers,
            completed=completed,
            total=total,
            fraction=fraction,
            bytes_per_s=rate,
            eta_s=eta,
            done=self._done,
        )
