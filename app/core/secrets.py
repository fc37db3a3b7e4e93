"""Secrets (host tokens, API keys) in the OS keyring, never in a plain file.

Where no keyring service exists, :meth:`SecretStore.set` raises :class:`SecretNotStored`
so the caller can tell the user the secret is kept for this session only. Every value
stored or read here is registered with the log, which never writes it.
"""

from __future__ import annotations

import logging

import keyring
import keyring.backend
import keyring.errors
from keyring.backends import fail

from app.core.errors import SecretNotStored
from app.core.logs import register_secret

log = logging.getLogger(__name__)

SERVICE = "corral"

_SENSITIVE_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"}
_SENSITIVE_WORDS = ("token", "secret", "key", "auth", "password")


def is_sensitive_header(name: str) -> bool:
    lowered = name.strip().lower()
    return lowered in _SENSITIVE_HEADERS or any(w in lowered for w in _SENSITIVE_WORDS)


class SecretStore:
    """A thin wrapper over a keyring backend (the OS keyring by default)."""

    def __init__(self, backend: keyring.backend.KeyringBackend | None = None) -> None:
        self._backend = backend

    def _kr(self) -> keyring.backend.KeyringBackend:
        return self._backend if self._backend is not None else keyring.get_keyring()

    @property
    def available(self) -> bool:
        backend = self._kr()
        if isinstance(backend, fail.Keyring):
            return False
        backends = getattr(backend, "backends", None)
        return backends is None or bool(backends)

    def set(self, key: str, value: str) -> None:
        register_secret(value)  # kept in the keyring or, if refused, for this session
        if not self.available:
            raise SecretNotStored(
                "No OS keyring is available, so Corral cannot keep this secret after it closes."
            )
        try:
            self._kr().set_password(SERVICE, key, value)
        except keyring.errors.KeyringError as exc:
            raise SecretNotStored(f"The OS keyring refused to store the secret: {exc}.") from exc

    def get(self, key: str) -> str | None:
        if not self.available:
            return None
        try:
            value = self._kr().get_password(SERVICE, key)
        except keyring.errors.KeyringError as exc:
            log.warning("keyring lookup failed for %s: %s", key, type(exc).__name__)
            return None
        register_secret(value)
        return value

    def delete(self, key: str) -> None:
        if not self.available:
            return
        try:
            self._kr().delete_password(SERVICE, key)
        except keyring.errors.PasswordDeleteError:
            pass
        except keyring.errors.KeyringError as exc:
            log.warning("keyring delete failed for %s: %s", key, type(exc).__name__)
