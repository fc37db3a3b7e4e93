"""Icons drawn at run time (no image files needed for the status dots)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap

ONLINE_COLOR = QColor("#2e9d4f")
OFFLINE_COLOR = QColor("#d0393e")
UNKNOWN_COLOR = QColor("#9a9a9a")

ICON_FILE = Path(__file__).resolve().parents[2] / "resources" / "corral.svg"


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


def app_icon() -> QIcon:
    """The application icon (resources/corral.svg), or an empty icon when it is absent."""
    if ICON_FILE.is_file():
        return QIcon(str(ICON_FILE))
    return QIcon()
