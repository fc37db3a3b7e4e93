"""Light and dark themes: follow the system, or choose one.

"system" leaves the platform's own style and palette (and so follows the desktop's light
or dark setting as it changes); "light" and "dark" use Qt's Fusion style with a palette of
that kind on every platform. Widgets that draw their own colours (graphs, code blocks)
read the palette when it changes.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("system", "light", "dark")

_original: tuple[str, QPalette] | None = None


def _dark_palette() -> QPalette:
    palette = QPalette()
    role, group = QPalette.ColorRole, QPalette.ColorGroup
    window, base, text = QColor("#2b2d30"), QColor("#1e1f22"), QColor("#dfe1e5")
    palette.setColor(role.Window, window)
    palette.setColor(role.WindowText, text)
    palette.setColor(role.Base, base)
    palette.setColor(role.AlternateBase, QColor("#26282b"))
    palette.setColor(role.ToolTipBase, QColor("#3c3f41"))
    palette.setColor(role.ToolTipText, text)
    palette.setColor(role.PlaceholderText, QColor("#8c8f94"))
    palette.setColor(role.Text, text)
    palette.setColor(role.Button, QColor("#393b40"))
    palette.setColor(role.ButtonText, text)
    palette.setColor(role.BrightText, QColor("#ff6b6b"))
    palette.setColor(role.Highlight, QColor("#2f65ca"))
    palette.setColor(role.HighlightedText, QColor("#ffffff"))
    palette.setColor(role.Link, QColor("#6ea8fe"))
    palette.setColor(role.LinkVisited, QColor("#b39ddb"))
    palette.setColor(role.Light, QColor("#4a4d52"))
    palette.setColor(role.Midlight, QColor("#3c3f44"))
    palette.setColor(role.Mid, QColor("#303236"))
    palette.setColor(role.Dark, QColor("#1a1b1e"))
    palette.setColor(role.Shadow, QColor("#0d0e10"))
    for r in (role.WindowText, role.Text, role.ButtonText):
        palette.setColor(group.Disabled, r, QColor("#6f737a"))
    palette.setColor(group.Disabled, role.Highlight, QColor("#3a3d42"))
    return palette


def resolved(choice: str) -> str:
    """ "light" or "dark": what ``choice`` means on this desktop now."""
    if choice in ("light", "dark"):
        return choice
    hints = QGuiApplication.styleHints()
    if hints is not None and hints.colorScheme() == Qt.ColorScheme.Dark:
        return "dark"
    return "light"


def apply_theme(app: QApplication, choice: str) -> str:
    """Apply ``choice`` ("system", "light" or "dark"; anything else counts as "system")
    to the whole application; return "light" or "dark", what is shown now."""
    global _original
    style = app.style()
    if _original is None:
        _original = (style.name() if style is not None else "", app.palette())
    if choice == "dark":
        app.setStyle("Fusion")
        app.setPalette(_dark_palette())
    elif choice == "light":
        app.setStyle("Fusion")
        fusion = app.style()
        app.setPalette(fusion.standardPalette() if fusion is not None else QPalette())
    else:
        name, palette = _original
        if name and (style is None or style.name() != name):
            app.setStyle(name)
        app.setPalette(palette)
    return resolved(choice) if choice in THEMES else resolved("system")


def is_dark(palette: QPalette) -> bool:
    """Whether a palette is a dark one (its window colour is dark)."""
    return palette.color(QPalette.ColorRole.Window).lightness() < 128
