"""The Qt binding installed keeps Python's reference counts (PySide6 6.12.0 does not).

PySide6 6.12.0 on Python 3.11 takes a reference from None / True / False on every call
that returns nothing and on every signal emit; a running window aborts the interpreter
within minutes ("Fatal Python error: none_dealloc"). pyproject.toml excludes it; this
test fails, with a clear message, should such a binding come back.
"""

from __future__ import annotations

import sys

import PySide6
from PySide6.QtCore import QObject, Signal


class _Probe(QObject):
    ping = Signal()


def test_calls_into_qt_do_not_lose_references_to_none_true_false() -> None:
    probe = _Probe()
    singletons = (None, True, False)
    before = [sys.getrefcount(o) for o in singletons]
    for _ in range(64):
        probe.setObjectName("probe")  # returns None
        probe.ping.emit()
    after = [sys.getrefcount(o) for o in singletons]
    lost = [b - a for b, a in zip(before, after, strict=True)]
    assert max(lost) < 64, (
        f"PySide6 {PySide6.__version__} on Python {sys.version.split()[0]} loses references "
        f"(None, True, False lost {lost}): a running Corral would abort. Install another version."
    )
