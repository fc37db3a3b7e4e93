"""Drops and pastes on the MCP panel: every kind previewed, applied all or nothing."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keyring.backends import fail

from app.core.errors import SecretNotStored
from app.core.mcp import config as config_module
from app.core.mcp.config import McpConfigStore
from app.core.mcp.drop import (
    Choice,
    DropKind,
    DropPreview,
    apply_preview,
    classify_drop,
)
from app.core.mcp.types import McpConfigError, ServerConfig, Transport
from app.core.secrets import SecretStore
from tests.support.memory_keyring import MemoryKeyring

DATA = Path(__file__).parent / "data" / "mcp"
PYTHON = "/opt/python3.12/bin/python3"


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    """The drop samples, copied where no virtual environment sits above them."""
    root = tmp_path / "samples"
    shutil.copytree(DATA / "drop", root)
    shutil.copytree(DATA / "home", root / "home")
    return root


def make_store(folder: Path, backend: object | None = None) -> tuple[McpConfigStore, MemoryKeyring]:
    kr = MemoryKeyring()
    store = McpConfigStore(
        folder / "cfg" / "mcp.json",
        SecretStore(backend if backend is not None else kr),  # type: ignore[arg-type]
    )
    store.load()
    return store, kr


def preview_of(*paths: Path | str, text: str | None = None, **kw: Any) -> DropPreview:
    kw.setdefault("python", PYTHON)
    kw.setdefault("home", Path("/home/alice"))
    kw.setdefault("platform", "linux")
    return classify_drop(list(paths), text, **kw)


def make_bundle(
    path: Path,
    manifest: dict[str, Any] | None,
    files: dict[str, bytes] | None = None,
) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        if manifest is not None:
            zf.writestr("manifest.json", json.dumps(manifest))
        for name, content in (files or {}).items():
            zf.writestr(name, content)
    return path


def sample_bundle(samples: Path, folder: Path) -> Path:
    manifest = json.loads((samples / "bundle" / "manifest.json").read_text())
    return make_bundle(
        folder / "file-tools.mcpb",
        manifest,
        {"server/index.js": (samples / "bundle/server/index.js").read_bytes()},
    )


# --- config files and snippets -----------------------------------------------------------


def test_a_config_file_with_conflicts(samples: Path, tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    store.add(ServerConfig(name="hf", command="old"))
    preview = preview_of(samples / "home/.cursor/mcp.json", existing=store.names())
    assert preview.errors == ()
    assert [(i.name, i.kind) for i in preview.items] == [
        ("postgres", DropKind.CONFIG_FILE),
        ("hf", DropKind.CONFIG_FILE),
        ("legacy-events", DropKind.CONFIG_FILE),
    ]
    (conflict,) = preview.conflicts
    assert conflict.conflict == "hf" and conflict.suggested_name == "hf-2"
    assert conflict.transport is Transport.HTTP
    added = apply_preview(store, preview)
    assert added == ["postgres", "hf-2", "legacy-events"]
    assert store.names() == ["hf", "postgres", "hf-2", "legacy-events"]


def test_rename_replace_and_skip_choices(samples: Path, tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    store.add(ServerConfig(name="hf", command="old"))
    preview = preview_of(samples / "home/.cursor/mcp.json", existing=store.names())
    added = apply_preview(
        store,
        preview,
        choices={
            "postgres": Choice.rename("shop-db"),
            "hf": Choice.replace(),
            "legacy-events": Choice.skip(),
        },
    )
    assert added == ["shop-db", "hf"]
    assert store.names() == ["hf", "shop-db"]
    (hf,) = [s for s in store.servers(environ={"HF_TOKEN": "t"}) if s.name == "hf"]
    assert hf.transport is Transport.HTTP and hf.headers["Authorization"] == "Bearer t"
    with pytest.raises(McpConfigError, match="Nothing in this drop"):
        apply_preview(store, preview, choices={"nope": Choice.skip()})


def test_two_files_with_the_same_name_get_distinct_names(samples: Path) -> None:
    preview = preview_of(samples / "home/.cursor/mcp.json", samples / "home/.lmstudio/mcp.json")
    names = [i.suggested_name for i in preview.items]
    assert len(names) == len(set(names))
    keys = [i.key for i in preview.items]
    assert len(keys) == len(set(keys))


def test_pasted_whole_file_and_bare_mapping() -> None:
    whole = (DATA / "home/.config/Claude/claude_desktop_config.json").read_text()
    preview = preview_of(text=whole)
    assert [i.name for i in preview.items] == ["filesystem", "github", "time"]
    assert all(i.kind is DropKind.SNIPPET for i in preview.items)
    bare = preview_of(text='{"memory": {"command": "npx", "args": ["-y", "x"]}}')
    assert [i.name for i in bare.items] == ["memory"]


def test_pasted_single_server_asks_for_a_name(tmp_path: Path) -> None:
    text = json.dumps(
        {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-sequential-thinking"]}
    )
    preview = preview_of(text=text)
    (item,) = preview.items
    assert item.kind is DropKind.SERVER_OBJECT and item.needs_name
    assert item.name == "sequential-thinking"
    store, _ = make_store(tmp_path)
    assert apply_preview(store, preview, choices={item.key: Choice.rename("thinking")}) == [
        "thinking"
    ]


def test_pasted_yaml() -> None:
    text = "mcpServers:\n  - name: Time\n    command: uvx\n    args: [mcp-server-time]\n"
    (item,) = preview_of(text=text).items
    assert item.name == "Time" and item.config.args == ("mcp-server-time",)
    listed = preview_of(text="- name: Fetch\n  command: uvx\n  args: [mcp-server-fetch]\n")
    assert [i.name for i in listed.items] == ["Fetch"]


def test_a_url_is_a_remote_server_to_test(tmp_path: Path) -> None:
    preview = preview_of(text="  https://mcp.context7.com/mcp \n")
    (item,) = preview.items
    assert item.kind is DropKind.URL and item.transport is None and item.needs_name
    assert item.name == "context7" and item.config.url == "https://mcp.context7.com/mcp"
    store, _ = make_store(tmp_path)
    apply_preview(store, preview, transports={item.key: Transport.SSE})
    (server,) = store.servers()
    assert server.transport is Transport.SSE
    other = preview_of(text="http://localhost:8931/mcp", existing=["context7"])
    apply_preview(store, other)
    assert store.servers()[1].transport is Transport.HTTP  # the first guess


def test_a_pasted_command_line() -> None:
    (item,) = preview_of(text="uvx mcp-server-time --local-timezone=UTC").items
    assert item.kind is DropKind.COMMAND and item.confirm and item.needs_name
    assert item.config.command == "uvx"
    assert item.config.args == ("mcp-server-time", "--local-timezone=UTC")
    assert item.name == "time"


def test_file_uris_are_paths(samples: Path) -> None:
    uri = (samples / "scripts" / "weather_server.py").as_uri()
    (item,) = preview_of(text=f"# dragged from a file manager\r\n{uri}\r\n").items
    assert item.kind is DropKind.PYTHON_SCRIPT


def test_a_pasted_path_is_a_path(samples: Path) -> None:
    script = samples / "scripts" / "weather_server.py"
    (item,) = preview_of(text=f' "{script}" ').items
    assert item.kind is DropKind.PYTHON_SCRIPT
    missing = preview_of(text=str(samples / "nope.py"))
    assert not missing.items


def test_a_link_loop_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    preview = preview_of(tmp_path / "a")
    assert not preview.items and preview.errors[0]


# --- scripts, packages, folders ----------------------------------------------------------


def test_a_python_script(samples: Path) -> None:
    script = samples / "scripts" / "weather_server.py"
    (item,) = preview_of(script).items
    assert item.kind is DropKind.PYTHON_SCRIPT and item.confirm
    assert item.config.command == PYTHON
    assert item.config.args == (str(script.resolve()),)
    assert item.config.cwd == str(script.resolve().parent)
    assert item.name == "weather"
    assert any(PYTHON in w for w in item.warnings)
    (plain,) = preview_of(samples / "scripts" / "hello.py").items
    assert any("may not be an MCP server" in w for w in plain.warnings)


def test_a_script_uses_the_virtual_environment_beside_it(samples: Path) -> None:
    venv_python = samples / "scripts" / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text("")
    (item,) = preview_of(samples / "scripts" / "weather_server.py").items
    assert item.config.command == str(venv_python)


def test_a_script_with_inline_dependencies_runs_with_uv(tmp_path: Path) -> None:
    script = tmp_path / "tool.py"
    script.write_text('# /// script\n# dependencies = ["fastmcp"]\n# ///\nimport fastmcp\n')
    (item,) = preview_of(script).items
    assert item.config.command == "uv"
    assert item.config.args == ("run", "--script", str(script.resolve()))


def test_node_packages(samples: Path) -> None:
    (bin_item,) = preview_of(samples / "node-server").items
    assert bin_item.kind is DropKind.NODE_PACKAGE and bin_item.confirm
    assert bin_item.config.command == "node"
    assert bin_item.config.args == (str((samples / "node-server/dist/index.js").resolve()),)
    assert bin_item.name == "tickets"
    assert any("npm install" in w for w in bin_item.warnings)
    (main_item,) = preview_of(samples / "node-server-main" / "package.json").items
    assert main_item.config.args[0].endswith("server.js")

    start_only = samples / "start-only"
    start_only.mkdir()
    (start_only / "package.json").write_text('{"name": "x", "scripts": {"start": "node a.js"}}')
    (start_item,) = preview_of(start_only).items
    assert start_item.config.command == "npm"
    assert start_item.config.args == ("start", "--silent")

    nothing = samples / "nothing"
    nothing.mkdir()
    (nothing / "package.json").write_text('{"name": "x"}')
    preview = preview_of(nothing)
    assert not preview.items and "no bin, main or start" in preview.errors[0]


def test_python_packages(samples: Path) -> None:
    (uv_item,) = preview_of(samples / "py-server").items
    folder = str((samples / "py-server").resolve())
    assert uv_item.kind is DropKind.PYTHON_PACKAGE and uv_item.confirm
    assert uv_item.config.command == "uv"
    assert uv_item.config.args == ("run", "--directory", folder, "weather-mcp")
    (plain,) = preview_of(samples / "py-server-plain" / "pyproject.toml").items
    assert plain.config.command == PYTHON
    assert plain.config.args == ("-m", "notes_mcp.server")  # the script with mcp in its name


def test_a_folder_with_config_files(samples: Path) -> None:
    project = samples / "project"
    (project / ".vscode").mkdir(parents=True)
    shutil.copy(samples / "home/.config/Code/User/mcp.json", project / ".vscode" / "mcp.json")
    preview = preview_of(project)
    assert [i.name for i in preview.items] == ["perplexity", "context7", "memory", "old-sse"]
    assert {r.id for r in preview.inputs} == {"perplexity-key", "region"}
    empty = samples / "empty"
    empty.mkdir()
    assert "holds no package.json" in preview_of(empty).errors[0]


# --- bundles ------------------------------------------------------------------------------


def test_a_bundle_is_previewed_then_unpacked(samples: Path, tmp_path: Path) -> None:
    bundle = sample_bundle(samples, tmp_path)
    bundles = tmp_path / "bundles"
    preview = preview_of(bundle, bundle_dir=bundles)
    (item,) = preview.items
    assert item.kind is DropKind.BUNDLE and item.confirm
    assert item.bundle is not None and item.bundle.target == bundles / "file-tools"
    assert not bundles.exists()  # nothing happens before apply
    assert item.name == "File Tools"
    asks = {r.id: r for r in item.inputs}
    assert asks["user_config.api_key"].password and asks["user_config.api_key"].required
    assert asks["user_config.allowed_directories"].multiple
    assert asks["user_config.allowed_directories"].default == "/home/alice/Desktop"
    assert asks["user_config.max_file_size"].default == "10"

    store, kr = make_store(tmp_path)
    apply_preview(
        store,
        preview,
        answers={
            "user_config.api_key": "sk-bundle-secret",
            "user_config.allowed_directories": ["/data/a", "/data/b"],
        },
    )
    target = bundles / "file-tools"
    assert (target / "server" / "index.js").read_bytes() == (
        samples / "bundle/server/index.js"
    ).read_bytes()
    (server,) = store.servers()
    assert server.args == (str(target / "server" / "index.js"), "/data/a", "/data/b")
    assert server.env["API_KEY"] == "sk-bundle-secret"
    assert server.env["MAX_SIZE_MB"] == "10"
    assert server.cwd == str(target)
    assert b"sk-bundle-secret" not in store.path.read_bytes()
    assert ("corral", "corral-mcp/File Tools/env/API_KEY") in kr.store


def test_a_bundle_needs_its_required_answers(samples: Path, tmp_path: Path) -> None:
    bundles = tmp_path / "bundles"
    preview = preview_of(sample_bundle(samples, tmp_path), bundle_dir=bundles)
    store, _ = make_store(tmp_path)
    with pytest.raises(McpConfigError, match="API Key"):
        apply_preview(store, preview)
    assert not bundles.exists() and not store.path.exists()


def test_bundle_defaults_and_other_server_types(tmp_path: Path) -> None:
    for server_type, command in (("python", PYTHON), ("uv", "uv"), ("binary", None)):
        manifest = {
            "name": f"b-{server_type}",
            "server": {"type": server_type, "entry_point": "server/main"},
        }
        bundle = make_bundle(tmp_path / f"{server_type}.mcpb", manifest, {"server/main": b"x"})
        (item,) = preview_of(bundle, bundle_dir=tmp_path / "b").items
        target = tmp_path / "b" / f"b-{server_type}"
        if command is None:
            assert item.config.command == str(target / "server" / "main")
        else:
            assert item.config.command == command


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({"../evil.js": b"x"}, "outside"),
        ({"/etc/evil": b"x"}, "outside"),
        ({"server/../../evil": b"x"}, "outside"),
        ({"big.bin": b"\0" * 3_000_000}, "zip bomb"),
    ],
)
def test_hostile_bundles_are_refused(
    tmp_path: Path, members: dict[str, bytes], expected: str
) -> None:
    manifest = {"name": "x", "server": {"type": "node", "entry_point": "a.js"}}
    bundle = make_bundle(tmp_path / "x.mcpb", manifest, members)
    preview = preview_of(bundle, bundle_dir=tmp_path / "b")
    assert not preview.items
    assert expected in preview.errors[0]


def test_a_bundle_with_a_symlink_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "link.mcpb"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"name": "x", "server": {"type": "node"}}))
        info = zipfile.ZipInfo("server/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    preview = preview_of(path, bundle_dir=tmp_path / "b")
    assert not preview.items and "symbolic link" in preview.errors[0]


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (None, "no manifest.json"),
        ({"name": "x"}, "says nothing about its server"),
        ({"name": "x", "server": {"type": "java"}}, "does not say how to start"),
    ],
)
def test_incomplete_bundles_say_why(
    tmp_path: Path, manifest: dict[str, Any] | None, expected: str
) -> None:
    bundle = make_bundle(tmp_path / "x.mcpb", manifest, {"a.txt": b"a"})
    preview = preview_of(bundle, bundle_dir=tmp_path / "b")
    assert not preview.items and expected in preview.errors[0]


def test_not_a_zip_and_no_bundle_folder(samples: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake.mcpb"
    fake.write_bytes(b"not a zip at all")
    assert "not a valid bundle" in preview_of(fake, bundle_dir=tmp_path).errors[0]
    bundle = sample_bundle(samples, tmp_path)
    assert "no folder" in preview_of(bundle).errors[0]


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"mcpServers": {"a": ', "not valid JSON"),
        ('{"name": "app", "version": "1"}', "holds no MCP servers"),
        ("just some words", "not an address, a command or an MCP config"),
        ("ws://localhost:9000/ws", "not an http"),
        ("[1, 2, 3]", "a list"),
        ("x" * 1_100_000, "larger than 1 MB"),
        ("a\0b", "binary"),
    ],
)
def test_bad_text_gives_an_error_and_no_servers(text: str, expected: str) -> None:
    preview = preview_of(text=text)
    assert not preview.items and not preview.ok
    assert expected in preview.errors[0]


def test_bad_files_give_an_error_and_no_servers(tmp_path: Path) -> None:
    binary = tmp_path / "tool.json"
    binary.write_bytes(bytes(range(256)))
    huge = tmp_path / "huge.json"
    huge.write_text(" " * 1_100_000 + "{}")
    archive = tmp_path / "things.zip"
    make_bundle(archive, None, {"a": b"a"})
    for path, expected in (
        (binary, "binary"),
        (huge, "MB"),
        (archive, "archive"),
        (tmp_path / "missing.json", "does not exist"),
        (DATA / "extra/broken.json", "not valid JSON"),
    ):
        preview = preview_of(path)
        assert not preview.items, path
        assert expected in preview.errors[0], preview.errors


def test_nothing_at_all() -> None:
    preview = preview_of(text="   ")
    assert not preview.items and preview.errors
    for path in ("", "a\0b"):
        preview = preview_of(path)
        assert not preview.items and preview.errors[0]


def test_a_mixed_drop_keeps_what_can_be_used(samples: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    preview = preview_of(bad, samples / "scripts" / "weather_server.py")
    assert [i.kind for i in preview.items] == [DropKind.PYTHON_SCRIPT]
    assert len(preview.errors) == 1 and "bad.json" in preview.errors[0]


def test_applying_an_empty_preview_says_why(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    with pytest.raises(McpConfigError, match="not valid JSON"):
        apply_preview(store, preview_of(text="{"))
    preview = preview_of(text="uvx mcp-server-time")
    with pytest.raises(McpConfigError, match="skipped"):
        apply_preview(store, preview, choices={preview.items[0].key: Choice.skip()})


# --- all or nothing -----------------------------------------------------------------------


def test_a_missing_answer_changes_nothing(samples: Path, tmp_path: Path) -> None:
    store, kr = make_store(tmp_path)
    store.add(ServerConfig(name="keep", command="x", env={"A_TOKEN": "t"}, secret_env=("A_TOKEN",)))
    before, keyring_before = store.path.read_bytes(), dict(kr.store)
    preview = preview_of(samples / "home/.config/Code/User/mcp.json")
    with pytest.raises(McpConfigError, match="Perplexity API Key"):
        apply_preview(store, preview, answers={"region": "us"})
    assert store.path.read_bytes() == before and kr.store == keyring_before
    added = apply_preview(store, preview, answers={"perplexity-key": "pplx-secret"})
    assert added == ["perplexity", "context7", "memory", "old-sse"]
    assert b"pplx-secret" not in store.path.read_bytes()
    perplexity = next(s for s in store.servers() if s.name == "perplexity")
    assert perplexity.env["PERPLEXITY_API_KEY"] == "pplx-secret"
    assert perplexity.env["PERPLEXITY_REGION"] == "eu"


def test_no_keyring_changes_nothing_and_unpacks_nothing(samples: Path, tmp_path: Path) -> None:
    store, _ = make_store(tmp_path, backend=fail.Keyring())
    store.add(ServerConfig(name="keep", command="x"))
    before = store.path.read_bytes()
    bundles = tmp_path / "bundles"
    preview = preview_of(
        sample_bundle(samples, tmp_path), samples / "scripts" / "hello.py", bundle_dir=bundles
    )
    with pytest.raises(SecretNotStored):
        apply_preview(
            store,
            preview,
            answers={"user_config.api_key": "k", "user_config.allowed_directories": "/x"},
        )
    assert store.path.read_bytes() == before
    assert not (bundles / "file-tools").exists()
    assert not bundles.exists() or not any(bundles.iterdir())


def test_a_failed_write_removes_the_unpacked_bundle(
    samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, kr = make_store(tmp_path)
    bundles = tmp_path / "bundles"
    preview = preview_of(sample_bundle(samples, tmp_path), bundle_dir=bundles)

    def refuse(path: Path, text: str) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(config_module, "atomic_write_text", refuse)
    with pytest.raises(McpConfigError, match="read-only file system"):
        apply_preview(store, preview, answers={"user_config.api_key": "k"})
    assert not (bundles / "file-tools").exists()
    assert kr.store == {} and not store.path.exists()


def test_a_name_taken_since_the_preview_changes_nothing(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    preview = preview_of(text='{"a": {"command": "x"}, "b": {"command": "y"}}')
    store.add(ServerConfig(name="b", command="z"))
    before = store.path.read_bytes()
    with pytest.raises(McpConfigError, match="already"):
        apply_preview(store, preview)
    assert store.path.read_bytes() == before and store.names() == ["b"]


# --- fuzzing ------------------------------------------------------------------------------

fuzz = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
json_ish = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=12),
        st.sampled_from(["npx", "https://a.example/mcp", "${input:key}", "sse", "stdio"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(
                st.text(max_size=6),
                st.sampled_from(["mcpServers", "servers", "command", "url", "args", "env"]),
            ),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=20,
)
texts = st.one_of(
    st.text(max_size=200),
    st.builds(lambda d: json.dumps(d), json_ish),
    st.builds(lambda d: json.dumps({"mcpServers": d}), json_ish),
    st.sampled_from(["https://", "http://[::1", "file://", "npx", 'uvx "unclosed', "- a\n- b"]),
)


def _check(preview: DropPreview, store: McpConfigStore) -> None:
    assert all(isinstance(e, str) and e.strip() for e in preview.errors)
    assert preview.items or preview.errors
    before = store.path.read_bytes()
    try:
        apply_preview(store, preview)
    except (McpConfigError, SecretNotStored) as exc:
        assert exc.message.strip()
        assert store.path.read_bytes() == before


def _fresh_store(base: Path) -> McpConfigStore:
    folder = Path(tempfile.mkdtemp(dir=base))
    store = McpConfigStore(folder / "mcp.json", SecretStore(MemoryKeyring()))
    store.path.write_text('{"mcpServers": {"keep": {"command": "uvx", "args": ["x"]}}}\n')
    store.load()
    return store


@fuzz
@given(texts)
def test_fuzz_pasted_text(tmp_path: Path, text: str) -> None:
    store = _fresh_store(tmp_path)
    preview = classify_drop(text=text, existing=store.names(), bundle_dir=tmp_path / "b")
    _check(preview, store)


@fuzz
@given(
    st.one_of(st.binary(max_size=400), st.builds(lambda t: t.encode(), texts)),
    st.sampled_from([".json", ".yaml", ".py", ".mcpb", ".toml", "", ".jsonc", ".zip"]),
)
def test_fuzz_dropped_files(tmp_path: Path, content: bytes, suffix: str) -> None:
    store = _fresh_store(tmp_path)
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / f"dropped{suffix}"
    path.write_bytes(content)
    preview = classify_drop([path], existing=store.names(), bundle_dir=tmp_path / "b")
    _check(preview, store)


@fuzz
@given(
    st.one_of(
        json_ish,
        st.builds(
            lambda t, e, c: {"name": "b", "server": {"type": t, "entry_point": e, "mcp_config": c}},
            st.sampled_from(["node", "python", "uv", "binary", "x"]),
            st.one_of(st.text(max_size=8), st.sampled_from(["server/a.js", "../a", "/abs"])),
            json_ish,
        ),
    ),
    st.dictionaries(
        st.one_of(
            st.text(
                st.characters(exclude_characters="\0", exclude_categories=("Cs",)),
                min_size=1,
                max_size=6,
            ),
            st.sampled_from(["server/a.js", "../up", "/root", "a/../../b", "C:/x", "dir/"]),
        ),
        st.binary(max_size=50),
        max_size=3,
    ),
)
def test_fuzz_bundles(tmp_path: Path, manifest: Any, members: dict[str, bytes]) -> None:
    store = _fresh_store(tmp_path)
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    path = folder / "x.mcpb"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for name, content in members.items():
            if name and name != "manifest.json":
                zf.writestr(name, content)
    preview = classify_drop([path], existing=store.names(), bundle_dir=folder / "b")
    _check(preview, store)
