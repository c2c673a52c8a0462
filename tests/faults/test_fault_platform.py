"""Faults on the platform's side: close codes of every class, op 7 and op 9, the token endpoint failing
or hanging, wrong credentials, a gateway that never says Hello or READY, malformed and oversized frames.
The simulator (or, for frames it will not send, a tiny scripted gateway) on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.faults.conftest import fault
from tests.faults.fakegw import FakeGateway
from tests.faults.harness import Outcome, assert_outcome, outage
from tests.faults.relay import Relay
from tests.faults.results import CaseResult
from tests.supervised import Supervised
from tests.support import RunTimings, SimulatorProcess

# After a close the worker reconnects at once (resume) or after one backoff step; slack for CI.
RECOVER_SLACK = 2.5
DETECT_BOUND = 1.0  # a close frame or an answer is seen as soon as it arrives


def check(record: CaseResult, timings: RunTimings, result: Outcome, *, detect: float, recover: float) -> None:
    assert_outcome(
        record, result, detect_bound=detect, recover_bound=recover, silence_bound=timings.silence_bound
    )


def close_case(code: int | None, klass: str, resumes: bool) -> object:
    name = "dropped without a close frame (1006)" if code is None else f"close {code}"
    return pytest.param(
        code, resumes,
        marks=fault("platform", f"{name}: {klass}", "detect ≤ 1 s, reconnect ≤ retry cap + 2.5 s"),
        id=str(code or 1006),
    )  # fmt: skip


RECONNECTING = [
    close_case(1000, "resume", True),
    close_case(None, "resume", True),
    close_case(4009, "resume at once (the 30-minute cycle)", True),
    close_case(4004, "new token, identify", False),
    close_case(4006, "identify (session invalid)", False),
    close_case(4903, "identify (platform internal error)", False),
    close_case(4321, "identify (undocumented code)", False),
]


@pytest.mark.parametrize(("code", "resumes"), RECONNECTING)
def test_close_code(
    code: int | None,
    resumes: bool,
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
) -> None:
    run = supervise(sim)
    result = outage(
        run, sim,
        inject=lambda: sim.close(4000, abort=True) if code is None else sim.close(code),
        restore=None,
        detect_events=("gateway.closed",),
        events=5 if resumes else 0,  # a resumed session replays what it missed; a new one cannot
    )  # fmt: skip
    if code is not None:
        assert result.detected.get("close_code") == code, result.detected
    assert result.reconnected.get("resumed") is resumes, result.reconnected
    if code == 4004:
        assert run.process.records("auth.token_fetched")[1:], "4004 must fetch a new access token"
    check(record, timings, result, detect=DETECT_BOUND, recover=timings.retry_max + RECOVER_SLACK)
    run.finish()


@fault(
    "platform",
    "close 4008: rate limited, back off at least the retry cap",
    "retry cap ≤ reconnect ≤ cap + 2.5 s",
)
def test_close_rate_limited(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    run = supervise(sim)
    result = outage(run, sim, inject=lambda: sim.close(4008), restore=None, detect_events=("gateway.closed",))
    assert result.recover_s >= timings.retry_max * 0.95, (
        f"4008 must wait the cap; waited {result.recover_s:.2f}s"
    )
    check(record, timings, result, detect=DETECT_BOUND, recover=timings.retry_max + RECOVER_SLACK)
    run.finish()


def fatal_case(code: int, klass: str) -> object:
    return pytest.param(code, marks=fault("platform", f"close {code}: {klass}", "exit 78 ≤ 3 s, no respawn"))


@pytest.mark.parametrize(
    "code",
    [
        fatal_case(4001, "fatal (invalid opcode: our bug)"),
        fatal_case(4014, "fatal (intent not permitted)"),
        fatal_case(4915, "fatal (bot banned)"),
    ],
)
def test_close_fatal(
    code: int,
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
) -> None:
    run = supervise(sim)
    run.connected()
    time.sleep(0.5)
    mark = run.mark()
    t0 = time.monotonic()
    sim.close(code)
    at, fatal = run.wait_for("worker.fatal", 10, after=mark)
    exit_code = run.process.wait(15)
    exited = time.monotonic() - t0
    record.measure("detect_s", run.at(at) - t0, DETECT_BOUND)
    record.measure("exit_s", exited, 3.0)
    assert fatal.get("close_code") == code, fatal
    assert exit_code == 78, f"the watchdog must exit 78 after a permanent worker error, got {exit_code}"
    run.assert_not_respawned()
    assert run.at(at) - t0 <= DETECT_BOUND and exited <= 3.0
    run.finish(expect=78)


@fault(
    "platform",
    "op 7 Reconnect (then close 4009), as every 30 minutes",
    "reconnect ≤ retry cap + 2.5 s, resumed",
)
def test_op7_reconnect(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    run = supervise(sim)
    result = outage(
        run, sim,
        inject=lambda: sim.control("/_sim/reconnect", {"close_code": 4009}),
        restore=None,
        detect_events=("gateway.closed",),
    )  # fmt: skip
    assert result.reconnected.get("resumed") is True, result.reconnected
    check(record, timings, result, detect=DETECT_BOUND, recover=timings.retry_max + RECOVER_SLACK)
    run.finish()


@fault("platform", "op 9 Invalid Session on Resume (the session is gone)", "identify ≤ retry cap + 2.5 s")
def test_op9_invalid_session(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    run = supervise(sim)
    result = outage(
        run, sim,
        inject=lambda: sim.close(4009, drop_sessions=True),  # the Resume that follows gets op 9
        restore=None,
        detect_events=("gateway.closed",),
        events=0,
    )  # fmt: skip
    assert result.reconnected.get("resumed") is False, result.reconnected
    check(record, timings, result, detect=DETECT_BOUND, recover=timings.retry_max + 2 * RECOVER_SLACK)
    run.finish()


def _force_new_token(sim: SimulatorProcess) -> None:
    """The worker holds a valid token; revoking it and closing 4004 makes it ask for a new one."""
    sim.control("/_sim/revoke_tokens", {})
    sim.close(4004)


@fault(
    "platform", "token endpoint answers HTTP 500 for 3 s", "failure logged ≤ 1 s; reconnect ≤ 1 attempt after"
)
def test_token_500(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    run = supervise(sim)

    def inject() -> None:
        sim.outage("token_error", 3.0)
        _force_new_token(sim)

    result = outage(
        run, sim, inject=inject, restore=None, detect_events=("auth.token_failed",), events=0, hold_s=0
    )
    assert result.reconnected.get("resumed") is False
    check(record, timings, result, detect=DETECT_BOUND, recover=3.0 + timings.retry_max + RECOVER_SLACK)
    run.finish()


@fault("platform", "token endpoint hangs (accepts, never answers) for 4 s", "failure ≤ connect timeout + 1 s")
def test_token_timeout(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    relay = Relay(("127.0.0.1", sim.port))
    try:
        token_url = f"http://127.0.0.1:{relay.port}/app/getAppAccessToken"
        run = supervise(sim, env={"QQ_TOKEN_URL": token_url})

        def inject() -> None:
            relay.hold(True)
            _force_new_token(sim)

        result = outage(
            run, sim, inject=inject, restore=lambda: relay.hold(False),
            detect_events=("auth.token_failed",), events=0, hold_s=4.0,
        )  # fmt: skip
        check(
            record, timings, result,
            detect=timings.connect_timeout + 1.0, recover=timings.retry_max + timings.connect_timeout + 2.0,
        )  # fmt: skip
        run.finish()
    finally:
        relay.close()


@fault("platform", "wrong credentials (token endpoint: 200 + code 100016)", "exit 78 ≤ 3 s, no respawn")
def test_wrong_credentials(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    t0 = time.monotonic()
    run = supervise(sim, env={"QQ_APP_SECRET": "definitely-not-the-secret-0000"})
    at, fatal = run.wait_for("worker.fatal", 15)
    code = run.process.wait(15)
    record.measure("exit_s", time.monotonic() - t0, 3.0 + 2.0)  # + interpreter start-up
    assert code == 78, f"wrong credentials must end the watchdog with 78, got {code}"
    run.assert_not_respawned()
    assert "definitely-not-the-secret-0000" not in run.output()
    del at, fatal
    run.finish(expect=78)


SILENT_BOUND = "attempt fails ≤ connect timeout + 1 s"


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(
            "no_hello",
            marks=fault("platform", "gateway accepts but never sends Hello, for 4 s", SILENT_BOUND),
        ),
        pytest.param(
            "no_ready",
            marks=fault("platform", "gateway never answers Identify or Resume, for 4 s", SILENT_BOUND),
        ),
    ],
)  # fmt: skip
def test_gateway_silent(
    mode: str,
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
) -> None:
    run = supervise(sim)

    def inject() -> None:
        sim.outage(mode, 4.0)
        sim.close(4009)

    result = outage(run, sim, inject=inject, restore=None, detect_events=("reconnect.failed",))
    check(
        record, timings, result,
        detect=timings.connect_timeout + 1.0, recover=4.0 + timings.retry_max + timings.connect_timeout + 2.0,
    )  # fmt: skip
    run.finish()


MALFORMED: list[str | bytes] = [
    "this is not JSON {",
    "[1, 2, 3]",
    '{"op": "zero", "d": null}',
    '{"op": 0, "s": "not-a-number", "t": "C2C_MESSAGE_CREATE", "d": {}}',
    b"\x00\x01binary",
]


@fault(
    "platform",
    "malformed frames (not JSON, not an object, bad op, bad seq, binary)",
    "ignored and logged, no reconnect",
)
def test_malformed_frames(
    supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    gateway = FakeGateway(MALFORMED, timings.gateway_heartbeat_ms)
    try:
        run = supervise(gateway)
        run.connected()
        t0 = time.monotonic()
        missing = run.wait_seqs([2], 10)
        assert not missing, "the well-formed event after the bad frames was not delivered"
        rejected = run.process.records("gateway.frame_rejected")
        record.measure("frames_rejected", float(len(rejected)), None, unit="")
        assert len(rejected) >= 3, f"malformed frames must be logged: {rejected}"
        assert gateway.connections == 1, "a malformed frame must not cost the connection"
        record.measure("delivered_after_s", time.monotonic() - t0, 10)
        run.finish()
    finally:
        gateway.close()


@fault(
    "platform",
    "oversized frame (1 MiB + 1) from the gateway",
    "dropped with 1009, resumed ≤ retry cap + 2.5 s",
)
def test_oversized_frame(
    supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    big = '{"op": 0, "s": 2, "t": "C2C_MESSAGE_CREATE", "d": {"content": "' + "x" * (1 << 20) + '"}}'
    gateway = FakeGateway([big], timings.gateway_heartbeat_ms)
    try:
        run = supervise(gateway)
        first, _ = run.connected()
        at, rejected = run.wait_for("gateway.frame_rejected", 10)
        back, reconnected = run.connected(10, after=at)
        record.measure("recover_s", run.at(back) - run.at(at), timings.retry_max + RECOVER_SLACK)
        assert reconnected.get("resumed") is True, reconnected
        assert run.at(back) - run.at(at) <= timings.retry_max + RECOVER_SLACK
        assert "x" * 1000 not in run.output(), "the oversized payload must not be echoed into the logs"
        del first, rejected
        run.finish()
    finally:
        gateway.close()
