import pytest

from qqworker.backoff import Backoff
from qqworker.closecodes import CloseAction, close_rule
from qqworker.contract.exitcodes import ExitCode
from qqworker.protocol import Disconnect
from qqworker.reconnect import (
    IDENTIFY_REJECTION_LIMIT,
    IDENTIFY_REJECTION_SPAN_CAPS,
    STABLE_AFTER_S,
    ReconnectAction,
    ReconnectPolicy,
)


def policy(max_attempts: int = 5, initial: float = 1, cap: float = 8) -> ReconnectPolicy:
    return ReconnectPolicy(Backoff(initial, cap, rand=lambda: 1.0), max_attempts)


def closed(code: int | None, *, before_ready: bool = False) -> Disconnect:
    return Disconnect.from_rule(close_rule(code), "", before_ready=before_ready)


def test_failed_attempts_back_off_then_give_up_with_75() -> None:
    p = policy(max_attempts=4)
    delays = []
    for n in range(1, 5):
        assert p.start_attempt() == n
        decision = p.attempt_failed("network unreachable")
        if n < 4:
            assert decision.verdict is ReconnectAction.RETRY and decision.attempt == n + 1
            delays.append(decision.delay_s)
    assert delays == [1, 2, 4]
    assert decision.verdict is ReconnectAction.GIVE_UP and decision.exit_code is ExitCode.GAVE_UP
    assert decision.attempt == 4


def test_zero_max_attempts_never_gives_up() -> None:
    p = policy(max_attempts=0)
    for _ in range(10_000):
        p.start_attempt()
        decision = p.attempt_failed("refused")
        assert decision.verdict is ReconnectAction.RETRY and decision.delay_s <= 8


def test_the_counter_resets_only_once_a_session_is_established() -> None:
    p = policy(max_attempts=3)
    p.start_attempt()
    p.attempt_failed("x")
    p.start_attempt()
    p.established(now=100)
    assert p.attempt == 0
    decision = p.connection_lost(closed(1006), now=200)
    assert decision.attempt == 1


def test_permanent_failure_is_fatal_with_78() -> None:
    p = policy()
    p.start_attempt()
    decision = p.attempt_failed("invalid appid or secret", permanent=True)
    assert decision.verdict is ReconnectAction.FATAL and decision.exit_code is ExitCode.CONFIG


@pytest.mark.parametrize("code", [4001, 4002, 4010, 4011, 4012, 4013, 4014, 4914, 4915])
def test_fatal_close_codes_stop_for_good(code: int) -> None:
    p = policy()
    p.start_attempt()
    p.established(now=0)
    assert p.connection_lost(closed(code), now=1000).verdict is ReconnectAction.FATAL


def test_a_stable_session_resumes_at_once_on_4009_or_a_drop() -> None:
    p = policy()
    for code in (4009, 1006, None):
        p.start_attempt()
        p.established(now=0)
        decision = p.connection_lost(closed(code), now=STABLE_AFTER_S + 1)
        assert decision.verdict is ReconnectAction.RETRY and decision.delay_s == 0


def test_a_flapping_session_backs_off_instead_of_spinning() -> None:
    p = policy(max_attempts=0)
    delays = []
    for _ in range(5):
        p.start_attempt()
        p.established(now=0)
        delays.append(p.connection_lost(closed(1006), now=1).delay_s)
    assert delays == [1, 2, 4, 8, 8]


def test_4008_waits_at_least_the_cap() -> None:
    p = policy(cap=30)
    p.start_attempt()
    p.established(now=0)
    decision = p.connection_lost(closed(4008), now=1000)
    assert decision.verdict is ReconnectAction.RETRY and decision.delay_s == 30


def test_4004_refreshes_the_token_once_then_is_fatal() -> None:
    p = policy()
    p.start_attempt()
    first = p.connection_lost(closed(4004, before_ready=True), now=1)
    assert first.verdict is ReconnectAction.RETRY and first.refresh_token
    p.start_attempt()
    assert p.connection_lost(closed(4004, before_ready=True), now=2).verdict is ReconnectAction.FATAL


def test_repeated_identify_rejections_over_minutes_become_fatal() -> None:
    p = policy(max_attempts=0)  # cap 8 s: the rejections must span 24 s
    rejected = Disconnect(CloseAction.IDENTIFY, "op 9", identify_rejected=True)
    now = 0.0
    for _ in range(IDENTIFY_REJECTION_LIMIT - 1):
        p.start_attempt()
        decision = p.connection_lost(rejected, now=now)
        assert decision.verdict is ReconnectAction.RETRY and decision.delay_s > 0  # with backoff
        now += decision.delay_s
    assert now < IDENTIFY_REJECTION_SPAN_CAPS * 8
    while now < IDENTIFY_REJECTION_SPAN_CAPS * 8:  # five in a few seconds are not enough
        p.start_attempt()
        decision = p.connection_lost(rejected, now=now)
        assert decision.verdict is ReconnectAction.RETRY
        now += decision.delay_s
    p.start_attempt()
    decision = p.connection_lost(rejected, now=now)
    assert decision.verdict is ReconnectAction.FATAL and "intents" in decision.reason


def test_five_identify_rejections_in_six_seconds_are_a_hiccup() -> None:
    p = ReconnectPolicy(Backoff(2, 60, rand=lambda: 1.0), 0)
    rejected = Disconnect(CloseAction.IDENTIFY, "op 9", identify_rejected=True)
    for n in range(20):
        p.start_attempt()
        assert p.connection_lost(rejected, now=n * 0.3).verdict is ReconnectAction.RETRY


@pytest.mark.parametrize("code", [*range(4900, 4914), 4000, 4006, 4007, 4999, 1011, None])
def test_transient_closes_before_ready_are_never_fatal(code: int | None) -> None:
    p = policy(max_attempts=0)
    now = 0.0
    for _ in range(200):
        p.start_attempt()
        decision = p.connection_lost(closed(code, before_ready=True), now=now)
        assert decision.verdict is ReconnectAction.RETRY and decision.delay_s > 0
        now += decision.delay_s + 600


@pytest.mark.parametrize("code", [4001, 4002, 4010, 4011, 4012, 4013, 4014, 4914, 4915])
def test_only_the_permanent_codes_are_fatal(code: int) -> None:
    p = policy(max_attempts=0)
    p.start_attempt()
    assert p.connection_lost(closed(code, before_ready=True), now=0).verdict is ReconnectAction.FATAL


def test_a_ready_in_between_forgives_identify_rejections() -> None:
    p = policy(max_attempts=0)
    rejected = Disconnect(CloseAction.IDENTIFY, "op 9", identify_rejected=True)
    for _ in range(3 * IDENTIFY_REJECTION_LIMIT):
        p.start_attempt()
        assert p.connection_lost(rejected, now=1).verdict is ReconnectAction.RETRY
        p.start_attempt()
        p.established(now=1)
        p.connection_lost(closed(4009), now=2)


def test_every_decision_has_a_reason() -> None:
    p = policy()
    p.start_attempt()
    assert p.attempt_failed("timed out").reason == "timed out"
    p.start_attempt()
    assert p.connection_lost(closed(4900, before_ready=True), now=0).reason == "platform internal error"


def test_a_refused_resume_identifies_at_once_without_backoff_or_counting_a_rejection() -> None:
    p = policy(max_attempts=10)
    for _ in range(3):  # earlier failures have grown the backoff
        p.start_attempt()
        p.attempt_failed("refused")
    p.start_attempt()
    refused = Disconnect.from_rule(close_rule(4902), "", before_ready=True, resuming=True)
    decision = p.connection_lost(refused, 10.0)
    assert decision.verdict is ReconnectAction.RETRY and decision.delay_s == 0.0
    assert p.identify_rejections == 0
    # The same code to an Identify backs off (a platform hiccup: never counted as a rejection either).
    p.start_attempt()
    decision = p.connection_lost(closed(4902, before_ready=True), 11.0)
    assert decision.verdict is ReconnectAction.RETRY and decision.delay_s > 0 and p.identify_rejections == 0


def test_a_refused_resume_still_respects_max_attempts() -> None:
    p = policy(max_attempts=1)
    p.start_attempt()
    refused = Disconnect.from_rule(close_rule(4006), "", before_ready=True, resuming=True)
    assert p.connection_lost(refused, 1.0).verdict is ReconnectAction.GIVE_UP
