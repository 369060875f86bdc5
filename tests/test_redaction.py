"""Masking secrets in text and URLs: by their shape whatever their value, and every piece of a key roi
knows, always before a cut."""

from __future__ import annotations

import pytest

from roi import redaction
from roi.redaction import MASK, clip, redact, remember, safe_url

KEY = "sk-HOSTILE-0123456789abcdefghijklmn"


def pieces(secret: str, size: int = 12) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def assert_no_piece(text: str, secret: str = KEY) -> None:
    leaked = [p for p in pieces(secret) if p in text]
    assert not leaked, (leaked, text)


@pytest.fixture(autouse=True)
def forget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redaction, "_known", set())


def test_credentials_masked_whatever_the_key() -> None:
    assert redact("you sent Bearer abcdef123456") == f"you sent Bearer {MASK}"
    assert redact("Authorization: Basic dXNlcjpwYXNz") == f"Authorization: {MASK}"
    assert redact('{"authorization": "Bearer zzz999yyy"}') == f'{{"authorization": "{MASK}"}}'
    assert redact('{"api_key": "abc", "password": "hunter2"}') == f'{{"api_key": "{MASK}", "password": "{MASK}"}}'
    assert redact("fetch https://bob:pw@host/v1 failed") == "fetch https://host/v1 failed"
    # ordinary words and error codes stay readable
    for text in ("token limit exceeded", "max_tokens=5", '"code": "model_not_found"', "Basic plan"):
        assert redact(text) == text


def test_known_key_masked_in_pieces_and_before_the_cut() -> None:
    remember(KEY)
    padding = "x" * 280
    echoed = f"{padding} you sent {KEY[:25]} and {KEY[5:30]}"
    assert_no_piece(redact(echoed))
    assert_no_piece(clip(echoed, 300))  # a cut first would leave a piece the redaction no longer matches
    assert len(clip(echoed, 300)) <= 300
    assert clip(f"{padding} {KEY}", 300).endswith(MASK)


def test_short_placeholder_keys_mask_whole_words_only() -> None:
    remember("EMPTY")
    assert redact("key EMPTY refused; EMPTYING the queue") == f"key {MASK} refused; EMPTYING the queue"


def test_safe_url_strips_user_info_and_secret_parameters() -> None:
    url = "https://bob:s3cret@api.example.com/v1?api-key=abc&model=m&sig=q"
    assert safe_url(url) == f"https://api.example.com/v1?api-key={MASK}&model=m&sig={MASK}"
    assert safe_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"


def test_the_stored_pilot_keeps_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    from roi.pilot import ModelSpec, Pilot
    from roi.runner import stored_pilot_json

    url = "https://bob:s3cret-password@api.example.com/v1?token=t0ken-value"
    model = ModelSpec(name="m", backend="openai", model="x", base_url=url, api_key_env="K")
    task = {"name": "t", "instruction": "i", "examples": "e.csv", "eval": "v.csv", "scorer": "exact"}
    spec = Pilot(
        pilot="p", business_unit="u", owner="o", models=[model], tasks=[task], modes={"mixed": {"enabled": False}}
    )
    stored = stored_pilot_json(spec)
    assert "s3cret" not in stored and "t0ken-value" not in stored and "bob" not in stored
    assert Pilot.model_validate_json(stored).models[0].base_url == f"https://api.example.com/v1?token={MASK}"
