"""Other clients' MCP config files: every format read, detected, and never a crash."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.mcp.config import InputRequest, validate_server
from app.core.mcp.importers import (
    ClientFormat,
    ImportResult,
    decode_text,
    detect_format,
    fill_inputs,
    find_client_configs,
    import_server,
    load_document,
    parse_document,
    parse_file,
    parse_text,
    read_config_file,
    strip_jsonc,
)
from app.core.mcp.types import McpConfigError, ServerConfig, Transport

DATA = Path(__file__).parent / "data" / "mcp"
HOME = DATA / "home"


def servers(result: ImportResult) -> dict[str, ServerConfig]:
    return {s.config.name: s.config for s in result.servers}


def test_claude_desktop() -> None:
    result = parse_file(HOME / ".config/Claude/claude_desktop_config.json")
    assert result.client is ClientFormat.CLAUDE_DESKTOP
    got = servers(result)
    assert list(got) == ["filesystem", "github", "time"]
    assert got["filesystem"].transport is Transport.STDIO
    assert got["filesystem"].args[-1] == "/home/alice/Downloads"
    assert got["github"].env["GITHUB_PERSONAL_ACCESS_TOKEN"] == "example-github-token"
    assert got["github"].secret_env == ("GITHUB_PERSONAL_ACCESS_TOKEN",)  # pre-marked
    assert "Claude Desktop" in result.servers[0].source


def test_cursor() -> None:
    result = parse_file(HOME / ".cursor/mcp.json")
    assert result.client is ClientFormat.CURSOR
    got = servers(result)
    assert got["hf"].transport is Transport.HTTP
    assert got["hf"].headers["Authorization"] == "Bearer ${env:HF_TOKEN}"
    assert got["hf"].secret_headers == ()  # a template, resolved at start
    assert got["legacy-events"].transport is Transport.SSE
    postgres = next(s for s in result.servers if s.config.name == "postgres")
    assert any("envFile" in w for w in postgres.warnings)


def test_windsurf() -> None:
    result = parse_file(HOME / ".codeium/windsurf/mcp_config.json")
    assert result.client is ClientFormat.WINDSURF
    got = servers(result)
    assert got["figma"].url == "https://mcp.figma.com/mcp"
    assert got["figma"].transport is Transport.HTTP
    brave = got["brave-search"]
    assert not brave.enabled
    assert brave.auto_approve == ("brave_web_search",)
    assert brave.secret_env == ("BRAVE_API_KEY",)
    imported = next(s for s in result.servers if s.config.name == "brave-search")
    assert any("disabled tools" in w for w in imported.warnings)


def test_vscode_with_inputs_and_comments() -> None:
    result = parse_file(HOME / ".config/Code/User/mcp.json")
    assert result.client is ClientFormat.VSCODE
    got = {s.config.name: s for s in result.servers}
    assert list(got) == ["perplexity", "context7", "memory", "old-sse"]
    perplexity = got["perplexity"]
    ids = {i.id: i for i in perplexity.inputs}
    assert ids["perplexity-key"].password and ids["perplexity-key"].description == (
        "Perplexity API Key"
    )
    assert ids["region"].choices == ("eu", "us") and ids["region"].default == "eu"
    assert got["context7"].config.transport is Transport.HTTP
    assert [i.id for i in got["context7"].inputs] == ["perplexity-key"]
    assert got["old-sse"].config.transport is Transport.SSE
    assert any("dev" in w for w in got["memory"].warnings)

    filled = fill_inputs(perplexity.config, perplexity.inputs, {"perplexity-key": "pplx-1"})
    assert filled.env["PERPLEXITY_API_KEY"] == "pplx-1"
    assert filled.env["PERPLEXITY_REGION"] == "eu"  # the default
    assert "PERPLEXITY_API_KEY" in filled.secret_env  # a password input is a secret
    with pytest.raises(McpConfigError, match="Perplexity API Key"):
        fill_inputs(perplexity.config, perplexity.inputs, {})


def test_vscode_settings_json_with_mcp_section() -> None:
    result = parse_file(DATA / "extra/vscode-settings.json")
    assert result.client is ClientFormat.VSCODE
    assert servers(result)["fetch"].args == ("mcp-server-fetch",)


def test_zed_in_every_form() -> None:
    result = parse_file(HOME / ".config/zed/settings.json")
    assert result.client is ClientFormat.ZED
    got = servers(result)
    assert list(got) == ["git", "sqlite", "fetch", "linear"]
    assert got["sqlite"].env["LOG_LEVEL"] == "info"  # the old "source": "custom" form
    assert got["fetch"].command == "/usr/local/bin/uvx"  # the "command": {"path"} form
    assert got["linear"].transport is Transport.HTTP
    assert got["linear"].secret_headers == ("Authorization",)
    (skipped,) = result.skipped
    assert "mcp-server-github" in skipped and "extension" in skipped

    old = servers(parse_file(DATA / "extra/zed-settings-old.json"))
    assert old["postgres"].args[-1] == "postgresql://localhost/zed"
    assert old["postgres"].secret_env == ("PGPASSWORD",)


def test_continue_yaml() -> None:
    result = parse_file(HOME / ".continue/config.yaml")
    assert result.client is ClientFormat.CONTINUE
    got = {s.config.name: s for s in result.servers}
    assert list(got) == ["SQLite MCP", "Playwright", "Docs search", "Old events"]
    docs = got["Docs search"]
    assert docs.config.transport is Transport.HTTP
    assert docs.config.headers["Authorization"] == "Bearer ${input:DOCS_TOKEN}"
    assert docs.inputs == (InputRequest("DOCS_TOKEN", "DOCS_TOKEN", password=True),)
    assert got["Old events"].config.transport is Transport.SSE
    assert got["Playwright"].config.env["PLAYWRIGHT_BROWSERS_PATH"].endswith("ms-playwright")


def test_continue_block_files_yaml_and_json() -> None:
    block = parse_file(HOME / ".continue/mcpServers/brave.yaml")
    assert block.client is ClientFormat.CONTINUE
    (brave,) = block.servers
    assert brave.config.name == "Brave Search"
    assert brave.inputs[0].id == "BRAVE_API_KEY" and brave.inputs[0].password
    claude_style = parse_file(HOME / ".continue/mcpServers/claude-style.json")
    assert [s.config.name for s in claude_style.servers] == ["everything"]


def test_continue_old_json() -> None:
    result = parse_file(DATA / "extra/continue-config-old.json")
    assert result.client is ClientFormat.CONTINUE
    (sqlite,) = result.servers
    assert sqlite.config.command == "uvx" and sqlite.config.name == "sqlite"


def test_lm_studio() -> None:
    result = parse_file(HOME / ".lmstudio/mcp.json")
    assert result.client is ClientFormat.LM_STUDIO
    got = servers(result)
    assert got["hf-mcp-server"].secret_headers == ("Authorization",)
    assert got["js-sandbox"].env["SANDBOX_TIMEOUT_MS"] == "5000"  # a number became text


def test_jan() -> None:
    result = parse_file(HOME / ".config/Jan/data/mcp_config.json")
    assert result.client is ClientFormat.JAN
    got = servers(result)
    assert got["exa"].transport is Transport.HTTP and got["exa"].command == ""
    assert got["exa"].enabled and not got["fetch"].enabled
    assert got["sequential-thinking"].timeout_s == 45


def test_anythingllm() -> None:
    result = parse_file(
        HOME / ".config/anythingllm-desktop/storage/plugins/anythingllm_mcp_servers.json"
    )
    assert result.client is ClientFormat.ANYTHINGLLM
    got = servers(result)
    assert not got["mcp-youtube"].enabled  # anythingllm.autoStart false
    assert got["postgres-http"].transport is Transport.HTTP  # "type": "streamable"
    assert got["postgres-http"].secret_headers == ("X-API-KEY",)
    assert got["knowledge-base"].transport is Transport.SSE  # AnythingLLM's default for a URL


def test_oterm() -> None:
    result = parse_file(HOME / ".local/share/oterm/config.json")
    assert result.client is ClientFormat.OTERM
    got = servers(result)
    assert got["remote-notes"].headers["Authorization"] == "Bearer notes-token-123"
    assert got["git"].command == "docker"
    (skipped,) = result.skipped
    assert "chat-ws" in skipped and "WebSocket" in skipped


def test_cline_style_settings() -> None:
    (weather,) = parse_file(DATA / "extra/cline_mcp_settings.json").servers
    assert weather.config.auto_approve == ("get_forecast",)
    assert weather.config.timeout_s == 60  # 60000 read as milliseconds
    assert any("milliseconds" in w for w in weather.warnings)


def test_corral_own_file_keeps_keyring_references() -> None:
    got = servers(parse_file(DATA / "extra/corral-mcp.json"))
    assert got["search"].secret_headers == ("Authorization",)
    assert not got["search"].enabled
    assert got["time"].auto_approve == ("get_current_time",)


def test_bare_mapping_snippet() -> None:
    result = parse_file(DATA / "extra/snippet-bare.json")
    assert result.client is ClientFormat.GENERIC
    got = servers(result)
    assert got["deepwiki"].transport is Transport.SSE


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("extra/broken.json", "not valid JSON (line 4"),
        ("extra/not-mcp.json", "holds no MCP servers"),
        ("extra/snippet-one-server.json", "holds no MCP servers"),
    ],
)
def test_unusable_files_say_why(name: str, expected: str) -> None:
    with pytest.raises(McpConfigError, match=expected.replace("(", r"\(")):
        parse_file(DATA / name)


def test_content_wins_over_the_file_name() -> None:
    jan = json.loads((HOME / ".config/Jan/data/mcp_config.json").read_text())
    assert detect_format(jan, "whatever.json") is ClientFormat.JAN
    assert detect_format({"mcpServers": {}}, "/home/u/.cursor/mcp.json") is ClientFormat.CURSOR
    assert detect_format({"mcpServers": {}}, "/x/claude_desktop_config.json") is (
        ClientFormat.CLAUDE_DESKTOP
    )
    assert detect_format({"mcpServers": {}}, "mcp.json") is ClientFormat.GENERIC
    assert detect_format({"servers": {}}, "/home/u/.cursor/mcp.json") is ClientFormat.VSCODE
    with pytest.raises(McpConfigError):
        detect_format([1, 2])


def test_the_client_can_be_forced() -> None:
    text = (HOME / ".cursor/mcp.json").read_text()
    assert parse_text(text, client=ClientFormat.LM_STUDIO).client is ClientFormat.LM_STUDIO
    with pytest.raises(McpConfigError, match="Zed"):
        parse_text(text, client=ClientFormat.ZED)


def test_jsonc() -> None:
    text = """// comment
    {"a": "http://x//y", /* block */ "b": [1, 2,], "c": {"d": "/* no */",},}"""
    assert json.loads(strip_jsonc(text)) == {
        "a": "http://x//y",
        "b": [1, 2],
        "c": {"d": "/* no */"},
    }


def test_yaml_aliases_are_refused() -> None:
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\nmcpServers: []\n"
    with pytest.raises(McpConfigError, match="neither JSON nor YAML"):
        load_document(bomb, "c.yaml")


def test_huge_and_binary_files_are_refused(tmp_path: Path) -> None:
    huge = tmp_path / "mcp.json"
    huge.write_text('{"mcpServers": {}, "pad": "' + "x" * 1_100_000 + '"}')
    with pytest.raises(McpConfigError, match="MB"):
        read_config_file(huge)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00")
    with pytest.raises(McpConfigError, match="binary"):
        read_config_file(binary)
    with pytest.raises(McpConfigError, match="does not exist"):
        read_config_file(tmp_path / "none.json")
    with pytest.raises(McpConfigError, match="folder"):
        read_config_file(tmp_path)


def test_utf16_and_bom_files_are_read(tmp_path: Path) -> None:
    doc = '{"mcpServers": {"t": {"command": "uvx"}}}'
    (tmp_path / "a.json").write_bytes(doc.encode("utf-16"))
    (tmp_path / "b.json").write_bytes(b"\xef\xbb\xbf" + doc.encode())
    assert servers(parse_file(tmp_path / "a.json"))["t"].command == "uvx"
    assert servers(parse_file(tmp_path / "b.json"))["t"].command == "uvx"


def test_bad_entries_are_skipped_with_a_reason() -> None:
    result = parse_document(
        {
            "mcpServers": {
                "ok": {"command": "uvx"},
                "nothing": {},
                "list": [1],
                "ftp": {"url": "ftp://files.example.com"},
                "args": {"command": "x", "args": {"a": 1}},
                "typo": {"type": "grpc", "url": "https://a.example"},
            }
        }
    )
    assert [s.config.name for s in result.servers] == ["ok"]
    assert len(result.skipped) == 5 and all(result.skipped)


def test_odd_names_are_cleaned_and_duplicates_renamed() -> None:
    result = parse_document(
        {"mcpServers": {" spaced ": {"command": "a"}, "": {"command": "npx", "args": ["pkg"]}}}
    )
    names = [s.config.name for s in result.servers]
    assert names == ["spaced", "pkg"]
    result = parse_document(
        {"mcpServers": [{"name": "x", "command": "a"}, {"name": "x", "command": "b"}]}
    )
    assert [s.config.name for s in result.servers] == ["x", "x-2"]


def test_import_server_for_a_single_object() -> None:
    imported = import_server("t", {"command": "uvx", "args": ["mcp-server-time"]})
    assert imported.config.args == ("mcp-server-time",)
    with pytest.raises(McpConfigError, match="neither a command nor an address"):
        import_server("t", {"args": []})


def test_fill_inputs_expands_several_answers_into_arguments() -> None:
    config = ServerConfig(name="fs", command="node", args=("index.js", "${input:dirs}"))
    request = InputRequest("dirs", "Folders", kind="directory", multiple=True)
    filled = fill_inputs(config, [request], {"dirs": ["/a", "/b"]})
    assert filled.args == ("index.js", "/a", "/b")
    filled = fill_inputs(config, [request], {"dirs": f"/c\n/d{os.pathsep}/e"})
    assert filled.args == ("index.js", "/c", "/d", "/e")


# --- finding other clients' files -------------------------------------------------------


def test_find_client_configs_on_linux(tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(HOME, home)
    found = find_client_configs(home, env={}, platform="linux")
    by_client: dict[ClientFormat, list[Path]] = {}
    for f in found:
        by_client.setdefault(f.client, []).append(f.path)
        assert f.path.is_file() and f.client.label in f.label
    assert set(by_client) == {
        ClientFormat.CLAUDE_DESKTOP,
        ClientFormat.CURSOR,
        ClientFormat.WINDSURF,
        ClientFormat.VSCODE,
        ClientFormat.ZED,
        ClientFormat.CONTINUE,
        ClientFormat.LM_STUDIO,
        ClientFormat.JAN,
        ClientFormat.ANYTHINGLLM,
        ClientFormat.OTERM,
    }
    assert len(by_client[ClientFormat.CONTINUE]) == 3  # config.yaml and two block files
    for f in found:  # every file found can be read
        assert parse_file(f.path, f.client).servers


def test_find_client_configs_follows_xdg_and_oterm_variables(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cfg = tmp_path / "xdg-config"
    (cfg / "Code" / "User").mkdir(parents=True)
    (cfg / "Code" / "User" / "mcp.json").write_text('{"servers": {}}')
    oterm = tmp_path / "oterm-data"
    oterm.mkdir()
    (oterm / "config.json").write_text('{"mcpServers": {}}')
    found = find_client_configs(
        home, env={"XDG_CONFIG_HOME": str(cfg), "OTERM_DATA_DIR": str(oterm)}, platform="linux"
    )
    assert [(f.client, f.path) for f in found] == [
        (ClientFormat.VSCODE, cfg / "Code" / "User" / "mcp.json"),
        (ClientFormat.OTERM, oterm / "config.json"),
    ]


def _touch(path: Path, text: str = '{"mcpServers": {}}') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_find_client_configs_on_macos(tmp_path: Path) -> None:
    support = tmp_path / "Library" / "Application Support"
    expected = {
        _touch(support / "Claude" / "claude_desktop_config.json"): ClientFormat.CLAUDE_DESKTOP,
        _touch(support / "Code" / "User" / "mcp.json"): ClientFormat.VSCODE,
        _touch(support / "Jan" / "data" / "mcp_config.json"): ClientFormat.JAN,
        _touch(support / "oterm" / "config.json"): ClientFormat.OTERM,
        _touch(tmp_path / ".config" / "zed" / "settings.json"): ClientFormat.ZED,
        _touch(tmp_path / ".cursor" / "mcp.json"): ClientFormat.CURSOR,
    }
    _touch(tmp_path / ".config" / "Claude" / "claude_desktop_config.json")  # Linux place
    found = find_client_configs(tmp_path, env={}, platform="darwin")
    assert {f.path: f.client for f in found} == expected


def test_find_client_configs_on_windows(tmp_path: Path) -> None:
    appdata = tmp_path / "AppData" / "Roaming"
    expected = {
        _touch(appdata / "Claude" / "claude_desktop_config.json"): ClientFormat.CLAUDE_DESKTOP,
        _touch(appdata / "Code" / "User" / "mcp.json"): ClientFormat.VSCODE,
        _touch(appdata / "Zed" / "settings.json"): ClientFormat.ZED,
        _touch(
            appdata / "anythingllm-desktop/storage/plugins/anythingllm_mcp_servers.json"
        ): ClientFormat.ANYTHINGLLM,
        _touch(tmp_path / ".lmstudio" / "mcp.json"): ClientFormat.LM_STUDIO,
        _touch(tmp_path / ".codeium" / "windsurf" / "mcp_config.json"): ClientFormat.WINDSURF,
    }
    found = find_client_configs(tmp_path, env={"APPDATA": str(appdata)}, platform="win32")
    assert {f.path: f.client for f in found} == expected
    assert find_client_configs(tmp_path / "nobody", env={}, platform="win32") == []


# --- fuzzing ----------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        ["npx", "stdio", "sse", "http", "https://a.example/mcp", "ws://x", "${input:k}"]
    ),
)
keys = st.one_of(
    st.text(max_size=8),
    st.sampled_from(
        [
            "command",
            "args",
            "env",
            "url",
            "serverUrl",
            "type",
            "headers",
            "disabled",
            "active",
            "autoApprove",
            "alwaysAllow",
            "timeout",
            "name",
            "cwd",
            "auth",
            "anythingllm",
            "source",
            "settings",
            "requestOptions",
        ]
    ),
)
json_ish = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)
documents = st.one_of(
    json_ish,
    st.builds(lambda v: {"mcpServers": v}, json_ish),
    st.builds(lambda v: {"servers": v, "inputs": [{"id": "k", "password": True}]}, json_ish),
    st.builds(lambda v: {"context_servers": v}, json_ish),
    st.builds(lambda v: {"mcpServers": {"s": v}}, st.dictionaries(keys, json_ish, max_size=6)),
    st.builds(lambda v: {"mcpServers": [v]}, st.dictionaries(keys, json_ish, max_size=6)),
)
# FUZZ_EXAMPLES=5000 for a longer run by hand
fuzz = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _check(result: ImportResult) -> None:
    for server in result.servers:
        assert validate_server(server.config) == []
        assert all(isinstance(w, str) and w for w in server.warnings)
    assert all(isinstance(s, str) and s for s in result.skipped)


@fuzz
@given(documents, st.sampled_from([None, *ClientFormat]))
def test_fuzz_documents(data: Any, client: ClientFormat | None) -> None:
    try:
        result = parse_document(data, client, filename="fuzz.json")
    except McpConfigError as exc:
        assert exc.message.strip()
    else:
        _check(result)


@fuzz
@given(st.text(max_size=300), st.sampled_from(["", "x.json", "c.yaml", "settings.json"]))
def test_fuzz_text(text: str, filename: str) -> None:
    try:
        result = parse_text(text, filename)
    except McpConfigError as exc:
        assert exc.message.strip()
    else:
        _check(result)


@fuzz
@given(documents)
def test_fuzz_serialized_documents(data: Any) -> None:
    try:
        text = json.dumps(data)
    except ValueError:
        return
    for variant in (text, text.replace("{", "{ // c\n", 1)):
        try:
            _check(parse_text(variant, "mcp.json"))
        except McpConfigError as exc:
            assert exc.message.strip()


@fuzz
@given(st.binary(max_size=300))
def test_fuzz_bytes(raw: bytes) -> None:
    try:
        _check(parse_text(decode_text(raw, "fuzz.bin"), "fuzz.bin"))
    except McpConfigError as exc:
        assert exc.message.strip()
