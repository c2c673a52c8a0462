"""The dead man's switch: a GET to `--push-url` every `--push-interval` seconds while the bot is ready.

An outside monitor (Uptime Kuma's push monitor, healthchecks.io...) that expects the request raises
the alarm when it stops: a dead host, a dead watchdog or a bot that cannot connect all look the same
from there, a missed push.

`PushSchedule` decides (pure, clock-injected); `PushSender` does the request on one daemon thread,
because `urllib` connects, resolves and (for https) handshakes blocking, and the supervision loop
must never wait for any of it. One request at a time, bounded by its timeout; a push due while the
previous one is still running is skipped and counted as a failure. The thread never logs: the
loop collects outcomes and logs `push.failed` at most once per `FAILURE_REPORT_EVERY_S`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from qqworker.contract.settings import ConfigError

__all__ = [
    "FailureReports",
    "Outcome",
    "PushSchedule",
    "PushSender",
    "check_push_url",
    "push_request_url",
]

FAILURE_REPORT_EVERY_S = 60.0
MAX_TIMEOUT_S = 10.0


def check_push_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("push_url: not an http(s) URL")


def push_request_url(url: str, *, ping_ms: float | None, msg: str) -> str:
    """Uptime Kuma style (`/api/push/<token>`, or any URL that already has a query): sets `status=up`
    unless given, and `msg` and `ping`. Other URLs (healthchecks.io's `/<uuid>`) are requested as given."""
    parts = urlsplit(url)
    if "/api/push/" not in parts.path and not parts.query:
        return url
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("status", "up")
    query["msg"] = msg
    if ping_ms is not None:
        query["ping"] = f"{ping_ms:.0f}"
    else:
        query.pop("ping", None)
    return urlunsplit(parts._replace(query=urlencode(query)))


class PushSchedule:
    """Due every `interval` seconds while ready; becoming ready pushes at once."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.next_at: float | None = None  # None: not ready at the last look

    def due(self, now: float, ready: bool) -> bool:
        if not ready:
            self.next_at = None
            return False
        if self.next_at is not None and now < self.next_at:
            return False
        self.next_at = now + self.interval
        return True

    def next_wake(self) -> float | None:
        return self.next_at


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str | None = None


class FailureReports:
    """At most one report per period; the report counts the failures since the last one."""

    def __init__(self, every: float = FAILURE_REPORT_EVERY_S) -> None:
        self.every = every
        self.failed = 0  # in total
        self.succeeded = 0
        self._unreported = 0
        self._last: float | None = None

    def record(self, now: float, outcome: Outcome) -> tuple[str, int] | None:
        """(error, failures since the last report) when a failure should be logged now."""
        if outcome.ok:
            self.succeeded += 1
            return None
        self.failed += 1
        self._unreported += 1
        if self._last is not None and now - self._last < self.every:
            return None
        self._last = now
        count, self._unreported = self._unreported, 0
        return outcome.error or "failed", count


class PushSender:
    def __init__(self, timeout: float, opener: Callable[[str, float], None] | None = None) -> None:
        self.timeout = min(timeout, MAX_TIMEOUT_S)
        self.opener = opener or _urlopen
        self.outcomes: deque[Outcome] = deque(maxlen=64)
        self._busy = threading.Event()
        self._wake = threading.Condition()
        self._job: str | None = None
        self._thread: threading.Thread | None = None

    def push(self, url: str) -> bool:
        """Hands the request to the thread; False (and a failure outcome) if one is still running."""
        if self._busy.is_set():
            self.outcomes.append(Outcome(False, f"the previous push has not finished ({self.timeout:g}s)"))
            return False
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="qqwatchdog-push", daemon=True)
            self._thread.start()
        with self._wake:
            self._busy.set()
            self._job = url
            self._wake.notify()
        return True

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._job is None:
                    self._wake.wait()
                url, self._job = self._job, None
            try:
                self.opener(url, self.timeout)
                self.outcomes.append(Outcome(True))
            except Exception as exc:  # any failure is the monitor's to see, never the bot's problem
                self.outcomes.append(Outcome(False, _describe(exc)))
            finally:
                self._busy.clear()

    def take_outcomes(self) -> list[Outcome]:
        out = []
        while self.outcomes:
            out.append(self.outcomes.popleft())
        return out


def _urlopen(url: str, timeout: float) -> None:
    import urllib.request  # here: only a configured push loads http.client (and ssl for https)

    request = urllib.request.Request(url, headers={"User-Agent": "qqwatchdog"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        answer.read(4096)


def _describe(exc: BaseException) -> str:
    # The URL carries the monitor's token: name the failure, never the URL.
    code = getattr(exc, "code", None)
    if code is not None:
        return f"HTTP {code}"
    reason = getattr(exc, "reason", None)
    return f"{type(exc).__name__}: {reason if reason is not None else exc}"[:200]
