"""Faults of the platform's hosts: an API base the platform has retired (a second simulator with
`--retired`), every base refusing connections, and a switch that must outlive the worker. The real
watchdog and worker against simulators on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from tests.faults.conftest import fault
from tests.faults.results import CaseResult
from tests.supervised import START_TIMEOUT, Supervised
from tests.support import RunTimings, SimulatorProcess, closed_port, wait_until, watchdog_status
from watchdog.status import read_status_file

RECOVER_SLACK = 2.5  # as for the other platform faults: one backoff step plus this, for CI


@pytest.fixture
def retired(timings: RunTimings) -> Iterator[SimulatorProcess]:
    """A second simulator answering like a retired host (500 on discovery, 404 on the token path)."""
    made = SimulatorProcess(*timings.simulator_flags(), "--retired")
    yield made
    made.stop()


def retired_first(run_env: SimulatorProcess, retired: SimulatorProcess) -> dict[str, str]:
    bases = f"{retired.info['api_base']},{run_env.info['api_base']}"
    return {"QQ_API_BASE": bases, "QQ_TOKEN_URL": str(run_env.info["token_url"])}


def switches(run: Supervised) -> list[dict[str, object]]:
    return run.process.records("gateway.base_switched")


@fault(
    "platform",
    "the first API base retired (HTTP 500 on /gateway/bot and /gateway)",
    "one switch, connected through the next base ≤ retry cap + 2.5 s after the failure",
)
def test_retired_api_base(
    sim: SimulatorProcess,
    retired: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
) -> None:
    run = supervise(sim, env=retired_first(sim, retired))
    failed_at, failed = run.wait_for("reconnect.failed", START_TIMEOUT)
    back_at, _ = run.connected(after=failed_at)
    switch_s = record.measure(
        "switch_s", run.at(back_at) - run.at(failed_at), timings.retry_max + RECOVER_SLACK
    )
    silence = record.measure("silence_s", run.silence(0, back_at + 1), timings.silence_bound)
    assert switch_s is not None and switch_s <= timings.retry_max + RECOVER_SLACK
    assert silence is not None and silence <= timings.silence_bound
    # What the platform said is in the failure: status, code, message, trace id.
    assert "HTTP 500 code 500: internal error" in str(failed["error"]) and "trace id" in str(failed["error"])
    assert [(s["from"], s["to"], s["reason"]) for s in switches(run)] == [
        (retired.info["api_base"], sim.info["api_base"], "HTTP 500")
    ]
    # Events sent through the base that works arrive.
    seqs = sim.say("hello")
    assert not run.wait_seqs(seqs, 10)
    run.finish()


@fault(
    "platform",
    "every API base refusing connections (the network, not the host)",
    "no switch; attempt and backoff lines as usual (silence ≤ retry cap + 1.5 s)",
)
def test_every_base_refusing(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    bases = [f"http://127.0.0.1:{closed_port()}", f"http://127.0.0.1:{closed_port()}"]
    run = supervise(sim, env={"QQ_API_BASE": ",".join(bases)})
    first_failed, _ = run.wait_for("reconnect.failed", START_TIMEOUT)
    deadline = time.monotonic() + 20
    while len(run.process.records("reconnect.failed")) < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    failed = run.process.records("reconnect.failed")
    assert len(failed) >= 6, run.output()[-2000:]
    record.measure("switches", float(len(switches(run))), 0.0, unit="")
    silence = record.measure("silence_s", run.silence(first_failed), timings.silence_bound)
    assert not switches(run)
    assert silence is not None and silence <= timings.silence_bound
    assert all("discovery" in str(f["error"]) for f in failed)
    assert {r["url"] for r in run.process.records("gateway.connecting")} == {f"{bases[0]}/gateway/bot"}
    scheduled = run.process.records("reconnect.scheduled")
    assert len(scheduled) >= 5 and all(0 < float(r["delay_s"]) <= timings.retry_max for r in scheduled)
    run.finish()


@fault(
    "process",
    "worker SIGKILLed after a host switch",
    "the next child starts on the base that worked: no new switch, reconnect ≤ respawn cap + 2.5 s",
)
def test_switch_survives_respawn(
    sim: SimulatorProcess,
    retired: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
) -> None:
    run = supervise(sim, env=retired_first(sim, retired))
    _, started = run.wait_for("watchdog.started", START_TIMEOUT)
    assert (started["api_base"], started["token_url"]) == (retired.info["api_base"], sim.info["token_url"])
    run.connected()
    assert len(switches(run)) == 1
    answered = retired.state()["counters"]["retired_answers"]
    # The beat names the base in use; the watchdog's status file and `watchdog status` show it.
    wait_until(lambda: (read_status_file(str(run.status_file)).status or {}).get("api_base")
               == sim.info["api_base"], 10, "the status file to name the second base")  # fmt: skip
    shown = watchdog_status(run.status_file).stdout
    assert f"api base         {sim.info['api_base']}" in shown
    assert f"token endpoint   {sim.info['token_url']}" in shown
    mark = run.mark()
    t0 = time.monotonic()
    os.kill(run.process.records("child.spawned")[-1]["child_pid"], signal.SIGKILL)
    back_at, _ = run.connected(after=mark)
    recover = record.measure("recover_s", run.at(back_at) - t0, timings.respawn_max + RECOVER_SLACK)
    assert recover is not None and recover <= timings.respawn_max + RECOVER_SLACK
    started = [r for r in run.process.records("worker.started") if r.get("generation") == 2]
    assert [r["api_base"] for r in started] == [sim.info["api_base"]]
    assert len(switches(run)) == 1  # none in the second generation
    assert retired.state()["counters"]["retired_answers"] == answered
    run.finish()
