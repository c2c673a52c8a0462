"""Host agility: which of the configured API bases (or token URLs) to use, as a pure, clock-free class.

The platform moved its OpenAPI once (2026: api.sgroup.qq.com to api.bot.qq.com) and will move again, so
`QQ_API_BASE` and `QQ_TOKEN_URL` are ordered lists. A failure that says "this host is wrong" (HTTP 404/410/5xx
from discovery or the token endpoint, a name that stopped resolving while the other names still do, a
certificate for another name) moves the next attempt to the next URL; a network that is simply down (refused,
unreachable, reset, timed out) never does: every host would fail alike, and rotating would only hide the real
problem. A URL that has worked is sticky: a transient 5xx must not throw away the host that works, so it is
left only after several wrong-host failures in a row.

No I/O and no heavy imports here: the watchdog imports `prefer` to hand the base in use to a new child.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum

from qqworker.contract.settings import Settings

# A URL that has worked since it was chosen is left only after this many wrong-host failures in a row.
STICKY_FAILURES = 3


class FailureKind(str, Enum):
    HTTP = "http"  # the host answered, with `status`
    NAME = "name"  # the host name did not resolve
    TLS_NAME = "tls_name"  # the certificate is valid, but for another name
    NETWORK = "network"  # refused, unreachable, reset, timed out: the network, not the host

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    status: int | None = None  # HTTP
    others_resolve: bool = False  # NAME: at least one other configured name does resolve


def wrong_host_reason(failure: Failure) -> str | None:
    """Why this failure means "wrong host" (a short reason for the log), or None when it does not."""
    if failure.kind is FailureKind.HTTP and failure.status is not None:
        if failure.status in (404, 410) or 500 <= failure.status <= 599:
            return f"HTTP {failure.status}"
        return None
    if failure.kind is FailureKind.NAME:
        # No name resolving at all is a resolver or network outage, not a retired host.
        return "the host name no longer resolves (other names do)" if failure.others_resolve else None
    if failure.kind is FailureKind.TLS_NAME:
        return "the TLS certificate is for another host name"
    return None


@dataclass(frozen=True)
class Switch:
    """One move to the next URL: what `gateway.base_switched` logs."""

    kind: str  # "api_base" or "token_url"
    from_url: str
    to_url: str
    reason: str


class HostRing:
    """The ordered URLs of one kind, the one in use, and when to move on (wrapping around)."""

    def __init__(self, kind: str, urls: Sequence[str], *, sticky_failures: int = STICKY_FAILURES) -> None:
        if not urls:
            raise ValueError(f"{kind}: no URL")
        self.kind = kind
        self.urls = tuple(urls)
        self.sticky_failures = max(1, sticky_failures)
        self._index = 0
        self._proven = False  # the URL in use has worked since it was chosen
        self._strikes = 0  # wrong-host failures in a row of the URL in use

    @property
    def current(self) -> str:
        return self.urls[self._index]

    @property
    def others(self) -> tuple[str, ...]:
        return self.urls[self._index + 1 :] + self.urls[: self._index]

    @property
    def proven(self) -> bool:
        return self._proven

    def succeeded(self) -> None:
        """The URL in use answered as it should (token issued, gateway URL discovered)."""
        self._proven = True
        self._strikes = 0

    def failed(self, failure: Failure) -> Switch | None:
        """A request to the URL in use failed: the switch to make before the next attempt, if any."""
        reason = wrong_host_reason(failure)
        if reason is None or len(self.urls) < 2:
            return None
        self._strikes += 1
        if self._proven and self._strikes < self.sticky_failures:
            return None
        previous = self.current
        self._index = (self._index + 1) % len(self.urls)
        self._proven = False
        self._strikes = 0
        return Switch(self.kind, previous, self.current, reason)


def prefer(urls: Sequence[str], first: str | None) -> tuple[str, ...]:
    """The same URLs with `first` moved to the front (the one a previous child found working);
    unchanged when `first` is not among them (a configuration that changed in between)."""
    urls = tuple(urls)
    if not first or first not in urls:
        return urls
    return (first, *(url for url in urls if url != first))


def prefer_hosts(settings: Settings, api_base: str | None, token_url: str | None) -> Settings:
    """The settings for a new child: the API base and token URL its predecessor used first, so a
    switch survives a respawn; the same settings when nothing changed."""
    bases = prefer(settings.api_bases, api_base)
    tokens = prefer(settings.token_urls, token_url)
    changes: dict[str, str] = {}
    if bases != settings.api_bases:
        changes["api_base"] = ",".join(bases)
    if tokens != settings.token_urls:
        changes["token_url"] = ",".join(tokens)
    return replace(settings, **changes) if changes else settings
