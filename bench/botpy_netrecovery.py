"""qq-botpy 1.2.1 through the same namespaces and faults as the worker's real-link figures
(bench/netrecovery.py), run after the worker has stopped, with bench/botpy_recovery.py as the client:

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

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import netlab
from bench.procs import Line, Proc

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "bench" / "botpy_recovery.py"
KEYS = ("dead_link_detect_s_botpy", "dead_link_botpy_cap_s", "network_back_unreachable_s_botpy",
        "network_back_unreachable_botpy_via", "network_back_blackhole_s_botpy",
        "network_back_blackhole_botpy_via")  # fmt: skip
SETTLE_S = 4.0
BACK_CAP_S = 120.0
PROBE_S = 0.25
BACK = {"botpy.ready": "READY", "botpy.resumed": "RESUMED",
        "botpy.event": "an event on the connection that survived"}  # fmt: skip


def measure(
    lab: netlab.Lab, env: dict[str, str], bench_py: Path, work: Path, outage_s: float, cap_s: float,
    say: Callable[[str], None], control_url: str,
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
        line = _first(client, ("botpy.closed",), cap_s, mark)
        if line is None:
            say(f"  qq-botpy: dead link not noticed within {cap_s:g} s")
        else:
            figures["dead_link_detect_s_botpy"] = line.t - t0
            say(f"  qq-botpy: dead link noticed after {line.t - t0:.2f} s ({line.text})")
        # A fresh client for the outages: the cut connection's packets stay dropped.
        client.stop(15)
        client = _start(lab, env, bench_py, work)
        for name, fault in (("unreachable", lab.unreachable), ("blackhole", lab.black_hole)):
            back, via, noticed = _outage(client, fault, outage_s, lambda: _dispatch(lab, control_url))
            figures[f"network_back_{name}_s_botpy"] = back
            figures[f"network_back_{name}_botpy_via"] = via
            seen = "noticed the outage" if noticed else "did not notice the outage"
            shown = f"{back:.2f} s" if back is not None else f"not within {BACK_CAP_S:g} s"
            say(f"  qq-botpy: {name} {outage_s:g} s, {seen}: packets flow → connected {shown} ({via})")
    finally:
        client.stop(15)
    return figures


def _start(lab: netlab.Lab, env: dict[str, str], bench_py: Path, work: Path) -> Proc:
    client = Proc([*lab.prefix(lab.worker), str(bench_py), str(CLIENT)], env=env, cwd=work)
    client.wait_for("botpy.ready", 60)
    return client


def _first(client: Proc, events: tuple[str, ...], timeout: float, after: int) -> Line | None:
    """The first line with one of `events` from index `after` on, waiting up to `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        for line in client.lines[after:]:
            if line.record and line.record.get("event") in events:
                return line
        if time.monotonic() > deadline or client.popen.poll() is not None:
            return None
        time.sleep(0.05)


def _dispatch(lab: netlab.Lab, control_url: str) -> None:
    """One C2C event from the simulator (its control endpoint is inside the simulator's namespace)."""
    lab.exec(lab.sim, "curl", "-s", "-m", "2", "-o", "/dev/null", "-H", "Content-Type: application/json",
             "-d", '{"type": "C2C_MESSAGE_CREATE", "count": 1, "wait": false}', control_url + "/_sim/events",
             check=False)  # fmt: skip


def _outage(
    client: Proc, fault: Callable[[bool], None], outage_s: float, probe: Callable[[], None]
) -> tuple[float | None, str | None, bool]:
    """(fault lifted → connected again or None, what showed it with whether botpy noticed the outage
    at all, that noticing)."""
    time.sleep(SETTLE_S)
    start = client.mark()
    fault(True)
    time.sleep(outage_s)
    before_up = client.mark()
    noticed = any(ln.record and ln.record.get("event") == "botpy.closed" for ln in client.lines[start:])
    t_up = time.monotonic()
    fault(False)
    line = None
    while line is None and time.monotonic() - t_up < BACK_CAP_S and client.popen.poll() is None:
        probe()
        line = _first(client, tuple(BACK), PROBE_S, before_up)
    if line is None or line.record is None:
        return None, None, noticed
    return line.t - t_up, f"{BACK[line.record['event']]} (outage {'' if noticed else 'not '}noticed)", noticed
