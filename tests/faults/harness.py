"""The fault matrix's measurement: one fault end to end (`outage`), its figures (`Outcome`) and the
bounds every case holds them to (`assert_outcome`).

The run itself is tests/supervised.py's `Supervised` (the real watchdog and its worker against the
simulator); every case checks the same things about one fault: it was detected within its bound, the
worker connected again, the log never went silent longer than the retry delay + grace while not
connected, no event dispatched during the fault was lost, and `finish()` found no process of the
watchdog's tree outliving it and no secret or token in any output.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tests.faults.results import CaseResult
from tests.supervised import Supervised
from tests.support import SimulatorProcess


@dataclass
class Outcome:
    detect_s: float
    recover_s: float
    silence_s: float
    missing: set[int]
    detected: dict[str, Any]
    reconnected: dict[str, Any]


def assert_outcome(
    record: CaseResult, result: Outcome, *, detect_bound: float, recover_bound: float, silence_bound: float
) -> None:
    """Records a fault's three figures against their bounds, then holds it to them and to no lost event."""
    record.measure("detect_s", result.detect_s, detect_bound)
    record.measure("recover_s", result.recover_s, recover_bound)
    record.measure("silence_s", result.silence_s, silence_bound)
    assert result.detect_s <= detect_bound, f"detected after {result.detect_s:.2f}s (bound {detect_bound}s)"
    assert result.recover_s <= recover_bound, (
        f"recovered after {result.recover_s:.2f}s (bound {recover_bound}s)"
    )
    assert result.silence_s <= silence_bound, (
        f"log silent {result.silence_s:.2f}s while not connected (bound {silence_bound}s)"
    )
    assert not result.missing, f"events lost across the fault: seqs {sorted(result.missing)}"


def outage(
    run: Supervised,
    sim: SimulatorProcess,
    *,
    inject: Callable[[], Any],
    restore: Callable[[], Any] | None,
    detect_events: Sequence[str],
    hold_s: float = 0.0,
    restore_when: Callable[[], Any] | None = None,
    events: int = 5,
    settle_s: float = 1.0,
    timeout: float = 30.0,
) -> Outcome:
    """One fault, end to end: connected → inject → events dispatched during the fault → detected →
    (held for hold_s, then restore) → connected again → every event delivered.

    detect_s: injection → the first detection line. recover_s: restore (or, without one, detection)
    → gateway.connected. silence_s: the longest gap between log lines from detection to reconnection,
    the stretch in which the contract forbids silence. `restore_when`, when given, waits after the
    hold for the moment to restore; the recovery clock starts after it."""
    run.connected()
    time.sleep(settle_s)  # a few gateway heartbeats and pipe beats on a healthy link first
    mark = run.mark()
    t0 = time.monotonic()
    inject()
    seqs = sim.events(events) if events else []
    detected_at, detected = run.wait_any(detect_events, timeout, after=mark)
    detect_s = run.at(detected_at) - t0
    if restore is not None:
        time.sleep(max(0.0, hold_s - (time.monotonic() - t0)))
        if restore_when is not None:
            restore_when()
        t1 = time.monotonic()
        restore()
        back_at, reconnected = run.connected(timeout, after=detected_at)
        recover_s = max(0.0, run.at(back_at) - t1)
    else:
        back_at, reconnected = run.connected(timeout, after=detected_at)
        recover_s = run.at(back_at) - run.at(detected_at)
    missing = run.wait_seqs(seqs, timeout)
    return Outcome(detect_s, recover_s, run.silence(detected_at, back_at + 1), missing, detected, reconnected)
