#!/usr/bin/env bash
# The GPU checks, on a machine with an NVIDIA GPU and a Python that has psutil,
# nvidia-ml-py, prometheus-client, pytest and pytest-timeout (PyTorch for the load test);
# Qt is not needed. Readings go to $OUT (or ./gpu-check) as well as to the terminal.
set -uo pipefail
out="${OUT:-gpu-check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
nvidia-smi 2>&1 | tee "$out/nvidia-smi.txt"
"$py" -m pytest tests/gpu -v -s -rs --noconftest -p no:cacheprovider 2>&1 | tee "$out/gpu-tests.txt"
tests=$?
"$py" -m bench sample 2>&1 | tee "$out/bench-sample.txt"
"$py" -m bench sample --no-gpu 2>&1 | tee "$out/bench-sample-no-gpu.txt"
# The host agent's view of this GPU (what a remote Corral would graph), where it can run.
if "$py" -c "import app.agent.cli, zeroconf, platformdirs" 2>/dev/null; then
    "$py" -m app.agent --port 9199 --interval 1 >"$out/agent.log" 2>&1 &
    agent=$!
    "$py" - <<'PY' 2>&1 | tee "$out/agent-metrics.txt"
import json, time, urllib.request
deadline = time.monotonic() + 30
while True:
    try:
        body = urllib.request.urlopen("http://127.0.0.1:9199/metrics", timeout=2).read().decode()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
print("\n".join(l for l in body.splitlines() if l.startswith("corral_gpu")))
sample = json.load(urllib.request.urlopen("http://127.0.0.1:9199/v1/telemetry", timeout=5))
print(json.dumps(sample)[:3000])
PY
    kill "$agent"
    wait "$agent"
fi
exit "$tests"
