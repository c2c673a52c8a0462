"""sd_notify without a socket: the address, the message format, the watchdog period, the no-op without
`NOTIFY_SOCKET`, and when a failing send is worth a log line (`FailureRun`). Over real sockets:
tests/ops/test_sdnotify_socket.py."""

from __future__ import annotations

from watchdog.sdnotify import (
    REPORT_EVERY_S,
    FailureRun,
    Notifier,
    format_message,
    socket_address,
    watchdog_period,
)


def test_a_run_of_failures_is_one_line_and_its_end_another_with_the_count() -> None:
    run = FailureRun()
    assert [run.failed(t) for t in (1.0, 2.0, 3.0)] == [True, False, False]
    assert run.sent() == 3
    assert run.sent() is None  # sends that keep working say nothing


def test_sends_that_always_work_are_never_reported() -> None:
    run = FailureRun()
    assert [run.sent() for _ in range(5)] == [None] * 5


def test_a_new_run_soon_after_a_reported_one_is_only_counted_and_its_end_silent() -> None:
    run = FailureRun()
    assert run.failed(0.0) and run.sent() == 1
    assert not run.failed(REPORT_EVERY_S - 1)  # a flapping socket: not a line per flap
    assert not run.failed(REPORT_EVERY_S + 5)  # still the same run
    assert run.sent() is None
    assert run.failures == 0


def test_a_run_that_starts_the_period_after_the_last_reported_one_is_reported_again() -> None:
    run = FailureRun(every=60.0)
    assert run.failed(0.0) and run.sent() == 1
    assert not run.failed(30.0) and run.sent() is None  # within the period: counted, silent
    assert run.failed(60.0)  # measured from the last reported run's start, not from the silent one
    assert not run.failed(61.0)
    assert run.sent() == 2


def test_no_socket_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.ping() and not notifier.ping_if_due()
    assert notifier.next_ping_delay() is None
    assert notifier.sent == 0 and notifier.failed == 0


def test_unset_environment_hides_the_socket_from_children() -> None:
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "1000000", "PATH": "/bin"}
    notifier = Notifier(env, unset_environment=True)
    assert notifier.enabled and notifier.watchdog_period == 1.0
    assert env == {"PATH": "/bin"}


def test_watchdog_period_rules() -> None:
    assert watchdog_period({}) is None
    assert watchdog_period({"WATCHDOG_USEC": "5000000"}) == 5.0
    assert watchdog_period({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "42"}, pid=42) == 5.0
    assert watchdog_period({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "43"}, pid=42) is None
    assert watchdog_period({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_period({"WATCHDOG_USEC": "soon"}) is None


def test_address_and_message_format() -> None:
    assert socket_address("@abc") == b"\0abc"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("") is None and socket_address("vsock:2:1234") is None
    assert format_message({"ready": True, "status": "a\nb", "errno": None}) == b"READY=1\nSTATUS=a b"
