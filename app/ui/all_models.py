"""The "All models" tab: every model of every reachable host, merged by name."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.ui.item_models import AllModelsModel, ModelCopy


class AllModelsPanel(QWidget):
    """A tree of models (top rows) and the hosts that have them (child rows), with
    Load, Unload, Pull to… and Delete… for the selected model-on-a-host.

    The panel only shows; the main window runs the actions and wires the buttons.

    Attributes:
        model: the :class:`AllModelsModel`.
        view: the tree view (objectName allModelsView).
        status: a line above the tree (counts, hosts that did not answer).
        load_button, unload_button, pull_button, delete_button: the actions (objectNames
            allLoadButton, allUnloadButton, allPullButton, allDeleteButton).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("allModelsTab")
        self.status = QLabel("Models of the reachable hosts appear here.", self)
        self.status.setObjectName("allModelsStatus")
        self.status.setWordWrap(True)
        self.model = AllModelsModel(self)
        self.view = QTreeView(self)
        self.view.setObjectName("allModelsView")
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setAlternatingRowColors(True)
        self.view.setUniformRowHeights(True)
        self.view.setAllColumnsShowFocus(True)
        header = self.view.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(AllModelsModel.NAME, QHeaderView.ResizeMode.Stretch)
        self.view.model().modelReset.connect(self.view.expandAll)

        def button(text: str, name: str, tip: str) -> QPushButton:
            b = QPushButton(text, self)
            b.setObjectName(name)
            b.setToolTip(tip)
            return b

        self.load_button = button("Load", "allLoadButton", "Load the model on this host now")
        self.unload_button = button(
            "Unload", "allUnloadButton", "Free the memory the model uses on this host"
        )
        self.pull_button = button(
            "Pull to…", "allPullButton", "Download the model onto another host"
        )
        self.delete_button = button(
            "Delete…", "allDeleteButton", "Remove the model's files from this host"
        )
        buttons = QHBoxLayout()
        for b in (self.load_button, self.unload_button, self.pull_button, self.delete_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.status)
        layout.addWidget(self.view, 1)
        layout.addLayout(buttons)

    def selected_copy(self) -> ModelCopy | None:
        """The model-on-a-host of the current child row, or None."""
        return self.model.copy_at(self.view.currentIndex())

    def selected_name(self) -> str | None:
        """The model name of the current row (a model row or one of its hosts)."""
        merged = self.model.merged_at(self.view.currentIndex())
        return merged.name if merged is not None else None

    def select(self, name: str, host_id: str | None = None) -> bool:
        """Make a model (``host_id`` None) or a model on a host the current row."""
        index = self.model.index_of(name, host_id)
        if not index.isValid():
            return False
        self.view.setCurrentIndex(index)
        return True
