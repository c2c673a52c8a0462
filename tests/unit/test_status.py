"""The status file (watchdog/status.py): its verdicts, its atomic replacement, the pid check, the
human-readable form, and what it shows from the worker's beat (the webhook queue, the local gateway)."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from qqworker.contract.beat import Beat, Phase, Progress
from watchdog.status import (
    HEALTHY,
    NOT_RUNNING,
    UNHEALTHY,
    gateway_status,
    judge,
    pid_alive,
    read_status_file,
    render,
    webhook_status,
    write_status,
)


def healthy_status(now: float) -> dict:
    return {
        "state": "running",
        "phase": "connected",
        "last_beat_age_s": 0.5,
        "heartbeat_timeout_s": 30,
        "updated_at_epoch": now - 1,
        "stale_after_s": 20,
    }


def test_status_verdicts() -> None:
    now = 1_000_000.0
    assert judge(None, now, False)[0] == NOT_RUNNING
    assert judge(healthy_status(now), now, False)[0] == NOT_RUNNING
    assert judge(healthy_status(now), now, True) == (HEALTHY, "healthy: connected")
    assert judge({**healthy_status(now), "phase": "waiting"}, now, True)[0] == UNHEALTHY
    assert judge({**healthy_status(now), "state": "respawning"}, now, True)[0] == UNHEALTHY
    assert judge({**healthy_status(now), "updated_at_epoch": now - 60}, now, True)[0] == UNHEALTHY
    assert judge({**healthy_status(now), "last_beat_age_s": 29.5}, now, True)[0] == UNHEALTHY


def test_status_file_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "run" / "status.json"
    write_status(str(path), {"state": "running", "n": 1})
    write_status(str(path), {"state": "running", "n": 2})
    assert read_status_file(str(path)).status == {"state": "running", "n": 2}
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]  # no temporary left
    path.write_text("{half")
    assert read_status_file(str(path)).status is None


def test_pid_alive_checks_the_start_time_against_pid_reuse() -> None:
    me = psutil.Process()
    assert pid_alive(os.getpid(), me.create_time())
    assert not pid_alive(os.getpid(), me.create_time() - 3600)
    assert not pid_alive(None) and not pid_alive(-1)


def test_watchdog_status_shows_skipped_poison_events() -> None:
    from watchdog.status import render

    last = {"event_type": "C2C_MESSAGE_CREATE", "event_id": "C2C_MESSAGE_CREATE:ab12", "seq": 41}
    text = render({"state": "running", "skipped_events": 2, "last_skipped": last}, "healthy: connected", 0.0)
    assert "skipped events   2 (last: C2C_MESSAGE_CREATE id C2C_MESSAGE_CREATE:ab12 seq 41)" in text
    assert "skipped" not in render({"state": "running", "skipped_events": 0}, "healthy", 0.0)


def test_status_render_shows_each_output_state_and_its_losses() -> None:
    from watchdog.status import render

    status = {
        "state": "running",
        "sinks": {
            "stdout": {"state": "stalled", "since": "2026-01-01T00:00:00.000Z", "error": None,
                       "produced": 900, "written": 300, "dropped": 550, "pending": 50},
            "file": {"state": "failing", "since": "2026-01-01T00:00:01.000Z", "error": "ENOSPC: No space",
                     "produced": 900, "written": 10, "dropped": 0, "pending": 890},
        },
    }  # fmt: skip
    text = render(status, "healthy: connected", 0.0)
    assert "output stdout    stalled since 2026-01-01T00:00:00.000Z, 550 line(s) dropped of 900" in text
    assert "output file      failing since 2026-01-01T00:00:01.000Z: ENOSPC: No space" in text
    assert "output" not in render({"state": "running"}, "x", 0.0)


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


# The local gateway (QQ_HANDLER=gateway) from the beat ---------------------------------------------


def test_the_status_shows_clients_and_buffer_from_the_beat() -> None:
    progress = Progress(phase=Phase.CONNECTED)
    fields = {
        "gateway_clients": 1,
        "gateway_buffered": 12,
        "gateway_seq": 40,
        "gateway_evicted": 0,
        "gateway_client_marks": [["127.0.0.1:5000#1", 40, 38]],
    }
    progress.delivery_source = lambda: fields
    beat = Beat.decode(progress.beat().encode())
    status = {"state": "running", "gateway": gateway_status(beat)}
    assert status["gateway"] == {
        "clients": 1,
        "buffered": 12,
        "seq": 40,
        "evicted": 0,
        "marks": [{"client": "127.0.0.1:5000#1", "sent": 40, "confirmed": 38}],
    }
    text = render(status, "healthy", 0.0)
    assert "local gateway" in text and "1 client(s), 12 event(s) buffered" in text
    assert "127.0.0.1:5000#1 sent 40 confirmed 38" in text


def test_no_gateway_line_for_other_handlers_or_malformed_beats() -> None:
    assert gateway_status(None) is None
    assert gateway_status(Beat(phase="connected", attempt=1)) is None
    odd = Beat(phase="connected", attempt=1, gateway_clients=2, gateway_client_marks=[["x"], 5])  # type: ignore[list-item]
    assert gateway_status(odd) == {"clients": 2, "buffered": None, "seq": None, "evicted": None, "marks": []}
    assert "local gateway" not in render({"state": "running"}, "healthy", 0.0)
    # A damaged status file's gateway entry is shown as far as it goes, never a traceback.
    for damaged in ({"clients": "x", "marks": 5}, {"marks": [1, None, {"client": 2}]}, {}):
        assert "local gateway" in render({"gateway": damaged}, "healthy", 0.0)
    assert "local gateway" not in render({"gateway": [1, 2]}, "healthy", 0.0)
