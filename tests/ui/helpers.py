"""Small readers of the window's state, shared by the widget tests."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.ui.item_models import StateRole
from app.ui.main_window import MainWindow


def host_id_for(window: MainWindow, url: str) -> str:
    for row in window.fleet_model.rows():
        if row.config.url == url:
            return row.config.id
    raise AssertionError(f"no host with address {url} in the fleet")


def host_state(window: MainWindow, host_id: str) -> str:
    index = window.fleet_model.index_of(host_id)
    assert index.isValid(), f"host {host_id} is not in the fleet"
    return str(index.data(StateRole))


def host_cell(window: MainWindow, host_id: str, column: int) -> str:
    index = window.fleet_model.index_of(host_id, column)
    assert index.isValid(), f"host {host_id} is not in the fleet"
    return str(index.data())


def host_tooltip(window: MainWindow, host_id: str) -> str:
    index = window.fleet_model.index_of(host_id)
    assert index.isValid(), f"host {host_id} is not in the fleet"
    return str(index.data(Qt.ItemDataRole.ToolTipRole))


def model_names(window: MainWindow) -> list[str]:
    return [row.name for row in window.model_model.rows()]


def model_cell(window: MainWindow, name: str, column: int) -> str | None:
    """The text of one cell of the models table, None when the model is not listed."""
    row = window.model_model.row_of(name)
    if row < 0:
        return None
    return str(window.model_model.index(row, column).data())


def all_models_cell(window: MainWindow, name: str, host_id: str | None, column: int) -> str | None:
    """A cell of the all-models view: the model's row (``host_id`` None) or its row for
    one host; None when not listed."""
    index = window.all_models.model.index_of(name, host_id, column)
    return str(index.data()) if index.isValid() else None
