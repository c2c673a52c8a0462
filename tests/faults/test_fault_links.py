"""Faults on a real link: the simulator in one network namespace, the watchdog + worker in another,
joined by a veth that every packet of the worker's connections crosses (qqworker/simulator/netns.py).
Root, as CI is.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pytest

from qqworker.simulator import netns
from tests.faults.conftest import fault
from tests.faults.harness import Outcome, assert_outcome, outage
from tests.faults.results import CaseResult
from tests.supervised import Supervised
from tests.support import RunTimings, SimulatorProcess

DETECTORS = ("gateway.ack_timeout", "gateway.closed", "reconnect.failed", "child.ack_stale", "child.killed")


@contextlib.contextmanager
def sim_over_link(link: netns.Link, timings: RunTimings) -> Iterator[SimulatorProcess]:
    """The simulator inside the link's simulator namespace; its port forwarded over the veth."""
    sim = SimulatorProcess(*timings.simulator_flags(), prefix=link.sim.prefix(), call=link.sim.call)
    try:
        link.forward(sim.port)
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def netsim(link: netns.Link, timings: RunTimings) -> Iterator[SimulatorProcess]:
    with sim_over_link(link, timings) as sim:
        yield sim


@pytest.fixture
def over_link(
    link: netns.Link, netsim: SimulatorProcess, supervise: Callable[..., Supervised]
) -> Callable[..., Supervised]:
    def start(**kwargs: object) -> Supervised:
        return supervise(netsim, prefix=link.worker.prefix(), **kwargs)

    return start


def check(
    record: CaseResult, timings: RunTimings, result: Outcome, *, detect_bound: float, recover_bound: float
) -> None:
    assert_outcome(
        record,
        result,
        detect_bound=detect_bound,
        recover_bound=recover_bound,
        silence_bound=timings.silence_bound,
    )


def reattempt_bound(timings: RunTimings) -> float:
    """Link back → connected: at most one backoff delay plus one connect attempt already under way, plus
    the handshake itself and slack for a loaded machine."""
    return timings.retry_max + timings.connect_timeout + 2.0


@fault(
    "link", "link down (`ip link set eth0 down` on the worker's side) for 4 s", "detect ≤ 2 missed ACKs + 2 s"
)
def test_link_down(
    link: netns.Link,
    netsim: SimulatorProcess,
    over_link: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
) -> None:
    run = over_link()
    result = outage(
        run, netsim,
        inject=lambda: link.set_link(False),
        restore=lambda: link.set_link(True),
        detect_events=DETECTORS, hold_s=4.0,
    )  # fmt: skip
    check(record, timings, result, detect_bound=timings.ack_bound, recover_bound=reattempt_bound(timings))
    run.finish()


@fault("link", "every packet dropped (iptables DROP both ways) for 4 s", "detect ≤ 2 missed ACKs + 2 s")
def test_all_packets_dropped(
    link: netns.Link,
    netsim: SimulatorProcess,
    over_link: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
) -> None:
    run = over_link()
    result = outage(
        run, netsim,
        inject=link.drop_all,
        restore=link.undrop_all,
        detect_events=DETECTORS, hold_s=4.0,
    )  # fmt: skip
    check(record, timings, result, detect_bound=timings.ack_bound, recover_bound=reattempt_bound(timings))
    run.finish()


@fault(
    "link",
    "half-open: the established connection's packets dropped, new ones pass (TCP alone: ~15 min)",
    "detect ≤ 2 missed ACKs + 2 s",
)
def test_half_open(
    link: netns.Link,
    netsim: SimulatorProcess,
    over_link: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
) -> None:
    run = over_link()
    dropped: list[int] = []
    result = outage(
        run, netsim,
        inject=lambda: dropped.extend(link.half_open()),
        restore=None,
        detect_events=DETECTORS,
    )  # fmt: skip
    assert dropped, "no established connection was found to cut"
    assert result.detected["event"] in ("gateway.ack_timeout", "child.ack_stale"), (
        f"a half-open link must be caught by the heartbeat ACK deadline, got {result.detected}"
    )
    check(record, timings, result, detect_bound=timings.ack_bound, recover_bound=reattempt_bound(timings))
    run.finish()


@fault(
    "link", "slow link: tbf 256 kbit/s both ways while 300 events arrive", "all delivered, silence ≤ bound"
)
def test_slow_link(
    link: netns.Link,
    netsim: SimulatorProcess,
    over_link: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
) -> None:
    run = over_link()
    run.connected()
    time.sleep(0.5)
    mark = run.mark()
    link.slow("256kbit")
    t0 = time.monotonic()
    seqs = netsim.events(300)
    missing = run.wait_seqs(seqs, 60)
    delivered_s = time.monotonic() - t0
    link.unslow()
    assert not missing, f"events lost on the slow link: {len(missing)} of {len(seqs)}"
    # Heartbeat ACKs queue behind the events on a slow link: if the worker reconnects, that too must be
    # logged, resumed and silence-bounded like any other reconnect.
    run.connected(30, after=mark)
    silence = run.silence_while_down(mark)
    record.measure("delivered_300_s", delivered_s, 60)
    record.measure("silence_s", silence, timings.silence_bound)
    assert silence <= timings.silence_bound, f"log silent {silence:.2f}s while reconnecting on the slow link"
    run.finish()


@fault(
    "link", "20 % random packet loss both ways (iptables statistic) for 5 s", "all delivered, silence ≤ bound"
)
def test_packet_loss(
    link: netns.Link,
    netsim: SimulatorProcess,
    over_link: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
) -> None:
    run = over_link()
    run.connected()
    time.sleep(0.5)
    mark = run.mark()
    link.loss(0.2)
    seqs: list[int] = []
    for _ in range(10):
        seqs.extend(netsim.events(5))
        time.sleep(0.5)
    link.clear_filters()
    t1 = time.monotonic()
    missing = run.wait_seqs(seqs, 30)
    caught_up = time.monotonic() - t1
    assert not missing, f"events lost under packet loss: {sorted(missing)[:10]}"
    silence = run.silence_while_down(mark)
    record.measure("caught_up_s", caught_up, reattempt_bound(timings))
    record.measure("silence_s", silence, timings.silence_bound)
    assert caught_up <= reattempt_bound(timings), (
        f"events still missing {caught_up:.2f}s after the loss ended"
    )
    assert silence <= timings.silence_bound, f"log silent {silence:.2f}s while reconnecting under loss"
    run.finish()


@fault("link", "latency and loss with `tc netem`", "—")
def test_netem(link: netns.Link) -> None:
    reason = netns.netem_available(link.worker)
    if reason is not None:
        pytest.skip(f"tc netem is not available in this kernel ({reason}); tbf and iptables loss cover it")
    pytest.fail("netem is available here: write the latency case it allows")


@fault("link", "DNS failure: `localhost` unresolvable (hosts entry gone, resolver at nothing) for 3 s",
       "detect ≤ 1 s after the drop")  # fmt: skip
def test_dns_failure(
    link: netns.Link, timings: RunTimings, supervise: Callable[..., Supervised], record: CaseResult
) -> None:
    # The gateway, token and REST URLs use a host name that the worker's namespace resolves through its
    # own /etc/hosts and resolv.conf (`ip netns exec` bind-mounts /etc/netns/NAME/* over /etc/*).
    hosts_ok = "127.0.0.1 localhost\n"
    for ns in (link.sim, link.worker):
        ns.write_etc("hosts", hosts_ok)
        ns.write_etc("resolv.conf", "nameserver 127.0.0.53\noptions timeout:1 attempts:1\n")
    sim = SimulatorProcess(
        *timings.simulator_flags(), "--host", "localhost", prefix=link.sim.prefix(), call=link.sim.call
    )
    try:
        link.forward(sim.port)
        assert "localhost" in sim.info["gateway_url"], sim.info
        run = supervise(sim, prefix=link.worker.prefix())

        def inject() -> None:
            link.worker.write_etc("hosts", "# localhost removed by the fault test\n")
            sim.close(4009)  # the connection ends: the next one has to resolve the name

        result = outage(
            run, sim,
            inject=inject,
            restore=lambda: link.worker.write_etc("hosts", hosts_ok),
            detect_events=("reconnect.failed", "auth.token_failed"), hold_s=3.0,
        )  # fmt: skip
        error = str(result.detected.get("error", ""))
        assert "name" in error.lower() or "resol" in error.lower() or "dns" in error.lower(), result.detected
        check(
            record,
            timings,
            result,
            detect_bound=timings.retry_max + 1.0,
            recover_bound=reattempt_bound(timings),
        )
        run.finish()
    finally:
        sim.stop()


SEED = RunTimings(retry_initial=1.0, retry_max=10.0, connect_timeout=5.0, heartbeat_interval=1.0,
               heartbeat_timeout=10.0, attempt_grace=5.0, stop_timeout=5.0)  # fmt: skip


@pytest.mark.slow
@fault(
    "link",
    "the seed incident: link down for 60 s, production-like retry 1–10 s",
    "silence ≤ retry cap + grace; back ≤ cap + connect timeout + 2 s",
)
def test_link_down_60s(
    link: netns.Link, netsim: SimulatorProcess, over_link: Callable[..., Supervised], record: CaseResult
) -> None:
    run = over_link(timings=SEED)
    result = outage(
        run, netsim,
        inject=lambda: link.set_link(False),
        restore=lambda: link.set_link(True),
        detect_events=DETECTORS, hold_s=60.0, events=20, timeout=60,
    )  # fmt: skip
    attempts = [r for r in run.process.records("gateway.connecting")]
    record.measure("attempts", float(len(attempts)), None, unit="")
    check(record, SEED, result, detect_bound=SEED.ack_bound, recover_bound=reattempt_bound(SEED))
    run.finish()
