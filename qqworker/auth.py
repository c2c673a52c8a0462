"""The app access token: fetched with appId + clientSecret, refreshed before it runs out.

The platform answers errors with HTTP 200 and a `{"code", "message"}` body, sends `expires_in` as a
string, and during a token's last 60 s may hand the same token back with a smaller `expires_in`
(the platform's "App access token" rules). The refresh plan below is pure and tested.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from qqworker.contract.events import LogEvent
from qqworker.contract.logs import log_event, redactor

log = logging.getLogger("qqworker.auth")

# Codes that say the credentials are wrong: no retry can fix them (exit 78).
PERMANENT_CODES = {
    100007: "invalid appid",
    100016: "invalid appid or secret",
}
REFRESH_MARGIN_S = 60.0  # the platform issues a new token only in the old one's last minute
MIN_REFETCH_S = 5.0  # never ask more often than this, unless a token was rejected


class TokenError(Exception):
    """A token request failed; `permanent` when the answer says the credentials are wrong."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        code: int | None = None,
        status: int | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.status = status  # the HTTP status of an answer, None when there was none
        self.cause = cause  # the network error behind it (host agility reads it)


@dataclass(frozen=True)
class Token:
    value: str
    expires_in: float
    valid_until: float  # monotonic
    refresh_at: float  # monotonic: ask for a new one from here on


def parse_expires_in(raw: Any) -> float:
    """`expires_in` as a number of seconds; the platform sends a string, the docs say a number."""
    if isinstance(raw, bool):
        raise ValueError(f"expires_in is not a number: {raw!r}")
    value = float(raw)  # ValueError / TypeError for anything else
    if not value > 0:
        raise ValueError(f"expires_in must be positive, got {raw!r}")
    return value


def parse_token_response(status: int, body: Any) -> tuple[str, float]:
    """(access_token, expires_in) from a token endpoint answer, else TokenError."""
    if isinstance(body, dict) and "code" in body and not body.get("access_token"):
        code = body.get("code")
        message = str(body.get("message") or "")
        permanent = code in PERMANENT_CODES
        hint = f" ({PERMANENT_CODES[code]})" if permanent and not message else ""
        http = f" (HTTP {status})" if status != 200 else ""
        raise TokenError(
            f"token endpoint error {code}: {message}{hint}{http}",
            permanent=permanent,
            code=code,
            status=status,
        )
    if status >= 400:
        raise TokenError(f"token endpoint answered HTTP {status}", status=status)
    if not isinstance(body, dict):
        raise TokenError(f"token endpoint answered HTTP {status} without a JSON object", status=status)
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenError("token endpoint answer has no access_token")
    try:
        expires_in = parse_expires_in(body.get("expires_in"))
    except (TypeError, ValueError) as exc:
        raise TokenError(f"token endpoint answer has a bad expires_in: {exc}") from None
    return token, expires_in


def plan_token(value: str, expires_in: float, now: float) -> Token:
    """When to refresh: at the start of the token's last minute; inside that minute the platform may
    hand back the same token, so ask again only near its end and never sooner than MIN_REFETCH_S."""
    valid_until = now + expires_in
    if expires_in > REFRESH_MARGIN_S + MIN_REFETCH_S:
        refresh_at = valid_until - REFRESH_MARGIN_S
    else:
        refresh_at = now + max(MIN_REFETCH_S, expires_in - MIN_REFETCH_S)
    return Token(value, expires_in, valid_until, refresh_at)


class TokenManager:
    """Hands out a valid token, fetching one when none is held, the held one is due for refresh,
    or it was rejected (`invalidate`). A failed refresh falls back to the held token while it lasts."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        app_id: str,
        app_secret: str,
        token_url: str,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._app_id = app_id
        self._app_secret = app_secret
        self._url = token_url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._token: Token | None = None
        self._quiet_until = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0
        redactor.add(app_secret)

    @property
    def current(self) -> Token | None:
        return self._token

    @property
    def url(self) -> str:
        return self._url

    def use_url(self, url: str) -> None:
        """Host agility moved the token endpoint: the next fetch goes there."""
        self._url = url

    def invalidate(self) -> None:
        """The platform rejected the token (401, close 4004): the next `get` fetches a new one."""
        self._token = None
        self._quiet_until = 0.0

    async def get(self, timeout_s: float | None = None) -> str:
        """A valid token; a fetch gives up (logged) after `timeout_s`, by default the manager's."""
        async with self._lock:
            token = self._token
            now = self._clock()
            if token is not None and now < max(token.refresh_at, self._quiet_until):
                return token.value
            try:
                self._token = await self._fetch(timeout_s)
            except TokenError:
                if token is not None and not self._expired(token):
                    # The held token still works: use it, and let the failure (logged) rest a while.
                    self._quiet_until = self._clock() + MIN_REFETCH_S
                    return token.value
                raise
            return self._token.value

    async def authorization(self, timeout_s: float | None = None) -> str:
        """The `Authorization` header value and the Identify/Resume `token`: `QQBot <token>`."""
        return f"QQBot {await self.get(timeout_s)}"

    def _expired(self, token: Token) -> bool:
        return self._clock() >= token.valid_until - 1.0

    async def _fetch(self, timeout_s: float | None) -> Token:
        self.fetches += 1
        body_sent = {"appId": self._app_id, "clientSecret": self._app_secret}
        timeout = self._timeout
        if timeout_s is not None and timeout.total is not None and timeout_s < timeout.total:
            timeout = aiohttp.ClientTimeout(total=max(0.01, timeout_s))
        try:
            async with self._http.post(self._url, json=body_sent, timeout=timeout) as resp:
                status = resp.status
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = None
            value, expires_in = parse_token_response(status, body)
        except TokenError as exc:
            self._failed(str(exc), exc)
            raise
        except asyncio.TimeoutError:  # before OSError: on 3.11+ it is a subclass
            error = f"token request timed out after {timeout.total:g}s"
            self._failed(error, None)
            raise TokenError(error) from None
        except (aiohttp.ClientError, OSError) as exc:
            error = f"token request failed: {type(exc).__name__}: {exc}"
            self._failed(error, exc)
            raise TokenError(error, cause=exc) from None
        redactor.add(value)
        redactor.add(f"QQBot {value}")
        previous = self._token
        token = plan_token(value, expires_in, self._clock())
        same = previous is not None and previous.value == value
        log_event(
            log,
            LogEvent.TOKEN_FETCHED,
            f"Got {'the same' if same else 'a new'} access token, valid for {expires_in:g}s",
            expires_in=expires_in,
            same_token=same,
        )
        return token

    def _failed(self, error: str, exc: BaseException | None) -> None:
        permanent = isinstance(exc, TokenError) and exc.permanent
        log_event(
            log,
            LogEvent.TOKEN_FAILED,
            f"Access token request failed{' permanently' if permanent else ''}: {error}",
            level=logging.ERROR if permanent else logging.WARNING,
            error=error,
            permanent=permanent,
        )
