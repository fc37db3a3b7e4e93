"""The host agent over loopback: JSON, /metrics (parsed by prometheus_client's parsers),
the token rule, the clients (AgentSource, ExporterSource), and the command line."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from app import __version__
from app.agent import AgentServer, needs_token
from app.agent.credentials import load_or_create_token, token_path
from app.agent.server import AgentServerError
from app.core.errors import BadResponse, HostRequestFailed, HostUnreachable
from app.core.telemetry.local import LocalSampler
from app.core.telemetry.sources import AgentSource, ExporterSource
from app.core.telemetry.types import GpuState
from tests.core.test_telemetry_nvml import GIB, FakeGpu, FakeNvml
from tests.support.netns import loopback_namespace
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
TOKEN = "t0ps3cret-token"


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture
def server_child(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A process named ``llama-server`` (a link to Python) that waits for stdin to close."""
    link = tmp_path / "llama-server"
    link.symlink_to(sys.executable)
    script = "import sys; b = bytearray(32 << 20); print('ready', flush=True); sys.stdin.read()"
    proc = subprocess.Popen(
        [str(link), "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    try:
        yield proc
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch, server_child: subprocess.Popen[str]) -> FakeNvml:
    fake = FakeNvml(
        [
            FakeGpu(
                "NVIDIA RTX A6000",
                "GPU-0a",
                util=64,
                used=6 * GIB,
                total=48 * GIB,
                processes=[(server_child.pid, 5 * GIB)],
            ),
            FakeGpu("Tesla T4", "GPU-1b", unsupported={"nvmlDeviceGetFanSpeed"}),
        ],
        process_names={server_child.pid: b"/opt/llama/llama-server"},
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


@pytest.fixture
def agent(gpus: FakeNvml) -> Iterator[AgentServer]:
    with AgentServer(host="127.0.0.1", port=0, host_id="box-1", interval_s=0.05) as server:
        yield server


@pytest.fixture
def guarded() -> Iterator[AgentServer]:
    with AgentServer(
        host="127.0.0.2",
        port=0,
        token=TOKEN,
        host_id="box-2",
        sampler=LocalSampler(gpu=False),
        interval_s=0.05,
    ) as server:
        yield server


def get(url: str, token: str | None = None, **headers: str) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(url, headers=headers, timeout=10.0)


# -- the token rule -----------------------------------------------------------------------
def test_only_127_0_0_1_and_ipv6_loopback_count_as_loopback() -> None:
    assert not needs_token("127.0.0.1")
    assert not needs_token("::1") and not needs_token("[::1]")
    for address in ("127.0.0.2", "127.1.2.3", "0.0.0.0", "::", "192.168.1.20", "localhost"):
        assert needs_token(address), address


def test_an_agent_on_127_0_0_2_refuses_to_start_without_a_token() -> None:
    with pytest.raises(AgentServerError, match=r"127\.0\.0\.2, which is not 127\.0\.0\.1"):
        AgentServer(host="127.0.0.2", port=0)


def test_requests_without_the_token_get_401(guarded: AgentServer) -> None:
    assert guarded.url.startswith("http://127.0.0.2:")
    for path in ("/v1/telemetry", "/metrics", "/healthz"):
        bare = get(guarded.url + path)
        assert bare.status_code == 401, path
        assert bare.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = get(guarded.url + path, token="not-" + TOKEN)
        assert wrong.status_code == 401
        assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
        assert get(guarded.url + path, Authorization=f"Basic {TOKEN}").status_code == 401
        assert get(guarded.url + path, token=TOKEN).status_code == 200, path


def test_a_token_given_on_loopback_is_required_too() -> None:
    with AgentServer(
        host="127.0.0.1", port=0, token=TOKEN, sampler=LocalSampler(gpu=False)
    ) as server:
        assert get(server.url + "/healthz").status_code == 401
        assert get(server.url + "/healthz", token=TOKEN).text == "ok\n"


# -- JSON ---------------------------------------------------------------------------------
def test_telemetry_json_has_the_snapshot_and_history(
    agent: AgentServer, server_child: subprocess.Popen[str]
) -> None:
    assert agent.url.startswith("http://127.0.0.1:")

    def history_of_three() -> dict[str, Any] | None:
        body: dict[str, Any] = get(agent.url + "/v1/telemetry?history_s=60").json()
        return body if len(body["history"].get("cpu_pct", [])) >= 3 else None

    body = wait_for_sync(history_of_three)
    assert body["agent"] == "corral-agent"
    assert body["version"] == __version__
    assert body["host_id"] == "box-1"
    assert body["hostname"] == socket.gethostname()
    assert body["markers"] == []
    snap = body["snapshot"]
    assert 0.0 <= snap["cpu_pct"] <= 100.0
    assert len(snap["cpu_per_core"]) == os.cpu_count()
    assert snap["ram_total"] > snap["ram_used"] > 0
    assert snap["gpu_state"] == "ok"
    a6000, t4 = snap["gpus"]
    assert (a6000["name"], a6000["uuid"], a6000["utilization_pct"]) == (
        "NVIDIA RTX A6000",
        "GPU-0a",
        64.0,
    )
    assert a6000["memory_total"] == 48 * GIB and t4["fan_pct"] is None
    [proc] = [p for p in snap["model_processes"] if p["pid"] == server_child.pid]
    assert (proc["name"], proc["kind"], proc["vram"]) == ("llama-server", "llama.cpp", 5 * GIB)
    assert proc["rss"] >= 32 * MIB
    history = body["history"]
    ts = [t for t, _ in history["cpu_pct"]]
    assert ts == sorted(ts) and ts[-1] == snap["t"]
    assert "gpu0.vram_used" in history and "proc.vram.llama-server" in history
    none = get(agent.url + "/v1/telemetry?history_s=0").json()
    assert none["history"] == {} and none["history_s"] == 0
    assert get(agent.url + "/v1/telemetry?history_s=-1").status_code == 400
    assert get(agent.url + "/nothing").status_code == 404
    assert httpx.post(agent.url + "/metrics", timeout=5).status_code == 405


# -- /metrics -----------------------------------------------------------------------------
EXPECTED_FAMILIES = {
    "corral_agent": "info",
    "corral_sample_timestamp_seconds": "gauge",
    "corral_sampler_duration_seconds": "gauge",
    "corral_cpu_utilization_ratio": "gauge",
    "corral_cpu_core_utilization_ratio": "gauge",
    "corral_memory_total_bytes": "gauge",
    "corral_memory_used_bytes": "gauge",
    "corral_swap_total_bytes": "gauge",
    "corral_swap_used_bytes": "gauge",
    "corral_gpu_state": "gauge",
    "corral_gpu_up": "gauge",
    "corral_gpu_utilization_ratio": "gauge",
    "corral_gpu_memory_utilization_ratio": "gauge",
    "corral_gpu_memory_used_bytes": "gauge",
    "corral_gpu_memory_total_bytes": "gauge",
    "corral_gpu_temperature_celsius": "gauge",
    "corral_gpu_power_watts": "gauge",
    "corral_gpu_power_limit_watts": "gauge",
    "corral_gpu_sm_clock_hertz": "gauge",
    "corral_gpu_memory_clock_hertz": "gauge",
    "corral_gpu_fan_speed_ratio": "gauge",
    "corral_gpu_process_memory_bytes": "gauge",
    "corral_model_server_cpu_ratio": "gauge",
    "corral_model_server_resident_memory_bytes": "gauge",
    "corral_model_server_gpu_memory_bytes": "gauge",
}


def test_metrics_parse_as_prometheus_text_with_units_and_gpu_labels(
    agent: AgentServer, server_child: subprocess.Popen[str]
) -> None:
    def with_server_cpu() -> str | None:
        text = get(agent.url + "/metrics").text
        return text if "corral_model_server_cpu_ratio{" in text else None

    text = wait_for_sync(with_server_cpu)  # a process's CPU needs two samples
    response = get(agent.url + "/metrics")
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # The text parser reads an info family as a gauge named ..._info.
    info = families.pop("corral_agent_info")
    assert info.type == "gauge"
    expected = dict(EXPECTED_FAMILIES)
    del expected["corral_agent"]
    assert {name: f.type for name, f in families.items()} == expected

    def value(family: str, /, **labels: str) -> float:
        for s in families[family].samples:
            if all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
        raise AssertionError(f"no {family} with {labels}")

    a6000 = {"gpu": "0", "name": "NVIDIA RTX A6000", "uuid": "GPU-0a"}
    t4 = {"gpu": "1", "name": "Tesla T4", "uuid": "GPU-1b"}
    assert value("corral_gpu_utilization_ratio", **a6000) == pytest.approx(0.64)
    assert value("corral_gpu_memory_used_bytes", **a6000) == 6 * GIB
    assert value("corral_gpu_memory_total_bytes", **t4) == 24 * GIB
    assert value("corral_gpu_temperature_celsius", **t4) == 40.0
    assert value("corral_gpu_power_watts", **a6000) == 100.0
    assert value("corral_gpu_sm_clock_hertz", **a6000) == 1.5e9
    assert value("corral_gpu_fan_speed_ratio", **a6000) == pytest.approx(0.3)
    # The T4 has no fan figure: its sample is absent, not 0.
    assert [s.labels["gpu"] for s in families["corral_gpu_fan_speed_ratio"].samples] == ["0"]
    assert value("corral_gpu_up", **t4) == 1.0
    assert value("corral_gpu_state", state="ok") == 1.0
    assert value("corral_gpu_state", state="no_gpu") == 0.0
    pid = str(server_child.pid)
    assert value("corral_gpu_process_memory_bytes", pid=pid, process="llama-server") == 5 * GIB
    server = {"pid": pid, "process": "llama-server", "kind": "llama.cpp"}
    assert value("corral_model_server_gpu_memory_bytes", **server) == 5 * GIB
    assert value("corral_model_server_resident_memory_bytes", **server) >= 32 * MIB
    assert value("corral_model_server_cpu_ratio", **server) >= 0.0
    assert 0.0 <= value("corral_cpu_utilization_ratio") <= 1.0
    assert len(families["corral_cpu_core_utilization_ratio"].samples) == os.cpu_count()
    assert info.samples[0].labels == {
        "version": __version__,
        "host_id": "box-1",
        "hostname": socket.gethostname(),
    }


def test_metrics_in_openmetrics_when_asked(agent: AgentServer) -> None:
    response = get(agent.url + "/metrics", Accept="application/openmetrics-text; version=1.0.0")
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(response.text)}
    assert families["corral_agent"].type == "info"
    assert families["corral_memory_used_bytes"].unit == "bytes"
    assert families["corral_gpu_temperature_celsius"].unit == "celsius"
    assert families["corral_cpu_utilization_ratio"].unit == "ratio"


def test_a_lost_gpu_shows_as_down(agent: AgentServer, gpus: FakeNvml) -> None:
    wait_for_sync(agent.latest)  # the GPUs were opened (and named) at the first sample
    gpus.gpus[1].lost = True

    def lost() -> str | None:
        text = get(agent.url + "/metrics").text
        return text if re.search(r'corral_gpu_up\{gpu="1"[^}]*\} 0\.0', text) else None

    text = wait_for_sync(lost)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    [state] = [s for s in families["corral_gpu_state"].samples if s.value == 1.0]
    assert state.labels["state"] == "ok" and "GPU 1 (Tesla T4) is lost" in state.labels["reason"]


# -- clients ------------------------------------------------------------------------------
async def test_agent_source_reads_the_agent(
    agent: AgentServer, server_child: subprocess.Popen[str]
) -> None:
    await wait_for(lambda: agent.latest() is not None and len(_history(agent)) >= 2)
    source = AgentSource(agent.url, history_s=60)
    try:
        sample = await source.sample()
        assert (source.host_id, source.version) == ("box-1", __version__)
        assert sample.gpu_state is GpuState.OK
        assert [g.name for g in sample.gpus] == ["NVIDIA RTX A6000", "Tesla T4"]
        assert any(p.pid == server_child.pid and p.vram == 5 * GIB for p in sample.model_processes)
        history = source.take_history()
        assert history is not None and len(history["cpu_pct"]) >= 1
        assert all(t < sample.t for t, _ in history["cpu_pct"])  # older, on our clock
        assert source.take_history() is None  # given once
        await source.sample()
        assert source.take_history() is None  # later requests ask for no history
    finally:
        await source.aclose()


def _history(agent: AgentServer) -> list[Any]:
    return list(agent.telemetry(60.0)["history"].get("cpu_pct", []))


async def test_agent_source_reports_token_and_connection_problems(guarded: AgentServer) -> None:
    for token, words in ((None, "wants a token"), ("wrong", "refused the token")):
        source = AgentSource(guarded.url, token)
        with pytest.raises(HostRequestFailed, match=words) as caught:
            await source.sample()
        assert caught.value.status == 401
        await source.aclose()
    good = AgentSource(guarded.url, TOKEN)
    assert (await good.sample()).cpu_pct is not None
    await good.aclose()
    port = guarded.port
    guarded.stop()
    gone = AgentSource(f"http://127.0.0.2:{port}", TOKEN, timeout=2.0)
    with pytest.raises(
        HostUnreachable, match=r"Cannot connect to the Corral agent at 127\.0\.0\.2"
    ):
        await gone.sample()
    await gone.aclose()


async def test_exporter_source_reads_the_agents_own_metrics(
    agent: AgentServer, server_child: subprocess.Popen[str]
) -> None:
    await wait_for(lambda: agent.latest() is not None)
    source = ExporterSource(agent.url)  # no path: /metrics
    try:
        sample = await source.sample()
    finally:
        await source.aclose()
    latest = agent.latest()
    assert latest is not None
    assert sample.gpu_state is GpuState.OK
    assert [(g.index, g.name, g.uuid) for g in sample.gpus] == [
        (0, "NVIDIA RTX A6000", "GPU-0a"),
        (1, "Tesla T4", "GPU-1b"),
    ]
    a6000 = sample.gpus[0]
    assert a6000.memory_used == 6 * GIB and a6000.sm_clock_mhz == pytest.approx(1500.0)
    assert a6000.utilization_pct == pytest.approx(64.0) and sample.gpus[1].fan_pct is None
    assert sample.ram_total == latest.ram_total
    assert len(sample.cpu_per_core) == os.cpu_count()
    [proc] = [p for p in sample.model_processes if p.pid == server_child.pid]
    assert (proc.name, proc.kind, proc.vram) == ("llama-server", "llama.cpp", 5 * GIB)


NODE = """\
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{{cpu="0",mode="idle"}} {idle0}
node_cpu_seconds_total{{cpu="0",mode="iowait"}} 10
node_cpu_seconds_total{{cpu="0",mode="system"}} {system0}
node_cpu_seconds_total{{cpu="0",mode="user"}} {user0}
node_cpu_seconds_total{{cpu="1",mode="idle"}} {idle1}
node_cpu_seconds_total{{cpu="1",mode="iowait"}} 0
node_cpu_seconds_total{{cpu="1",mode="system"}} 100
node_cpu_seconds_total{{cpu="1",mode="user"}} {user1}
# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.
# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes 3.4359738368e+10
# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.
# TYPE node_memory_MemAvailable_bytes gauge
node_memory_MemAvailable_bytes 2.5769803776e+10
# HELP node_memory_SwapTotal_bytes Memory information field SwapTotal_bytes.
# TYPE node_memory_SwapTotal_bytes gauge
node_memory_SwapTotal_bytes 2.147483648e+09
# HELP node_memory_SwapFree_bytes Memory information field SwapFree_bytes.
# TYPE node_memory_SwapFree_bytes gauge
node_memory_SwapFree_bytes 1.610612736e+09
"""

DCGM_LABELS = (
    'gpu="{i}",UUID="GPU-d{i}",device="nvidia{i}",modelName="NVIDIA A100-SXM4-40GB",Hostname="box"'
)
DCGM = "".join(
    f"# HELP {name} {help_}\n# TYPE {name} gauge\n"
    + "".join(f"{name}{{{DCGM_LABELS.format(i=i)}}} {values[i]}\n" for i in range(2))
    for name, help_, values in (
        ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", (1410, 210)),
        ("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", (1215, 1215)),
        ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", (55, 31)),
        ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", (123.5, 52.25)),
        ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", (42, 0)),
        ("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", (17, 0)),
        ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", (30000, 40000)),
        ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", (10240, 0)),
    )
)

NV = 'devicename="NVIDIA GeForce RTX 3090",hostname="box",index="0",uuid="GPU-n0"'
NV_PROC = NV + ',pid="{pid}",username="me"'


def _gauge(name: str, *lines: str) -> str:
    return f"# HELP {name} nvitop.\n# TYPE {name} gauge\n" + "".join(f"{x}\n" for x in lines)


def _info(pid: int, command: str) -> str:
    labels = NV_PROC.format(pid=pid)
    return f'process_info{{{labels},command="{command}"}} 1'


NVITOP = "".join(
    (
        _gauge("host_cpu_percent_Percentage", 'host_cpu_percent_Percentage{hostname="box"} 12.5'),
        _gauge(
            "host_virtual_memory_total_MiB", 'host_virtual_memory_total_MiB{hostname="box"} 65536'
        ),
        _gauge(
            "host_virtual_memory_used_MiB", 'host_virtual_memory_used_MiB{hostname="box"} 16384'
        ),
        _gauge("gpu_utilization_Percentage", f"gpu_utilization_Percentage{{{NV}}} 77"),
        _gauge("gpu_memory_used_MiB", f"gpu_memory_used_MiB{{{NV}}} 4096"),
        _gauge("gpu_memory_total_MiB", f"gpu_memory_total_MiB{{{NV}}} 24576"),
        _gauge("gpu_temperature_C", f"gpu_temperature_C{{{NV}}} 61"),
        _gauge("gpu_power_usage_W", f"gpu_power_usage_W{{{NV}}} 250.5"),
        _gauge(
            "process_info",
            _info(4242, "/usr/local/bin/ollama runner --port 40123"),
            _info(5151, "python3 train.py"),
        ),
        _gauge(
            "process_gpu_memory_MiB",
            f"process_gpu_memory_MiB{{{NV_PROC.format(pid=4242)}}} 3072",
            f"process_gpu_memory_MiB{{{NV_PROC.format(pid=5151)}}} 1024",
        ),
        _gauge(
            "process_rss_memory_MiB", f"process_rss_memory_MiB{{{NV_PROC.format(pid=4242)}}} 512"
        ),
    )
)


class Exporter:
    """A tiny exporter on 127.0.0.3: /metrics is node_exporter + dcgm-exporter text whose
    CPU counters advance on each request; /nvitop is nvitop-exporter's; /bad is not
    Prometheus text."""

    def __init__(self) -> None:
        self.requests = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    n = exporter.requests
                    exporter.requests += 1
                    body = (
                        NODE.format(
                            idle0=1000 + 75 * n,
                            system0=100 + 5 * n,
                            user0=200 + 20 * n,
                            idle1=1000 + 50 * n,
                            user1=100 + 50 * n,
                        )
                        + DCGM
                    )
                elif self.path == "/nvitop":
                    body = NVITOP
                elif self.path == "/bad":
                    body = "this is { not prometheus\n"
                else:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.3", 0), Handler)
        self.url = f"http://127.0.0.3:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    server = Exporter()
    try:
        yield server
    finally:
        server.stop()


async def test_exporter_source_maps_node_exporter_and_dcgm(exporter: Exporter) -> None:
    source = ExporterSource(exporter.url + "/metrics")
    try:
        first = await source.sample()
        second = await source.sample()
    finally:
        await source.aclose()
    assert first.cpu_pct is None  # counters need two reads
    assert second.cpu_pct == pytest.approx(37.5)  # cpu0 25 %, cpu1 50 %
    assert second.cpu_per_core == pytest.approx((25.0, 50.0))
    assert second.ram_total == 32 * GIB and second.ram_used == 8 * GIB
    assert second.swap_total == 2 * GIB and second.swap_used == GIB // 2
    assert second.gpu_state is GpuState.OK
    busy, idle = second.gpus
    assert (busy.index, busy.name, busy.uuid) == (0, "NVIDIA A100-SXM4-40GB", "GPU-d0")
    assert busy.utilization_pct == 42.0 and busy.memory_utilization_pct == 17.0
    assert busy.memory_used == 10240 * MIB and busy.memory_total == (10240 + 30000) * MIB
    assert (busy.temperature_c, busy.power_w) == (55.0, 123.5)
    assert (busy.sm_clock_mhz, busy.memory_clock_mhz) == (1410.0, 1215.0)
    assert busy.fan_pct is None and busy.power_limit_w is None  # not exported: absent
    assert idle.memory_used == 0 and idle.temperature_c == 31.0
    assert second.cost_ms is not None and second.cost_ms > 0


async def test_exporter_source_maps_nvitop_exporter(exporter: Exporter) -> None:
    source = ExporterSource(exporter.url + "/nvitop")
    try:
        sample = await source.sample()
    finally:
        await source.aclose()
    assert sample.cpu_pct == 12.5
    assert (sample.ram_total, sample.ram_used) == (64 * GIB, 16 * GIB)
    [gpu] = sample.gpus
    assert (gpu.name, gpu.uuid, gpu.utilization_pct) == ("NVIDIA GeForce RTX 3090", "GPU-n0", 77.0)
    assert (gpu.memory_used, gpu.memory_total) == (4 * GIB, 24 * GIB)
    assert (gpu.temperature_c, gpu.power_w) == (61.0, 250.5)
    assert [(p.pid, p.name, p.used_memory) for p in gpu.processes] == [
        (4242, "ollama", 3 * GIB),
        (5151, "python3", GIB),
    ]
    [runner] = sample.model_processes  # training scripts are not model servers
    assert (runner.pid, runner.name, runner.kind) == (4242, "ollama runner", "ollama")
    assert (runner.vram, runner.rss) == (3 * GIB, 512 * MIB)


async def test_exporter_source_reports_garbage_and_missing_pages(exporter: Exporter) -> None:
    for path, error, words in (
        ("/bad", BadResponse, "answered with something unusable"),
        ("/missing", HostRequestFailed, "has no /missing"),
    ):
        source = ExporterSource(exporter.url + path)
        with pytest.raises(error, match=words):
            await source.sample()
        await source.aclose()


async def test_several_exporters_are_merged(exporter: Exporter) -> None:
    source = ExporterSource(f"{exporter.url}/nvitop {exporter.url}/metrics")
    try:
        sample = await source.sample()
    finally:
        await source.aclose()
    assert sample.cpu_pct == 12.5  # nvitop's; node_exporter's needs a second read
    assert sample.gpus[0].name == "NVIDIA GeForce RTX 3090"  # index 0 from the first
    assert sample.gpus[1].uuid == "GPU-d1"


# -- the stored token ---------------------------------------------------------------------
def test_the_generated_token_is_stored_owner_only_and_reused() -> None:
    token, created = load_or_create_token()
    assert created and len(token) >= 32
    path = token_path()
    assert path.read_text().strip() == token
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        path.chmod(0o644)
    assert load_or_create_token() == (token, False)
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # narrowed again


# -- the command line ---------------------------------------------------------------------
class AgentProcess:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "agent", "--no-gpu", "--interval", "0.1", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # blocks until the agent prints (or exits)
            self.lines.append(line.rstrip("\n"))
            if line.startswith("host id:"):
                break
        self.url = next(
            (m.group(0) for line in self.lines if (m := re.search(r"http://\S+", line))), ""
        )

    def line(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        while not any(line.startswith(prefix) for line in self.lines):
            line = self.proc.stdout.readline()
            assert line, f"no line starting {prefix!r}; got {self.lines}"
            self.lines.append(line.rstrip("\n"))
        return next(line for line in self.lines if line.startswith(prefix))

    def end(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        code = self.proc.wait(timeout=15)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code


@pytest.mark.timeout(60)
def test_python_m_app_agent_prints_its_url_and_serves() -> None:
    agent = AgentProcess("--port", "0")
    try:
        assert agent.lines[0].startswith(f"corral-agent {__version__} listening on")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", agent.url), agent.lines
        assert not any(line.startswith("token:") for line in agent.lines)  # loopback: none
        assert get(agent.url + "/healthz").text == "ok\n"
        body = get(agent.url + "/v1/telemetry").json()
        assert body["snapshot"]["gpu_state"] == "unknown"  # --no-gpu
    finally:
        assert agent.end() == 0  # SIGTERM: a clean shutdown


@pytest.mark.timeout(60)
def test_the_agent_on_127_0_0_2_makes_a_token_prints_it_and_keeps_it() -> None:
    first = AgentProcess("--host", "127.0.0.2", "--port", "0")
    try:
        line = first.line("token:")
        match = re.fullmatch(r"token: (\S+)  \(new; kept in (.+)\)", line)
        assert match, line
        token, where = match.groups()
        assert Path(where) == token_path()
        if os.name == "posix":
            assert stat.S_IMODE(Path(where).stat().st_mode) == 0o600
        assert get(first.url + "/healthz").status_code == 401
        assert get(first.url + "/healthz", token=token).status_code == 200
    finally:
        assert first.end() == 0
    second = AgentProcess("--host", "127.0.0.2", "--port", "0")
    try:
        assert second.line("token:") == f"token: kept in {token_path()}"
        assert get(second.url + "/metrics", token=token).status_code == 200
    finally:
        assert second.end() == 0


def test_the_help_states_the_loopback_rule() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "agent", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    text = " ".join(done.stdout.split())
    assert "Only 127.0.0.1 and ::1 count as loopback" in text
    assert "even 127.0.0.2" in text


# -- mDNS -----------------------------------------------------------------------------------
BROWSE = textwrap.dedent(
    """
    import asyncio, json, sys
    from app.core.discovery.mdns import CORRAL_SERVICE, MdnsBrowser

    async def main():
        browser = MdnsBrowser(interfaces=["127.0.0.1"], service_types=[CORRAL_SERVICE])
        seen = asyncio.Event()
        browser.found.connect(lambda s: seen.set())
        await browser.start()
        try:
            async with asyncio.timeout(20):
                await seen.wait()
            [s] = browser.services
            print(json.dumps({"port": s.port, "url": s.url, "props": dict(s.properties)}))
        finally:
            await browser.aclose()

    asyncio.run(main())
    """
)


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace with nothing but loopback: mDNS packets stay inside it."""
    with loopback_namespace("corral-agent") as name:
        yield name


@pytest.mark.timeout(90)
def test_advertise_announces_corral_tcp_with_port_and_host_id(netns: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    agent = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "app", "agent", "--no-gpu",
         "--port", "0", "--advertise"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert agent.stdout is not None
        lines = []
        for line in agent.stdout:
            lines.append(line.strip())
            if line.startswith(("announced as", "corral-agent: not announced")):
                break
        assert lines and lines[-1].startswith("announced as"), lines
        port = int(lines[0].rsplit(":", 1)[1])
        host_id = lines[1].removeprefix("host id: ")
        browsed = subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable, "-c", BROWSE],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert browsed.returncode == 0, browsed.stderr
        found = json.loads(browsed.stdout.strip().splitlines()[-1])
        assert found["port"] == port
        assert found["url"] == f"http://127.0.0.1:{port}"
        assert found["props"]["host_id"] == host_id
        assert found["props"]["auth"] == "none" and found["props"]["path"] == "/v1/telemetry"
    finally:
        agent.send_signal(signal.SIGTERM)  # ip netns exec runs the agent in its own process
        assert agent.wait(timeout=20) == 0
        for stream in (agent.stdout, agent.stderr):
            if stream is not None:
                stream.close()


# -- helpers ------------------------------------------------------------------------------
def wait_for_sync(condition: Any, timeout: float = 10.0) -> Any:
    """Poll a blocking condition until it gives a truthy value (fails at the deadline)."""
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not done.is_set():
            result = condition()
            if result:
                return result
            done.wait(0.02)
        raise AssertionError(f"timed out after {timeout:g} s")
    finally:
        deadline.cancel()


def test_the_agent_imports_no_qt() -> None:
    script = textwrap.dedent(
        """
        import importlib.abc, sys
        BLOCKED = ("PySide6", "shiboken6", "qasync", "app.ui")

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                    raise ImportError(f"blocked import of {name}")
                return None

        sys.meta_path.insert(0, Block())
        import app.agent, app.agent.cli, app.agent.advertise, app.agent.__main__
        from app.main import main
        try:
            main(["agent", "--version"])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        leaked = [m for m in sys.modules if m.startswith(BLOCKED)]
        assert not leaked, leaked
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"corral-agent {__version__}"
