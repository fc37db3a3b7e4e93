"""Latency and other time series: ring buffers and their summaries."""
