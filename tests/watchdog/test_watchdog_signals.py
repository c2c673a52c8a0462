"""Stop signals: a burst of the same signal is one clean stop (GNU timeout signals the pid and its group),
a later or a distinct second signal forces, and a signal during start-up is a clean stop with its lines."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

from qqworker.contract.events import LogEvent
from qqworker.contract.settings import Settings
from qqworker.logs import configure_logging
from tests.supervised import LIFECYCLE, Supervised
from tests.support import PYTHON, ROOT, SimulatorProcess, wait_until
from watchdog.supervisor import FORCE_REPEAT_S, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def supervisor() -> tuple[Supervisor, Clock]:
    clock = Clock()
    out = configure_logging(role="watchdog")
    return Supervisor(Settings(app_id="1", app_secret="s"), out, clock=clock), clock


def test_a_burst_of_the_same_signal_is_one_request() -> None:
    sup, clock = supervisor()
    sup.request_stop(signal.SIGTERM)
    clock.now += 0.001
    sup.request_stop(signal.SIGTERM)
    clock.now += FORCE_REPEAT_S - 0.01
    sup.request_stop(signal.SIGTERM)
    assert sup.stop_reason == "received SIGTERM" and sup.force_signal is None


def test_the_same_signal_after_the_repeat_window_forces() -> None:
    sup, clock = supervisor()
    sup.request_stop(signal.SIGINT)
    clock.now += FORCE_REPEAT_S
    sup.request_stop(signal.SIGINT)
    assert sup.force_signal == signal.SIGINT


def test_a_distinct_signal_forces_at_once() -> None:
    sup, clock = supervisor()
    sup.request_stop(signal.SIGTERM)
    clock.now += 0.01
    sup.request_stop(signal.SIGINT)
    assert sup.force_signal == signal.SIGINT


def test_gnu_timeout_stops_the_watchdog_cleanly_not_forced(tmp_path: Path, sim: SimulatorProcess) -> None:
    # --preserve-status: timeout exits with the watchdog's own status instead of 124.
    wd = Supervised(sim, tmp_path, timings=LIFECYCLE, prefix=("timeout", "--preserve-status", "6"))
    try:
        wd.connected()
        code = wd.finish(sig=0, expect=None, timeout=30)
        assert code == 0, wd.tail(40)
        events = [line.event for line in wd.process.lines]
        assert (
            events.index("worker.stopped") < events.index("child.exited") < events.index("watchdog.stopped")
        )
        stopping = wd.process.records("watchdog.stopping")
        assert not any(r["forced"] for r in stopping), stopping
        assert wd.process.records("watchdog.stopped")[-1]["forced"] is False
        assert wd.process.records("child.exited")[-1]["exitcode"] == 0, wd.tail(20)
        assert {r["signal"] for r in wd.process.records("child.killed")} == {"SIGTERM"}
        # Every line of the whole run, the worker's included, carries an event of the table.
        assert {line.event for line in wd.process.lines} <= {e.value for e in LogEvent}, wd.tail(100)
    finally:
        wd.close()


def test_sigint_after_sigterm_forces(tmp_path: Path, sim: SimulatorProcess) -> None:
    wd = Supervised(sim, tmp_path, timings=replace(LIFECYCLE, heartbeat_timeout=30, stop_timeout=20))
    try:
        wd.connected()
        wd.send("block")  # the worker cannot act on SIGTERM
        time.sleep(0.5)
        wd.process.signal(signal.SIGTERM)
        wd.wait_for("child.killed", where=lambda r: r["signal"] == "SIGTERM")
        wd.process.signal(signal.SIGINT)
        assert wd.finish(sig=0, expect=130) == 130
        assert wd.process.records("child.killed")[-1]["signal"] == "SIGKILL"
        assert wd.process.records("watchdog.stopped")[-1]["forced"] is True
    finally:
        wd.close()


def blocked_signals(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    return 0


def test_a_stop_during_start_up_is_a_clean_stop_with_its_lines(tmp_path: Path, sim: SimulatorProcess) -> None:
    env = sim.env()
    proc = subprocess.Popen(
        [PYTHON, "-m", "watchdog", "run", *LIFECYCLE.flags(), "--status-file", str(tmp_path / "status.json")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        term_bit = 1 << (signal.SIGTERM - 1)
        # cmd_run's first line blocks the stop signals: from then on, start-up is under way.
        wait_until(lambda: blocked_signals(proc.pid) & term_bit, 20, "the watchdog to block SIGTERM", 0.001)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert '"event": "watchdog.stopping"' in out and '"event": "watchdog.stopped"' in out, out
    assert '"received SIGTERM"' in out
    assert '"event": "child.spawned"' not in out  # stopped before any worker was started
