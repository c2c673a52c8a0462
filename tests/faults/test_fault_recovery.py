"""Issue 15's rows: a dead link and a network that comes back, with the PRODUCTION defaults (no timing
flag at all) and the platform's Hello interval (41250 ms), over the real veth of
qqworker/simulator/netns.py.

Goals: a dead link noticed ≤ 15 s; the network back after "unreachable" → connected ≤ 2 s; after a
black hole ≤ 5 s. The short half-open and unreachable rows run by default; the longer ones are slow.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from qqworker.contract.events import LogEvent
from qqworker.contract.settings import Settings
from qqworker.netpath import PROBE_INTERVAL_S
from qqworker.simulator import netns
from tests.faults.conftest import fault
from tests.faults.harness import assert_outcome, outage
from tests.faults.relay import Relay
from tests.faults.results import CaseResult
from tests.faults.test_fault_links import DETECTORS, sim_over_link
from tests.supervised import Supervised
from tests.support import PYTHON, RunTimings, SimulatorProcess

_D = Settings()
PRODUCTION = RunTimings(
    retry_initial=_D.retry_initial, retry_max=_D.retry_max, connect_timeout=_D.connect_timeout,
    heartbeat_interval=_D.heartbeat_interval, heartbeat_timeout=_D.heartbeat_timeout,
    attempt_grace=_D.attempt_grace, respawn_initial=_D.respawn_initial, respawn_max=_D.respawn_max,
    healthy_after=_D.healthy_after, stop_timeout=_D.stop_timeout, max_attempts=_D.max_attempts,
    gateway_heartbeat_ms=41250, defaults=True,
)  # fmt: skip
DEAD_LINK_BOUND_S = 15.0
BACK_UNREACHABLE_S = 2.0
BACK_BLACKHOLE_S = 5.0
HOG_S = float(os.environ.get("QQW_CPU_HOG_S", "30"))
LATENCY_RUN_S = float(os.environ.get("QQW_LATENCY_RUN_S", "60"))
SETTLE_S = 4.0  # past the first WebSocket ping and its pong: the worker knows the gateway answers pings


@pytest.fixture
def prodsim(link: netns.Link) -> Iterator[SimulatorProcess]:
    with sim_over_link(link, PRODUCTION) as sim:
        yield sim


@pytest.fixture
def prod_run(
    link: netns.Link, prodsim: SimulatorProcess, supervise: Callable[..., Supervised]
) -> Callable[[], Supervised]:
    return lambda: supervise(prodsim, prefix=link.worker.prefix(), timings=PRODUCTION)


def _bounds(record: CaseResult, result: object, *, detect: float, recover: float) -> None:
    assert_outcome(
        record,
        result,  # type: ignore[arg-type]
        detect_bound=detect,
        recover_bound=recover,
        silence_bound=PRODUCTION.silence_bound,
    )


@fault(
    "link",
    "half-open, production defaults, Hello 41.25 s: the established connection's packets dropped",
    "detect ≤ 15 s (WebSocket ping unanswered)",
)
def test_half_open_production(
    link: netns.Link, prodsim: SimulatorProcess, prod_run: Callable[[], Supervised], record: CaseResult
) -> None:
    run = prod_run()
    cut: list[int] = []
    result = outage(
        run, prodsim,
        inject=lambda: cut.extend(link.half_open()),
        restore=None, detect_events=DETECTORS, settle_s=SETTLE_S,
    )  # fmt: skip
    assert cut, "no established connection was found to cut"
    assert result.detected["event"] == "gateway.ack_timeout", result.detected
    assert result.detected["evidence"] == "no_pong", result.detected
    # The new connection passes at once; it waits one short backoff step (the session was < 60 s old).
    _bounds(record, result, detect=DEAD_LINK_BOUND_S, recover=PRODUCTION.retry_initial + 3.0)
    run.finish()


def _unreachable(
    link: netns.Link, sim: SimulatorProcess, run: Supervised, record: CaseResult, hold_s: float
) -> None:
    def in_a_backoff_wait() -> None:
        # The route comes back in a wait with two probe intervals left, so a probe falls after it. At a
        # moment left to chance it may come back in a wait's last second (no probe is due before its
        # end) or during an attempt: the next attempt then connects at once and no probe sees it.
        wanted = 2 * PROBE_INTERVAL_S
        waits = [ln for ln in list(run.process.lines) if ln.event == LogEvent.RECONNECT_SCHEDULED]
        if waits and waits[-1].received_at + waits[-1].record["delay_s"] - time.monotonic() >= wanted:
            return
        run.wait_for(
            LogEvent.RECONNECT_SCHEDULED, PRODUCTION.retry_max + 5, after=run.mark(),
            where=lambda r: r["delay_s"] >= wanted,
        )  # fmt: skip

    result = outage(
        run, sim,
        inject=lambda: link.set_unreachable(True),
        restore=lambda: link.set_unreachable(False),
        restore_when=in_a_backoff_wait,
        detect_events=DETECTORS, hold_s=hold_s, settle_s=SETTLE_S, timeout=hold_s + 30,
    )  # fmt: skip
    failures = [r for r in run.process.records("reconnect.failed")]
    assert any("unreachable" in str(r.get("error", "")).lower() for r in failures), run.output()[-3000:]
    back = run.process.records("reconnect.network_back")
    assert back, "the network's return was not noticed by a probe"
    record.measure("probes_failed", float(back[-1]["failed"]), None, unit="")
    _bounds(record, result, detect=DEAD_LINK_BOUND_S, recover=BACK_UNREACHABLE_S)
    run.finish()


@fault(
    "link",
    "network unreachable (`ip route add unreachable`) for 20 s, back in a backoff wait, production defaults",
    "detect ≤ 15 s; route back → connected ≤ 2 s",
)
def test_unreachable_production(
    link: netns.Link, prodsim: SimulatorProcess, prod_run: Callable[[], Supervised], record: CaseResult
) -> None:
    _unreachable(link, prodsim, prod_run(), record, 20.0)


@pytest.mark.slow
@pytest.mark.timeout(300)
@fault(
    "link",
    "network unreachable for 90 s, back in a backoff wait, production defaults",
    "route back → connected ≤ 2 s; silence ≤ 60 s + grace",
)
def test_unreachable_90s_production(
    link: netns.Link, prodsim: SimulatorProcess, prod_run: Callable[[], Supervised], record: CaseResult
) -> None:
    _unreachable(link, prodsim, prod_run(), record, 90.0)


@pytest.mark.slow
@pytest.mark.timeout(240)
@fault(
    "link",
    "black hole (every packet dropped both ways) for 60 s, production defaults",
    "detect ≤ 15 s; packets flow again → connected ≤ 5 s",
)
def test_black_hole_production(
    link: netns.Link, prodsim: SimulatorProcess, prod_run: Callable[[], Supervised], record: CaseResult
) -> None:
    run = prod_run()
    result = outage(
        run, prodsim,
        inject=link.drop_all, restore=link.undrop_all,
        detect_events=DETECTORS, hold_s=60.0, settle_s=SETTLE_S, timeout=90.0,
    )  # fmt: skip
    _bounds(record, result, detect=DEAD_LINK_BOUND_S, recover=BACK_BLACKHOLE_S)
    run.finish()


@pytest.mark.slow
@fault(
    "link",
    "link flap: down/up every 2 s for 20 s, production defaults",
    "connected ≤ 5 s after the last up; Identify/Resume ≤ backoff",
)
def test_link_flap_production(
    link: netns.Link, prodsim: SimulatorProcess, prod_run: Callable[[], Supervised], record: CaseResult
) -> None:
    run = prod_run()
    run.connected()
    time.sleep(SETTLE_S)
    before = prodsim.state()
    mark = run.mark()
    for _ in range(5):
        link.set_link(False)
        time.sleep(2.0)
        link.set_link(True)
        time.sleep(2.0)
    t_up = time.monotonic()
    # Whatever the flaps did to the connection, the worker is connected a few seconds later.
    deadline = t_up + 30
    while time.monotonic() < deadline and not prodsim.state()["sessions"][0].get("connected"):
        time.sleep(0.1)
    after = prodsim.state()
    handshakes = (after["identifies"] + after["resumes"]) - (before["identifies"] + before["resumes"])
    record.measure("handshakes", float(handshakes), 6.0, unit="")
    record.measure("silence_s", run.silence_while_down(mark), PRODUCTION.silence_bound)
    assert handshakes <= 6, f"{handshakes} Identify/Resume in 20 s of flapping"
    assert run.silence_while_down(mark) <= PRODUCTION.silence_bound
    run.finish()


def test_production_timings_mirror_the_defaults() -> None:
    """The rows above pass no flag: the bounds they check are computed from these values."""
    assert PRODUCTION.flags() == []
    assert (PRODUCTION.heartbeat_interval, PRODUCTION.heartbeat_timeout) == (1.0, 5.0)


@pytest.mark.slow
@pytest.mark.timeout(HOG_S + 120)
@fault(
    "process",
    "CPU hog: one busy process per core beside the worker for 30 s (QQW_CPU_HOG_S for longer), "
    "production defaults",
    "no kill, no dead-link verdict, no reconnect",
)
def test_cpu_hog_production(supervise: Callable[..., Supervised], record: CaseResult) -> None:
    duration = HOG_S
    sim = SimulatorProcess(*PRODUCTION.simulator_flags())
    try:
        run = supervise(sim, timings=PRODUCTION)
        run.connected()
        time.sleep(SETTLE_S)
        mark = run.mark()
        hogs = [subprocess.Popen([PYTHON, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
        try:
            time.sleep(duration)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait(10)
        time.sleep(2.0)
        lines = [ln.record for ln in run.process.lines[mark:] if ln.record is not None]
        bad = [r for r in lines if r.get("event") in BAD_UNDER_LOAD]
        record.measure("hog_s", duration, None)
        record.measure("kills_and_drops", float(len(bad)), 0.0, unit="")
        assert not bad, f"false verdicts under a CPU hog: {bad[:3]}"
        run.finish()
    finally:
        sim.stop()


BAD_UNDER_LOAD = (
    "child.heartbeat_missed", "child.killed", "child.attempt_overdue", "child.ack_stale",
    "gateway.ack_timeout", "gateway.closed", "gateway.connected",
)  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(LATENCY_RUN_S + 150)
@fault(
    "link",
    "2 s added round trip (a delay relay, 1 s each way) + 5 % loss (iptables statistic) + tbf 1 mbit "
    "for 60 s (QQW_LATENCY_RUN_S for longer), production defaults",
    "no false dead-link verdict, every event delivered",
)
def test_latency_and_loss_raise_no_false_verdict(
    link: netns.Link, supervise: Callable[..., Supervised], record: CaseResult
) -> None:
    duration = LATENCY_RUN_S
    sim = SimulatorProcess(*PRODUCTION.simulator_flags(), prefix=link.sim.prefix(), call=link.sim.call)
    relay: Relay | None = None
    try:
        link.forward(sim.port, sim_side=False)
        relay = link.sim.call(Relay, ("127.0.0.1", sim.port), (netns.SIM_ADDR, sim.port))
        run = supervise(sim, prefix=link.worker.prefix(), timings=PRODUCTION)
        run.connected()
        time.sleep(SETTLE_S)
        mark = run.mark()
        relay.delay_s = 1.0
        link.loss(0.05)
        link.slow("1mbit", burst="32kb", latency="2s")
        seqs: list[int] = []
        end = time.monotonic() + duration
        while time.monotonic() < end:
            seqs.extend(sim.events(3))
            time.sleep(5.0)
        missing = run.wait_seqs(seqs, 30)
        link.clear_filters()
        link.unslow()
        lines = [ln.record for ln in run.process.lines[mark:] if ln.record is not None]
        verdicts = ("gateway.ack_timeout", "gateway.closed", "child.killed")
        bad = [r for r in lines if r.get("event") in verdicts]
        record.measure("run_s", duration, None)
        record.measure("false_verdicts", float(len(bad)), 0.0, unit="")
        assert not bad, f"a healthy but slow, lossy link was declared dead: {bad[:3]}"
        assert not missing, f"events lost on the slow, lossy link: {sorted(missing)[:10]}"
        run.finish()
    finally:
        if relay is not None:
            relay.close()
        sim.stop()


@pytest.mark.slow
@fault(
    "link",
    "half-open, production defaults, a gateway that answers no WebSocket ping (`--no-pong`)",
    "detect ≤ 35 s (TCP_USER_TIMEOUT 30 s, the kernel's backstop)",
)
def test_half_open_without_pongs(
    link: netns.Link, supervise: Callable[..., Supervised], record: CaseResult
) -> None:
    sim = SimulatorProcess(
        *PRODUCTION.simulator_flags(), "--no-pong", prefix=link.sim.prefix(), call=link.sim.call
    )
    try:
        link.forward(sim.port)
        run = supervise(sim, prefix=link.worker.prefix(), timings=PRODUCTION)
        result = outage(
            run, sim,
            inject=link.half_open, restore=None, detect_events=DETECTORS, settle_s=SETTLE_S, timeout=90.0,
        )  # fmt: skip
        assert run.process.records("gateway.ack_timeout") == [] or result.detected["evidence"] != "no_pong"
        _bounds(record, result, detect=35.0, recover=PRODUCTION.retry_initial + 3.0)
        run.finish()
    finally:
        sim.stop()
