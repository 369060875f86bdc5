"""Where calls go (base_url, else OPENAI_BASE_URL as the client reads it) and where a key may be sent."""

from __future__ import annotations

import pytest

from roi.endpoints import (
    OFFICIAL_BASE_URL,
    PLAIN_HTTP_HOSTS_ENV,
    effective_base_url,
    key_transport_problem,
    url_problem,
)


def test_effective_base_url_follows_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert effective_base_url(None) == OFFICIAL_BASE_URL
    monkeypatch.setenv("OPENAI_BASE_URL", "https://gateway.example.com/v1")
    assert effective_base_url(None) == "https://gateway.example.com/v1"
    assert effective_base_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("not a url", "spaces"),
        ("ftp://example.com/v1", "protocol 'ftp://'"),
        ("example.com/v1", "protocol none"),
        ("http://[::1/v1", "not an http(s) URL"),
        ("http://example.com:port/v1", "not an http(s) URL"),
        ("https:///v1", "no host"),
    ],
)
def test_malformed_urls(url: str, reason: str) -> None:
    problem = url_problem(url)
    assert problem is not None and reason in problem


def test_keys_only_over_https_or_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PLAIN_HTTP_HOSTS_ENV, raising=False)
    for url in ("https://api.example.com/v1", "http://127.0.0.1:8000/v1", "http://localhost/v1", "http://[::1]:80/v1"):
        assert url_problem(url) is None and key_transport_problem(url) is None, url
    problem = key_transport_problem("http://10.0.0.5:8000/v1")
    assert problem is not None and PLAIN_HTTP_HOSTS_ENV in problem
    assert key_transport_problem("http://localhost.evil.example/v1") is not None
    monkeypatch.setenv(PLAIN_HTTP_HOSTS_ENV, "vllm.internal, 10.0.0.5")
    assert key_transport_problem("http://10.0.0.5:8000/v1") is None
    assert key_transport_problem("http://VLLM.internal/v1") is None
    assert key_transport_problem("http://10.0.0.6/v1") is not None
