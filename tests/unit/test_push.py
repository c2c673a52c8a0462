"""The dead man's switch's decisions: the URL it requests, when, and how failures are reported."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from qqworker.contract.settings import ConfigError
from watchdog.push import FailureReports, Outcome, PushSchedule, PushSender, check_push_url, push_request_url


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_uptime_kuma_urls_get_status_msg_and_ping() -> None:
    url = push_request_url("https://kuma.example/api/push/AbC123", ping_ms=41.6, msg="connected")
    assert url.startswith("https://kuma.example/api/push/AbC123?")
    assert query(url) == {"status": ["up"], "msg": ["connected"], "ping": ["42"]}


def test_a_given_query_is_kept_and_its_msg_and_ping_replaced() -> None:
    url = push_request_url("http://127.0.0.1:3001/x?status=up&msg=old&ping=&extra=1", ping_ms=None, msg="ok")
    assert query(url) == {"status": ["up"], "msg": ["ok"], "extra": ["1"]}


def test_other_urls_are_requested_as_given() -> None:
    plain = "https://hc-ping.com/0b1c2d3e-aaaa-bbbb-cccc-123456789abc"
    assert push_request_url(plain, ping_ms=5, msg="x") == plain


@pytest.mark.parametrize("bad", ["ftp://x/y", "kuma.example/api/push/x", "https:///nohost"])
def test_bad_push_urls_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="push_url"):
        check_push_url(bad)


def test_due_every_interval_only_while_ready() -> None:
    s = PushSchedule(20.0)
    assert not s.due(0.0, ready=False) and s.next_wake() is None
    assert s.due(1.0, ready=True)  # becoming ready pushes at once
    assert not s.due(20.9, ready=True)
    assert s.due(21.0, ready=True)
    assert not s.due(30.0, ready=False)  # an outage: nothing, and no schedule
    assert s.next_wake() is None
    assert s.due(35.0, ready=True) and s.next_wake() == 55.0


def test_failures_are_reported_at_most_once_a_minute_with_their_count() -> None:
    r = FailureReports(every=60.0)
    assert r.record(0.0, Outcome(False, "refused")) == ("refused", 1)
    assert r.record(10.0, Outcome(False, "refused")) is None
    assert r.record(20.0, Outcome(True)) is None
    assert r.record(59.0, Outcome(False, "timed out")) is None
    assert r.record(60.0, Outcome(False, "timed out")) == ("timed out", 3)
    assert (r.failed, r.succeeded) == (4, 1)


def test_the_sender_never_waits_for_a_hanging_request() -> None:
    release = threading.Event()
    calls: list[str] = []

    def hang(url: str, timeout: float) -> None:
        calls.append(url)
        release.wait(5)
        raise TimeoutError("timed out")

    sender = PushSender(timeout=0.5, opener=hang)
    started = time.monotonic()
    assert sender.push("http://a/1")
    assert not sender.push("http://a/2")  # still busy: skipped, counted
    assert time.monotonic() - started < 0.2
    release.set()
    deadline = time.monotonic() + 5
    while len(sender.outcomes) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    outcomes = sender.take_outcomes()
    assert [o.ok for o in outcomes] == [False, False]
    assert "has not finished" in (outcomes[0].error or "")
    assert outcomes[1].error == "TimeoutError: timed out"
    assert calls == ["http://a/1"]
    assert sender.push("http://a/3")  # free again


def test_the_timeout_is_capped() -> None:
    assert PushSender(timeout=60).timeout == 10.0
