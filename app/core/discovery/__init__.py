"""Finding model hosts: network scans, this machine's servers and mDNS announcements.

Nothing here sends a packet until asked: a scan runs when :meth:`DiscoveryService.scan`
is called, mDNS listens after :meth:`DiscoveryService.start_mdns`.
"""

from app.core.discovery.local import (
    USUAL_PORTS,
    discover_local,
    host_config_for,
    local_host_configs,
    suggested_name,
)
from app.core.discovery.mdns import (
    CORRAL_SERVICE,
    OLLAMA_SERVICE,
    MdnsBrowser,
    MdnsService,
)
from app.core.discovery.policy import (
    is_scannable,
    local_scan_networks,
    parse_scan_target,
)
from app.core.discovery.scanner import (
    DEFAULT_PORTS,
    NetworkScanner,
    ScanProgress,
    ScanResult,
    scan,
)
from app.core.discovery.service import DiscoveryService, Suggestion
from app.core.errors import MdnsUnavailable, ScanFailed

__all__ = [
    "CORRAL_SERVICE",
    "DEFAULT_PORTS",
    "OLLAMA_SERVICE",
    "USUAL_PORTS",
    "DiscoveryService",
    "MdnsBrowser",
    "MdnsService",
    "MdnsUnavailable",
    "NetworkScanner",
    "ScanFailed",
    "ScanProgress",
    "ScanResult",
    "Suggestion",
    "discover_local",
    "host_config_for",
    "is_scannable",
    "local_host_configs",
    "local_scan_networks",
    "parse_scan_target",
    "scan",
    "suggested_name",
]
