"""The built-in engine's child process: llama.cpp's server (the ``xllamacpp`` wheel) on
one model, on a loopback address.

::

    python -m app.core.engine.server --model PATH --alias NAME --host 127.0.0.1 --port 0 \\
        [--ctx N] [--threads N] [--gpu-layers N] [--template-file PATH] [--max-tokens N] \\
        [--watch-stdin]

Once the model is loaded and the server answers, one JSON line goes to stdout::

    {"url": "http://127.0.0.1:40123", "pid": 1234, "gpu": false, "devices": ["CPU"]}

If it cannot start, one line ``{"error": "..."}`` says why and the exit status is not 0.
llama.cpp's own log goes to stderr. It serves until SIGTERM or SIGINT (or, with
``--watch-stdin``, until its stdin is closed: the app that started it is gone), then
exits. With ``CORRAL_ENGINE_API_KEY`` set in its environment, every route but /health
wants that key (``Authorization: Bearer <key>``).

It runs in a process of its own so that a crash cannot take the app down and stopping it
gives all of the model's memory back.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import ipaddress
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from app.core.engine import API_KEY_ENV

READY_TIMEOUT_S = 30.0  # from "loaded" to /health answering 200


def _say(obj: dict[str, Any]) -> None:
    """One JSON line on stdout, for the parent."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _fail(message: str, status: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    _say({"error": message})
    return status


def default_threads() -> int:
    """Physical cores (llama.cpp decodes fastest with one thread per core)."""
    try:
        import psutil

        cores = psutil.cpu_count(logical=False)
    except ImportError:  # pragma: no cover - psutil is a dependency of the app
        cores = None
    return max(1, cores or os.cpu_count() or 1)


def _wait_healthy(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url + "/health", timeout=2.0) as r,
        ):
            if r.status == 200:
                return True
        time.sleep(0.02)
    return False


class _Stop:
    """Waits for SIGTERM or SIGINT (or :meth:`now`).

    Where the platform has ``sigwait``, the signals are blocked in every thread (call
    :meth:`block` before the server starts its threads) and taken by :meth:`wait`;
    elsewhere ordinary handlers set an event.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self._posix = hasattr(signal, "sigwait") and hasattr(signal, "pthread_sigmask")
        self._event = threading.Event()

    def block(self) -> None:
        if self._posix:
            signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        else:
            for sig in self.SIGNALS:
                signal.signal(sig, lambda signum, frame: self._event.set())

    def wait(self) -> None:
        if self._posix:
            signal.sigwait(self.SIGNALS)
        else:
            while not self._event.wait(0.5):
                pass

    def now(self) -> None:
        if self._posix:
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            self._event.set()


def _watch_stdin(stop: _Stop) -> None:
    """End the server when stdin closes: the app that started it is gone."""
    with contextlib.suppress(OSError, ValueError):
        fd = sys.stdin.fileno()
        while os.read(fd, 4096):
            pass
    stop.now()


def _is_gpu(device: dict[str, Any]) -> bool:
    kind = device.get("type")
    return str(getattr(kind, "name", kind)).upper().endswith("GPU")  # GPU or IGPU


def serve(args: argparse.Namespace) -> int:
    """Load the model, announce the URL, serve until told to stop."""
    try:  # only here: the import is heavy and the server is in-process
        xllamacpp: Any = importlib.import_module("xllamacpp")
    except ImportError:
        return _fail(
            "llama.cpp's server is not installed; install Corral with the engine extra "
            "(pip install 'corral[engine]')."
        )
    template = ""
    if args.template_file is not None:
        try:
            template = args.template_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return _fail(f"cannot read the chat template {args.template_file}: {exc}")

    devices: list[dict[str, Any]] = list(xllamacpp.get_device_info())
    gpu = any(_is_gpu(d) for d in devices)
    threads = args.threads or default_threads()
    params = xllamacpp.CommonParams()
    params.model.path = str(args.model)
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.ctx
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.n_gpu_layers = args.gpu_layers if gpu else 0
    params.model_alias = {args.alias}
    if args.max_tokens:
        params.n_predict = args.max_tokens
    if template:
        params.chat_template = template
    params.use_jinja = True
    key = os.environ.pop(API_KEY_ENV, "")
    if key:  # every route but /health then wants "Authorization: Bearer <key>"
        params.api_keys = [key]

    # Block the stop signals before the server starts its threads, so that they all
    # inherit the mask and only the wait below receives the signal.
    stop = _Stop()
    stop.block()
    try:
        server = xllamacpp.Server(params)
    except RuntimeError as exc:
        return _fail(f"llama.cpp could not load {args.model.name}: {exc}")
    url = str(server.listening_address)
    if not _wait_healthy(url, time.monotonic() + READY_TIMEOUT_S):
        del server
        return _fail(f"llama.cpp loaded {args.model.name} but its server did not answer")
    if args.watch_stdin:
        threading.Thread(target=_watch_stdin, args=(stop,), name="stdin", daemon=True).start()
    _say(
        {
            "url": url,
            "pid": os.getpid(),
            "gpu": gpu,
            "devices": [str(d.get("name", "")) for d in devices],
        }
    )
    stop.wait()
    del server
    return 0


def parse_args(
    argv: list[str] | None = None, prog: str = "python -m app.core.engine.server"
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve one GGUF model with llama.cpp on a loopback address.",
    )
    parser.add_argument("--model", type=Path, required=True, help="GGUF file")
    parser.add_argument("--alias", required=True, help="model name the server reports")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--ctx", type=int, default=4096, help="context size (0: the model's)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: one per core)")
    parser.add_argument(
        "--gpu-layers", type=int, default=-1, help="layers on the GPU, GPU builds only (-1: auto)"
    )
    parser.add_argument("--template-file", type=Path, default=None, help="Jinja chat template")
    parser.add_argument(
        "--max-tokens", type=int, default=0, help="longest reply in tokens (0: no limit)"
    )
    parser.add_argument(
        "--watch-stdin", action="store_true", help="stop when stdin is closed (parent gone)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, prog: str = "python -m app.core.engine.server") -> int:
    """Run the engine with these arguments (``sys.argv[1:]`` when None); the exit status.

    ``prog`` names the command in the usage text (``corral engine`` in the app).
    """
    args = parse_args(argv, prog)
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return _fail(f"it listens on loopback addresses only, not {args.host!r}", 2)
    if not 0 <= args.port < 65536:
        return _fail(f"{args.port} is not a port number", 2)
    if args.ctx < 0 or args.threads < 0 or args.max_tokens < 0:
        return _fail("the context size, threads and reply length must not be negative", 2)
    if not args.model.is_file():
        return _fail(f"there is no model file at {args.model}", 2)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
