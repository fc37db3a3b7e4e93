"""Corral's own MCP config file: ``mcp.json`` beside ``settings.json``.

The file has the shape most clients share::

    {"mcpServers": {
        "fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "~"],
               "env": {"TOKEN": "${keyring:corral-mcp/fs/env/TOKEN}"}, "cwd": "/tmp",
               "disabled": false, "autoApprove": ["read_file"], "timeout": 60},
        "hf": {"type": "http", "url": "https://huggingface.co/mcp",
               "headers": {"Authorization": "${keyring:corral-mcp/hf/header/Authorization}"}}}}

Secret values (env variables the user marks secret, and headers such as Authorization,
X-Api-Key or anything with token/key/secret in its name) live in the OS keyring; the file
holds a ``${keyring:...}`` reference, never the value. Where no keyring exists the change
is refused with :class:`~app.core.errors.SecretNotStored` and nothing is written.

Values may hold placeholders, expanded when the servers are handed to the manager:
``${env:X}`` and ``${X}`` (``${X:-default}`` too) from a given environment, and
``${input:X}``, which the caller asks the user for (:meth:`McpConfigStore.missing_inputs`).

Writes are atomic (temporary file, fsync, rename). A file that cannot be parsed is moved
aside as ``mcp.json.bad-<time>`` and reported; if it cannot be moved, the store is
read-only, so the user's file is never overwritten.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import shlex
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.core.errors import SecretNotStored
from app.core.mcp.types import McpConfigError, ServerConfig, Transport
from app.core.secrets import SecretStore, is_sensitive_header
from app.core.settings import atomic_write_text, default_settings_path

log = logging.getLogger(__name__)

KEYRING_PREFIX = "corral-mcp"
MAX_NAME_LENGTH = 100
MAX_TIMEOUT_S = 86_400.0

# the keys of one server entry this module reads and writes; others are kept as they are
_KNOWN_KEYS = frozenset(
    {
        "command",
        "args",
        "env",
        "cwd",
        "type",
        "url",
        "headers",
        "disabled",
        "autoApprove",
        "timeout",
    }
)

_PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# variables other clients expand themselves (VS Code); never taken from the environment
EDITOR_VARIABLES = frozenset(
    {
        "workspaceFolder",
        "workspaceFolderBasename",
        "workspaceRoot",
        "userHome",
        "pathSeparator",
        "file",
        "fileDirname",
        "cwd",
        "/",
    }
)
_SECRET_ENV_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "APIKEY", "ACCESS_KEY")
_SECRET_ENV_SUFFIXES = ("_KEY", "_PAT", "_PASS", "_CREDENTIALS", "_AUTH")
_AUTH_SCHEMES = frozenset({"", "bearer", "basic", "token", "bot"})


def default_mcp_path() -> Path:
    """``mcp.json`` in the platform config directory, next to ``settings.json``."""
    return default_settings_path().with_name("mcp.json")


# --- placeholders -------------------------------------------------------------------------


@dataclass(frozen=True)
class Placeholder:
    """One ``${...}`` in a value.

    Attributes:
        text: the placeholder as written, ``${...}`` included.
        kind: ``keyring``, ``env``, ``input`` or ``other`` (an editor variable such as
            ``${workspaceFolder}``, or something this module does not understand).
        name: the key, variable or input id.
        default: for ``${X:-default}``, the default; else None.
    """

    text: str
    kind: str
    name: str
    default: str | None = None


def placeholders(value: str) -> list[Placeholder]:
    """The placeholders in ``value``, in order."""
    out: list[Placeholder] = []
    for match in _PLACEHOLDER.finditer(value):
        out.append(_classify(match.group(0), match.group(1)))
    return out


def _classify(text: str, inner: str) -> Placeholder:
    for kind in ("keyring", "env", "input"):
        if inner.startswith(kind + ":"):
            return Placeholder(text, kind, inner[len(kind) + 1 :])
    if inner in EDITOR_VARIABLES:
        return Placeholder(text, "other", inner)
    name, sep, default = inner.partition(":-")
    if _IDENT.fullmatch(name):
        return Placeholder(text, "env", name, default if sep else None)
    return Placeholder(text, "other", inner)


def expand(
    value: str,
    *,
    environ: Mapping[str, str] | None = None,
    inputs: Mapping[str, str] | None = None,
    secret: Callable[[str], str | None] | None = None,
) -> str:
    """``value`` with its placeholders replaced.

    ``${env:X}`` / ``${X}`` come from ``environ`` (a missing variable gives its default or
    ""), when ``environ`` is given; ``${input:X}`` from ``inputs`` when answered;
    ``${keyring:K}`` from ``secret`` (a missing secret gives ""). Anything else stays.
    """

    def sub(match: re.Match[str]) -> str:
        ph = _classify(match.group(0), match.group(1))
        if ph.kind == "env" and environ is not None:
            found = environ.get(ph.name)
            return found if found is not None else (ph.default or "")
        if ph.kind == "input" and inputs is not None and ph.name in inputs:
            return inputs[ph.name]
        if ph.kind == "keyring" and secret is not None:
            return secret(ph.name) or ""
        return ph.text

    return _PLACEHOLDER.sub(sub, value)


def keyring_ref(key: str) -> str:
    return "${keyring:" + key + "}"


def secret_key(server: str, where: str, name: str) -> str:
    """The keyring key of a secret value (``where`` is ``env`` or ``header``)."""
    return f"{KEYRING_PREFIX}/{server}/{where}/{name}"


def _only_keyring_ref(value: str) -> str | None:
    match = _PLACEHOLDER.fullmatch(value.strip())
    if match and match.group(1).startswith("keyring:"):
        return match.group(1)[len("keyring:") :]
    return None


def is_template(value: str) -> bool:
    """True when ``value`` holds no secret itself: only placeholders (env, input,
    keyring), possibly after an auth scheme word such as ``Bearer``."""
    if not _PLACEHOLDER.search(value):
        return False
    rest = _PLACEHOLDER.sub(" ", value).strip().lower()
    return rest in _AUTH_SCHEMES


def looks_secret_env(name: str) -> bool:
    """True for env variable names that usually hold a secret (API_KEY, GITHUB_TOKEN...)."""
    upper = name.strip().upper()
    return any(w in upper for w in _SECRET_ENV_WORDS) or upper.endswith(_SECRET_ENV_SUFFIXES)


def needs_secret_header(name: str) -> bool:
    """Headers whose values always go to the keyring (Authorization, X-Api-Key, ...)."""
    return is_sensitive_header(name)


# --- names and validation -----------------------------------------------------------------


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a server, or None when it can."""
    if not name.strip():
        return "A server needs a name."
    if name != name.strip():
        return f"The name {name.strip()!r} must not start or end with spaces."
    if len(name) > MAX_NAME_LENGTH:
        return f"The name {name[:40]!r}... is longer than {MAX_NAME_LENGTH} characters."
    if any(not c.isprintable() for c in name):
        return f"The name {name!r} holds characters that cannot be shown."
    return None


def clean_name(raw: str, fallback: str = "server") -> str:
    """A usable name made from ``raw`` (printable characters, trimmed, not too long)."""
    text = "".join(c if c.isprintable() else " " for c in raw)
    text = " ".join(text.split())[:MAX_NAME_LENGTH].strip()
    return text or fallback


def unique_name(base: str, taken: Collection[str]) -> str:
    """``base``, or ``base-2``, ``base-3``... whichever is not in ``taken``."""
    base = clean_name(base)
    lowered = {t.casefold() for t in taken}
    if base.casefold() not in lowered:
        return base
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = base[: MAX_NAME_LENGTH - len(suffix)] + suffix
        if candidate.casefold() not in lowered:
            return candidate
        n += 1


def _url_problem(url: str) -> str | None:
    if any(ph.kind != "other" for ph in placeholders(url)) and url.startswith("${"):
        return None  # e.g. ${env:MCP_URL}: checked once it is expanded
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return f"{url!r} is not a valid address."
    scheme = parts.scheme.lower()
    if scheme in ("ws", "wss"):
        return f"{url} is a WebSocket address; Corral talks to MCP servers over HTTP or stdio."
    if scheme in ("unix", "pipe"):
        return f"{url} is a local socket; Corral can reach HTTP addresses and stdio servers."
    if scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http:// or https:// address."
    return None


def validate_server(server: ServerConfig) -> list[str]:
    """Reasons, in plain words, why ``server`` cannot be saved; empty when it can."""
    errors: list[str] = []
    problem = name_problem(server.name)
    if problem:
        errors.append(problem)
    label = server.name.strip() or "The server"
    if server.transport is Transport.STDIO:
        if not server.command.strip():
            errors.append(f"{label} has no command to start it.")
        if any("\0" in a for a in (server.command, server.cwd, *server.args)):
            errors.append(f"{label} has a command or argument with a NUL character.")
        for key, value in server.env.items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                errors.append(f"{label} has a bad environment variable {key!r}.")
                break
    else:
        if not server.url.strip():
            errors.append(f"{label} has no address.")
        else:
            problem = _url_problem(server.url.strip())
            if problem:
                errors.append(problem)
        for key, value in server.headers.items():
            if not _HEADER_NAME.fullmatch(key):
                errors.append(f"{label} has a bad header name {key!r}.")
                break
            if any(c in value for c in "\r\n\0"):
                errors.append(f"The value of header {key} of {label} must be one line.")
                break
    if server.timeout_s is not None and not (0 < server.timeout_s <= MAX_TIMEOUT_S):
        errors.append(f"The timeout of {label} must be between 0 and {MAX_TIMEOUT_S:.0f} seconds.")
    if any(not t.strip() for t in server.auto_approve):
        errors.append(f"{label} has an empty tool name in its auto-approve list.")
    return errors


# --- one entry of the common shape --------------------------------------------------------


class EntryProblem(ValueError):
    """One server entry cannot be used (the message says why, in plain words)."""


def _text(value: object, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value) if not value.is_integer() else str(int(value))
    raise EntryProblem(f"{what} is not text")


def _str_map(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EntryProblem(f"its {what} is not a set of names and values")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise EntryProblem(f"its {what} has a name that is not text")
        if item is None:
            continue
        out[key] = _text(item, f"the {what} value {key!r}")
    return out


def _args(value: object, warnings: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        warnings.append("Its arguments were one line of text; they were split at spaces.")
        return tuple(split_command(value))
    if not isinstance(value, list):
        raise EntryProblem("its arguments are not a list")
    return tuple(_text(a, "an argument") for a in value)


def split_command(line: str) -> list[str]:
    """Split a command line the way a user typed it (quotes kept together, Windows
    backslashes left alone)."""
    try:
        lexer = shlex.shlex(line, posix=False)
        lexer.whitespace_split = True
        parts = list(lexer)
    except ValueError:
        parts = line.split()
    out = []
    for part in parts:
        if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'":
            part = part[1:-1]
        out.append(part)
    return out


def _split_command_line(command: str, warnings: list[str]) -> tuple[str, tuple[str, ...]]:
    """A command with spaces and no arguments: split it when it clearly is a command line
    ("npx -y pkg", a quoted path followed by arguments), else keep it as one path."""
    if Path(command).exists():
        return command, ()
    first = command.split()[0]
    if command[0] in "\"'" or not any(sep in first for sep in "/\\") or Path(first).exists():
        parts = split_command(command)
        if len(parts) > 1:
            warnings.append(
                f"Its command line was split into {parts[0]!r} and its arguments; check it."
            )
            return parts[0], tuple(parts[1:])
        return command, ()
    warnings.append(
        "Its command has spaces; if part of it are arguments, move them to the arguments."
    )
    return command, ()


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _is_sse_url(url: str) -> bool:
    try:
        path = urlsplit(url).path
    except ValueError:
        return False
    return path.rstrip("/").lower().endswith("/sse")


_TYPE_ALIASES = {
    "stdio": Transport.STDIO,
    "local": Transport.STDIO,
    "command": Transport.STDIO,
    "http": Transport.HTTP,
    "https": Transport.HTTP,
    "streamable-http": Transport.HTTP,
    "streamable_http": Transport.HTTP,
    "streamablehttp": Transport.HTTP,
    "streamable": Transport.HTTP,
    "remote": Transport.HTTP,
    "sse": Transport.SSE,
}


def guess_transport(
    *, command: str, url: str, declared: str = "", url_without_type: Transport | None = None
) -> Transport:
    """The transport of an entry: a declared type wins; else a command means stdio; a URL
    ending in /sse means SSE; any other URL streamable HTTP (or ``url_without_type``)."""
    if declared:
        found = _TYPE_ALIASES.get(declared.strip().lower())
        if found is None:
            raise EntryProblem(f"its type {declared!r} is not stdio, http or sse")
        return found
    if command.strip():
        return Transport.STDIO
    if url.strip():
        if _is_sse_url(url):
            return Transport.SSE
        return url_without_type or Transport.HTTP
    raise EntryProblem("it has neither a command nor an address")


def parse_entry(
    name: str,
    entry: object,
    *,
    url_keys: Sequence[str] = ("url",),
    url_without_type: Transport | None = None,
) -> tuple[ServerConfig, list[str]]:
    """One server entry of the common ``mcpServers`` shape as a :class:`ServerConfig`,
    with warnings in plain words. Raises :class:`EntryProblem` when it cannot be used.

    Understood: command, args, env, cwd, type (or transport), url (and ``url_keys``),
    headers, disabled / enabled / active, autoApprove / alwaysAllow, timeout (seconds).
    ``secret_env`` / ``secret_headers`` list the values that are keyring references.
    """
    if not isinstance(entry, dict):
        raise EntryProblem("it is not an object")
    warnings: list[str] = []
    raw_command = entry.get("command") or ""
    args = _args(entry.get("args"), warnings)
    if isinstance(raw_command, list) and raw_command:
        parts = [_text(p, "its command") for p in raw_command]
        raw_command, args = parts[0], (*parts[1:], *args)
    command = _text(raw_command, "its command")
    url = ""
    for key in url_keys:
        if entry.get(key):
            url = _text(entry[key], "its address").strip()
            break
    declared = entry.get("type", entry.get("transport", ""))
    if isinstance(declared, dict):  # {"transport": {"type": "stdio", ...}} handled by callers
        declared = declared.get("type", "")
    declared_text = _text(declared or "", "its type")
    transport = guess_transport(
        command=command, url=url, declared=declared_text, url_without_type=url_without_type
    )
    if transport is Transport.STDIO and not args and " " in command.strip():
        command, args = _split_command_line(command.strip(), warnings)
    if transport is Transport.STDIO and not command.strip():
        raise EntryProblem("it is a stdio server without a command")
    if transport is not Transport.STDIO and not url:
        raise EntryProblem(f"it is a {transport.value} server without an address")
    env = _str_map(entry.get("env"), "environment")
    headers = _str_map(entry.get("headers"), "headers")
    cwd = _text(entry.get("cwd") or "", "its working folder")
    enabled = True
    for key, when_true in (("disabled", False), ("enabled", True), ("active", True)):
        flag = entry.get(key)
        if isinstance(flag, bool):
            enabled = flag if when_true else not flag
    approve: list[str] = []
    for key in ("autoApprove", "alwaysAllow"):
        raw = entry.get(key)
        if raw is None:
            continue
        if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
            warnings.append(f"Its {key} list was not a list of tool names and was left out.")
            continue
        approve.extend(t for t in raw if t.strip() and t not in approve)
    timeout = None
    if entry.get("timeout") is not None:
        number = _number(entry.get("timeout"))
        if number is None or number <= 0:
            warnings.append("Its timeout was not a positive number and was left out.")
        elif number > 3600:
            timeout = min(number / 1000.0, MAX_TIMEOUT_S)
            warnings.append(
                f"Its timeout {number:g} was read as milliseconds ({timeout:g} seconds)."
            )
        else:
            timeout = number
    if transport is Transport.STDIO:
        if url:
            warnings.append("It has both a command and an address; the command is used.")
        if headers:
            warnings.append("Its headers were left out: they only apply to HTTP servers.")
        headers = {}
    else:
        if command.strip():
            warnings.append("It has both an address and a command; the address is used.")
        if env:
            warnings.append(
                "Its environment variables were left out: they only apply to stdio servers."
            )
        command, args, env, cwd = "", (), {}, ""
    config = ServerConfig(
        name=name,
        transport=transport,
        command=command,
        args=args,
        env=env,
        cwd=cwd,
        url=url if transport is not Transport.STDIO else "",
        headers=headers,
        enabled=enabled,
        auto_approve=tuple(approve),
        secret_env=tuple(k for k, v in env.items() if _only_keyring_ref(v) is not None),
        secret_headers=tuple(k for k, v in headers.items() if _only_keyring_ref(v) is not None),
        timeout_s=timeout,
    )
    return config, warnings


def server_to_entry(server: ServerConfig) -> dict[str, Any]:
    """``server`` in the common shape (values as they are: references stay references)."""
    entry: dict[str, Any] = {}
    if server.transport is Transport.STDIO:
        entry["command"] = server.command
        if server.args:
            entry["args"] = list(server.args)
        if server.env:
            entry["env"] = dict(server.env)
        if server.cwd:
            entry["cwd"] = server.cwd
    else:
        entry["type"] = server.transport.value
        entry["url"] = server.url
        if server.headers:
            entry["headers"] = dict(server.headers)
    if not server.enabled:
        entry["disabled"] = True
    if server.auto_approve:
        entry["autoApprove"] = list(server.auto_approve)
    if server.timeout_s is not None:
        t = server.timeout_s
        entry["timeout"] = int(t) if float(t).is_integer() else t
    return entry


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputRequest:
    """A value to ask the user for before a server can start.

    Attributes:
        id: the input's id, as in ``${input:<id>}``.
        description: what to ask, in the words of the file that declared it.
        password: True when the answer is a secret (shown masked, kept in the keyring).
        required: False when the server can start without it (``default`` is then used).
        default: the value used when the user gives none (for ``multiple``, the values
            separated like PATH, with ``os.pathsep``).
        kind: ``string``, ``number``, ``boolean``, ``directory`` or ``file``.
        multiple: for directories and files, True when several may be chosen.
        choices: the answers to pick from, when the file gives a list.
    """

    id: str
    description: str = ""
    password: bool = False
    required: bool = True
    default: str = ""
    kind: str = "string"
    multiple: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class McpLoadResult:
    """What :meth:`McpConfigStore.load` found.

    Attributes:
        problem: a sentence for the user when the file could not be used, else None.
        backup: where the unusable file was moved, if it was.
        skipped: server name -> why that entry cannot be used (it stays in the file).
    """

    problem: str | None = None
    backup: Path | None = None
    skipped: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ExportResult:
    """An export of the config in another client's shape.

    Attributes:
        data: the document (ready for ``json.dumps``).
        warnings: what could not be carried over as it is, in plain words.
    """

    data: Mapping[str, Any]
    warnings: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return json.dumps(self.data, indent=2, ensure_ascii=False) + "\n"


# --- the store ----------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


class McpConfigStore:
    """Reads and writes Corral's MCP config file, keeping secret values in the keyring.

    Every change is checked first, then written in one atomic step; a change that fails
    (a bad server, no keyring for its secrets, a full disk) leaves the file and the
    keyring as they were.

    Attributes:
        path: the config file.
        read_only: True when an unusable file could not be moved aside; changes are then
            refused, so that the user's file is not overwritten.
        skipped: server name -> why its entry cannot be used (kept in the file as it is).
    """

    def __init__(self, path: Path | None, secrets: SecretStore) -> None:
        self.path = path or default_mcp_path()
        self.read_only = False
        self.skipped: dict[str, str] = {}
        self._secrets = secrets
        self._doc: dict[str, Any] = {"mcpServers": {}}
        self._configs: dict[str, ServerConfig] = {}  # as stored: references, not values
        self._loaded = False

    # -- reading ---------------------------------------------------------------------------

    def load(self) -> McpLoadResult:
        """Read the file (a missing file is an empty config)."""
        self._loaded = True
        self.read_only = False
        self._doc, self._configs, self.skipped = {"mcpServers": {}}, {}, {}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return McpLoadResult()
        except OSError as exc:
            return self._set_aside(f"it could not be read ({_reason(exc)})")
        try:
            data = json.loads(raw.decode("utf-8-sig"))
        except UnicodeDecodeError:
            return self._set_aside("it is not text (UTF-8)")
        except json.JSONDecodeError as exc:
            return self._set_aside(f"it is not valid JSON (line {exc.lineno}: {exc.msg})")
        except (ValueError, RecursionError):
            return self._set_aside("it is not valid JSON")
        if not isinstance(data, dict):
            return self._set_aside("it does not hold a JSON object")
        servers = data.setdefault("mcpServers", {})
        if not isinstance(servers, dict):
            return self._set_aside("its mcpServers is not an object")
        self._doc = data
        self._configs, self.skipped = self._parse_all(servers)
        for name, why in self.skipped.items():
            log.warning("MCP server %s in %s is not used: %s", name, self.path, why)
        return McpLoadResult(skipped=dict(self.skipped))

    @staticmethod
    def _parse_all(
        servers: Mapping[str, Any],
    ) -> tuple[dict[str, ServerConfig], dict[str, str]]:
        configs: dict[str, ServerConfig] = {}
        skipped: dict[str, str] = {}
        for name, entry in servers.items():
            try:
                config, _ = parse_entry(name, entry)
            except EntryProblem as exc:
                skipped[name] = f"{exc}."
                continue
            errors = validate_server(config)
            if errors:
                skipped[name] = " ".join(errors)
                continue
            configs[name] = config
        return configs, skipped

    def _set_aside(self, reason: str) -> McpLoadResult:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        backup = self.path.with_name(f"{self.path.name}.bad-{stamp}")
        n = 1
        while backup.exists():
            n += 1
            backup = self.path.with_name(f"{self.path.name}.bad-{stamp}-{n}")
        try:
            os.rename(self.path, backup)
        except OSError as exc:
            self.read_only = True
            problem = (
                f"The MCP config file {self.path} cannot be used: {reason}. It could not be "
                f"moved aside either ({_reason(exc)}), so Corral starts no MCP servers and "
                "will not change the file until it is fixed or removed."
            )
            log.warning("%s", problem)
            return McpLoadResult(problem)
        problem = (
            f"The MCP config file could not be used: {reason}. It was kept as {backup} and "
            "Corral started with no MCP servers."
        )
        log.warning("%s", problem)
        return McpLoadResult(problem, backup)

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()

    def names(self) -> list[str]:
        """Every server name in the file, usable or not, in file order."""
        self._ensure_loaded()
        return list(self._doc["mcpServers"])

    def get(self, name: str) -> ServerConfig:
        """One server as stored, for editing: secret values are blank ("") and listed in
        ``secret_env`` / ``secret_headers``; placeholders are not expanded."""
        config = self._stored(name)
        env = {k: ("" if k in config.secret_env else v) for k, v in config.env.items()}
        headers = {k: ("" if k in config.secret_headers else v) for k, v in config.headers.items()}
        return dataclasses.replace(config, env=env, headers=headers)

    def _stored(self, name: str) -> ServerConfig:
        self._ensure_loaded()
        if name in self._configs:
            return self._configs[name]
        if name in self.skipped:
            raise McpConfigError(f"The MCP server {name} cannot be used: {self.skipped[name]}")
        raise McpConfigError(f"There is no MCP server named {name}.")

    def servers(
        self,
        environ: Mapping[str, str] | None = None,
        inputs: Mapping[str, str] | None = None,
    ) -> list[ServerConfig]:
        """Every usable server with its values resolved for the manager: secrets from the
        keyring, ``${env:X}`` / ``${X}`` from ``environ`` (this process's environment when
        None), ``${input:X}`` from ``inputs`` (left as written when not answered)."""
        self._ensure_loaded()
        env_source = os.environ if environ is None else environ
        cache: dict[str, str | None] = {}

        def secret(key: str) -> str | None:
            if key not in cache:
                cache[key] = self._secrets.get(key)
            return cache[key]

        def resolve(value: str) -> str:
            return expand(value, environ=env_source, inputs=inputs, secret=secret)

        out = []
        for config in self._configs.values():
            out.append(
                dataclasses.replace(
                    config,
                    command=resolve(config.command),
                    args=tuple(resolve(a) for a in config.args),
                    env={k: resolve(v) for k, v in config.env.items()},
                    cwd=resolve(config.cwd),
                    url=resolve(config.url),
                    headers={k: resolve(v) for k, v in config.headers.items()},
                )
            )
        return out

    def _values(self, config: ServerConfig) -> Iterable[tuple[str, str, str]]:
        """(where, name, value) for every value of ``config`` that may hold placeholders."""
        yield "command", "command", config.command
        for i, arg in enumerate(config.args):
            yield "args", str(i), arg
        for key, value in config.env.items():
            yield "env", key, value
        yield "cwd", "cwd", config.cwd
        yield "url", "url", config.url
        for key, value in config.headers.items():
            yield "header", key, value

    def missing_inputs(self, inputs: Mapping[str, str] | None = None) -> list[InputRequest]:
        """The ``${input:X}`` the user still has to answer (not in ``inputs``), once each;
        an input used in a secret place (a secret-looking env variable or header) is
        asked as a password."""
        self._ensure_loaded()
        answered = inputs or {}
        found: dict[str, InputRequest] = {}
        for config in self._configs.values():
            for where, key, value in self._values(config):
                for ph in placeholders(value):
                    if ph.kind != "input" or ph.name in answered:
                        continue
                    password = (where == "env" and looks_secret_env(key)) or (
                        where == "header" and needs_secret_header(key)
                    )
                    old = found.get(ph.name)
                    if old is None or (password and not old.password):
                        found[ph.name] = InputRequest(
                            ph.name, f"{ph.name} (for {config.name})", password=password
                        )
        return list(found.values())

    def missing_env(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """Environment variables the servers refer to that ``environ`` does not have (and
        that have no default)."""
        self._ensure_loaded()
        source = os.environ if environ is None else environ
        missing: list[str] = []
        for config in self._configs.values():
            for _, _, value in self._values(config):
                for ph in placeholders(value):
                    if (
                        ph.kind == "env"
                        and ph.default is None
                        and ph.name not in source
                        and ph.name not in missing
                    ):
                        missing.append(ph.name)
        return missing

    def missing_secrets(self) -> dict[str, tuple[str, ...]]:
        """Server -> names of its secret values the keyring does not have (lost, or no
        keyring); those servers start without them."""
        self._ensure_loaded()
        out: dict[str, tuple[str, ...]] = {}
        for config in self._configs.values():
            lost = []
            for where, key, value in self._values(config):
                if where not in ("env", "header"):
                    continue
                for ph in placeholders(value):
                    if ph.kind == "keyring" and self._secrets.get(ph.name) is None:
                        lost.append(key)
                        break
            if lost:
                out[config.name] = tuple(lost)
        return out

    # -- changing --------------------------------------------------------------------------

    def add(self, server: ServerConfig) -> None:
        """Add a new server (its name must not be taken)."""
        self.add_many([server])

    def replace(self, server: ServerConfig) -> None:
        """Replace the server of the same name. A secret value left blank ("") keeps the
        value already in the keyring."""
        self._stored_or_skipped(server.name)
        self.add_many([server], replace=[server.name])

    def add_many(self, servers: Sequence[ServerConfig], replace: Collection[str] = ()) -> None:
        """Add several servers in one step, all or none. Names in ``replace`` may already
        exist and are replaced; any other name already taken is refused."""
        self._ensure_loaded()
        self._check_writable()
        errors: list[str] = []
        seen: set[str] = set()
        taken = {n.casefold(): n for n in self._doc["mcpServers"]}
        replacing = set(replace)
        for server in servers:
            errors.extend(validate_server(server))
            folded = server.name.casefold()
            if folded in seen:
                errors.append(f"The name {server.name} is given twice.")
            seen.add(folded)
            if folded in taken and taken[folded] not in replacing:
                errors.append(f"There is already an MCP server named {taken[folded]}.")
        if errors:
            raise McpConfigError(" ".join(errors))
        doc = self._copy_doc()
        secret_sets: dict[str, str] = {}
        secret_deletes: set[str] = set()
        for server in servers:
            old_name = taken.get(server.name.casefold())
            old = self._configs.get(old_name) if old_name else None
            old_raw = doc["mcpServers"].get(old_name) if old_name else None
            if old_name is not None and old_name != server.name:
                del doc["mcpServers"][old_name]
            entry, sets = self._entry_for(server, old)
            if isinstance(old_raw, dict):  # keep what this module does not know about
                entry = {**{k: v for k, v in old_raw.items() if k not in _KNOWN_KEYS}, **entry}
            doc["mcpServers"][server.name] = entry
            secret_sets.update(sets)
            if old is not None:
                still = _refs(entry)
                secret_deletes |= {k for k in _refs(server_to_entry(old)) if k not in still}
        self._commit(doc, secret_sets, secret_deletes, [s.name for s in servers])

    def remove(self, name: str) -> None:
        """Remove a server, and its secrets from the keyring."""
        self._stored_or_skipped(name)
        self._check_writable()
        doc = self._copy_doc()
        entry = doc["mcpServers"].pop(name)
        self._commit(doc, {}, _refs(entry) if isinstance(entry, dict) else set(), [name])

    def rename(self, old: str, new: str) -> None:
        """Give a server another name (its secrets move with it)."""
        config = self._stored_or_skipped(old)
        self._check_writable()
        problem = name_problem(new)
        if problem:
            raise McpConfigError(problem)
        if new == old:
            return
        clash = next(
            (n for n in self._doc["mcpServers"] if n.casefold() == new.casefold() and n != old),
            None,
        )
        if clash is not None:
            raise McpConfigError(f"There is already an MCP server named {clash}.")
        if config is None:
            raise McpConfigError(f"The MCP server {old} cannot be renamed until it is fixed.")
        # the values move to keys under the new name
        moved: dict[str, str] = {}
        env: dict[str, str] = {}
        for key, value in config.env.items():
            env[key] = self._move_secret(old, new, "env", key, value, moved)
        headers: dict[str, str] = {}
        for key, value in config.headers.items():
            headers[key] = self._move_secret(old, new, "header", key, value, moved)
        renamed = dataclasses.replace(config, name=new, env=env, headers=headers)
        doc = self._copy_doc()
        servers: dict[str, Any] = {}
        for name, entry in doc["mcpServers"].items():
            if name == old:
                extra = {k: v for k, v in entry.items() if k not in _KNOWN_KEYS}
                servers[new] = {**extra, **server_to_entry(renamed)}
            else:
                servers[name] = entry
        doc["mcpServers"] = servers
        old_refs = _refs(server_to_entry(config))
        self._commit(doc, moved, old_refs - set(moved), [old, new])

    def _move_secret(
        self, old: str, new: str, where: str, key: str, value: str, moved: dict[str, str]
    ) -> str:
        ref = _only_keyring_ref(value)
        if ref is None or not ref.startswith(f"{KEYRING_PREFIX}/{old}/"):
            return value
        if not self._secrets.available:
            raise SecretNotStored(
                f"No OS keyring is available, so Corral cannot move the secret {key} of "
                f"{old} to its new name; nothing was changed."
            )
        secret = self._secrets.get(ref)
        if secret is None:
            return value  # already lost: keep the reference; missing_secrets() says so
        new_key = secret_key(new, where, key)
        moved[new_key] = secret
        return keyring_ref(new_key)

    def set_enabled(self, name: str, enabled: bool) -> None:
        config = self._stored_or_skipped(name)
        if config is None:
            raise McpConfigError(f"The MCP server {name} cannot be changed until it is fixed.")
        self._patch(name, lambda entry: _set_flag(entry, "disabled", not enabled))

    def set_auto_approve(self, name: str, tools: Iterable[str]) -> None:
        config = self._stored_or_skipped(name)
        if config is None:
            raise McpConfigError(f"The MCP server {name} cannot be changed until it is fixed.")
        names: list[str] = []
        for tool in tools:
            if not isinstance(tool, str) or not tool.strip():
                raise McpConfigError("A tool name in the auto-approve list is empty.")
            if tool not in names:
                names.append(tool)

        def patch(entry: dict[str, Any]) -> None:
            if names:
                entry["autoApprove"] = names
            else:
                entry.pop("autoApprove", None)

        self._patch(name, patch)

    def _patch(self, name: str, change: Callable[[dict[str, Any]], None]) -> None:
        self._check_writable()
        doc = self._copy_doc()
        change(doc["mcpServers"][name])
        self._commit(doc, {}, set(), [name])

    def _stored_or_skipped(self, name: str) -> ServerConfig | None:
        self._ensure_loaded()
        if name in self._configs:
            return self._configs[name]
        if name in self._doc["mcpServers"]:
            return None
        raise McpConfigError(f"There is no MCP server named {name}.")

    def _check_writable(self) -> None:
        if self.read_only:
            raise McpConfigError(
                f"The MCP config was not changed: {self.path} is unusable and was left "
                "untouched. Fix or remove it, then try again."
            )

    def _copy_doc(self) -> dict[str, Any]:
        copied: dict[str, Any] = json.loads(json.dumps(self._doc))
        return copied

    def _entry_for(
        self, server: ServerConfig, old: ServerConfig | None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The file entry for ``server`` and the secrets to put in the keyring."""
        sets: dict[str, str] = {}
        env: dict[str, str] = {}
        for key, value in server.env.items():
            secret = key in server.secret_env
            env[key] = self._secret_value(server, old, "env", key, value, secret, sets)
        headers: dict[str, str] = {}
        for key, value in server.headers.items():
            secret = key in server.secret_headers or needs_secret_header(key)
            headers[key] = self._secret_value(server, old, "header", key, value, secret, sets)
        stored = dataclasses.replace(server, env=env, headers=headers)
        return server_to_entry(stored), sets

    def _secret_value(
        self,
        server: ServerConfig,
        old: ServerConfig | None,
        where: str,
        key: str,
        value: str,
        secret: bool,
        sets: dict[str, str],
    ) -> str:
        if not secret or is_template(value):
            return value
        if value == "":
            if old is not None:  # blank: keep what is stored
                kept = (old.env if where == "env" else old.headers).get(key, "")
                if _only_keyring_ref(kept) is not None:
                    return kept
            return ""
        ref_key = secret_key(server.name, where, key)
        sets[ref_key] = value
        return keyring_ref(ref_key)

    def _commit(
        self,
        doc: dict[str, Any],
        secret_sets: Mapping[str, str],
        secret_deletes: Collection[str],
        names: Sequence[str],
    ) -> None:
        """Put the secrets in the keyring, write ``doc``, then forget stale secrets; undo
        the keyring part if anything fails."""
        who = ", ".join(dict.fromkeys(names))
        if secret_sets and not self._secrets.available:
            raise SecretNotStored(
                "No OS keyring is available, so Corral cannot keep the secret values of "
                f"{who} after it closes; nothing was saved. Use ${{env:NAME}} for those "
                "values, or set up a keyring."
            )
        previous: dict[str, str | None] = {}
        try:
            for key, value in secret_sets.items():
                previous[key] = self._secrets.get(key)
                self._secrets.set(key, value)
        except SecretNotStored as exc:
            self._restore(previous)
            raise SecretNotStored(f"{exc.message} Nothing was saved for {who}.") from exc
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        try:
            atomic_write_text(self.path, text)
        except OSError as exc:
            self._restore(previous)
            raise McpConfigError(
                f"The MCP config could not be saved to {self.path}: {_reason(exc)}."
            ) from exc
        for key in secret_deletes:
            if key not in secret_sets and key.startswith(KEYRING_PREFIX + "/"):
                self._secrets.delete(key)
        self._doc = doc
        self._configs, self.skipped = self._parse_all(doc["mcpServers"])

    def _restore(self, previous: Mapping[str, str | None]) -> None:
        for key, value in previous.items():
            with contextlib.suppress(SecretNotStored):
                if value is None:
                    self._secrets.delete(key)
                else:
                    self._secrets.set(key, value)

    # -- export ----------------------------------------------------------------------------

    def _export_values(
        self, config: ServerConfig, include_secrets: bool
    ) -> tuple[dict[str, str], dict[str, str], list[str]]:
        """env and headers of ``config`` for an export: secrets resolved when asked,
        else the names of the secrets left out."""
        left_out: list[str] = []

        def value(v: str, key: str) -> str:
            if not any(ph.kind == "keyring" for ph in placeholders(v)):
                return v
            if include_secrets:
                return expand(v, secret=self._secrets.get)
            left_out.append(key)
            return ""

        env = {k: value(v, k) for k, v in config.env.items()}
        headers = {k: value(v, k) for k, v in config.headers.items()}
        return env, headers, left_out

    def export_claude_desktop(self, include_secrets: bool = False) -> ExportResult:
        """The servers in Claude Desktop's ``claude_desktop_config.json`` shape. Remote
        servers go through ``npx mcp-remote`` (Claude Desktop's file has no remote
        servers); secrets are left blank unless ``include_secrets``."""
        self._ensure_loaded()
        servers: dict[str, Any] = {}
        warnings: list[str] = []
        for config in self._configs.values():
            env, headers, left_out = self._export_values(config, include_secrets)
            if config.transport is Transport.STDIO:
                entry: dict[str, Any] = {"command": config.command, "args": list(config.args)}
                if env:
                    entry["env"] = env
                if config.cwd:
                    warnings.append(
                        f"{config.name}: Claude Desktop has no working folder setting; "
                        f"{config.cwd} was left out."
                    )
            else:
                args = ["-y", "mcp-remote", config.url]
                bridge_env: dict[str, str] = {}
                for i, (key, val) in enumerate(headers.items()):
                    var = f"MCP_HEADER_{i + 1}"
                    args += ["--header", f"{key}:${{{var}}}"]
                    bridge_env[var] = val
                args += [
                    "--transport",
                    "sse-only" if config.transport is Transport.SSE else "http-only",
                ]
                entry = {"command": "npx", "args": args}
                if bridge_env:
                    entry["env"] = bridge_env
                warnings.append(
                    f"{config.name}: Claude Desktop reaches remote servers through "
                    "npx mcp-remote (Node.js is needed)."
                )
            if left_out:
                warnings.append(
                    f"{config.name}: the secret {', '.join(left_out)} was left blank; "
                    "fill it in after copying."
                )
            if not config.enabled:
                warnings.append(
                    f"{config.name} is disabled here; Claude Desktop has no such setting."
                )
            servers[config.name] = entry
        self._warn_placeholders(warnings, "Claude Desktop", allow_env=False)
        return ExportResult({"mcpServers": servers}, tuple(warnings))

    def export_vscode(self, include_secrets: bool = False) -> ExportResult:
        """The servers in VS Code's ``mcp.json`` shape (``servers`` + ``inputs``); each
        secret becomes a password input that VS Code asks for, unless
        ``include_secrets``."""
        self._ensure_loaded()
        servers: dict[str, Any] = {}
        inputs: list[dict[str, Any]] = []
        warnings: list[str] = []
        for config in self._configs.values():
            env, headers, left_out = self._export_values(config, include_secrets)
            for key in left_out:
                input_id = f"{config.name}-{key}".replace(" ", "-")
                ref = "${input:" + input_id + "}"
                original = config.env.get(key) if key in env else config.headers.get(key)
                if key in env:
                    env[key] = _swap_keyring(original or "", ref)
                else:
                    headers[key] = _swap_keyring(original or "", ref)
                inputs.append(
                    {
                        "type": "promptString",
                        "id": input_id,
                        "description": f"{key} for {config.name}",
                        "password": True,
                    }
                )
            if config.transport is Transport.STDIO:
                entry: dict[str, Any] = {
                    "type": "stdio",
                    "command": config.command,
                    "args": list(config.args),
                }
                if env:
                    entry["env"] = env
                if config.cwd:
                    entry["cwd"] = config.cwd
            else:
                entry = {"type": config.transport.value, "url": config.url}
                if headers:
                    entry["headers"] = headers
            if not config.enabled:
                warnings.append(
                    f"{config.name} is disabled here; VS Code's mcp.json has no such setting."
                )
            servers[config.name] = entry
        declared = {i["id"] for i in inputs}
        for ask in self.missing_inputs():
            if ask.id not in declared:
                inputs.append(
                    {
                        "type": "promptString",
                        "id": ask.id,
                        "description": ask.description,
                        "password": ask.password,
                    }
                )
        data: dict[str, Any] = {"servers": servers}
        if inputs:
            data = {"inputs": inputs, **data}
        return ExportResult(data, tuple(warnings))

    def _warn_placeholders(self, warnings: list[str], client: str, *, allow_env: bool) -> None:
        for config in self._configs.values():
            used = {
                ph.text
                for _, _, v in self._values(config)
                for ph in placeholders(v)
                if ph.kind in ("env", "input") and not (allow_env and ph.kind == "env")
            }
            if used:
                warnings.append(
                    f"{config.name}: {client} does not fill in {', '.join(sorted(used))}; "
                    "replace them after copying."
                )


def _swap_keyring(value: str, ref: str) -> str:
    if not _PLACEHOLDER.search(value):
        return ref
    return _PLACEHOLDER.sub(
        lambda m: ref if m.group(1).startswith("keyring:") else m.group(0), value
    )


def _refs(entry: Mapping[str, Any]) -> set[str]:
    """The keyring keys an entry refers to."""
    keys: set[str] = set()
    for section in ("env", "headers"):
        values = entry.get(section)
        if isinstance(values, dict):
            for value in values.values():
                if isinstance(value, str):
                    keys |= {ph.name for ph in placeholders(value) if ph.kind == "keyring"}
    return keys


def _set_flag(entry: dict[str, Any], key: str, value: bool) -> None:
    for alias in ("disabled", "enabled", "active"):
        entry.pop(alias, None)
    if value:
        entry[key] = True
