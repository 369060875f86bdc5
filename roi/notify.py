"""Webhook notification at the end of a scheduled run: on a decision change or a regression, POST a
small JSON summary to the URL held in the environment variable the pilot names
(`notify.webhook_url_env`). Notifying is best effort: a failure is logged (without the URL, which
often carries a token) and never fails the run."""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from typing import Any

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


def post_json(url: str, body: dict[str, Any], timeout_s: float) -> int:
    """POST `body` as JSON; returns the HTTP status (raises on network errors and non-2xx)."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json", "User-Agent": "roi"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return int(response.status)


def notify(settings: Notify, pilot: str, check: BaselineCheck, report: str | None) -> str:
    """Send the notification when it is due; returns what happened: skipped, not_configured, sent or
    failed (the reason is logged; the run goes on either way)."""
    if not should_notify(check):
        return "skipped"
    if settings.webhook_url_env is None:
        return "not_configured"
    url = os.environ.get(settings.webhook_url_env, "").strip()
    if not url:
        log.warning("notify: environment variable %s is empty or unset; no notification sent", settings.webhook_url_env)
        return "failed"
    if not url.startswith(("http://", "https://")):
        log.warning("notify: %s does not hold an http(s) URL; no notification sent", settings.webhook_url_env)
        return "failed"
    try:
        post_json(url, payload(pilot, check, report), settings.timeout_s)
    except urllib.error.HTTPError as error:
        log.warning("notify: the webhook in %s answered HTTP %s", settings.webhook_url_env, error.code)
        return "failed"
    except (OSError, ValueError) as error:  # URLError, timeouts, refused connections, bad URLs
        reason = getattr(error, "reason", error)
        log.warning("notify: could not reach the webhook in %s: %s", settings.webhook_url_env, type(reason).__name__)
        return "failed"
    return "sent"
