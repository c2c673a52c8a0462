"""`scripts/run.sh --background`, `status` and `stop` on the real watchdog, with real logrotate rotating both
of its log files by the shipped scripts/logrotate.conf (SIGHUP reopen and copytruncate), twice, so that the
outage report then reads a plain, a rotated and a gzipped file."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import psutil

from tests.ops.packages import ensure_binary
from tests.support import SimulatorProcess, wait_until

ROOT = Path(__file__).resolve().parents[2]
RUN = str(ROOT / "scripts" / "run.sh")


def sh(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def lines_of(paths: list[Path]) -> list[dict[str, Any]]:
    records = []
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            records += [json.loads(line) for line in fh if line.startswith("{")]
    return records


def wait_line(path: Path, event: str, after: int = 0, timeout: float = 30) -> None:
    def seen() -> bool:
        try:
            records = lines_of([path])
        except (OSError, ValueError):
            return False
        return any(r.get("event") == event for r in records[after:])

    wait_until(seen, timeout, f"{event} in {path}")


def test_background_mode_with_logrotate(tmp_path: Path) -> None:
    logrotate = ensure_binary("logrotate", "logrotate")
    run_dir, logs = tmp_path / "run", tmp_path / "logs"
    log = logs / "qqwatchdog.log"  # QQW_LOG_FILE: SIGHUP reopen
    out = run_dir / "qqwatchdog.log"  # the background mode's stdout: copytruncate
    conf = tmp_path / "logrotate.conf"
    conf.write_text(
        (ROOT / "scripts" / "logrotate.conf")
        .read_text()
        .replace("/var/log/qqwatchdog", str(logs))
        .replace("/opt/qqwatchdog/run", str(run_dir))
    )
    # postrotate tries `systemctl reload qqwatchdog.service` first: never touch a real service from a test.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "systemctl").chmod(0o755)
    sim = SimulatorProcess()
    env = sim.env(
        QQW_RUN_DIR=str(run_dir),
        QQW_LOG_FILE=str(log),
        QQW_STATUS_FILE=str(run_dir / "status.json"),
        QQ_HANDLER="log",
        PATH=f"{bin_dir}:{os.environ['PATH']}",
    )
    env = {k: v for k, v in env.items() if k != "NOTIFY_SOCKET"}
    pid = None
    try:
        started = sh(["bash", RUN, "--background", "--retry-initial", "0.2"], env, tmp_path)
        assert started.returncode == 0, started.stdout + started.stderr
        pid = int((run_dir / "qqwatchdog.pid").read_text())
        assert f"pid {pid}" in started.stdout
        assert os.getsid(pid) == pid  # detached: its own session
        wait_line(log, "gateway.connected")
        status = sh(["bash", RUN, "status", "--json"], env, tmp_path)
        assert status.returncode == 0, status.stdout
        assert json.loads(status.stdout)["status"]["watchdog_pid"] == pid
        again = sh(["bash", RUN, "--background"], env, tmp_path)
        assert again.returncode == 73 and "already running" in again.stderr

        for rotation in (1, 2):
            sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "count": 3})
            wait_line(log, "dispatch")
            rotated = sh([logrotate, "--force", "--state", str(tmp_path / "state"), str(conf)], env, tmp_path)
            assert rotated.returncode == 0, rotated.stderr
            wait_line(log, "log.reopened")  # the first line of the new file: the reopen worked
            sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "count": 2})
            wait_line(log, "dispatch")
            wait_line(out, "dispatch")  # after copytruncate the stdout file fills from the start again
            assert rotation == 1 or (logs / "qqwatchdog.log.2.gz").exists()

        stopped = sh(["bash", RUN, "stop"], env, tmp_path)
        assert stopped.returncode == 0 and f"stopped pid {pid}" in stopped.stdout, (
            stopped.stdout + stopped.stderr
        )
        assert not psutil.pid_exists(pid) and not (run_dir / "qqwatchdog.pid").exists()
        assert sh(["bash", RUN, "stop"], env, tmp_path).returncode == 3
        assert sh(["bash", RUN, "status"], env, tmp_path).returncode == 3
    finally:
        if pid is not None and psutil.pid_exists(pid):
            os.kill(pid, 9)
        sim.stop()

    rotated_files = [logs / "qqwatchdog.log.2.gz", logs / "qqwatchdog.log.1", log]
    assert all(p.exists() for p in rotated_files)
    via_hup = lines_of(rotated_files)
    keys = [(r["timestamp"], r["pid"], r["event"], r["message"]) for r in via_hup]
    assert len(keys) == len(set(keys))  # no line twice
    # Every line the watchdog printed (its stdout, copytruncated) is in the SIGHUP-rotated files: none lost.
    via_stdout = lines_of([run_dir / "qqwatchdog.log.2.gz", run_dir / "qqwatchdog.log.1", out])
    assert {(r["timestamp"], r["pid"], r["event"], r["message"]) for r in via_stdout} <= set(keys)
    assert sum(r["event"] == "dispatch" for r in via_hup) == 10
    assert via_hup[-1]["event"] == "watchdog.stopped"

    report = sh(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "-m",
            "watchdog",
            "report",
            "--json",
            *map(str, rotated_files),
        ],
        env,
        tmp_path,
    )
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["records"] == len(via_hup) and data["connections"] >= 1 and data["outages"] == []
