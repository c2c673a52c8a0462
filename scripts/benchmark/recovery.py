"""Recovery on loopback: one watchdog + worker, a gateway outage (connections refused) for `outage_s`
until connected again, with the longest log silence, then a frozen child (SIGSTOP) until a new child is
connected."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from benchmark.plan import PY, SCRIPTS, WORK, Plan
from qqworker.simulator.remote import LineProcess, SimulatorProcess

__all__ = ["recovery", "watchdog_args"]


def watchdog_args(status: Path, flags: tuple[str, ...]) -> list[str]:
    return [PY, "-m", "watchdog", "run", "--status-file", str(status), *flags]


def recovery(plan: Plan) -> dict[str, Any]:
    """One watchdog + worker: a gateway outage (connections refused) for outage_s, then a frozen child."""
    WORK.mkdir(parents=True, exist_ok=True)
    sim = SimulatorProcess()
    run: LineProcess | None = None
    try:
        env = sim.env(PYTHONPATH=str(SCRIPTS))
        run = LineProcess(watchdog_args(WORK / "recovery.status.json", plan.freeze_flags), env=env, cwd=WORK)
        run.wait_for("gateway.connected", 60)
        time.sleep(1)
        # The outage: the simulator stops listening (and drops the connection) until told otherwise.
        start = run.mark()
        t_down = time.monotonic()
        sim.outage("refuse", plan.outage_s + 600)
        run.wait_for("gateway.closed", 30, after=start)
        time.sleep(max(0.0, plan.outage_s - (time.monotonic() - t_down)))
        before_up = run.mark()
        t_up = time.monotonic()
        sim.outage("refuse", 0)
        back, _ = run.wait_for("gateway.connected", 600, after=before_up)
        delays = [ln.record["delay_s"] for ln in run.lines[start:back]
                  if ln.record and ln.event == "reconnect.scheduled"]  # fmt: skip
        outage = {
            "longest_silence_s": run.longest_gap(start, back + 1),  # until connected again
            "network_back_to_connected_s": run.at(back) - t_up,
            "outage_attempts": len(delays),
            "retry_delay_max_s": max(delays, default=0.0),
            "last_retry_delay_s": delays[-1] if delays else 0.0,
        }
        time.sleep(1)
        # The freeze: SIGSTOP the child; the watchdog must notice, kill it and connect a new one.
        child = int(run.records("child.spawned")[-1]["child_pid"])
        mark = run.mark()
        t_freeze = time.monotonic()
        os.kill(child, signal.SIGSTOP)
        index, _ = run.wait_for("gateway.connected", 300, after=mark)
        outage["freeze_to_connected_s"] = run.at(index) - t_freeze
    finally:
        if run is not None:
            run.stop(30)
        sim.stop()
    return outage
