"""The worker as the watchdog's child: the entry point the watchdog spawns (`run_child`).

It wires the worker to its two pipes to the watchdog:

* the log pipe becomes fds 1 and 2, so everything the process (or a library, a C extension, a
  grandchild) prints reaches the watchdog, which relays it in order;
* the heartbeat pipe carries one `Beat` per line (JSON, newline-terminated, far below PIPE_BUF so
  each write is atomic). Beats are built from the listen loop's own `Progress` and written from the
  same event loop: at every progress change and at least every min(heartbeat interval, current retry
  delay). A loop that is blocked therefore stops beating. The fd is non-blocking: a beat that does not
  fit is dropped and counted, never waited for; a broken pipe means the watchdog is gone: stop.

The child also dies with its parent: PR_SET_PDEATHSIG (SIGTERM) and, belt and braces, a check that
its parent pid has not changed at every beat; and nothing it started outlives it (`orphans`).
SIGINT and SIGHUP are ignored: a Ctrl-C or a hang-up of the terminal reaches the whole process
group, and the watchdog alone decides about its child.

Beats are written in the version the watchdog said it speaks (`beat.VERSION_ENV`; 1 from a watchdog
too old to say) and carry the access tokens the worker learnt, so that the watchdog redacts them from
everything the process prints, raw `print()`s and library output included.

The event loop runs and ends as the worker alone runs it (`runloop`): a stop is never held up by a
thread stuck in getaddrinfo. asyncio is imported inside the functions: the watchdog imports this
module to name the spawn target, and must not load asyncio (and with it ssl, ~8 MB) into the
supervisor for that.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import signal
import sys
import time
from dataclasses import replace
from typing import Any

from qqworker import orphans
from qqworker.contract.beat import MAX_REDACT_CHARS, VERSION_ENV, Phase, Progress
from qqworker.contract.events import LogEvent
from qqworker.contract.exitcodes import ExitCode
from qqworker.contract.logs import redactor
from qqworker.contract.settings import Settings
from qqworker.logs import configure_logging, pump_outputs

log = logging.getLogger("qqworker.child")

PR_SET_PDEATHSIG = 1
MIN_BEAT_PERIOD_S = 0.05
DROP_REPORT_EVERY_S = 10.0


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Asks the kernel to send `sig` when the parent (thread) that spawned us dies; Linux only."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class Beater:
    """Writes beats to the heartbeat pipe without ever blocking the loop."""

    def __init__(
        self,
        fd: int,
        progress: Progress,
        interval: float,
        parent_pid: int,
        version: int = 1,
        known_secret: str | None = None,
    ) -> None:
        self.fd = fd
        self.progress = progress
        self.interval = interval
        self.parent_pid = parent_pid
        self.version = version  # the watchdog's beat version
        self.known_secret = known_secret  # the watchdog has it already: not sent
        self.sent = 0
        self.dropped = 0
        self.broken = False
        self.on_broken: Any = None  # called once when the watchdog is gone
        self._last_drop_report = 0.0
        os.set_blocking(fd, False)

    def send(self) -> None:
        if self.broken:
            return
        if os.getppid() != self.parent_pid:
            self._gone("the watchdog is gone (the parent pid changed)")
            return
        beat = self.progress.beat()
        if self.version >= 2:
            beat = replace(beat, redact=self.secrets() or None)
        data = beat.encode(self.version) + b"\n"
        try:
            os.write(self.fd, data)
            self.sent += 1
        except BlockingIOError:
            self._drop()
        except OSError as exc:  # EPIPE: the read end is closed; anything else: no pipe to beat on
            self._gone(f"the heartbeat pipe is unusable ({errno.errorcode.get(exc.errno or 0, exc)})")

    def secrets(self) -> tuple[str, ...]:
        """The tokens for the watchdog to redact, newest first, within the beat's size budget."""
        chosen: list[str] = []
        size = 0
        for secret in reversed(redactor.learnt()):
            if secret == self.known_secret:
                continue
            size += len(secret) + 3
            if size > MAX_REDACT_CHARS:
                break
            chosen.append(secret)
        return tuple(chosen)

    def _drop(self) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_report >= DROP_REPORT_EVERY_S:
            self._last_drop_report = now
            log.warning(
                "The heartbeat pipe is full: %d beat(s) dropped so far (the watchdog is not reading)",
                self.dropped,
                extra={"event": LogEvent.BEAT_DROPPED.value, "dropped_beats": self.dropped},
            )

    def _gone(self, reason: str) -> None:
        self.broken = True
        if self.on_broken is not None:
            self.on_broken(reason)

    def period(self) -> float:
        """At least every heartbeat interval, and at the due time of the next attempt."""
        progress = self.progress
        period = self.interval
        if progress.phase is Phase.WAITING and progress.next_attempt_at is not None:
            until_due = progress.next_attempt_at - progress.clock()
            if until_due > 0:
                period = min(period, until_due)
        return max(MIN_BEAT_PERIOD_S, period)

    async def run(self) -> None:
        import asyncio

        while not self.broken:
            self.send()
            await asyncio.sleep(self.period())


async def serve_child(settings: Settings, session: Any, beater: Beater) -> int:
    """Runs a Worker beating on `beater` (its progress is the worker's), stopped by SIGTERM or by
    the watchdog going away; saves the dedupe window on the way out."""
    import asyncio

    from qqworker.worker import Worker  # after the first beat: the heavy imports come here

    loop = asyncio.get_running_loop()
    progress = beater.progress
    worker = Worker(settings, session=session, progress=progress)
    beater.on_broken = lambda reason: loop.call_soon(worker.stop, reason)
    # Every change is beaten at once; the write is a non-blocking os.write of one short line.
    progress.on_change = beater.send
    loop.add_signal_handler(signal.SIGTERM, worker.stop, "received SIGTERM")
    beats = asyncio.create_task(beater.run(), name="qqworker-beat")
    seen = seen_keeper(settings, worker)
    saves = asyncio.create_task(seen.run(), name="qqworker-seen") if seen is not None else None
    pump = pump_outputs(loop)
    try:
        return int(await worker.run())
    finally:
        if pump is not None:
            pump.close()
        progress.on_change = None
        beats.cancel()
        if saves is not None:
            saves.cancel()
        await asyncio.gather(beats, *([saves] if saves else []), return_exceptions=True)
        if seen is not None:  # what was handled up to the stop, for the successor
            from qqworker.seen_store import FINAL_SAVE_TIMEOUT_S

            await seen.save(timeout=FINAL_SAVE_TIMEOUT_S)
        loop.remove_signal_handler(signal.SIGTERM)
        # Stopped and exiting: a late SIGTERM (the watchdog's own after GNU timeout's group-wide one)
        # must not turn exit 0 into "killed by SIGTERM". The watchdog still has SIGKILL.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def watchdog_beat_version() -> int:
    """The beat version our watchdog speaks (1: it is too old to say); not passed on to grandchildren."""
    try:
        return max(1, int(os.environ.pop(VERSION_ENV, "1")))
    except ValueError:
        return 1


def seen_keeper(settings: Settings, worker: Any) -> Any:
    """The dedupe window's writer (qqworker/seen_store.py), when a state file is configured."""
    if not settings.state_file:
        return None
    from qqworker.seen_store import SeenKeeper, seen_path

    def unfinished() -> list[Any]:
        return worker.dispatcher.unfinished() if worker.dispatcher is not None else []

    return SeenKeeper(seen_path(settings.state_file), settings.app_id, worker.session, unfinished)


def restore_seen(settings: Settings, session: Any) -> None:
    """Takes the predecessor's handled event keys into a resumed session's dedupe window."""
    if not settings.state_file or session is None:
        return
    from qqworker.contract.events import LogEvent
    from qqworker.contract.logs import log_event
    from qqworker.seen_store import load, seen_path

    path = seen_path(settings.state_file)
    keys, problem = load(path, app_id=settings.app_id, session_id=session.session_id)
    if problem is not None:
        log_event(
            log,
            LogEvent.DEDUPE_IGNORED,
            f"Ignoring the dedupe window {path}: {problem}; replayed events may reach the handler twice",
            level=logging.WARNING,
            path=path,
            reason=problem,
        )
    session.remember(keys)


def run_child(
    settings: Settings,
    resume: tuple[str, int] | None,
    generation: int,
    beat_conn: Any,
    log_conn: Any,
    parent_pid: int,
) -> None:
    """The spawned process's target. Exits with the worker's exit code."""
    # Output first: from here on every byte the process writes goes to the watchdog.
    log_fd = log_conn.fileno()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    log_conn.close()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.reconfigure(line_buffering=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before the kernel could be told
        sys.exit(int(ExitCode.OK))
    orphans.guard(parent_pid, settings.stop_timeout)

    redactor.add(settings.app_secret)
    configure_logging(
        role="worker",
        generation=generation,
        stream=sys.stdout,
        buffer_bytes=settings.log_buffer_kb * 1024,
        retry_s=settings.log_retry,
    )
    beat_fd = os.dup(beat_conn.fileno())
    beat_conn.close()
    # The session handed over is in the very first beat, so a child killed early passes it on.
    progress = Progress(session_id=resume[0] if resume else None, seq=resume[1] if resume else None)
    version = watchdog_beat_version()
    beater = Beater(beat_fd, progress, settings.heartbeat_interval, parent_pid, version, settings.app_secret)
    # A new token is beaten before anything can print it: the watchdog reads beats before output.
    redactor.on_add = beater.send
    beater.send()  # STARTING, before the worker's imports

    from qqworker.protocol import ResumePoint
    from qqworker.runloop import exit_despite_stuck_threads, run_loop

    session = None if resume is None else ResumePoint(session_id=resume[0], seq=resume[1])
    restore_seen(settings, session)
    try:
        code = run_loop(serve_child(settings, session, beater))  # the same loop as the worker alone
    finally:
        redactor.on_add = None
        os.close(beat_fd)
        if os.getppid() != parent_pid:
            orphans.end_descendants(grace=0.2)
    exit_despite_stuck_threads(code)
    sys.exit(code)
