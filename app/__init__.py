"""Corral: a desktop control panel for local LLM hosts."""

__version__ = "0.1.0"
