"""The resumable session on disk (`QQW_STATE_FILE`), so that it outlives the watchdog process.

The platform keeps a session resumable for a while after its connection is gone, and replays what
was sent meanwhile on a Resume. The watchdog hands the session between its own workers in memory;
this file carries it across a restart of the watchdog itself (an upgrade, `systemctl restart`, a
crash, a reboot). It holds the session id, the seq handed on (never past an event not yet handled),
the API base in use, the app id it belongs to and when the session was last seen connected; never
the secret or a token. Written atomically (temporary file, fsync, rename), mode 0600.

`judge` is the pure part: given the file's bytes, the app id and the wall-clock time, it says whether
the session may be handed to the first worker, and why not. `SessionKeeper` decides when to write.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from qqworker.atomic import LatestWriter, write_atomic
from qqworker.contract.events import LogEvent
from qqworker.contract.logs import log_event, rfc3339_utc

log = logging.getLogger("watchdog")

__all__ = [
    "REFRESH_EVERY_S",
    "RestoreDecision",
    "SessionFile",
    "SessionKeeper",
    "StoredSession",
    "judge",
    "load",
    "parse",
    "read",
    "resumed_from",
]

VERSION = 1
# A timestamp this far in the future is not trusted (the clock was changed): the age is unknown.
FUTURE_TOLERANCE_S = 300.0
# While connected, the file is refreshed at least this often so that "last connected" stays close
# to the truth when the watchdog dies without a word (SIGKILL, power loss).
REFRESH_EVERY_S = 5.0
MAX_FILE_BYTES = 64 * 1024
STOP_FLUSH_S = 2.0  # at the stop, the last write may take this long


@dataclass(frozen=True)
class StoredSession:
    app_id: str
    session_id: str | None
    seq: int | None
    api_base: str | None
    last_connected_at: float | None  # wall clock (epoch seconds)
    saved_at: float
    clean_stop: bool = False  # the last write was the watchdog's clean stop

    def encode(self) -> bytes:
        return (json.dumps({"version": VERSION, **asdict(self)}, indent=2) + "\n").encode()

    @property
    def resumable(self) -> bool:
        return self.session_id is not None and self.seq is not None


@dataclass(frozen=True)
class RestoreDecision:
    session: StoredSession | None  # to hand to the first worker; None: start a new session
    reason: str  # why (for the log line), also when it is used
    quiet: bool = False  # nothing worth a line (no file at all)
    age_s: float | None = None


def _field(raw: dict[str, Any], name: str, kinds: tuple[type, ...], *, optional: bool = True) -> Any:
    value = raw.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, kinds):
        wanted = " or ".join(k.__name__ for k in kinds)
        raise ValueError(f"{name} is not a {wanted}" + (" or null" if optional else ""))
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} is not a finite number")
    return value


def parse(data: bytes) -> StoredSession:
    """The file's content as a StoredSession; ValueError says what is wrong with it."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({type(exc).__name__}: {str(exc)[:80]}): truncated or corrupt") from None
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    if raw.get("version") != VERSION:
        raise ValueError(f"unknown version {raw.get('version')!r} (expected {VERSION})")
    session_id = _field(raw, "session_id", (str,))
    seq = _field(raw, "seq", (int,))
    if session_id is not None and not session_id:
        raise ValueError("session_id is empty")
    if seq is not None and seq < 0:
        raise ValueError("seq is negative")
    return StoredSession(
        app_id=_field(raw, "app_id", (str,), optional=False),
        session_id=session_id,
        seq=seq,
        api_base=_field(raw, "api_base", (str,)),
        last_connected_at=_field(raw, "last_connected_at", (int, float)),
        saved_at=_field(raw, "saved_at", (int, float), optional=False),
        clean_stop=raw.get("clean_stop") is True,
    )


def judge(data: bytes | None, *, app_id: str, now: float, max_age_s: float) -> RestoreDecision:
    """Use the persisted session, or ignore it (with the reason). `now`: wall clock, epoch seconds."""
    if data is None:
        return RestoreDecision(None, "no persisted session", quiet=True)
    try:
        stored = parse(data)
    except ValueError as exc:
        return RestoreDecision(None, f"damaged: {exc}")
    if stored.app_id != app_id:
        return RestoreDecision(
            None, f"it belongs to another bot (app id {stored.app_id}, this one is {app_id})"
        )
    if not stored.resumable:
        return RestoreDecision(None, "it holds no resumable session (the last worker had dropped it)")
    if max_age_s <= 0:
        return RestoreDecision(None, "resuming a persisted session is off (resume_max_age 0)")
    seen = stored.last_connected_at if stored.last_connected_at is not None else stored.saved_at
    age = now - seen
    if age < -FUTURE_TOLERANCE_S:
        return RestoreDecision(
            None, f"its time is {-age:.0f}s in the future (the clock was changed?): age unknown"
        )
    age = max(0.0, age)
    if age > max_age_s:
        return RestoreDecision(
            None,
            f"too old: last connected {age:.0f}s ago, beyond resume_max_age {max_age_s:g}s",
            age_s=round(age, 3),
        )
    return RestoreDecision(stored, f"last connected {age:.1f}s ago", age_s=round(age, 3))


# File I/O ------------------------------------------------------------------------------------


def read(path: str) -> bytes | None:
    """The file's bytes; None when there is none. Raises OSError when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None


def load(path: str, *, app_id: str, now: float, max_age_s: float) -> RestoreDecision:
    """`judge` on the file at `path`; never raises."""
    try:
        data = read(path)
    except OSError as exc:
        return RestoreDecision(None, f"unreadable: {exc.strerror or exc}")
    if data is not None and len(data) > MAX_FILE_BYTES:
        return RestoreDecision(None, f"damaged: larger than {MAX_FILE_BYTES} bytes")
    return judge(data, app_id=app_id, now=now, max_age_s=max_age_s)


class SessionKeeper:
    """When to write: at every change of the session, seq or API base, when the connection is
    gained or lost, every REFRESH_EVERY_S while connected, and at the watchdog's stop."""

    def __init__(self, app_id: str, start: StoredSession | None = None) -> None:
        self.app_id = app_id
        self.session_id = start.session_id if start else None
        self.seq = start.seq if start else None
        self.api_base = start.api_base if start else None
        self.last_connected_at = start.last_connected_at if start else None
        self.connected = False
        self._written: tuple[Any, ...] | None = None
        self._written_at = float("-inf")

    def observe(
        self, *, session_id: str | None, seq: int | None, api_base: str | None, connected: bool, now: float
    ) -> StoredSession | None:
        """A beat's values; returns what to write now, or None. `now`: wall clock."""
        if api_base is not None:
            self.api_base = api_base
        was_connected = self.connected
        self.session_id, self.seq, self.connected = session_id, seq, connected
        if connected or was_connected:
            self.last_connected_at = now  # connected now, or until just now
        key = (self.session_id, self.seq, self.api_base, self.connected)
        if key == self._written and not (connected and now - self._written_at >= REFRESH_EVERY_S):
            return None
        return self._snapshot(now, key)

    def final(self, now: float) -> StoredSession:
        """At the watchdog's stop: always written."""
        if self.connected:
            self.last_connected_at = now
        return self._snapshot(now, None, clean_stop=True)

    def _snapshot(
        self, now: float, key: tuple[Any, ...] | None, *, clean_stop: bool = False
    ) -> StoredSession:
        self._written, self._written_at = key, now
        return StoredSession(
            app_id=self.app_id,
            session_id=self.session_id,
            seq=self.seq,
            api_base=self.api_base,
            last_connected_at=None if self.last_connected_at is None else round(self.last_connected_at, 3),
            saved_at=round(now, 3),
            clean_stop=clean_stop,
        )


class SessionFile:
    """The supervisor's side: restores at start, writes as beats come, and once more at the stop.
    A write that fails (full disk, read-only) is said once per failure run and never stops anything."""

    def __init__(
        self,
        path: str,
        app_id: str,
        *,
        clock: Callable[[], float] = time.time,
        write: Callable[[str, bytes], None] = write_atomic,
    ) -> None:
        self.path = path
        self.app_id = app_id
        self.clock = clock
        self.keeper = SessionKeeper(app_id)
        self.writer = LatestWriter(path, write=write)
        self._failing = False

    def restore(self, max_age_s: float) -> RestoreDecision:
        if not self.path:
            return RestoreDecision(None, "no state file configured", quiet=True)
        verdict = load(self.path, app_id=self.app_id, now=self.clock(), max_age_s=max_age_s)
        if verdict.session is not None:
            self.keeper = SessionKeeper(self.app_id, verdict.session)
        return verdict

    def observe(
        self, *, session_id: str | None, seq: int | None, api_base: str | None, connected: bool
    ) -> None:
        if self.path:
            stored = self.keeper.observe(
                session_id=session_id, seq=seq, api_base=api_base, connected=connected, now=self.clock()
            )
            if stored is not None:
                self.writer.put(stored.encode())
            self._report()

    def stop(self, timeout: float = STOP_FLUSH_S) -> None:
        """The last write, waited for (bounded: a hung disk must not keep the watchdog from exiting)."""
        if not self.path:
            return
        self.writer.put(self.keeper.final(self.clock()).encode())
        if not self.writer.flush(timeout):
            self.writer.failure = f"not written within {timeout:g}s (the disk is not answering)"
            self._failing = False  # said even if an earlier failure was
        self._report()

    def _report(self) -> None:
        """The writer thread's outcome, said here on the supervisor's thread: once per failure run."""
        failure = self.writer.failure
        if failure is None:
            self._failing = False
        elif not self._failing:
            self._failing = True
            log_event(
                log,
                LogEvent.SESSION_UNSAVED,
                f"Cannot write the persisted session {self.path}: {failure} "
                "(a restart of the watchdog would start a new session)",
                level=logging.ERROR,
                path=self.path,
                error=failure,
            )


def resumed_from(verdict: RestoreDecision) -> dict[str, Any] | None:
    """`watchdog.started`'s `resumed_from` field (and the status file's)."""
    stored = verdict.session
    if stored is None:
        return None
    return {
        "session_id": stored.session_id,
        "seq": stored.seq,
        "age_s": verdict.age_s,
        "clean_stop": stored.clean_stop,
        "api_base": stored.api_base,
        "saved_at": rfc3339_utc(stored.saved_at),
    }
