"""Icons drawn at run time (no image files needed for the status dots and badges)."""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QApplication, QStyle

from app.resources import APP_ICON_SIZES, app_icon_name, resource_path

ONLINE_COLOR = QColor("#2e9d4f")
DEGRADED_COLOR = QColor("#e0a21b")
OFFLINE_COLOR = QColor("#d0393e")
UNKNOWN_COLOR = QColor("#9a9a9a")

#: Status dot colour per host state (HostState values).
STATE_COLORS = {
    "online": ONLINE_COLOR,
    "degraded": DEGRADED_COLOR,
    "offline": OFFLINE_COLOR,
    "unknown": UNKNOWN_COLOR,
}

#: Badge colours per host kind (HostKind values): background, text.
KIND_COLORS = {
    "ollama": (QColor("#e8eef7"), QColor("#1f3b63")),
    "llama.cpp": (QColor("#fbeadb"), QColor("#7a3b06")),
    "lmstudio": (QColor("#ece4fa"), QColor("#46237a")),
    "vllm": (QColor("#e2f4e8"), QColor("#1c5a31")),
    "openai": (QColor("#e3f2f3"), QColor("#15545a")),
}


def status_dot(color: QColor, size: int = 14) -> QIcon:
    """A filled circle with a darker rim, used for host status."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(color.darker(140), 1.0))
    painter.setBrush(color)
    painter.drawEllipse(QRectF(1.5, 1.5, size - 3.0, size - 3.0))
    painter.end()
    return QIcon(pixmap)


@lru_cache(maxsize=16)
def state_dot(state: str, size: int = 14) -> QIcon:
    """The status dot of a host state: green online, amber degraded, red offline, grey
    unknown. The same icon object is returned for the same state and size."""
    return status_dot(STATE_COLORS.get(state, UNKNOWN_COLOR), size)


@lru_cache(maxsize=1)
def machine_icon() -> QIcon:
    """The icon of a machine row in the fleet (the style's computer icon)."""
    style = QApplication.style()
    return style.standardIcon(QStyle.StandardPixmap.SP_ComputerIcon) if style else QIcon()


def app_icon() -> QIcon:
    """The application icon (resources/corral.svg, with its PNG sizes), or an empty icon
    when it is absent."""
    path = resource_path("corral.svg")
    if not path.is_file():
        return QIcon()
    icon = QIcon(str(path))
    for size in APP_ICON_SIZES:
        png = resource_path(app_icon_name(size))
        if png.is_file():
            icon.addFile(str(png), QSize(size, size))
    return icon
