"""Local access tokens and session ids for the frameworks behind `QQ_HANDLER=gateway`, valid across
worker respawns.

A framework fetches a token once and keeps it for its whole lifetime (NoneBot2: 7200 s), while the
watchdog may replace the worker under it at any moment: a token that only the process that issued it
knows would get the framework 4004 from the next worker, forever. So a token is `<expiry>.<mac>`,
the expiry in wall-clock seconds and the mac an HMAC-SHA256 of it under a key derived from the bot's
secret: any worker of the same bot checks it without state, and it reveals nothing of the secret
(nor is it the platform's token). As the platform does, asking again returns the same token until
its last minute.

Session ids are signed the same way (`<nonce>-<mac>`), so that after a respawn the next worker can tell
a Resume of an earlier worker's session of this bot (which it continues: see gwbuffer.adopt) from a
session id it never issued.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

TTL_S = 7200
RENEW_WINDOW_S = 60
_CONTEXT = b"qqwatchdog local gateway token v1"
_SESSION_CONTEXT = b"qqwatchdog local gateway session v1"
SESSIONS_KEPT = 1000  # session ids of this process a Resume may name (oldest forgotten first)


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


class SessionIds:
    def __init__(self, secret: str, kept: int = SESSIONS_KEPT) -> None:
        self._key = hmac.new(secret.encode(), _SESSION_CONTEXT, hashlib.sha256).digest()
        self._kept = kept
        self._ids: OrderedDict[str, None] = OrderedDict()

    def _mac(self, nonce: str) -> str:
        return hmac.new(self._key, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    def new(self) -> str:
        nonce = secrets.token_hex(16)
        session_id = f"{nonce}-{self._mac(nonce)}"
        self.remember(session_id)
        return session_id

    def remember(self, session_id: str) -> None:
        self._ids[session_id] = None
        if len(self._ids) > self._kept:
            self._ids.popitem(last=False)

    def known(self, session_id: str) -> bool:
        """Issued (or taken over) by this process."""
        return session_id in self._ids

    def signed(self, session_id: str) -> bool:
        """Issued by a worker of this bot, this one or an earlier one."""
        nonce, sep, mac = session_id.partition("-")
        return bool(sep) and len(nonce) == 32 and hmac.compare_digest(mac, self._mac(nonce))
