"""The listen loop's retry policy as a pure state machine: attempts, delays, give-up and fatal.

The I/O loop asks it one question after every attempt or lost connection: what now? The answer is
always explicit (retry after a delay, give up with 75, stop with 78) so no path can end the loop
quietly or spin without a bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from qqworker.backoff import Backoff
from qqworker.closecodes import CloseAction
from qqworker.contract.exitcodes import ExitCode
from qqworker.protocol import Disconnect

__all__ = ["ReconnectAction", "ReconnectDecision", "ReconnectPolicy"]

# Intents not allowed: op 9 after Identify this many times in a row, AND spread over at least this many
# retry caps of backoff (3 minutes at the default 60 s cap), so a platform hiccup of a few seconds
# that answers every Identify with op 9 is waited out, never taken for a configuration error.
IDENTIFY_REJECTION_LIMIT = 5
IDENTIFY_REJECTION_SPAN_CAPS = 3.0
STABLE_AFTER_S = 60.0  # a session that lasted this long resets the backoff; shorter ones are flapping


class ReconnectAction(str, Enum):
    RETRY = "retry"
    GIVE_UP = "give_up"
    FATAL = "fatal"


@dataclass(frozen=True)
class ReconnectDecision:
    """The policy's answer after an attempt or a lost connection: retry after `delay_s` (the next
    attempt being number `attempt`), give up (exit 75) or stop for good (exit 78)."""

    verdict: ReconnectAction
    delay_s: float = 0.0
    attempt: int = 0  # the number the next attempt will carry
    reason: str = ""
    refresh_token: bool = False

    @property
    def exit_code(self) -> ExitCode | None:
        return {ReconnectAction.GIVE_UP: ExitCode.GAVE_UP, ReconnectAction.FATAL: ExitCode.CONFIG}.get(
            self.verdict
        )


class ReconnectPolicy:
    """Counts attempts and rejections and answers "what now?" (`attempt_failed`, `connection_lost`)
    with a `ReconnectDecision`; the listen loop (worker.py) only carries it out. Time is passed in."""

    def __init__(self, backoff: Backoff, max_attempts: int) -> None:
        self.backoff = backoff
        self.max_attempts = max_attempts  # 0: never give up
        self.attempt = 0  # attempts since the last established session, the current one included
        self.identify_rejections = 0
        self.first_rejection_at: float | None = None
        self.auth_rejections = 0
        self.established_at: float | None = None

    def start_attempt(self) -> int:
        self.attempt += 1
        return self.attempt

    def established(self, now: float) -> None:
        self.attempt = 0
        self.identify_rejections = 0
        self.first_rejection_at = None
        self.auth_rejections = 0
        self.established_at = now

    def attempt_failed(self, reason: str, *, permanent: bool = False) -> ReconnectDecision:
        """An attempt never reached READY/RESUMED (network error, timeout, token failure...)."""
        if permanent:
            return ReconnectDecision(ReconnectAction.FATAL, reason=reason)
        return self._retry(reason)

    def connection_lost(self, disconnect: Disconnect, now: float) -> ReconnectDecision:
        """A connection ended: during the handshake (a failed attempt) or after READY."""
        lasted = None if self.established_at is None else now - self.established_at
        self.established_at = None
        stable = lasted is not None and lasted >= STABLE_AFTER_S
        if stable:
            self.backoff.reset()

        if disconnect.action is CloseAction.FATAL:
            return ReconnectDecision(ReconnectAction.FATAL, reason=disconnect.reason)
        if disconnect.auth_rejected:
            self.auth_rejections += 1
            if self.auth_rejections >= 2:
                why = "the gateway rejected a freshly fetched token (4004)"
                return ReconnectDecision(ReconnectAction.FATAL, reason=why)
        if disconnect.identify_rejected:
            self.identify_rejections += 1
            if self.first_rejection_at is None:
                self.first_rejection_at = now
            span = now - self.first_rejection_at
            if (
                self.identify_rejections >= IDENTIFY_REJECTION_LIMIT
                and span >= IDENTIFY_REJECTION_SPAN_CAPS * self.backoff.cap
            ):
                return ReconnectDecision(
                    ReconnectAction.FATAL,
                    reason=f"Identify rejected {self.identify_rejections} times in a row over "
                    f"{span:.0f}s (are the intents allowed for this bot?)",
                )
        if disconnect.resume_refused:
            # The session is gone on the platform's side: nothing to wait for, a fresh Identify now.
            # It cannot loop: the session is dropped, the next attempt Identifies and is never refused so.
            if self.max_attempts and self.attempt >= self.max_attempts:
                return ReconnectDecision(
                    ReconnectAction.GIVE_UP, attempt=self.attempt, reason=disconnect.reason
                )
            return ReconnectDecision(ReconnectAction.RETRY, 0.0, self.attempt + 1, disconnect.reason)
        floor = self.backoff.cap if disconnect.action is CloseAction.BACKOFF else 0.0
        if stable and disconnect.action is CloseAction.RESUME:
            # The normal 30-minute cycle (op 7 / 4009) or a dropped link: resume at once. A session
            # that ended sooner is flapping and takes the backoff like any failure.
            return ReconnectDecision(ReconnectAction.RETRY, 0.0, self.attempt + 1, disconnect.reason)
        return self._retry(disconnect.reason, floor=floor, refresh_token=disconnect.refresh_token)

    def _retry(self, reason: str, *, floor: float = 0.0, refresh_token: bool = False) -> ReconnectDecision:
        if self.max_attempts and self.attempt >= self.max_attempts:
            return ReconnectDecision(ReconnectAction.GIVE_UP, attempt=self.attempt, reason=reason)
        delay = self.backoff.next_delay(floor)
        return ReconnectDecision(ReconnectAction.RETRY, delay, self.attempt + 1, reason, refresh_token)
