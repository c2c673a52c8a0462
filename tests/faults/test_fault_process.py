"""Faults of the processes themselves: the worker frozen, killed, its event loop blocked, its reconnect
path stalled or retrying without logs, leaking memory, its heartbeat pipe closed, a handler that raises or
blocks; and the watchdog receiving SIGTERM, SIGINT, SIGHUP or SIGKILL. The real watchdog supervises the
real worker against the simulator; each fault is tested here once (tests/watchdog/ keeps the lifecycle)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.faults.conftest import fault
from tests.faults.harness import Outcome, assert_outcome, outage
from tests.faults.results import CaseResult
from tests.supervised import SLACK, Supervised
from tests.support import RunTimings, SimulatorProcess, wait_until

HEARTBEAT_SLACK = 2.0  # the watchdog's timer granularity and a loaded CI machine
# A respawned child: interpreter start-up, imports, token, discovery and the handshake.
RESPAWN_SLACK = 6.0


@pytest.fixture(autouse=True)
def _watchdog_only() -> None:
    if os.environ.get("QQW_FAULT_TARGET") == "worker":
        pytest.skip("process faults need the watchdog")


def with_handler(
    supervise: Callable[..., Supervised], sim: SimulatorProcess, tmp_path: Path, name: str, **kw: object
) -> Supervised:
    """A run whose worker handles with tests/handlers.py's `name`; its claims are shared by every run of
    the case (a later watchdog's worker does not misbehave again)."""
    flags = tmp_path / "flags"
    flags.mkdir(exist_ok=True)
    return supervise(sim, handler=f"tests.handlers:{name}", env={"QQF_FLAG_DIR": str(flags)}, **kw)


def measure_respawn(
    record: CaseResult,
    timings: RunTimings,
    run: Supervised,
    result: Outcome,
    old_pid: int,
    *,
    detect_bound: float,
    recover_bound: float,
) -> None:
    """The figures against their bounds, and the replacement itself: the old child exited and is gone,
    a respawn was scheduled, and a new child (another pid) was told to Resume and did."""
    assert_outcome(
        record,
        result,
        detect_bound=detect_bound,
        recover_bound=recover_bound,
        silence_bound=timings.kill_silence_bound,
    )
    assert [r for r in run.process.records("child.exited") if r["child_pid"] == old_pid], "no child.exited"
    assert run.process.records("respawn.scheduled"), "no respawn.scheduled line"
    spawned = run.process.records("child.spawned")[-1]
    assert spawned["resume"] is True and spawned["child_pid"] != old_pid, spawned
    assert result.reconnected.get("resumed") is True, f"the new child must Resume: {result.reconnected}"
    assert int(result.reconnected["generation"]) >= 2, result.reconnected
    assert not any(p.pid == old_pid for p in run.session()), "the old worker is still there"


def killed_with(run: Supervised, pid: int) -> str:
    """The signal of the watchdog's child.killed line for this child."""
    killed = [r for r in run.process.records("child.killed") if r["child_pid"] == pid]
    assert killed, f"no child.killed line for {pid}"
    return str(killed[0]["signal"])


def respawn_bound(timings: RunTimings) -> float:
    return timings.stop_timeout + timings.respawn_max + RESPAWN_SLACK


@fault("process", "worker frozen (SIGSTOP)", "detect ≤ heartbeat timeout + 2 s; resumed by a new child")
def test_worker_frozen(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    run = supervise(sim)
    run.connected()
    pid = run.child_pid()
    result = outage(
        run, sim,
        inject=lambda: os.kill(pid, signal.SIGSTOP),
        restore=None,
        detect_events=("child.heartbeat_missed",),
    )  # fmt: skip
    record.measure("freeze_to_connected_s", result.detect_s + result.recover_s, None)
    measure_respawn(
        record, timings, run, result, pid,
        detect_bound=timings.heartbeat_timeout + HEARTBEAT_SLACK, recover_bound=respawn_bound(timings),
    )  # fmt: skip
    assert result.detected["silent_s"] >= timings.heartbeat_timeout, result.detected
    # Straight to SIGKILL: a worker that cannot beat cannot stop gracefully, and waiting for it would
    # only be a silent pause; the seq it handed on covers what it never handled.
    assert killed_with(run, pid) == "SIGKILL"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    run.finish()


@fault("process", "worker killed (SIGKILL)", "exit seen ≤ 1 s; resumed by a new child")
def test_worker_killed(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    run = supervise(sim)
    run.connected()
    pid = run.child_pid()
    result = outage(
        run, sim, inject=lambda: os.kill(pid, signal.SIGKILL), restore=None, detect_events=("child.exited",)
    )
    assert result.detected.get("exitcode") == -9, result.detected
    assert result.detected.get("meaning") == "killed by SIGKILL", result.detected
    measure_respawn(
        record, timings, run, result, pid, detect_bound=1.0, recover_bound=timings.respawn_max + RESPAWN_SLACK
    )
    run.finish()


@fault(
    "process",
    "worker's event loop blocked (a sync sleep inside an async handler)",
    "detect ≤ heartbeat timeout + 2 s",
)
def test_event_loop_blocked(
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
    tmp_path: Path,
) -> None:
    run = with_handler(supervise, sim, tmp_path, "block_loop")
    run.connected()
    pid = run.child_pid()
    result = outage(
        run,
        sim,
        inject=lambda: sim.say("block-loop"),
        restore=None,
        detect_events=("child.heartbeat_missed",),
    )
    measure_respawn(
        record, timings, run, result, pid,
        detect_bound=timings.heartbeat_timeout + HEARTBEAT_SLACK, recover_bound=respawn_bound(timings),
    )  # fmt: skip
    # A blocked loop cannot act on SIGTERM: SIGKILL follows after the stop timeout.
    assert killed_with(run, pid) == "SIGKILL"
    (exited,) = [r for r in run.process.records("child.exited") if r["child_pid"] == pid]
    assert exited["exitcode"] == -9, exited
    run.finish()


@fault(
    "process",
    "reconnect path stalled without logs (the backoff never ends; the loop and its beats live on)",
    "detect ≤ delay + connect timeout + attempt grace + 1 s",
)
def test_reconnect_stalled(
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
    tmp_path: Path,
) -> None:
    run = with_handler(supervise, sim, tmp_path, "stall_reconnect")
    caught_by_the_attempt_check(run, sim, timings, record, "stall-reconnect", slack=1.0)


@fault(
    "process",
    "reconnect loop retrying without logging its attempts (phases move, beats flow)",
    "detect ≤ delay + connect timeout + attempt grace + 2.5 s",
)
def test_retries_without_logs(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    run = supervise(sim)  # tests/handlers.py's act: "silent" makes every next attempt fail without a word
    # Caught ~0.3 s past delay + connect timeout + grace: the slack tests/watchdog gave this case (SLACK).
    caught_by_the_attempt_check(run, sim, timings, record, "silent", slack=SLACK)


def caught_by_the_attempt_check(
    run: Supervised,
    sim: SimulatorProcess,
    timings: RunTimings,
    record: CaseResult,
    trigger: str,
    slack: float,
) -> None:
    """The worker's reconnect goes wrong without a log line once `trigger` arrives, while its loop and
    beats live on: the attempt check (`child.attempt_overdue`) must catch it, not the heartbeat."""
    run.connected()
    pid = run.child_pid()
    seqs = sim.say(trigger)
    assert not run.wait_seqs(seqs, 10)

    result = outage(
        run,
        sim,
        inject=lambda: sim.close(4009),
        restore=None,
        detect_events=("child.attempt_overdue",),
        settle_s=0.2,
    )
    bound = timings.retry_max + timings.connect_timeout + timings.attempt_grace + slack
    measure_respawn(
        record, timings, run, result, pid, detect_bound=bound, recover_bound=respawn_bound(timings)
    )
    assert result.detected["overdue_s"] >= timings.connect_timeout + timings.attempt_grace, result.detected
    assert not run.process.records("child.heartbeat_missed")
    run.finish()


@fault(
    "process",
    "memory leak in the worker (16 MiB per event) past --memory-limit-mb",
    "detect ≤ 2 s past the limit",
)
def test_memory_leak(
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
    tmp_path: Path,
) -> None:
    limit_mb = 200
    run = with_handler(supervise, sim, tmp_path, "leak", extra_flags=["--memory-limit-mb", str(limit_mb)])
    run.connected()
    pid = run.child_pid()
    baseline = psutil.Process(pid).memory_info().rss / 2**20
    record.measure("baseline_rss_mb", baseline, float(limit_mb), unit="MB")

    def inject() -> None:
        for _ in range(int((limit_mb - baseline) / 16) + 3):
            sim.say("leak")

    result = outage(run, sim, inject=inject, restore=None, detect_events=("child.memory_exceeded",), events=5)
    assert result.detected.get("rss_mb", 0) > limit_mb, result.detected
    assert result.detected.get("limit_mb") == limit_mb, result.detected
    measure_respawn(record, timings, run, result, pid, detect_bound=5.0, recover_bound=respawn_bound(timings))
    run.finish()


@fault(
    "process",
    "heartbeat pipe closed while the worker lives on (its write end swapped for /dev/null)",
    "detect ≤ stop timeout + 2 s",
)
def test_beat_pipe_closed(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    # A long heartbeat timeout, so that the closed pipe's own, shorter bound is what fires.
    timings = dataclasses.replace(timings, heartbeat_timeout=6.0)
    run = supervise(sim, timings=timings)  # tests/handlers.py's act: "closepipe"
    run.connected()
    pid = run.child_pid()
    result = outage(
        run, sim, inject=lambda: sim.say("closepipe"), restore=None, detect_events=("child.heartbeat_missed",)
    )
    assert "heartbeat pipe" in result.detected["message"], result.detected
    measure_respawn(
        record, timings, run, result, pid,
        detect_bound=min(timings.heartbeat_timeout, timings.stop_timeout) + HEARTBEAT_SLACK,
        recover_bound=respawn_bound(timings),
    )  # fmt: skip
    run.finish()


@fault("process", "handler raises on every event", "each logged as handler.error; no reconnect, no respawn")
def test_handler_raises(
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
    tmp_path: Path,
) -> None:
    run = with_handler(supervise, sim, tmp_path, "raises")
    run.connected()
    mark = run.mark()
    t0 = time.monotonic()
    seqs = sim.events(20)
    missing = run.wait_seqs(seqs, 10)
    deadline = time.monotonic() + 10
    while len(run.process.records("handler.error")) < len(seqs) and time.monotonic() < deadline:
        time.sleep(0.05)
    record.measure("handled_20_s", time.monotonic() - t0, 10)
    errors = run.process.records("handler.error")
    assert not missing and len(errors) == len(seqs), (
        f"{len(errors)} handler.error lines for {len(seqs)} events"
    )
    events = {ln.event for ln in run.process.lines[mark:]}
    assert not events & {"gateway.closed", "child.killed", "child.exited"}, events
    run.finish()


@fault(
    "process",
    "handler never returns (a sync handler stuck on its thread)",
    "others still handled; stop ≤ stop timeout",
)
def test_handler_blocks(
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
    tmp_path: Path,
) -> None:
    run = with_handler(supervise, sim, tmp_path, "blocks")
    run.connected()
    mark = run.mark()
    sim.say("block-handler")
    t0 = time.monotonic()
    seqs = sim.events(20)
    missing = run.wait_seqs(seqs, 10)
    record.measure("others_handled_s", time.monotonic() - t0, 10)
    assert not missing, f"a stuck handler must not stop the others: missing {sorted(missing)}"
    time.sleep(3 * timings.gateway_heartbeat_ms / 1000)
    events = {ln.event for ln in run.process.lines[mark:]}
    assert not events & {"gateway.ack_timeout", "child.killed", "child.heartbeat_missed"}, events
    t1 = time.monotonic()
    run.finish()
    stop_s = time.monotonic() - t1
    record.measure("stop_s", stop_s, timings.stop_timeout + 5.0)
    assert stop_s <= timings.stop_timeout + 5.0


def stop_case(sig: signal.Signals) -> object:
    return pytest.param(
        sig,
        marks=fault("process", f"watchdog gets {sig.name}", "exit 0 ≤ stop timeout + 1 s, tree gone"),
        id=sig.name,
    )


@pytest.mark.parametrize("sig", [stop_case(signal.SIGTERM), stop_case(signal.SIGINT)])
def test_watchdog_stop_signal(
    sig: signal.Signals,
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
) -> None:
    run = supervise(sim)
    run.connected()
    assert {p.pid for p in run.session()} >= {run.pid, run.child_pid()}
    time.sleep(0.5)
    t0 = time.monotonic()
    run.finish(sig, expect=0)
    exit_s = time.monotonic() - t0
    record.measure("exit_s", exit_s, timings.stop_timeout + 1.0)
    assert run.process.records("worker.stopped"), "the worker must stop cleanly, not be killed"
    lines = [ln.event for ln in run.process.lines]
    # The worker's own last lines are relayed before the watchdog reports its exit.
    assert lines.index("worker.stopped") < lines.index("child.exited") < lines.index("watchdog.stopped")
    assert run.process.records("child.exited")[-1]["exitcode"] == 0
    assert run.process.records("watchdog.stopped")[-1]["reason"] == f"received {sig.name}"
    assert not run.process.records("respawn.scheduled")
    assert exit_s <= timings.stop_timeout + 1.0


@fault("process", "watchdog gets SIGHUP (logrotate moved the log file)", "log reopened, child untouched")
def test_watchdog_sighup(
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "logs" / "qqw.log"  # a directory the watchdog makes
    run = supervise(sim, extra_flags=["--log-file", str(log_file)])
    run.connected()
    wait_until(lambda: "gateway.connected" in log_file.read_text(), 10, "the worker's lines in the log file")
    rotated = log_file.with_suffix(".log.1")
    log_file.rename(rotated)
    mark = run.mark()
    t0 = time.monotonic()
    run.process.signal(signal.SIGHUP)
    at, reopened = run.wait_for("log.reopened", 5, after=mark)
    record.measure("reopened_s", run.at(at) - t0, 2.0)
    assert reopened["path"] == str(log_file)
    seqs = sim.events(3)
    assert not run.wait_seqs(seqs, 10)
    time.sleep(0.5)
    assert log_file.exists(), "SIGHUP must reopen the log file at its path"
    assert '"dispatch"' in log_file.read_text(), "new lines must go to the reopened file"
    events = {ln.event for ln in run.process.lines[mark:]}
    assert not events & {"child.killed", "child.exited", "gateway.closed"}, events
    assert run.at(at) - t0 <= 2.0
    old = [json.loads(line) for line in rotated.read_text().splitlines()]
    new = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert old[0]["event"] == "watchdog.started" and all(r["event"] != "log.reopened" for r in old)
    assert new[0]["event"] == "log.reopened"
    run.finish()


@fault(
    "process", "watchdog killed (SIGKILL): the worker must not outlive it", "worker gone ≤ stop timeout + 2 s"
)
def test_watchdog_killed(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    run = supervise(sim)
    run.connected()
    run.tree.poll()
    pid = run.child_pid()
    child = psutil.Process(pid)
    t0 = time.monotonic()
    run.process.signal(signal.SIGKILL)
    with contextlib.suppress(psutil.TimeoutExpired):
        child.wait(10)
    gone_s = time.monotonic() - t0
    bound = timings.stop_timeout + 2.0  # PDEATHSIG is a SIGTERM: the worker's own clean stop, bounded
    record.measure("child_gone_s", gone_s, bound)
    assert gone_s <= bound, f"the worker outlived its watchdog by {gone_s:.1f}s"
    run.finish(expect=-9)
