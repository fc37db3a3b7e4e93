"""Which host answers: the ranking behind a conversation whose host is "auto".

A candidate is a host that is not known to be down and that lists the model. Candidates
are ranked: the model already loaded there first, then online before degraded before not
yet probed, then the lowest recent round trip. Every look at a host is bounded by
``look_timeout_s``; a host that does not answer in time is left out.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from app.core.errors import CorralError
from app.core.hosts.base import Host, HostConfig
from app.core.hosts.health import HostState, HostStatus


class HostDirectory(Protocol):
    """What routing needs of the host registry."""

    def hosts(self) -> list[HostConfig]: ...

    def get(self, host_id: str) -> HostConfig: ...

    def host(self, host_id: str) -> Host: ...


class HealthView(Protocol):
    """What routing needs of the health monitor."""

    def status(self, host_id: str) -> HostStatus: ...


def model_matches(wanted: str, name: str) -> bool:
    """Ollama's spelling rules: ``llama3.2`` is ``llama3.2:latest``; case does not count."""

    def norm(n: str) -> str:
        n = n.strip().casefold()
        return n if ":" in n.rsplit("/", 1)[-1] else n + ":latest"

    return norm(wanted) == norm(name)


@dataclass(frozen=True)
class Candidate:
    """A host that can answer with the model.

    Attributes:
        host_id, host_name: which host.
        loaded: the model is in the host's memory now.
        state: the health state (unknown without a monitor or before the first probe).
        rtt_ms: the last probe's round trip, if known.
    """

    host_id: str
    host_name: str
    loaded: bool
    state: HostState
    rtt_ms: float | None

    def sort_key(self) -> tuple[int, int, float]:
        rank = {HostState.ONLINE: 0, HostState.DEGRADED: 1}.get(self.state, 2)
        return (0 if self.loaded else 1, rank, self.rtt_ms if self.rtt_ms is not None else math.inf)


class Router:
    """Finds and ranks the hosts that can answer with a model."""

    def __init__(
        self,
        registry: HostDirectory,
        health: HealthView | None = None,
        *,
        look_timeout_s: float = 5.0,
    ) -> None:
        self.registry = registry
        self.health = health
        self.look_timeout_s = look_timeout_s

    def _status(self, host_id: str) -> HostStatus:
        return self.health.status(host_id) if self.health is not None else HostStatus(host_id)

    async def _look(self, config: HostConfig, model: str) -> Candidate | None:
        status = self._status(config.id)
        if status.state is HostState.OFFLINE:
            return None
        host = self.registry.host(config.id)
        try:
            async with asyncio.timeout(self.look_timeout_s):
                models = await host.list_models()
                if not any(model_matches(model, m.name) for m in models):
                    return None
                try:
                    running = await host.running_models()
                except CorralError:
                    running = []
        except (CorralError, TimeoutError):
            return None
        return Candidate(
            host_id=config.id,
            host_name=config.name,
            loaded=any(model_matches(model, r.name) for r in running),
            state=status.state,
            rtt_ms=status.rtt_ms,
        )

    async def candidates(self, model: str, exclude: Iterable[str] = ()) -> list[Candidate]:
        """The hosts that have ``model``, best first (all looked at together)."""
        skip = set(exclude)
        configs = [c for c in self.registry.hosts() if c.id not in skip]
        found = await asyncio.gather(*(self._look(c, model) for c in configs))
        return sorted((c for c in found if c is not None), key=Candidate.sort_key)
