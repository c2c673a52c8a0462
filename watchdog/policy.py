"""The watchdog's decisions as a pure, clock-injected state machine: no processes, pipes or sleeps.

The supervisor feeds it what it observes, each with the monotonic time it was observed:
`child_spawned`, `beat` (a `Beat` from the heartbeat pipe), `log_event` (the `event` of a line the
child logged), `rss`, `beats_closed` (EOF on the heartbeat pipe), `logs_closed` (EOF on its output
while it runs: a child that can no longer log breaks the contract's first rule), `child_exited` and
`tick`; every
call answers with what to do: `KEEP`, `Kill`, `Respawn`, `GiveUp` (exit 69) or `Stop` (exit 78).

A running child is judged on four kinds of evidence:

* heartbeats: none for `heartbeat_timeout` → `child.heartbeat_missed` (frozen, blocked in C code, a
  deadlocked event loop, a closed pipe);
* the phase it reports: a phase that must end by a known time and has not → overdue. WAITING must
  turn into an attempt by due + connect_timeout + attempt_grace, CONNECTING must end by start +
  connect_timeout + attempt_grace, STARTING must reach its first attempt within connect_timeout +
  attempt_grace, STOPPING must exit within stop_timeout + attempt_grace;
* its log lines (attempt-log liveness, the original incident): an attempt the child announced (a
  WAITING beat: "next attempt in d s") must be *logged* (one of `ATTEMPT_EVENTS`) by due +
  connect_timeout + attempt_grace; an attempt under way (a CONNECTING beat, or a `gateway.connecting`
  line) must log its outcome within connect_timeout + attempt_grace of its start. A loop that retries
  without logging is therefore killed even when it keeps beating and changing phase;
* what a CONNECTED child reports: a gateway ACK older than three gateway heartbeat intervals plus
  the grace means a half-open link the child failed to notice → `child.ack_stale`. And its RSS.

Beats and log lines travel on two pipes, so one can overtake the other by a few milliseconds. Duties
derived from a beat therefore accept log lines received up to `REORDER_TOLERANCE_S` before the time
the duty refers to; duties derived from a log line use the log stream's own order, which is exact.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from qqworker.backoff import Backoff
from qqworker.contract.beat import Beat, Phase
from qqworker.contract.events import ATTEMPT_EVENTS, LogEvent
from qqworker.contract.exitcodes import ExitCode, exit_meaning, is_permanent
from qqworker.contract.settings import Settings
from qqworker.delivery import Span

__all__ = [
    "KEEP",
    "REORDER_TOLERANCE_S",
    "ChildState",
    "Decision",
    "GiveUp",
    "Keep",
    "Kill",
    "PoisonWatch",
    "Respawn",
    "Skip",
    "Stop",
    "SupervisionPolicy",
    "SupervisionTimings",
    "pause_gap",
    "stranded_spans",
]

REORDER_TOLERANCE_S = 1.0
ACK_STALE_INTERVALS = 3  # the worker itself gives up after 2 unacknowledged intervals
RECENT_LOGS = 64

# Log lines that end an attempt, one way or the other.
OUTCOME_EVENTS = frozenset(
    {
        LogEvent.GATEWAY_CONNECTED,
        LogEvent.RECONNECT_FAILED,
        LogEvent.TOKEN_FAILED,
        LogEvent.GATEWAY_CLOSED,
        LogEvent.RECONNECT_SCHEDULED,
        LogEvent.RECONNECT_GAVE_UP,
        LogEvent.WORKER_FATAL,
        LogEvent.WORKER_STOPPED,
    }
)


@dataclass(frozen=True)
class SupervisionTimings:
    """The bounds a child is judged by, from the settings (the shortened tables that tests, the demo and
    the benchmark run with are `qqworker.simulator.remote.RunTimings`, rendered into these flags)."""

    heartbeat_timeout: float
    connect_timeout: float
    attempt_grace: float
    respawn_initial: float
    respawn_max: float
    healthy_after: float
    max_restarts: int
    restart_window: float
    memory_limit_mb: float
    stop_timeout: float
    retry_max: float  # a WAITING beat without a due time is bounded by the worker's longest delay

    @classmethod
    def from_settings(cls, s: Settings) -> SupervisionTimings:
        return cls(
            heartbeat_timeout=s.heartbeat_timeout,
            connect_timeout=s.connect_timeout,
            attempt_grace=s.attempt_grace,
            respawn_initial=s.respawn_initial,
            respawn_max=s.respawn_max,
            healthy_after=s.healthy_after,
            max_restarts=s.max_restarts,
            restart_window=s.restart_window,
            memory_limit_mb=s.memory_limit_mb,
            stop_timeout=s.stop_timeout,
            retry_max=s.retry_max,
        )

    @property
    def attempt_bound(self) -> float:
        """How long an attempt may take once due: the worker's own bound plus the grace."""
        return self.connect_timeout + self.attempt_grace


# Decisions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keep:
    pass


KEEP = Keep()


@dataclass(frozen=True)
class Kill:
    reason: str  # short, for child.killed
    event: LogEvent  # the detection event to log first
    message: str  # the detection line's sentence
    fields: dict[str, Any] = field(default_factory=dict)
    # An unresponsive child (no beats: frozen, loop blocked) cannot run a graceful stop, so waiting
    # stop_timeout for it would only be a silent pause: go straight to SIGKILL.
    force: bool = False


@dataclass(frozen=True)
class Respawn:
    delay_s: float
    restarts: int  # respawns so far, this one included


@dataclass(frozen=True)
class GiveUp:
    restarts: int
    exit_code: int = ExitCode.UNAVAILABLE


@dataclass(frozen=True)
class Stop:
    exit_code: int
    reason: str


Decision = Keep | Kill | Respawn | GiveUp | Stop


class ChildState(str, Enum):
    """The child as the policy sees it (what the whole supervisor is doing: `watchdog.states`)."""

    NONE = "none"  # no child (before the first spawn, between respawns)
    RUNNING = "running"
    KILLING = "killing"  # a kill was decided; waiting for the exit


@dataclass
class _Duty:
    """A log line of `kinds` must arrive by `deadline` (received at or after `not_before`)."""

    kinds: frozenset[LogEvent]
    deadline: float
    due: float  # the moment the thing was due, for overdue_s
    what: str  # for the message
    not_before: float = float("-inf")
    after_index: int = 0  # log-derived duties: only lines after this one count
    episode: int = -1  # the beat episode that created it (-1: a log line did)
    settled: bool = False

    def settled_by(self, time: float, index: int, event: LogEvent) -> bool:
        return event in self.kinds and time >= self.not_before and index > self.after_index


class SupervisionPolicy:
    """The watchdog's judgement of its children, one at a time: each observation, with the time it was
    made, is answered with a `Decision`; `next_deadline` says when `tick` could decide something new.
    It also owns what the next child is handed: `resume` (session and seq) or nothing (identify anew).
    """

    def __init__(self, timings: SupervisionTimings, rand: Callable[[], float] = random.random) -> None:
        self.t = timings
        self.backoff = Backoff(timings.respawn_initial, timings.respawn_max, rand)
        self.restarts = 0
        self._respawn_times: deque[float] = deque()
        self.state = ChildState.NONE
        self.last_exit: int | None = None
        # What the next child is handed: (session_id, seq) to Resume, None to Identify anew. It
        # outlives each child, so it is not part of `_reset_child`.
        self.resume: tuple[str, int] | None = None
        self._reset_child(0.0)

    # What the next child is handed -------------------------------------------------------------

    def session_restored(self, session_id: str, seq: int) -> None:
        """The session the last watchdog persisted, fresh enough at start: the first child resumes it."""
        self.resume = (session_id, seq)

    def session_seen(self, beat: Beat) -> None:
        """Every beat read, whatever the child's state: the session and seq it reports are what the next
        child resumes; a beat with neither means the worker dropped its session, so the next one identifies.
        A beat with only one of them says nothing new."""
        if beat.session_id and beat.seq is not None:
            self.resume = (beat.session_id, beat.seq)
        elif beat.session_id is None and beat.seq is None:
            self.resume = None

    def skip_past(self, skip: Skip) -> None:
        """A poison event (`PoisonWatch`): the next child resumes after it, so it is never handed again."""
        self.resume = (skip.session_id, skip.seq)

    # Observations ----------------------------------------------------------------------------

    def _reset_child(self, now: float) -> None:
        self.spawned_at = now
        self.last_beat_at = now
        self.last_beat: Beat | None = None
        self.beats_closed_at: float | None = None
        self.logs_closed_at: float | None = None
        self.phase: Phase | None = None
        self.connected_since: float | None = None
        self.healthy = False
        self._episode_key: tuple[Phase, int] | None = None
        self._episode = 0
        self._episode_deadline: float | None = None
        self._episode_due = 0.0
        self._duties: list[_Duty] = []
        # Recent attempt and outcome lines, to settle a duty whose beat came after them.
        self._logs: deque[tuple[float, int, LogEvent]] = deque(maxlen=RECENT_LOGS)
        self._log_index = 0
        self._woke_at = float("-inf")  # the end of the last pause of the watchdog itself

    def child_spawned(self, now: float) -> None:
        self._reset_child(now)
        self.state = ChildState.RUNNING

    def beat(self, now: float, beat: Beat) -> Decision:
        if self.state is not ChildState.RUNNING:
            return KEEP
        self.last_beat_at = now
        if not beat.known_phase:
            # A newer worker's phase this version cannot judge: the beat still proves its loop runs,
            # and the duties of the last phase it could judge stay as they were.
            return self._check(now)
        self.last_beat = beat
        phase = Phase(beat.phase)
        self.phase = phase
        key = (phase, beat.attempt)
        new_episode = key != self._episode_key
        if new_episode:
            self._episode_key = key
            self._episode += 1
            self._duties = [d for d in self._duties if not d.settled]
        if phase is Phase.CONNECTED:
            self._episode_deadline = None
            decision = self._connected(now, beat)
            if decision is not KEEP:
                return decision
        else:
            self.connected_since = None
            self._phase_duties(now, phase, beat, new_episode)
        return self._check(now)

    def _phase_duties(self, now: float, phase: Phase, beat: Beat, new_episode: bool) -> None:
        bound = self.t.attempt_bound
        if phase is Phase.WAITING:
            delay = beat.next_attempt_in_s if beat.next_attempt_in_s is not None else self.t.retry_max
            due = now + delay
            if new_episode or due < self._episode_due:
                self._episode_due = due
                self._episode_deadline = due + bound
            # The announced attempt must be logged: any attempt line from (about) its due time on.
            self._require(ATTEMPT_EVENTS, self._episode_due, bound, "the attempt it announced")
        elif phase is Phase.CONNECTING:
            start = now - (beat.attempt_age_s or 0.0)
            if new_episode or start < self._episode_due:
                self._episode_due = start
                self._episode_deadline = start + bound
            self._require(OUTCOME_EVENTS, self._episode_due, bound, "the outcome of its current attempt")
        elif phase is Phase.STARTING:
            if new_episode:
                self._episode_due = now
                self._episode_deadline = now + bound
        elif phase is Phase.STOPPING and new_episode:
            self._episode_due = now
            self._episode_deadline = now + self.t.stop_timeout + self.t.attempt_grace

    def _require(self, kinds: frozenset[LogEvent], due: float, bound: float, what: str) -> None:
        """Opens (or tightens) this episode's duty, settled at once if a recent line already did."""
        for duty in self._duties:
            if duty.episode == self._episode:
                if due < duty.due:
                    duty.due, duty.deadline, duty.not_before = due, due + bound, due - REORDER_TOLERANCE_S
                return
        duty = _Duty(
            kinds, due + bound, due, what, not_before=due - REORDER_TOLERANCE_S, episode=self._episode
        )
        duty.settled = any(duty.settled_by(t, i, e) for t, i, e in self._logs)
        self._duties.append(duty)

    def _connected(self, now: float, beat: Beat) -> Decision:
        if beat.connected_for_s is not None:
            self.connected_since = now - beat.connected_for_s
            if beat.connected_for_s >= self.t.healthy_after and not self.healthy:
                self.healthy = True
                self.backoff.reset()
        if beat.ack_age_s is not None and beat.heartbeat_interval_s:
            limit = ACK_STALE_INTERVALS * beat.heartbeat_interval_s + self.t.attempt_grace
            # An ACK missed while everything was paused is no evidence: its window starts at the wake-up.
            ack_age = min(beat.ack_age_s, max(0.0, now - self._woke_at))
            if ack_age > limit:
                return self._kill(
                    "ack stale",
                    LogEvent.CHILD_ACK_STALE,
                    f"The child reports a connection with no gateway ACK for {beat.ack_age_s:.1f}s "
                    f"(limit {limit:.1f}s): a half-open link it has not noticed; killing it",
                    ack_age_s=round(beat.ack_age_s, 3),
                    limit_s=round(limit, 3),
                )
        return KEEP

    def log_event(self, now: float, event: str) -> Decision:
        if self.state is not ChildState.RUNNING:
            return KEEP
        try:
            name = LogEvent(event)
        except ValueError:
            name = None
        if name in ATTEMPT_EVENTS or name in OUTCOME_EVENTS:
            self._log_index += 1
            self._logs.append((now, self._log_index, name))
            for duty in self._duties:
                if not duty.settled and duty.settled_by(now, self._log_index, name):
                    duty.settled = True
            # Settled duties are kept while their episode lasts, so its next beat does not reopen them.
            self._duties = [d for d in self._duties if not d.settled or d.episode == self._episode]
            if name is LogEvent.GATEWAY_CONNECTING and not any(
                d.kinds is OUTCOME_EVENTS and not d.settled for d in self._duties
            ):
                # An attempt has begun: its outcome must follow within its bound, whatever the beats say.
                self._duties.append(
                    _Duty(
                        OUTCOME_EVENTS,
                        now + self.t.attempt_bound,
                        now,
                        "the outcome of the attempt it logged",
                        after_index=self._log_index,
                    )
                )
        return self._check(now)

    def rss(self, now: float, rss_mb: float) -> Decision:
        if self.state is not ChildState.RUNNING:
            return KEEP
        limit = self.t.memory_limit_mb
        if limit > 0 and rss_mb > limit:
            return self._kill(
                "memory limit",
                LogEvent.CHILD_MEMORY_EXCEEDED,
                f"The child uses {rss_mb:.1f} MB, above the {limit:g} MB limit; killing it",
                rss_mb=round(rss_mb, 1),
                limit_mb=limit,
            )
        return self._check(now)

    def beats_closed(self, now: float) -> Decision:
        """EOF on the heartbeat pipe: the child is exiting, or broken; it gets a short while to exit."""
        if self.state is ChildState.RUNNING and self.beats_closed_at is None:
            self.beats_closed_at = now
        return self._check(now)

    def logs_closed(self, now: float) -> Decision:
        """EOF on the output pipe (fds 1 and 2): the child is exiting, or it closed them; either way it
        gets the same short while to exit as for a closed heartbeat pipe."""
        if self.state is ChildState.RUNNING and self.logs_closed_at is None:
            self.logs_closed_at = now
        return self._check(now)

    def tick(self, now: float) -> Decision:
        if self.state is not ChildState.RUNNING:
            return KEEP
        return self._check(now)

    def paused(self, now: float, gap_s: float) -> None:
        """The watchdog itself did not run for `gap_s` up to `now` (host suspend, SIGSTOP of the group):
        the child was not watched meanwhile, so nothing it owed falls due during the gap. Every deadline
        moves on by the gap, and the heartbeat and gateway-ACK windows start afresh now."""
        if self.state is not ChildState.RUNNING or gap_s <= 0:
            return
        self.spawned_at += gap_s
        self._woke_at = now
        self.last_beat_at = max(self.last_beat_at + gap_s, now)
        if self.beats_closed_at is not None:
            self.beats_closed_at += gap_s
        if self._episode_deadline is not None:
            self._episode_deadline += gap_s
        self._episode_due += gap_s
        for duty in self._duties:
            duty.deadline += gap_s
            duty.due += gap_s
            duty.not_before += gap_s
        # Lines seen before the gap keep settling the duties they settled, at their shifted time.
        self._logs = deque(((t + gap_s, i, e) for t, i, e in self._logs), maxlen=RECENT_LOGS)

    def child_stopped(self, exitcode: int | None) -> None:
        """The child ended because the watchdog itself is stopping: no respawn, nothing counted."""
        self.state = ChildState.NONE
        self.last_exit = exitcode

    def child_exited(self, now: float, exitcode: int | None) -> Decision:
        """The child is gone (whoever ended it): stop for good, give up, or respawn after a delay."""
        self.state = ChildState.NONE
        self.last_exit = exitcode
        if is_permanent(exitcode):
            return Stop(ExitCode.CONFIG, f"the worker exited {exitcode}: {exit_meaning(exitcode)}")
        while self._respawn_times and self._respawn_times[0] <= now - self.t.restart_window:
            self._respawn_times.popleft()
        if self.t.max_restarts and len(self._respawn_times) >= self.t.max_restarts:
            return GiveUp(self.restarts)
        if self.healthy:
            self.backoff.reset()
        self._respawn_times.append(now)
        self.restarts += 1
        return Respawn(self.backoff.next_delay(), self.restarts)

    # Judgement -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest time at which `tick` could decide something new (None: nothing pending)."""
        if self.state is not ChildState.RUNNING:
            return None
        times = [self.last_beat_at + self.t.heartbeat_timeout]
        if self.beats_closed_at is not None:
            times.append(self.beats_closed_at + self._closed_grace)
        if self.logs_closed_at is not None:
            times.append(self.logs_closed_at + self._closed_grace)
        if self._episode_deadline is not None:
            times.append(self._episode_deadline)
        times += [d.deadline for d in self._duties if not d.settled]
        return min(times)

    @property
    def _closed_grace(self) -> float:
        return min(self.t.heartbeat_timeout, self.t.stop_timeout)

    def _check(self, now: float) -> Decision:
        if self.state is not ChildState.RUNNING:
            return KEEP
        silent = now - self.last_beat_at
        if silent > self.t.heartbeat_timeout:
            return self._kill(
                "heartbeat missed",
                LogEvent.CHILD_HEARTBEAT_MISSED,
                f"No heartbeat from the child for {silent:.1f}s (timeout {self.t.heartbeat_timeout:g}s); "
                "killing it",
                force=True,
                silent_s=round(silent, 3),
            )
        if self.beats_closed_at is not None and now - self.beats_closed_at > self._closed_grace:
            return self._kill(
                "heartbeat pipe closed",
                LogEvent.CHILD_HEARTBEAT_MISSED,
                f"The child closed its heartbeat pipe {now - self.beats_closed_at:.1f}s ago and is still "
                "running; killing it",
                silent_s=round(silent, 3),
            )
        if self.logs_closed_at is not None and now - self.logs_closed_at > self._closed_grace:
            closed = now - self.logs_closed_at
            return self._kill(
                "log pipe closed",
                LogEvent.CHILD_LOG_CLOSED,
                f"The child closed its output {closed:.1f}s ago and is still running: it can log "
                "nothing any more; killing it",
                closed_s=round(closed, 3),
            )
        if self._episode_deadline is not None and now > self._episode_deadline:
            return self._overdue_phase(now)
        for duty in self._duties:
            if not duty.settled and now > duty.deadline:
                overdue = now - duty.due
                return self._kill(
                    "attempt overdue",
                    LogEvent.CHILD_ATTEMPT_OVERDUE,
                    f"The child has logged nothing for {duty.what}, due {overdue:.1f}s ago; killing it",
                    overdue_s=round(overdue, 3),
                    phase=self.phase.value if self.phase else None,
                )
        return KEEP

    def _overdue_phase(self, now: float) -> Decision:
        assert self.phase is not None
        overdue = now - self._episode_due
        attempt = self._episode_key[1] if self._episode_key else 0
        if self.phase is Phase.STOPPING:
            return self._kill(
                "stop overdue",
                LogEvent.CHILD_STOP_OVERDUE,
                f"The child said it was stopping {overdue:.1f}s ago and has not exited; killing it",
                overdue_s=round(overdue, 3),
            )
        what = {
            Phase.STARTING: "has not begun its first attempt",
            Phase.WAITING: f"has not begun attempt {attempt or 1}",
            Phase.CONNECTING: f"is still in attempt {attempt}",
        }[self.phase]
        return self._kill(
            "attempt overdue",
            LogEvent.CHILD_ATTEMPT_OVERDUE,
            f"The child {what}, due {overdue:.1f}s ago; killing it",
            overdue_s=round(overdue, 3),
            phase=self.phase.value,
        )

    def _kill(
        self, reason: str, event: LogEvent, message: str, *, force: bool = False, **fields: Any
    ) -> Kill:
        self.state = ChildState.KILLING
        return Kill(reason, event, message, fields, force)


# Poison events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Skip:
    """Hand the next child a seq past this event: it killed `deaths` children in a row."""

    session_id: str
    seq: int
    event_type: str | None
    event_id: str | None
    deaths: int

    def fields(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "seq": self.seq,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "deaths": self.deaths,
        }


class PoisonWatch:
    """Counts successive child deaths with the same oldest unhandled event (from each child's last
    beat). At `after` in a row, that event is skipped: the next child Resumes past it. A child that
    ends with another oldest event, or none, resets the count; `after` 0 turns this off. A handler
    that raises is not a death (`handler.error`) and is never counted."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.deaths = 0
        self.skipped = 0
        self.last_skipped: Skip | None = None
        self._key: tuple[str, int, str | None] | None = None

    def child_died(self, beat: Beat | None) -> Skip | None:
        if self.after <= 0:
            return None
        if beat is None or type(beat.session_id) is not str or type(beat.oldest_seq) is not int:
            self._key, self.deaths = None, 0
            return None
        key = (beat.session_id, beat.oldest_seq, beat.oldest_id)
        if key == self._key:
            self.deaths += 1
        else:
            self._key, self.deaths = key, 1
        if self.deaths < self.after:
            return None
        skip = Skip(
            beat.session_id, beat.oldest_seq, _short(beat.oldest_type), _short(beat.oldest_id), self.deaths
        )
        self._key, self.deaths = None, 0
        self.skipped += 1
        self.last_skipped = skip
        return skip


def _short(value: Any, limit: int = 128) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def stranded_spans(beat: Beat | None) -> list[Span]:
    """The beat's `stranded` entries that are well formed (a beat is the child's word, not trusted)."""
    spans = []
    for entry in (beat.stranded if beat is not None and isinstance(beat.stranded, list) else [])[:4]:
        if isinstance(entry, list) and len(entry) == 4 and all(type(n) is int for n in entry[1:]):
            spans.append(Span(entry[0] if isinstance(entry[0], str) else None, *entry[1:]))
    return spans


PAUSE_MIN_S = 1.0  # below this, an oversleep is scheduling noise on a loaded host, not a pause
PAUSE_FRACTION = 0.25  # ... and also below this share of the heartbeat timeout


def pause_gap(asked_s: float, slept_s: float, heartbeat_timeout: float) -> float | None:
    """The watchdog asked to wait `asked_s` and came back after `slept_s`: the part of it that was a pause
    of the watchdog itself (None: an ordinary wake-up). Far longer than asked means the process, or the
    machine, was not running (SIGSTOP, a suspended VM or laptop)."""
    over = slept_s - max(0.0, asked_s)
    if over > max(PAUSE_MIN_S, PAUSE_FRACTION * heartbeat_timeout):
        return over
    return None
