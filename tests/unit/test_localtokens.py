"""Local gateway tokens (qqworker.localtokens): stateless, so a respawned worker accepts them."""

from __future__ import annotations

from qqworker.localtokens import RENEW_WINDOW_S, LocalTokens


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_another_instance_with_the_same_secret_accepts_the_token() -> None:
    clock = Clock()
    token, expires_in = LocalTokens("s3cret", clock=clock).issue()
    assert expires_in == 7200
    assert LocalTokens("s3cret", clock=clock).is_valid(token)  # the next worker process
    assert not LocalTokens("other", clock=clock).is_valid(token)
    assert "s3cret" not in token


def test_the_same_token_until_its_last_minute_then_a_new_one() -> None:
    clock = Clock()
    tokens = LocalTokens("s", ttl_s=600, clock=clock)
    first, _ = tokens.issue()
    clock.now += 100
    assert tokens.issue() == (first, 500)
    clock.now += 600 - 100 - RENEW_WINDOW_S + 1
    second, ttl = tokens.issue()
    assert second != first and ttl == 600
    assert tokens.is_valid(first)  # the old one stays valid until it runs out
    clock.now += RENEW_WINDOW_S
    assert not tokens.is_valid(first)
    assert tokens.is_valid(second)


def test_forged_and_malformed_tokens_are_refused() -> None:
    clock = Clock()
    tokens = LocalTokens("s", clock=clock)
    token, _ = tokens.issue()
    expiry, _, mac = token.partition(".")
    far = int(expiry) + 10_000_000
    for bad in ("", None, "x", "123", f"{expiry}.", f"{far}.{mac}", f"{expiry}.{mac[:-1]}A", f"-1.{mac}"):
        assert not tokens.is_valid(bad), bad
