"""Webhook notification at the end of a scheduled run: on a decision change or a regression, POST a
small JSON summary to the URL held in the environment variable the pilot names
(`notify.webhook_url_env`). Notifying is best effort: a failure of any kind is logged (without the URL,
which often carries a token) and never fails the run or changes its exit code.

`timeout_s` is a hard deadline on the whole exchange (connect, send, the status line, every header and
the body): a receiver that drips its answer, or answers something that is not HTTP, cannot hold a
finished run."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import httpx

from roi.baseline import BaselineCheck
from roi.pilot import Notify

log = logging.getLogger("roi.notify")


def should_notify(check: BaselineCheck) -> bool:
    return check.regressed or check.decision_changed or any(r.kind == "accuracy" for r in check.regressions)


def payload(pilot: str, check: BaselineCheck, report: str | None) -> dict[str, Any]:
    """The message: ids, stages and what regressed (no prompts, outputs or model text)."""
    now, before = check.decision_now or {}, check.decision_before or {}
    return {
        "pilot": pilot,
        "run_id": check.run_id,
        "reference_run_id": check.reference,
        "reference_is_baseline": check.reference_is_baseline,
        "decision": {k: now.get(k) for k in ("model", "stage", "stage_name", "outcome")},
        "decision_before": {k: before.get(k) for k in ("model", "stage", "stage_name", "outcome")},
        "decision_changed": check.decision_changed,
        "regressed": check.regressed,
        "regressions": [r.describe() for r in check.regressions],
        "report": report,
    }


class WebhookRefused(Exception):
    """The receiver answered with a status other than 2xx."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def post_json(url: str, body: dict[str, Any], timeout_s: float) -> int:
    """POST `body` as JSON, the whole exchange within `timeout_s`; returns the HTTP status (raises
    `WebhookRefused` on a non-2xx answer, `TimeoutError` past the deadline, anything else on other failures)."""
    return asyncio.run(_post(url, json.dumps(body, ensure_ascii=False).encode("utf-8"), timeout_s))


async def _post(url: str, data: bytes, timeout_s: float) -> int:
    headers = {"Content-Type": "application/json", "User-Agent": "roi"}
    async with asyncio.timeout(timeout_s), httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
        response = await client.post(url, content=data, headers=headers)
    if not response.is_success:
        raise WebhookRefused(response.status_code)
    return response.status_code


def notify(settings: Notify, pilot: str, check: BaselineCheck, report: str | None) -> str:
    """Send the notification when it is due; returns what happened: skipped, not_configured, sent or
    failed (the reason is logged; the run goes on either way)."""
    if not should_notify(check):
        return "skipped"
    if settings.webhook_url_env is None:
        return "not_configured"
    url = os.environ.get(settings.webhook_url_env, "").strip()
    name = settings.webhook_url_env
    if not url:
        log.warning("notify: environment variable %s is empty or unset; no notification sent", name)
        return "failed"
    if not url.startswith(("http://", "https://")):
        log.warning("notify: %s does not hold an http(s) URL; no notification sent", name)
        return "failed"
    try:
        post_json(url, payload(pilot, check, report), settings.timeout_s)
    except WebhookRefused as refused:
        log.warning("notify: the webhook in %s answered %s", name, refused)
        return "failed"
    except TimeoutError:
        log.warning("notify: the webhook in %s did not answer within %g s", name, settings.timeout_s)
        return "failed"
    except Exception as error:  # refused connections, bad URLs, answers that are not HTTP: never fatal
        log.warning("notify: could not reach the webhook in %s: %s", name, type(error).__name__)
        return "failed"
    return "sent"
