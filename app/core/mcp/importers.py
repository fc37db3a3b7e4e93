"""Other clients' MCP config files, read into :class:`ServerConfig` values.

Formats: Claude Desktop, Cursor, LM Studio and Windsurf (``mcpServers``; Windsurf's
``serverUrl``), VS Code (``servers`` + ``inputs``, also inside a user ``settings.json``
as ``mcp``), Zed (``context_servers``, including the older ``"source": "custom"`` and
``"command": {"path": ...}`` forms), Continue (YAML ``mcpServers:`` lists, one-server
block files from ``.continue/mcpServers/``, the old ``experimental`` JSON), Jan
(``mcp_config.json``, ``active``), AnythingLLM (``anythingllm_mcp_servers.json``,
``anythingllm.autoStart``), oterm (``config.json``, ``auth``) and any plain
``mcpServers`` file, Corral's own included.

Nothing here starts a server or reads anything but the file given; every problem comes
back as :class:`McpConfigError` with a message for the user, or as a warning on the
server it concerns.
"""

from __future__ import annotations

import enum
import json
import os
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from app.core.mcp.config import (
    EntryProblem,
    InputRequest,
    clean_name,
    is_template,
    looks_secret_env,
    name_problem,
    needs_secret_header,
    parse_entry,
    placeholders,
    unique_name,
    validate_server,
)
from app.core.mcp.types import McpConfigError, ServerConfig, Transport

__all__ = [
    "MAX_CONFIG_BYTES",
    "Answer",
    "ClientFormat",
    "FoundConfig",
    "ImportResult",
    "ImportedServer",
    "InputRequest",
    "detect_format",
    "fill_inputs",
    "find_client_configs",
    "import_server",
    "load_document",
    "looks_like_server",
    "parse_document",
    "parse_file",
    "parse_text",
    "read_config_file",
    "suggest_name",
]

MAX_CONFIG_BYTES = 1_000_000
MAX_SERVERS = 1000

Answer = str | list[str] | tuple[str, ...]


class ClientFormat(enum.StrEnum):
    """Whose config file a document is."""

    CORRAL = "corral"
    CLAUDE_DESKTOP = "claude-desktop"
    CURSOR = "cursor"
    LM_STUDIO = "lm-studio"
    WINDSURF = "windsurf"
    VSCODE = "vscode"
    ZED = "zed"
    CONTINUE = "continue"
    JAN = "jan"
    ANYTHINGLLM = "anythingllm"
    OTERM = "oterm"
    GENERIC = "mcp-servers"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    ClientFormat.CORRAL: "Corral",
    ClientFormat.CLAUDE_DESKTOP: "Claude Desktop",
    ClientFormat.CURSOR: "Cursor",
    ClientFormat.LM_STUDIO: "LM Studio",
    ClientFormat.WINDSURF: "Windsurf",
    ClientFormat.VSCODE: "VS Code",
    ClientFormat.ZED: "Zed",
    ClientFormat.CONTINUE: "Continue",
    ClientFormat.JAN: "Jan",
    ClientFormat.ANYTHINGLLM: "AnythingLLM",
    ClientFormat.OTERM: "oterm",
    ClientFormat.GENERIC: "MCP config",
}


@dataclass(frozen=True)
class ImportedServer:
    """One server read from another client's file.

    Attributes:
        config: the server (values as written: ``${input:X}`` and ``${env:X}`` kept;
            env variables that look secret are listed in ``secret_env``).
        warnings: what was left out or guessed, in plain words.
        inputs: what the user must answer before it can be added (``${input:X}``).
        source: where it came from, for the user ("Cursor, /home/u/.cursor/mcp.json").
        client: the format it was read as.
    """

    config: ServerConfig
    warnings: tuple[str, ...] = ()
    inputs: tuple[InputRequest, ...] = ()
    source: str = ""
    client: ClientFormat = ClientFormat.GENERIC


@dataclass(frozen=True)
class ImportResult:
    """Everything read from one document.

    Attributes:
        client: the format the document was read as.
        source: where it came from, for the user.
        servers: the servers that can be used.
        skipped: one sentence per entry that cannot be used (why).
    """

    client: ClientFormat
    source: str
    servers: tuple[ImportedServer, ...] = ()
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class FoundConfig:
    """Another client's config file found on this machine.

    Attributes:
        client: whose file it is. path: where it is. label: for the user.
    """

    client: ClientFormat
    path: Path
    label: str


# --- reading text -------------------------------------------------------------------------


def read_config_file(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """The text of a config file, refusing folders, huge files and binary content."""
    try:
        if path.is_dir():
            raise McpConfigError(f"{path} is a folder, not a config file.")
        size = path.stat().st_size
        if size > max_bytes:
            raise McpConfigError(
                f"{path.name} is {size / 1_000_000:.1f} MB; a config file is at most "
                f"{max_bytes / 1_000_000:g} MB, so this is not one."
            )
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise McpConfigError(f"{path} does not exist.") from exc
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else type(exc).__name__
        raise McpConfigError(f"{path} could not be read ({reason}).") from exc
    if len(raw) > max_bytes:
        raise McpConfigError(f"{path.name} is larger than {max_bytes / 1_000_000:g} MB.")
    return decode_text(raw, path.name)


def decode_text(raw: bytes, what: str) -> str:
    """``raw`` as text, or McpConfigError when it is binary or not UTF-8/UTF-16."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise McpConfigError(f"{what} is not readable text.") from exc
    if b"\0" in raw:
        raise McpConfigError(f"{what} is a binary file, not a config file.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise McpConfigError(f"{what} is not text (it is not UTF-8).") from exc


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors/aliases: a config file never needs them, and they let a
    small file stand for a huge one."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed", None)
        return super().compose_node(parent, index)


def strip_jsonc(text: str) -> str:
    """JSON with comments (``//``, ``/* */``) and trailing commas, as VS Code and Zed
    write it, turned into plain JSON. Strings are left alone."""
    return _drop_trailing_commas(_drop_comments(text))


def _string_end(text: str, i: int) -> int:
    """The index just past the JSON string that starts at ``i``."""
    j, n = i + 1, len(text)
    while j < n and text[j] != '"':
        j += 2 if text[j] == "\\" else 1
    return min(j + 1, n)


def _drop_comments(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = _string_end(text, i)
            out.append(text[i:j])
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _drop_trailing_commas(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = _string_end(text, i)
            out.append(text[i:j])
            i = j
            continue
        if c == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "]}":
                i += 1
                continue
        out.append(c)
        i += 1
    return "".join(out)


def load_document(text: str, filename: str = "") -> object:
    """Parse ``text`` as JSON, JSON with comments, or YAML (in that order)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise McpConfigError("The text is larger than 1 MB, so it is not a config file.")
    stripped = text.strip()
    if not stripped:
        raise McpConfigError(f"{filename or 'The text'} is empty.")
    looks_json = stripped[0] in "{[" or filename.lower().endswith((".json", ".jsonc"))
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError) as exc:
        json_error = exc
    try:
        return json.loads(strip_jsonc(stripped))
    except (ValueError, RecursionError):
        pass
    if looks_json:
        where = ""
        if isinstance(json_error, json.JSONDecodeError):
            where = f" (line {json_error.lineno}, column {json_error.colno}: {json_error.msg})"
        raise McpConfigError(f"{filename or 'The text'} is not valid JSON{where}.")
    try:
        return yaml.load(stripped, Loader=_NoAliasLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise McpConfigError(f"{filename or 'The text'} is neither JSON nor YAML{where}.") from exc
    except (ValueError, RecursionError, TypeError, OverflowError) as exc:
        raise McpConfigError(f"{filename or 'The text'} is neither JSON nor YAML.") from exc


# --- detecting the format -----------------------------------------------------------------

_OTERM_KEYS = ("splash-screen", "theme", "keymap", "openaiCompatible")
_CLAUDE_KEYS = ("globalShortcut", "preferences")
_MAPPING_FORMATS = {
    ClientFormat.CORRAL,
    ClientFormat.CLAUDE_DESKTOP,
    ClientFormat.CURSOR,
    ClientFormat.LM_STUDIO,
    ClientFormat.WINDSURF,
    ClientFormat.JAN,
    ClientFormat.ANYTHINGLLM,
    ClientFormat.OTERM,
    ClientFormat.GENERIC,
    ClientFormat.CONTINUE,
}


def _hint(filename: str) -> ClientFormat | None:
    """The format a file's path suggests."""
    p = filename.replace("\\", "/").lower()
    name = p.rsplit("/", 1)[-1]
    checks: list[tuple[bool, ClientFormat]] = [
        ("claude_desktop_config" in name, ClientFormat.CLAUDE_DESKTOP),
        ("anythingllm" in p, ClientFormat.ANYTHINGLLM),
        ("windsurf" in p or "/.codeium/" in p, ClientFormat.WINDSURF),
        ("/jan/" in p or p.startswith("jan/"), ClientFormat.JAN),
        ("/.cursor/" in p or p.startswith(".cursor/"), ClientFormat.CURSOR),
        ("/.lmstudio/" in p or "lm studio" in p or "lmstudio" in name, ClientFormat.LM_STUDIO),
        ("oterm" in p, ClientFormat.OTERM),
        ("/.continue/" in p or p.startswith(".continue/"), ClientFormat.CONTINUE),
        ("/zed/" in p or p.startswith("zed/"), ClientFormat.ZED),
        ("/.vscode/" in p or "/code/user/" in p or "code - insiders" in p, ClientFormat.VSCODE),
        ("/corral/" in p, ClientFormat.CORRAL),
    ]
    return next((fmt for hit, fmt in checks if hit), None)


def looks_like_server(obj: object) -> bool:
    """True for one server's object (``{"command": ...}`` or ``{"url": ...}``)."""
    if not isinstance(obj, dict):
        return False
    if isinstance(obj.get("command"), str | list | dict) and obj.get("command"):
        return True
    return any(isinstance(obj.get(k), str) and obj.get(k) for k in ("url", "serverUrl"))


def _is_bare_mapping(data: Mapping[str, Any]) -> bool:
    return bool(data) and all(looks_like_server(v) for v in data.values())


def detect_format(data: object, filename: str = "") -> ClientFormat:
    """Whose file ``data`` is, from its content, with the file name as a hint. Raises
    McpConfigError when it holds no MCP servers in any known shape."""
    if not isinstance(data, dict):
        if isinstance(data, list):
            raise McpConfigError("It is a list, not an MCP config (which is an object).")
        raise McpConfigError("It does not hold an MCP config.")
    hint = _hint(filename)
    if isinstance(data.get("context_servers"), dict):
        return ClientFormat.ZED
    if isinstance(data.get("servers"), dict) or (
        isinstance(data.get("mcp"), dict) and isinstance(data["mcp"].get("servers"), dict)
    ):
        return ClientFormat.VSCODE
    experimental = data.get("experimental")
    if isinstance(data.get("mcpServers"), list) or (
        isinstance(experimental, dict)
        and isinstance(experimental.get("modelContextProtocolServers"), list)
    ):
        return ClientFormat.CONTINUE
    if "name" in data and looks_like_server(data) and hint is ClientFormat.CONTINUE:
        return ClientFormat.CONTINUE
    servers = data.get("mcpServers")
    if isinstance(servers, dict):
        entries = [e for e in servers.values() if isinstance(e, dict)]
        if any("anythingllm" in e for e in entries):
            return ClientFormat.ANYTHINGLLM
        if "mcpSettings" in data or any(isinstance(e.get("active"), bool) for e in entries):
            return ClientFormat.JAN
        if any("serverUrl" in e for e in entries):
            return ClientFormat.WINDSURF
        if any(k in data for k in _OTERM_KEYS) or any(
            isinstance(e.get("auth"), dict) for e in entries
        ):
            return ClientFormat.OTERM
        if any(k in data for k in _CLAUDE_KEYS):
            return ClientFormat.CLAUDE_DESKTOP
        if hint in _MAPPING_FORMATS and hint is not None:
            return hint
        return ClientFormat.GENERIC
    if "mcpServers" in data:
        raise McpConfigError("Its mcpServers is neither an object nor a list.")
    if _is_bare_mapping(data):
        return ClientFormat.GENERIC
    if hint is ClientFormat.ZED:
        raise McpConfigError("This Zed settings file has no context_servers.")
    raise McpConfigError(
        "It holds no MCP servers: no mcpServers, servers or context_servers was found."
    )


# --- reading the servers ------------------------------------------------------------------


@dataclass
class _Raw:
    """One entry on its way to parse_entry."""

    name: str
    entry: object
    warnings: list[str]


def _walk_strings(value: Any, change: Any, depth: int = 0) -> Any:
    """``value`` with ``change`` applied to every string in it (a bounded depth)."""
    if depth > 8:
        return value
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_walk_strings(v, change, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _walk_strings(v, change, depth + 1) for k, v in value.items()}
    return value


_CONTINUE_TEMPLATE = re.compile(r"\$\{\{\s*(secrets|inputs)\.([A-Za-z0-9_.-]+)\s*\}\}")


def _continue_templates(text: str) -> str:
    """Continue's ``${{ secrets.X }}`` / ``${{ inputs.X }}`` as ``${input:X}``."""
    return _CONTINUE_TEMPLATE.sub(lambda m: "${input:" + m.group(2) + "}", text)


def _common_extras(entry: Mapping[str, Any], warnings: list[str]) -> None:
    env_file = entry.get("envFile")
    if env_file:
        warnings.append(
            f"Its envFile ({env_file}) is not read by Corral; add those variables to its "
            "environment by hand."
        )
    if entry.get("disabledTools"):
        warnings.append("Its list of disabled tools was not carried over.")
    if entry.get("sandboxEnabled") or entry.get("sandbox"):
        warnings.append("Its sandbox settings were not carried over.")


def _mapping_entries(servers: Mapping[str, Any], client: ClientFormat) -> Iterator[_Raw]:
    for name, entry in servers.items():
        warnings: list[str] = []
        if isinstance(entry, dict):
            _common_extras(entry, warnings)
            entry = dict(entry)
            if client is ClientFormat.ANYTHINGLLM:
                extra = entry.get("anythingllm")
                if isinstance(extra, dict) and extra.get("autoStart") is False:
                    entry["disabled"] = True
            auth = entry.get("auth")
            if isinstance(auth, dict):  # oterm
                token = auth.get("token")
                if str(auth.get("type", "")).lower() == "bearer" and isinstance(token, str):
                    headers = _as_dict(entry.get("headers"))
                    entry["headers"] = {**headers, "Authorization": f"Bearer {token}"}
                else:
                    warnings.append("Its auth setting is not a bearer token and was left out.")
            if client is ClientFormat.CONTINUE:
                entry = _walk_strings(entry, _continue_templates)
        yield _Raw(str(name), entry, warnings)


def _vscode_entries(data: Mapping[str, Any]) -> tuple[Iterator[_Raw], list[InputRequest]]:
    block = data if isinstance(data.get("servers"), dict) else data.get("mcp", {})
    inputs: list[InputRequest] = []
    raw_inputs = block.get("inputs", data.get("inputs", []))
    if isinstance(raw_inputs, list):
        for item in raw_inputs:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            options = item.get("options")
            choices = (
                tuple(str(o) for o in options if isinstance(o, str | int | float))
                if isinstance(options, list)
                else ()
            )
            default = item.get("default")
            inputs.append(
                InputRequest(
                    id=item["id"],
                    description=str(item.get("description") or item["id"]),
                    password=item.get("password") is True,
                    default=default if isinstance(default, str) else "",
                    choices=choices,
                )
            )

    def entries() -> Iterator[_Raw]:
        for name, entry in block["servers"].items():
            warnings: list[str] = []
            if isinstance(entry, dict):
                _common_extras(entry, warnings)
                if entry.get("dev"):
                    warnings.append("Its development settings (dev) were not carried over.")
            yield _Raw(str(name), entry, warnings)

    return entries(), inputs


def _zed_entries(servers: Mapping[str, Any]) -> Iterator[_Raw]:
    for name, raw in servers.items():
        warnings: list[str] = []
        if not isinstance(raw, dict):
            yield _Raw(str(name), raw, warnings)
            continue
        command = raw.get("command")
        if isinstance(command, dict):  # {"command": {"path": ..., "args": ..., "env": ...}}
            entry: dict[str, Any] = {
                "command": command.get("path", ""),
                "args": command.get("args"),
                "env": command.get("env"),
            }
        elif command or raw.get("url"):
            entry = {
                k: raw[k]
                for k in ("command", "args", "env", "url", "headers", "enabled")
                if k in raw
            }
        elif raw.get("source") == "extension" or "settings" in raw:
            yield _Raw(str(name), _EXTENSION, warnings)
            continue
        else:
            entry = dict(raw)
        if "enabled" in raw:
            entry["enabled"] = raw["enabled"]
        yield _Raw(str(name), entry, warnings)


_EXTENSION = object()  # a Zed extension's server: nothing Corral can start


def _continue_entries(data: Mapping[str, Any]) -> Iterator[_Raw]:
    items: list[Any] = []
    if isinstance(data.get("mcpServers"), list):
        items = data["mcpServers"]
    elif looks_like_server(data):
        items = [data]
    else:
        experimental = data.get("experimental")
        if isinstance(experimental, dict):
            for server in experimental.get("modelContextProtocolServers") or []:
                if isinstance(server, dict) and isinstance(server.get("transport"), dict):
                    items.append({**server["transport"], "name": server.get("name")})
                else:
                    items.append(server)
    for i, item in enumerate(items):
        warnings: list[str] = []
        if not isinstance(item, dict):
            yield _Raw(f"server {i + 1}", item, warnings)
            continue
        item = _walk_strings(item, _continue_templates)
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            name = suggest_name(item) or f"server {i + 1}"
        entry = {k: v for k, v in item.items() if k not in ("name", "requestOptions")}
        options = item.get("requestOptions")
        if isinstance(options, dict) and isinstance(options.get("headers"), dict):
            entry["headers"] = options["headers"]
        api_key = item.get("apiKey")
        if isinstance(api_key, str) and api_key:
            headers = _as_dict(entry.get("headers"))
            entry["headers"] = {"Authorization": f"Bearer {api_key}", **headers}
            entry.pop("apiKey", None)
        if entry.get("type") == "websocket":
            warnings.append("It is a WebSocket server.")
        _common_extras(entry, warnings)
        yield _Raw(name, entry, warnings)


def suggest_name(entry: Mapping[str, Any]) -> str:
    """A name for a server that has none: its package, script or host."""
    args = entry.get("args")
    candidates = [a for a in args if isinstance(a, str)] if isinstance(args, list) else []
    command = entry.get("command")
    for arg in candidates:
        if arg.startswith("-"):
            continue
        base = arg.rstrip("/").rsplit("/", 1)[-1].split("@")[0] if "/" in arg else arg
        base = re.sub(r"\.(py|js|mjs|ts)$", "", base)
        base = re.sub(r"^(mcp-server-|server-)", "", base)
        if base:
            return clean_name(base)
    if isinstance(command, str) and command.strip():
        return clean_name(Path(command.strip().split()[0]).stem)
    url = entry.get("url") or entry.get("serverUrl")
    if isinstance(url, str):
        host = re.sub(r"^[a-z]+://", "", url).split("/")[0].split(":")[0]
        return clean_name(host)
    return ""


def _input_requests(
    config: ServerConfig, declared: Mapping[str, InputRequest]
) -> tuple[InputRequest, ...]:
    found: dict[str, InputRequest] = {}
    values: list[tuple[str, str, str]] = [("command", "", config.command), ("cwd", "", config.cwd)]
    values += [("args", "", a) for a in config.args]
    values += [("env", k, v) for k, v in config.env.items()]
    values += [("url", "", config.url)]
    values += [("header", k, v) for k, v in config.headers.items()]
    for where, key, value in values:
        for ph in placeholders(value):
            if ph.kind != "input" or ph.name in found:
                continue
            if ph.name in declared:
                found[ph.name] = declared[ph.name]
                continue
            password = (where == "env" and looks_secret_env(key)) or (
                where == "header" and needs_secret_header(key)
            )
            found[ph.name] = InputRequest(ph.name, ph.name, password=password)
    return tuple(found.values())


def _editor_variables(config: ServerConfig) -> list[str]:
    values = [config.command, config.cwd, config.url, *config.args]
    values += [*config.env.values(), *config.headers.values()]
    return sorted({ph.text for v in values for ph in placeholders(v) if ph.kind == "other"})


def _finish(
    raw: _Raw,
    client: ClientFormat,
    source: str,
    declared: Mapping[str, InputRequest],
    taken: set[str],
) -> ImportedServer:
    """parse_entry plus the import's own checks; EntryProblem when unusable."""
    if raw.entry is _EXTENSION:
        raise EntryProblem(
            "it is provided by a Zed extension; install the server itself and add it by hand"
        )
    url_keys = ("url", "serverUrl") if client is not ClientFormat.VSCODE else ("url",)
    url_without_type = Transport.SSE if client is ClientFormat.ANYTHINGLLM else None
    config, warnings = parse_entry(
        raw.name, raw.entry, url_keys=url_keys, url_without_type=url_without_type
    )
    warnings = raw.warnings + warnings
    problem = name_problem(config.name)
    if problem or config.name.casefold() in taken:
        new = unique_name(
            clean_name(config.name, suggest_name(_as_dict(raw.entry)) or "server"), taken
        )
        if problem:
            warnings.append(f"{problem} It was named {new} instead.")
        else:
            warnings.append(f"The name {config.name} is used twice; this one is {new}.")
        config = replace(config, name=new)
    errors = validate_server(config)
    if errors:
        raise EntryProblem(" ".join(e.rstrip(".") for e in errors))
    secret_env = tuple(
        k
        for k, v in config.env.items()
        if k in config.secret_env or (looks_secret_env(k) and v and not is_template(v))
    )
    secret_headers = tuple(
        k
        for k, v in config.headers.items()
        if k in config.secret_headers or (needs_secret_header(k) and v and not is_template(v))
    )
    config = replace(config, secret_env=secret_env, secret_headers=secret_headers)
    for variable in _editor_variables(config):
        warnings.append(f"{variable} is filled in by the other client only; replace it by hand.")
    return ImportedServer(
        config=config,
        warnings=tuple(dict.fromkeys(warnings)),
        inputs=_input_requests(config, declared),
        source=source,
        client=client,
    )


def _as_dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_document(
    data: object,
    client: ClientFormat | None = None,
    *,
    filename: str = "",
    source: str = "",
) -> ImportResult:
    """The servers in a parsed document of ``client``'s format (detected when None)."""
    fmt = client or detect_format(data, filename)
    if not isinstance(data, dict):
        raise McpConfigError(f"It is not a {fmt.label} config file.")
    label = source or (f"{fmt.label}, {filename}" if filename else fmt.label)
    declared: dict[str, InputRequest] = {}
    raws: Iterator[_Raw]
    if fmt is ClientFormat.VSCODE:
        if not (
            isinstance(data.get("servers"), dict)
            or (isinstance(data.get("mcp"), dict) and isinstance(data["mcp"].get("servers"), dict))
        ):
            raise McpConfigError("It has no VS Code servers section.")
        raws, inputs = _vscode_entries(data)
        declared = {i.id: i for i in inputs}
    elif fmt is ClientFormat.ZED:
        if not isinstance(data.get("context_servers"), dict):
            raise McpConfigError("It has no Zed context_servers section.")
        raws = _zed_entries(data["context_servers"])
    elif fmt is ClientFormat.CONTINUE and not isinstance(data.get("mcpServers"), dict):
        raws = _continue_entries(data)
    else:
        servers = data.get("mcpServers")
        if servers is None and _is_bare_mapping(data):
            servers = data
        if not isinstance(servers, dict):
            raise McpConfigError(f"It has no mcpServers section, so it is not a {fmt.label} file.")
        raws = _mapping_entries(servers, fmt)
    imported: list[ImportedServer] = []
    skipped: list[str] = []
    taken: set[str] = set()
    for count, raw in enumerate(raws):
        if count >= MAX_SERVERS:
            skipped.append(f"Only the first {MAX_SERVERS} servers were read.")
            break
        try:
            server = _finish(raw, fmt, label, declared, taken)
        except EntryProblem as exc:
            skipped.append(f"{clean_name(raw.name)} was left out: {exc}.")
            continue
        taken.add(server.config.name.casefold())
        imported.append(server)
    return ImportResult(fmt, label, tuple(imported), tuple(skipped))


def import_server(
    name: str,
    entry: object,
    client: ClientFormat = ClientFormat.GENERIC,
    source: str = "",
    taken: Collection[str] = (),
) -> ImportedServer:
    """One server entry of the common shape (a pasted object, a guessed command) read the
    way a file's entries are. Raises McpConfigError saying why it cannot be used."""
    raw = _Raw(name, entry, [])
    if isinstance(entry, dict):
        _common_extras(entry, raw.warnings)
    try:
        return _finish(raw, client, source or client.label, {}, {t.casefold() for t in taken})
    except EntryProblem as exc:
        raise McpConfigError(f"{clean_name(name)} cannot be used: {exc}.") from exc


def parse_text(
    text: str, filename: str = "", client: ClientFormat | None = None, source: str = ""
) -> ImportResult:
    """The servers in a config file's text (JSON, JSON with comments or YAML)."""
    data = load_document(text, filename)
    return parse_document(data, client, filename=filename, source=source)


def parse_file(path: Path, client: ClientFormat | None = None) -> ImportResult:
    """The servers in a config file (at most 1 MB)."""
    text = read_config_file(path)
    return parse_text(text, str(path), client)


# --- inputs -------------------------------------------------------------------------------


def fill_inputs(
    server: ServerConfig,
    requests: Sequence[InputRequest],
    answers: Mapping[str, Answer],
) -> ServerConfig:
    """``server`` with each ``${input:X}`` replaced by its answer (or its default).

    An argument that is exactly one placeholder answered with several values (a list, or
    for a ``multiple`` input one text with a value per line or separated like PATH)
    becomes several arguments. Values filled from a password input become secret (they go to the
    keyring when saved). Raises McpConfigError naming what is still unanswered.
    """
    values: dict[str, list[str]] = {}
    missing: list[str] = []
    by_id = {r.id: r for r in requests}
    ids = {ph.name for v in _all_values(server) for ph in placeholders(v) if ph.kind == "input"}
    for input_id in ids:
        request = by_id.get(input_id, InputRequest(input_id, input_id))
        answer = answers.get(input_id)
        if isinstance(answer, str):
            items = _split_multiple(answer) if request.multiple else [answer]
        else:
            items = list(answer or [])
        items = [a for a in items if isinstance(a, str) and a != ""]
        if not items and request.default:
            items = _split_multiple(request.default) if request.multiple else [request.default]
        if not items and request.required:
            missing.append(request.description or request.id)
            continue
        values[input_id] = items
    if missing:
        raise McpConfigError(f"{server.name} needs an answer for: {', '.join(sorted(missing))}.")
    secret_ids = {i for i in ids if by_id.get(i, InputRequest(i)).password}

    def fill(text: str) -> str:
        def sub(match: re.Match[str]) -> str:
            inner = match.group(1)
            if inner.startswith("input:") and inner[6:] in values:
                return ",".join(values[inner[6:]])
            return match.group(0)

        return re.sub(r"\$\{([^{}]*)\}", sub, text)

    args: list[str] = []
    for arg in server.args:
        whole = placeholders(arg)
        if len(whole) == 1 and whole[0].text == arg and whole[0].kind == "input":
            args.extend(values.get(whole[0].name, [arg]))
        else:
            args.append(fill(arg))

    def uses_secret(text: str) -> bool:
        return any(ph.kind == "input" and ph.name in secret_ids for ph in placeholders(text))

    return replace(
        server,
        command=fill(server.command),
        args=tuple(args),
        env={k: fill(v) for k, v in server.env.items()},
        cwd=fill(server.cwd),
        url=fill(server.url),
        headers={k: fill(v) for k, v in server.headers.items()},
        secret_env=tuple(
            dict.fromkeys(
                [*server.secret_env, *(k for k, v in server.env.items() if uses_secret(v))]
            )
        ),
        secret_headers=tuple(
            dict.fromkeys(
                [*server.secret_headers, *(k for k, v in server.headers.items() if uses_secret(v))]
            )
        ),
    )


def _split_multiple(text: str) -> list[str]:
    """Several answers given as one text: one per line, or separated like PATH."""
    parts = [p for line in text.splitlines() for p in line.split(os.pathsep)]
    return [p.strip() for p in parts if p.strip()]


def _all_values(server: ServerConfig) -> list[str]:
    return [
        server.command,
        server.cwd,
        server.url,
        *server.args,
        *server.env.values(),
        *server.headers.values(),
    ]


# --- finding other clients' files ---------------------------------------------------------


def find_client_configs(
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
    platform: str | None = None,
) -> list[FoundConfig]:
    """The other clients' MCP config files that exist on this machine.

    ``home``, ``env`` and ``platform`` (``linux``, ``darwin``, ``win32``, as
    ``sys.platform``) default to this machine's; tests pass a fake home.
    """
    import sys

    home = home if home is not None else Path.home()
    env = env if env is not None else os.environ
    platform = platform or sys.platform
    candidates: list[tuple[ClientFormat, Path]] = []

    def add(client: ClientFormat, *paths: Path) -> None:
        candidates.extend((client, p) for p in paths)

    if platform == "darwin":
        support = home / "Library" / "Application Support"
        config_dir, data_dir = support, support
    elif platform.startswith("win"):
        config_dir = Path(env["APPDATA"]) if env.get("APPDATA") else home / "AppData" / "Roaming"
        data_dir = config_dir
    else:
        config_dir = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        data_dir = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")

    add(ClientFormat.CLAUDE_DESKTOP, config_dir / "Claude" / "claude_desktop_config.json")
    add(ClientFormat.CURSOR, home / ".cursor" / "mcp.json")
    add(ClientFormat.WINDSURF, home / ".codeium" / "windsurf" / "mcp_config.json")
    for flavour in ("Code", "Code - Insiders", "VSCodium"):
        add(ClientFormat.VSCODE, config_dir / flavour / "User" / "mcp.json")
    if platform.startswith("win"):
        add(ClientFormat.ZED, config_dir / "Zed" / "settings.json")
    else:
        zed_dir = Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "zed"
        add(ClientFormat.ZED, zed_dir / "settings.json")
    add(ClientFormat.CONTINUE, home / ".continue" / "config.yaml")
    blocks = home / ".continue" / "mcpServers"
    try:
        block_files = sorted(
            p for p in blocks.iterdir() if p.suffix.lower() in (".yaml", ".yml", ".json")
        )
    except OSError:
        block_files = []
    add(ClientFormat.CONTINUE, *block_files)
    add(ClientFormat.LM_STUDIO, home / ".lmstudio" / "mcp.json")
    add(ClientFormat.JAN, config_dir / "Jan" / "data" / "mcp_config.json")
    if not platform.startswith("win") and platform != "darwin":
        add(ClientFormat.JAN, data_dir / "Jan" / "data" / "mcp_config.json")
    add(
        ClientFormat.ANYTHINGLLM,
        config_dir / "anythingllm-desktop" / "storage" / "plugins" / "anythingllm_mcp_servers.json",
    )
    oterm_dir = Path(env["OTERM_DATA_DIR"]) if env.get("OTERM_DATA_DIR") else data_dir / "oterm"
    add(ClientFormat.OTERM, oterm_dir / "config.json")

    found: list[FoundConfig] = []
    seen: set[Path] = set()
    for client, path in candidates:
        try:
            exists = path.is_file()
        except OSError:
            exists = False
        if exists and path not in seen:
            seen.add(path)
            found.append(FoundConfig(client, path, f"{client.label}: {path}"))
    return found
