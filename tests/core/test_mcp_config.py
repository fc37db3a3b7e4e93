"""Corral's MCP config file: round trips, secrets only in the keyring, a bad file kept."""

from __future__ import annotations

import json
from pathlib import Path

import keyring.errors
import pytest
from keyring.backends import fail

from app.core.errors import SecretNotStored
from app.core.mcp import config as config_module
from app.core.mcp.config import (
    McpConfigStore,
    clean_name,
    default_mcp_path,
    expand,
    is_template,
    parse_entry,
    placeholders,
    unique_name,
    validate_server,
)
from app.core.mcp.types import McpConfigError, ServerConfig, Transport
from app.core.secrets import SecretStore
from app.core.settings import default_settings_path
from tests.support.memory_keyring import MemoryKeyring

FS = ServerConfig(
    name="fs",
    command="npx",
    args=("-y", "@modelcontextprotocol/server-filesystem", "/home/alice"),
    env={"LOG_LEVEL": "debug", "GITHUB_TOKEN": "ghs-very-secret"},
    secret_env=("GITHUB_TOKEN",),
    cwd="/home/alice",
    auto_approve=("read_file",),
    timeout_s=30,
)
HF = ServerConfig(
    name="hf",
    transport=Transport.HTTP,
    url="https://huggingface.co/mcp",
    headers={"Authorization": "Bearer hf-secret-value", "X-Team": "ml"},
)


def make(tmp_path: Path, backend: object | None = None) -> tuple[McpConfigStore, MemoryKeyring]:
    kr = MemoryKeyring()
    store = McpConfigStore(
        tmp_path / "cfg" / "mcp.json",
        SecretStore(backend if backend is not None else kr),  # type: ignore[arg-type]
    )
    store.load()
    return store, kr


def test_default_path_is_next_to_the_settings_file() -> None:
    assert default_mcp_path() == default_settings_path().with_name("mcp.json")


def test_missing_file_is_an_empty_config(tmp_path: Path) -> None:
    store, _ = make(tmp_path)
    assert store.names() == []
    assert store.servers() == []
    assert not store.path.exists()


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    store, kr = make(tmp_path)
    store.add(FS)
    store.add(HF)
    data = json.loads(store.path.read_text())
    assert list(data["mcpServers"]) == ["fs", "hf"]
    assert data["mcpServers"]["fs"]["autoApprove"] == ["read_file"]
    assert data["mcpServers"]["fs"]["timeout"] == 30
    assert data["mcpServers"]["hf"]["type"] == "http"

    again = McpConfigStore(store.path, SecretStore(kr))
    assert again.load().problem is None
    fs, hf = again.servers(environ={})
    assert fs.command == "npx" and fs.args == FS.args and fs.cwd == "/home/alice"
    assert dict(fs.env) == {"LOG_LEVEL": "debug", "GITHUB_TOKEN": "ghs-very-secret"}
    assert fs.secret_env == ("GITHUB_TOKEN",)
    assert fs.auto_approve == ("read_file",) and fs.timeout_s == 30 and fs.enabled
    assert hf.transport is Transport.HTTP and hf.url == HF.url
    assert dict(hf.headers) == {"Authorization": "Bearer hf-secret-value", "X-Team": "ml"}
    assert hf.secret_headers == ("Authorization",)


def test_secrets_go_to_the_keyring_and_never_into_the_file(tmp_path: Path) -> None:
    store, kr = make(tmp_path)
    store.add(FS)
    store.add(
        ServerConfig(
            name="search",
            transport=Transport.SSE,
            url="https://search.example.com/sse",
            headers={"X-Api-Key": "k-123456", "X-Session-Token": "t-987", "Accept": "x"},
        )
    )
    raw = store.path.read_bytes()
    for secret in (b"ghs-very-secret", b"k-123456", b"t-987"):
        assert secret not in raw
    assert b"${keyring:corral-mcp/fs/env/GITHUB_TOKEN}" in raw
    assert b"${keyring:corral-mcp/search/header/X-Api-Key}" in raw
    assert b'"Accept": "x"' in raw  # not a secret: kept in the file
    assert kr.store[("corral", "corral-mcp/fs/env/GITHUB_TOKEN")] == "ghs-very-secret"
    assert kr.store[("corral", "corral-mcp/search/header/X-Session-Token")] == "t-987"
    # editing shows the secrets blank, the manager gets them resolved
    assert store.get("fs").env["GITHUB_TOKEN"] == ""
    search = next(s for s in store.servers() if s.name == "search")
    assert search.headers["X-Api-Key"] == "k-123456"


def test_without_a_keyring_nothing_is_written_for_a_server_with_secrets(tmp_path: Path) -> None:
    store, _ = make(tmp_path, backend=fail.Keyring())
    plain = ServerConfig(name="time", command="uvx", args=("mcp-server-time",))
    store.add(plain)  # no secret: fine without a keyring
    before = store.path.read_bytes()
    with pytest.raises(SecretNotStored) as caught:
        store.add(FS)
    assert "cannot keep" in caught.value.message and "fs" in caught.value.message
    assert store.path.read_bytes() == before
    assert store.names() == ["time"]
    with pytest.raises(SecretNotStored):
        store.add(HF)  # Authorization is always a secret
    assert store.path.read_bytes() == before


def test_a_template_header_is_not_a_secret(tmp_path: Path) -> None:
    store, _ = make(tmp_path, backend=fail.Keyring())
    remote = ServerConfig(
        name="hf",
        transport=Transport.HTTP,
        url="https://huggingface.co/mcp",
        headers={"Authorization": "Bearer ${env:HF_TOKEN}"},
    )
    store.add(remote)
    assert b"Bearer ${env:HF_TOKEN}" in store.path.read_bytes()
    (server,) = store.servers(environ={"HF_TOKEN": "hf-abc"})
    assert server.headers["Authorization"] == "Bearer hf-abc"


class FlakyKeyring(MemoryKeyring):
    """Stores the first secret, refuses the second."""

    def set_password(self, service: str, username: str, password: str) -> None:
        if self.store:
            raise keyring.errors.PasswordSetError("locked")
        super().set_password(service, username, password)


def test_a_keyring_failure_half_way_undoes_the_first_secret(tmp_path: Path) -> None:
    kr = FlakyKeyring()
    store, _ = make(tmp_path, backend=kr)
    server = ServerConfig(
        name="two",
        command="x",
        env={"A_TOKEN": "one", "B_TOKEN": "two"},
        secret_env=("A_TOKEN", "B_TOKEN"),
    )
    with pytest.raises(SecretNotStored) as caught:
        store.add(server)
    assert "Nothing was saved" in caught.value.message
    assert kr.store == {}
    assert not store.path.exists()


def test_a_failed_write_leaves_file_and_keyring_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, kr = make(tmp_path)
    store.add(ServerConfig(name="time", command="uvx"))
    before = store.path.read_bytes()

    def refuse(path: Path, text: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(config_module, "atomic_write_text", refuse)
    with pytest.raises(McpConfigError) as caught:
        store.add(FS)
    assert "no space left on device" in caught.value.message
    assert store.path.read_bytes() == before
    assert kr.store == {}
    assert store.names() == ["time"]


def test_replace_keeps_a_blank_secret_and_forgets_a_dropped_one(tmp_path: Path) -> None:
    store, kr = make(tmp_path)
    store.add(FS)
    store.add(HF)
    edited = store.get("fs")  # the secret comes back blank
    store.replace(ServerConfig(**{**edited.__dict__, "args": ("-y", "pkg")}))
    (fs,) = [s for s in store.servers() if s.name == "fs"]
    assert fs.env["GITHUB_TOKEN"] == "ghs-very-secret" and fs.args == ("-y", "pkg")

    store.replace(
        ServerConfig(
            name="hf", transport=Transport.HTTP, url="https://huggingface.co/mcp", headers={}
        )
    )
    assert ("corral", "corral-mcp/hf/header/Authorization") not in kr.store
    assert store.names() == ["fs", "hf"]  # the order is kept


def test_replace_with_a_new_secret_value(tmp_path: Path) -> None:
    store, kr = make(tmp_path)
    store.add(FS)
    changed = ServerConfig(**{**FS.__dict__, "env": {"GITHUB_TOKEN": "new-one"}})
    store.replace(changed)
    assert kr.store[("corral", "corral-mcp/fs/env/GITHUB_TOKEN")] == "new-one"
    assert b"new-one" not in store.path.read_bytes()


def test_remove_forgets_the_secrets(tmp_path: Path) -> None:
    store, kr = make(tmp_path)
    store.add(FS)
    store.add(HF)
    store.remove("fs")
    assert store.names() == ["hf"]
    assert not any("corral-mcp/fs/" in key for _, key in kr.store)
    with pytest.raises(McpConfigError):
        store.remove("fs")


def test_rename_moves_the_secrets(tmp_path: Path) -> None:
    store, kr = make(tmp_path)
    store.add(FS)
    store.add(HF)
    store.rename("fs", "files")
    assert store.names() == ["files", "hf"]
    assert kr.store[("corral", "corral-mcp/files/env/GITHUB_TOKEN")] == "ghs-very-secret"
    assert ("corral", "corral-mcp/fs/env/GITHUB_TOKEN") not in kr.store
    (files,) = [s for s in store.servers() if s.name == "files"]
    assert files.env["GITHUB_TOKEN"] == "ghs-very-secret"
    with pytest.raises(McpConfigError, match="already"):
        store.rename("files", "HF")
    with pytest.raises(McpConfigError):
        store.rename("files", " ")


def test_enable_and_auto_approve_keep_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "$schema": "https://example.com/schema.json",
                "mcpServers": {
                    "time": {"command": "uvx", "args": ["mcp-server-time"], "description": "t"}
                },
            }
        )
    )
    store = McpConfigStore(path, SecretStore(MemoryKeyring()))
    store.load()
    store.set_enabled("time", False)
    store.set_auto_approve("time", ["get_current_time", "get_current_time", "convert_time"])
    data = json.loads(path.read_text())
    assert data["$schema"] == "https://example.com/schema.json"
    entry = data["mcpServers"]["time"]
    assert entry["description"] == "t"
    assert entry["disabled"] is True
    assert entry["autoApprove"] == ["get_current_time", "convert_time"]
    (time,) = store.servers()
    assert not time.enabled
    store.set_enabled("time", True)
    store.set_auto_approve("time", [])
    entry = json.loads(path.read_text())["mcpServers"]["time"]
    assert "disabled" not in entry and "autoApprove" not in entry
    with pytest.raises(McpConfigError):
        store.set_auto_approve("time", [""])


def test_a_broken_file_is_moved_aside_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    broken = b'{"mcpServers": {"fs": {"command": "npx",}'
    path.write_bytes(broken)
    store = McpConfigStore(path, SecretStore(MemoryKeyring()))
    result = store.load()
    assert result.problem and "not valid JSON" in result.problem
    assert result.backup is not None and result.backup.name.startswith("mcp.json.bad-")
    assert result.backup.read_bytes() == broken
    assert not path.exists()
    store.add(ServerConfig(name="time", command="uvx"))
    assert result.backup.read_bytes() == broken
    assert json.loads(path.read_text())["mcpServers"]["time"]["command"] == "uvx"


@pytest.mark.parametrize(
    "content",
    [b"[1, 2]", b'{"mcpServers": []}', b"\xff\xfe\x00garbage", b"\x00\x01\x02"],
)
def test_files_of_the_wrong_shape_are_moved_aside(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "mcp.json"
    path.write_bytes(content)
    result = McpConfigStore(path, SecretStore(MemoryKeyring())).load()
    assert result.problem
    assert result.backup is not None and result.backup.read_bytes() == content


def test_a_broken_file_that_cannot_be_moved_makes_the_store_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mcp.json"
    path.write_bytes(b"{nope")

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(config_module.os, "rename", refuse)
    store = McpConfigStore(path, SecretStore(MemoryKeyring()))
    result = store.load()
    assert store.read_only
    assert result.problem and "permission denied" in result.problem
    with pytest.raises(McpConfigError, match="left untouched"):
        store.add(ServerConfig(name="time", command="uvx"))
    assert path.read_bytes() == b"{nope"


def test_an_unusable_entry_is_reported_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "half": {"args": ["x"], "note": "kept"},
                    "time": {"command": "uvx", "args": ["mcp-server-time"]},
                }
            }
        )
    )
    store = McpConfigStore(path, SecretStore(MemoryKeyring()))
    result = store.load()
    assert result.problem is None
    assert result.skipped is not None and "half" in result.skipped
    assert [s.name for s in store.servers()] == ["time"]
    assert store.names() == ["half", "time"]
    with pytest.raises(McpConfigError, match="cannot be used"):
        store.get("half")
    with pytest.raises(McpConfigError, match="already"):
        store.add(ServerConfig(name="half", command="x"))
    store.add(ServerConfig(name="fetch", command="uvx", args=("mcp-server-fetch",)))
    assert json.loads(path.read_text())["mcpServers"]["half"] == {"args": ["x"], "note": "kept"}
    store.remove("half")  # an unusable entry can still be removed
    assert store.names() == ["time", "fetch"]


def test_bad_servers_are_refused_with_reasons(tmp_path: Path) -> None:
    store, _ = make(tmp_path)
    with pytest.raises(McpConfigError, match="no command"):
        store.add(ServerConfig(name="x"))
    with pytest.raises(McpConfigError, match="not an http"):
        store.add(ServerConfig(name="x", transport=Transport.HTTP, url="ftp://a"))
    with pytest.raises(McpConfigError, match="WebSocket"):
        store.add(ServerConfig(name="x", transport=Transport.HTTP, url="ws://a/ws"))
    with pytest.raises(McpConfigError, match="given twice"):
        store.add_many([ServerConfig(name="a", command="x"), ServerConfig(name="A", command="y")])
    store.add(ServerConfig(name="Time", command="uvx"))
    with pytest.raises(McpConfigError, match="already"):
        store.add(ServerConfig(name="time", command="uvx"))
    assert store.names() == ["Time"]


def test_env_and_input_placeholders_resolve_at_the_last_moment(tmp_path: Path) -> None:
    store, _ = make(tmp_path)
    store.add(
        ServerConfig(
            name="gh",
            command="docker",
            args=("run", "-e", "TOKEN", "${env:IMAGE}"),
            env={
                "TOKEN": "${input:gh-token}",
                "HOME_DIR": "${HOME}/work",
                "LEVEL": "${LOG_LEVEL:-info}",
                "GONE": "${env:NOT_SET}",
                "WS": "${workspaceFolder}",
            },
        )
    )
    environ = {"IMAGE": "ghcr.io/github/github-mcp-server", "HOME": "/home/bob"}
    (gh,) = store.servers(environ=environ)
    assert gh.args[-1] == "ghcr.io/github/github-mcp-server"
    assert gh.env["HOME_DIR"] == "/home/bob/work"
    assert gh.env["LEVEL"] == "info"
    assert gh.env["GONE"] == ""
    assert gh.env["TOKEN"] == "${input:gh-token}"  # left for the caller to ask
    assert gh.env["WS"] == "${workspaceFolder}"
    assert store.missing_env(environ) == ["NOT_SET"]
    (ask,) = store.missing_inputs()
    assert ask.id == "gh-token" and ask.password
    assert store.missing_inputs({"gh-token": "x"}) == []
    (gh,) = store.servers(environ=environ, inputs={"gh-token": "ghp-1"})
    assert gh.env["TOKEN"] == "ghp-1"


def test_a_lost_keyring_value_is_reported(tmp_path: Path) -> None:
    store, kr = make(tmp_path)
    store.add(HF)
    kr.store.clear()
    assert store.missing_secrets() == {"hf": ("Authorization",)}
    (hf,) = store.servers()
    assert hf.headers["Authorization"] == ""


def test_export_to_claude_desktop(tmp_path: Path) -> None:
    store, _ = make(tmp_path)
    store.add(FS)
    store.add(HF)
    store.set_enabled("hf", False)
    result = store.export_claude_desktop()
    fs = result.data["mcpServers"]["fs"]
    assert fs == {
        "command": "npx",
        "args": list(FS.args),
        "env": {"LOG_LEVEL": "debug", "GITHUB_TOKEN": ""},
    }
    hf = result.data["mcpServers"]["hf"]
    assert hf["command"] == "npx"
    assert hf["args"][:3] == ["-y", "mcp-remote", "https://huggingface.co/mcp"]
    assert "--header" in hf["args"] and "http-only" in hf["args"]
    assert all(v in ("", "ml") for v in hf["env"].values())
    assert "ghs-very-secret" not in result.text and "hf-secret-value" not in result.text
    joined = " ".join(result.warnings)
    assert "GITHUB_TOKEN" in joined and "mcp-remote" in joined and "disabled" in joined

    with_secrets = store.export_claude_desktop(include_secrets=True)
    assert with_secrets.data["mcpServers"]["fs"]["env"]["GITHUB_TOKEN"] == "ghs-very-secret"
    assert "Bearer hf-secret-value" in with_secrets.text


def test_export_to_vscode(tmp_path: Path) -> None:
    store, _ = make(tmp_path)
    store.add(FS)
    store.add(HF)
    store.add(
        ServerConfig(
            name="events", transport=Transport.SSE, url="http://127.0.0.1:9000/sse", enabled=False
        )
    )
    result = store.export_vscode()
    servers = result.data["servers"]
    assert servers["fs"]["type"] == "stdio" and servers["fs"]["cwd"] == "/home/alice"
    assert servers["fs"]["env"]["GITHUB_TOKEN"] == "${input:fs-GITHUB_TOKEN}"
    assert servers["hf"] == {
        "type": "http",
        "url": "https://huggingface.co/mcp",
        "headers": {"Authorization": "${input:hf-Authorization}", "X-Team": "ml"},
    }
    assert servers["events"]["type"] == "sse"
    inputs = {i["id"]: i for i in result.data["inputs"]}
    assert inputs["fs-GITHUB_TOKEN"]["password"] is True
    assert inputs["hf-Authorization"]["type"] == "promptString"
    assert "ghs-very-secret" not in result.text and "hf-secret-value" not in result.text
    assert any("events" in w for w in result.warnings)

    plain = store.export_vscode(include_secrets=True)
    assert plain.data["servers"]["fs"]["env"]["GITHUB_TOKEN"] == "ghs-very-secret"
    assert "inputs" not in plain.data


def test_placeholder_helpers() -> None:
    kinds = [(p.kind, p.name) for p in placeholders("${env:A}${B}${input:c-d}${keyring:k/1}${/}")]
    assert kinds == [
        ("env", "A"),
        ("env", "B"),
        ("input", "c-d"),
        ("keyring", "k/1"),
        ("other", "/"),
    ]
    assert expand("${A:-x}-${B}", environ={"B": "b"}) == "x-b"
    assert expand("${input:q}", inputs={}) == "${input:q}"
    assert is_template("Bearer ${env:TOKEN}") and is_template("${input:key}")
    assert not is_template("Bearer abc") and not is_template("abc${env:X}")


def test_name_helpers() -> None:
    assert unique_name("fs", ["fs", "FS-2"]) == "fs-3"
    assert unique_name("new", ["fs"]) == "new"
    assert clean_name("  a\tb\x00c ") == "a b c"
    assert clean_name("\x00") == "server"
    assert len(unique_name("x" * 300, [])) <= 100


def test_parse_entry_guesses_the_transport() -> None:
    def transport(entry: dict[str, object]) -> Transport:
        return parse_entry("x", entry)[0].transport

    assert transport({"command": "npx"}) is Transport.STDIO
    assert transport({"url": "https://a.example/sse"}) is Transport.SSE
    assert transport({"url": "https://a.example/sse/"}) is Transport.SSE
    assert transport({"url": "https://a.example/mcp"}) is Transport.HTTP
    assert transport({"type": "sse", "url": "https://a.example/mcp"}) is Transport.SSE
    assert transport({"type": "streamable-http", "url": "https://a.example/sse"}) is Transport.HTTP
    config, warnings = parse_entry("x", {"command": "npx -y @scope/pkg --flag"})
    assert config.command == "npx" and config.args == ("-y", "@scope/pkg", "--flag")
    assert warnings


def test_validate_server_says_what_is_wrong() -> None:
    assert validate_server(ServerConfig(name="ok", command="x")) == []
    errors = validate_server(
        ServerConfig(
            name=" padded ",
            transport=Transport.HTTP,
            url="https://a.example/mcp",
            headers={"Bad Header": "v"},
            timeout_s=-1,
        )
    )
    assert len(errors) == 3 and all(errors)
