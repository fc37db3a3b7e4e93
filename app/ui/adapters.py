"""Thin adapters that re-emit core events as Qt signals (the only code knowing both)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from app.core.discovery.scanner import ScanProgress, ScanResult
from app.core.discovery.service import DiscoveryService, Suggestion
from app.core.hosts.base import HostConfig
from app.core.hosts.health import HealthMonitor, HostStatus
from app.core.hosts.registry import HostRegistry
from app.core.metrics.latency import LatencyBook

if TYPE_CHECKING:
    from app.core.telemetry.service import TelemetryService


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


class HealthSignals(QObject):
    """Re-emits the :class:`HealthMonitor`'s events as Qt signals.

    Signals:
        statusChanged(object): a host's :class:`HostStatus` whose state or reason changed.
        probed(object): a host's :class:`HostStatus` after every probe.
    """

    statusChanged = Signal(object)
    probed = Signal(object)

    def __init__(self, monitor: HealthMonitor, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._monitor = monitor
        monitor.changed.connect(self._relay_changed)
        monitor.probed.connect(self._relay_probed)

    def _relay_changed(self, status: HostStatus) -> None:
        self.statusChanged.emit(status)

    def _relay_probed(self, status: HostStatus) -> None:
        self.probed.emit(status)

    def detach(self) -> None:
        """Stop listening to the monitor (before the window goes away)."""
        self._monitor.changed.disconnect(self._relay_changed)
        self._monitor.probed.disconnect(self._relay_probed)


class DiscoverySignals(QObject):
    """Re-emits the :class:`DiscoveryService`'s events as Qt signals.

    Signals:
        suggestionsChanged(list): the new list of :class:`Suggestion`.
        scanProgress(object): a :class:`ScanProgress` of the running scan.
        scanFinished(object): the :class:`ScanResult` of a scan that completed.
    """

    suggestionsChanged = Signal(list)
    scanProgress = Signal(object)
    scanFinished = Signal(object)

    def __init__(self, discovery: DiscoveryService, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._discovery = discovery
        discovery.suggestions_changed.connect(self._relay_suggestions)
        discovery.scan_progress.connect(self._relay_progress)
        discovery.scan_finished.connect(self._relay_finished)

    def _relay_suggestions(self, suggestions: list[Suggestion]) -> None:
        self.suggestionsChanged.emit(suggestions)

    def _relay_progress(self, progress: ScanProgress) -> None:
        self.scanProgress.emit(progress)

    def _relay_finished(self, result: ScanResult) -> None:
        self.scanFinished.emit(result)

    def detach(self) -> None:
        """Stop listening to the service (before the window goes away)."""
        self._discovery.suggestions_changed.disconnect(self._relay_suggestions)
        self._discovery.scan_progress.disconnect(self._relay_progress)
        self._discovery.scan_finished.disconnect(self._relay_finished)


class TelemetrySignals(QObject):
    """Re-emits the telemetry service's marker changes as a Qt signal.

    Samples are not relayed: the hardware panel reads the store at its own rate, so that
    many hosts sampled at once cost one redraw per tick, not one per sample.

    Signals:
        markersChanged(str): the markers of the host with this id changed.
    """

    markersChanged = Signal(str)

    def __init__(self, service: TelemetryService, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._service = service
        service.markers_changed.connect(self._relay)

    def _relay(self, host_id: str) -> None:
        self.markersChanged.emit(host_id)

    def detach(self) -> None:
        """Stop listening to the service (before the window goes away)."""
        self._service.markers_changed.disconnect(self._relay)


class LatencySignals(QObject):
    """Re-emits :attr:`LatencyBook.changed` as a Qt signal.

    Signals:
        changed(str): figures of the host with this id changed.
    """

    changed = Signal(str)

    def __init__(self, book: LatencyBook, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._book = book
        book.changed.connect(self._relay)

    def _relay(self, host_id: str) -> None:
        self.changed.emit(host_id)

    def detach(self) -> None:
        """Stop listening to the book (before the window goes away)."""
        self._book.changed.disconnect(self._relay)
