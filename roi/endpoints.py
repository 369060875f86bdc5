"""Where API calls go, and where an API key may be sent.

The endpoint of an API model is its `base_url`, else `OPENAI_BASE_URL` (as the openai client reads it),
else the official endpoint: `effective_base_url` is the one answer the backend, the response cache and
the store all use.

A key is sent only over https, or over plain http to this machine (localhost, 127.0.0.0/8, ::1).
Plain http to any other host would put the key on the network in clear text, so it is refused unless
the operator lists that host in `ROI_PLAIN_HTTP_KEY_HOSTS` (comma-separated names or addresses, e.g.
a vLLM server on a private network). The override lives in the environment, not in the pilot file,
so a pilot file alone cannot send a key in clear text to a host of its choosing.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

OFFICIAL_BASE_URL = "https://api.openai.com/v1"
PLAIN_HTTP_HOSTS_ENV = "ROI_PLAIN_HTTP_KEY_HOSTS"


def effective_base_url(base_url: str | None) -> str:
    """The URL the openai client calls for a model whose pilot `base_url` is `base_url`."""
    return base_url or os.environ.get("OPENAI_BASE_URL", "").strip() or OFFICIAL_BASE_URL


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an API endpoint, or None when it is a usable http(s) URL."""
    if url != url.strip() or any(c.isspace() for c in url):
        return "not an http(s) URL (it contains spaces)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as err:
        return f"not an http(s) URL ({err})"
    if parts.scheme not in ("http", "https"):
        shown = f"'{parts.scheme}://'" if parts.scheme else "none"
        return f"not an http(s) URL (protocol {shown}; use http:// or https://)"
    if not parts.hostname:
        return "not an http(s) URL (no host name)"
    return None


def key_transport_problem(url: str) -> str | None:
    """Why an API key may not be sent to `url`, or None when it may."""
    parts = urlsplit(url)
    if parts.scheme == "https" or is_loopback(parts.hostname or ""):
        return None
    allowed = {h.strip().lower() for h in os.environ.get(PLAIN_HTTP_HOSTS_ENV, "").split(",") if h.strip()}
    if (parts.hostname or "").lower() in allowed:
        return None
    return (
        f"an API key is sent only over https or to this machine, not in clear text to {parts.hostname}; "
        f"use https, or list the host in {PLAIN_HTTP_HOSTS_ENV} if it is on a private network you trust"
    )


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
