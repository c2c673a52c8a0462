"""The status file: what the supervisor is doing, written atomically, read by `watchdog status`.

The file never holds a secret: only states, pids, counters, ages and exit codes. It is replaced
with write-to-temporary + rename, so a reader sees the old or the new file, never half of one.
Exit codes of `watchdog status`: 0 healthy, 1 running but unhealthy, 3 not running.

A status file that exists but cannot be understood (empty, truncated, binary, not an object, a
directory, a key field of the wrong type) is "damaged": exit 1, never 3. The supervisor rewrites its
file every few seconds and atomically, so a damaged one means something is wrong; and since the
watchdog's pid cannot be read from it, "not running" would be a guess that could make a script start
a second watchdog. A wrong-typed field that the verdict does not rest on is ignored, and named.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import psutil

from watchdog.states import SupervisorState

__all__ = [
    "HEALTHY",
    "NOT_RUNNING",
    "UNHEALTHY",
    "StatusRead",
    "check_fields",
    "damaged_verdict",
    "gateway_status",
    "judge",
    "pid_alive",
    "read_status_file",
    "render",
    "sink_text",
    "webhook_status",
    "write_status",
]

HEALTHY, UNHEALTHY, NOT_RUNNING = 0, 1, 3
MAX_STATUS_BYTES = 1 << 20  # the real file is about 1 KB
_NUMBER = (int, float)
# The fields `judge` and `render` read, and their types (None is always allowed). Any other field is
# passed through untouched. A bad type in a KEY field makes the whole file damaged.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "state": (str,),
    "watchdog_pid": (int,),
    "watchdog_started_at_epoch": _NUMBER,
    "started_at": (str,),
    "child_pid": (int,),
    "generation": (int,),
    "restarts": (int,),
    "phase": (str,),
    "attempt": (int,),
    "last_beat_age_s": _NUMBER,
    "connected_since": (str,),
    "resumable": (bool,),
    "last_exit": (dict,),
    "exit_code": (int,),
    "heartbeat_timeout_s": _NUMBER,
    "stale_after_s": _NUMBER,
    "updated_at": (str,),
    "updated_at_epoch": _NUMBER,
}
KEY_FIELDS = ("state", "watchdog_pid", "updated_at_epoch")
LAST_EXIT_TYPES: dict[str, tuple[type, ...]] = {"exitcode": (int,), "meaning": (str,), "at": (str,)}


def write_status(path: str, status: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".qqwatchdog-status-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(status, fh, ensure_ascii=False, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass
class StatusRead:
    """What `read_status_file` found: no file, a damaged one (`damage` says why), or a status."""

    path: str
    status: dict[str, Any] | None = None
    damage: str | None = None
    bad_fields: list[str] = field(default_factory=list)

    @property
    def missing(self) -> bool:
        return self.status is None and self.damage is None


def _typed(value: Any, types: tuple[type, ...]) -> bool:
    if value is None:
        return True
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true is not a pid or an age
    if isinstance(value, float) and not math.isfinite(value):  # json reads NaN and Infinity
        return False
    return isinstance(value, types)


def check_fields(status: dict[str, Any]) -> list[str]:
    """Drops (in place) every known field of a wrong type; returns their names."""
    bad = [name for name, types in FIELD_TYPES.items() if name in status and not _typed(status[name], types)]
    for name in bad:
        status[name] = None
    last_exit = status.get("last_exit")
    if isinstance(last_exit, dict):
        for name, types in LAST_EXIT_TYPES.items():
            if name in last_exit and not _typed(last_exit[name], types):
                bad.append(f"last_exit.{name}")
                last_exit[name] = None
    return bad


def read_status_file(path: str) -> StatusRead:
    """Reads and checks a status file; never raises."""
    result = StatusRead(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_STATUS_BYTES + 1)
    except FileNotFoundError:
        return result
    except OSError as exc:
        result.damage = f"cannot be read: {exc.strerror or exc}"
        return result
    if not data.strip():
        result.damage = "empty"
    elif len(data) > MAX_STATUS_BYTES:
        result.damage = f"larger than {MAX_STATUS_BYTES} bytes"
    else:
        try:
            parsed = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            result.damage = "not UTF-8 text (binary?)"
        except ValueError as exc:
            result.damage = f"not JSON (truncated?): {exc}"
        else:
            if isinstance(parsed, dict):
                result.bad_fields = check_fields(parsed)
                broken = [name for name in KEY_FIELDS if name in result.bad_fields]
                if broken:
                    result.damage = (
                        f"key field{'s' * (len(broken) > 1)} of the wrong type: {', '.join(broken)}"
                    )
                else:
                    result.status = parsed
            else:
                result.damage = f"not a JSON object (a JSON {type(parsed).__name__})"
    return result


def damaged_verdict(read: StatusRead) -> tuple[int, str]:
    return UNHEALTHY, f"damaged status file ({read.damage}): cannot tell whether the watchdog runs"


def pid_alive(pid: Any, started_at: Any = None) -> bool:
    """Is that the same process (same start time, when known), still running and not a zombie?"""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        # A different start time: the pid was reused by another process.
        return not (isinstance(started_at, (int, float)) and abs(proc.create_time() - started_at) > 1.0)
    except psutil.Error:
        return False


def judge(status: dict[str, Any] | None, now: float, alive: bool) -> tuple[int, str]:
    """(exit code, one-line verdict) for a status read at wall-clock time `now`."""
    if status is None:
        return NOT_RUNNING, "not running (no status file)"
    if not alive:
        return NOT_RUNNING, f"not running (last state: {status.get('state')})"
    updated = status.get("updated_at_epoch")
    stale_after = status.get("stale_after_s") or 60
    if not isinstance(updated, (int, float)) or now - updated > stale_after:
        return UNHEALTHY, "running, but its status file is not being updated (the watchdog may be stuck)"
    state = status.get("state")
    if state != SupervisorState.RUNNING:
        return UNHEALTHY, f"running, state {state}"
    age = status.get("last_beat_age_s")
    timeout = status.get("heartbeat_timeout_s")
    if (
        isinstance(age, (int, float))
        and isinstance(timeout, (int, float))
        and age + (now - updated) > timeout
    ):
        return UNHEALTHY, "running, but the child has stopped beating"
    if status.get("phase") != "connected":
        return UNHEALTHY, f"running, child {status.get('phase') or 'starting'} (not connected)"
    return HEALTHY, "healthy: connected"


def render(status: dict[str, Any], verdict: str, now: float) -> str:
    """The human-readable form."""
    lines = [f"qqwatchdog: {verdict}"]
    last_exit = status.get("last_exit") or {}
    rows = [
        ("state", status.get("state")),
        ("watchdog pid", status.get("watchdog_pid")),
        ("child pid", status.get("child_pid")),
        ("generation", status.get("generation")),
        ("restarts", status.get("restarts")),
        ("phase", status.get("phase")),
        ("attempt", status.get("attempt")),
        ("connected since", status.get("connected_since")),
        ("api base", status.get("api_base")),
        ("token endpoint", status.get("token_url")),
        ("last beat", _age(status.get("last_beat_age_s"), status.get("updated_at_epoch"), now)),
        (
            "last exit",
            f"{last_exit.get('exitcode')} ({last_exit.get('meaning')}) at {last_exit.get('at')}"
            if last_exit
            else None,
        ),
        ("skipped events", _skipped(status)),
        ("resumed from", _resumed_from(status.get("resumed_from"))),
        ("webhook", _webhook(status)),
        ("local gateway", _gateway(status)),
        ("updated", status.get("updated_at")),
    ]
    sinks = status.get("sinks")
    if isinstance(sinks, dict):
        rows += [
            (f"output {name}", sink_text(sink)) for name, sink in sinks.items() if isinstance(sink, dict)
        ]
    lines += [f"  {name:16} {value}" for name, value in rows if value is not None]
    return "\n".join(lines)


def _skipped(status: dict[str, Any]) -> str | None:
    """Poison events skipped so far, and the last one (type, id, seq: never its content)."""
    count, last = status.get("skipped_events"), status.get("last_skipped")
    if not count:
        return None
    if not isinstance(last, dict):
        return str(count)
    return f"{count} (last: {last.get('event_type')} id {last.get('event_id')} seq {last.get('seq')})"


def _resumed_from(origin: Any) -> str | None:
    """This watchdog's start resumed a persisted session: a restart of the watchdog itself."""
    if not isinstance(origin, dict):
        return None
    how = "a clean stop" if origin.get("clean_stop") else "a watchdog that died without stopping"
    age = origin.get("age_s")
    since = f", last connected {age:.1f}s before this start" if isinstance(age, (int, float)) else ""
    return f"session {origin.get('session_id')} at seq {origin.get('seq')}, after {how}{since}"


def sink_text(sink: dict[str, Any]) -> str:
    """`ok`, `stalled since T` or `failing since T: error`, and what it lost."""
    state = str(sink.get("state"))
    text = state
    if state != "ok" and sink.get("since"):
        text += f" since {sink['since']}"
    if state == "failing" and sink.get("error"):
        text += f": {sink['error']}"
    dropped = sink.get("dropped")
    if isinstance(dropped, int) and dropped:
        text += f", {dropped} line(s) dropped of {sink.get('produced')}"
    return text


def webhook_status(beat: Any) -> dict[str, Any] | None:
    """The webhook handler's queue as its last beat told it (None when it is not the handler)."""
    if beat is None or getattr(beat, "webhook_pending", None) is None:
        return None
    return {
        "pending": beat.webhook_pending,
        "oldest_age_s": beat.webhook_oldest_age_s,
        "delivered": beat.webhook_delivered,
        "failures": beat.webhook_failures,
        "dropped": beat.webhook_dropped,
    }


def _webhook(status: dict[str, Any]) -> str | None:
    hook = status.get("webhook")
    if not isinstance(hook, dict):
        return None
    age = hook.get("oldest_age_s")
    oldest = f" (oldest waiting {age:.1f}s)" if isinstance(age, (int, float)) else ""
    return (
        f"{hook.get('pending')} pending{oldest}, {hook.get('delivered')} delivered, "
        f"{hook.get('failures')} failed attempts, {hook.get('dropped')} dropped"
    )


def gateway_status(beat: Any) -> dict[str, Any] | None:
    """QQ_HANDLER=gateway: the frameworks attached to the worker's local gateway and its buffer
    (from the beat: the child's word, so only well-formed values are kept)."""
    clients = getattr(beat, "gateway_clients", None)
    if type(clients) is not int:
        return None
    marks = getattr(beat, "gateway_client_marks", None)
    shown = [
        {"client": m[0], "sent": m[1], "confirmed": m[2]}
        for m in (marks if isinstance(marks, list) else [])[:4]
        if isinstance(m, list) and len(m) == 3 and isinstance(m[0], str)
    ]
    fields = ("gateway_buffered", "gateway_seq", "gateway_evicted")
    values = {name[8:]: getattr(beat, name, None) for name in fields}
    return {
        "clients": clients,
        **{k: v if type(v) is int else None for k, v in values.items()},
        "marks": shown,
    }


def _gateway(status: dict[str, Any]) -> str | None:
    gw = status.get("gateway")
    if not isinstance(gw, dict):
        return None
    text = f"{gw.get('clients')} client(s), {gw.get('buffered')} event(s) buffered, local seq {gw.get('seq')}"
    if gw.get("evicted"):
        text += f", {gw.get('evicted')} pushed out of the buffer"
    marks = gw.get("marks")
    for mark in marks if isinstance(marks, list) else []:
        if isinstance(mark, dict):
            text += f"; {mark.get('client')} sent {mark.get('sent')} confirmed {mark.get('confirmed')}"
    return text


def _age(age: Any, updated: Any, now: float) -> str | None:
    if not isinstance(age, (int, float)) or not isinstance(updated, (int, float)):
        return None
    return f"{age + max(0.0, now - updated):.1f}s ago"
