"""The webhook queue in the beat -> the status file -> `watchdog status`."""

from __future__ import annotations

from qqworker.contract.beat import Beat, Progress
from watchdog.status import render, webhook_status


def test_the_beat_carries_the_webhook_fields_and_status_shows_them() -> None:
    fields = {
        "webhook_pending": 7,
        "webhook_oldest_age_s": 12.5,
        "webhook_delivered": 40,
        "webhook_failures": 3,
        "webhook_dropped": 0,
    }
    progress = Progress(clock=lambda: 100.0, webhook_source=lambda: fields)
    beat, unknown = Beat.parse(progress.beat().encode())
    assert not unknown
    status = {"state": "running", "webhook": webhook_status(beat)}
    assert status["webhook"] == {
        "pending": 7,
        "oldest_age_s": 12.5,
        "delivered": 40,
        "failures": 3,
        "dropped": 0,
    }
    text = render(status, "healthy", 0.0)
    row = "webhook          7 pending (oldest waiting 12.5s), 40 delivered, 3 failed attempts, 0 dropped"
    assert row in text.splitlines()[1:] or f"  {row}" in text.splitlines()


def test_no_webhook_handler_no_webhook_status() -> None:
    beat = Progress(clock=lambda: 0.0).beat()
    assert webhook_status(beat) is None
    assert webhook_status(None) is None
    assert "webhook" not in render({"state": "running", "webhook": None}, "healthy", 0.0)
