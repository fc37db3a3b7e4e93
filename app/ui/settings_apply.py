"""Changed settings reach the running app at once: no restart.

:class:`SettingsApplier` is handed the settings the Settings dialog saved and the names of
the fields that changed, and passes each change to the part of the app it concerns: the
health monitor's polling policy (the next probe already follows it), the live hosts'
timeouts and default keep-alive, the telemetry sampling interval and history, the scan
ports and the largest network scanned without asking. What belongs to the window (theme,
tray, log level, the graphs' time span, the models refresh timer) goes to callbacks the
window supplies. Only the chat history location (and the models folder) waits for the
next start. Nothing here imports Qt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from app.core.errors import CorralError
from app.core.hosts.engine import EngineHost, engine_settings
from app.core.hosts.http import HttpHost
from app.core.hosts.ollama import OllamaHost, normalize_keep_alive
from app.core.settings import Settings

if TYPE_CHECKING:
    from app.core.discovery.service import DiscoveryService
    from app.core.hosts.health import HealthMonitor
    from app.core.hosts.registry import HostRegistry

log = logging.getLogger(__name__)

#: Fields that the health monitor's policy is made of.
HEALTH_FIELDS = frozenset({"refresh_interval_s", "backoff_max_s", "slow_rtt_ms"})
#: Fields that every live host object carries (its timeouts, its default keep-alive).
HOST_FIELDS = frozenset(
    {
        "connect_timeout_s",
        "request_timeout_s",
        "load_timeout_s",
        "probe_timeout_s",
        "default_keep_alive",
    }
)
#: Fields of the built-in engine: used from the next model it loads.
ENGINE_FIELDS = frozenset({"engine_context", "engine_threads", "engine_gpu_layers"})
#: Fields of the network scan.
SCAN_FIELDS = frozenset({"scan_ports", "scan_max_prefix"})
#: Fields that take effect at the next start only (the files in use stay open until then).
NEXT_START_FIELDS = frozenset({"chat_db_path", "models_dir"})
#: Telemetry history kept at least (the hardware panel's own selector offers 15 minutes).
MIN_HISTORY_S = 900.0


class TelemetryControls(Protocol):
    """What the applier needs of the telemetry service."""

    def set_interval(self, interval_s: float) -> None: ...

    def set_window(self, window_s: float) -> None: ...


def apply_log_level(level: str) -> None:
    """Log from ``level`` on (DEBUG, INFO, WARNING or ERROR), for every logger of the app."""
    logging.getLogger().setLevel(level.upper())


class SettingsApplier:
    """Applies changed settings to the live services and the window.

    Every argument is optional: what is None is left alone. Callbacks:
        on_theme(theme): "system", "light" or "dark".
        on_tray(close_to_tray, notifications): the tray behaviour.
        on_log_level(level): by default :func:`apply_log_level`.
        on_graph_window(seconds): the time span of the hardware and latency graphs.
        on_refresh_interval(seconds): the window's models refresh timer.
        on_telemetry_interval(seconds): the graphs' redraw rate (the sampling rate).
    """

    def __init__(
        self,
        *,
        registry: HostRegistry | None = None,
        health: HealthMonitor | None = None,
        telemetry: TelemetryControls | None = None,
        discovery: DiscoveryService | None = None,
        on_theme: Callable[[str], object] | None = None,
        on_tray: Callable[[bool, bool], object] | None = None,
        on_log_level: Callable[[str], object] | None = apply_log_level,
        on_graph_window: Callable[[float], object] | None = None,
        on_refresh_interval: Callable[[float], object] | None = None,
        on_telemetry_interval: Callable[[float], object] | None = None,
    ) -> None:
        self.registry = registry
        self.health = health
        self.telemetry = telemetry
        self.discovery = discovery
        self.on_theme = on_theme
        self.on_tray = on_tray
        self.on_log_level = on_log_level
        self.on_graph_window = on_graph_window
        self.on_refresh_interval = on_refresh_interval
        self.on_telemetry_interval = on_telemetry_interval

    def apply(self, settings: Settings, changed: Iterable[str]) -> list[str]:
        """Apply the ``changed`` fields of ``settings``; return what could not be applied,
        in plain words (an empty list when everything was)."""
        names = frozenset(changed)
        problems: list[str] = []

        def step(what: str, action: Callable[[], object]) -> None:
            try:
                action()
            except (CorralError, ValueError) as exc:
                text = exc.message if isinstance(exc, CorralError) else str(exc)
                problem = f"The {what} could not be changed: {text}"
                log.warning("%s", problem)
                problems.append(problem)

        if names & HEALTH_FIELDS:
            if self.health is not None:
                step("polling of the hosts", lambda: self._set_policy(settings))
            if self.on_refresh_interval is not None and "refresh_interval_s" in names:
                callback = self.on_refresh_interval
                step("refresh interval", lambda: callback(settings.refresh_interval_s))
        if names & HOST_FIELDS and self.registry is not None:
            step("timeouts of the hosts", lambda: self._update_hosts(settings))
        if names & ENGINE_FIELDS and self.registry is not None:
            step("built-in engine's settings", lambda: self._update_engine(settings))
        if names & SCAN_FIELDS and self.discovery is not None:
            discovery = self.discovery
            step(
                "network scan",
                lambda: discovery.set_scan_options(settings.scan_ports, settings.scan_max_prefix),
            )
        if "telemetry_interval_s" in names:
            seconds = settings.telemetry_interval_s
            if self.telemetry is not None:
                telemetry = self.telemetry
                step("hardware sample interval", lambda: telemetry.set_interval(seconds))
            if self.on_telemetry_interval is not None:
                on_interval = self.on_telemetry_interval
                step("graphs' redraw interval", lambda: on_interval(seconds))
        if "graph_window_s" in names:
            window = settings.graph_window_s
            if self.telemetry is not None:
                telemetry = self.telemetry
                step("hardware history", lambda: telemetry.set_window(max(MIN_HISTORY_S, window)))
            if self.on_graph_window is not None:
                on_window = self.on_graph_window
                step("graph window", lambda: on_window(window))
        if "theme" in names and self.on_theme is not None:
            on_theme = self.on_theme
            step("theme", lambda: on_theme(settings.theme))
        if names & {"close_to_tray", "notifications"} and self.on_tray is not None:
            on_tray = self.on_tray
            step("tray behaviour", lambda: on_tray(settings.close_to_tray, settings.notifications))
        if "log_level" in names and self.on_log_level is not None:
            on_level = self.on_log_level
            step("log level", lambda: on_level(settings.log_level))
        return problems

    def _set_policy(self, settings: Settings) -> None:
        assert self.health is not None
        self.health.set_policy(
            replace(
                self.health.policy,
                interval_s=settings.refresh_interval_s,
                backoff_max_s=settings.backoff_max_s,
                slow_ms=settings.slow_rtt_ms,
            )
        )

    def _update_hosts(self, settings: Settings) -> None:
        """Give every live host the new timeouts and default keep-alive (the next call
        uses them; a call already running keeps its deadline)."""
        assert self.registry is not None
        keep_alive = normalize_keep_alive(settings.default_keep_alive)
        for config in self.registry.hosts():
            host = self.registry.host(config.id)
            if isinstance(host, HttpHost | EngineHost):  # the engine: from its next load
                host.timeouts = replace(
                    host.timeouts,
                    connect=settings.connect_timeout_s,
                    request=settings.request_timeout_s,
                    load=settings.load_timeout_s,
                    probe=settings.probe_timeout_s,
                )
            if isinstance(host, OllamaHost):
                host.default_keep_alive = keep_alive
            if isinstance(host, EngineHost):
                host.process.load_timeout = settings.load_timeout_s

    def _update_engine(self, settings: Settings) -> None:
        """The engine starts its next model with the new settings (a running one keeps
        its own until it is loaded again)."""
        assert self.registry is not None
        for config in self.registry.hosts():
            host = self.registry.host(config.id)
            if isinstance(host, EngineHost):
                host.settings = engine_settings(settings)


__all__ = [
    "ENGINE_FIELDS",
    "HEALTH_FIELDS",
    "HOST_FIELDS",
    "NEXT_START_FIELDS",
    "SCAN_FIELDS",
    "SettingsApplier",
    "TelemetryControls",
    "apply_log_level",
]
