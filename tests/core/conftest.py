"""Fixtures the chat tests share: two fake Ollama boxes, a registry with only what a test
adds, and a chat store on a real SQLite file in the test's folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from app.core.chat import ChatStore
from app.core.hosts.registry import HostRegistry
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from tests.fakes.ollama import FakeOllama
from tests.support.memory_keyring import MemoryKeyring


@pytest.fixture
def box_a() -> Iterator[FakeOllama]:
    with FakeOllama(host="127.0.0.2", port=0) as server:
        yield server


@pytest.fixture
def box_b() -> Iterator[FakeOllama]:
    with FakeOllama(host="127.0.0.3", port=0) as server:
        yield server


@pytest.fixture
def chat_registry(tmp_path: Path) -> HostRegistry:
    """A registry without the built-in host: only the fakes a test adds."""
    reg = HostRegistry(SettingsStore(tmp_path / "s.json"), SecretStore(MemoryKeyring()), env={})
    reg.remove("local")
    return reg


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "chat.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[ChatStore]:
    async with ChatStore(db_path) as s:
        yield s
