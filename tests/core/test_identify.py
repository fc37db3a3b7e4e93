"""Identifying model servers by probing them: kinds, models, fingerprints, and the rest."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.hosts.base import HostKind
from app.core.hosts.identify import Identity, identify, identify_url
from tests.fakes.ollama import FakeModel, FakeOllama
from tests.fakes.openai_server import FakeOpenAI, Flavor
from tests.support.forward import TcpForwarder
from tests.support.waiting import wait_for, wait_for_async

ROOT = Path(__file__).resolve().parents[2]

KINDS: dict[Flavor, HostKind] = {
    "llamacpp": HostKind.LLAMACPP,
    "lmstudio": HostKind.LMSTUDIO,
    "vllm": HostKind.VLLM,
    "generic": HostKind.OPENAI,
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


class _PlainSite(BaseHTTPRequestHandler):
    """A web server that is not a model server: one page at /, 404 elsewhere."""

    protocol_version = "HTTP/1.1"
    json_everywhere = False

    def do_GET(self) -> None:
        if self.json_everywhere:
            body, ctype, status = b'{"ok": true, "data": "nope"}', "application/json", 200
        elif self.path == "/":
            body, ctype, status = b"<html><body>Hello</body></html>", "text/html", 200
        else:
            body, ctype, status = b"<html><body>Not found</body></html>", "text/html", 404
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _JsonSite(_PlainSite):
    json_everywhere = True


class _VersionSite(_PlainSite):
    """Another application's API that also has GET /api/version."""

    def do_GET(self) -> None:
        if self.path == "/api/version":
            body = b'{"version": "2.4.1", "name": "some other app"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            super().do_GET()


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.9", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.9:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(2)


@pytest.fixture
def plain_site() -> Iterator[str]:
    yield from _serve(_PlainSite)


@pytest.fixture
def json_site() -> Iterator[str]:
    yield from _serve(_JsonSite)


@pytest.fixture
def version_site() -> Iterator[str]:
    yield from _serve(_VersionSite)


@pytest.mark.parametrize("flavor", list(KINDS))
async def test_each_flavor_is_identified_with_its_models(flavor: Flavor) -> None:
    with FakeOpenAI("127.0.0.3", flavor=flavor) as fake:
        ident = await identify_url(fake.url + "/")
    assert ident is not None
    assert ident.kind is KINDS[flavor]
    assert ident.url == fake.url  # trailing slash dropped
    assert ident.models == tuple(fake.models)
    assert ident.version == {"llamacpp": "b6000-abcdef", "vllm": "0.11.0"}.get(flavor, "")
    assert not ident.router and ident.ready
    assert len(ident.fingerprint) == 32 and int(ident.fingerprint, 16) >= 0


async def test_llamacpp_router_mode_is_recognised() -> None:
    with FakeOpenAI("127.0.0.3", flavor="llamacpp", router=True) as fake:
        ident = await identify_url(fake.url)
    assert ident is not None and ident.kind is HostKind.LLAMACPP and ident.router
    assert ident.models == tuple(fake.models)


async def test_llamacpp_still_loading_is_a_llamacpp_that_is_not_ready() -> None:
    with FakeOpenAI("127.0.0.3", flavor="llamacpp") as fake:
        fake.loading = True
        loading = await identify_url(fake.url)
        fake.loading = False
        ready = await identify_url(fake.url)
    assert loading is not None and loading.kind is HostKind.LLAMACPP and not loading.ready
    assert loading.models == ()
    assert ready is not None and ready.ready and ready.models == tuple(fake.models)


async def test_ollama_is_identified_first_with_its_models() -> None:
    with FakeOllama("127.0.0.2") as fake:
        ident = await identify_url(fake.url)
    assert ident is not None and ident.kind is HostKind.OLLAMA
    assert ident.version == "0.33.0"
    assert set(ident.models) == set(fake.installed)


async def test_shared_client_sends_its_headers_to_every_probe() -> None:
    with FakeOpenAI("127.0.0.3", flavor="vllm") as fake:
        async with httpx.AsyncClient(headers={"Authorization": "Bearer k"}) as client:
            ident = await identify(client, fake.url)
        assert ident is not None and ident.kind is HostKind.VLLM
        assert fake.request_headers
        assert all(h.get("authorization") == "Bearer k" for h in fake.request_headers)


async def test_closed_port_gives_none() -> None:
    assert await identify_url(f"http://127.0.0.1:{free_port()}") is None


async def test_web_server_that_is_not_a_model_server_gives_none(plain_site: str) -> None:
    assert await identify_url(plain_site) is None


async def test_json_api_that_is_not_a_model_server_gives_none(json_site: str) -> None:
    assert await identify_url(json_site) is None


async def test_other_api_with_an_api_version_route_is_not_ollama(version_site: str) -> None:
    assert await identify_url(version_site) is None


async def test_bad_urls_give_none() -> None:
    assert await identify_url("ftp://127.0.0.1:21") is None
    assert await identify_url("not a url") is None


async def test_hanging_server_gives_none_within_the_deadline() -> None:
    with FakeOpenAI("127.0.0.3", flavor="llamacpp") as fake:
        fake.faults.hang = True
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await identify_url(fake.url, timeout=0.3) is None
        assert loop.time() - start < 2.0
    assert other_tasks() == set()


async def test_fake_run_by_hand_prints_its_url_first() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "tests.fakes.openai_server", "--flavor", "vllm", "--host", "127.0.0.3"),
        *("--port", "0"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        assert url.startswith("http://127.0.0.3:")
        ident = await identify_url(url)
        assert ident is not None and ident.kind is HostKind.VLLM
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_cancelling_a_probe_cancels_it_and_leaves_no_task() -> None:
    with FakeOpenAI("127.0.0.3", flavor="llamacpp") as fake:
        fake.faults.hang = True
        probe = asyncio.create_task(identify_url(fake.url, timeout=30))
        await wait_for(lambda: fake.requests)  # the probe is waiting for an answer
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
    assert other_tasks() == set()


# -- fingerprints ------------------------------------------------------------------------


async def _through_two_addresses(url_host: str, port: int) -> tuple[Identity, Identity]:
    async with TcpForwarder(url_host, port, host="127.0.0.9") as fwd:
        direct = await identify_url(f"http://{url_host}:{port}")
        forwarded = await identify_url(fwd.url)
        assert fwd.connections > 0
    assert direct is not None and forwarded is not None
    return direct, forwarded


@pytest.mark.parametrize("flavor", list(KINDS))
async def test_same_server_through_two_addresses_has_one_fingerprint(flavor: Flavor) -> None:
    with FakeOpenAI("127.0.0.3", flavor=flavor) as fake:
        direct, forwarded = await _through_two_addresses(fake.host, fake.port)
    assert direct.url != forwarded.url
    assert direct.kind is forwarded.kind is KINDS[flavor]
    assert direct.fingerprint == forwarded.fingerprint


async def test_same_router_and_same_ollama_through_two_addresses() -> None:
    with FakeOpenAI("127.0.0.3", flavor="llamacpp", router=True) as fake:
        a, b = await _through_two_addresses(fake.host, fake.port)
        assert a.fingerprint == b.fingerprint and a.router and b.router
    with FakeOllama("127.0.0.2") as ollama:
        a, b = await _through_two_addresses(ollama.host, ollama.port)
        assert a.fingerprint == b.fingerprint


async def test_fingerprint_does_not_depend_on_request_time_stamps() -> None:
    """llama.cpp and vLLM put the time of the request in ``created``."""
    with FakeOpenAI("127.0.0.3", flavor="llamacpp") as fake:
        first = await identify_url(fake.url)
        # two model lists with different `created` values, as a later probe would see
        stamps: set[int] = set()
        async with httpx.AsyncClient() as client:

            async def changed() -> bool:
                r = await client.get(fake.url + "/v1/models")
                stamps.add(r.json()["data"][0]["created"])
                return len(stamps) >= 2

            await wait_for_async(changed, 5.0, message="created to change")
        second = await identify_url(fake.url)
    assert first is not None and second is not None
    assert first.fingerprint == second.fingerprint


async def test_two_ollamas_with_the_same_models_differ() -> None:
    def models(pulled: str) -> list[FakeModel]:
        return [FakeModel(name="llama3.2", modified_at=pulled)]

    with (
        FakeOllama("127.0.0.2", models=models("2025-05-04T17:37:44.706015396-07:00")) as one,
        FakeOllama("127.0.0.2", models=models("2025-06-01T08:00:00.5-07:00")) as two,
    ):
        a = await identify_url(one.url)
        b = await identify_url(two.url)
    assert a is not None and b is not None
    assert a.models == b.models == ("llama3.2:latest",)
    assert a.fingerprint != b.fingerprint


@pytest.mark.parametrize("flavor", ["llamacpp", "vllm", "generic"])
async def test_two_servers_of_a_kind_with_the_same_models_differ(flavor: Flavor) -> None:
    with (
        FakeOpenAI("127.0.0.3", flavor=flavor) as one,
        FakeOpenAI("127.0.0.4", flavor=flavor) as two,
    ):
        a = await identify_url(one.url)
        b = await identify_url(two.url)
    assert a is not None and b is not None and a.models == b.models
    assert a.fingerprint != b.fingerprint


async def test_servers_of_different_kinds_never_share_a_fingerprint() -> None:
    fakes = [FakeOpenAI("127.0.0.3", flavor=f, models=["m"]) for f in ("lmstudio", "generic")]
    with fakes[0], fakes[1]:
        got = [await identify_url(f.url) for f in fakes]
    assert all(g is not None for g in got)
    assert len({g.fingerprint for g in got if g is not None}) == 2
