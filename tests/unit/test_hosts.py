"""The host-choice policy: which failures rotate, which do not, in what order, and stickiness."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest

from qqworker.contract.settings import PRODUCTION_APIS, TOKEN_URLS, ConfigError, load_settings
from qqworker.hostprobe import classify
from qqworker.hosts import (
    STICKY_FAILURES,
    Failure,
    FailureKind,
    HostRing,
    Switch,
    prefer,
    prefer_hosts,
    wrong_host_reason,
)

A, B, C = "https://a.example", "https://b.example", "https://c.example"
CREDS = {"QQ_APP_ID": "1", "QQ_APP_SECRET": "s"}


def http(status: int) -> Failure:
    return Failure(FailureKind.HTTP, status=status)


@pytest.mark.parametrize("status", [404, 410, 500, 502, 503, 504, 599])
def test_wrong_host_statuses_rotate(status: int) -> None:
    ring = HostRing("api_base", [A, B])
    assert ring.failed(http(status)) == Switch("api_base", A, B, f"HTTP {status}")
    assert ring.current == B


@pytest.mark.parametrize("status", [200, 204, 400, 401, 403, 405, 429, 600])
def test_other_statuses_do_not_rotate(status: int) -> None:
    ring = HostRing("api_base", [A, B])
    assert ring.failed(http(status)) is None
    assert ring.current == A


@pytest.mark.parametrize(
    "failure",
    [
        Failure(FailureKind.NETWORK),
        Failure(FailureKind.NAME, others_resolve=False),  # no name resolves: the resolver is down
        Failure(FailureKind.HTTP, status=None),
    ],
)
def test_network_down_never_rotates_however_often(failure: Failure) -> None:
    ring = HostRing("api_base", [A, B, C])
    assert all(ring.failed(failure) is None for _ in range(100))
    assert ring.current == A


def test_a_name_gone_while_others_resolve_rotates() -> None:
    ring = HostRing("api_base", [A, B])
    switch = ring.failed(Failure(FailureKind.NAME, others_resolve=True))
    assert switch is not None and switch.to_url == B and "resolve" in switch.reason


def test_a_tls_name_mismatch_rotates() -> None:
    ring = HostRing("token_url", [A, B])
    switch = ring.failed(Failure(FailureKind.TLS_NAME))
    assert switch is not None and (switch.kind, switch.from_url, switch.to_url) == ("token_url", A, B)
    assert "TLS" in switch.reason


def test_rotation_follows_the_order_and_wraps_around() -> None:
    ring = HostRing("api_base", [A, B, C])
    seen = []
    for _ in range(4):
        switch = ring.failed(http(500))
        assert switch is not None
        seen.append((switch.from_url, switch.to_url))
    assert seen == [(A, B), (B, C), (C, A), (A, B)]
    assert ring.others == (C, A)


def test_a_single_url_never_switches() -> None:
    ring = HostRing("api_base", [A])
    assert ring.failed(http(500)) is None and ring.failed(Failure(FailureKind.TLS_NAME)) is None
    assert ring.current == A and ring.others == ()


def test_no_urls_is_refused() -> None:
    with pytest.raises(ValueError):
        HostRing("api_base", [])


def test_a_url_that_worked_is_sticky() -> None:
    ring = HostRing("api_base", [A, B])
    ring.failed(http(500))
    ring.succeeded()  # B worked
    assert ring.proven
    for _ in range(STICKY_FAILURES - 1):
        assert ring.failed(http(500)) is None  # a transient 5xx does not throw B away
    # Network failures in between neither count nor forgive.
    assert ring.failed(Failure(FailureKind.NETWORK)) is None
    assert ring.current == B
    assert ring.failed(http(500)) == Switch("api_base", B, A, "HTTP 500")
    assert not ring.proven


def test_a_success_forgives_the_strikes() -> None:
    ring = HostRing("api_base", [A, B], sticky_failures=2)
    ring.succeeded()
    assert ring.failed(http(503)) is None
    ring.succeeded()
    assert ring.failed(http(503)) is None
    assert ring.current == A
    assert ring.failed(http(503)) is not None


def test_an_unproven_url_is_left_at_the_first_wrong_host_failure() -> None:
    ring = HostRing("api_base", [A, B], sticky_failures=5)
    assert ring.failed(http(404)) is not None


def test_wrong_host_reason_names_the_cause() -> None:
    assert wrong_host_reason(http(410)) == "HTTP 410"
    assert wrong_host_reason(Failure(FailureKind.NETWORK)) is None


def test_prefer_moves_the_working_url_first() -> None:
    assert prefer((A, B, C), C) == (C, A, B)
    assert prefer((A, B, C), A) == (A, B, C)
    assert prefer((A, B), "https://gone.example") == (A, B)  # the configuration changed meanwhile
    assert prefer((A, B), None) == (A, B)


def test_prefer_hosts_hands_the_switch_to_the_next_child() -> None:
    settings = load_settings({}, {**CREDS, "QQ_API_BASE": f"{A},{B}", "QQ_TOKEN_URL": f"{A}/t,{B}/t"})
    moved = prefer_hosts(settings, B, f"{B}/t")
    assert moved.api_bases == (B, A) and moved.token_urls == (f"{B}/t", f"{A}/t")
    assert moved.rest_base == B
    assert prefer_hosts(settings, A, f"{A}/t") is settings


# Settings: lists and the defaults ----------------------------------------------------------


def test_defaults_are_the_2026_lists() -> None:
    settings = load_settings({}, CREDS)
    assert settings.api_bases == PRODUCTION_APIS == ("https://api.bot.qq.com", "https://api.sgroup.qq.com")
    assert settings.rest_base == "https://api.bot.qq.com"
    assert settings.token_urls == TOKEN_URLS
    assert TOKEN_URLS == (
        "https://bots.qq.com/app/getAppAccessToken",
        "https://api.bot.qq.com/app/getAppAccessToken",
    )


def test_one_url_or_a_list_from_every_source() -> None:
    env = {**CREDS, "QQ_API_BASE": " https://x.example/ , http://127.0.0.1:9 ,", "QQ_TOKEN_URL": f"{A}/t"}
    settings = load_settings({}, env)
    assert settings.api_bases == ("https://x.example", "http://127.0.0.1:9")
    assert settings.token_urls == (f"{A}/t",)
    flags = load_settings({"api_base": A}, env)
    assert flags.api_bases == (A,)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"QQ_API_BASE": f"{A},http://api.example.com"}, "api_base"),
        ({"QQ_TOKEN_URL": f"{A}/t,ftp://x/t"}, "token_url"),
        ({"QQ_TOKEN_URL": " , "}, "token_url"),
    ],
)
def test_every_url_of_a_list_is_checked(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_settings({}, {**CREDS, **env})


# The I/O side's classification ------------------------------------------------------------


def test_classify_statuses_and_network_errors() -> None:
    assert classify(RuntimeError("x"), 503) == http(503)
    assert classify(ConnectionRefusedError()) == Failure(FailureKind.NETWORK)
    assert classify(asyncio.TimeoutError()) == Failure(FailureKind.NETWORK)
    assert classify(socket.gaierror(socket.EAI_NONAME, "no name")) == Failure(FailureKind.NAME)
    assert classify(socket.gaierror(socket.EAI_AGAIN, "try again")) == Failure(FailureKind.NETWORK)


def test_classify_tls_errors() -> None:
    mismatch = ssl.SSLCertVerificationError("hostname mismatch")
    mismatch.verify_code = 62
    expired = ssl.SSLCertVerificationError("expired")
    expired.verify_code = 10
    assert classify(mismatch) == Failure(FailureKind.TLS_NAME)
    assert classify(expired) == Failure(FailureKind.NETWORK)
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__ = mismatch
    assert classify(wrapped) == Failure(FailureKind.TLS_NAME)
