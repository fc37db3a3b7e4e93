"""Small readers of the window's state, shared by the widget tests."""

from __future__ import annotations

from app.ui.item_models import StateRole
from app.ui.main_window import MainWindow


def host_id_for(window: MainWindow, url: str) -> str:
    for row in window.host_model.rows():
        if row.config.url == url:
            return row.config.id
    raise AssertionError(f"no host with address {url} in the list")


def host_state(window: MainWindow, host_id: str) -> str:
    row = window.host_model.row_of(host_id)
    assert row >= 0, f"host {host_id} is not in the list"
    return str(window.host_model.index(row, 0).data(StateRole))


def host_cell(window: MainWindow, host_id: str, column: int) -> str:
    row = window.host_model.row_of(host_id)
    assert row >= 0, f"host {host_id} is not in the list"
    return str(window.host_model.index(row, column).data())


def model_names(window: MainWindow) -> list[str]:
    return [row.name for row in window.model_model.rows()]


def model_cell(window: MainWindow, name: str, column: int) -> str | None:
    """The text of one cell of the models table, None when the model is not listed."""
    row = window.model_model.row_of(name)
    if row < 0:
        return None
    return str(window.model_model.index(row, column).data())
