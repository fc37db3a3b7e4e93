"""Table models for the host list and the model list of the selected host."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from app.core.hosts.base import HostConfig, HostHealth, ModelInfo, RunningModel
from app.ui import formatting as fmt
from app.ui.icons import OFFLINE_COLOR, ONLINE_COLOR, UNKNOWN_COLOR, status_dot

AnyIndex = QModelIndex | QPersistentModelIndex

#: Item data role with a row's machine-readable state ("online" / "offline" / "unknown"
#: for hosts, the model name for models).
StateRole = Qt.ItemDataRole.UserRole + 1

ONLINE, OFFLINE, UNKNOWN = "online", "offline", "unknown"


@dataclass(frozen=True)
class HostRow:
    """One line of the host list: how to reach the host and its last probe."""

    config: HostConfig
    health: HostHealth | None = None

    @property
    def state(self) -> str:
        if self.health is None:
            return UNKNOWN
        return ONLINE if self.health.online else OFFLINE


class _RowsTableModel(QAbstractTableModel):
    """A flat table of rows with fixed columns and optional header tooltips."""

    COLUMNS: tuple[str, ...] = ()
    HEADER_TIPS: dict[int, str] = {}  # noqa: RUF012 (read-only per subclass)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.HEADER_TIPS.get(section)
        return None


class HostTableModel(_RowsTableModel):
    """The configured hosts with their status dot, address, version and round-trip time.

    Rows follow the registry's order. Health results are kept across host-list changes
    for hosts whose address and headers did not change.
    """

    COLUMNS = ("", "Name", "Address", "Version", "RTT")
    STATUS, NAME, URL, VERSION, RTT = range(5)
    HEADER_TIPS = {RTT: "Round-trip time of the last health probe"}  # noqa: RUF012

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[HostRow] = []
        self._dots = {
            ONLINE: status_dot(ONLINE_COLOR),
            OFFLINE: status_dot(OFFLINE_COLOR),
            UNKNOWN: status_dot(UNKNOWN_COLOR),
        }

    # -- reading ----------------------------------------------------------------------

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        col = index.column()
        health = row.health
        if role == StateRole:
            return row.state
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row)
        if col == self.STATUS:
            if role == Qt.ItemDataRole.DecorationRole:
                return self._dots[row.state]
            if role == Qt.ItemDataRole.AccessibleTextRole:
                return row.state
            return None
        if role != Qt.ItemDataRole.DisplayRole:
            if role == Qt.ItemDataRole.TextAlignmentRole and col == self.RTT:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return None
        if col == self.NAME:
            return row.config.name
        if col == self.URL:
            return row.config.url
        if col == self.VERSION:
            return health.version if health and health.online and health.version else fmt.DASH
        if col == self.RTT:
            return fmt.rtt_text(health.rtt_ms) if health and health.online else fmt.DASH
        return None

    @staticmethod
    def _tooltip(row: HostRow) -> str:
        if row.health is None:
            return f"{row.config.name}: not checked yet"
        if row.health.online:
            return f"{row.config.name}: online (Ollama {row.health.version})"
        return f"{row.config.name}: offline. {row.health.error or ''}".strip()

    def rows(self) -> list[HostRow]:
        return list(self._rows)

    def row_of(self, host_id: str) -> int:
        for i, row in enumerate(self._rows):
            if row.config.id == host_id:
                return i
        return -1

    def host_at(self, row: int) -> HostRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def get(self, host_id: str) -> HostRow | None:
        i = self.row_of(host_id)
        return self._rows[i] if i >= 0 else None

    def all_probed(self) -> bool:
        return all(row.health is not None for row in self._rows)

    def any_online(self) -> bool:
        return any(row.state == ONLINE for row in self._rows)

    # -- changing ---------------------------------------------------------------------
    def set_hosts(self, configs: list[HostConfig]) -> None:
        """Replace the host list, keeping health of hosts whose address is unchanged."""
        old = {row.config.id: row for row in self._rows}
        rows = []
        for config in configs:
            prev = old.get(config.id)
            same = prev is not None and (prev.config.url, prev.config.headers) == (
                config.url,
                config.headers,
            )
            rows.append(HostRow(config, prev.health if same and prev else None))
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def set_health(self, host_id: str, health: HostHealth) -> None:
        i = self.row_of(host_id)
        if i < 0:
            return
        self._rows[i] = replace(self._rows[i], health=health)
        self.dataChanged.emit(self.index(i, 0), self.index(i, len(self.COLUMNS) - 1))


@dataclass(frozen=True)
class ModelRow:
    """One installed model and, when it is loaded, its running state."""

    info: ModelInfo
    running: RunningModel | None = None
    expires_in_s: float | None = None

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def loaded(self) -> bool:
        return self.running is not None


class ModelTableModel(_RowsTableModel):
    """The models installed on one host, with their load state."""

    COLUMNS = ("Name", "Size", "Parameters", "Quantization", "Loaded", "VRAM share", "Expires")
    NAME, SIZE, PARAMS, QUANT, LOADED, MEMORY, EXPIRES = range(7)
    HEADER_TIPS = {MEMORY: "Share of the loaded model in GPU memory and in system memory"}  # noqa: RUF012
    _RIGHT = (SIZE, PARAMS)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[ModelRow] = []

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        col = index.column()
        if role == StateRole:
            return row.name
        if role == Qt.ItemDataRole.TextAlignmentRole and col in self._RIGHT:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and col == self.SIZE:
            return f"{row.info.size:,} bytes"
        if role == Qt.ItemDataRole.ToolTipRole and col == self.MEMORY and row.running:
            r = row.running
            return (
                f"{fmt.human_size(r.size_vram)} in GPU memory, {fmt.human_size(r.ram_bytes)} in RAM"
            )
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        info = row.info
        if col == self.NAME:
            return info.name
        if col == self.SIZE:
            return fmt.human_size(info.size)
        if col == self.PARAMS:
            return info.parameter_size or fmt.DASH
        if col == self.QUANT:
            return info.quantization or fmt.DASH
        if col == self.LOADED:
            return "yes" if row.loaded else "no"
        if col == self.MEMORY:
            return fmt.vram_share(row.running)
        if col == self.EXPIRES:
            return fmt.expires_text(row.expires_in_s, loaded=row.loaded)
        return None

    def rows(self) -> list[ModelRow]:
        return list(self._rows)

    def row_at(self, row: int) -> ModelRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, name: str) -> int:
        for i, row in enumerate(self._rows):
            if row.name == name:
                return i
        return -1

    def get(self, name: str) -> ModelRow | None:
        i = self.row_of(name)
        return self._rows[i] if i >= 0 else None

    def set_models(
        self,
        models: list[ModelInfo],
        running: list[RunningModel],
        now: datetime | None = None,
    ) -> bool:
        """Show ``models``; returns True when rows were added or removed (a reset)."""
        now = now or datetime.now(UTC)
        by_name = {r.name: r for r in running}
        by_digest = {r.digest: r for r in running if r.digest}
        rows = []
        for info in sorted(models, key=lambda m: m.name.lower()):
            run = by_name.get(info.name) or (by_digest.get(info.digest) if info.digest else None)
            rows.append(ModelRow(info, run, run.expires_in(now) if run else None))
        if [r.name for r in rows] == [r.name for r in self._rows]:
            self._rows = rows
            if rows:
                self.dataChanged.emit(
                    self.index(0, 0), self.index(len(rows) - 1, len(self.COLUMNS) - 1)
                )
            return False
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()
        return True

    def clear(self) -> None:
        self.set_models([], [])
