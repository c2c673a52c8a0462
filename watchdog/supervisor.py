"""The supervisor: the thin I/O shell around `SupervisionPolicy`.

It spawns the child, feeds the policy what the child's two pipes carry (`watchdog.pipes`: its output,
relayed into the one ordered JSON stream, and its heartbeats), samples its memory, and carries out what
the policy decides: kill the tree, respawn after a delay, give up (69) or stop (78). It also owns the
process's signals (SIGTERM/SIGINT stop, a second one forces, SIGHUP reopens the log file, SIGCHLD wakes
it), when the status file is written (`watchdog.snapshot` says what is in it) and the systemd
notifications.

One thread and one `selectors` loop: the two pipes, the signal wake-up pipe (`signal.set_wakeup_fd`:
the kernel-level handler writes the signal's number there), with `--http` the endpoints' sockets
(`watchdog.monitoring`) and, while one is stalled, an output's fd (EVENT_WRITE: its own lines wait in its
bounded buffer, nothing else does). Every wait is bounded by the next thing due: a policy deadline, the
status file, a systemd ping, a kill under way, a failing output's retry. A wait that comes back far later
than asked is a pause of the watchdog itself (`watchdog.paused`). No asyncio here: it would load ssl and
cost the supervisor a third more memory for nothing it needs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import time
from collections.abc import Callable
from typing import Any

from qqworker.contract.beat import Beat, Phase
from qqworker.contract.events import LogEvent
from qqworker.contract.exitcodes import ExitCode, exit_meaning
from qqworker.contract.logs import log_event, rfc3339_utc
from qqworker.contract.settings import Settings
from qqworker.delivery import report_abandoned
from qqworker.hosts import prefer_hosts
from qqworker.logs import JsonLinesHandler
from qqworker.orphans import become_subreaper
from watchdog import process
from watchdog.monitoring import Monitoring
from watchdog.pipes import BeatReader, OutputReader
from watchdog.policy import (
    Decision,
    GiveUp,
    Kill,
    PoisonWatch,
    Respawn,
    Stop,
    SupervisionPolicy,
    SupervisionTimings,
    pause_gap,
    stranded_spans,
)
from watchdog.sdnotify import Notifier
from watchdog.session_store import SessionFile, resumed_from
from watchdog.snapshot import StatusSnapshot
from watchdog.states import SupervisorState

__all__ = ["FORCE_REPEAT_S", "Supervisor"]

log = logging.getLogger("watchdog")

RSS_EVERY_S = 1.0
TREE_EVERY_S = 5.0
MAX_WAIT_S = 5.0
DRAIN_TIMEOUT_S = 2.0  # after the child's exit, how long its output may take to reach EOF
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
# The same stop signal again within this long is the same request, not a "force": GNU timeout signals
# the pid and then its process group, so one stop arrives as two SIGTERMs microseconds apart.
FORCE_REPEAT_S = 1.0


class Supervisor:
    """One watchdog: runs one worker child at a time until stopped, gave up or a permanent error.

    `run()` is the whole life (exit code returned); `request_stop` and `reopen_log` are what its
    signals do. The decisions are `policy`'s (and `poison`'s); this class observes and applies them.
    """

    def __init__(
        self,
        settings: Settings,
        out: JsonLinesHandler,
        *,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.out = out
        self.clock = clock
        self.notifier = notifier if notifier is not None else Notifier(unset_environment=True)
        self.policy = SupervisionPolicy(SupervisionTimings.from_settings(settings))
        self.poison = PoisonWatch(settings.poison_after)
        self.child: process.Child | None = None
        self.generation = 0
        # The API base and token URL the last child used: the next child starts with them.
        self.api_base: str = settings.rest_base
        self.token_url: str = settings.token_urls[0] if settings.token_urls else ""
        self.state = SupervisorState.STARTING
        self.stop_reason: str | None = None
        self.force_signal: int | None = None
        self._stop_signal: tuple[int, float] | None = None  # the first stop signal and when it came
        self.exit_code: int | None = None
        self.last_exit: dict[str, Any] | None = None
        self.started_at = rfc3339_utc(time.time())
        self._sel = selectors.DefaultSelector()
        self._kill: process.TreeKill | None = None
        self._helpers: set[int] = set()
        # The child's two pipes; a read of its output reads the beats first (OutputReader says why).
        self.beats = BeatReader(self._unregister, self._now, self._on_beat, self._on_beats_eof)
        self.output = OutputReader(
            self._unregister, self._now, self.beats.read, self._on_line, self._on_output_eof
        )
        self._next_rss = self._next_tree = float("-inf")
        self.snapshot = StatusSnapshot(self)
        self.monitoring = Monitoring(settings, self._sel, out, self.snapshot.view, clock)
        self.session_file = SessionFile(settings.state_file, settings.app_id)
        self.resumed_from: dict[str, Any] | None = None
        self._writing: dict[int, Any] = {}  # stalled output fds registered for EVENT_WRITE
        # The clock as the loop last saw it, or the end of the wait it is in: a reading far past it means the
        # watchdog itself was not running (a pause), wherever in the loop the pause caught it.
        self._seen_at: float | None = None

    # The loop ---------------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.monitoring.start()
        except OSError as exc:
            reason = f"cannot serve HTTP on {self.settings.http}: {exc.strerror or exc}"
            log_event(log, LogEvent.WATCHDOG_STOPPED, f"Cannot start: {reason}", level=logging.CRITICAL,
                      reason=reason, exitcode=int(ExitCode.CONFIG))  # fmt: skip
            self._sel.close()
            return int(ExitCode.CONFIG)
        signal_r, signal_w = os.pipe()
        for fd in (signal_r, signal_w):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        previous = {sig: signal.signal(sig, _ignore_here) for sig in SIGNALS}
        old_wakeup = signal.set_wakeup_fd(signal_w, warn_on_full_buffer=False)
        self._sel.register(signal_r, selectors.EVENT_READ, lambda: self._on_signals(signal_r))
        # `cmd_run` blocked the stop signals from its first line: one sent during start-up was held
        # pending, and arrives now, through the wake-up pipe, as a clean stop before any spawn.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        self.out.outputs.watched = True  # a stalled output is written when the loop sees it writable
        subreaper = become_subreaper()  # its workers' orphans come to it, not to init
        restored = self.session_file.restore(self.settings.resume_max_age)
        self.resumed_from = resumed_from(restored)
        if restored.session is not None:
            assert restored.session.session_id is not None and restored.session.seq is not None
            self.policy.session_restored(restored.session.session_id, restored.session.seq)
            if restored.session.api_base in self.settings.api_bases:  # a base the last run moved to
                self.api_base = restored.session.api_base
        log_event(
            log,
            LogEvent.WATCHDOG_STARTED,
            f"Watchdog started (heartbeat timeout {self.settings.heartbeat_timeout:g}s, "
            f"attempt grace {self.settings.attempt_grace:g}s, start method {process.START_METHOD}; "
            f"API base {self.api_base}, token endpoint {self.token_url})"
            + (f"; resuming the persisted session ({restored.reason})" if self.policy.resume else ""),
            config=self.settings.public_dict(),
            subreaper=subreaper,
            api_base=self.api_base,
            token_url=self.token_url,
            resumed_from=self.resumed_from,
            **self.monitoring.describe(),
        )
        if restored.session is None and not restored.quiet:
            log_event(
                log,
                LogEvent.SESSION_IGNORED,
                f"Ignoring the persisted session in {self.settings.state_file}: {restored.reason}; "
                "the worker identifies anew",
                level=logging.WARNING,
                path=self.settings.state_file,
                reason=restored.reason,
            )
        self._on_signals(signal_r)  # a stop that came during start-up
        try:
            self.exit_code = self._supervise()
        finally:
            # Exiting now, with a code that means something: a late stop signal must not replace it
            # (blocked, it stays pending until the process is gone; there is no other thread).
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.monitoring.close()
            self._sel.close()
            os.close(signal_r)
            os.close(signal_w)
            self.session_file.stop()
            self.snapshot.write(force=True)
            self.notifier.close()
        return self.exit_code

    def _poll(self, timeout: float) -> None:
        """One turn: waits up to `timeout` for a pipe, a signal or a stalled output; handles what came."""
        self._watch_outputs()
        asked = max(0.0, timeout)
        self._now()
        self._seen_at = self.clock() + asked
        ready = self._sel.select(asked)
        self._now()  # a pause is applied before any beat or line read now is judged
        for key, _ in ready:
            key.data()

    def _now(self) -> float:
        """The clock, for the loop's judgements: a reading far beyond the last one (or beyond the end of
        the wait in progress) was a pause of the watchdog itself, and is taken as one first."""
        now = self.clock()
        if self._seen_at is not None:
            gap = pause_gap(0.0, now - self._seen_at, self.settings.heartbeat_timeout)
            if gap is not None:
                self._seen_at = now
                self._paused(gap)
        self._seen_at = now
        return now

    def _watch_outputs(self) -> None:
        """EVENT_WRITE for exactly the outputs that are stalled with lines pending."""
        outputs = self.out.outputs
        wanted = dict(outputs.writers())
        for fd in list(self._writing):
            if wanted.get(fd) is not self._writing[fd]:
                self._unregister(fd)
                del self._writing[fd]
        for fd, output in wanted.items():
            if fd in self._writing:
                continue
            try:
                self._sel.register(fd, selectors.EVENT_WRITE, lambda o=output: outputs.flush(o))
            except (KeyError, ValueError, OSError):  # not pollable: its retry covers it
                continue
            self._writing[fd] = output

    def _paused(self, gap: float) -> None:
        log_event(
            log,
            LogEvent.WATCHDOG_PAUSED,
            f"The watchdog itself was not running for {gap:.1f}s (host suspend, SIGSTOP): the worker's "
            "heartbeat window and deadlines start again from now",
            level=logging.WARNING,
            gap_s=round(gap, 3),
        )
        self.policy.paused(self.clock(), gap)

    def _on_signals(self, fd: int) -> None:
        try:
            data = os.read(fd, 512)
        except BlockingIOError:
            return
        for number in data:
            if number in (signal.SIGTERM, signal.SIGINT):
                self.request_stop(number)
            elif number == signal.SIGHUP:
                self.reopen_log()
            # SIGCHLD: waking up was the point; the loop looks at the child next.

    def _supervise(self) -> int:
        while True:
            if self.stop_reason is not None:
                return self._stopped()
            decision = self._run_one_child()
            if self.stop_reason is not None:
                return self._stopped()
            if isinstance(decision, Stop):
                self.state = SupervisorState.FATAL
                log_event(
                    log,
                    LogEvent.WATCHDOG_STOPPED,
                    f"Not respawning: {decision.reason}; exiting {decision.exit_code}",
                    level=logging.CRITICAL,
                    reason=decision.reason,
                    exitcode=decision.exit_code,
                )
                self.notifier.stopping(status=f"stopped: {decision.reason}")
                return int(decision.exit_code)
            if isinstance(decision, GiveUp):
                self.state = SupervisorState.GAVE_UP
                log_event(
                    log,
                    LogEvent.WATCHDOG_GAVE_UP,
                    f"Giving up after {decision.restarts} restarts within "
                    f"{self.settings.restart_window:g}s; exiting {decision.exit_code}",
                    level=logging.CRITICAL,
                    restarts=decision.restarts,
                )
                self.notifier.stopping(status="gave up: restart limit reached")
                return int(decision.exit_code)
            assert isinstance(decision, Respawn)
            self.state = SupervisorState.RESPAWNING
            self.monitoring.monitor.respawn_scheduled()
            log_event(
                log,
                LogEvent.RESPAWN_SCHEDULED,
                f"Respawning the worker in {decision.delay_s:.1f}s (restart {decision.restarts})",
                delay_s=round(decision.delay_s, 3),
                restarts=decision.restarts,
            )
            self.notifier.status(f"respawning in {decision.delay_s:.1f}s (restart {decision.restarts})")
            self.snapshot.write(force=True)
            self._sleep(decision.delay_s)

    def _stopped(self) -> int:
        self.state = SupervisorState.STOPPED
        forced = self.force_signal is not None
        code = 128 + self.force_signal if self.force_signal is not None else int(ExitCode.OK)
        log_event(
            log,
            LogEvent.WATCHDOG_STOPPED,
            f"Watchdog stopped: {self.stop_reason}" + (" (forced)" if forced else ""),
            reason=self.stop_reason,
            forced=forced,
            exitcode=code,
        )
        return code

    def _sleep(self, delay: float) -> None:
        """The respawn delay; a stop request ends it at once; systemd keeps being pinged."""
        deadline = self.clock() + delay
        while self.stop_reason is None:
            now = self.clock()
            if now >= deadline:
                return
            self._housekeeping(now)
            self._poll(min(deadline, self._next_wake(now)) - now)

    # One child's life -------------------------------------------------------------------------

    def _spawn(self) -> process.Child:
        self.generation += 1
        formatter = self.out.formatter
        if formatter is not None and hasattr(formatter, "generation"):
            formatter.generation = self.generation  # the watchdog's lines name the child they concern
        settings = prefer_hosts(self.settings, self.api_base, self.token_url)
        resume = self.policy.resume
        child = process.spawn_child(settings, resume, self.generation)
        self.child = child
        self.policy.child_spawned(self.clock())
        self._helpers = process.helper_pids()
        self.output.attach(child.pid, child.log_fd)
        self.beats.attach(child.beat_fd)
        self._sel.register(child.log_fd, selectors.EVENT_READ, self.output.read)
        self._sel.register(child.beat_fd, selectors.EVENT_READ, self.beats.read)
        self.monitoring.monitor.child_spawned()
        log_event(
            log,
            LogEvent.CHILD_SPAWNED,
            f"Started worker generation {self.generation} (pid {child.pid})"
            + (f", resuming session {resume[0]} after seq {resume[1]}" if resume else ", new session"),
            child_pid=child.pid,
            resume=resume is not None,
        )
        self.state = SupervisorState.RUNNING
        return child

    def _run_one_child(self) -> Decision | None:
        try:
            child = self._spawn()
        except Exception as exc:  # fork/exec failed (no memory, no fds...): count it as a crash
            log_event(
                log,
                LogEvent.CHILD_EXITED,
                f"The worker could not be started: {exc}",
                level=logging.ERROR,
                child_pid=None,
                exitcode=None,
                meaning=f"could not be started: {exc}",
            )
            self.monitoring.monitor.child_exited(None)
            return self.policy.child_exited(self.clock(), None)
        if self.generation == 1:
            self.notifier.ready(status="supervising the worker")
        self.snapshot.write(force=True)
        try:
            self._watch(child)
            self._drain(child)
        finally:
            self._unregister(child.log_fd)
            self._unregister(child.beat_fd)
            child.close_pipes()
            self.output.detach()
            self.beats.detach()
        exitcode = child.exitcode
        log_event(
            log,
            LogEvent.CHILD_EXITED,
            f"Worker generation {child.generation} (pid {child.pid}) exited {exitcode}: "
            f"{exit_meaning(exitcode)}",
            level=logging.INFO if exitcode == 0 else logging.WARNING,
            child_pid=child.pid,
            exitcode=exitcode,
            meaning=exit_meaning(exitcode),
        )
        self.child = None
        self.monitoring.monitor.child_exited(exitcode)
        self.last_exit = {
            "exitcode": exitcode,
            "meaning": exit_meaning(exitcode),
            "at": rfc3339_utc(time.time()),
        }
        if self.stop_reason is not None:
            self.policy.child_stopped(exitcode)
            return None
        last_beat = self.policy.last_beat
        decision = self.policy.child_exited(self.clock(), exitcode)
        if exitcode != 0:
            self._after_death(last_beat, respawn=isinstance(decision, Respawn))
        self.snapshot.write(force=True)
        return decision

    def _after_death(self, beat: Beat | None, *, respawn: bool) -> None:
        """What a dead child's last beat says was lost with it, and whether it died of a poison event."""
        spans = stranded_spans(beat)
        if spans:
            report_abandoned(spans, f"worker generation {self.generation} died", log)
        skip = self.poison.child_died(beat) if respawn else None
        if skip is None:
            return
        self.policy.skip_past(skip)
        log_event(
            log,
            LogEvent.EVENTS_SKIPPED,
            f"Skipping event seq {skip.seq} ({skip.event_type}, id {skip.event_id}): {skip.deaths} "
            f"workers in a row died with it unhandled; the next one resumes after it",
            level=logging.ERROR,
            **skip.fields(),
        )

    def _watch(self, child: process.Child) -> None:
        """Until the child has exited and any kill under way is complete."""
        stop_kill_started = False
        while True:
            now = self._now()
            self._step_kill(now)
            if child.exitcode is not None and self._kill is None:
                return
            if self.stop_reason is not None and not stop_kill_started:
                stop_kill_started = True
                self._start_kill(child, self.stop_reason, force=self.force_signal is not None, now=now)
            elif self.force_signal is not None and self._kill is not None and not self._kill.force:
                self._start_kill(child, f"{self.stop_reason} (forced)", force=True, now=now)
            if child.exitcode is None and self._kill is None:
                self._judge(child, now)
            self._housekeeping(now)
            self._poll(self._next_wake(now) - now)

    def _judge(self, child: process.Child, now: float) -> None:
        self._apply(child, self.policy.tick(now))
        if self.settings.memory_limit_mb > 0 and now >= self._next_rss:
            self._next_rss = now + RSS_EVERY_S
            rss = process.rss_mb(child.pid)
            if rss is not None:
                self._apply(child, self.policy.rss(now, rss))
        if now >= self._next_tree:
            self._next_tree = now + TREE_EVERY_S
            process.remember_tree(child)

    def _housekeeping(self, now: float) -> None:
        self.notifier.ping_if_due(now)
        self.monitoring.tick(now)
        self.out.outputs.retry_due(now)
        if now >= self.snapshot.next_due:
            self.snapshot.write()

    def _next_wake(self, now: float) -> float:
        times = [now + MAX_WAIT_S, self.snapshot.next_due]
        if self._kill is not None:
            times.append(now + process.POLL_S)
        elif self.child is not None:
            deadline = self.policy.next_deadline()
            if deadline is not None:
                times.append(deadline + 0.001)  # the policy judges "past the deadline"
            times.append(self._next_tree)
            if self.settings.memory_limit_mb > 0:
                times.append(self._next_rss)
        ping = self.notifier.next_ping_delay(now)
        if ping is not None:
            times.append(now + ping)
        monitoring = self.monitoring.next_wake()
        if monitoring is not None:
            times.append(monitoring)
        retry = self.out.outputs.next_retry()
        if retry is not None:
            times.append(retry)
        return max(now, min(times))

    # Decisions and kills ----------------------------------------------------------------------

    def _apply(self, child: process.Child, decision: Decision) -> None:
        if isinstance(decision, Kill) and self._kill is None:
            log_event(log, decision.event, decision.message, level=logging.WARNING, **decision.fields)
            self._start_kill(child, decision.reason, now=self.clock(), force=decision.force)

    def _start_kill(self, child: process.Child, reason: str, *, now: float, force: bool = False) -> None:
        def on_signal(sig: str, count: int) -> None:
            log_event(
                log,
                LogEvent.CHILD_KILLED,
                f"Sending {sig} to worker generation {child.generation} (pid {child.pid}) and its tree "
                f"({count} process{'es' if count != 1 else ''}): {reason}",
                level=logging.WARNING,
                child_pid=child.pid,
                reason=reason,
                signal=sig,
                processes=count,
            )

        self.state = SupervisorState.STOPPING if self.stop_reason is not None else SupervisorState.KILLING
        self.monitoring.monitor.child_killed(reason)
        self._kill = process.TreeKill(
            child, self.settings.stop_timeout, self._helpers, on_signal, force=force, now=now
        )
        self.snapshot.write(force=True)
        self._step_kill(now)

    def _step_kill(self, now: float) -> None:
        kill = self._kill
        if kill is None or not kill.step(now):
            return
        self._kill = None
        if kill.survivors:
            log.error(
                "Processes of the worker's tree survived SIGKILL: %s",
                kill.survivors,
                extra={
                    "event": LogEvent.KILL_SURVIVORS.value,
                    "survivors": kill.survivors,
                    "child_pid": kill.child.pid,
                },
            )

    def _kill_to_the_end(self, child: process.Child, reason: str) -> None:
        self._start_kill(child, reason, now=self.clock())
        while self._kill is not None:
            self._poll(process.POLL_S)
            self._step_kill(self.clock())

    # Pipes ------------------------------------------------------------------------------------

    def _unregister(self, fd: int) -> None:
        if fd >= 0:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(fd)

    def _on_output_eof(self) -> None:
        child = self.child
        if child is not None and child.exitcode is None:
            self._apply(child, self.policy.logs_closed(self.clock()))

    def _on_line(self, now: float, event: str, text: str) -> None:
        """A contract line of the child's: into the one stream as it is, then judged."""
        assert self.child is not None
        self.out.write_line(text)
        self.monitoring.monitor.on_line(event, text)
        self._apply(self.child, self.policy.log_event(now, event))

    def _on_beats_eof(self, now: float) -> None:
        assert self.child is not None
        self._apply(self.child, self.policy.beats_closed(now))

    def _on_beat(self, now: float, beat: Beat) -> None:
        child = self.child
        assert child is not None
        self.policy.session_seen(beat)
        resume = self.policy.resume
        if beat.api_base:
            self.api_base = beat.api_base
        if beat.token_url:
            self.token_url = beat.token_url
        self.monitoring.monitor.on_beat(beat)
        self.session_file.observe(  # what the next child would be handed, for the next watchdog
            session_id=resume[0] if resume else None,
            seq=resume[1] if resume else None,
            api_base=getattr(beat, "api_base", None),
            connected=beat.phase == Phase.CONNECTED.value,
        )
        previous = self.policy.phase
        self._apply(child, self.policy.beat(now, beat))
        if self.policy.phase is not previous:
            self._phase_changed()

    def _drain(self, child: process.Child) -> None:
        """Reads the child's output to EOF, so its last lines come before `child.exited`."""
        for attempt in range(2):
            deadline = self.clock() + DRAIN_TIMEOUT_S
            while not self.output.eof and self.clock() < deadline:
                self.output.read()
                if not self.output.eof:
                    self._poll(0.05)
            if self.output.eof:
                break
            if attempt == 0 and process.strays(child, self._helpers):
                # Something the child left behind still holds the pipe open: it goes too.
                self._kill_to_the_end(child, "left behind by the worker, holding its output open")
        if not self.output.eof:
            log.warning(
                "The worker's output did not reach EOF within %.1fs; closing it",
                DRAIN_TIMEOUT_S * 2,
                extra={"event": LogEvent.OUTPUT_NO_EOF.value, "child_pid": child.pid},
            )
        if not self.beats.eof:
            self.beats.read()
        if process.strays(child, self._helpers):
            self._kill_to_the_end(child, "left behind by the worker")

    # Signals ---------------------------------------------------------------------------------

    def request_stop(self, sig: int = signal.SIGTERM) -> None:
        """The first stop signal stops cleanly; a second forces, if it is a distinct signal or comes
        FORCE_REPEAT_S after the first (a burst of the same signal is one request)."""
        name = signal.Signals(sig).name
        now = self.clock()
        if self.stop_reason is not None and self.force_signal is None and self._stop_signal is not None:
            first, at = self._stop_signal
            if sig == first and now - at < FORCE_REPEAT_S:
                log_event(
                    log,
                    LogEvent.WATCHDOG_STOPPING,
                    f"Received {name} again {now - at:.3f}s after the first: the same stop request "
                    f"(send it again after {FORCE_REPEAT_S:g}s, or the other signal, to force)",
                    signal=name,
                    forced=False,
                    repeated=True,
                )
                return
        if self.stop_reason is None:
            self._stop_signal = (sig, now)
            self.stop_reason = f"received {name}"
            log_event(
                log,
                LogEvent.WATCHDOG_STOPPING,
                f"Received {name}: stopping the worker (a second signal forces)",
                signal=name,
                forced=False,
            )
            self.notifier.stopping(status=f"stopping: received {name}")
        elif self.force_signal is None:
            self.force_signal = sig
            log_event(
                log,
                LogEvent.WATCHDOG_STOPPING,
                f"Received {name} again: killing the worker's tree now",
                level=logging.WARNING,
                signal=name,
                forced=True,
            )

    def reopen_log(self) -> None:
        error = self.out.reopen()
        if error is not None:  # replaced by a FIFO, a directory, no permission...: retried as it fails
            log_event(
                log,
                LogEvent.LOG_REOPENED,
                f"Cannot reopen the log file: {error}; stdout goes on, the file is retried every "
                f"{self.settings.log_retry:g}s",
                level=logging.ERROR,
                path=self.out.file_path,
                error=error,
            )
            return
        log_event(
            log,
            LogEvent.LOG_REOPENED,
            f"Reopened the log file {self.out.file_path}"
            if self.out.file_path
            else "SIGHUP: no log file to reopen",
            path=self.out.file_path,
        )

    # Status ----------------------------------------------------------------------------------

    def _phase_changed(self) -> None:
        phase = self.policy.phase
        self.notifier.status(f"worker {phase.value if phase else 'starting'} (generation {self.generation})")
        self.snapshot.write(force=True)


def _ignore_here(signum: int, frame: Any) -> None:
    """The C-level handler has already written the signal's number to the wake-up pipe."""
