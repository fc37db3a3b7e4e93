"""The headless host agent: this machine's telemetry over HTTP, for Corral and Prometheus.

``python -m app agent`` (or ``corral-agent``) serves JSON telemetry at ``/v1/telemetry``
and Prometheus text at ``/metrics``. It imports nothing from Qt or ``app.ui``.
"""

from app.agent.server import LOOPBACK_ADDRESSES, AgentServer, needs_token

__all__ = ["LOOPBACK_ADDRESSES", "AgentServer", "needs_token"]
