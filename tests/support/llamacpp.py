"""Run a real llama.cpp server (the ``xllamacpp`` wheel) on a loopback address.

Run it as a child process; it serves until SIGTERM or SIGINT::

    python -m tests.support.llamacpp --model /path/model.gguf --host 127.0.0.1 --port 0

The first line of stdout is the base URL it listens on (``--port 0`` picks a free port);
the server's own log goes to stderr. By the time the URL is printed the model is loaded.
The GGUF of the small Gemma 3 test model carries no chat template, so the Gemma one of
:mod:`app.core.engine.templates` is given; without it the replies are garbage.

:class:`LlamaCppProcess` starts and stops such a child process from tests.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.core.engine.templates import GEMMA3_TEMPLATE

ROOT = Path(__file__).resolve().parents[2]


def serve(model: Path, host: str, port: int, alias: str, n_ctx: int, threads: int) -> int:
    import xllamacpp  # only in the child: the import is heavy and the server is in-process

    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.hostnames = [host]
    params.port = port
    params.n_ctx = n_ctx
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.model_alias = {alias}
    params.chat_template = GEMMA3_TEMPLATE
    params.use_jinja = True
    # Block the stop signals before the server starts its threads, so that they all
    # inherit the mask and only sigwait below receives the signal.
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    server = xllamacpp.Server(params)
    print(server.listening_address, flush=True)
    signal.sigwait(stop)
    del server
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.llamacpp", description="Serve a GGUF model with llama.cpp."
    )
    parser.add_argument("--model", type=Path, required=True, help="GGUF file")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--alias", default="gemma3-270m", help="model id the server reports")
    parser.add_argument("--ctx", type=int, default=2048, help="context size")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    args = parser.parse_args(argv)
    if not ipaddress.ip_address(args.host).is_loopback:
        print(f"error: loopback addresses only, not {args.host!r}", file=sys.stderr)
        return 2
    if not args.model.is_file():
        print(f"error: no model file at {args.model}", file=sys.stderr)
        return 2
    return serve(args.model, args.host, args.port, args.alias, args.ctx, args.threads)


class LlamaCppProcess:
    """A llama.cpp server in a child process, for tests.

    Attributes:
        url: its base URL once :meth:`start` returned.
        pid: the child's process id.
        startup_s: seconds from spawning the child to /health saying ok.
    """

    def __init__(self, model: Path, *, host: str = "127.0.0.1", alias: str = "gemma3-270m") -> None:
        self.model = model
        self.host = host
        self.alias = alias
        self.url = ""
        self.startup_s = 0.0
        self._proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, timeout: float = 60.0) -> LlamaCppProcess:
        """Spawn the server and wait until /health says ok (or fail at the deadline)."""
        began = time.monotonic()
        deadline = began + timeout
        cmd = [sys.executable, "-m", "tests.support.llamacpp", "--model", str(self.model)]
        cmd += ["--host", self.host, "--port", "0", "--alias", self.alias]
        self._proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            self.url = self._first_line(deadline)
            self._wait_healthy(deadline)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - began
        return self

    def _first_line(self, deadline: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while not sel.select(timeout=max(0.0, min(0.5, deadline - time.monotonic()))):
                if self._proc.poll() is not None:
                    raise RuntimeError(f"llama.cpp server exited with {self._proc.returncode}")
                if time.monotonic() > deadline:
                    raise TimeoutError("llama.cpp server did not print its URL in time")
        line = self._proc.stdout.readline().strip()
        if not line.startswith("http://"):
            raise RuntimeError(f"llama.cpp server printed {line!r} instead of its URL")
        return line

    def _wait_healthy(self, deadline: float) -> None:
        with httpx.Client(timeout=2.0) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.url + "/health").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError("llama.cpp server did not become healthy in time")
                if self._proc is not None:
                    # waits a little for the server, and notices at once if it exits
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._proc.wait(0.1)
                        raise RuntimeError("llama.cpp server exited while starting")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the child by its PID; SIGKILL it if it does not exit in time."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> LlamaCppProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
