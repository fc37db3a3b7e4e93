"""The host registry: built-in hosts, user hosts persisted, secrets kept out of the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from keyring.backends import fail

from app.core.errors import InvalidInput
from app.core.hosts.base import HostConfig
from app.core.hosts.registry import ENV_ID, LOCAL_ID, HostRegistry
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from tests.support.memory_keyring import MemoryKeyring


def make(
    tmp_path: Path, *, env: dict[str, str] | None = None, keyring: object | None = None
) -> HostRegistry:
    backend = keyring if keyring is not None else MemoryKeyring()
    return HostRegistry(
        SettingsStore(tmp_path / "settings.json"),
        SecretStore(backend),  # type: ignore[arg-type]
        env=env or {},
    )


def test_this_machine_is_there_by_default(tmp_path: Path) -> None:
    hosts = make(tmp_path).hosts()
    assert [(h.id, h.url, h.source) for h in hosts] == [
        (LOCAL_ID, "http://127.0.0.1:11434", "default")
    ]


def test_ollama_host_env_adds_a_host(tmp_path: Path) -> None:
    hosts = make(tmp_path, env={"OLLAMA_HOST": "0.0.0.0:9999"}).hosts()
    assert [(h.id, h.url) for h in hosts] == [
        (LOCAL_ID, "http://127.0.0.1:11434"),
        (ENV_ID, "http://127.0.0.1:9999"),
    ]


def test_ollama_host_env_equal_to_the_default_is_not_listed_twice(tmp_path: Path) -> None:
    hosts = make(tmp_path, env={"OLLAMA_HOST": "0.0.0.0"}).hosts()
    assert [h.id for h in hosts] == [LOCAL_ID]


def test_added_hosts_are_persisted_and_come_back(tmp_path: Path) -> None:
    registry = make(tmp_path)
    seen: list[list[HostConfig]] = []
    registry.changed.connect(seen.append)
    added = registry.add("192.168.1.20", "GPU box", headers=[("X-Team", "ml")])
    assert added.url == "http://192.168.1.20:11434"
    assert seen and seen[-1][-1] == added
    again = make(tmp_path).hosts()
    assert again[-1] == added
    assert again[-1].header_dict() == {"X-Team": "ml"}


def test_duplicate_and_bad_urls_are_refused_and_change_nothing(tmp_path: Path) -> None:
    registry = make(tmp_path)
    registry.add("http://127.0.0.2:11434")
    before = (tmp_path / "settings.json").read_text()
    with pytest.raises(InvalidInput, match="already in the list"):
        registry.add("127.0.0.2")
    with pytest.raises(InvalidInput, match="already in the list as 'This computer'"):
        registry.add("127.0.0.1:11434")
    with pytest.raises(InvalidInput, match="http:// or https://"):
        registry.add("ftp://x")
    with pytest.raises(InvalidInput, match="valid header name"):
        registry.add("127.0.0.9", headers=[("Bad Name", "x")])
    assert (tmp_path / "settings.json").read_text() == before
    assert len(registry.hosts()) == 2


def test_edit_and_remove(tmp_path: Path) -> None:
    registry = make(tmp_path)
    host = registry.add("127.0.0.2")
    registry.update(host.id, name="Renamed", url="127.0.0.3:1234")
    assert make(tmp_path).get(host.id).name == "Renamed"
    assert make(tmp_path).get(host.id).url == "http://127.0.0.3:1234"
    registry.remove(host.id)
    assert [h.id for h in make(tmp_path).hosts()] == [LOCAL_ID]
    with pytest.raises(InvalidInput):
        registry.remove(host.id)


def test_built_in_hosts_can_be_edited_hidden_and_restored(tmp_path: Path) -> None:
    registry = make(tmp_path)
    registry.update(LOCAL_ID, name="Workstation")
    assert make(tmp_path).get(LOCAL_ID).name == "Workstation"
    registry.remove(LOCAL_ID)
    assert make(tmp_path).hosts() == []
    registry.restore_builtin_hosts()
    assert [h.name for h in make(tmp_path).hosts()] == ["This computer"]


def test_secret_headers_go_to_the_keyring_not_the_file(tmp_path: Path) -> None:
    keyring = MemoryKeyring()
    registry = make(tmp_path, keyring=keyring)
    host = registry.add("127.0.0.2", headers=[("Authorization", "Bearer s3cr3t-t0ken")])
    text = (tmp_path / "settings.json").read_text()
    assert "s3cr3t-t0ken" not in text
    assert json.loads(text)["hosts"][0]["headers"] == [
        {"name": "Authorization", "value": "", "secret": True}
    ]
    assert "Bearer s3cr3t-t0ken" in keyring.store.values()
    # A new registry (next start) finds the header again through the keyring.
    assert make(tmp_path, keyring=keyring).get(host.id).header_dict() == {
        "Authorization": "Bearer s3cr3t-t0ken"
    }
    registry.remove(host.id)
    assert keyring.store == {}


def test_the_keyring_is_read_once_not_on_every_lookup(tmp_path: Path) -> None:
    class CountingKeyring(MemoryKeyring):
        reads = 0

        def get_password(self, service: str, username: str) -> str | None:
            CountingKeyring.reads += 1
            return super().get_password(service, username)

    keyring = CountingKeyring()
    host = make(tmp_path, keyring=keyring).add("127.0.0.2", headers=[("X-Api-Key", "k")])
    registry = make(tmp_path, keyring=keyring)
    for _ in range(20):
        registry.hosts()
        registry.host(host.id)
    assert CountingKeyring.reads == 1
    assert registry.get(host.id).header_dict() == {"X-Api-Key": "k"}


def test_without_a_keyring_the_secret_is_used_but_never_written(tmp_path: Path) -> None:
    registry = make(tmp_path, keyring=fail.Keyring())
    host = registry.add("127.0.0.2", headers=[("Authorization", "Bearer s3cr3t-t0ken")])
    assert registry.get(host.id).header_dict() == {"Authorization": "Bearer s3cr3t-t0ken"}
    assert any("cannot keep this secret" in p for p in registry.problems)
    assert "s3cr3t-t0ken" not in (tmp_path / "settings.json").read_text()
    later = make(tmp_path, keyring=fail.Keyring())
    assert later.get(host.id).header_dict() == {}
    assert later.missing_secrets(host.id) == ["Authorization"]


def test_corrupt_settings_are_reported_through_the_registry(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text("{oops")
    registry = make(tmp_path)
    assert len(registry.problems) == 1 and "not valid JSON" in registry.problems[0]
    assert [h.id for h in registry.hosts()] == [LOCAL_ID]


async def test_host_objects_are_cached_and_replaced_on_edit(tmp_path: Path) -> None:
    registry = make(tmp_path)
    config = registry.add("127.0.0.2")
    first = registry.host(config.id)
    assert registry.host(config.id) is first
    registry.update(config.id, name="Other")
    second = registry.host(config.id)
    assert second is not first and second.config.name == "Other"
    await registry.aclose()


def test_hosts_found_on_this_machine_appear_at_once_but_are_not_saved(tmp_path: Path) -> None:
    from app.core.hosts.base import HostKind

    registry = make(tmp_path)
    seen: list[list[HostConfig]] = []
    registry.changed.connect(seen.append)
    lmstudio = HostConfig("local-1234", "LM Studio", "127.0.0.1:1234", HostKind.LMSTUDIO)
    again = HostConfig("local-11434", "Ollama", "127.0.0.1:11434", HostKind.OLLAMA)
    registry.set_local_hosts([lmstudio, again])
    hosts = registry.hosts()
    assert [(h.id, h.url, h.kind, h.source) for h in hosts] == [
        (LOCAL_ID, "http://127.0.0.1:11434", HostKind.OLLAMA, "default"),
        ("local-1234", "http://127.0.0.1:1234", HostKind.LMSTUDIO, "local"),
    ]  # the default Ollama is not listed twice
    assert seen and seen[-1] == hosts
    assert not (tmp_path / "settings.json").exists()
    # Renaming it saves it, with its kind.
    registry.update("local-1234", name="Studio")
    assert make(tmp_path).settings.hosts[0].kind == "lmstudio"


def test_added_hosts_keep_their_kind(tmp_path: Path) -> None:
    from app.core.hosts.base import HostKind

    registry = make(tmp_path)
    config = registry.add("127.0.0.9:8080", "llama box", kind=HostKind.LLAMACPP)
    assert make(tmp_path).get(config.id).kind is HostKind.LLAMACPP
    # and the live host object is of the matching type
    from app.core.hosts.ollama import OllamaHost
    from app.core.hosts.openai import OpenAIHost

    assert isinstance(registry.host(config.id), OpenAIHost)
    assert isinstance(registry.host("local"), OllamaHost)
