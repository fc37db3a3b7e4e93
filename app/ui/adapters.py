"""Thin adapters that re-emit core events as Qt signals (the only code knowing both)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.core.hosts.base import HostConfig
from app.core.hosts.registry import HostRegistry


class RegistrySignals(QObject):
    """Re-emits :attr:`HostRegistry.changed` as a Qt signal.

    Signals:
        hostsChanged(list): the new list of :class:`HostConfig` after an add, edit or remove.
    """

    hostsChanged = Signal(list)

    def __init__(self, registry: HostRegistry, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._registry = registry
        registry.changed.connect(self._relay)

    def _relay(self, hosts: list[HostConfig]) -> None:
        self.hostsChanged.emit(hosts)

    def detach(self) -> None:
        """Stop listening to the registry (before the window goes away)."""
        self._registry.changed.disconnect(self._relay)
