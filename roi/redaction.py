"""Secrets kept out of every string roi stores, logs or prints.

`redact` masks, in this order: credentials by their shape whatever their value (`Bearer …`, `Basic …`,
`authorization: …`, `api_key=…`), the user-info of URLs (`https://user:password@host`), secret-looking
query parameters (`?token=…`), and then any piece of `MIN_PIECE` or more characters of a secret roi
knows (the API keys it read), so a server that echoes a key cut short or split is
masked too. It always runs on the whole text before anything is cut to length: a cut first could
leave a piece of a key that no longer matches (`clip` does both in that order).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "[redacted]"
MIN_PIECE = 8  # any run of this many characters of a known secret is masked

_known: set[str] = set()

# Names whose value is a secret: in `name=value` / `"name": "value"` text, and (with a few more that
# only mean a secret in a URL) as query parameters.
_SECRET_NAMES = r"x-api-key|api[-_]?key|(?:access|refresh|id)[-_]?token|token|(?:client[-_]?)?secret|passw(?:or)?d"
_SECRET_QUERY = re.compile(rf"(?i)^(?:{_SECRET_NAMES}|sig|signature|auth|code|key|credentials?|session)$")
_CREDENTIAL_PATTERNS = (
    # authorization: Bearer xyz / "Authorization": "Basic xyz" / proxy-authorization=xyz
    re.compile(
        r"(?i)((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic|digest|token)\s+)?[^\s\"',;}&]+"
    ),
    re.compile(r"(?i)\b((?:bearer|basic)\s+)[A-Za-z0-9._~+/=:\-]{8,}"),
    # key=value and "key": "value" pairs whose name says secret
    re.compile(
        rf"(?i)((?<![A-Za-z0-9_\-])(?:{_SECRET_NAMES})[\"']?\s*[:=]\s*[\"']?)(?!{re.escape(MASK)})[^\s\"',;}}&]+"
    ),
    # scheme://user:password@host
    re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://)[^/\s@\"']*@"),
)


def remember(secret: str | None) -> None:
    """Mask `secret` (and its pieces) in everything `redact` sees from now on, in this process."""
    if secret and secret.strip():
        _known.add(secret.strip())


def redact(text: str, *secrets: str | None) -> str:
    """`text` with credentials and every known secret (and `secrets`) masked."""
    for pattern in _CREDENTIAL_PATTERNS:
        text = pattern.sub(_masked_group, text)
    for secret in (*_known, *secrets):
        if secret:
            text = _mask_pieces(text, secret)
    return text


def clip(text: str, limit: int, *secrets: str | None) -> str:
    """One line of at most `limit` characters, redacted before it is cut."""
    flat = " ".join(redact(text, *secrets).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _masked_group(match: re.Match[str]) -> str:
    kept = match.group(1)
    return kept if kept.endswith("://") else kept + MASK


def _mask_pieces(text: str, secret: str) -> str:
    """Mask every run of text made of overlapping `MIN_PIECE`-character pieces of `secret`. A secret
    shorter than that (a placeholder such as `EMPTY` for a local server) is masked as a whole word."""
    if len(secret) < MIN_PIECE:
        return re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)
    size = MIN_PIECE
    pieces = {secret[i : i + size] for i in range(len(secret) - size + 1)}
    if not any(piece in text for piece in pieces):
        return text
    covered = [False] * len(text)
    for start in range(len(text) - size + 1):
        if text[start : start + size] in pieces:
            covered[start : start + size] = [True] * size
    out: list[str] = []
    for index, char in enumerate(text):
        if not covered[index]:
            out.append(char)
        elif index == 0 or not covered[index - 1]:
            out.append(MASK)
    return "".join(out)


def safe_url(url: str) -> str:
    """`url` fit to store or show: no user-info, secret-looking query values masked, known secrets masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    query = "&".join(_safe_parameter(p) for p in parts.query.split("&")) if parts.query else ""
    return redact(urlunsplit((parts.scheme, host, parts.path, query, parts.fragment)))


def _safe_parameter(parameter: str) -> str:
    name, equals, _ = parameter.partition("=")
    return f"{name}={MASK}" if equals and _SECRET_QUERY.match(name) else parameter
