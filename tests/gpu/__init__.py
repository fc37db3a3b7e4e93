"""Tests that need a real NVIDIA GPU; skipped elsewhere, saying why."""
