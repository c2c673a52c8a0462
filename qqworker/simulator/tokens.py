"""App access tokens with the platform's lifetime rules.

Asking again returns the same token with its remaining lifetime; only in its last 60 s is a new one issued,
and the old one stays valid until it runs out.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

__all__ = ["RENEW_WINDOW_S", "TokenStore"]

RENEW_WINDOW_S = 60


class TokenStore:
    """The app access tokens issued so far and when each runs out (clock-injected)."""

    def __init__(self, ttl_s: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._current: str | None = None
        self.issued = 0

    def issue(self) -> tuple[str, int]:
        """The token to hand out now and its remaining lifetime in whole seconds."""
        now = self._clock()
        self._purge(now)
        current = self._current
        if current is not None and current in self._expiry:
            remaining = self._expiry[current] - now
            if remaining > RENEW_WINDOW_S:
                return current, int(remaining)
        token = secrets.token_urlsafe(36)
        self._expiry[token] = now + self._ttl_s
        self._current = token
        self.issued += 1
        return token, self._ttl_s

    def is_valid(self, token: str | None) -> bool:
        if not token:
            return False
        expiry = self._expiry.get(token)
        return expiry is not None and expiry > self._clock()

    def revoke_all(self) -> int:
        count = len(self._expiry)
        self._expiry.clear()
        self._current = None
        return count

    def _purge(self, now: float) -> None:
        for token in [t for t, expiry in self._expiry.items() if expiry <= now]:
            del self._expiry[token]
