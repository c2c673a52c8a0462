"""The status file: what the supervisor is doing, written atomically, read by `watchdog status`.

The file never holds a secret: only states, pids, counters, ages and exit codes. It is replaced
with write-to-temporary + rename, so a reader sees the old or the new file, never half of one.
Exit codes of `watchdog status`: 0 healthy, 1 running but unhealthy, 3 not running.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from typing import Any

import psutil

from qqworker.logs import rfc3339_utc

HEALTHY, UNHEALTHY, NOT_RUNNING = 0, 1, 3


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


def read_status(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
    if state != "running":
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
        ("local gateway", _gateway(status)),
        ("updated", status.get("updated_at")),
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


def wall(monotonic_time: float | None) -> str | None:
    """A monotonic timestamp of this process as RFC 3339 wall-clock time (for people)."""
    if monotonic_time is None:
        return None
    return rfc3339_utc(time.time() - (time.monotonic() - monotonic_time))
