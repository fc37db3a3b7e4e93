"""One error hierarchy for the whole core.

Every foreign exception (httpx, ollama, pydantic, OSError, json) is translated into a
:class:`CorralError` subclass at the boundary where it is caught, with the original kept
as ``__cause__``. The ``message`` of every error is written for the user: plain words,
what failed, and where possible what to do about it.
"""

from __future__ import annotations


class CorralError(Exception):
    """Base of every error the core raises.

    Attributes:
        message: a sentence for the user.
        host: display name of the host involved, if any.
    """

    def __init__(self, message: str, *, host: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.host = host

    def __str__(self) -> str:
        return self.message


class InvalidInput(CorralError):
    """The user gave something the core cannot use (an empty model name, a bad URL)."""


class HostError(CorralError):
    """Something went wrong talking to a model host."""


class HostUnreachable(HostError):
    """No connection could be made (refused, DNS failure, no route)."""


class HostTimeout(HostError):
    """The host accepted the connection but did not answer in time."""


class StreamInterrupted(HostError):
    """A streamed reply stopped before its end (the host closed the connection)."""


class ModelNotFound(HostError):
    """The host does not have the named model."""

    def __init__(self, message: str, *, host: str | None = None, model: str = "") -> None:
        super().__init__(message, host=host)
        self.model = model


class CapabilityMissing(HostError):
    """The model cannot do what was asked (tools, thinking, embeddings, ...)."""

    def __init__(
        self, message: str, *, host: str | None = None, model: str = "", capability: str = ""
    ) -> None:
        super().__init__(message, host=host)
        self.model = model
        self.capability = capability


class PullFailed(HostError):
    """A pull ended with an error (including an error line inside an HTTP 200 stream)."""

    def __init__(self, message: str, *, host: str | None = None, model: str = "") -> None:
        super().__init__(message, host=host)
        self.model = model


class HostRequestFailed(HostError):
    """The host answered with an error status that has no more specific meaning."""

    def __init__(self, message: str, *, host: str | None = None, status: int = 0) -> None:
        super().__init__(message, host=host)
        self.status = status


class BadResponse(HostError):
    """The host answered with something that is not what its API promises."""


class SettingsError(CorralError):
    """The settings file could not be read or written."""


class SecretNotStored(CorralError):
    """A secret could not be kept because no OS keyring is available."""


class ScanFailed(CorralError):
    """A network scan could not go on (this machine ran out of sockets, bad scan settings)."""


class MdnsUnavailable(CorralError):
    """mDNS could not be started (no usable interface, the port could not be opened)."""


class StoreError(CorralError):
    """The chat history could not be read or written."""
