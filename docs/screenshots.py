"""Render the README's screenshots: the real window against fake hosts on loopback.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m docs.screenshots

Writes docs/main-window.png and docs/pull.png. Nothing outside 127.0.0.0/8 is contacted.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["QT_API"] = "pyside6"

from PySide6.QtWidgets import QApplication

# isort: split
from app.core.hosts.registry import HostRegistry
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from app.ui.event_loop import CorralEventLoop
from app.ui.main_window import MainWindow
from tests.fakes.ollama import FakeOllama
from tests.support.memory_keyring import MemoryKeyring
from tests.support.waiting import wait_for

OUT = Path(__file__).resolve().parent


async def shoot(app: QApplication) -> None:
    workstation = FakeOllama(host="127.0.0.2", port=0, vram_bytes=3 * 2**30).start()
    basement = FakeOllama(host="127.0.0.3", port=0, pull_steps=400, pull_delay=0.02).start()
    workstation.load("llava:7b", keep_alive="10m")
    workstation.load("llama3.2", keep_alive=-1)
    with tempfile.TemporaryDirectory() as tmp:
        registry = HostRegistry(
            SettingsStore(Path(tmp) / "settings.json"), SecretStore(MemoryKeyring()), env={}
        )
        ws = registry.add(workstation.url, "Workstation (RTX 4090)")
        registry.add(basement.url, "Basement rig")
        window = MainWindow(registry)
        window.resize(1180, 560)
        window.show()
        window.start()
        window.select_host(ws.id)
        await wait_for(lambda: window.model_model.rowCount() == 4)
        await wait_for(lambda: all(r.health for r in window.host_model.rows()))
        window.grab().save(str(OUT / "main-window.png"))

        window.select_host(registry.hosts()[-1].id)
        dialog = window.open_pull_dialog()
        dialog.model_edit.setText("tinyllama")
        dialog.pull_button.click()
        await wait_for(lambda: dialog.overall_bar.value() >= 35, timeout=20)
        dialog.grab().save(str(OUT / "pull.png"))
        await dialog.cancel_and_wait()
        await window.shutdown()
        window.close()
        await registry.aclose()
    workstation.stop()
    basement.stop()


def main() -> int:
    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    with asyncio.Runner(loop_factory=lambda: CorralEventLoop(app)) as runner:
        runner.run(shoot(app))
    print(f"wrote {OUT / 'main-window.png'} and {OUT / 'pull.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
