"""The recovery figures that need a real link (qqworker/simulator/netns.py), with the PRODUCTION defaults
(the watchdog gets no timing flag) and the platform's Hello interval, 41250 ms:

* dead_link_detect_s: every packet of the established gateway connection dropped → `gateway.ack_timeout`;
* network_back_unreachable_s: after an `outage_s` "network unreachable", route back → connected (p95 of
  `runs`, nearest rank, so the largest of 5);
* network_back_blackhole_s: after an `outage_s` black hole, packets flow again → connected;
* then, given the bench venv's python, the same faults for qq-botpy (benchmark/botpy_netrecovery.py).
"""

from __future__ import annotations

import math
import os
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark import botpy_netrecovery
from benchmark.plan import PY, SCRIPTS
from qqworker.simulator import netns
from qqworker.simulator.remote import LineProcess, SimulatorProcess

__all__ = ["HELLO_MS", "KEYS", "measure"]

HELLO_MS = 41250
SETTLE_S = 4.0  # past the first WebSocket ping and its pong on a new connection
KEYS = ("dead_link_detect_s", "network_back_unreachable_s", "network_back_unreachable_median_s",
        "network_back_blackhole_s", "dead_link_evidence", *botpy_netrecovery.KEYS)  # fmt: skip


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def measure(
    work: Path, runs: int, outage_s: float, say: Callable[[str], None],
    botpy: Path | None = None, botpy_cap_s: float = 180.0,
) -> dict[str, Any]:  # fmt: skip
    """The worker's figures, then qq-botpy's when `botpy` (the bench venv's python) is given."""
    figures: dict[str, Any] = dict.fromkeys(KEYS)
    try:
        netns.ensure_tools()
    except netns.NetnsUnavailable as exc:
        say(f"  not measured: {exc}")
        return figures
    work.mkdir(parents=True, exist_ok=True)
    # A SIGTERM (a timeout around the bench) must still remove the namespaces: make it an exception.
    previous = signal.signal(signal.SIGTERM, _terminate)
    lab = netns.Link(f"b{os.getpid()}")
    sim: SimulatorProcess | None = None
    run: LineProcess | None = None
    try:
        sim = SimulatorProcess(gateway_heartbeat_ms=HELLO_MS, prefix=lab.sim.prefix(), call=lab.sim.call)
        lab.forward(sim.port)
        env = sim.env(PYTHONPATH=str(SCRIPTS))
        status = work / "netrecovery.status.json"
        args = [*lab.worker.prefix(), PY, "-m", "watchdog", "run", "--status-file", str(status)]
        run = LineProcess(args, env=env, cwd=work)
        run.wait_for("gateway.connected", 60)
        time.sleep(SETTLE_S)

        mark = run.mark()
        t0 = time.monotonic()
        cut = lab.half_open()
        if not cut:
            raise RuntimeError("no established gateway connection to cut")
        index, record = run.wait_for("gateway.ack_timeout", 300, after=mark)
        figures["dead_link_detect_s"] = run.at(index) - t0
        figures["dead_link_evidence"] = record.get("evidence")
        detect, evidence = figures["dead_link_detect_s"], figures["dead_link_evidence"]
        say(f"  dead link noticed after {detect:.2f} s ({evidence})")
        run.wait_for("gateway.connected", 120, after=index)

        backs: list[float] = []
        for n in range(runs):
            backs.append(_outage(run, lab.set_unreachable, outage_s))
            say(f"  unreachable {outage_s:g} s, run {n + 1}/{runs}: route back → connected {backs[-1]:.2f} s")
        figures["network_back_unreachable_s"] = p95(backs)
        figures["network_back_unreachable_median_s"] = statistics.median(backs)
        figures["network_back_blackhole_s"] = _outage(run, lab.set_black_hole, outage_s)
        hole = figures["network_back_blackhole_s"]
        say(f"  black hole {outage_s:g} s: packets flow → connected {hole:.2f} s")
        if botpy is not None:
            run.stop(30)  # botpy alone on the link, as the worker was
            figures.update(botpy_netrecovery.measure(lab, sim, env, botpy, work, outage_s, botpy_cap_s, say))
    finally:
        if run is not None:
            run.stop(30)
        if sim is not None:
            sim.stop()
        lab.close()
        signal.signal(signal.SIGTERM, previous)
    return figures


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _outage(run: LineProcess, fault: Callable[[bool], None], outage_s: float) -> float:
    time.sleep(SETTLE_S)
    start = run.mark()
    fault(True)
    t_down = time.monotonic()
    run.wait_for("gateway.ack_timeout", outage_s + 60, after=start)  # it noticed, then it waits
    time.sleep(max(0.0, outage_s - (time.monotonic() - t_down)))
    before_up = run.mark()
    t_up = time.monotonic()
    fault(False)
    index, _ = run.wait_for("gateway.connected", 300, after=before_up)
    return run.at(index) - t_up
