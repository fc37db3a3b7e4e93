"""Host addresses: OLLAMA_HOST parsing as Ollama does it, and URL validation for user input."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from app.core.errors import InvalidInput

DEFAULT_OLLAMA_PORT = 11434
DEFAULT_OLLAMA_URL = f"http://127.0.0.1:{DEFAULT_OLLAMA_PORT}"


def _join_host_port(host: str, port: int) -> str:
    if ":" in host:  # IPv6 literal
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _split_host_port(hostport: str) -> tuple[str, str] | None:
    """Split like Go's net.SplitHostPort; None where Go would return an error."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or end + 1 >= len(hostport) or hostport[end + 1] != ":":
            return None
        return hostport[1:end], hostport[end + 2 :]
    if hostport.count(":") != 1:
        return None
    host, port = hostport.split(":")
    return host, port


def parse_ollama_host(value: str | None) -> str:
    """Return the base URL a client should connect to for an OLLAMA_HOST value.

    Follows Ollama's own parsing: no scheme means ``http`` and port 11434; an explicit
    ``http://`` or ``https://`` defaults the port to 80 or 443; a path suffix is kept; an
    invalid port falls back to the default. As Ollama's client side does, the unspecified
    bind addresses ``0.0.0.0`` and ``::`` (and an empty host) become loopback.
    """
    s = (value or "").strip().strip("\"'").strip()
    if not s:
        return DEFAULT_OLLAMA_URL
    default_port = DEFAULT_OLLAMA_PORT
    scheme, sep, hostport = s.partition("://")
    if not sep:
        scheme, hostport = "http", s
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    hostport, _, path = hostport.partition("/")

    split = _split_host_port(hostport)
    if split is None:
        host, port_text = "127.0.0.1", str(default_port)
        bare = hostport.strip("[]")
        try:
            host = str(ipaddress.ip_address(bare))
        except ValueError:
            if hostport:
                host = hostport
    else:
        host, port_text = split
    try:
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ValueError(port_text)
    except ValueError:
        port = default_port

    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if host == "" or (ip is not None and ip.is_unspecified):
        host = "::1" if ip is not None and ip.version == 6 else "127.0.0.1"
    elif ip is not None:
        host = str(ip)
    url = f"{scheme}://{_join_host_port(host, port)}"
    if path:
        url += "/" + path
    return url


def normalize_host_url(text: str, *, default_port: int = DEFAULT_OLLAMA_PORT) -> str:
    """Validate a URL the user typed for a host and return it in canonical form.

    Accepts ``host``, ``host:port``, ``http(s)://host[:port][/path]``. Raises
    :class:`InvalidInput` with a sentence saying what is wrong.
    """
    s = text.strip()
    if not s:
        raise InvalidInput("Enter the host's address, for example http://192.168.1.20:11434.")
    if any(c.isspace() for c in s):
        raise InvalidInput(f"The address {s!r} contains spaces.")
    if "://" not in s:
        s = "http://" + s
    parts = urlsplit(s)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(
            f"The address must start with http:// or https://, not {parts.scheme}://."
        )
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(
            f"The port in {text.strip()!r} is not a number from 1 to 65535."
        ) from exc
    if not host:
        raise InvalidInput(f"The address {text.strip()!r} has no host name.")
    if parts.query or parts.fragment:
        raise InvalidInput("The address must not contain '?' or '#'.")
    if parts.username or parts.password:
        raise InvalidInput("Put credentials in a header (Authorization), not in the address.")
    if port == 0:
        raise InvalidInput(f"The port in {text.strip()!r} is not a number from 1 to 65535.")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
        if not all(label and len(label) <= 63 for label in host.split(".")) or not all(
            c.isalnum() or c in "-." for c in host
        ):
            raise InvalidInput(f"{host!r} is not a valid host name.") from None
    if ip is not None and ip.is_unspecified:
        raise InvalidInput(
            f"{host} is a bind address, not one to connect to; use 127.0.0.1 or the machine's IP."
        )
    if port is None:
        # Same rule as OLLAMA_HOST: no scheme typed -> Ollama's port; a scheme -> its port.
        port = default_port if "://" not in text else (443 if parts.scheme == "https" else 80)
    host_out = str(ip) if ip is not None else host.lower()
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{_join_host_port(host_out, port)}{path}"
