"""Local access tokens for the frameworks behind `QQ_HANDLER=gateway`, valid across worker respawns.

A framework fetches a token once and keeps it for its whole lifetime (NoneBot2: 7200 s), while the
watchdog may replace the worker under it at any moment: a token that only the process that issued it
knows would get the framework 4004 from the next worker, forever. So a token is `<expiry>.<mac>`,
the expiry in wall-clock seconds and the mac an HMAC-SHA256 of it under a key derived from the bot's
secret: any worker of the same bot checks it without state, and it reveals nothing of the secret
(nor is it the platform's token). As the platform does, asking again returns the same token until
its last minute.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

TTL_S = 7200
RENEW_WINDOW_S = 60
_CONTEXT = b"qqwatchdog local gateway token v1"


class LocalTokens:
    def __init__(self, secret: str, ttl_s: int = TTL_S, clock: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(secret.encode(), _CONTEXT, hashlib.sha256).digest()
        self._ttl_s = ttl_s
        self._clock = clock
        self._current: tuple[str, int] | None = None  # (token, expiry)

    def _mac(self, expiry: int) -> str:
        digest = hmac.new(self._key, str(expiry).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self) -> tuple[str, int]:
        """The token to hand out now and its remaining lifetime in whole seconds."""
        now = self._clock()
        if self._current is not None and self._current[1] - now > RENEW_WINDOW_S:
            return self._current[0], int(self._current[1] - now)
        expiry = int(now) + self._ttl_s
        self._current = (f"{expiry}.{self._mac(expiry)}", expiry)
        return self._current[0], self._ttl_s

    def is_valid(self, token: str | None) -> bool:
        if not token:
            return False
        expiry_text, sep, mac = token.partition(".")
        if not sep or not expiry_text.isdigit() or len(expiry_text) > 12:
            return False
        expiry = int(expiry_text)
        if expiry <= self._clock() or expiry > self._clock() + self._ttl_s + RENEW_WINDOW_S:
            return False
        return hmac.compare_digest(mac, self._mac(expiry))
