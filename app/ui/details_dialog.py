"""A read-only dialog with everything a host tells about one model."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.hosts.base import ModelDetail
from app.ui import formatting as fmt


class ModelDetailsDialog(QDialog):
    """Shows a :class:`ModelDetail`: summary, capabilities, parameters, template, license,
    model info and the Modelfile.

    Notes the host has about the model (no chat template of its own, say) stand above
    everything else, as sentences; without notes that line is hidden.

    Attributes:
        detail: the model detail shown.
        notes_label: the host's notes on the model ("detailsNotes"; hidden when none).
        capabilities_label, context_label: summary fields tests and users read.
        tabs: Parameters, Template, License, Model info, Modelfile.
    """

    def __init__(self, detail: ModelDetail, *, host_name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("modelDetailsDialog")
        self.setWindowTitle(f"{detail.name} on {host_name}")
        self.detail = detail

        def value(text: str, name: str) -> QLabel:
            label = QLabel(text or fmt.DASH, self)
            label.setObjectName(name)
            label.setWordWrap(True)
            return label

        self.notes_label = QLabel("\n".join(detail.notes), self)
        self.notes_label.setObjectName("detailsNotes")
        self.notes_label.setWordWrap(True)
        self.notes_label.setTextFormat(Qt.TextFormat.PlainText)
        self.notes_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notes_label.setFrameShape(QFrame.Shape.StyledPanel)
        self.notes_label.setMargin(6)
        self.notes_label.setVisible(bool(detail.notes))

        self.capabilities_label = value(", ".join(detail.capabilities), "detailsCapabilities")
        context = detail.context_length
        self.context_label = value(f"{context:,} tokens" if context else "", "detailsContext")
        form = QFormLayout()
        form.addRow("Name:", value(detail.name, "detailsName"))
        form.addRow("Family:", value(detail.family, "detailsFamily"))
        form.addRow("Parameters:", value(detail.parameter_size, "detailsParameterSize"))
        form.addRow("Quantization:", value(detail.quantization, "detailsQuantization"))
        form.addRow("Format:", value(detail.format, "detailsFormat"))
        form.addRow("Context length:", self.context_label)
        form.addRow("Capabilities:", self.capabilities_label)

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("detailsTabs")
        self.tabs.addTab(self._text(detail.parameters, "detailsParameters"), "Parameters")
        self.tabs.addTab(self._text(detail.template, "detailsTemplate"), "Template")
        self.tabs.addTab(self._text(detail.license, "detailsLicense"), "License")
        self.tabs.addTab(self._info_table(detail.model_info), "Model info")
        self.tabs.addTab(self._text(detail.modelfile, "detailsModelfile"), "Modelfile")

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.setObjectName("detailsButtons")
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.notes_label)
        layout.addLayout(form)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(buttons)
        self.resize(640, 520)

    def _text(self, text: str, name: str) -> QPlainTextEdit:
        edit = QPlainTextEdit(text or "(none)", self)
        edit.setObjectName(name)
        edit.setReadOnly(True)
        edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        return edit

    def _info_table(self, info: Any) -> QTableWidget:
        items = sorted(info.items())
        table = QTableWidget(len(items), 2, self)
        table.setObjectName("detailsModelInfo")
        table.setHorizontalHeaderLabels(["Key", "Value"])
        table.verticalHeader().hide()
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        for row, (key, val) in enumerate(items):
            shown = val if isinstance(val, str) else json.dumps(val, default=str)
            if len(shown) > 200:
                shown = shown[:200] + "…"
            table.setItem(row, 0, QTableWidgetItem(str(key)))
            table.setItem(row, 1, QTableWidgetItem(shown))
        return table
