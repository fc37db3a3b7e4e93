"""pyqtgraph, imported on first use and set up for Corral's panels.

pyqtgraph costs about half a second to import, so nothing imports it at module level: a
panel calls :func:`pyqtgraph` when it builds its plots (after the window is shown).
pyqtgraph picks its Qt binding from ``PYQTGRAPH_QT_LIB``, else from the bindings already
imported; Corral names PySide6 so that no other installed binding can be picked.

Helpers here turn :class:`RingBuffer` samples into numpy arrays for ``setData``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import numpy as np
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QWidget

_pg: ModuleType | None = None

#: Curve colours, one per GPU / host, readable on light and dark backgrounds.
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#8c564b", "#e377c2")
#: Marker line colours by marker kind.
MARKER_COLOURS = {"load": "#2e7d32", "unload": "#c62828", "pull": "#1565c0"}
MARKER_COLOUR = "#6d4c41"


def pyqtgraph() -> ModuleType:
    """The pyqtgraph module, imported and configured on the first call."""
    global _pg
    if _pg is None:
        os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
        import pyqtgraph as pg  # type: ignore[import-untyped]

        # Plain lines are cheapest to draw; numpy arrays are passed as they are.
        pg.setConfigOptions(antialias=False, useOpenGL=False, imageAxisOrder="row-major")
        _pg = pg
    return _pg


def colour(index: int) -> str:
    return COLOURS[index % len(COLOURS)]


def style_plot(widget: Any, palette_of: QWidget) -> None:
    """Give a PlotWidget the window's colours and the settings every panel plot shares:
    no mouse panning (the panels set the ranges), only visible points drawn, and
    down-sampling when there are more points than pixels."""
    pal = palette_of.palette()
    widget.setBackground(pal.color(QPalette.ColorRole.Base))
    fg = pal.color(QPalette.ColorRole.Text)
    item = widget.getPlotItem()
    for name in ("left", "bottom"):
        axis = item.getAxis(name)
        axis.setPen(fg)
        axis.setTextPen(fg)
    # no grid: pyqtgraph draws it with the axes, blended, and it cost 3 times the rest
    item.setMenuEnabled(False)
    item.hideButtons()
    item.setMouseEnabled(x=False, y=False)
    item.setClipToView(True)
    item.setDownsampling(auto=True, mode="peak")
    item.getViewBox().setDefaultPadding(0.02)


def pen(colour_: str, width: float = 1.5, dashed: bool = False) -> Any:
    pg = pyqtgraph()
    from PySide6.QtCore import Qt

    style = Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine
    return pg.mkPen(QColor(colour_), width=width, style=style)


def arrays(
    samples: Iterable[tuple[float, float]], count: int, *, since: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(t, value)`` samples as two float arrays, those from ``since`` on."""
    if count <= 0:
        empty = np.empty(0, dtype=np.float64)
        return empty, empty
    flat = np.fromiter(itertools.chain.from_iterable(samples), dtype=np.float64, count=2 * count)
    xy = flat.reshape(count, 2)
    start = int(np.searchsorted(xy[:, 0], since)) if since is not None else 0
    return xy[start:, 0], xy[start:, 1]
