"""The outage report: the pure timeline over records, and the CLI on generated rotated + gzipped logs."""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from qqworker.contract.logs import ContractFormatter
from watchdog.report import (
    build_report,
    error_cause,
    format_duration,
    main,
    read_logs,
    render_text,
    restart_line,
    summary_line,
)

DAY = datetime(2025, 3, 14, tzinfo=timezone.utc)


class Log:
    """Builds records as the worker and watchdog write them, on a virtual clock."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.records: list[dict[str, Any]] = []
        self.generation = 1

    def at(self, hhmmss: str) -> Log:
        h, m, s = (int(x) for x in hhmmss.split(":"))
        self.now = self.now.replace(hour=h, minute=m, second=s, microsecond=0)
        return self

    def after(self, seconds: float) -> Log:
        self.now += timedelta(seconds=seconds)
        return self

    def add(self, event: str, role: str = "worker", message: str = "", **fields: Any) -> Log:
        self.records.append(
            {
                "timestamp": self.now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "level": "INFO",
                "logger": role,
                "message": message or event,
                "event": event,
                "role": role,
                "pid": 100 + self.generation,
                "generation": self.generation,
                **fields,
            }
        )
        return self

    def start(self) -> Log:
        self.add("watchdog.started", "watchdog", config={})
        return self.spawn()

    def spawn(self, resume: bool = False) -> Log:
        self.add("child.spawned", "watchdog", child_pid=100 + self.generation, resume=resume)
        return self.add("worker.started", app_id="1", intents=1 << 30)

    def connect(self, attempt: int = 1, resumed: bool = False) -> Log:
        self.add("gateway.connecting", attempt=attempt, url="wss://gw")
        return self.after(0.3).add("gateway.connected", attempt=attempt, session_id="s1", resumed=resumed)

    def fail(self, attempt: int, error: str, delay: float) -> Log:
        self.add("gateway.connecting", attempt=attempt, url="wss://gw")
        self.after(0.01).add("reconnect.failed", attempt=attempt, error=error)
        return self.add("reconnect.scheduled", attempt=attempt + 1, delay_s=delay, max_attempts=0).after(
            delay
        )


def incident(log: Log) -> Log:
    """The original incident's shape: connected, the network drops at 08:12:53, back at 12:01:10."""
    log.at("08:00:00").start().connect()
    for n in range(5):
        log.after(60).add("dispatch", event_type="C2C_MESSAGE_CREATE", event_id=f"e{n}", seq=n + 2)
    log.at("08:12:53").add("gateway.closed", close_code=None, reason="connection lost", action="resume")
    back = DAY.replace(hour=12, minute=1, second=10)
    for attempt in range(1, 230):
        log.fail(attempt, "[Errno 101] Network is unreachable", 0.5)
        if attempt < 229:
            log.now = log.now + (back - log.now) / (230 - attempt) - timedelta(seconds=0.5)
    log.now = back - timedelta(seconds=0.3)
    return log.connect(230, resumed=True)


def test_the_incident_in_one_line() -> None:
    report = build_report(incident(Log(DAY)).records)
    (outage,) = report.outages
    assert outage.attempt_count == 230 and outage.failed_attempts == 229
    assert outage.causes["network unreachable"] == 229
    line = summary_line(outage)
    assert line.startswith(
        "offline 08:12:53 → 12:01:10, 3h48m, 230 attempts, cause: network unreachable ×229"
    )
    assert "connection lost" in line
    assert report.connections == 2


def test_connected_throughout_has_no_outage() -> None:
    log = Log(DAY).at("09:00:00").start().connect()
    log.after(3600).add("dispatch", event_type="X", event_id="1", seq=2)
    log.after(1).add("watchdog.stopped", "watchdog", reason="SIGTERM")
    report = build_report(log.records)
    assert report.outages == [] and report.connections == 1


def test_a_routine_4009_refresh_is_counted_but_not_listed() -> None:
    log = Log(DAY).at("09:00:00").start().connect()
    log.after(1800).add("gateway.closed", close_code=4009, reason="session timed out", action="resume")
    log.after(0.1).connect(1, resumed=True)
    report = build_report(log.records)
    (outage,) = report.outages
    assert outage.duration_s < 1 and outage.close_codes == {"4009": 1}
    assert report.listed(5.0) == [] and report.listed(0) == [outage]
    data = report.to_dict(5.0)
    assert data["outage_count"] == 1 and data["outages_not_listed"] == 1 and data["outages"] == []


def test_a_frozen_worker_is_killed_and_respawned() -> None:
    log = Log(DAY).at("10:00:00").start().connect()
    log.after(30).add("child.heartbeat_missed", "watchdog", silent_s=30.2)
    log.add("child.killed", "watchdog", child_pid=101, reason="heartbeat_missed", signal="SIGKILL")
    log.add("child.exited", "watchdog", child_pid=101, exitcode=-9, meaning="killed by SIGKILL")
    log.add("respawn.scheduled", "watchdog", delay_s=1.0, restarts=1).after(1)
    log.generation = 2
    log.spawn(resume=True).after(0.5).connect(1, resumed=True)
    (outage,) = build_report(log.records).outages
    assert outage.kills == {"heartbeat_missed": 1} and outage.respawns == 1
    assert outage.causes == {"worker stopped beating": 1}
    assert 1.5 <= outage.duration_s <= 2
    line = summary_line(outage)
    assert (
        "1 kill (heartbeat_missed)" in line
        and "1 respawn" in line
        and "cause: worker stopped beating" in line
    )


def test_started_without_network_is_offline_from_the_start() -> None:
    log = Log(DAY).at("07:00:00").start()
    for attempt in range(1, 4):
        log.fail(attempt, "OSError(101, 'Network is unreachable')", 2.0)
    log.connect(4)
    (outage,) = build_report(log.records).outages
    assert outage.start == DAY.replace(hour=7) and outage.attempt_count == 4


def test_a_killed_watchdog_leaves_an_outage_from_its_last_line() -> None:
    log = Log(DAY).at("06:00:00").start().connect()
    log.at("06:10:00").add("dispatch", event_type="X", event_id="1", seq=2)  # last line, then SIGKILL
    log.at("06:30:00").start().connect()
    (outage,) = build_report(log.records).outages
    assert outage.start == DAY.replace(hour=6, minute=10)
    assert 20 * 60 <= outage.duration_s <= 20 * 60 + 1
    assert any("without a stop line" in cause for cause in outage.causes)


def test_clean_stop_and_restart_are_not_an_outage() -> None:
    log = Log(DAY).at("06:00:00").start().connect()
    log.after(5).add("child.killed", "watchdog", child_pid=101, reason="received SIGTERM", signal="SIGTERM")
    log.add("gateway.closed", close_code=None, reason="the worker is stopping", action="resume")
    log.add("child.exited", "watchdog", child_pid=101, exitcode=0, meaning="stopped on request")
    log.add("watchdog.stopped", "watchdog", reason="SIGTERM")
    log.at("07:00:00").start().connect()
    assert build_report(log.records).outages == []


def clean_stop(log: Log) -> Log:
    log.add("watchdog.stopping", "watchdog", signal="SIGTERM", forced=False)
    log.after(0.5).add("gateway.closed", close_code=None, reason="the worker is stopping", action="resume")
    log.add("child.exited", "watchdog", child_pid=101, exitcode=0, meaning="stopped on request")
    return log.add("watchdog.stopped", "watchdog", reason="received SIGTERM")


def restarted(log: Log, resumed_from: dict[str, Any] | None) -> Log:
    log.add("watchdog.started", "watchdog", config={}, resumed_from=resumed_from)
    return log.spawn(resume=resumed_from is not None)


def test_a_watchdog_restart_is_its_own_kind_of_gap_not_an_outage() -> None:
    log = Log(DAY).at("06:00:00").start().connect()
    clean_stop(log.at("06:05:00"))
    restarted(log.after(0.4), {"session_id": "s1", "seq": 42, "age_s": 0.9, "clean_stop": True})
    log.after(0.2).connect(resumed=True)
    report = build_report(log.records)
    assert report.outages == []
    (restart,) = report.restarts
    assert restart.clean and restart.resumed and restart.start == DAY.replace(hour=6, minute=5)
    assert restart.duration_s == pytest.approx(1.4)
    assert restart.resumed_from is not None and restart.resumed_from["seq"] == 42
    text = render_text(report)
    assert "1 watchdog restart\n" in text and "no outage" in text
    assert "watchdog restart 06:05:00 → 06:05:01, 1.4s, clean stop, resumed session s1 (seq 42)" in text
    data = report.to_dict()
    assert data["restarts"][0]["duration_s"] == 1.4 and data["restarts"][0]["resumed"] is True


def test_a_killed_watchdogs_restart_is_listed_too_with_its_outage() -> None:
    log = Log(DAY).at("06:00:00").start().connect()
    log.at("06:10:00").add("dispatch", event_type="X", event_id="1", seq=2)  # last line, then SIGKILL
    restarted(log.at("06:10:30"), {"session_id": "s1", "seq": 1, "age_s": 30.0, "clean_stop": False})
    log.after(0.5).connect(resumed=True)
    report = build_report(log.records)
    (restart,) = report.restarts
    assert not restart.clean and restart.start == DAY.replace(hour=6, minute=10)
    assert "died without a stop line" in restart_line(restart)
    assert len(report.outages) == 1  # and the time offline is an outage as before


def test_a_restart_whose_resume_was_refused_says_why() -> None:
    log = Log(DAY).at("06:00:00").start().connect()
    clean_stop(log.at("06:05:00"))
    restarted(log.after(1), {"session_id": "s1", "seq": 3, "age_s": 1.0, "clean_stop": True})
    log.add("gateway.connecting", attempt=1, url="wss://gw")
    log.after(0.3).add("gateway.closed", close_code=4006, reason="invalid session", action="identify")
    log.after(0.1).add(
        "gateway.connected",
        attempt=2,
        session_id="s2",
        resumed=False,
        reason="the platform refused the Resume",
    )
    (restart,) = build_report(log.records).restarts
    assert restart.resumed is False
    assert "persisted session not resumed: the platform refused the Resume" in restart_line(restart)
    # Without a persisted session the first connection is simply a new one.
    log2 = Log(DAY).at("06:00:00").start().connect()
    clean_stop(log2.at("06:05:00"))
    restarted(log2.after(1), None).connect()
    assert "new session" in restart_line(build_report(log2.records).restarts[0])


def test_an_outage_still_going_at_the_end() -> None:
    log = Log(DAY).at("06:00:00").start().connect()
    log.after(10).add("gateway.ack_timeout", missed=2)
    log.add("gateway.closed", close_code=None, reason="heartbeat ACK timeout", action="resume")
    log.fail(1, "TimeoutError()", 4).fail(2, "Connection refused", 8)
    (outage,) = build_report(log.records).outages
    assert outage.ended_by == "ongoing" and outage.end is None
    assert outage.causes["timeout"] == 1 and outage.causes["connection refused"] == 1
    assert outage.causes["heartbeat ACKs missing (half-open link)"] == 1
    assert "still offline at end of log" in summary_line(outage)


def test_worker_alone_stops_with_worker_stopped() -> None:
    log = Log(DAY).at("06:00:00")
    log.add("worker.started", app_id="1", intents=1).connect()
    log.after(5).add("gateway.closed", close_code=4009, reason="x", action="resume")
    log.after(1).add("worker.stopped", reason="SIGTERM")
    (outage,) = build_report(log.records).outages
    assert outage.ended_by == "stopped"


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        ("[Errno 101] Network is unreachable", "network unreachable"),
        ("OSError(101, 'Network is unreachable')", "network unreachable"),
        ("[Errno 111] Connect call failed ('127.0.0.1', 4444)", "connection refused"),
        ("ConnectionRefusedError(111, 'Connection refused')", "connection refused"),
        ("TimeoutError()", "timeout"),
        ("timed out during opening handshake", "timeout"),
        ("[Errno -3] Temporary failure in name resolution", "DNS lookup failed"),
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", "TLS certificate error"),
        ("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)", "TLS error"),
        (
            "discovery: RestError: gateway discovery (/gateway/bot): ClientConnectorError: Cannot connect to "
            "host 127.0.0.1:32939 ssl:default [Connect call failed ('127.0.0.1', 32939)]",
            "cannot connect",
        ),
        (
            "InvalidStatus: server rejected WebSocket connection: HTTP 502",
            "InvalidStatus: server rejected WebSocket connection: HTTP N",
        ),
    ],
)
def test_error_causes_group(error: str, cause: str) -> None:
    assert error_cause(error) == cause


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.42, 42, 725, 13697, 183600)] == [
        "0.4s",
        "42s",
        "12m05s",
        "3h48m",
        "2d03h",
    ]


# The CLI on real files -------------------------------------------------------------------------


def contract_lines(records: list[dict[str, Any]]) -> Iterator[str]:
    """The records as the real formatter writes them (created time from the record's timestamp)."""
    formatters = {role: ContractFormatter(role) for role in ("worker", "watchdog")}
    for r in records:
        moment = datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
        fields = {
            k: v
            for k, v in r.items()
            if k not in ("timestamp", "level", "logger", "message", "role", "pid", "generation")
        }
        record = logging.makeLogRecord(
            {
                "name": r["logger"],
                "levelno": logging.INFO,
                "levelname": "INFO",
                "msg": r["message"],
                "created": moment.timestamp(),
                **fields,
            }
        )
        record.generation = r["generation"]
        yield formatters[r["role"]].format(record)


@pytest.fixture
def rotated_logs(tmp_path: Path) -> list[Path]:
    """Incident, then a frozen worker, split over qqw.log.2.gz (oldest), qqw.log.1 and qqw.log, with
    non-JSON noise (a traceback, a blank line, a truncated line)."""
    log = incident(Log(DAY))
    log.at("13:00:00").add("child.heartbeat_missed", "watchdog", silent_s=30.0)
    log.add("child.killed", "watchdog", child_pid=101, reason="heartbeat_missed", signal="SIGKILL")
    log.after(40).add("child.spawned", "watchdog", child_pid=102, resume=True)
    log.after(0.5).connect(1, resumed=True)
    log.at("14:00:00").add("watchdog.stopped", "watchdog", reason="SIGTERM")
    lines = list(contract_lines(log.records))
    assert all(json.loads(line)["timestamp"].endswith("Z") for line in lines)
    third = len(lines) // 3
    oldest, middle, newest = lines[:third], lines[third : 2 * third], lines[2 * third :]
    paths = [tmp_path / "qqw.log.2.gz", tmp_path / "qqw.log.1", tmp_path / "qqw.log"]
    with gzip.open(paths[0], "wt", encoding="utf-8") as fh:
        fh.write("\n".join(oldest) + "\n")
    paths[1].write_text(
        "\n".join(middle[:5])
        + "\nTraceback (most recent call last):\n  boom\n\n"
        + "\n".join(middle[5:])
        + "\n",
        encoding="utf-8",
    )
    paths[2].write_text("\n".join(newest) + '\n{"timestamp": "2025-03-14T14:0', encoding="utf-8")
    return paths


def test_cli_text_on_rotated_and_gzipped_files(rotated_logs: list[Path]) -> None:
    scrambled = [str(p) for p in (rotated_logs[2], rotated_logs[0], rotated_logs[1])]
    result = subprocess.run(
        [sys.executable, "-m", "watchdog.report", *scrambled], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "offline 08:12:53 → 12:01:10, 3h48m, 230 attempts, cause: network unreachable ×229" in out
    assert "offline 13:00:00 → 13:00:40, 41s, 1 attempt, cause: worker stopped beating, " in out
    assert "1 kill (heartbeat_missed), 1 respawn" in out
    assert "2 outages" in out and "3 non-JSON skipped" in out
    assert out.index("2025-03-14") < out.index("offline 08:12:53")


def test_cli_json(rotated_logs: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*map(str, rotated_logs), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["files"] == [str(p) for p in rotated_logs]  # ordered oldest first
    assert data["skipped_lines"] == 3 and data["connections"] == 3
    first, second = data["outages"]
    assert first["start"] == "2025-03-14T08:12:53.000Z" and first["end"] == "2025-03-14T12:01:10.000Z"
    assert first["attempts"] == 230 and first["causes"]["network unreachable"] == 229
    assert 13690 <= first["duration_s"] <= 13700
    assert second["kills"] == {"heartbeat_missed": 1} and second["respawns"] == 1
    assert first["summary"].startswith("offline 08:12:53 → 12:01:10, 3h48m")


def test_cli_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.log")]) == 66
    assert "no such file" in capsys.readouterr().err


def test_read_logs_streams_one_file_of_noise(tmp_path: Path) -> None:
    path = tmp_path / "noise.log"
    path.write_text("hello\n[1, 2]\n\n", encoding="utf-8")
    report = read_logs([path])
    assert report.records == 0 and report.skipped_lines == 2 and report.outages == []
