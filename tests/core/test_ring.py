"""Ring buffers keep the newest samples and summarise them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.metrics.ring import RingBuffer


def test_oldest_fall_off_and_summary() -> None:
    ring = RingBuffer(3)
    for t, v in enumerate([5.0, 1.0, 2.0, 9.0]):
        ring.append(float(t), v)
    assert ring.values() == [1.0, 2.0, 9.0]
    s = ring.summary()
    assert s is not None and (s.count, s.minimum, s.maximum, s.p50, s.p95) == (
        3,
        1.0,
        9.0,
        2.0,
        9.0,
    )
    assert ring.summary(since=3.0) is not None and ring.values(since=3.0) == [9.0]
    assert RingBuffer(2).summary() is None


def test_resize_and_replace_keep_the_newest_in_place() -> None:
    ring = RingBuffer(4)
    for t in range(4):
        ring.append(float(t), float(t))
    ring.resize(2)
    assert ring.values() == [2.0, 3.0] and ring.capacity == 2
    ring.replace([(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)])
    assert ring.values() == [1.0, 2.0]
    with pytest.raises(ValueError):
        ring.resize(0)


@given(st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=200), st.integers(1, 50))
def test_summary_is_consistent(values: list[float], capacity: int) -> None:
    ring = RingBuffer(capacity)
    for i, v in enumerate(values):
        ring.append(float(i), v)
    kept = values[-capacity:]
    s = ring.summary()
    assert s is not None and s.count == len(kept)
    assert s.minimum == min(kept) and s.maximum == max(kept)
    assert s.minimum <= s.p50 <= s.p95 <= s.maximum
