"""Item models: the fleet (hosts grouped by machine), one host's models, all models.

The models hold frozen core values only (HostConfig, HostStatus, ModelInfo, RunningModel);
they never call a host. The window feeds them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QFont

from app.core.hosts.base import HostConfig, ModelInfo, RunningModel
from app.core.hosts.health import HostState, HostStatus
from app.ui import formatting as fmt
from app.ui.icons import machine_icon, state_dot

AnyIndex = QModelIndex | QPersistentModelIndex

#: Item data role with a row's machine-readable value: a host's state ("online",
#: "degraded", "offline", "unknown") in the fleet, the model name in the model tables.
StateRole = Qt.ItemDataRole.UserRole + 1
#: The :class:`HostKind` of a host row (the type column's badge is drawn from it).
KindRole = Qt.ItemDataRole.UserRole + 2
#: A group row's summary ("2 hosts, 1 online").
SummaryRole = Qt.ItemDataRole.UserRole + 3

ONLINE, DEGRADED, OFFLINE, UNKNOWN = (
    HostState.ONLINE.value,
    HostState.DEGRADED.value,
    HostState.OFFLINE.value,
    HostState.UNKNOWN.value,
)
THIS_COMPUTER = "This computer"

_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def machine_of(url: str) -> str:
    """The machine a host runs on, as the fleet groups it: the host part of its URL, and
    "This computer" for loopback addresses and ``localhost``."""
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "::1") or host.startswith("127.") or host.endswith(".localhost"):
        return THIS_COMPUTER
    return host or url


def port_of(url: str) -> str:
    """The port a host's URL names ("" for a host not reached over HTTP, the built-in
    engine)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return ""
    try:
        port = parts.port
    except ValueError:
        return ""
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return str(port)


def match_running(
    models: Iterable[ModelInfo], running: Iterable[RunningModel]
) -> list[tuple[ModelInfo, RunningModel | None]]:
    """Pair each installed model with its running entry (by name, else by digest), sorted
    by name."""
    running = list(running)
    by_name = {r.name: r for r in running}
    by_digest = {r.digest: r for r in running if r.digest}
    out = []
    for info in sorted(models, key=lambda m: m.name.lower()):
        run = by_name.get(info.name) or (by_digest.get(info.digest) if info.digest else None)
        out.append((info, run))
    return out


class _HeaderMixin:
    """Fixed column titles with optional tooltips."""

    COLUMNS: tuple[str, ...] = ()
    HEADER_TIPS: dict[int, str] = {}  # noqa: RUF012 (read-only per subclass)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.HEADER_TIPS.get(section)
        return None


class _RowsTableModel(_HeaderMixin, QAbstractTableModel):
    """A flat table of rows with fixed columns and optional header tooltips."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)


class _TwoLevelModel(_HeaderMixin, QAbstractItemModel):
    """A tree of exactly two levels: top rows, each with child rows.

    A top-level index has internal id 0; a child's internal id is its parent's row + 1.
    Subclasses implement :meth:`_top_count` and :meth:`_child_count`.
    """

    def _top_count(self) -> int:
        raise NotImplementedError

    def _child_count(self, top: int) -> int:
        raise NotImplementedError

    def index(self, row: int, column: int, parent: AnyIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        if not 0 <= column < len(self.COLUMNS) or row < 0:
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, 0) if row < self._top_count() else QModelIndex()
        if parent.internalId() != 0:
            return QModelIndex()  # children have no children
        top = parent.row()
        if row < self._child_count(top):
            return self.createIndex(row, column, top + 1)
        return QModelIndex()

    def parent(self, child: AnyIndex | None = None) -> Any:
        if child is None:
            return super().parent()  # QObject.parent()
        if not child.isValid() or child.internalId() == 0:
            return QModelIndex()
        return self.createIndex(int(child.internalId()) - 1, 0, 0)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        if not parent.isValid():
            return self._top_count()
        if parent.internalId() != 0 or parent.column() != 0:
            return 0
        return self._child_count(parent.row())

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return len(self.COLUMNS)

    @staticmethod
    def _split(index: AnyIndex) -> tuple[int, int | None]:
        """(top row, child row or None) of a valid index."""
        internal = int(index.internalId())
        if internal == 0:
            return index.row(), None
        return internal - 1, index.row()


# -- the fleet ------------------------------------------------------------------------


@dataclass(frozen=True)
class HostRow:
    """One host of the fleet: how to reach it and what the health monitor says of it."""

    config: HostConfig
    status: HostStatus

    @property
    def state(self) -> str:
        return self.status.state.value

    @property
    def reachable(self) -> bool:
        return self.status.reachable

    @property
    def reason(self) -> str:
        return self.status.reason

    @property
    def machine(self) -> str:
        return machine_of(self.config.url)


@dataclass
class _Group:
    machine: str
    hosts: list[HostRow]

    def summary(self) -> str:
        n = len(self.hosts)
        up = sum(1 for h in self.hosts if h.reachable)
        degraded = sum(1 for h in self.hosts if h.status.state is HostState.DEGRADED)
        text = f"{_plural(n, 'host')}, {up} online"
        if degraded:
            text += f" ({degraded} degraded)"
        return text


class FleetModel(_TwoLevelModel):
    """Every host, grouped by the machine it runs on.

    Top-level rows are machines ("This computer" first, then in the order their first
    host has in the registry); their children are the hosts, in registry order. A host
    row shows its status dot and name, its type (a badge drawn from :data:`KindRole`), its
    port, version and last round trip; its tooltip says why it is degraded or offline. A
    machine row shows the machine and a summary (:data:`SummaryRole`).
    """

    COLUMNS = ("Name", "Type", "Port", "Version", "RTT")
    NAME, TYPE, PORT, VERSION, RTT = range(5)
    HEADER_TIPS = {  # noqa: RUF012
        TYPE: "What kind of server the host is",
        RTT: "Round-trip time of the last health probe",
    }

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._groups: list[_Group] = []
        self._bold = QFont()
        self._bold.setBold(True)

    def _top_count(self) -> int:
        return len(self._groups)

    def _child_count(self, top: int) -> int:
        return len(self._groups[top].hosts) if 0 <= top < len(self._groups) else 0

    # -- reading ----------------------------------------------------------------------
    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        top, child = self._split(index)
        if not 0 <= top < len(self._groups):
            return None
        group = self._groups[top]
        if child is None:
            return self._group_data(group, index.column(), role)
        if not 0 <= child < len(group.hosts):
            return None
        return self._host_data(group.hosts[child], index.column(), role)

    def _group_data(self, group: _Group, col: int, role: int) -> Any:
        if role == SummaryRole:
            return group.summary()
        if col != self.NAME:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{group.machine}  ·  {group.summary()}"
        if role == Qt.ItemDataRole.DecorationRole:
            return machine_icon()
        if role == Qt.ItemDataRole.FontRole:
            return self._bold
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{group.machine}: {group.summary()}"
        return None

    def _host_data(self, row: HostRow, col: int, role: int) -> Any:
        status = row.status
        if role == StateRole:
            return row.state
        if role == KindRole:
            return row.config.kind
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(row)
        if role == Qt.ItemDataRole.DecorationRole and col == self.NAME:
            return state_dot(row.state)
        if role == Qt.ItemDataRole.AccessibleDescriptionRole and col == self.NAME:
            return row.state
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (self.RTT, self.PORT):
            return _RIGHT
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if col == self.NAME:
            return row.config.name
        if col == self.TYPE:
            return row.config.kind.label
        if col == self.PORT:
            return port_of(row.config.url)
        if col == self.VERSION:
            return status.version if row.reachable and status.version else fmt.DASH
        if col == self.RTT:
            return fmt.rtt_text(status.rtt_ms) if row.reachable else fmt.DASH
        return None

    @staticmethod
    def tooltip(row: HostRow) -> str:
        config, status = row.config, row.status
        head = f"{config.name} ({config.kind.label}) at {config.url}"
        state = status.state
        if state is HostState.UNKNOWN:
            return f"{head}\nNot checked yet."
        if state is HostState.ONLINE:
            version = f", version {status.version}" if status.version else ""
            return f"{head}\nOnline{version}."
        word = "Degraded" if state is HostState.DEGRADED else "Offline"
        return f"{head}\n{word}: {status.reason or 'no reason given.'}"

    def rows(self) -> list[HostRow]:
        """Every host row, machine by machine."""
        return [h for g in self._groups for h in g.hosts]

    def get(self, host_id: str) -> HostRow | None:
        for group in self._groups:
            for row in group.hosts:
                if row.config.id == host_id:
                    return row
        return None

    def index_of(self, host_id: str, column: int = 0) -> QModelIndex:
        """The index of a host's row (invalid when the host is not listed)."""
        for g, group in enumerate(self._groups):
            for h, row in enumerate(group.hosts):
                if row.config.id == host_id:
                    return self.index(h, column, self.index(g, 0))
        return QModelIndex()

    def host_at(self, index: AnyIndex) -> HostRow | None:
        """The host of a row, None for a machine row or an invalid index."""
        if not index.isValid():
            return None
        top, child = self._split(index)
        if child is None or not 0 <= top < len(self._groups):
            return None
        hosts = self._groups[top].hosts
        return hosts[child] if 0 <= child < len(hosts) else None

    def machines(self) -> list[str]:
        return [g.machine for g in self._groups]

    def machine_index(self, machine: str) -> QModelIndex:
        for g, group in enumerate(self._groups):
            if group.machine == machine:
                return self.index(g, 0)
        return QModelIndex()

    def summary(self, machine: str) -> str | None:
        for group in self._groups:
            if group.machine == machine:
                return group.summary()
        return None

    def all_probed(self) -> bool:
        return all(row.status.state is not HostState.UNKNOWN for row in self.rows())

    def any_reachable(self) -> bool:
        return any(row.reachable for row in self.rows())

    def host_count(self) -> int:
        return sum(len(g.hosts) for g in self._groups)

    # -- changing ---------------------------------------------------------------------
    def set_hosts(self, configs: list[HostConfig], status_of: Callable[[str], HostStatus]) -> None:
        """Replace the hosts (a reset). A host whose address, headers and type are
        unchanged keeps its status; others start with ``status_of(id)``."""
        old = {row.config.id: row for row in self.rows()}
        groups: dict[str, _Group] = {}
        for config in configs:
            prev = old.get(config.id)
            same = prev is not None and (
                prev.config.url,
                prev.config.headers,
                prev.config.kind,
            ) == (config.url, config.headers, config.kind)
            if prev is not None and same:
                status = prev.status
            elif prev is not None:
                status = HostStatus(config.id)  # edited: the old verdict no longer holds
            else:
                status = status_of(config.id)
            machine = machine_of(config.url)
            groups.setdefault(machine, _Group(machine, [])).hosts.append(HostRow(config, status))
        ordered = sorted(groups.values(), key=lambda g: g.machine != THIS_COMPUTER)
        self.beginResetModel()
        self._groups = ordered
        self.endResetModel()

    def set_status(self, status: HostStatus) -> HostRow | None:
        """Show a host's new status; returns its previous row (None if not listed)."""
        for g, group in enumerate(self._groups):
            for h, row in enumerate(group.hosts):
                if row.config.id == status.host_id:
                    group.hosts[h] = replace(row, status=status)
                    parent = self.index(g, 0)
                    last = len(self.COLUMNS) - 1
                    self.dataChanged.emit(self.index(h, 0, parent), self.index(h, last, parent))
                    self.dataChanged.emit(parent, self.index(g, last))
                    return row
        return None


# -- the models of one host -----------------------------------------------------------


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


def _memory_tip(running: RunningModel) -> str:
    return (
        f"{fmt.human_size(running.size_vram)} in GPU memory, "
        f"{fmt.human_size(running.ram_bytes)} in RAM"
    )


class ModelTableModel(_RowsTableModel):
    """The models installed on one host, with their load state."""

    COLUMNS = ("Name", "Size", "Parameters", "Quantization", "Loaded", "VRAM share", "Expires")
    NAME, SIZE, PARAMS, QUANT, LOADED, MEMORY, EXPIRES = range(7)
    HEADER_TIPS = {MEMORY: "Share of the loaded model in GPU memory and in system memory"}  # noqa: RUF012
    _RIGHT_COLS = (SIZE, PARAMS)

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
        if role == Qt.ItemDataRole.TextAlignmentRole and col in self._RIGHT_COLS:
            return _RIGHT
        if role == Qt.ItemDataRole.ToolTipRole and col == self.SIZE:
            return f"{row.info.size:,} bytes"
        if role == Qt.ItemDataRole.ToolTipRole and col == self.MEMORY and row.running:
            return _memory_tip(row.running)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        info = row.info
        if col == self.NAME:
            return info.name
        if col == self.SIZE:
            return fmt.human_size(info.size) if info.size else fmt.DASH
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

    def loaded_names(self) -> list[str]:
        return [r.name for r in self._rows if r.loaded]

    def set_models(
        self,
        models: list[ModelInfo],
        running: list[RunningModel],
        now: datetime | None = None,
    ) -> bool:
        """Show ``models``; returns True when rows were added or removed (a reset)."""
        now = now or datetime.now(UTC)
        rows = [
            ModelRow(info, run, run.expires_in(now) if run else None)
            for info, run in match_running(models, running)
        ]
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


# -- all models, merged across hosts --------------------------------------------------


@dataclass(frozen=True)
class HostModels:
    """What one reachable host reported: its installed and its loaded models."""

    config: HostConfig
    models: tuple[ModelInfo, ...]
    running: tuple[RunningModel, ...]


@dataclass(frozen=True)
class ModelCopy:
    """One model on one host."""

    host: HostConfig
    info: ModelInfo
    running: RunningModel | None = None

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def loaded(self) -> bool:
        return self.running is not None


@dataclass(frozen=True)
class MergedModel:
    """One model name and every host that has it (in fleet order)."""

    name: str
    copies: tuple[ModelCopy, ...]

    @property
    def loaded_on(self) -> list[str]:
        return [c.host.name for c in self.copies if c.loaded]


class AllModelsModel(_TwoLevelModel):
    """Models merged across every reachable host.

    A top-level row per model name: how many hosts have it and where it is loaded. A
    child row per host that has it: the host, loaded or not, the VRAM share, the size.
    """

    COLUMNS = ("Model / host", "Hosts", "Loaded", "VRAM share", "Size")
    NAME, HOSTS, LOADED, MEMORY, SIZE = range(5)
    HEADER_TIPS = {  # noqa: RUF012
        HOSTS: "How many reachable hosts have the model",
        MEMORY: "Share of the loaded model in GPU memory and in system memory",
    }

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._merged: list[MergedModel] = []
        self._bold = QFont()
        self._bold.setBold(True)

    def _top_count(self) -> int:
        return len(self._merged)

    def _child_count(self, top: int) -> int:
        return len(self._merged[top].copies) if 0 <= top < len(self._merged) else 0

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        top, child = self._split(index)
        if not 0 <= top < len(self._merged):
            return None
        merged = self._merged[top]
        col = index.column()
        if child is None:
            return self._merged_data(merged, col, role)
        if not 0 <= child < len(merged.copies):
            return None
        return self._copy_data(merged.copies[child], col, role)

    def _merged_data(self, merged: MergedModel, col: int, role: int) -> Any:
        if role == StateRole:
            return merged.name
        if role == Qt.ItemDataRole.FontRole and col == self.NAME:
            return self._bold
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (self.HOSTS, self.SIZE):
            return _RIGHT
        if role == Qt.ItemDataRole.ToolTipRole and col == self.LOADED:
            on = merged.loaded_on
            return "Loaded on " + ", ".join(on) if on else "Not loaded anywhere"
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if col == self.NAME:
            return merged.name
        if col == self.HOSTS:
            return str(len(merged.copies))
        if col == self.LOADED:
            on = merged.loaded_on
            return "on " + ", ".join(on) if on else "no"
        if col == self.SIZE:
            sizes = sorted({c.info.size for c in merged.copies if c.info.size})
            if not sizes:
                return fmt.DASH
            if len(sizes) == 1:
                return fmt.human_size(sizes[0])
            return f"{fmt.human_size(sizes[0])} – {fmt.human_size(sizes[-1])}"
        return None

    def _copy_data(self, copy: ModelCopy, col: int, role: int) -> Any:
        if role == StateRole:
            return copy.host.id
        if role == Qt.ItemDataRole.DecorationRole and col == self.NAME:
            return state_dot(ONLINE if copy.loaded else UNKNOWN, size=10)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == self.SIZE:
            return _RIGHT
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == self.MEMORY and copy.running:
                return _memory_tip(copy.running)
            return f"{copy.name} on {copy.host.name} ({copy.host.url})"
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if col == self.NAME:
            return copy.host.name
        if col == self.LOADED:
            return "yes" if copy.loaded else "no"
        if col == self.MEMORY:
            return fmt.vram_share(copy.running)
        if col == self.SIZE:
            return fmt.human_size(copy.info.size) if copy.info.size else fmt.DASH
        return None

    # -- reading ----------------------------------------------------------------------
    def merged(self) -> list[MergedModel]:
        return list(self._merged)

    def get(self, name: str) -> MergedModel | None:
        return next((m for m in self._merged if m.name == name), None)

    def copy_at(self, index: AnyIndex) -> ModelCopy | None:
        """The model-on-a-host of a child row; None for a model row or an invalid index."""
        if not index.isValid():
            return None
        top, child = self._split(index)
        if child is None or not 0 <= top < len(self._merged):
            return None
        copies = self._merged[top].copies
        return copies[child] if 0 <= child < len(copies) else None

    def merged_at(self, index: AnyIndex) -> MergedModel | None:
        if not index.isValid():
            return None
        top, _ = self._split(index)
        return self._merged[top] if 0 <= top < len(self._merged) else None

    def index_of(self, name: str, host_id: str | None = None, column: int = 0) -> QModelIndex:
        """The row of a model (``host_id`` None) or of the model on one host."""
        for t, merged in enumerate(self._merged):
            if merged.name != name:
                continue
            top = self.index(t, column if host_id is None else 0)
            if host_id is None:
                return top
            for c, copy in enumerate(merged.copies):
                if copy.host.id == host_id:
                    return self.index(c, column, top)
        return QModelIndex()

    # -- changing ---------------------------------------------------------------------
    def set_hosts(self, hosts: list[HostModels]) -> bool:
        """Show the models of ``hosts``; returns True when rows were added or removed."""
        by_name: dict[str, list[ModelCopy]] = {}
        for entry in hosts:
            for info, run in match_running(entry.models, entry.running):
                by_name.setdefault(info.name, []).append(ModelCopy(entry.config, info, run))
        merged = [
            MergedModel(name, tuple(copies))
            for name, copies in sorted(by_name.items(), key=lambda kv: kv[0].lower())
        ]

        def shape(items: list[MergedModel]) -> list[tuple[str, tuple[str, ...]]]:
            return [(m.name, tuple(c.host.id for c in m.copies)) for m in items]

        if shape(merged) == shape(self._merged):
            self._merged = merged
            last = len(self.COLUMNS) - 1
            for t in range(len(merged)):
                top = self.index(t, 0)
                self.dataChanged.emit(top, self.index(t, last))
                n = len(merged[t].copies)
                if n:
                    self.dataChanged.emit(self.index(0, 0, top), self.index(n - 1, last, top))
            return False
        self.beginResetModel()
        self._merged = merged
        self.endResetModel()
        return True

    def clear(self) -> None:
        self.set_hosts([])


__all__ = [
    "DEGRADED",
    "OFFLINE",
    "ONLINE",
    "THIS_COMPUTER",
    "UNKNOWN",
    "AllModelsModel",
    "FleetModel",
    "HostModels",
    "HostRow",
    "KindRole",
    "MergedModel",
    "ModelCopy",
    "ModelRow",
    "ModelTableModel",
    "StateRole",
    "SummaryRole",
    "machine_of",
    "match_running",
]
