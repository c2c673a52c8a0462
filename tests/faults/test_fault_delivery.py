"""Delivery faults (issue 12): events that must be handled at least once, duplicates that are not
duplicates, and what a clean stop, a poison event or a platform hiccup does to the events in hand.
The real watchdog supervises the real worker against the simulator (or the scripted fake gateway)."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.faults.conftest import fault
from tests.faults.harness import FaultSim, Supervised, Timings
from tests.faults.results import CaseResult

DELIVERY_BOUND = 10.0


@fault("platform", "two CHANNEL_UPDATE events for one channel (same d.id)", "both handled ≤ 10 s")
def test_two_updates_to_one_channel(
    sim: FaultSim, supervise: Callable[..., Supervised], timings: Timings, record: CaseResult
) -> None:
    run = supervise(sim)
    run.connected()
    t0 = time.monotonic()
    seqs = []
    for name in ("first", "second"):
        body = {"type": "CHANNEL_UPDATE", "d": {"id": "channel-1", "name": name}}
        answer = sim.control("/_sim/events", body)
        seqs += [s for first, last in answer["seq"].values() for s in range(first, last + 1)]
    assert len(seqs) == 2, seqs
    missing = run.wait_seqs(seqs, DELIVERY_BOUND)
    record.measure("both_handled_s", time.monotonic() - t0, DELIVERY_BOUND)
    assert not missing, f"an update to the same channel was dropped as a duplicate: seqs {sorted(missing)}"
    ids = {r["event_id"] for r in run.process.records("dispatch") if r.get("event_type") == "CHANNEL_UPDATE"}
    assert len(ids) == 2, f"two distinct envelope ids expected: {ids}"
    run.assert_clean_end()


HICCUP_S = 10.0
RECOVER_SLACK = 2.5


@fault(
    "platform",
    "close 4901 (platform internal error) to every Identify and Resume for 10 s",
    "never exit 78; connected ≤ 10 s + retry cap + 2.5 s",
)
def test_internal_error_closes_for_ten_seconds(
    sim: FaultSim, supervise: Callable[..., Supervised], timings: Timings, record: CaseResult
) -> None:
    run = supervise(sim)
    run.connected()
    mark = run.mark()
    t0 = time.monotonic()
    sim.outage("internal_error", HICCUP_S)
    sim.close(4009)  # the Resume that follows meets the outage, then every Identify does
    back, reconnected = run.connected(HICCUP_S + 20, after=mark)
    recover_s = run.at(back) - t0
    bound = HICCUP_S + timings.retry_max + RECOVER_SLACK
    record.measure("recover_s", recover_s, bound)
    rejected = [r for r in run.process.records("gateway.closed")[-100:] if r.get("close_code") == 4901]
    record.measure("closes_4901", float(len(rejected)), None, unit="")
    assert len(rejected) >= 5, f"the outage must have refused several attempts: {len(rejected)}"
    assert recover_s >= HICCUP_S - 0.5, f"connected during the outage? {reconnected}"
    assert recover_s <= bound, f"connected {recover_s:.1f}s after the outage began (bound {bound:.1f}s)"
    assert not run.process.records("worker.fatal"), "a 10 s platform hiccup must never be fatal"
    run.assert_not_respawned()
    run.assert_clean_end()
