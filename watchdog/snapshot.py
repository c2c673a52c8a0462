"""The supervisor as the outside sees it: the status file's content and the endpoints' view.

Built on demand from the supervisor's current facts (`SupervisorFacts`: read, never changed here) and
written atomically (`watchdog.status.write_status`) at most every `every` seconds, or at once when a
change is worth it (a spawn, a phase, a kill, an exit). A status file that cannot be written is logged
once, and again only after a write has succeeded in between.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import psutil

from qqworker.contract.beat import Phase
from qqworker.contract.events import LogEvent
from qqworker.contract.logs import rfc3339_utc
from qqworker.contract.settings import Settings
from qqworker.logs import JsonLinesHandler
from watchdog.monitoring import SupervisorView
from watchdog.policy import PoisonWatch, SupervisionPolicy
from watchdog.process import Child
from watchdog.states import SupervisorState
from watchdog.status import gateway_status, webhook_status, write_status

__all__ = ["StatusSnapshot", "SupervisorFacts", "wall"]

log = logging.getLogger("watchdog")


class SupervisorFacts(Protocol):
    """What a snapshot reads of the supervisor (`watchdog.supervisor.Supervisor` has all of it)."""

    settings: Settings
    out: JsonLinesHandler
    clock: Callable[[], float]
    policy: SupervisionPolicy
    poison: PoisonWatch
    state: SupervisorState
    generation: int
    child: Child | None
    api_base: str
    token_url: str
    started_at: str
    resumed_from: dict[str, Any] | None
    last_exit: dict[str, Any] | None
    exit_code: int | None


class StatusSnapshot:
    """The status file's content for one supervisor, and when it is next due to be written."""

    def __init__(self, facts: SupervisorFacts) -> None:
        self.facts = facts
        self.every = min(5.0, max(0.5, facts.settings.heartbeat_interval))
        self.next_due = float("-inf")
        self._failed = False

    def view(self) -> SupervisorView:
        """What the endpoints need: the state, the generation and the child's pid."""
        facts = self.facts
        child = facts.child
        return SupervisorView(facts.state, facts.generation, child.pid if child is not None else None)

    def status(self) -> dict[str, Any]:
        facts = self.facts
        policy = facts.policy
        now = facts.clock()
        child = facts.child
        beat = policy.last_beat if child is not None else None
        try:
            created: float | None = psutil.Process().create_time()
        except psutil.Error:
            created = None
        wall_now = time.time()
        connected = child is not None and policy.phase is Phase.CONNECTED
        return {
            "state": facts.state.value,
            "watchdog_pid": os.getpid(),
            "watchdog_started_at_epoch": created,
            "started_at": facts.started_at,
            "child_pid": child.pid if child is not None else None,
            "generation": facts.generation,
            "restarts": policy.restarts,
            "phase": policy.phase.value if (child is not None and policy.phase) else None,
            "attempt": beat.attempt if beat is not None else None,
            "last_beat_age_s": round(now - policy.last_beat_at, 3) if beat is not None else None,
            "connected_since": wall(policy.connected_since, now, wall_now) if connected else None,
            "resumable": policy.resume is not None,
            "api_base": facts.api_base,
            "token_url": facts.token_url,
            "skipped_events": facts.poison.skipped,
            "last_skipped": facts.poison.last_skipped.fields() if facts.poison.last_skipped else None,
            "resumed_from": facts.resumed_from,
            "last_exit": facts.last_exit,
            "exit_code": facts.exit_code,
            "heartbeat_timeout_s": facts.settings.heartbeat_timeout,
            "stale_after_s": round(3 * self.every + 5, 3),
            "updated_at": rfc3339_utc(wall_now),
            "updated_at_epoch": round(wall_now, 3),
            "sinks": facts.out.sinks(),
            "webhook": webhook_status(beat),
            "gateway": gateway_status(beat),
        }

    def write(self, *, force: bool = False) -> None:
        """Writes the status file if it is due (or `force`), and schedules the next write."""
        now = self.facts.clock()
        if not force and now < self.next_due:
            return
        self.next_due = now + self.every
        path = self.facts.settings.status_file
        try:
            write_status(path, self.status())
            self._failed = False
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.error(
                    "Cannot write the status file %s: %s",
                    path,
                    exc,
                    extra={"event": LogEvent.STATUS_WRITE_FAILED.value, "path": path, "error": str(exc)},
                )


def wall(monotonic_time: float | None, now: float, wall_now: float) -> str | None:
    """A time of the clock `now` was read from, as RFC 3339 wall-clock time (`wall_now` is now's)."""
    if monotonic_time is None:
        return None
    return rfc3339_utc(wall_now - (now - monotonic_time))
