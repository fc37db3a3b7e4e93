"""What the user drops or pastes onto the MCP panel, turned into servers to add.

:func:`classify_drop` looks at local paths and/or text and returns a :class:`DropPreview`:
the servers it would add, their name conflicts with the existing config (with a free
name to suggest), warnings, what must be asked (inputs, a name, a confirmation of a
guessed command) and what could not be used. It changes nothing and never raises: bad
input (broken JSON, an unknown shape, a binary or huge file, a zip bomb or a path that
escapes a bundle) comes back as a preview with an error and no servers.

:func:`apply_preview` then adds the chosen servers in one step, all or nothing, unpacking
``.mcpb`` bundles first.

Understood: config files of every format :mod:`app.core.mcp.importers` reads; JSON or
YAML snippets (a whole file, a bare ``mcpServers`` mapping, one server object); an
http(s) URL (a remote server whose transport the manager detects); a command line such
as ``npx -y pkg``; a ``.py`` server script; a folder with ``package.json`` or
``pyproject.toml``; a folder holding MCP config files; an ``.mcpb`` (or ``.dxt``) bundle.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import re
import shutil
import stat
import sys
import tempfile
import tomllib
import zipfile
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from app.core.mcp.config import (
    InputRequest,
    McpConfigStore,
    clean_name,
    split_command,
    unique_name,
)
from app.core.mcp.importers import (
    MAX_CONFIG_BYTES,
    Answer,
    ClientFormat,
    ImportedServer,
    decode_text,
    fill_inputs,
    import_server,
    load_document,
    looks_like_server,
    parse_document,
    read_config_file,
    suggest_name,
)
from app.core.mcp.types import McpConfigError, ServerConfig, Transport

MAX_BUNDLE_BYTES = 512 * 1024 * 1024  # the archive itself
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024  # everything in it, unpacked
MAX_BUNDLE_MEMBERS = 20_000
MAX_RATIO = 200  # uncompressed / compressed for one member larger than 1 MB
# what a damaged or hostile archive raises while it is read
_ZIP_ERRORS = (
    OSError,
    EOFError,
    RuntimeError,
    ValueError,
    NotImplementedError,
    zipfile.BadZipFile,
    zlib.error,
)

_LAUNCHERS = frozenset(
    {"npx", "uvx", "uv", "node", "python", "python3", "py", "docker", "deno", "bunx", "bun",
     "pipx", "podman"}
)  # fmt: skip
_CONFIG_NAMES = (
    ".vscode/mcp.json",
    ".cursor/mcp.json",
    ".mcp.json",
    "mcp.json",
    "mcp_config.json",
    ".continue/config.yaml",
)


class DropKind(enum.StrEnum):
    """What a dropped or pasted thing turned out to be."""

    CONFIG_FILE = "config-file"
    SNIPPET = "snippet"
    SERVER_OBJECT = "server-object"
    URL = "url"
    COMMAND = "command"
    PYTHON_SCRIPT = "python-script"
    NODE_PACKAGE = "node-package"
    PYTHON_PACKAGE = "python-package"
    BUNDLE = "bundle"


@dataclass(frozen=True)
class BundlePlan:
    """Where an ``.mcpb`` bundle will be unpacked when the preview is applied.

    Attributes:
        archive: the bundle file. target: the folder it is unpacked into (must not exist).
    """

    archive: Path
    target: Path


@dataclass(frozen=True)
class DropItem:
    """One server a drop would add.

    Attributes:
        key: identifies the item in :func:`apply_preview`'s choices (its name, made unique
            within the preview).
        kind: what it came from.
        config: the server as it would be saved (``${input:X}`` not yet answered).
        source: where it came from, for the user.
        transport: its transport, or None when the manager still has to detect it (a bare
            URL; ``config.transport`` then holds the first guess).
        warnings: what was guessed or left out, in plain words.
        errors: why it cannot be added as it is (apply refuses it unless skipped).
        inputs: what to ask the user before adding it.
        needs_name: True when the drop gave no name; ``config.name`` is a suggestion.
        confirm: True when the command was guessed and the user should confirm it.
        conflict: the existing server its name clashes with ("" when none).
        suggested_name: a free name (``config.name`` when there is no conflict).
        bundle: for a bundle, where it will be unpacked.
    """

    key: str
    kind: DropKind
    config: ServerConfig
    source: str
    transport: Transport | None
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    inputs: tuple[InputRequest, ...] = ()
    needs_name: bool = False
    confirm: bool = False
    conflict: str = ""
    suggested_name: str = ""
    bundle: BundlePlan | None = None

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True)
class DropPreview:
    """What a drop would do.

    Attributes:
        items: the servers it would add.
        errors: what could not be used, one sentence each (nothing of it is added).
        warnings: notes about the drop as a whole.
    """

    items: tuple[DropItem, ...] = ()
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def conflicts(self) -> tuple[DropItem, ...]:
        return tuple(i for i in self.items if i.conflict)

    @property
    def inputs(self) -> tuple[InputRequest, ...]:
        """Every input to ask, once each (the same id is the same answer)."""
        found: dict[str, InputRequest] = {}
        for item in self.items:
            for request in item.inputs:
                found.setdefault(request.id, request)
        return tuple(found.values())

    @property
    def ok(self) -> bool:
        """True when there is something to add."""
        return bool(self.items)


class ChoiceAction(enum.StrEnum):
    ADD = "add"
    RENAME = "rename"
    REPLACE = "replace"
    SKIP = "skip"


@dataclass(frozen=True)
class Choice:
    """What to do with one item: add it (under its suggested name if its own is taken),
    add it under another name, replace the existing server of that name, or skip it."""

    action: ChoiceAction = ChoiceAction.ADD
    name: str = ""

    @classmethod
    def rename(cls, name: str) -> Choice:
        return cls(ChoiceAction.RENAME, name)

    @classmethod
    def skip(cls) -> Choice:
        return cls(ChoiceAction.SKIP)

    @classmethod
    def replace(cls) -> Choice:
        return cls(ChoiceAction.REPLACE)


# --- classifying --------------------------------------------------------------------------


@dataclass
class _Context:
    existing: Collection[str]
    bundle_dir: Path | None
    python: str
    home: Path
    platform: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    targets: set[Path] = field(default_factory=set)  # bundle folders planned by this drop


@dataclass
class _Found:
    kind: DropKind
    server: ImportedServer
    transport: Transport | None = None
    needs_name: bool = False
    confirm: bool = False
    bundle: BundlePlan | None = None
    extra_warnings: tuple[str, ...] = ()


def classify_drop(
    paths: Sequence[str | Path] = (),
    text: str | None = None,
    *,
    existing: Collection[str] = (),
    bundle_dir: Path | None = None,
    python: str | None = None,
    home: Path | None = None,
    platform: str | None = None,
) -> DropPreview:
    """What dropping ``paths`` and/or pasting ``text`` would add.

    ``existing`` are the names already configured; ``bundle_dir`` is where ``.mcpb``
    bundles are unpacked (each in its own folder); ``python`` is the interpreter for
    Python scripts (this one by default); ``home`` and ``platform`` default to this
    machine's (used for bundle variables and folder layouts).
    """
    ctx = _Context(
        existing=existing,
        bundle_dir=bundle_dir,
        python=python or sys.executable,
        home=home if home is not None else Path.home(),
        platform=platform or sys.platform,
    )
    found: list[_Found] = []
    all_paths = [Path(p) for p in paths if str(p).strip()]
    if len(all_paths) < len(paths):
        ctx.errors.append("An empty path was dropped; it was left out.")
    if text is not None and text.strip():
        uris = _file_uris(text) or _pasted_path(text)
        if uris:
            all_paths.extend(uris)
        else:
            found += _guard(ctx, "The pasted text", functools.partial(_classify_text, text, ctx))
    for path in all_paths:
        found += _guard(ctx, str(path), functools.partial(_classify_path, path, ctx))
    if not found and not ctx.errors:
        ctx.errors.append("Nothing was dropped or pasted that could be read.")
    return DropPreview(_items(found, ctx), tuple(ctx.errors), tuple(dict.fromkeys(ctx.warnings)))


def _guard(ctx: _Context, what: str, work: Callable[[], list[_Found]]) -> list[_Found]:
    """What ``work`` found; its failure noted in ``ctx.errors`` (nothing found then)."""
    try:
        return work()
    except McpConfigError as exc:
        ctx.errors.append(exc.message or f"{what} could not be used.")
    except RecursionError:
        ctx.errors.append(f"{what} is nested too deeply to be a config.")
    except OSError as exc:  # a file the system refuses to read (no access, gone meanwhile)
        ctx.errors.append(f"{what} could not be read ({_reason(exc)}).")
    return []


def _items(found: list[_Found], ctx: _Context) -> tuple[DropItem, ...]:
    taken = list(ctx.existing)
    existing = {n.casefold(): n for n in ctx.existing}
    keys: set[str] = set()
    out: list[DropItem] = []
    for f in found:
        config = f.server.config
        conflict = existing.get(config.name.casefold(), "")
        if not conflict and any(t.casefold() == config.name.casefold() for t in taken):
            conflict = config.name  # another item of this drop has it
        suggested = unique_name(config.name, taken) if conflict else config.name
        taken.append(suggested)
        key = unique_name(config.name, keys)
        keys.add(key)
        out.append(
            DropItem(
                key=key,
                kind=f.kind,
                config=config,
                source=f.server.source,
                transport=f.transport,
                warnings=tuple(dict.fromkeys((*f.extra_warnings, *f.server.warnings))),
                inputs=f.server.inputs,
                needs_name=f.needs_name,
                confirm=f.confirm,
                conflict=conflict,
                suggested_name=suggested,
                bundle=f.bundle,
            )
        )
    return tuple(out)


def _file_uris(text: str) -> list[Path]:
    """Paths from a ``text/uri-list`` (what file managers give as text)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("#")]
    if not lines or not all(ln.lower().startswith("file://") for ln in lines):
        return []
    out = []
    for line in lines:
        parts = urlsplit(line)
        path = unquote(parts.path)
        if re.match(r"^/[A-Za-z]:/", path):  # file:///C:/x on Windows
            path = path[1:]
        out.append(Path(path))
    return out


def _pasted_path(text: str) -> list[Path]:
    """A pasted local path ("/home/u/server.py", "~/mcp.json", "C:\\x\\y.mcpb") that exists."""
    line = text.strip().strip('"').strip("'")
    if "\n" in line or len(line) > 4096 or not re.match(r"^(/|~|[A-Za-z]:[\\/]|\\\\)", line):
        return []
    try:
        path = Path(line).expanduser()
        return [path] if path.exists() else []
    except (OSError, ValueError, RuntimeError):
        return []


def _classify_text(text: str, ctx: _Context) -> list[_Found]:
    if len(text) > MAX_CONFIG_BYTES:
        raise McpConfigError("The pasted text is larger than 1 MB, so it is not a config.")
    if "\0" in text:
        raise McpConfigError("The pasted text holds binary data, not a config.")
    stripped = text.strip()
    if "\n" not in stripped and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$", stripped):
        return [_url_item(stripped, "pasted address")]
    first = stripped.split(maxsplit=1)[0] if stripped else ""
    if "\n" not in stripped and _is_launcher(first):
        return [_command_item(stripped)]
    data = load_document(stripped, "The pasted text")
    if isinstance(data, str | int | float | bool) or data is None:
        raise McpConfigError(
            "The pasted text is not an address, a command or an MCP config (JSON or YAML)."
        )
    return _from_data(data, "pasted text", "", DropKind.SNIPPET, ctx)


def _is_launcher(word: str) -> bool:
    base = word.replace("\\", "/").rsplit("/", 1)[-1].lower()
    base = re.sub(r"\.(exe|cmd|bat)$", "", base)
    return base in _LAUNCHERS or re.fullmatch(r"python3(\.\d+)?", base) is not None


def _url_item(url: str, source: str) -> _Found:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise McpConfigError(f"{url} is not a valid address ({exc}).") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise McpConfigError(
            f"{url} is not an http:// or https:// address; Corral can add remote servers "
            "at web addresses only."
        )
    name = _name_for_host(parts.hostname or "", port)
    first_guess = Transport.SSE if parts.path.rstrip("/").lower().endswith("/sse") else None
    server = import_server(
        name, {"url": url, **({"type": "sse"} if first_guess else {})}, source=source
    )
    return _Found(
        DropKind.URL,
        server,
        transport=None,
        needs_name=True,
        extra_warnings=("Corral will find out whether it speaks streamable HTTP or SSE.",),
    )


def _name_for_host(host: str, port: int | None) -> str:
    """The name for a host: context7 for mcp.context7.com, localhost-8931 for localhost:8931."""
    if not host or host == "localhost" or re.fullmatch(r"[\d.]+|\[?[0-9a-fA-F:]+\]?", host):
        return clean_name(f"{host or 'server'}-{port}" if port else host or "server")
    labels = [x for x in host.lower().split(".") if x]
    while len(labels) > 2 and labels[0] in ("www", "mcp", "api", "server", "app"):
        labels.pop(0)
    if len(labels) > 1 and labels[0] in ("www", "mcp", "api"):
        labels.pop(0)
    return clean_name(labels[0] if labels else host)


def _command_item(line: str) -> _Found:
    parts = split_command(line)
    entry = {"command": parts[0], "args": parts[1:]}
    name = _name_for(entry)
    server = import_server(name, entry, source="pasted command")
    return _Found(DropKind.COMMAND, server, Transport.STDIO, needs_name=True, confirm=True)


def _name_for(entry: Mapping[str, Any]) -> str:
    return _short(suggest_name(entry) or "server")


def _short(name: str) -> str:
    """A friendlier name: no scope, no mcp/server prefixes or suffixes."""
    base = name.rsplit("/", 1)[-1]
    base = re.sub(r"(?i)^(mcp[-_]server[-_]|server[-_]|mcp[-_])", "", base)
    base = re.sub(r"(?i)([-_]mcp[-_]server|[-_]server|[-_]mcp)$", "", base)
    return clean_name(base or name)


def _from_data(
    data: object, source: str, filename: str, kind: DropKind, ctx: _Context
) -> list[_Found]:
    if isinstance(data, list) and data and all(looks_like_server(d) for d in data):
        data = {"mcpServers": data}  # a YAML list of servers, as in Continue's config
    if isinstance(data, dict) and looks_like_server(data) and not _is_container(data):
        raw_name = data.get("name")
        named = isinstance(raw_name, str) and bool(raw_name.strip())
        entry = {k: v for k, v in data.items() if k != "name"}
        name = clean_name(raw_name) if isinstance(raw_name, str) and named else _name_for(entry)
        server = import_server(name, entry, source=source)
        return [
            _Found(
                DropKind.SERVER_OBJECT,
                server,
                server.config.transport,
                needs_name=not named,
            )
        ]
    result = parse_document(data, None, filename=filename, source=source)
    for skipped in result.skipped:
        ctx.errors.append(f"{result.source}: {skipped}")
    if not result.servers and not result.skipped:
        ctx.warnings.append(f"{result.source} holds no MCP servers.")
    return [_Found(kind, s, s.config.transport) for s in result.servers]


def _is_container(data: Mapping[str, Any]) -> bool:
    return any(k in data for k in ("mcpServers", "servers", "context_servers"))


def _classify_path(path: Path, ctx: _Context) -> list[_Found]:
    try:
        path = path.expanduser().resolve()
        exists, is_dir = path.exists(), path.is_dir()
    except RuntimeError as exc:  # a loop of symbolic links
        raise McpConfigError(f"{path} could not be followed ({exc}).") from exc
    except ValueError as exc:  # a NUL byte, a name the system cannot encode
        raise McpConfigError(f"{str(path)!r} is not a valid path.") from exc
    except OSError as exc:
        raise McpConfigError(f"{path} could not be read ({_reason(exc)}).") from exc
    if not exists:
        raise McpConfigError(f"{path} does not exist.")
    if is_dir:
        return _classify_folder(path, ctx)
    suffix = path.suffix.lower()
    if suffix in (".mcpb", ".dxt"):
        return [_classify_bundle(path, ctx)]
    if suffix == ".py":
        return [_classify_script(path, ctx)]
    if path.name == "package.json":
        return [_node_package(path.parent)]
    if path.name == "pyproject.toml":
        return [_python_package(path.parent, ctx)]
    if suffix == ".zip" or _is_zip(path):
        raise McpConfigError(
            f"{path.name} is an archive; Corral installs .mcpb bundles, not other archives."
        )
    text = read_config_file(path)
    data = load_document(text, str(path))
    return _from_data(data, f"{path}", str(path), DropKind.CONFIG_FILE, ctx)


def _is_zip(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _reason(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else type(exc).__name__


def _classify_folder(folder: Path, ctx: _Context) -> list[_Found]:
    if (folder / "manifest.json").is_file() and (folder / "server").is_dir():
        ctx.warnings.append(
            f"{folder} looks like an unpacked bundle; drop the .mcpb file to install it."
        )
    if (folder / "package.json").is_file():
        return [_node_package(folder)]
    if (folder / "pyproject.toml").is_file():
        return [_python_package(folder, ctx)]
    found: list[_Found] = []
    candidates = [folder / name for name in _CONFIG_NAMES]
    with contextlib.suppress(OSError):
        blocks = folder / ".continue" / "mcpServers"
        if blocks.is_dir():
            candidates += sorted(blocks.iterdir())[:50]
    for candidate in candidates:
        if candidate.is_file():
            text = read_config_file(candidate)
            data = load_document(text, str(candidate))
            found += _from_data(data, str(candidate), str(candidate), DropKind.CONFIG_FILE, ctx)
    if not found:
        raise McpConfigError(
            f"{folder} holds no package.json, pyproject.toml or MCP config file, so Corral "
            "does not know how to start a server from it."
        )
    return found


# --- scripts and packages -----------------------------------------------------------------

_MCP_IMPORT = re.compile(r"^\s*(from|import)\s+(mcp|fastmcp)\b", re.MULTILINE)


def _venv_python(start: Path, platform: str) -> Path | None:
    """The interpreter of a virtual environment in or above ``start`` (3 levels)."""
    rel = ("Scripts", "python.exe") if platform.startswith("win") else ("bin", "python")
    for folder in [start, *list(start.parents)[:3]]:
        for venv in (".venv", "venv"):
            candidate = folder.joinpath(venv, *rel)
            with contextlib.suppress(OSError):
                if candidate.is_file():
                    return candidate
    return None


def _classify_script(path: Path, ctx: _Context) -> _Found:
    text = read_config_file(path)
    script = path.resolve()
    warnings: list[str] = []
    venv = _venv_python(script.parent, ctx.platform)
    if re.search(r"^# /// script\s*$", text, re.MULTILINE):
        command, args = "uv", ["run", "--script", str(script)]
        warnings.append("The script declares its own dependencies, so it runs with uv run.")
    elif venv is not None:
        command, args = str(venv), [str(script)]
        warnings.append(f"It runs with the Python of the virtual environment {venv.parents[1]}.")
    else:
        command, args = ctx.python, [str(script)]
        warnings.append(
            f"It runs with {ctx.python}; if it needs another environment, change the command."
        )
    if not _MCP_IMPORT.search(text):
        warnings.append("It does not import mcp or fastmcp; it may not be an MCP server.")
    entry = {"command": command, "args": args, "cwd": str(script.parent)}
    server = import_server(_short(path.stem), entry, source=str(path))
    return _Found(
        DropKind.PYTHON_SCRIPT,
        server,
        Transport.STDIO,
        confirm=True,
        extra_warnings=tuple(warnings),
    )


def _read_json_file(path: Path) -> dict[str, Any]:
    data = load_document(read_config_file(path), str(path))
    if not isinstance(data, dict):
        raise McpConfigError(f"{path} does not hold a JSON object.")
    return data


def _node_package(folder: Path) -> _Found:
    folder = folder.resolve()
    pkg = _read_json_file(folder / "package.json")
    name = pkg.get("name") if isinstance(pkg.get("name"), str) else folder.name
    assert isinstance(name, str)
    warnings: list[str] = []
    bin_field = pkg.get("bin")
    target = ""
    if isinstance(bin_field, str):
        target = bin_field
    elif isinstance(bin_field, dict) and bin_field:
        keys = [k for k in bin_field if isinstance(bin_field[k], str)]
        preferred = [k for k in keys if "mcp" in k.lower() or k == name.rsplit("/", 1)[-1]]
        if keys:
            target = bin_field[(preferred or keys)[0]]
    if not target and isinstance(pkg.get("main"), str):
        target = pkg["main"]
    scripts = pkg.get("scripts") if isinstance(pkg.get("scripts"), dict) else {}
    assert isinstance(scripts, dict)
    if target:
        path = (folder / target).resolve()
        if not path.is_relative_to(folder):
            raise McpConfigError(f"{folder / 'package.json'} points outside its folder.")
        entry: dict[str, Any] = {"command": "node", "args": [str(path)], "cwd": str(folder)}
        if not path.exists():
            warnings.append(
                f"{target} does not exist yet: run npm install and npm run build in {folder}."
            )
        if bin_field:
            warnings.append(
                f"If {name} is published, npx -y {name} runs the published version instead."
            )
    elif isinstance(scripts.get("start"), str):
        entry = {"command": "npm", "args": ["start", "--silent"], "cwd": str(folder)}
        warnings.append("It runs with npm start (quietly, so npm's own output stays out).")
    else:
        raise McpConfigError(
            f"{folder / 'package.json'} names no bin, main or start script, so Corral does "
            "not know how to start it."
        )
    deps = pkg.get("dependencies")
    if isinstance(deps, dict) and deps and not (folder / "node_modules").is_dir():
        warnings.append(f"Its dependencies are not installed yet: run npm install in {folder}.")
    server = import_server(_short(name), entry, source=str(folder))
    return _Found(
        DropKind.NODE_PACKAGE,
        server,
        Transport.STDIO,
        confirm=True,
        extra_warnings=tuple(warnings),
    )


def _python_package(folder: Path, ctx: _Context) -> _Found:
    folder = folder.resolve()
    text = read_config_file(folder / "pyproject.toml")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise McpConfigError(f"{folder / 'pyproject.toml'} is not valid TOML ({exc}).") from exc
    project = data.get("project") if isinstance(data.get("project"), dict) else {}
    assert isinstance(project, dict)
    tool = data.get("tool") if isinstance(data.get("tool"), dict) else {}
    assert isinstance(tool, dict)
    poetry = tool.get("poetry") if isinstance(tool.get("poetry"), dict) else {}
    assert isinstance(poetry, dict)
    raw_name = project.get("name") or poetry.get("name") or folder.name
    name = raw_name if isinstance(raw_name, str) else folder.name
    scripts: dict[str, str] = {}
    for table in (project.get("scripts"), poetry.get("scripts")):
        if isinstance(table, dict):
            scripts.update({k: v for k, v in table.items() if isinstance(v, str)})
    warnings: list[str] = []
    uses_uv = (folder / "uv.lock").is_file() or "uv" in tool
    if scripts:
        preferred = [k for k in scripts if "mcp" in k.lower() or k == name]
        script = (preferred or list(scripts))[0]
        if len(scripts) > 1:
            warnings.append(f"It has several commands; {script} was picked.")
        module = scripts[script].split(":", 1)[0].strip()
        venv_bin = folder / ".venv" / ("Scripts" if ctx.platform.startswith("win") else "bin")
        if uses_uv:
            entry: dict[str, Any] = {
                "command": "uv",
                "args": ["run", "--directory", str(folder), script],
            }
            warnings.append("It runs with uv run in its folder (uv is needed).")
        elif (venv_bin / script).is_file():
            entry = {"command": str(venv_bin / script), "args": []}
        else:
            entry = {"command": ctx.python, "args": ["-m", module]}
            warnings.append(
                f"It runs as python -m {module}; that works when the package is installed in "
                f"{ctx.python} and the module starts its server when run this way."
            )
    else:
        module = re.sub(r"[^A-Za-z0-9_]", "_", name)
        entry = {"command": ctx.python, "args": ["-m", module]}
        warnings.append(
            f"It declares no command; it runs as python -m {module}, which works only if "
            "that module starts the server."
        )
    entry["cwd"] = str(folder)
    server = import_server(_short(name), entry, source=str(folder))
    return _Found(
        DropKind.PYTHON_PACKAGE,
        server,
        Transport.STDIO,
        confirm=True,
        extra_warnings=tuple(warnings),
    )


# --- bundles ------------------------------------------------------------------------------


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if "\0" in name or ("\\" in name and name.startswith("\\")):
        return f"it holds a file with a bad name ({name!r})"
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in pure.parts:
        return f"it holds a file that would land outside its folder ({name})"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return f"it holds a symbolic link ({name})"
    if info.flag_bits & 0x1:
        return "it is encrypted"
    if info.file_size > 1_000_000 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        return f"{name} would unpack to far more than it takes in the archive (a zip bomb)"
    return None


def _check_archive(zf: zipfile.ZipFile, what: str) -> list[zipfile.ZipInfo]:
    members = zf.infolist()
    if len(members) > MAX_BUNDLE_MEMBERS:
        raise McpConfigError(f"{what} holds more than {MAX_BUNDLE_MEMBERS} files.")
    total = 0
    for info in members:
        problem = _member_problem(info)
        if problem:
            raise McpConfigError(f"{what} was refused: {problem}.")
        total += info.file_size
        if total > MAX_UNPACKED_BYTES:
            raise McpConfigError(f"{what} would unpack to more than 1 GB.")
    return members


def _bundle_variables(target: Path, ctx: _Context) -> dict[str, str]:
    sep = "\\" if ctx.platform.startswith("win") else "/"
    return {
        "__dirname": str(target),
        "HOME": str(ctx.home),
        "DESKTOP": str(ctx.home / "Desktop"),
        "DOCUMENTS": str(ctx.home / "Documents"),
        "DOWNLOADS": str(ctx.home / "Downloads"),
        "pathSeparator": sep,
        "/": sep,
    }


def _substitute_bundle(value: str, variables: Mapping[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        inner = match.group(1)
        if inner in variables:
            return variables[inner]
        if inner.startswith("user_config."):
            return "${input:" + inner + "}"
        return match.group(0)

    return re.sub(r"\$\{([^{}]*)\}", sub, value)


def _classify_bundle(path: Path, ctx: _Context) -> _Found:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise McpConfigError(f"{path} could not be read ({_reason(exc)}).") from exc
    if size > MAX_BUNDLE_BYTES:
        raise McpConfigError(f"{path.name} is larger than 512 MB, which Corral does not unpack.")
    try:
        with zipfile.ZipFile(path) as zf:
            _check_archive(zf, path.name)
            try:
                info = zf.getinfo("manifest.json")
            except KeyError as exc:
                raise McpConfigError(
                    f"{path.name} has no manifest.json, so it is not a bundle."
                ) from exc
            if info.file_size > MAX_CONFIG_BYTES:
                raise McpConfigError(f"The manifest of {path.name} is larger than 1 MB.")
            raw = zf.read(info)
            names = {i.filename.rstrip("/") for i in zf.infolist()}
    except zipfile.BadZipFile as exc:
        raise McpConfigError(f"{path.name} is not a valid bundle (not a zip archive).") from exc
    except _ZIP_ERRORS as exc:
        raise McpConfigError(f"{path.name} could not be read as a bundle ({exc}).") from exc
    manifest = load_document(decode_text(raw, "manifest.json"), "manifest.json")
    if not isinstance(manifest, dict):
        raise McpConfigError(f"The manifest of {path.name} is not a JSON object.")
    if ctx.bundle_dir is None:
        raise McpConfigError(
            f"{path.name} is a bundle, but no folder was given to unpack bundles into."
        )
    bundle_name = manifest.get("name") if isinstance(manifest.get("name"), str) else path.stem
    assert isinstance(bundle_name, str)
    folder_name = re.sub(r"[^A-Za-z0-9._-]+", "-", bundle_name).strip(".-") or "bundle"
    target = ctx.bundle_dir / folder_name
    n = 1
    while target.exists() or target in ctx.targets:
        n += 1
        target = ctx.bundle_dir / f"{folder_name}-{n}"
    ctx.targets.add(target)
    variables = _bundle_variables(target, ctx)
    warnings: list[str] = []

    server = manifest.get("server")
    if not isinstance(server, dict):
        raise McpConfigError(f"The manifest of {path.name} says nothing about its server.")
    server_type = str(server.get("type") or "")
    entry_point = server.get("entry_point") if isinstance(server.get("entry_point"), str) else ""
    assert isinstance(entry_point, str)
    mcp_config = server.get("mcp_config")
    if isinstance(mcp_config, dict):
        overrides = mcp_config.get("platform_overrides")
        if isinstance(overrides, dict) and isinstance(overrides.get(ctx.platform), dict):
            mcp_config = {**mcp_config, **overrides[ctx.platform]}
        entry: dict[str, Any] = {
            k: mcp_config[k] for k in ("command", "args", "env") if k in mcp_config
        }
    elif server_type == "node" and entry_point:
        entry = {"command": "node", "args": ["${__dirname}/" + entry_point]}
    elif server_type == "python" and entry_point:
        entry = {
            "command": ctx.python,
            "args": ["${__dirname}/" + entry_point],
            "env": {"PYTHONPATH": "${__dirname}/server/lib"},
        }
    elif server_type == "uv" and entry_point:
        entry = {"command": "uv", "args": ["run", "--directory", "${__dirname}", entry_point]}
        warnings.append("It runs with uv, which installs its dependencies on first start.")
    elif server_type == "binary" and entry_point:
        entry = {"command": "${__dirname}/" + entry_point, "args": []}
    else:
        raise McpConfigError(
            f"The manifest of {path.name} does not say how to start its server "
            f"(type {server_type or 'missing'})."
        )
    entry = _substitute_all(entry, variables)
    command = entry.get("command")
    if server_type == "binary" and isinstance(command, str) and not Path(command).is_absolute():
        rel = command.replace("\\", "/")
        if ctx.platform.startswith("win") and not rel.lower().endswith(".exe"):
            rel += ".exe"
        if rel in names or rel.removesuffix(".exe") in names:
            entry["command"] = str(target / rel)
    entry["cwd"] = str(target)

    requests = _user_config(manifest.get("user_config"), variables)
    compat = manifest.get("compatibility")
    platforms = compat.get("platforms") if isinstance(compat, dict) else None
    if isinstance(platforms, list) and ctx.platform not in platforms:
        warnings.append(
            f"The bundle says it runs on {', '.join(map(str, platforms))}, not on this system."
        )
    display = manifest.get("display_name") or bundle_name
    imported = import_server(_short(clean_name(str(display))), entry, source=f"{path} (bundle)")
    # the manifest's own descriptions replace the generic ones
    used = {r.id: r for r in imported.inputs}
    inputs = tuple(requests.get(i, used[i]) for i in used)
    imported = replace(imported, inputs=inputs)
    return _Found(
        DropKind.BUNDLE,
        imported,
        Transport.STDIO,
        confirm=True,
        bundle=BundlePlan(path.resolve(), target),
        extra_warnings=(f"It will be unpacked into {target}.", *warnings),
    )


def _substitute_all(value: Any, variables: Mapping[str, str], depth: int = 0) -> Any:
    if depth > 8:
        return value
    if isinstance(value, str):
        return _substitute_bundle(value, variables)
    if isinstance(value, list):
        return [_substitute_all(v, variables, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _substitute_all(v, variables, depth + 1) for k, v in value.items()}
    return value


def _user_config(raw: object, variables: Mapping[str, str]) -> dict[str, InputRequest]:
    """The manifest's user_config fields, as inputs to ask for."""
    out: dict[str, InputRequest] = {}
    if not isinstance(raw, dict):
        return out
    for key, spec in raw.items():
        if not isinstance(spec, dict):
            continue
        kind = str(spec.get("type") or "string")
        title = str(spec.get("title") or key)
        description = str(spec.get("description") or "")
        default = spec.get("default")
        if isinstance(default, list):
            values = [_substitute_bundle(_plain(d), variables) for d in default]
            default_text = os.pathsep.join(values)
        elif default is None:
            default_text = ""
        else:
            default_text = _substitute_bundle(_plain(default), variables)
        out[f"user_config.{key}"] = InputRequest(
            id=f"user_config.{key}",
            description=f"{title}: {description}" if description else title,
            password=spec.get("sensitive") is True,
            required=spec.get("required") is True,
            default=default_text,
            kind=kind,
            multiple=spec.get("multiple") is True,
        )
    return out


def _plain(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _unpack(plan: BundlePlan) -> None:
    """Unpack a bundle into ``plan.target`` (which must not exist), via a staging folder
    beside it, so that a failure leaves nothing behind."""
    if plan.target.exists():
        raise McpConfigError(f"{plan.target} already exists; the bundle was not unpacked.")
    parent = plan.target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=parent))
    except OSError as exc:
        raise McpConfigError(
            f"{parent} could not be used to unpack bundles ({_reason(exc)})."
        ) from exc
    try:
        with zipfile.ZipFile(plan.archive) as zf:
            for info in _check_archive(zf, plan.archive.name):
                _extract_member(zf, info, staging)
        os.rename(staging, plan.target)
    except McpConfigError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except _ZIP_ERRORS as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise McpConfigError(f"{plan.archive.name} could not be unpacked ({exc}).") from exc


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path) -> None:
    rel = PurePosixPath(info.filename.replace("\\", "/"))
    dest = root.joinpath(*rel.parts)
    if not dest.resolve().is_relative_to(root.resolve()):
        raise McpConfigError(f"{info.filename} would land outside the bundle's folder.")
    if info.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zf.open(info) as src, dest.open("wb") as out:
        while chunk := src.read(1 << 16):
            written += len(chunk)
            if written > info.file_size:
                raise McpConfigError(f"{info.filename} is larger than the archive says.")
            out.write(chunk)
    mode = (info.external_attr >> 16) & 0o777
    if mode & 0o111:
        dest.chmod(0o755)


# --- applying -----------------------------------------------------------------------------


def apply_preview(
    store: McpConfigStore,
    preview: DropPreview,
    answers: Mapping[str, Answer] | None = None,
    choices: Mapping[str, Choice] | None = None,
    transports: Mapping[str, Transport] | None = None,
) -> list[str]:
    """Add the servers of ``preview`` to ``store``, all or none; returns their names.

    ``answers`` answers the inputs (by id); ``choices`` says, per item key, whether to add,
    rename, replace or skip (default: add, under the suggested name if its own is taken);
    ``transports`` gives the detected transport of items that have none yet (default:
    streamable HTTP). Bundles are unpacked first and removed again if saving fails.

    Raises McpConfigError (or SecretNotStored when a secret cannot be kept) with nothing
    changed: not the file, not the keyring, no unpacked bundle.
    """
    answers = answers or {}
    choices = choices or {}
    transports = transports or {}
    if not preview.items:
        reason = " ".join(preview.errors) or "There is nothing to add."
        raise McpConfigError(reason)
    unknown = [k for k in choices if k not in {i.key for i in preview.items}]
    if unknown:
        raise McpConfigError(f"Nothing in this drop is called {', '.join(unknown)}.")
    existing = {n.casefold(): n for n in store.names()}
    configs: list[ServerConfig] = []
    replacing: list[str] = []
    plans: list[BundlePlan] = []
    problems: list[str] = []
    for item in preview.items:
        choice = choices.get(item.key, Choice())
        if choice.action is ChoiceAction.SKIP:
            continue
        if item.errors:
            problems.append(f"{item.name} cannot be added: {' '.join(item.errors)}")
            continue
        if choice.action is ChoiceAction.RENAME:
            name = choice.name.strip() if choice.name else ""
            if not name:
                problems.append(f"A new name for {item.name} is needed.")
                continue
        elif choice.action is ChoiceAction.REPLACE:
            name = item.name
            if name.casefold() not in existing:
                problems.append(f"There is no server {name} to replace.")
                continue
            replacing.append(existing[name.casefold()])
            name = existing[name.casefold()]
        else:
            name = item.suggested_name or item.name
        config = replace(item.config, name=name)
        if item.transport is None:
            config = replace(config, transport=transports.get(item.key, config.transport))
        try:
            config = fill_inputs(config, item.inputs, answers)
        except McpConfigError as exc:
            problems.append(exc.message)
            continue
        configs.append(config)
        if item.bundle is not None:
            plans.append(item.bundle)
    if problems:
        raise McpConfigError(" ".join(problems))
    if not configs:
        raise McpConfigError("Every server of this drop was skipped; nothing was added.")
    unpacked: list[Path] = []
    try:
        for plan in plans:
            _unpack(plan)
            unpacked.append(plan.target)
        store.add_many(configs, replace=replacing)
    except BaseException:
        for target in unpacked:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return [c.name for c in configs]


__all__ = [
    "BundlePlan",
    "Choice",
    "ChoiceAction",
    "ClientFormat",
    "DropItem",
    "DropKind",
    "DropPreview",
    "apply_preview",
    "classify_drop",
]
