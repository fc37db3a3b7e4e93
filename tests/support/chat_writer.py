"""A process that streams one long, slow reply into a chat database, for crash tests.

It starts its own fake Ollama (on the loopback address given), opens the database, and
streams a reply through ChatEngine. On stdout, one line each:

- ``ready <conversation id> <reply id>`` once the reply is asked for;
- ``recv <monotonic seconds> <chars>`` after each piece of text arrived (chars so far);
- ``flush <monotonic seconds> <chars>`` after each write of the reply reached the file;
- ``done`` at the end (a crash test kills it long before).

Run: ``python -m tests.support.chat_writer DB HOST SETTINGS_DIR [TOKEN_DELAY]``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from app.core.chat import ChatEngine, ChatStore, Flushed
from app.core.hosts.base import ContentChunk
from app.core.hosts.registry import HostRegistry
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from tests.fakes.ollama import FakeOllama
from tests.support.memory_keyring import MemoryKeyring


def long_reply(words: int = 2000) -> str:
    """The reply the writer's fake sends: numbered words, so any prefix is recognisable."""
    return " ".join(f"w{i}" for i in range(words))


def say(*parts: object) -> None:
    print(*parts, flush=True)


async def write(db: Path, settings_dir: Path, url: str) -> None:
    registry = HostRegistry(
        SettingsStore(settings_dir / "settings.json"), SecretStore(MemoryKeyring()), env={}
    )
    host = registry.add(url, "Writer box")
    async with ChatStore(db) as store:
        engine = ChatEngine(registry, store)

        def flushed(f: Flushed) -> None:
            say("flush", f"{time.monotonic():.6f}", f.chars)

        engine.flushed.connect(flushed)
        conversation = await store.create_conversation("llama3.2", host_id=host.id)
        handle = await engine.send(conversation.id, "Count for me, slowly.")
        say("ready", conversation.id, handle.message_id)
        chars = 0
        async for event in handle:
            if isinstance(event, ContentChunk):
                chars += len(event.text)
                say("recv", f"{time.monotonic():.6f}", chars)
        await registry.aclose()
    say("done")


def main(argv: list[str]) -> int:
    db, address, settings_dir = Path(argv[0]), argv[1], Path(argv[2])
    delay = float(argv[3]) if len(argv) > 3 else 0.01
    with FakeOllama(host=address, port=0, chat_reply=long_reply()) as fake:
        fake.faults.token_delay = delay
        asyncio.run(write(db, settings_dir, fake.url))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
