"""qq-botpy 1.2.1 through the same namespaces and faults as the worker's real-link figures
(benchmark/netrecovery.py), run after the worker has stopped, with clients/botpy_recovery.py as the client:

* dead_link_detect_s_botpy: every packet of the established connection dropped → `botpy.closed`. botpy
  checks no heartbeat ACK and sends no ping, so it may not notice for as long as the kernel retransmits
  (tcp_retries2, ~15 min): waited for up to `cap_s`, else None ("not noticed within cap_s");
* network_back_{unreachable,blackhole}_s_botpy: after an `outage_s` outage, the fault lifted → botpy
  connected again: READY or RESUMED on a new connection, or, when botpy never noticed the outage and
  its connection survived it, the first event the simulator dispatches after the fault (one every
  PROBE_S from then on) reaching botpy's handler. Waited for up to BACK_CAP_S, else None.

One run of each (the worker's unreachable figure is a p95 over several): botpy's rounds are long.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.plan import EVENT
from qqworker.simulator import netns
from qqworker.simulator.remote import LineProcess, SimulatorProcess

__all__ = ["BACK_CAP_S", "KEYS", "measure"]

KEYS = ("dead_link_detect_s_botpy", "dead_link_botpy_cap_s", "network_back_unreachable_s_botpy",
        "network_back_unreachable_botpy_via", "network_back_blackhole_s_botpy",
        "network_back_blackhole_botpy_via")  # fmt: skip
SETTLE_S = 4.0
BACK_CAP_S = 120.0
PROBE_S = 0.25
BACK = {"botpy.ready": "READY", "botpy.resumed": "RESUMED",
        "botpy.event": "an event on the connection that survived"}  # fmt: skip


def measure(
    lab: netns.Link, sim: SimulatorProcess, env: dict[str, str], bench_py: Path, work: Path, outage_s: float,
    cap_s: float, say: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    figures: dict[str, Any] = dict.fromkeys(KEYS)
    figures["dead_link_botpy_cap_s"] = cap_s
    client = _start(lab, env, bench_py, work)
    try:
        time.sleep(SETTLE_S)
        mark = client.mark()
        t0 = time.monotonic()
        if not lab.half_open():
            raise RuntimeError("no established botpy connection to cut")
        index = _first(client, ("botpy.closed",), cap_s, mark)
        if index is None:
            say(f"  qq-botpy: dead link not noticed within {cap_s:g} s")
        else:
            took = figures["dead_link_detect_s_botpy"] = client.at(index) - t0
            say(f"  qq-botpy: dead link noticed after {took:.2f} s ({client.lines[index].text})")
        # A fresh client for the outages: the cut connection's packets stay dropped.
        client.stop(15)
        client = _start(lab, env, bench_py, work)
        for name, fault in (("unreachable", lab.set_unreachable), ("blackhole", lab.set_black_hole)):
            back, via, noticed = _outage(client, fault, outage_s, lambda: _dispatch(sim))
            figures[f"network_back_{name}_s_botpy"] = back
            figures[f"network_back_{name}_botpy_via"] = via
            seen = "noticed the outage" if noticed else "did not notice the outage"
            shown = f"{back:.2f} s" if back is not None else f"not within {BACK_CAP_S:g} s"
            say(f"  qq-botpy: {name} {outage_s:g} s, {seen}: packets flow → connected {shown} ({via})")
    finally:
        client.stop(15)
    return figures


def _start(lab: netns.Link, env: dict[str, str], bench_py: Path, work: Path) -> LineProcess:
    client = LineProcess(
        [*lab.worker.prefix(), str(bench_py), "-m", "benchmark.clients.botpy_recovery"], env=env, cwd=work
    )
    client.wait_for("botpy.ready", 60)
    return client


def _first(client: LineProcess, events: tuple[str, ...], timeout: float, after: int) -> int | None:
    """The index of the first line with one of `events` from index `after` on, waiting up to `timeout` s;
    None when there is none by then (or the client has ended)."""
    try:
        return client.wait_any(events, timeout, after=after)[0]
    except AssertionError:
        return None


def _dispatch(sim: SimulatorProcess) -> None:
    """One C2C event from the simulator, not waiting for its delivery; the control request is made from
    inside the simulator's namespace (SimulatorProcess's `call`), so it never crosses the faulty link."""
    with contextlib.suppress(OSError, TimeoutError):
        sim.control("/_sim/events", {"type": EVENT, "count": 1, "wait": False}, timeout=2)


def _outage(
    client: LineProcess, fault: Callable[[bool], None], outage_s: float, probe: Callable[[], None]
) -> tuple[float | None, str | None, bool]:
    """(fault lifted → connected again or None, what showed it with whether botpy noticed the outage
    at all, that noticing)."""
    time.sleep(SETTLE_S)
    start = client.mark()
    fault(True)
    time.sleep(outage_s)
    before_up = client.mark()
    noticed = _seen(client, "botpy.closed", start)
    t_up = time.monotonic()
    fault(False)
    index = None
    while index is None and time.monotonic() - t_up < BACK_CAP_S and client.proc.poll() is None:
        probe()
        index = _first(client, tuple(BACK), PROBE_S, before_up)
    if index is None:
        return None, None, noticed
    event = client.lines[index].event
    return client.at(index) - t_up, f"{BACK[event]} (outage {'' if noticed else 'not '}noticed)", noticed


def _seen(client: LineProcess, event: str, after: int) -> bool:
    return any(ln.event == event for ln in client.lines[after:])
