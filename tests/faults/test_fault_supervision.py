"""Supervision robustness (issue 12, items 6-10) on real processes: a handler import that fails twice
then succeeds, a beat from a newer worker, a handler that prints its token raw, a handler that closes
fds 1 and 2, a SIGKILLed watchdog whose worker has children, and two background starts at once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.faults.conftest import fault
from tests.faults.results import CaseResult
from tests.supervised import Supervised
from tests.support import ROOT, RunTimings, SimulatorProcess, wait_until

RESPAWN_SLACK = 6.0  # interpreter start-up, imports, token, discovery and the handshake of a new child
RUN = str(ROOT / "scripts" / "run.sh")


@pytest.fixture(autouse=True)
def _watchdog_only() -> None:
    if os.environ.get("QQW_FAULT_TARGET") == "worker":
        pytest.skip("supervision faults need the watchdog")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture
def start(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], tmp_path: Path
) -> Callable[..., Supervised]:
    def run(handler: str = "supervision", **env: str) -> Supervised:
        flags = tmp_path / "flags"
        flags.mkdir(exist_ok=True)
        return supervise(sim, handler=f"tests.handlers:{handler}", env={"QQF_FLAG_DIR": str(flags), **env})

    return run


@fault(
    "process",
    "handler module raises ConnectionError on its first two imports",
    "retried with backoff, a line per try, connected; never exit 78",
)
def test_handler_import_fails_twice_then_succeeds(
    start: Callable[..., Supervised], sim: SimulatorProcess, timings: RunTimings, record: CaseResult
) -> None:
    run = start(QQF_IMPORT_FAILS="2")
    t0 = time.monotonic()
    run.connected()
    record.measure("connected_s", time.monotonic() - t0, 20.0)
    failures = run.process.records("handler.import_failed")
    assert [r["attempt"] for r in failures] == [1, 2], failures
    assert all("ConnectionError" in r["error"] and r["delay_s"] <= timings.retry_max for r in failures)
    seqs = sim.events(3)
    assert not run.wait_seqs(seqs, 15), "events not handled after the import finally worked"
    run.assert_not_respawned()  # the watchdog's liveness checks held while the worker retried
    assert not run.process.records("worker.fatal")
    run.finish()


@fault(
    "process",
    "handler module keeps raising on import; then SIGTERM",
    "retried for as long as it fails, never killed for it; the stop ends the retry at once",
)
def test_handler_import_keeps_failing_then_stop(
    start: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    run = start(QQF_IMPORT_FAILS="100000")
    wait_until(lambda: len(run.process.records("handler.import_failed")) >= 5, 30, "five import tries")
    tries = run.process.records("handler.import_failed")
    assert [r["attempt"] for r in tries] == list(range(1, len(tries) + 1))
    assert max(r["delay_s"] for r in tries) <= timings.retry_max
    for event in ("child.killed", "child.attempt_overdue", "child.exited", "worker.fatal"):
        assert not run.process.records(event), f"{event} while the import was being retried"
    t0 = time.monotonic()
    code = run.stop()
    record.measure("stop_s", time.monotonic() - t0, 2.0)
    assert code == 0 and run.process.records("worker.stopped"), run.output()[-2000:]
    assert time.monotonic() - t0 <= 2.0, "the stop waited for the retry delay"
    assert not run.orphans()


@fault("process", "handler spec names a module that does not exist", "exit 78 at once, not retried")
def test_handler_import_error_of_the_spec_is_permanent(
    start: Callable[..., Supervised], record: CaseResult
) -> None:
    run = start(handler="x", QQ_HANDLER="tests.faults.no_such_module:handle")
    t0 = time.monotonic()
    code = run.process.wait(30)
    record.measure("exit_s", time.monotonic() - t0, 15.0)
    assert code == 78, run.output()[-2000:]
    assert run.process.records("worker.fatal") and not run.process.records("handler.import_failed")
    run.assert_not_respawned()


@fault(
    "process",
    "worker newer than its watchdog: beats with a higher version and an unknown field",
    "supervised on the known fields; said once; no kill",
)
def test_beat_with_an_extra_field(
    start: Callable[..., Supervised], sim: SimulatorProcess, timings: RunTimings
) -> None:
    run = start()
    run.connected()
    mark = run.mark()
    sim.say("newer-beats")
    _, skew = run.wait_for("watchdog.version_skew", 10, after=mark)
    assert skew["unknown_fields"] == ["from_the_future"] and skew["worker_version"] > skew["watchdog_version"]
    time.sleep(timings.heartbeat_timeout + 1.5)  # every beat from now on is a newer one
    seqs = sim.events(3)
    assert not run.wait_seqs(seqs, 10)
    assert len(run.process.records("watchdog.version_skew")) == 1
    for event in ("child.killed", "child.heartbeat_missed", "child.exited"):
        assert not run.process.records(event), f"{event}: the newer worker was not supervised"
    assert "malformed heartbeat" not in run.output()
    status = json.loads(run.status_file.read_text())
    assert status["phase"] == "connected" and status["last_beat_age_s"] < timings.heartbeat_timeout
    run.finish()


@fault(
    "process",
    "handler prints its access token raw (print, fds 1 and 2, a grandchild)",
    "the token never reaches the watchdog's output",
)
def test_handler_prints_its_token(
    start: Callable[..., Supervised], sim: SimulatorProcess, tmp_path: Path
) -> None:
    run = start()
    run.connected()
    mark = run.mark()
    sim.say("print-token")
    wait_until(lambda: (tmp_path / "flags" / "printed").exists(), 15, "the handler to print its token")
    wait_until(lambda: "grandchild [REDACTED]" in run.output(), 10, "the grandchild's line, redacted")
    printed = "\n".join(line.text for line in run.process.lines[mark:])
    # Every way it was printed arrived, redacted (so this test sees the prints, not their absence).
    for shown in ("[REDACTED] on fd 1", "[REDACTED] on fd 2", "leaked [REDACTED]", "grandchild [REDACTED]"):
        assert shown in printed, f"{shown!r} missing from:\n{printed}"
    token = sim.current_token()
    assert token and token not in run.output()
    run.finish()  # also: neither the token nor the secret in the output or the status file


@fault(
    "process",
    "handler closes every fd of its output pipe (1, 2 and the logger's own)",
    "detect ≤ min(heartbeat, stop timeout) + 2 s; respawned, resumed",
)
def test_handler_closes_its_output(
    start: Callable[..., Supervised], sim: SimulatorProcess, timings: RunTimings, record: CaseResult
) -> None:
    run = start()
    run.connected()
    old = int(run.process.records("child.spawned")[-1]["child_pid"])
    mark = run.mark()
    t0 = time.monotonic()
    sim.say("close-output")
    index, _ = run.wait_for("child.log_closed", 20, after=mark)
    detect_s = run.at(index) - t0
    bound = min(timings.heartbeat_timeout, timings.stop_timeout) + 2.0
    record.measure("detect_s", detect_s, bound)
    assert detect_s <= bound, f"closed output detected after {detect_s:.2f}s (bound {bound}s)"
    _, killed = run.wait_for("child.killed", 5, after=index)
    assert killed["child_pid"] == old and killed["reason"] == "log pipe closed"
    t1 = time.monotonic()
    _, connected = run.connected(after=index)
    record.measure("recover_s", time.monotonic() - t1, timings.stop_timeout + RESPAWN_SLACK)
    assert connected["resumed"] is True
    seqs = sim.events(3)
    assert not run.wait_seqs(seqs, 15)
    run.finish()


@fault(
    "process",
    "watchdog SIGKILLed while the worker has a child and a double-forked grandchild",
    "every one of them gone ≤ 3 s",
)
def test_watchdog_killed_with_grandchildren(
    start: Callable[..., Supervised], sim: SimulatorProcess, tmp_path: Path, record: CaseResult
) -> None:
    run = start()
    run.connected()
    flags = tmp_path / "flags"
    sim.say("grandchild")
    pid_files = (flags / "grandchild.pid", flags / "daemon.pid")
    wait_until(lambda: all(p.exists() and p.read_text().strip() for p in pid_files), 15, "the grandchildren")
    worker = int(run.process.records("child.spawned")[-1]["child_pid"])
    pids = [worker, *(int(p.read_text()) for p in pid_files)]
    assert all(alive(pid) for pid in pids)
    assert psutil.Process(pids[2]).ppid() == worker  # the worker is a subreaper: the orphan is its own
    t0 = time.monotonic()
    run.process.signal(signal.SIGKILL)
    wait_until(lambda: not any(alive(pid) for pid in pids), 15, f"the worker and its children {pids} to go")
    gone_s = time.monotonic() - t0
    record.measure("tree_gone_s", gone_s, 3.0)
    assert gone_s <= 3.0, f"the worker's tree outlived its watchdog by {gone_s:.1f}s"
    run.finish(expect=-9)


def _watchdogs_on(status_file: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmd = proc.info["cmdline"] or []
            ours = proc.environ().get("QQW_STATUS_FILE") == str(status_file)
            if "watchdog" in cmd and "run" in cmd and ours:
                found.append(proc)
    return found


@fault(
    "process",
    "two `scripts/run.sh --background` started at once on one run directory",
    "one watchdog; the other refused (exit 73); stop and status act on the one running",
)
def test_two_background_starts(
    sim: SimulatorProcess, timings: RunTimings, tmp_path: Path, record: CaseResult
) -> None:
    run_dir = tmp_path / "run"
    status_file = run_dir / "status.json"
    env = sim.env(QQW_RUN_DIR=str(run_dir), QQW_STATUS_FILE=str(status_file), QQ_HANDLER="log")
    env = {k: v for k, v in env.items() if k != "NOTIFY_SOCKET"}

    def sh(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["bash", RUN, *args], env=env, cwd=tmp_path, text=True, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    try:
        starts = [sh("--background", *timings.flags()) for _ in range(2)]
        results = [(p.wait(60), *p.communicate()) for p in starts]
        codes = sorted(code for code, _, _ in results)
        assert codes == [0, 73], results
        refused = next(r for r in results if r[0] == 73)
        assert "already running" in refused[2], refused
        running = _watchdogs_on(status_file)
        assert len(running) == 1, f"{len(running)} watchdogs on one run directory"
        pid = running[0].pid
        assert int((run_dir / "qqwatchdog.pid").read_text()) == pid  # the pid file names the lock holder
        assert f"(pid {pid})" in refused[2], refused  # the refusal names the one that runs
        log = (run_dir / "qqwatchdog.log").read_text()
        assert log.count('"exitcode": 73') == 1, log[-3000:]

        def status() -> dict:
            done = subprocess.run(
                ["bash", RUN, "status", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True,
                timeout=30,
            )  # fmt: skip
            return {"code": done.returncode, **json.loads(done.stdout)}

        wait_until(lambda: status()["code"] == 0, 30, "status to report the running watchdog healthy")
        assert status()["status"]["watchdog_pid"] == pid
        t0 = time.monotonic()
        stopped = subprocess.run(["bash", RUN, "stop"], env=env, cwd=tmp_path, capture_output=True, text=True)
        record.measure("stop_s", time.monotonic() - t0, timings.stop_timeout + 5)
        assert stopped.returncode == 0 and f"stopped pid {pid}" in stopped.stdout, stopped
        assert not _watchdogs_on(status_file)
        assert status()["code"] == 3
    finally:
        for proc in _watchdogs_on(status_file):
            with contextlib.suppress(psutil.Error):
                os.killpg(proc.pid, signal.SIGKILL)


@fault(
    "process",
    "watchdog SIGKILLed while the worker's event loop is blocked (it cannot act on SIGTERM)",
    "worker gone ≤ stop timeout + 2 s",
)
def test_watchdog_killed_while_the_loop_is_blocked(
    start: Callable[..., Supervised], sim: SimulatorProcess, timings: RunTimings, record: CaseResult
) -> None:
    run = start(handler="block_loop")
    run.connected()
    mark = run.mark()
    sim.say("block-loop")
    run.wait_for("dispatch", 10, after=mark)  # the handler has the event: the loop blocks now
    worker = int(run.process.records("child.spawned")[-1]["child_pid"])
    t0 = time.monotonic()
    run.process.signal(signal.SIGKILL)  # well before the heartbeat timeout: the watchdog never judged it
    bound = timings.stop_timeout + 2.0
    wait_until(lambda: not alive(worker), bound + 10, "the blocked worker to go")
    gone_s = time.monotonic() - t0
    record.measure("worker_gone_s", gone_s, bound)
    assert gone_s <= bound, f"the blocked worker outlived its watchdog by {gone_s:.1f}s"
    run.finish(expect=-9)


@fault(
    "process",
    "a second `run.sh --background` on one run directory with a status file of its own",
    "refused (exit 73): the run directory's pid file is guarded too",
)
def test_second_background_start_with_another_status_file(
    sim: SimulatorProcess, timings: RunTimings, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    base = sim.env(QQW_RUN_DIR=str(run_dir), QQ_HANDLER="log")
    base.pop("NOTIFY_SOCKET", None)
    envs = [dict(base, QQW_STATUS_FILE=str(tmp_path / name)) for name in ("a.json", "b.json")]

    def sh(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["bash", RUN, *args], env=env, cwd=tmp_path, text=True, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    try:
        starts = [sh(env, "--background", *timings.flags()) for env in envs]  # at once: no pre-check helps
        results = [(p.wait(60), *p.communicate()) for p in starts]
        assert sorted(code for code, _, _ in results) == [0, 73], results
        won = next(i for i, r in enumerate(results) if r[0] == 0)
        assert "already running" in results[1 - won][2]
        running = _watchdogs_on(tmp_path / ("a.json", "b.json")[won])
        assert len(running) == 1 and not _watchdogs_on(tmp_path / ("a.json", "b.json")[1 - won])
        pid = running[0].pid
        assert int((run_dir / "qqwatchdog.pid").read_text()) == pid
        stopped = subprocess.run(
            ["bash", RUN, "stop"], env=envs[won], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert stopped.returncode == 0 and f"stopped pid {pid}" in stopped.stdout, stopped
    finally:
        for status_file in ("a.json", "b.json"):
            for proc in _watchdogs_on(tmp_path / status_file):
                with contextlib.suppress(psutil.Error):
                    os.killpg(proc.pid, signal.SIGKILL)
