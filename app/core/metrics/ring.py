"""A fixed-size ring buffer of timestamped samples with cheap summaries."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    count: int
    minimum: float
    maximum: float
    mean: float
    p50: float
    p95: float


class RingBuffer:
    """The last ``capacity`` samples ``(t, value)``; older ones fall off.

    ``t`` is whatever clock the caller uses (seconds); values are floats.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._items: deque[tuple[float, float]] = deque(maxlen=capacity)

    def append(self, t: float, value: float) -> None:
        self._items.append((t, value))

    def resize(self, capacity: int) -> None:
        """Change the capacity in place, keeping the newest samples."""
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._items = deque(self._items, maxlen=capacity)
        self.capacity = capacity

    def replace(self, points: list[tuple[float, float]]) -> None:
        """Replace every sample (the newest ``capacity`` of ``points`` are kept)."""
        self._items = deque(points, maxlen=self.capacity)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[float, float]]:
        return iter(self._items)

    def last(self) -> tuple[float, float] | None:
        return self._items[-1] if self._items else None

    def values(self, since: float | None = None) -> list[float]:
        return [v for t, v in self._items if since is None or t >= since]

    def summary(self, since: float | None = None) -> Summary | None:
        values = self.values(since)
        if not values:
            return None
        ordered = sorted(values)
        return Summary(
            count=len(values),
            minimum=ordered[0],
            maximum=ordered[-1],
            mean=math.fsum(values) / len(values),
            p50=_percentile(ordered, 0.50),
            p95=_percentile(ordered, 0.95),
        )


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]
