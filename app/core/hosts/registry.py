"""The host registry: this machine, OLLAMA_HOST, and the hosts the user added.

Built-in hosts (``local``: this machine's default Ollama; ``builtin``: Corral's own
llama.cpp engine when it is installed; ``env``: OLLAMA_HOST when it points elsewhere)
appear without being saved. The user can edit them (the edit is saved
under the same id) or remove them (their id is remembered as hidden). Secret header values
go to the keyring; the settings file only says that a secret exists.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets as _random
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from app.core.engine import engine_installed
from app.core.errors import InvalidInput, SecretNotStored, SettingsError
from app.core.events import Event
from app.core.hosts.address import DEFAULT_OLLAMA_URL, normalize_host_url, parse_ollama_host
from app.core.hosts.base import Host, HostConfig, HostKind, Timeouts
from app.core.hosts.engine import (
    ENGINE_ID,
    ENGINE_URL,
    EngineHost,
    engine_config,
    engine_settings,
)
from app.core.hosts.ollama import OllamaHost
from app.core.hosts.openai import OpenAIHost
from app.core.secrets import SecretStore, is_sensitive_header
from app.core.settings import HeaderEntry, HostEntry, LoadResult, Settings, SettingsStore

log = logging.getLogger(__name__)

LOCAL_ID = "local"
ENV_ID = "env"

HostFactory = Callable[[HostConfig, Settings], Host]


def default_host_factory(config: HostConfig, settings: Settings) -> Host:
    """The live host object for a config: by kind, with the timeouts of the settings."""
    timeouts = Timeouts(
        connect=settings.connect_timeout_s,
        request=settings.request_timeout_s,
        load=settings.load_timeout_s,
        probe=settings.probe_timeout_s,
    )
    if config.kind is HostKind.OLLAMA:
        return OllamaHost(config, timeouts=timeouts, default_keep_alive=settings.default_keep_alive)
    if config.id == ENGINE_ID and config.url == ENGINE_URL:
        from app.core.engine.catalog import EngineCatalog  # reads GGUF: not at start-up
        from app.core.engine.models import ModelsFolder
        from app.core.engine.ollama_store import OllamaStore

        return EngineHost(
            config,
            catalog=EngineCatalog(ModelsFolder(settings.models_path()), OllamaStore()),
            settings=engine_settings(settings),
            timeouts=timeouts,
        )
    return OpenAIHost(config, timeouts=timeouts)


def _secret_key(host_id: str, header: str) -> str:
    return f"host/{host_id}/header/{header.lower()}"


def _token_key(host_id: str) -> str:
    return f"host/{host_id}/agent-token"


DEFAULT_AGENT_PORT = 9101  # the host agent's port (python -m app agent)
DEFAULT_EXPORTER_PORT = 9100  # node_exporter's


def _normalize_agent_url(text: str) -> str:
    return normalize_host_url(text, default_port=DEFAULT_AGENT_PORT) if text.strip() else ""


def _normalize_exporter_urls(text: str) -> str:
    """One or more exporter URLs (spaces or commas between them), each checked."""
    urls = [u for u in text.replace(",", " ").split() if u]
    return " ".join(normalize_host_url(u, default_port=DEFAULT_EXPORTER_PORT) for u in urls)


class HostRegistry:
    """The list of hosts Corral manages.

    Attributes:
        settings: the live settings (shared with the rest of the app).
        problems: sentences for the user about settings or secrets that could not be used.
        changed: emitted with the new host list after every add, edit or remove.
    """

    def __init__(
        self,
        store: SettingsStore,
        secret_store: SecretStore,
        *,
        env: Mapping[str, str] | None = None,
        host_factory: HostFactory = default_host_factory,
        loaded: LoadResult | None = None,
    ) -> None:
        self._store = store
        self._secrets = secret_store
        self._env = dict(os.environ if env is None else env)
        self._own_env = env is None  # this process's environment, not one given for a test
        self._factory = host_factory
        if loaded is None:  # else: what the caller already read from this store
            loaded = store.load()
        self.settings: Settings = loaded.settings
        self.problems: list[str] = [loaded.problem] if loaded.problem else []
        self.changed: Event[list[HostConfig]] = Event("hosts.changed")
        self._session_secrets: dict[str, str] = {}  # secrets the keyring could not keep
        # Secrets read from the keyring once; hosts() is called often and a keyring read
        # can be a blocking D-Bus call (or an unlock prompt).
        self._secret_cache: dict[str, str | None] = {}
        self._hosts: dict[str, tuple[HostConfig, Host]] = {}
        self._retired: list[Host] = []
        # Hosts found on this machine (LM Studio, llama.cpp, vLLM on their usual ports):
        # shown at once, like the built-in host, but not written to the settings file.
        self._local_found: list[HostConfig] = []
        self._engine: bool | None = None  # whether the built-in engine is listed

    # -- reading ----------------------------------------------------------------------
    def _engine_listed(self) -> bool:
        """Whether the built-in engine is listed (found out once): when llama.cpp's server
        is installed and CORRAL_ENGINE is not 0. A registry given an environment of its own
        (``env``: tests, tools) lists it only when that environment says CORRAL_ENGINE=1."""
        if self._engine is None:
            said = self._env.get("CORRAL_ENGINE", "").strip().lower()
            off = said in ("0", "off", "no")
            wanted = said in ("1", "on", "yes") or (self._own_env and not off)
            self._engine = wanted and engine_installed()
        return self._engine

    def _builtins(self) -> list[HostConfig]:
        out = [HostConfig(LOCAL_ID, "This computer", DEFAULT_OLLAMA_URL, source="default")]
        raw = self._env.get("OLLAMA_HOST", "").strip()
        if raw:
            url = parse_ollama_host(raw)
            if url != DEFAULT_OLLAMA_URL:
                out.append(HostConfig(ENV_ID, f"OLLAMA_HOST ({url})", url, source="env"))
        known = {c.url for c in out}
        saved = {e.url: e.id for e in self.settings.hosts}
        out.extend(
            c
            for c in self._local_found
            if c.url not in known and saved.get(c.url, c.id) == c.id  # not a user's host
        )
        return out

    def _config_from_entry(self, entry: HostEntry, source: str) -> HostConfig:
        headers = []
        for h in entry.headers:
            value = h.value
            if h.secret:
                key = _secret_key(entry.id, h.name)
                value = self._session_secrets.get(key) or self._keyring_value(key) or ""
            if value:
                headers.append((h.name, value))
        kind = (
            HostKind(entry.kind) if entry.kind in HostKind.__members__.values() else HostKind.OLLAMA
        )
        return HostConfig(
            entry.id,
            entry.name,
            entry.url,
            kind,
            tuple(headers),
            source,
            agent_url=entry.agent_url,
            exporter_url=entry.exporter_url,
        )

    def _keyring_value(self, key: str) -> str | None:
        if key not in self._secret_cache:
            self._secret_cache[key] = self._secrets.get(key)
        return self._secret_cache[key]

    @property
    def secrets(self) -> SecretStore:
        """The secret store (the OS keyring) the registry keeps host secrets in."""
        return self._secrets

    def hosts(self) -> list[HostConfig]:
        saved = {e.id: e for e in self.settings.hosts}
        out: list[HostConfig] = []
        for builtin in self._builtins():
            if builtin.id in self.settings.hidden_hosts:
                continue
            entry = saved.pop(builtin.id, None)
            out.append(self._config_from_entry(entry, builtin.source) if entry else builtin)
        builtin_ids = {LOCAL_ID, ENV_ID, ENGINE_ID} | {c.id for c in self._local_found}
        for entry in saved.values():
            if entry.id in builtin_ids:
                continue  # an edited built-in whose origin is gone (OLLAMA_HOST unset)
            out.append(self._config_from_entry(entry, "user"))
        # the built-in engine comes last: the hosts the user has are picked before it
        if self._engine_listed() and ENGINE_ID not in self.settings.hidden_hosts:
            entry = saved.get(ENGINE_ID)
            out.append(self._config_from_entry(entry, "default") if entry else engine_config())
        return out

    def get(self, host_id: str) -> HostConfig:
        for config in self.hosts():
            if config.id == host_id:
                return config
        raise InvalidInput(f"There is no host with id {host_id!r}.")

    def host(self, host_id: str) -> Host:
        """The live host object for ``host_id`` (recreated when its config changed)."""
        config = self.get(host_id)
        cached = self._hosts.get(host_id)
        if cached is not None and cached[0] == config:
            return cached[1]
        if cached is not None:
            self._retired.append(cached[1])
        host = self._factory(config, self.settings)
        self._hosts[host_id] = (config, host)
        return host

    def agent_token(self, host_id: str) -> str | None:
        """The token for a host's agent (or exporter), from the keyring; None if none."""
        entry = next((e for e in self.settings.hosts if e.id == host_id), None)
        if entry is None or not entry.agent_token:
            return None
        key = _token_key(host_id)
        return self._session_secrets.get(key) or self._keyring_value(key) or None

    def missing_secrets(self, host_id: str) -> list[str]:
        """Names of secret headers of a host whose value is not available (not kept)."""
        config = self.get(host_id)
        present = {name.lower() for name, _ in config.headers}
        entry = next((e for e in self.settings.hosts if e.id == host_id), None)
        if entry is None:
            return []
        missing = [h.name for h in entry.headers if h.secret and h.name.lower() not in present]
        if entry.agent_token and self.agent_token(host_id) is None:
            missing.append("agent token")
        return missing

    # -- changing ---------------------------------------------------------------------
    def add(
        self,
        url: str,
        name: str = "",
        headers: Iterable[tuple[str, str]] = (),
        kind: HostKind = HostKind.OLLAMA,
        *,
        agent_url: str = "",
        agent_token: str = "",
        exporter_url: str = "",
    ) -> HostConfig:
        canonical = normalize_host_url(url)
        self._check_unique(canonical, except_id=None)
        agent = _normalize_agent_url(agent_url)
        exporter = _normalize_exporter_urls(exporter_url)
        host_id = "h-" + _random.token_hex(4)
        entry = HostEntry(
            id=host_id,
            name=name.strip() or _default_name(canonical),
            url=canonical,
            kind=kind.value,
            agent_url=agent,
            exporter_url=exporter,
        )
        entry.headers = self._store_headers(host_id, headers)
        self._store_token(entry, agent_token)
        self.settings.hosts.append(entry)
        self._save()
        return self.get(host_id)

    def update(
        self,
        host_id: str,
        *,
        url: str | None = None,
        name: str | None = None,
        headers: Iterable[tuple[str, str]] | None = None,
        agent_url: str | None = None,
        agent_token: str | None = None,
        exporter_url: str | None = None,
    ) -> HostConfig:
        """Change a host; a None argument leaves that setting as it is. An empty
        ``agent_token`` removes the token."""
        current = self.get(host_id)
        canonical = normalize_host_url(url) if url is not None else current.url
        self._check_unique(canonical, except_id=host_id)
        agent = _normalize_agent_url(agent_url) if agent_url is not None else None
        exporter = _normalize_exporter_urls(exporter_url) if exporter_url is not None else None
        entry = next((e for e in self.settings.hosts if e.id == host_id), None)
        if entry is None:  # first edit of a built-in host
            entry = HostEntry(
                id=host_id, name=current.name, url=current.url, kind=current.kind.value
            )
            entry.headers = [HeaderEntry(n, v) for n, v in current.headers]
            self.settings.hosts.append(entry)
        entry.url = canonical
        if name is not None:
            entry.name = name.strip() or _default_name(canonical)
        if headers is not None:
            self._forget_header_secrets(entry)
            entry.headers = self._store_headers(host_id, headers)
        if agent is not None:
            entry.agent_url = agent
        if exporter is not None:
            entry.exporter_url = exporter
        if agent_token is not None:
            self._forget_token(entry)
            self._store_token(entry, agent_token)
        self._save()
        return self.get(host_id)

    def remove(self, host_id: str) -> None:
        self.get(host_id)  # raises for an unknown id
        entry = next((e for e in self.settings.hosts if e.id == host_id), None)
        if entry is not None:
            self._forget_secrets(entry)
            self.settings.hosts.remove(entry)
        builtin = host_id in (LOCAL_ID, ENV_ID, ENGINE_ID) or any(
            c.id == host_id for c in self._local_found
        )
        if builtin and host_id not in self.settings.hidden_hosts:
            self.settings.hidden_hosts.append(host_id)
        cached = self._hosts.pop(host_id, None)
        if cached is not None:
            self._retired.append(cached[1])
        self._save()

    def set_local_hosts(self, found: Iterable[HostConfig]) -> None:
        """Show the hosts found on this machine (ids ``local-<port>``) without saving them.

        Hosts whose address is already listed (the built-in one, a user's host) are left out.
        """
        configs = [
            HostConfig(c.id, c.name, normalize_host_url(c.url), c.kind, c.headers, "local")
            for c in found
        ]
        if configs == self._local_found:
            return
        self._local_found = configs
        self.changed.emit(self.hosts())

    def restore_builtin_hosts(self) -> None:
        self.settings.hidden_hosts.clear()
        self._save()

    # -- helpers ----------------------------------------------------------------------
    def _check_unique(self, url: str, except_id: str | None) -> None:
        for config in self.hosts():
            if config.url == url and config.id != except_id:
                raise InvalidInput(f"{url} is already in the list as {config.name!r}.")

    def _store_headers(self, host_id: str, headers: Iterable[tuple[str, str]]) -> list[HeaderEntry]:
        out: list[HeaderEntry] = []
        seen: set[str] = set()
        for raw_name, raw_value in headers:
            name, value = raw_name.strip(), raw_value.strip()
            if not name and not value:
                continue
            if not name or any(c.isspace() or c == ":" for c in name):
                raise InvalidInput(f"{raw_name!r} is not a valid header name.")
            if "\n" in value or "\r" in value:
                raise InvalidInput(f"The value of header {name} must be one line.")
            if name.lower() in seen:
                raise InvalidInput(f"Header {name} is given twice.")
            seen.add(name.lower())
            if not is_sensitive_header(name):
                out.append(HeaderEntry(name, value))
                continue
            key = _secret_key(host_id, name)
            try:
                self._secrets.set(key, value)
                self._secret_cache[key] = value
                self._session_secrets.pop(key, None)
            except SecretNotStored as exc:
                self._session_secrets[key] = value
                self.problems.append(
                    f"{exc.message} The {name} header is used until Corral closes; "
                    "enter it again next time."
                )
            out.append(HeaderEntry(name, "", secret=True))
        return out

    def _store_token(self, entry: HostEntry, token: str) -> None:
        token = token.strip()
        if not token:
            return
        if any(c.isspace() for c in token):
            raise InvalidInput("The agent token must not contain spaces or line breaks.")
        key = _token_key(entry.id)
        entry.agent_token = True
        try:
            self._secrets.set(key, token)
            self._secret_cache[key] = token
            self._session_secrets.pop(key, None)
        except SecretNotStored as exc:
            self._session_secrets[key] = token
            self.problems.append(
                f"{exc.message} The agent token is used until Corral closes; "
                "enter it again next time."
            )

    def _forget_token(self, entry: HostEntry) -> None:
        key = _token_key(entry.id)
        if entry.agent_token:
            self._secrets.delete(key)
        self._session_secrets.pop(key, None)
        self._secret_cache.pop(key, None)
        entry.agent_token = False

    def _forget_secrets(self, entry: HostEntry) -> None:
        self._forget_header_secrets(entry)
        self._forget_token(entry)

    def _forget_header_secrets(self, entry: HostEntry) -> None:
        for h in entry.headers:
            if h.secret:
                key = _secret_key(entry.id, h.name)
                self._session_secrets.pop(key, None)
                self._secret_cache.pop(key, None)
                self._secrets.delete(key)

    @property
    def settings_path(self) -> Path:
        """The settings file this registry reads and writes."""
        return self._store.path

    def save_settings(self) -> str | None:
        """Write the settings as they are now (after the caller changed some); return the
        problem in plain words when they could not be written, else None."""
        try:
            self._store.save(self.settings)
        except SettingsError as exc:
            log.warning("%s", exc.message)
            return exc.message
        return None

    def _save(self) -> None:
        try:
            self._store.save(self.settings)
        except SettingsError as exc:
            self.problems.append(exc.message)
            log.warning("%s", exc.message)
        self.changed.emit(self.hosts())

    async def close_retired(self) -> None:
        """Close host objects replaced by an edit, once nothing runs on them any more."""
        retired, self._retired = self._retired, []
        for host in retired:
            if host.in_flight:
                self._retired.append(host)  # a pull or load still uses it: next time
            else:
                await host.aclose()

    async def aclose(self) -> None:
        await self.close_retired()
        hosts = [h for _, h in self._hosts.values()]
        self._hosts.clear()
        await asyncio.gather(*(h.aclose() for h in hosts), return_exceptions=True)


def _default_name(url: str) -> str:
    rest = url.split("://", 1)[1]
    return rest.split("/", 1)[0]
