"""Hardware telemetry: samples of CPU, memory, GPUs and model-server processes, per host."""
