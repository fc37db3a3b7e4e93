"""The tools that run without asking, kept in the MCP config file (a server's
``autoApprove`` list): the allow list the chat's approval rules use."""

from __future__ import annotations

from app.core.errors import CorralError
from app.core.mcp.config import McpConfigStore


class ConfigAllowList:
    """:class:`app.core.chat.tools.AllowList` over the MCP config store.

    Changing the list writes the config file (not the running servers: the manager does
    not use it, so nothing restarts). Raises the store's CorralError when it cannot write.
    """

    def __init__(self, store: McpConfigStore) -> None:
        self.store = store

    def always_allowed(self, server: str) -> set[str]:
        try:
            return set(self.store.get(server).auto_approve)
        except CorralError:
            return set()

    def allow_always(self, server: str, tool: str) -> None:
        current = list(self.store.get(server).auto_approve)
        if tool not in current:
            self.store.set_auto_approve(server, [*current, tool])

    def revoke(self, server: str, tool: str) -> None:
        current = list(self.store.get(server).auto_approve)
        if tool in current:
            self.store.set_auto_approve(server, [t for t in current if t != tool])

    def rules(self) -> list[tuple[str, str]]:
        """Every (server, tool) that runs without asking, for the settings to list."""
        out: list[tuple[str, str]] = []
        for name in self.store.names():
            out.extend((name, tool) for tool in self.always_allowed(name))
        return out
