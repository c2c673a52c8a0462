"""Exponential backoff with jitter, as a pure schedule: no sleeping here, only delays."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay for retry n (1-based): uniform in [base/2, base] where base = min(cap, initial * 2**(n-1)).

    "Equal jitter": the delay never falls below half its exponential step, so a storm of clients
    spreads out while each one still backs off for real; it never exceeds `cap`.
    """

    initial: float
    cap: float
    rand: Callable[[], float] = field(default=random.random, repr=False)
    failures: int = 0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.cap < self.initial:
            raise ValueError(f"need 0 < initial <= cap, got initial={self.initial} cap={self.cap}")

    def base(self, n: int) -> float:
        # The exponent is clamped so a long outage cannot overflow the float.
        return min(self.cap, self.initial * 2 ** min(max(n - 1, 0), 60))

    def next_delay(self, floor: float = 0.0) -> float:
        """Counts one more failure and returns how long to wait before the next try (>= floor)."""
        self.failures += 1
        base = self.base(self.failures)
        delay = base / 2 + self.rand() * base / 2
        return max(floor, min(delay, self.cap))

    def reset(self) -> None:
        self.failures = 0
