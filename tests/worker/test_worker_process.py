"""The real worker process (`python -m qqworker`) against the simulator process, over loopback sockets.

Timings are shortened through flags: retries 0.05–0.5 s, a 1 s attempt bound, and the simulator's Hello
interval at 200 ms (so a connection whose heartbeats stop is closed by it within 0.4 s, and one whose ACKs
stop is dropped by the worker within 0.6 s). Bounds in assertions are generous: they catch a hang or a
missing line, not a slow machine.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from qqworker.worker import seconds_text
from tests.support import (
    PYTHON,
    ROOT,
    LineProcess,
    RunTimings,
    SimulatorProcess,
    assert_no_secret,
    wait_until,
)

RETRY_INITIAL = 0.05
RETRY_MAX = 0.5
CONNECT_TIMEOUT = 1.0
FAST = RunTimings.only(retry_initial=RETRY_INITIAL, retry_max=RETRY_MAX, connect_timeout=CONNECT_TIMEOUT)
GRACE = 1.0  # generous: the rule is about seconds of silence, not scheduling noise
T = 15  # timeout of a single wait
OUTAGES = ("refuse", "blackhole", "no_ack", "token_error")

SIMULATOR_FLAGS = ("--heartbeat-interval-ms", "200")


Start = Callable[..., LineProcess]


@pytest.fixture
def worker(sim: SimulatorProcess) -> Iterator[Start]:
    started: list[LineProcess] = []

    def start(*flags: str, handler: str = "log", **env: str) -> LineProcess:
        environ = sim.env(QQ_HANDLER=handler, **env)
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
        proc = LineProcess([PYTHON, "-m", "qqworker", *FAST.worker_flags(), *flags], env=environ)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop(10)
    for mode in OUTAGES:  # end what a test left running, so that the token endpoint answers
        sim.control("/_sim/outage", {"mode": mode, "seconds": 0})
    for proc in started:  # one JSON object per line, and no unexpected error from a library
        for line in proc.lines:
            assert line.record is not None, f"not a JSON line: {line.text}"
            assert not (line.event == "log" and line.record["level"] in ("ERROR", "CRITICAL")), line.text
    # No output of any worker ever holds the secret or the live access token.
    secrets = [str(sim.info["app_secret"]), current_token(sim)]
    assert_no_secret([proc.output() for proc in started], secrets)


def current_token(sim: SimulatorProcess) -> str:
    """The token the platform hands out now (the same one the worker holds, until its last minute)."""
    body = json.dumps({"appId": sim.info["app_id"], "clientSecret": sim.info["app_secret"]}).encode()
    request = urllib.request.Request(
        sim.info["token_url"], data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["access_token"])


def connected(proc: LineProcess, after: int = 0, **where: Any) -> tuple[int, dict[str, Any]]:
    return proc.wait_for(
        "gateway.connected", T, lambda r: all(r.get(k) == v for k, v in where.items()), after=after
    )


def events_between(proc: LineProcess, start: int, end: int | None = None) -> list[str]:
    return [ln.event or "" for ln in proc.lines[start:end]]


def assert_never_silent(proc: LineProcess, start: int, end: int) -> float:
    """The contract's rule, precisely: after `reconnect.scheduled` the next line comes within its delay
    plus the grace; after any other line within one attempt's bound plus the grace. Returns the
    longest gap seen."""
    lines = proc.lines[start:end]
    longest = 0.0
    for before, after in itertools.pairwise(lines):
        gap = after.received_at - before.received_at
        longest = max(longest, gap)
        record = before.record or {}
        allowed = (
            float(record["delay_s"]) if before.event == "reconnect.scheduled" else CONNECT_TIMEOUT
        ) + GRACE
        assert gap <= allowed, f"{gap:.2f}s of silence after {before.text}"
    return longest


# Connect and deliver ------------------------------------------------------------------------


def test_connects_and_delivers_every_event(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker()
    _, started = proc.wait_for("worker.started", T)
    assert started["app_id"] == sim.info["app_id"] and isinstance(started["intents"], int)
    index, ready = connected(proc, resumed=False)
    order = events_between(proc, 0, index + 1)
    assert order.index("gateway.connecting") < order.index("auth.token_fetched") < index
    assert ready["attempt"] == 1 and ready["session_id"]
    sent = sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "count": 3})
    wait_until(lambda: len(proc.records("dispatch")) >= 3, T, "three dispatch lines")
    dispatches = proc.records("dispatch")
    assert [d["event_type"] for d in dispatches] == ["C2C_MESSAGE_CREATE"] * 3
    first, last = sent["seq"][ready["session_id"]]  # the simulator answers the range it used
    assert [d["seq"] for d in dispatches] == list(range(first, last + 1))
    assert all(d["event_id"].startswith("C2C_MESSAGE_CREATE:") for d in dispatches)


def test_echo_replies_passively_to_c2c_and_group_messages(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker(handler="echo")
    connected(proc)
    c2c = sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "d": {"content": "ping c2c"}})
    group = sim.control("/_sim/events", {"type": "GROUP_AT_MESSAGE_CREATE", "d": {"content": " ping group"}})
    sim.control("/_sim/events", {"type": "GUILD_CREATE", "d": {"id": "G-1", "name": "a guild"}})
    replies = wait_until(
        lambda: len(sim.state()["replies"]) >= 2 and sim.state()["replies"], T, "two replies"
    )
    by_kind = {r["kind"]: r for r in replies}
    assert set(by_kind) == {"c2c", "group"}
    assert (
        by_kind["c2c"]["body"]["msg_id"] == c2c["ids"][0] and by_kind["c2c"]["body"]["content"] == "ping c2c"
    )
    assert by_kind["group"]["body"]["msg_id"] == group["ids"][0]
    assert all(r["body"]["msg_seq"] == 1 and r["status"] == 200 for r in replies)
    assert not proc.records("reply.failed")


def test_a_sync_handler_replies_with_distinct_msg_seq(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker(handler="tests.handlers:echo_sync")
    connected(proc)
    sent = sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "d": {"content": "hi"}})
    replies = wait_until(
        lambda: len(sim.state()["replies"]) >= 2 and sim.state()["replies"], T, "two replies"
    )
    assert [r["body"]["msg_seq"] for r in replies] == [1, 2]
    assert {r["body"]["msg_id"] for r in replies} == {sent["ids"][0]}
    assert all(r["status"] == 200 for r in replies)
    assert not proc.records("handler.error")


# Close codes, op 7 and op 9 ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "action", "resumed"),
    [(4009, "resume", True), (1000, "resume", True), (4006, "identify", False), (4900, "identify", False)],
)
def test_each_close_class_reconnects_as_its_rule_says(
    sim: SimulatorProcess, worker: Start, code: int, action: str, resumed: bool
) -> None:
    proc = worker()
    _, first = connected(proc)
    mark = proc.mark()
    sim.control("/_sim/close", {"code": code})
    index, closed = proc.wait_for("gateway.closed", T, after=mark)
    assert (closed["close_code"], closed["action"]) == (code, action)
    _, again = connected(proc, after=index)
    assert again["resumed"] is resumed
    assert (again["session_id"] == first["session_id"]) is resumed


def test_rate_limited_close_backs_off_at_least_the_cap(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker()
    connected(proc)
    mark = proc.mark()
    sim.control("/_sim/close", {"code": 4008})
    index, closed = proc.wait_for("gateway.closed", T, after=mark)
    assert closed["action"] == "backoff"
    _, scheduled = proc.wait_for("reconnect.scheduled", T, after=index)
    assert scheduled["delay_s"] >= RETRY_MAX
    _, again = connected(proc, after=index)
    assert again["resumed"] is True


def test_a_fatal_close_exits_78(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker()
    connected(proc)
    sim.control("/_sim/close", {"code": 4915})
    assert proc.wait(T) == 78
    (fatal,) = proc.records("worker.fatal")
    assert fatal["close_code"] == 4915
    assert proc.records("gateway.closed")[-1]["action"] == "fatal"
    assert not proc.records("reconnect.scheduled")


def test_op7_reconnect_resumes(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker()
    _, first = connected(proc)
    mark = proc.mark()
    assert sim.control("/_sim/reconnect", {"close_code": 4009})["reconnected"] == 1
    index, closed = proc.wait_for("gateway.closed", T, after=mark)
    assert closed["action"] == "resume"
    _, again = connected(proc, after=index, resumed=True)
    assert again["session_id"] == first["session_id"]


def test_op9_invalid_session_identifies_anew(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker()
    _, first = connected(proc)
    mark = proc.mark()
    # The platform forgets the session: the Resume that follows gets op 9 (d: false) and a close.
    sim.control("/_sim/close", {"code": 4009, "drop_sessions": True})
    _, again = connected(proc, after=mark, resumed=False)
    assert again["session_id"] != first["session_id"]
    closes = proc.records("gateway.closed")
    assert [c["action"] for c in closes] == ["resume", "identify"]


def test_events_sent_while_away_are_replayed_on_resume(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker()
    _, first = connected(proc)
    sim.control("/_sim/outage", {"mode": "refuse", "seconds": 1.0})  # drops the connection, refuses
    proc.wait_for("reconnect.failed", T)
    sim.control("/_sim/events", {"type": "GROUP_AT_MESSAGE_CREATE", "count": 2})
    connected(proc, after=0, resumed=True, session_id=first["session_id"])
    wait_until(lambda: len(proc.records("dispatch")) >= 2, T, "the replayed events")


def test_a_stale_token_is_refreshed(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker()
    connected(proc)
    fetched = len(proc.records("auth.token_fetched"))
    sim.control("/_sim/revoke_tokens", {})
    mark = proc.mark()
    sim.control("/_sim/close", {"code": 4009})
    _, again = connected(proc, after=mark)
    codes = [c["close_code"] for c in proc.records("gateway.closed")]
    assert 4004 in codes
    assert len(proc.records("auth.token_fetched")) > fetched
    assert again["session_id"]


# Outages -------------------------------------------------------------------------------------


def test_refused_gateway_retries_with_lines_before_every_sleep(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker()
    connected(proc)
    start = proc.mark()
    sim.control("/_sim/outage", {"mode": "refuse", "seconds": 2.0})
    end, _ = connected(proc, after=start)
    failed = [
        r for r in proc.records("reconnect.failed") if "Refused" in r["error"] or "Connect" in r["error"]
    ]
    assert len(failed) >= 2
    scheduled = proc.records("reconnect.scheduled")
    assert all(RETRY_INITIAL / 2 <= s["delay_s"] <= RETRY_MAX for s in scheduled)
    assert all(
        s["message"].startswith(f"Reconnecting in {seconds_text(s['delay_s'])} (attempt ") for s in scheduled
    )
    assert all(s["max_attempts"] == 100 for s in scheduled)
    # Attempts are counted up while failing, and a line precedes every attempt.
    attempts = [r["attempt"] for r in proc.records("gateway.connecting")][1:]
    assert attempts == sorted(attempts) and attempts[-1] >= 3
    longest = assert_never_silent(proc, start, end + 1)
    assert longest <= RETRY_MAX + GRACE


def test_black_holed_gateway_times_out_each_attempt(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker()
    connected(proc)
    start = proc.mark()
    sim.control("/_sim/outage", {"mode": "blackhole", "seconds": 3.0})
    # The live link goes silent: its heartbeats go unacknowledged and it is dropped.
    proc.wait_for("gateway.ack_timeout", T, after=start)
    proc.wait_for("reconnect.failed", T, after=start, where=lambda r: "timed out" in r["error"])
    end, _ = connected(proc, after=start)
    assert_never_silent(proc, start, end + 1)


def test_unacknowledged_heartbeats_drop_the_link_and_resume(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker()
    _, first = connected(proc)
    start = proc.mark()
    sim.control("/_sim/outage", {"mode": "no_ack", "seconds": 0.5})
    index, timeout = proc.wait_for("gateway.ack_timeout", T, after=start)
    assert timeout["missed"] >= 2
    _, closed = proc.wait_for("gateway.closed", T, after=index)
    assert closed["action"] == "resume"
    _, again = connected(proc, after=index, resumed=True)
    assert again["session_id"] == first["session_id"]


def test_token_endpoint_failures_are_retried(sim: SimulatorProcess, worker: Start) -> None:
    sim.control("/_sim/outage", {"mode": "token_error", "seconds": 1.5})
    proc = worker()
    _, failed = proc.wait_for("auth.token_failed", T)
    assert "HTTP 500" in failed["error"] and failed["permanent"] is False
    proc.wait_for("reconnect.failed", T, where=lambda r: r["error"].startswith("token"))
    index, _ = connected(proc)
    assert_never_silent(proc, 0, index + 1)


def test_a_wrong_secret_exits_78(sim: SimulatorProcess, worker: Start) -> None:
    wrong = "definitely-not-the-secret-42"
    proc = worker(QQ_APP_SECRET=wrong)
    assert proc.wait(T) == 78
    (failed,) = proc.records("auth.token_failed")
    assert "100016" in failed["error"] and failed["permanent"] is True
    (fatal,) = proc.records("worker.fatal")
    assert "100016" in fatal["reason"]
    assert wrong not in proc.output()


def test_max_attempts_exits_75(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker("--max-attempts", "3")
    connected(proc)
    sim.control("/_sim/outage", {"mode": "refuse", "seconds": 30})
    try:
        assert proc.wait(T) == 75
    finally:
        sim.control("/_sim/outage", {"mode": "refuse", "seconds": 0})
    (gave_up,) = proc.records("reconnect.gave_up")
    assert gave_up["attempts"] == 3
    assert [r["attempt"] for r in proc.records("reconnect.failed")] == [1, 2, 3]
    assert [r["attempt"] for r in proc.records("reconnect.scheduled")] == [1, 2, 3]


@pytest.mark.parametrize("sim", [["--allowed-intents", "1"]], indirect=True)
def test_intents_the_bot_may_not_use_end_in_78(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker()
    assert proc.wait(T) == 78
    (fatal,) = proc.records("worker.fatal")
    assert "intents" in fatal["reason"]
    assert len(proc.records("gateway.connecting")) >= 5  # and spread over 3 retry caps


def test_bad_configuration_is_one_fatal_line_and_78(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker("--retry-initial", "fast")
    assert proc.wait(T) == 78
    (line,) = proc.records()
    assert line["event"] == "worker.fatal" and "retry_initial" in line["reason"]


# Handlers ------------------------------------------------------------------------------------


def test_a_raising_handler_is_logged_and_the_worker_goes_on(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker(handler="tests.handlers:explode")
    connected(proc)
    sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "count": 2})
    wait_until(lambda: len(proc.records("handler.error")) >= 2, T, "two handler.error lines")
    errors = proc.records("handler.error")
    assert {e["event_type"] for e in errors} == {"C2C_MESSAGE_CREATE"} and "exploded" in errors[0]["error"]
    sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "count": 1})
    wait_until(lambda: len(proc.records("handler.error")) >= 3, T, "a third handler.error line")
    assert len(proc.records("gateway.connected")) == 1 and not proc.records("gateway.closed")


def test_a_blocking_handler_does_not_stop_heartbeats(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker("--handler-concurrency", "2", "--handler-queue", "2", handler="tests.handlers:block")
    connected(proc)
    before = sim.state()["counters"].get("heartbeats", 0)
    sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "count": 10})  # 2 run, 2 wait, 6 dropped
    time.sleep(2.0)  # ten of the simulator's 200 ms intervals; it closes a silent link after 400 ms
    heartbeats = sim.state()["counters"].get("heartbeats", 0) - before
    assert heartbeats >= 4, f"only {heartbeats} heartbeats in 2 s while handlers blocked"
    assert not proc.records("gateway.closed") and not proc.records("gateway.ack_timeout")
    backlog = proc.records("handler.backlog")
    assert backlog and backlog[0]["dropped"] >= 1


# Stopping ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_worker_cleanly(sim: SimulatorProcess, worker: Start, sig: int) -> None:
    proc = worker()
    connected(proc)
    proc.signal(sig)
    assert proc.wait(T) == 0
    last = proc.records()[-1]
    assert last["event"] == "worker.stopped" and signal.Signals(sig).name in last["reason"]
    wait_until(lambda: not sim.state()["connections"], T, "the simulator to see the connection closed")


def test_sigterm_while_waiting_to_retry_exits_0_at_once(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker("--retry-initial", "30", "--retry-max", "60")
    connected(proc)
    sim.control("/_sim/outage", {"mode": "refuse", "seconds": 5})
    proc.wait_for("reconnect.scheduled", T)
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait(T) == 0
    assert time.monotonic() - started < 5, "the stop does not wait out the retry delay"
    assert proc.records()[-1]["event"] == "worker.stopped"


def test_a_stuck_thread_does_not_hold_up_the_exit(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker(handler="tests.handlers:leave_a_stuck_thread")
    connected(proc)
    sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "count": 1})
    wait_until(lambda: sim.state()["counters"].get("dispatches", 0) >= 1, T, "the event to go out")
    time.sleep(0.2)
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait(T) == 0
    assert time.monotonic() - started < 5
    assert proc.records()[-1]["event"] == "worker.stopped"


def test_a_one_argument_handler_gets_every_event(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker(handler="tests.handlers:event_only")
    connected(proc)
    sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "count": 3})
    wait_until(lambda: len(proc.records("dispatch")) >= 3, T, "three calls of f(event)")
    assert not proc.records("handler.error")


def test_a_handler_with_another_signature_is_refused_at_start(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker(handler="tests.handlers:three_args")
    assert proc.wait(T) == 78
    (fatal,) = proc.records("worker.fatal")
    assert "f(event, reply)" in fatal["reason"] and "three_args" in fatal["reason"]
    assert not proc.records("gateway.connecting"), "refused before any connection"


def test_a_second_signal_ends_the_wait_for_queued_handlers(sim: SimulatorProcess, worker: Start) -> None:
    proc = worker("--handler-concurrency", "1", handler="tests.handlers:block")  # 3 s each
    connected(proc)
    sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "count": 5})
    time.sleep(0.3)
    started = time.monotonic()
    proc.signal(signal.SIGTERM)  # waits for the queue (up to the stop timeout less 1 s: 9 s)...
    time.sleep(0.5)
    proc.signal(signal.SIGINT)  # ...until asked again
    assert proc.wait(T) == 0
    assert time.monotonic() - started < 2.5, "the second signal must end the wait at once"
    (stopped,) = proc.records("worker.stopped")
    assert stopped["unhandled"] == 5 and stopped["unhandled_last_seq"] - stopped["unhandled_first_seq"] == 4
