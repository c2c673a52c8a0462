"""Damaged inputs: `watchdog status` on a status file that is empty, truncated, binary, not an object or
wrongly typed, and `watchdog report` on a truncated or corrupt .gz and on records with odd `event` values.
Each is a clear line and a defined exit code, never a traceback, and the readable rest is still reported."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.test_outage_report import DAY, Log, contract_lines, incident
from watchdog.report import build_report, read_logs
from watchdog.status import HEALTHY, NOT_RUNNING, UNHEALTHY, read_status_file

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "watchdog", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


# watchdog status ---------------------------------------------------------------------------------

DAMAGED = {
    "empty": (b"", "empty"),
    "blank": (b"  \n", "empty"),
    "truncated": (b'{"state": "running", "watchdog_pid": 12', "not JSON (truncated?)"),
    "binary": (b"\x1f\x8b\x08\x00\xff\xfe\x00", "not UTF-8 text"),
    "a list": (b"[1, 2]", "not a JSON object (a JSON list)"),
    "a string": (b'"running"', "not a JSON object (a JSON str)"),
    "wrong key types": (b'{"state": 5, "watchdog_pid": "12"}', "wrong type: state, watchdog_pid"),
    "pid true": (b'{"state": "running", "watchdog_pid": true}', "wrong type: watchdog_pid"),
    "updated NaN": (b'{"state": "running", "watchdog_pid": 12, "updated_at_epoch": NaN}', "updated_at_epoch"),
}


@pytest.mark.parametrize("name", list(DAMAGED))
def test_a_damaged_status_file_is_not_no_file(tmp_path: Path, name: str) -> None:
    content, reason = DAMAGED[name]
    path = tmp_path / "status.json"
    path.write_bytes(content)
    read = read_status_file(str(path))
    assert read.status is None and not read.missing and reason in (read.damage or ""), read
    result = run("status", "--status-file", str(path))
    assert result.returncode == UNHEALTHY, result.stdout
    assert result.stdout.startswith("qqwatchdog: damaged status file (") and reason in result.stdout
    as_json = json.loads(run("status", "--status-file", str(path), "--json").stdout)
    assert as_json["exit_code"] == UNHEALTHY and reason in as_json["damaged"] and as_json["status"] is None


def test_a_directory_or_an_unreadable_status_file_is_damaged(tmp_path: Path) -> None:
    assert "Is a directory" in (read_status_file(str(tmp_path)).damage or "")
    result = run("status", "--status-file", str(tmp_path))
    assert result.returncode == UNHEALTHY and "damaged status file (cannot be read" in result.stdout


def test_no_status_file_is_still_not_running(tmp_path: Path) -> None:
    read = read_status_file(str(tmp_path / "none.json"))
    assert read.missing and read.damage is None
    result = run("status", "--status-file", str(tmp_path / "none.json"))
    assert result.returncode == NOT_RUNNING and "not running (no status file)" in result.stdout


def test_wrong_types_in_other_fields_are_ignored_and_named_never_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    status = {
        "state": "stopped",
        "watchdog_pid": 999_999_999,  # no such process
        "updated_at_epoch": 1.0,
        "last_exit": ["not", "an", "object"],
        "stale_after_s": "soon",
        "last_beat_age_s": {"a": 1},
        "heartbeat_timeout_s": "30",
        "generation": 1.5,
        "phase": 3,
    }
    path.write_text(json.dumps(status))
    result = run("status", "--status-file", str(path))
    assert result.returncode == NOT_RUNNING, result.stdout
    assert "not running (last state: stopped)" in result.stdout
    for name in (
        "last_exit",
        "stale_after_s",
        "last_beat_age_s",
        "heartbeat_timeout_s",
        "generation",
        "phase",
    ):
        assert name in result.stdout
    status["last_exit"] = {"exitcode": "zero", "meaning": 7, "at": None}
    path.write_text(json.dumps(status))
    read = read_status_file(str(path))
    assert read.bad_fields[-2:] == ["last_exit.exitcode", "last_exit.meaning"]
    assert run("status", "--status-file", str(path)).returncode == NOT_RUNNING


def test_a_sound_status_file_still_judges_healthy(tmp_path: Path) -> None:
    import os
    import time

    import psutil

    path = tmp_path / "status.json"
    now = time.time()
    status = {
        "state": "running",
        "phase": "connected",
        "watchdog_pid": os.getpid(),
        "watchdog_started_at_epoch": psutil.Process().create_time(),
        "last_beat_age_s": 0.5,
        "heartbeat_timeout_s": 30,
        "updated_at_epoch": now,
        "stale_after_s": 20,
        "last_exit": {"exitcode": 0, "meaning": "stopped on request", "at": "x"},
    }
    path.write_text(json.dumps(status))
    read = read_status_file(str(path))
    assert read.status == status and read.bad_fields == []
    from watchdog.status import judge

    assert judge(read.status, now, True)[0] == HEALTHY


# watchdog report ---------------------------------------------------------------------------------


def write_logs(tmp_path: Path) -> list[Path]:
    """The incident in qqw.log.1.gz (oldest), then a frozen worker in qqw.log."""
    log = incident(Log(DAY))
    old = list(contract_lines(log.records))
    log.records.clear()
    log.at("13:00:00").add("child.heartbeat_missed", "watchdog", silent_s=30.0)
    log.add("child.killed", "watchdog", child_pid=101, reason="heartbeat_missed", signal="SIGKILL")
    log.after(40).add("child.spawned", "watchdog", child_pid=102, resume=True)
    log.after(0.5).connect(1, resumed=True)
    log.at("14:00:00").add("watchdog.stopped", "watchdog", reason="SIGTERM")
    new = list(contract_lines(log.records))
    paths = [tmp_path / "qqw.log.1.gz", tmp_path / "qqw.log"]
    with gzip.open(paths[0], "wt", encoding="utf-8") as fh:
        fh.write("\n".join(old) + "\n")
    paths[1].write_text("\n".join(new) + "\n", encoding="utf-8")
    return paths


def test_report_reads_a_truncated_gz_up_to_the_damage_and_reports_the_rest(tmp_path: Path) -> None:
    gz, plain = write_logs(tmp_path)
    data = gz.read_bytes()
    gz.write_bytes(data[: len(data) // 2])
    result = run("report", str(gz), str(plain), "--json")
    assert result.returncode == 0, result.stderr
    assert "skipped the rest of a damaged file" in result.stderr and str(gz) in result.stderr
    assert "is damaged after" in result.stderr and "lines of it" in result.stderr
    report = json.loads(result.stdout)
    assert len(report["damaged"]) == 1
    assert report["last"] == "2025-03-14T14:00:00.000Z"  # the good file is reported
    assert report["outages"][-1]["kills"] == {"heartbeat_missed": 1}
    # and what the truncated one held before the cut (its outage stays open into the next file)
    assert report["first"] == "2025-03-14T08:00:00.000Z" and report["outages"][0]["attempts"] > 10


def test_report_skips_a_corrupt_gz_with_a_line_and_reports_the_rest(tmp_path: Path) -> None:
    gz, plain = write_logs(tmp_path)
    data = bytearray(gz.read_bytes())
    for i in range(20, len(data) - 8, 7):  # scramble the deflate stream, keep the header
        data[i] ^= 0x5A
    gz.write_bytes(bytes(data))
    result = run("report", str(gz), str(plain))
    assert result.returncode == 0, result.stderr
    assert "damaged" in result.stderr and str(gz) in result.stderr
    assert "offline 13:00:00 → 13:00:40" in result.stdout


def test_report_on_only_unreadable_files_exits_66_with_a_line(tmp_path: Path) -> None:
    gz = tmp_path / "bad.log.gz"
    gz.write_bytes(b"\x1f\x8b" + b"\x00" * 30)
    result = run("report", str(gz))
    assert result.returncode == 66 and "no file could be read" in result.stderr


@pytest.mark.parametrize("event", [["gateway.connected"], {"a": 1}, 7, None, True, 1.5])
def test_a_record_whose_event_is_not_a_string_does_not_crash_the_report(event: object) -> None:
    log = incident(Log(DAY))
    odd = dict(log.records[3], event=event)
    report = build_report([*log.records[:3], odd, *log.records[3:]])
    assert report.records == len(log.records) + 1
    assert report.outages[0].start.hour == 8


def test_report_cli_with_odd_records_and_out_of_range_times(tmp_path: Path) -> None:
    path = tmp_path / "odd.log"
    lines = [
        {"timestamp": "2025-03-14T08:00:00.000Z", "event": ["x"], "role": "worker"},
        {"timestamp": "0001-01-01T00:00:00+01:00", "event": "gateway.connected"},
        {"timestamp": 5, "event": {"a": 1}},
        {"timestamp": "2025-03-14T08:00:01.000Z", "event": 3, "attempt": "one"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    result = run("report", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["records"] == 2
    assert read_logs([path]).damaged == []
