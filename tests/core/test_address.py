"""OLLAMA_HOST is parsed the way Ollama parses it; user-typed URLs are validated."""

from __future__ import annotations

import pytest

from app.core.errors import InvalidInput
from app.core.hosts.address import normalize_host_url, parse_ollama_host


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        ("   ", "http://127.0.0.1:11434"),
        ("1.2.3.4", "http://1.2.3.4:11434"),
        ("1.2.3.4:8080", "http://1.2.3.4:8080"),
        (":56789", "http://127.0.0.1:56789"),
        ("example.com", "http://example.com:11434"),
        ("http://example.com", "http://example.com:80"),
        ("https://example.com", "https://example.com:443"),
        ("https://example.com:8443", "https://example.com:8443"),
        ("example.com/ollama", "http://example.com:11434/ollama"),
        ("https://proxy.lan/ollama/v2", "https://proxy.lan:443/ollama/v2"),
        # Unspecified bind addresses mean loopback for a client.
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:9999", "http://127.0.0.1:9999"),
        ("http://0.0.0.0:11434", "http://127.0.0.1:11434"),
        ("::", "http://[::1]:11434"),
        ("[::]:11434", "http://[::1]:11434"),
        # IPv6 literals are bracketed.
        ("[::1]", "http://[::1]:11434"),
        ("[fe80::1]:5000", "http://[fe80::1]:5000"),
        # An invalid port falls back to the default, as Ollama does.
        ("example.com:99999", "http://example.com:11434"),
        ("example.com:abc", "http://example.com:11434"),
        # Quotes and spaces around the value are trimmed, as Ollama's Var() does.
        ('"10.0.0.5:8080"', "http://10.0.0.5:8080"),
        ("  10.0.0.5  ", "http://10.0.0.5:11434"),
    ],
)
def test_ollama_host_values(value: str | None, expected: str) -> None:
    assert parse_ollama_host(value) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("192.168.1.20", "http://192.168.1.20:11434"),
        ("192.168.1.20:8080", "http://192.168.1.20:8080"),
        ("gpu-box", "http://gpu-box:11434"),
        ("GPU-Box.lan", "http://gpu-box.lan:11434"),
        ("http://gpu-box", "http://gpu-box:80"),
        ("https://llm.example.com/ollama/", "https://llm.example.com:443/ollama"),
        ("[::1]:11434", "http://[::1]:11434"),
    ],
)
def test_user_urls_are_canonical(typed: str, expected: str) -> None:
    assert normalize_host_url(typed) == expected


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("", "Enter the host's address"),
        ("ftp://host", "http:// or https://"),
        ("host:0", "not a number from 1 to 65535"),
        ("host:70000", "not a number from 1 to 65535"),
        ("host:abc", "not a number from 1 to 65535"),
        ("a host", "contains spaces"),
        ("0.0.0.0", "bind address"),
        ("http://user:pw@host", "header"),
        ("http://host/?x=1", "'?' or '#'"),
        ("bad_name!", "not a valid host name"),
    ],
)
def test_bad_urls_are_explained(typed: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalize_host_url(typed)
    assert words in info.value.message
