"""A registry that lists the built-in engine on a models folder of the caller's."""

from __future__ import annotations

from pathlib import Path

from app.core.hosts.registry import HostFactory, HostRegistry, default_host_factory
from app.core.secrets import SecretStore
from app.core.settings import SettingsStore
from tests.support.memory_keyring import MemoryKeyring


def engine_registry(
    settings_path: Path, models_dir: Path, *, host_factory: HostFactory = default_host_factory
) -> HostRegistry:
    """A registry on the settings file ``settings_path`` that lists the built-in engine
    (``CORRAL_ENGINE=1``; llama.cpp's server must be installed, or ``engine_installed``
    patched) on the models folder ``models_dir`` (never the user's), without the built-in
    Ollama host; secrets in memory."""
    registry = HostRegistry(
        SettingsStore(settings_path),
        SecretStore(MemoryKeyring()),
        env={"CORRAL_ENGINE": "1"},
        host_factory=host_factory,
    )
    registry.settings.models_dir = str(models_dir)
    registry.remove("local")
    return registry
