"""A log file that is not a regular file (a FIFO, a device, a directory) is refused at start with one
clear line and exit 78, never a hang before the first line; `run.sh --background` reports a watchdog
that did not come up."""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from qqworker.contract.settings import ConfigError
from qqworker.logs import JsonLinesHandler
from tests.support import PYTHON, ROOT

RUN = ROOT / "scripts" / "run.sh"
SECRET = "logfileTestSecret000000000000000"


def test_a_regular_or_new_file_opens_for_appending(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "qqw.log"
    for line in ("one \ud83d", "two"):
        handler = JsonLinesHandler(io.StringIO(), str(path))
        handler.write_line(line)
        handler.flush()
        handler.close()
    assert path.read_text() == "one \\ud83d\ntwo\n"


@pytest.mark.parametrize("kind", ["fifo", "fifo with a reader", "directory", "device"])
def test_anything_but_a_regular_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "qqw.log"
    reader = None
    if kind.startswith("fifo"):
        os.mkfifo(path)
        if kind == "fifo with a reader":
            reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    elif kind == "directory":
        path.mkdir()
    else:
        path = Path("/dev/null")
    outcome: list[BaseException] = []
    thread = threading.Thread(target=lambda: outcome.append(_refusal(str(path))), daemon=True)
    thread.start()
    thread.join(5)
    if reader is not None:
        os.close(reader)
    assert not thread.is_alive(), "opening the log file blocked"
    (error,) = outcome
    assert isinstance(error, ConfigError) and str(error).startswith(f"log_file: {path} is ")
    assert "not a regular file" in str(error)


def _refusal(path: str) -> BaseException:
    try:
        JsonLinesHandler(io.StringIO(), path).close()
    except BaseException as exc:  # the test inspects it
        return exc
    return AssertionError("accepted")


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("QQ_", "QQW_"))}
    base.update(
        QQ_APP_ID="102000001",
        QQ_APP_SECRET=SECRET,
        QQ_API_BASE="http://127.0.0.1:9",  # should it start anyway: never the real platform
        QQ_TOKEN_URL="http://127.0.0.1:9/token",
        QQW_STATUS_FILE=str(tmp_path / "status.json"),
    )
    base.update(extra)
    return base


@pytest.mark.parametrize(
    ("command", "how"),
    [
        (["-m", "watchdog", "run"], "env"),
        (["-m", "watchdog", "run"], "flag"),
        (["-m", "qqworker"], "flag"),
    ],
)
def test_a_fifo_log_file_is_one_line_and_exit_78(tmp_path: Path, command: list[str], how: str) -> None:
    fifo = tmp_path / "qqw.log"
    os.mkfifo(fifo)
    args = [PYTHON, *command] + (["--log-file", str(fifo)] if how == "flag" else [])
    extra = {"QQW_LOG_FILE": str(fifo)} if how == "env" else {}
    result = subprocess.run(
        args, cwd=tmp_path, env=env(tmp_path, **extra), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 78, result.stdout + result.stderr
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["event"] in ("watchdog.stopped", "worker.fatal") and line["level"] == "CRITICAL"
    assert f"log_file: {fifo} is a FIFO (named pipe), not a regular file" in line["message"]
    assert "Traceback" not in result.stderr and SECRET not in result.stdout + result.stderr


FAKE_PYTHON = """#!/usr/bin/env bash
# A stand-in for the venv's python: FAKE_MODE=hang never writes a line (a start blocked before its
# first line), FAKE_MODE=up writes its pid file (as the watchdog does once it holds the run
# directory's lock) and watchdog.started, and then runs.
trap 'exit 0' TERM
if [ "${FAKE_MODE:-up}" = up ]; then
    [ -n "${QQW_PID_FILE:-}" ] && echo $$ > "$QQW_PID_FILE"
    echo '{"event": "watchdog.started"}'
fi
while :; do sleep 0.1; done
"""


def background(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(FAKE_PYTHON)
    (venv / "bin" / "python").chmod(0o755)
    (venv / ".qqwatchdog-installed").touch()
    extra = {
        "QQW_VENV": str(venv),
        "QQW_RUN_DIR": str(tmp_path / "run"),
        "QQW_START_WAIT": "2",
        "FAKE_MODE": mode,
    }
    return subprocess.run(
        ["bash", str(RUN), "--background"],
        cwd=tmp_path,
        env=env(tmp_path, **extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_background_reports_a_watchdog_that_did_not_come_up(tmp_path: Path) -> None:
    result = background(tmp_path, "hang")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "did not come up within 2s (no watchdog.started line); stopping it" in result.stderr
    assert "started in the background" not in result.stdout
    assert not (tmp_path / "run" / "qqwatchdog.pid").exists()
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "venv")], capture_output=True, text=True)
    assert not leftover.stdout.strip(), "the hung start was left running"


def test_background_says_started_once_the_watchdog_is_up(tmp_path: Path) -> None:
    result = background(tmp_path, "up")
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "started in the background, pid" in result.stdout
    finally:
        stop = subprocess.run(
            ["bash", str(RUN), "stop", "--timeout", "5"],
            cwd=tmp_path,
            env=env(tmp_path, QQW_RUN_DIR=str(tmp_path / "run"), QQW_VENV=str(tmp_path / "venv")),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert stop.returncode == 0, stop.stdout + stop.stderr


def test_background_with_a_fifo_log_file_reports_the_refusal(tmp_path: Path) -> None:
    """The real watchdog: it refuses the FIFO (78), and run.sh says it did not stay up, with that line."""
    fifo = tmp_path / "qqw.fifo"
    os.mkfifo(fifo)
    extra = {"QQW_RUN_DIR": str(tmp_path / "run"), "QQW_LOG_FILE": str(fifo), "QQW_START_WAIT": "20"}
    result = subprocess.run(
        ["bash", str(RUN), "--background"],
        cwd=tmp_path,
        env=env(tmp_path, **extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "did not stay up" in result.stderr and "is a FIFO (named pipe)" in result.stderr


def test_sighup_onto_a_fifo_keeps_the_watchdog_running_on_stdout(tmp_path: Path) -> None:
    import signal

    from tests.supervised import LIFECYCLE, Supervised
    from tests.support import SimulatorProcess

    log_file = tmp_path / "qqw.log"
    sim = SimulatorProcess()
    wd = Supervised(sim, tmp_path, timings=LIFECYCLE, log_file=str(log_file))
    try:
        wd.connected()
        log_file.rename(tmp_path / "qqw.log.1")
        os.mkfifo(log_file)  # what logrotate would never do; a FIFO's open would block
        wd.process.signal(signal.SIGHUP)
        _, record = wd.wait_for("log.reopened", timeout=10)
        assert record["level"] == "ERROR" and "is a FIFO (named pipe)" in record["error"]
        wd.send("hello")
        wd.wait_for("dispatch", timeout=10)  # still supervising, lines still on stdout
        assert wd.finish() == 0
    finally:
        wd.close()
        sim.stop()
