"""A small dialog that picks one host out of a list (the target of a pull, for one)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.hosts.base import HostConfig
from app.ui.item_models import machine_of


class HostChooserDialog(QDialog):
    """Choose a host: one line per host ("Basement rig — Ollama on 192.168.1.30").

    Open it with ``open()``; the choice arrives through :attr:`hostChosen`.

    Attributes:
        hosts: the hosts offered, in order.
        host_list: the list widget (item data: the host id).
        ok_button: confirms the choice (enabled once a host is picked).

    Signals:
        hostChosen(str): the id of the chosen host (after OK or a double click).
    """

    hostChosen = Signal(str)

    def __init__(
        self,
        hosts: list[HostConfig],
        *,
        title: str,
        text: str,
        ok_text: str = "OK",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("hostChooser")
        self.setWindowTitle(title)
        self.hosts = list(hosts)
        label = QLabel(text, self)
        label.setWordWrap(True)
        self.host_list = QListWidget(self)
        self.host_list.setObjectName("hostChooserList")
        for config in self.hosts:
            where = machine_of(config.url)
            item = QListWidgetItem(f"{config.name}  —  {config.kind.label} on {where}")
            item.setData(Qt.ItemDataRole.UserRole, config.id)
            item.setToolTip(config.url)
            self.host_list.addItem(item)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setObjectName("hostChooserOk")
        self.ok_button.setText(ok_text)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setObjectName(
            "hostChooserCancel"
        )
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(self.host_list, 1)
        layout.addWidget(self.buttons)
        self.resize(420, 280)
        self._wire()
        if self.hosts:
            self.host_list.setCurrentRow(0)
        self._update()

    def _wire(self) -> None:
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.host_list.currentRowChanged.connect(self._update)
        self.host_list.itemDoubleClicked.connect(lambda _item: self.accept())

    def _update(self, *_: object) -> None:
        self.ok_button.setEnabled(self.host_list.currentItem() is not None)

    def chosen(self) -> str | None:
        item = self.host_list.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def choose(self, host_id: str) -> bool:
        """Make ``host_id`` the current choice (False when it is not offered)."""
        for row in range(self.host_list.count()):
            if self.host_list.item(row).data(Qt.ItemDataRole.UserRole) == host_id:
                self.host_list.setCurrentRow(row)
                return True
        return False

    def accept(self) -> None:
        host_id = self.chosen()
        if host_id is None:
            return
        super().accept()
        self.hostChosen.emit(host_id)
