"""The status file: its verdicts, its atomic replacement, the pid check and the human-readable form."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from watchdog.status import HEALTHY, NOT_RUNNING, UNHEALTHY, judge, pid_alive, read_status_file, write_status


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
