"""The status snapshot with a hand-made supervisor: its fields, when it is written, a failing write."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from qqworker.contract.beat import Beat
from qqworker.contract.events import LogEvent
from qqworker.contract.settings import Settings
from watchdog.policy import PoisonWatch, SupervisionPolicy, SupervisionTimings
from watchdog.snapshot import StatusSnapshot, wall
from watchdog.states import SupervisorState

FIELDS = [
    "state", "watchdog_pid", "watchdog_started_at_epoch", "started_at", "child_pid", "generation", "restarts",
    "phase", "attempt", "last_beat_age_s", "connected_since", "resumable", "api_base", "token_url",
    "skipped_events", "last_skipped", "resumed_from", "last_exit", "exit_code", "heartbeat_timeout_s",
    "stale_after_s", "updated_at", "updated_at_epoch", "sinks", "webhook", "gateway",
]  # fmt: skip


def facts(tmp_path: Path, **changes: Any) -> SimpleNamespace:
    settings = Settings(app_id="1", status_file=str(tmp_path / "status.json"), heartbeat_interval=1.0)
    now = [50.0]
    base = {
        "settings": settings,
        "out": SimpleNamespace(sinks=lambda: {}),
        "clock": lambda: now[0],
        "now": now,
        "policy": SupervisionPolicy(SupervisionTimings.from_settings(settings)),
        "poison": PoisonWatch(0),
        "state": SupervisorState.RUNNING,
        "generation": 2,
        "child": SimpleNamespace(pid=777),
        "api_base": "http://127.0.0.1:1",
        "token_url": "http://127.0.0.1:1/app/getAppAccessToken",
        "started_at": "2026-01-01T00:00:00.000Z",
        "resumed_from": None,
        "last_exit": None,
        "exit_code": None,
    }
    return SimpleNamespace(**{**base, **changes})


def test_the_status_has_the_fields_of_the_status_file_in_their_order(tmp_path: Path) -> None:
    f = facts(tmp_path)
    f.policy.child_spawned(40.0)
    f.policy.beat(45.0, Beat(phase="connected", attempt=1, session_id="s", seq=3, connected_for_s=5.0))
    f.policy.session_seen(Beat(phase="connected", attempt=1, session_id="s", seq=3))
    status = StatusSnapshot(f).status()
    assert list(status) == FIELDS
    assert (status["state"], type(status["state"])) == ("running", str)
    assert (status["child_pid"], status["generation"], status["phase"], status["attempt"]) == (
        777,
        2,
        "connected",
        1,
    )
    assert status["last_beat_age_s"] == 5.0 and status["resumable"] is True
    assert status["stale_after_s"] == 8.0  # three status periods (1 s beats: 1 s) plus 5 s


def test_without_a_child_nothing_of_the_last_one_is_shown(tmp_path: Path) -> None:
    f = facts(tmp_path, child=None, state=SupervisorState.RESPAWNING)
    f.policy.child_spawned(40.0)
    f.policy.beat(45.0, Beat(phase="connected", attempt=1, connected_for_s=5.0))
    status = StatusSnapshot(f).status()
    assert status["state"] == "respawning"
    assert [status[k] for k in ("child_pid", "phase", "attempt", "last_beat_age_s", "connected_since")] == [
        None
    ] * 5


def test_the_view_for_the_endpoints(tmp_path: Path) -> None:
    view = StatusSnapshot(facts(tmp_path, state=SupervisorState.KILLING)).view()
    assert (view.state, view.generation, view.child_pid) == (SupervisorState.KILLING, 2, 777)


def test_it_is_written_when_due_or_forced(tmp_path: Path) -> None:
    f = facts(tmp_path)
    snapshot = StatusSnapshot(f)
    path = Path(f.settings.status_file)
    snapshot.write()
    assert json.loads(path.read_text())["generation"] == 2 and snapshot.next_due == 51.0
    f.generation = 3
    f.now[0] = 50.5
    snapshot.write()
    assert json.loads(path.read_text())["generation"] == 2  # not due yet
    snapshot.write(force=True)
    assert json.loads(path.read_text())["generation"] == 3 and snapshot.next_due == 51.5


def test_a_failing_write_is_logged_once_until_one_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="watchdog")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    f = facts(tmp_path)
    f.settings = Settings(app_id="1", status_file=str(blocker / "status.json"))
    snapshot = StatusSnapshot(f)
    for _ in range(3):
        snapshot.write(force=True)
    assert len([r for r in caplog.records if r.event == LogEvent.STATUS_WRITE_FAILED.value]) == 1
    f.settings = Settings(app_id="1", status_file=str(tmp_path / "status.json"))
    snapshot.write(force=True)
    f.settings = Settings(app_id="1", status_file=str(blocker / "status.json"))
    snapshot.write(force=True)
    assert len([r for r in caplog.records if r.event == LogEvent.STATUS_WRITE_FAILED.value]) == 2


def test_wall_places_a_clock_reading_on_the_wall_clock() -> None:
    assert wall(None, 10.0, 1_800_000_000.0) is None
    assert wall(7.5, 10.0, 1_800_000_000.0) == "2027-01-15T07:59:57.500Z"  # 2.5 s before now
