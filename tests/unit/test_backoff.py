import random

import pytest

from qqworker.backoff import Backoff


@pytest.mark.parametrize("seed", range(20))
def test_delays_stay_within_half_step_and_cap(seed: int) -> None:
    rng = random.Random(seed)
    backoff = Backoff(initial=2, cap=60, rand=rng.random)
    for n in range(1, 200):
        step = min(60, 2 * 2 ** (n - 1))
        delay = backoff.next_delay()
        assert step / 2 <= delay <= step <= 60


def test_extremes_of_the_jitter() -> None:
    low = Backoff(initial=1, cap=8, rand=lambda: 0.0)
    high = Backoff(initial=1, cap=8, rand=lambda: 0.999999)
    assert [low.next_delay() for _ in range(5)] == [0.5, 1, 2, 4, 4]
    assert [round(high.next_delay(), 3) for _ in range(5)] == [1, 2, 4, 8, 8]


def test_floor_wins_over_jitter_and_reset_restarts_the_schedule() -> None:
    backoff = Backoff(initial=1, cap=30, rand=lambda: 0.0)
    assert backoff.next_delay(floor=30) == 30
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() == 0.5


def test_a_very_long_outage_does_not_overflow() -> None:
    backoff = Backoff(initial=0.1, cap=5, rand=lambda: 1.0)
    backoff.failures = 10_000
    assert backoff.next_delay() == 5


@pytest.mark.parametrize(("initial", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_nonsense_bounds_are_refused(initial: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial=initial, cap=cap)
