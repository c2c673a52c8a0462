"""The watchdog's own life on real processes: exit codes 75/78/69, a forced stop, the log relay, the status
command, systemd notifications. (A stop by SIGTERM or SIGINT, SIGHUP and a SIGKILLed watchdog are rows of
the fault matrix, tests/faults/test_fault_process.py.)"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from tests.supervised import LIFECYCLE, Supervised
from tests.support import (
    PYTHON,
    ROOT,
    SimulatorProcess,
    assert_no_secret,
    closed_port,
    wait_until,
    watchdog_status,
)
from watchdog.supervisor import FORCE_REPEAT_S


def unreachable_env() -> dict[str, str]:
    port = closed_port()
    return {
        "QQ_APP_ID": "1",
        "QQ_APP_SECRET": "not-a-real-secret-0123456789",
        "QQ_API_BASE": f"http://127.0.0.1:{port}",
        "QQ_TOKEN_URL": f"http://127.0.0.1:{port}/app/getAppAccessToken",
    }


def test_worker_exit_75_is_respawned_until_the_restart_limit_then_69(tmp_path: Path, cleanup) -> None:
    wd = Supervised(
        None,
        tmp_path,
        timings=replace(LIFECYCLE, max_attempts=2),
        env=unreachable_env(),
        max_restarts=2,
        restart_window=60,
    )
    cleanup.append(wd)
    _, exited = wd.wait_for("child.exited")
    assert exited["exitcode"] == 75 and "gave up reconnecting" in exited["meaning"]
    # Running but not connected: the status command says unhealthy.
    result = watchdog_status(wd.status_file)
    assert result.returncode == 1, result.stdout + result.stderr
    _, gave_up = wd.wait_for("watchdog.gave_up")
    assert gave_up["restarts"] == 2
    assert wd.finish(expect=69) == 69
    spawned = wd.process.records("child.spawned")
    assert [r["generation"] for r in spawned] == [1, 2, 3]
    assert len(wd.process.records("respawn.scheduled")) == 2
    assert [r["exitcode"] for r in wd.process.records("child.exited")] == [75, 75, 75]
    assert watchdog_status(wd.status_file).returncode == 3


def test_worker_exit_78_ends_the_watchdog_with_78_and_no_respawn(
    tmp_path: Path, sim: SimulatorProcess, cleanup
) -> None:
    wd = Supervised(
        sim, tmp_path, timings=LIFECYCLE, env={"QQ_APP_SECRET": "the-wrong-secret-0000000000000000"}
    )
    cleanup.append(wd)
    _, stopped = wd.wait_for("watchdog.stopped")
    assert stopped["exitcode"] == 78 and "configuration" in stopped["reason"]
    assert wd.finish(expect=78) == 78
    assert [r["exitcode"] for r in wd.process.records("child.exited")] == [78]
    assert not wd.process.records("respawn.scheduled")
    assert wd.process.records("worker.fatal")


def test_any_other_exit_is_respawned(tmp_path: Path, sim: SimulatorProcess, cleanup) -> None:
    wd = Supervised(sim, tmp_path, timings=LIFECYCLE)
    cleanup.append(wd)
    wd.connected()
    mark = wd.process.mark()
    wd.send("exit3")
    _, exited = wd.wait_for("child.exited", after=mark)
    assert exited["exitcode"] == 3
    wd.wait_for("respawn.scheduled", after=mark)
    wd.connected(after=mark, generation=2)
    wd.finish()


def test_a_child_stopped_while_a_lookup_is_stuck_exits_in_time_with_its_stop_lines(
    tmp_path: Path, sim: SimulatorProcess, cleanup
) -> None:
    # The stop timeout bounds the stop: a child still there then is SIGKILLed (exit -9).
    timings = replace(LIFECYCLE, stop_timeout=4.0)
    wd = Supervised(sim, tmp_path, timings=timings)
    cleanup.append(wd)
    wd.connected()
    first, last = wd.send("stucklookup")
    wd.wait_all_delivered(first, last)
    time.sleep(0.2)  # the command runs right after the event's dispatch line
    started = time.monotonic()
    assert wd.finish(signal.SIGTERM) == 0
    assert time.monotonic() - started < timings.stop_timeout
    assert [r["exitcode"] for r in wd.process.records("child.exited")] == [0]
    assert not [r for r in wd.process.records("child.killed") if r["signal"] == "SIGKILL"]
    lines = [ln.event for ln in wd.process.lines]
    assert lines.index("gateway.closed") < lines.index("worker.stopped") < lines.index("child.exited")
    assert wd.process.records("gateway.closed")[-1]["reason"] == "the worker is stopping"


def test_a_second_sigint_forces_the_tree_down_at_once(tmp_path: Path, sim: SimulatorProcess, cleanup) -> None:
    # The worker's loop is blocked, so SIGTERM cannot stop it; the stop timeout is long.
    wd = Supervised(sim, tmp_path, timings=replace(LIFECYCLE, heartbeat_timeout=30, stop_timeout=20))
    cleanup.append(wd)
    wd.connected()
    wd.send("block")
    time.sleep(0.5)
    first = time.monotonic()
    wd.process.signal(signal.SIGINT)
    wd.wait_for("child.killed", where=lambda r: r["signal"] == "SIGTERM")
    # The same signal again forces only after FORCE_REPEAT_S (a burst is one request).
    time.sleep(max(0.3, FORCE_REPEAT_S + 0.3 - (time.monotonic() - first)))
    second = time.monotonic()
    wd.process.signal(signal.SIGINT)
    code = wd.finish(sig=0, expect=130)
    assert time.monotonic() - second < 10, "the second SIGINT did not force"
    assert wd.process.records("child.killed")[-1]["signal"] == "SIGKILL"
    assert wd.process.records("watchdog.stopped")[-1]["forced"] is True
    assert code == 130


def test_the_relay_keeps_one_json_line_per_line_and_wraps_everything_else(
    tmp_path: Path, sim: SimulatorProcess, cleanup
) -> None:
    wd = Supervised(sim, tmp_path, timings=LIFECYCLE)
    cleanup.append(wd)
    wd.connected()
    mark = wd.process.mark()
    wd.send("print")
    first, last = wd.send("bulk", 300)
    wd.wait_all_delivered(first, last)
    wait_until(lambda: len(wd.process.records("child.output")) >= 1, 10, "child.output lines")
    wd.finish()
    # Every line on stdout is one JSON object (none torn, none interleaved).
    assert all(line.record is not None for line in wd.process.lines), [
        ln.text for ln in wd.process.lines if ln.record is None
    ][:3]
    texts = "\n".join(r["text"] for r in wd.process.records("child.output"))
    assert "plain text from a handler" in texts
    assert "C-level output on fd 2" in texts
    assert "Traceback (most recent call last):" in texts and "ValueError: boom" in texts
    for record in wd.process.records("child.output"):
        assert (
            record["role"] == "watchdog"
            and record["child_pid"] == wd.process.records("child.spawned")[0]["child_pid"]
        )
    worker_lines = [r for r in wd.process.records() if r.get("role") == "worker"]
    assert worker_lines and {r["generation"] for r in worker_lines} == {1}
    assert mark > 0
    assert_no_secret([wd.process.output(), wd.status_file.read_text()], [sim.info["app_secret"]])


def test_status_command(tmp_path: Path, sim: SimulatorProcess, cleanup) -> None:
    missing = watchdog_status(tmp_path / "nowhere.json")
    assert missing.returncode == 3 and "not running" in missing.stdout
    wd = Supervised(sim, tmp_path, timings=LIFECYCLE)
    cleanup.append(wd)
    wd.connected()
    wait_until(lambda: watchdog_status(wd.status_file).returncode == 0, 10, "status to say healthy")
    result = watchdog_status(wd.status_file, "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 0 and data["exit_code"] == 0
    info = data["status"]
    assert info["state"] == "running" and info["phase"] == "connected"
    assert info["child_pid"] == wd.child_pid() and info["watchdog_pid"] == wd.pid
    assert info["generation"] == 1 and info["restarts"] == 0 and info["connected_since"]
    human = watchdog_status(wd.status_file)
    assert "healthy" in human.stdout and str(wd.child_pid()) in human.stdout
    # The status file sits where QQW_STATUS_FILE says, too.
    env = dict(os.environ, QQW_STATUS_FILE=str(wd.status_file))
    via_env = subprocess.run(
        [PYTHON, "-m", "watchdog", "status"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert via_env.returncode == 0, via_env.stdout
    wd.finish()
    after = watchdog_status(wd.status_file, "--json")
    assert after.returncode == 3 and json.loads(after.stdout)["status"]["state"] == "stopped"
    assert_no_secret([wd.status_file.read_text()], [sim.info["app_secret"]])


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--heartbeat-timeout", "soon"], {}),
        (["--no-such-flag"], {}),
        ([], {"QQ_APP_SECRET": ""}),
    ],
)
def test_a_configuration_error_is_one_json_line_and_exit_78(args: list[str], env: dict[str, str]) -> None:
    environ = {**os.environ, "QQ_APP_ID": "1", "QQ_APP_SECRET": "s3cret-value-000000", **env}
    result = subprocess.run(
        [PYTHON, "-m", "watchdog", "run", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 78, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["event"] == "watchdog.stopped" and record["exitcode"] == 78 and record["role"] == "watchdog"
    assert "s3cret-value-000000" not in result.stdout + result.stderr


def test_systemd_notifications_over_a_real_socket_and_none_for_the_worker(
    tmp_path: Path, sim: SimulatorProcess, cleanup
) -> None:
    address = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(address)
    server.settimeout(0.2)
    messages: list[str] = []

    def received() -> list[str]:
        with contextlib.suppress(TimeoutError):
            while True:
                messages.append(server.recv(4096).decode())
        return messages

    try:
        env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}
        wd = Supervised(sim, tmp_path, timings=LIFECYCLE, env=env)
        cleanup.append(wd)
        wd.connected()
        wait_until(lambda: sum("WATCHDOG=1" in m for m in received()) >= 3, 10, "three WATCHDOG=1 pings")
        assert any("READY=1" in m for m in messages)
        assert any(m.startswith("STATUS=") or "\nSTATUS=" in m for m in messages)
        # The worker must never pose as the service's main process.
        child_env = psutil.Process(wd.child_pid()).environ()
        assert "NOTIFY_SOCKET" not in child_env and "WATCHDOG_USEC" not in child_env
        wd.finish()
        assert any("STOPPING=1" in m for m in received())
    finally:
        server.close()


def test_report_is_delegated_to_the_outage_report(tmp_path: Path) -> None:
    log = tmp_path / "qqw.log"
    log.write_text(
        json.dumps({"timestamp": "2026-01-01T08:00:00.000Z", "event": "gateway.connected", "role": "worker"})
        + "\n"
    )
    result = subprocess.run(
        [PYTHON, "-m", "watchdog", "report", str(log), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), dict)
    missing = subprocess.run(
        [PYTHON, "-m", "watchdog", "report", str(tmp_path / "nope.log")],
        cwd=ROOT,
        capture_output=True,
        timeout=30,
    )
    assert missing.returncode == 66
