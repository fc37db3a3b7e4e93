"""Item delegates: the host-type badge of the fleet view."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRectF, QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app.ui.icons import KIND_COLORS
from app.ui.item_models import KindRole


class BadgeDelegate(QStyledItemDelegate):
    """Draws a cell's text as a rounded badge coloured by the row's host kind
    (:data:`KindRole`); cells without a kind are drawn as usual."""

    PAD_X, PAD_Y = 7, 3

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        kind = index.data(KindRole)
        text = index.data(Qt.ItemDataRole.DisplayRole)
        if kind is None or not text:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        widget: Any = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        background, foreground = KIND_COLORS.get(str(kind), KIND_COLORS["openai"])
        metrics = opt.fontMetrics
        rect = opt.rect
        width = min(rect.width() - 4, metrics.horizontalAdvance(str(text)) + 2 * self.PAD_X)
        height = min(rect.height() - 2, metrics.height() + 2 * self.PAD_Y - 2)
        badge = QRectF(
            rect.left() + 4, rect.top() + (rect.height() - height) / 2, max(0, width), height
        )
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(foreground.lighter(170))
        painter.setBrush(background)
        painter.drawRoundedRect(badge, height / 2, height / 2)
        painter.setPen(foreground)  # the badge keeps its colours on a selected row
        elided = metrics.elidedText(str(text), Qt.TextElideMode.ElideRight, int(width) - 8)
        painter.drawText(badge, int(Qt.AlignmentFlag.AlignCenter), elided)
        painter.restore()

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        hint = super().sizeHint(option, index)
        if index.data(KindRole) is not None:
            hint.setWidth(hint.width() + 2 * self.PAD_X + 4)
            hint.setHeight(max(hint.height(), option.fontMetrics.height() + 2 * self.PAD_Y + 2))
        return hint
