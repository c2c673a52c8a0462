"""`python -m watchdog report LOGFILE...`: what happened last night, from the JSON log lines.

An outage is each period the bot was not connected: it opens at the first sign of trouble after a
`gateway.connected` (a close, a failed attempt, a missed ACK, a kill, ...) and ends at the next
`gateway.connected`. For each one the report gives its length, the attempts, the causes grouped and
counted, the kills and the respawns:

    offline 08:12:53 → 12:01:10, 3h48m, 230 attempts, cause: network unreachable

`build_report(records)` is the whole analysis, a pure function over an iterable of dicts in log order;
the rest reads files (plain, rotated, gzipped; non-JSON lines are counted and skipped) and prints.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any

from qqworker.contract.events import LogEvent as E

# Events that open an outage when the bot was connected (or its state is still unknown).
_TROUBLE = {
    E.GATEWAY_CLOSED,
    E.RECONNECT_FAILED,
    E.ACK_TIMEOUT,
    E.TOKEN_FAILED,
    E.RECONNECT_GAVE_UP,
    E.WORKER_FATAL,
    E.CHILD_HEARTBEAT_MISSED,
    E.CHILD_ATTEMPT_OVERDUE,
    E.CHILD_MEMORY_EXCEEDED,
    E.CHILD_ACK_STALE,
    E.CHILD_KILLED,
    E.CHILD_EXITED,
}
_DETECTIONS = {
    E.CHILD_HEARTBEAT_MISSED: "worker stopped beating",
    E.CHILD_ATTEMPT_OVERDUE: "attempt overdue (reconnect loop silent)",
    E.CHILD_MEMORY_EXCEEDED: "memory limit exceeded",
    E.CHILD_ACK_STALE: "no gateway ACK (half-open link)",
}
_ERROR_PATTERNS = tuple(
    (re.compile(pattern, re.I), cause)
    for pattern, cause in (
        (r"network is unreachable|errno 101\b|enetunreach", "network unreachable"),
        (r"no route to host|errno 113\b|ehostunreach", "no route to host"),
        (r"connection refused|errno 111\b|econnrefused", "connection refused"),
        (r"connection reset|errno 104\b|econnreset", "connection reset"),
        (r"name or service not known|name resolution|nodename nor servname|gaierror", "DNS lookup failed"),
        (r"certificate", "TLS certificate error"),
        (r"timed? ?out|timeout", "timeout"),
        (r"sslerror|ssl error|\[ssl|tls handshake|wrong version number", "TLS error"),
        # asyncio's "Connect call failed" (aiohttp drops its errno): refused, in practice
        (r"connect call failed|cannot connect to host", "cannot connect"),
    )
)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (`...Z` or with an offset) as an aware UTC datetime, else None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # not a time, or a year 1 / 9999 one an offset pushes out of range
        return None


def error_cause(error: Any) -> str:
    """A short, groupable cause for an error text: `OSError(101, 'Network is unreachable')` → `network
    unreachable`. Unknown errors keep their own words, minus addresses and numbers that would split groups."""
    text = str(error or "").strip()
    for pattern, cause in _ERROR_PATTERNS:
        if pattern.search(text):
            return cause
    text = re.sub(r"^\[Errno \d+\]\s*", "", text)
    text = re.sub(r"\d+\.\d+\.\d+\.\d+(:\d+)?|\[[0-9a-f:]+\](:\d+)?", "<addr>", text, flags=re.I)
    text = re.sub(r"\d+(\.\d+)?", "N", text)
    return (text[:77] + "...") if len(text) > 80 else (text or "unknown error")


def close_cause(record: dict[str, Any]) -> str:
    code = record.get("close_code")
    reason = str(record.get("reason") or "").strip()
    if code is None:
        return reason or "connection lost"
    return f"close {code} ({reason})" if reason else f"close {code}"


@dataclass
class Outage:
    start: datetime
    end: datetime | None = None  # None while it lasts (the log ends offline)
    ended_by: str = "connected"  # connected | stopped | ongoing
    attempts: int = 0  # gateway.connecting lines, the successful one included
    failed_attempts: int = 0
    max_attempt: int = 0
    causes: Counter[str] = field(default_factory=Counter)
    close_codes: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    respawns: int = 0
    gave_up: int = 0
    fatal: str | None = None
    last_seen: datetime | None = None

    @property
    def duration_s(self) -> float:
        end = self.end or self.last_seen or self.start
        return max(0.0, (end - self.start).total_seconds())

    def is_shutdown(self) -> bool:
        """Nothing but the lines of a requested stop (the child stopped, its connection closed)."""
        quiet = not (self.attempts or self.failed_attempts or self.gave_up or self.fatal or self.respawns)
        detected = any(cause in self.causes for cause in _DETECTIONS.values())
        server_closed = any(code not in ("none", "1000") for code in self.close_codes)
        return quiet and not detected and not server_closed

    @property
    def attempt_count(self) -> int:
        return self.attempts or self.failed_attempts or self.max_attempt

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": _iso(self.start),
            "end": _iso(self.end) if self.end else None,
            "last_seen": _iso(self.last_seen) if self.last_seen else None,
            "ended_by": self.ended_by,
            "duration_s": round(self.duration_s, 3),
            "attempts": self.attempt_count,
            "failed_attempts": self.failed_attempts,
            "causes": dict(self.causes.most_common()),
            "close_codes": dict(self.close_codes.most_common()),
            "kills": dict(self.kills.most_common()),
            "respawns": self.respawns,
            "gave_up": self.gave_up,
            "fatal": self.fatal,
            "summary": summary_line(self),
        }


@dataclass
class Restart:
    """A restart of the watchdog itself: from its stop (or, killed, its last line) to the next connection.
    Its own kind of gap: a requested stop is not an outage, but the bot was away meanwhile."""

    start: datetime
    clean: bool  # False: the previous run ended without a stop line (killed, host down)
    started: datetime | None = None  # the new watchdog's first line
    end: datetime | None = None  # connected again; None: not (yet) in the log
    resumed: bool | None = None  # the first connection resumed the old session
    resumed_from: dict[str, Any] | None = None  # watchdog.started's (the persisted session it used)
    reason: str | None = None  # gateway.connected's, when not resumed

    @property
    def duration_s(self) -> float | None:
        return None if self.end is None else max(0.0, (self.end - self.start).total_seconds())

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": _iso(self.start),
            "started": _iso(self.started) if self.started else None,
            "end": _iso(self.end) if self.end else None,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "clean": self.clean,
            "resumed": self.resumed,
            "resumed_from": self.resumed_from,
            "reason": self.reason,
            "summary": restart_line(self),
        }


@dataclass
class Report:
    records: int = 0
    first: datetime | None = None
    last: datetime | None = None
    connections: int = 0
    outages: list[Outage] = field(default_factory=list)
    skipped_lines: int = 0  # filled in by the file reader
    files: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # files (or their tails) that could not be read
    restarts: list[Restart] = field(default_factory=list)

    def listed(self, min_duration: float = 0.0) -> list[Outage]:
        """The outages worth listing: long enough, or still going on at the end of the log."""
        return [o for o in self.outages if o.duration_s >= min_duration or o.ended_by == "ongoing"]

    @property
    def offline_s(self) -> float:
        return sum(o.duration_s for o in self.outages)

    @property
    def span_s(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return (self.last - self.first).total_seconds()

    def to_dict(self, min_duration: float = 0.0) -> dict[str, Any]:
        span = self.span_s
        listed = self.listed(min_duration)
        return {
            "files": self.files,
            "records": self.records,
            "skipped_lines": self.skipped_lines,
            "damaged": self.damaged,
            "first": _iso(self.first) if self.first else None,
            "last": _iso(self.last) if self.last else None,
            "span_s": round(span, 3),
            "connections": self.connections,
            "offline_s": round(self.offline_s, 3),
            "online_ratio": round(1 - self.offline_s / span, 6) if span > 0 else None,
            "outage_count": len(self.outages),
            "outages_not_listed": len(self.outages) - len(listed),
            "min_duration_s": min_duration,
            "outages": [o.to_dict() for o in listed],
            "restarts": [r.to_dict() for r in self.restarts],
        }


def build_report(records: Iterable[dict[str, Any]]) -> Report:
    """The outage timeline of log records given in log order (records without a timestamp are ignored)."""
    report = Report()
    state = "unknown"  # unknown (starting, never connected yet) | online | offline | stopped
    current: Outage | None = None
    watchdog_seen = False
    previous: datetime | None = None
    # While starting: the bot has not been connected since this time, after this many attempts.
    starting_since: datetime | None = None
    starting_attempts = 0
    stop_began: datetime | None = None  # this run's first stop line
    restart: Restart | None = None  # waiting for its first connection

    def open_outage(at: datetime) -> Outage:
        nonlocal current, state
        current = Outage(start=at, last_seen=at)
        report.outages.append(current)
        state = "offline"
        return current

    for record in records:
        moment = parse_time(record.get("timestamp"))
        if moment is None:
            continue
        report.records += 1
        report.first = moment if report.first is None else min(report.first, moment)
        report.last = moment if report.last is None else max(report.last, moment)
        event = record.get("event")
        if not isinstance(event, str):  # a list or an object would not even hash
            event = None
        if record.get("role") == "watchdog":
            watchdog_seen = True

        if event == E.WATCHDOG_STARTED and previous is not None:
            clean = stop_began is not None and state == "stopped"
            resumed_from = record.get("resumed_from")
            restart = Restart(
                start=stop_began if clean and stop_began is not None else previous,
                clean=clean,
                started=moment,
                resumed_from=resumed_from if isinstance(resumed_from, dict) else None,
            )
            report.restarts.append(restart)
        if event == E.WATCHDOG_STARTED:
            stop_began = None
        elif event in (E.WATCHDOG_STOPPING, E.WATCHDOG_STOPPED) and stop_began is None:
            stop_began = moment
        if event == E.WATCHDOG_STARTED and state == "online" and previous is not None:
            # The previous run ended without a stop line (killed, host down): offline since its last line.
            outage = open_outage(previous)
            outage.causes["log ended without a stop line (process killed or host down)"] += 1
        previous = moment
        if event == E.GATEWAY_CONNECTED and restart is not None:
            restart.end, restart.resumed = moment, record.get("resumed") is True
            restart.reason = None if restart.resumed else str(record.get("reason") or "") or None
            restart = None
        if event in (E.WATCHDOG_STARTED, E.WORKER_STARTED) and state == "stopped":
            state = "unknown"
        if state == "unknown":
            starting_since = starting_since or moment
            starting_attempts += event == E.GATEWAY_CONNECTING

        if event == E.GATEWAY_CONNECTED:
            report.connections += 1
            if current is not None:
                current.end = moment
                current.last_seen = moment
                current.ended_by = "connected"
                current = None
            state = "online"
            starting_since, starting_attempts = None, 0
            continue
        stop = event == E.WATCHDOG_STOPPED or (event == E.WORKER_STOPPED and not watchdog_seen)
        if stop:
            if current is not None:
                current.end = moment
                current.last_seen = moment
                current.ended_by = "stopped"
                if current.is_shutdown():  # only the stop itself: a requested stop is not an outage
                    report.outages.remove(current)
                current = None
            state = "stopped"
            starting_since, starting_attempts = None, 0
            continue

        if current is None:
            if event not in _TROUBLE or state == "stopped":
                continue
            # A child that exited cleanly on request is not trouble; anything else is.
            if event == E.CHILD_EXITED and record.get("exitcode") == 0:
                continue
            if state == "unknown" and starting_since is not None:
                open_outage(starting_since).attempts = starting_attempts  # never connected since the start
            else:
                open_outage(moment)
        assert current is not None
        current.last_seen = moment
        _account(current, event, record)

    if current is not None:
        current.ended_by = "ongoing"
    return report


def _account(outage: Outage, event: Any, record: dict[str, Any]) -> None:
    if event == E.GATEWAY_CONNECTING:
        outage.attempts += 1
    elif event == E.RECONNECT_FAILED:
        outage.failed_attempts += 1
        outage.causes[error_cause(record.get("error"))] += 1
    elif event == E.GATEWAY_CLOSED:
        code = record.get("close_code")
        outage.close_codes[str(code) if code is not None else "none"] += 1
        outage.causes[close_cause(record)] += 1
    elif event == E.ACK_TIMEOUT:
        outage.causes["heartbeat ACKs missing (half-open link)"] += 1
    elif event == E.TOKEN_FAILED:
        outage.causes[f"token request: {error_cause(record.get('error'))}"] += 1
    elif event in _DETECTIONS:
        outage.causes[_DETECTIONS[event]] += 1
    elif event == E.CHILD_KILLED:
        outage.kills[str(record.get("reason") or "unknown")] += 1
    elif event == E.CHILD_SPAWNED:
        outage.respawns += 1
    elif event == E.RECONNECT_GAVE_UP:
        outage.gave_up += 1
        outage.causes["worker gave up (max attempts)"] += 1
    elif event == E.WORKER_FATAL:
        outage.fatal = str(record.get("reason") or record.get("message") or "fatal")
        outage.causes[f"fatal: {outage.fatal}"] += 1
    attempt = record.get("attempt")
    if isinstance(attempt, int) and event in (E.GATEWAY_CONNECTING, E.RECONNECT_FAILED):
        outage.max_attempt = max(outage.max_attempt, attempt)


# Rendering -------------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def format_duration(seconds: float) -> str:
    """42.0 → `42s`, 725 → `12m05s`, 13697 → `3h48m`, 183600 → `2d03h`; under 10 s with a decimal."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _clock(moment: datetime, reference: datetime | None = None) -> str:
    if reference is not None and moment.date() != reference.date():
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.strftime("%H:%M:%S")


def _counted(counter: Counter[str]) -> str:
    return ", ".join(name if n == 1 else f"{name} ×{n}" for name, n in counter.most_common())


def summary_line(outage: Outage, tz: tzinfo | None = None) -> str:
    """`offline 08:12:53 → 12:01:10, 3h48m, 230 attempts, cause: network unreachable` (+ kills, respawns)."""
    start = outage.start.astimezone(tz or timezone.utc)
    if outage.end is not None:
        end = _clock(outage.end.astimezone(tz or timezone.utc), start)
        ending = "" if outage.ended_by == "connected" else " (stopped)"
    else:
        end = "(still offline at end of log)"
        ending = ""
    attempts = outage.attempt_count
    parts = [f"offline {_clock(start)} → {end}{ending}", format_duration(outage.duration_s)]
    parts.append(f"{attempts} attempt{'s' if attempts != 1 else ''}")
    if outage.causes:
        parts.append(f"cause: {_counted(outage.causes)}")
    if outage.kills:
        kills = sum(outage.kills.values())
        parts.append(f"{kills} kill{'s' if kills != 1 else ''} ({_counted(outage.kills)})")
    if outage.respawns:
        parts.append(f"{outage.respawns} respawn{'s' if outage.respawns != 1 else ''}")
    return ", ".join(parts)


def restart_line(restart: Restart, tz: tzinfo | None = None) -> str:
    """`watchdog restart 03:00:00 → 03:00:02, 1.9s, clean stop, resumed session s1 (seq 42)`."""
    tz = tz or timezone.utc
    start = restart.start.astimezone(tz)
    end = _clock(restart.end.astimezone(tz), start) if restart.end else "(not connected again)"
    parts = [f"watchdog restart {_clock(start)} → {end}"]
    if restart.duration_s is not None:
        parts.append(format_duration(restart.duration_s))
    parts.append("clean stop" if restart.clean else "the previous watchdog died without a stop line")
    origin = restart.resumed_from or {}
    if restart.resumed:
        parts.append(f"resumed session {origin.get('session_id', '?')} (seq {origin.get('seq', '?')})")
    elif restart.end is not None:
        why = "" if not restart.reason else f": {restart.reason}"
        parts.append(("persisted session not resumed" if origin else "new session") + why)
    return ", ".join(parts)


def render_text(report: Report, tz: tzinfo | None = None, min_duration: float = 0.0) -> str:
    tz = tz or timezone.utc
    zone = "UTC" if tz is timezone.utc else "local time"
    if report.first is None or report.last is None:
        return f"no log records found in {', '.join(report.files) or 'the input'}"
    first, last = report.first.astimezone(tz), report.last.astimezone(tz)
    lines = [
        f"log {first:%Y-%m-%d %H:%M:%S} → {_clock(last, first)} ({zone}), {format_duration(report.span_s)}, "
        f"{report.records} lines"
        + (f" ({report.skipped_lines} non-JSON skipped)" if report.skipped_lines else "")
        + f", {report.connections} connection{'s' if report.connections != 1 else ''}",
    ]
    if report.restarts:
        n = len(report.restarts)
        lines.append(f"{n} watchdog restart{'s' if n != 1 else ''}")
        lines += ["  " + restart_line(r, tz) for r in report.restarts]
    if not report.outages:
        lines.append("no outage: connected throughout" if report.connections else "never connected")
        return "\n".join(lines)
    offline = report.offline_s
    ratio = f", {100 * (1 - offline / report.span_s):.2f}% online" if report.span_s > 0 else ""
    n = len(report.outages)
    lines.append(f"{n} outage{'s' if n != 1 else ''}, offline {format_duration(offline)} in total{ratio}")
    day = None
    shown = report.listed(min_duration)
    for outage in shown:
        start = outage.start.astimezone(tz)
        if start.date() != day:
            day = start.date()
            lines.append(f"{day:%Y-%m-%d}")
        lines.append("  " + summary_line(outage, tz))
    hidden = len(report.outages) - len(shown)
    if hidden:
        lines.append(
            f"({hidden} outage{'s' if hidden != 1 else ''} shorter than {min_duration:g}s not listed, "
            "e.g. routine session refreshes; --min-duration 0 lists them)"
        )
    return "\n".join(lines)


# Reading files ---------------------------------------------------------------------------------


@dataclass
class LogSource:
    path: Path
    skipped: int = 0
    damage: str | None = None  # why reading stopped early, and how much had been read

    def lines(self) -> Iterator[str]:
        """The file's lines; a damaged file (a truncated or corrupt .gz, an unreadable one) ends at the
        damage, which `damage` describes, instead of ending the report."""
        self.damage = None
        count = 0
        try:
            opener = gzip.open if _is_gzip(self.path) else open
            with opener(self.path, "rt", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    count += 1
                    yield line
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            what = "could not be read" if count == 0 else f"is damaged after {count} line{'s' * (count != 1)}"
            self.damage = f"{self.path} {what} ({type(exc).__name__}: {exc}); read {count} lines of it"

    def records(self) -> Iterator[dict[str, Any]]:
        for line in self.lines():
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                self.skipped += 1
                continue
            if isinstance(record, dict) and "timestamp" in record:
                yield record
            else:
                self.skipped += 1

    def first_time(self) -> datetime | None:
        for record in self.records():
            moment = parse_time(record.get("timestamp"))
            if moment is not None:
                return moment
        return None


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def read_logs(paths: Iterable[str | Path]) -> Report:
    """Reads files in the order their first lines were written (so `app.log.2.gz app.log.1 app.log` in any
    order), streaming each; one record at a time is in memory."""
    sources = [LogSource(Path(p)) for p in paths]
    dated = []
    for index, source in enumerate(sources):
        first = source.first_time()
        source.skipped = 0
        source.damage = None
        dated.append((first or datetime.max.replace(tzinfo=timezone.utc), index, source))
    dated.sort(key=lambda item: (item[0], item[1]))
    ordered = [source for _, _, source in dated]

    def all_records() -> Iterator[dict[str, Any]]:
        for source in ordered:
            yield from source.records()

    report = build_report(all_records())
    report.skipped_lines = sum(s.skipped for s in ordered)
    report.files = [str(s.path) for s in ordered]
    report.damaged = [s.damage for s in ordered if s.damage]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m watchdog report",
        description="Outage timeline from qqwatchdog JSON log files (plain, rotated or gzipped).",
    )
    parser.add_argument("logfiles", nargs="+", metavar="LOGFILE", help="log files, e.g. run/qqw.log*")
    parser.add_argument("--json", action="store_true", help="one JSON object for machines")
    parser.add_argument("--local", action="store_true", help="show times in the local time zone, not UTC")
    parser.add_argument(
        "--min-duration",
        type=float,
        default=5.0,
        metavar="S",
        help="list outages at least this long (default 5: routine 4009 session refreshes take well under "
        "1 s); totals always count every outage",
    )
    args = parser.parse_args(argv)
    missing = [p for p in args.logfiles if not Path(p).is_file()]
    if missing:
        print(f"report: no such file: {', '.join(missing)}", file=sys.stderr)
        return 66  # EX_NOINPUT
    report = read_logs(args.logfiles)
    for damage in report.damaged:
        print(f"report: skipped the rest of a damaged file: {damage}", file=sys.stderr)
    if report.records == 0 and len(report.damaged) == len(args.logfiles):
        print("report: no file could be read", file=sys.stderr)
        return 66
    if args.json:
        print(json.dumps(report.to_dict(args.min_duration), ensure_ascii=False))
    else:
        tz = datetime.now().astimezone().tzinfo if args.local else timezone.utc
        print(render_text(report, tz, args.min_duration))
    return 0


if __name__ == "__main__":
    sys.exit(main())
