"""Pull progress: per-layer bytes, overall fraction, speed and ETA."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.core.models.progress import PullTracker


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_layers_speed_and_eta() -> None:
    clock = Clock()
    tracker = PullTracker("m", clock=clock)
    p = tracker.update("pulling manifest", None, None, None)
    assert p.fraction is None and p.bytes_per_s is None and p.eta_s is None
    tracker.update("pulling aaa", "sha256:aaa", 1000, None)
    tracker.update("pulling bbb", "sha256:bbb", 3000, None)
    clock.t += 1.0
    p = tracker.update("pulling aaa", "sha256:aaa", 1000, 1000)
    assert [layer.digest for layer in p.layers] == ["sha256:aaa", "sha256:bbb"]
    assert p.completed == 1000 and p.total == 4000
    assert p.fraction == 0.25
    assert p.bytes_per_s == 1000.0
    assert p.eta_s == 3.0
    p = tracker.update("success", None, None, None)
    assert p.done and p.fraction == 1.0 and p.eta_s == 0.0
    assert all(layer.completed == layer.total for layer in p.layers)


def test_fraction_does_not_go_back_when_a_layer_appears_and_is_1_only_at_success() -> None:
    tracker = PullTracker("m", clock=Clock())
    p = tracker.update("pulling big", "big", 1000, 1000)
    assert p.fraction == 0.999  # finished the first layer, but the pull is not done
    p = tracker.update("pulling small", "small", 10, None)  # total grows to 1010
    assert p.fraction == 0.999
    p = tracker.update("pulling small", "small", 10, 10)
    assert p.fraction == 0.999 and not p.done
    p = tracker.update("success", None, None, None)
    assert p.fraction == 1.0 and p.done


def test_resumed_bytes_do_not_count_as_speed() -> None:
    clock = Clock()
    tracker = PullTracker("m", clock=clock)
    tracker.update("pulling aaa", "sha256:aaa", 10_000, 9_000)  # 9000 already on disk
    clock.t += 1.0
    p = tracker.update("pulling aaa", "sha256:aaa", 10_000, 9_500)
    assert p.bytes_per_s == 500.0


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 10**9), st.floats(0, 5)),
        max_size=60,
    )
)
def test_fraction_stays_in_range_and_never_goes_back(
    steps: list[tuple[str, int, float]],
) -> None:
    clock = Clock()
    tracker = PullTracker("m", clock=clock)
    sizes = {"a": 10**9, "b": 5 * 10**8, "c": 1}
    last = 0.0
    for digest, completed, dt in steps:
        clock.t += dt
        p = tracker.update(f"pulling {digest}", digest, sizes[digest], completed)
        # layers appear one by one (the total grows), yet the bar never moves back
        assert p.fraction is not None and 0.0 <= p.fraction < 1.0
        assert p.fraction >= last
        last = p.fraction
        assert p.bytes_per_s is None or p.bytes_per_s >= 0
        assert p.eta_s is None or p.eta_s >= 0
