"""Local gateway tokens (qqworker.localtokens): stateless, so a respawned worker accepts them."""

from __future__ import annotations

from qqworker.localtokens import RENEW_WINDOW_S, LocalTokens, SessionIds


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


def test_session_ids_of_an_earlier_worker_are_told_from_foreign_ones() -> None:
    earlier, this = SessionIds("s"), SessionIds("s")
    old = earlier.new()
    assert earlier.known(old) and not this.known(old)
    assert this.signed(old)  # a worker of the same bot issued it
    assert not SessionIds("other").signed(old)
    for bad in ("", "x", old[:-1] + ("0" if old[-1] != "0" else "1"), "-" + old.split("-")[1]):
        assert not this.signed(bad), bad
    this.remember(old)
    assert this.known(old)
    kept = SessionIds("s", kept=2)
    first = kept.new()
    kept.new()
    kept.new()
    assert not kept.known(first) and kept.signed(first)
