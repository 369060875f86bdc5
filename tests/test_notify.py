"""Webhook notification against a real HTTP server on 127.0.0.1: sent on a regression or a decision
change with a small JSON summary; a dead, failing or hostile webhook is logged, never fatal, never
changes the run's exit code, and cannot hold the run past its deadline."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from roi.baseline import BaselineCheck, Regression
from roi.errors import ExitCode
from roi.events import EventLog, read_events
from roi.notify import notify
from roi.pilot import LoadedPilot, Notify, load_pilot
from roi.runner import RunOptions, run_pilot
from tests.servers import Behaviour, HostileServer

from .conftest import lenient_demo
from .fakes import FakeBackend
from .test_runner import swap_upper_and_capital_in_mixed


class Hook:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook?token=secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    with Hook() as running:
        yield running


def regressed_check() -> BaselineCheck:
    before = {"model": "m", "stage": 1, "stage_name": "shadow", "outcome": "more_data", "models": []}
    now = {"model": "m", "stage": 0, "stage_name": "pilot", "outcome": "hold", "models": []}
    return BaselineCheck(
        "run-2", "run-1", True, before, now, [Regression("stage", "m", "decision", "stage 1", "stage 0")]
    )


def test_regression_posts_a_small_summary(hook: Hook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROI_TEST_HOOK", hook.url)
    assert notify(Notify(webhook_url_env="ROI_TEST_HOOK"), "demo", regressed_check(), "r/report.html") == "sent"
    (body,) = hook.bodies
    assert body["pilot"] == "demo" and body["run_id"] == "run-2" and body["reference_run_id"] == "run-1"
    assert body["regressed"] is True and body["decision_changed"] is True
    assert body["decision"]["stage"] == 0 and body["decision_before"]["stage"] == 1
    assert body["regressions"] == ["m: decision stage 1 -> stage 0"]


def test_nothing_sent_without_a_change(hook: Hook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROI_TEST_HOOK", hook.url)
    same = {"model": "m", "stage": 1, "stage_name": "shadow", "outcome": "more_data", "models": []}
    check = BaselineCheck("run-2", "run-1", True, same, dict(same), [])
    assert notify(Notify(webhook_url_env="ROI_TEST_HOOK"), "demo", check, None) == "skipped"
    assert notify(Notify(), "demo", regressed_check(), None) == "not_configured"
    assert hook.bodies == []


def test_failures_are_logged_without_the_url_and_never_raise(
    hook: Hook, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Notify(webhook_url_env="ROI_TEST_HOOK", timeout_s=2)
    caplog.set_level(logging.WARNING, logger="roi.notify")
    hook.status = 500
    monkeypatch.setenv("ROI_TEST_HOOK", hook.url)
    assert notify(settings, "demo", regressed_check(), None) == "failed"
    assert len(hook.bodies) == 1 and "HTTP 500" in caplog.text
    hook.server.shutdown()
    hook.server.server_close()  # nothing listens on the port now
    assert notify(settings, "demo", regressed_check(), None) == "failed"
    monkeypatch.delenv("ROI_TEST_HOOK")
    assert notify(settings, "demo", regressed_check(), None) == "failed"
    assert "secret-token" not in caplog.text and "127.0.0.1" not in caplog.text
    assert caplog.text.count("ROI_TEST_HOOK") == 3


@pytest.mark.parametrize("behaviour", [Behaviour.GARBAGE, Behaviour.ENDLESS_HEADERS, Behaviour.DRIP_BODY])
def test_a_hostile_webhook_fails_within_its_deadline(
    behaviour: Behaviour, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="roi.notify")
    settings = Notify(webhook_url_env="ROI_TEST_HOOK", timeout_s=1.5)
    with HostileServer(behaviour, drip_s=0.3) as server:
        monkeypatch.setenv("ROI_TEST_HOOK", server.url + "?token=secret-token")
        started = time.monotonic()
        assert notify(settings, "demo", regressed_check(), None) == "failed"
        elapsed = time.monotonic() - started
    assert server.requests == 1
    # A deadline on the whole exchange, not on each read: a drip every 0.3 s would never end without it.
    # The margin only bounds a hang, so a loaded machine passes too.
    assert elapsed < settings.timeout_s + 30
    assert "ROI_TEST_HOOK" in caplog.text and "secret-token" not in caplog.text


def notifying(pilot: LoadedPilot) -> LoadedPilot:
    spec = pilot.spec.model_copy(update={"notify": Notify(webhook_url_env="ROI_TEST_HOOK", timeout_s=1)})
    return LoadedPilot(spec, pilot.path, pilot.sha256, pilot.tasks)


def test_a_garbage_webhook_keeps_the_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pilot = notifying(load_pilot(lenient_demo(tmp_path / "pilot")))
    spec = pilot.spec.models[0]
    run_pilot(pilot, RunOptions(out_dir=tmp_path, limit=30, backends={"gemma-270m": FakeBackend(spec, pilot)}))
    worse = FakeBackend(spec, pilot, swap_upper_and_capital_in_mixed)
    with HostileServer(Behaviour.GARBAGE) as server, EventLog(tmp_path / "events.jsonl") as log:
        monkeypatch.setenv("ROI_TEST_HOOK", server.url)
        options = RunOptions(out_dir=tmp_path, limit=30, fresh=True, backends={"gemma-270m": worse}, emit=log.emit)
        second = run_pilot(pilot, options)
    assert server.requests == 1
    assert second.exit_code == ExitCode.REGRESSED
    (finished,) = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "run_finished"]
    assert finished["notify"] == "failed" and finished["regressed"] is True


def test_a_run_that_regresses_notifies(hook: Hook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pilot = notifying(load_pilot(lenient_demo(tmp_path / "pilot")))
    monkeypatch.setenv("ROI_TEST_HOOK", hook.url)
    spec = pilot.spec.models[0]
    first = run_pilot(pilot, RunOptions(out_dir=tmp_path, limit=30, backends={"gemma-270m": FakeBackend(spec, pilot)}))
    assert hook.bodies == []  # nothing to compare with yet
    worse = FakeBackend(spec, pilot, swap_upper_and_capital_in_mixed)
    second = run_pilot(pilot, RunOptions(out_dir=tmp_path, limit=30, fresh=True, backends={"gemma-270m": worse}))
    assert second.check is not None and second.check.regressed
    (body,) = hook.bodies
    assert body["run_id"] == second.run_id and body["reference_run_id"] == first.run_id
    assert any("all_tasks_mixed" in r for r in body["regressions"])
    assert body["report"].endswith("report.html")
