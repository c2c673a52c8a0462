"""The JSON log lines rendered for people: one short line each, local time, colour on a terminal.

    14:02:11.482  worker 2  reconnect.scheduled   Reconnecting in 5.0s (attempt 3/100)

`python -m watchdog pretty` is a filter (stdin → stdout) that `scripts/run.sh --pretty` puts behind the
watchdog; it ignores SIGINT so that on Ctrl-C it still prints the watchdog's last lines, and ends at EOF.
Lines that are not JSON objects pass through unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from datetime import datetime, timezone, tzinfo
from typing import IO, Any

RESET = "\033[0m"
DIM = "\033[2m"
BOLD = "\033[1m"
RED = "\033[31m"
GREEN = "\033[32m"
YELLOW = "\033[33m"
MAGENTA = "\033[35m"
CYAN = "\033[36m"

# Events worth a colour of their own whatever their level: recovery in green, the watchdog acting in magenta.
_EVENT_COLOURS = {
    "gateway.connected": GREEN,
    "child.spawned": GREEN,
    "reconnect.scheduled": YELLOW,
    "respawn.scheduled": YELLOW,
    "child.heartbeat_missed": MAGENTA,
    "child.attempt_overdue": MAGENTA,
    "child.ack_stale": MAGENTA,
    "child.memory_exceeded": MAGENTA,
    "child.killed": MAGENTA,
}
_LEVEL_COLOURS = {"WARNING": YELLOW, "ERROR": RED, "CRITICAL": RED}
_LEVEL_TAGS = {"WARNING": "WARN ", "ERROR": "ERROR ", "CRITICAL": "CRIT "}
_EVENT_WIDTH = 22


def use_colour(stream: IO[str], environ: dict[str, str] | None = None) -> bool:
    """Colour for a terminal, unless NO_COLOR is set (https://no-color.org) or TERM is dumb."""
    environ = dict(os.environ) if environ is None else environ
    if "NO_COLOR" in environ or environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _clock(value: Any, tz: tzinfo | None) -> str:
    if not isinstance(value, str):
        return "--:--:--.---"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value[:12]
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(tz).strftime("%H:%M:%S.%f")[:-3]


def who(record: dict[str, Any]) -> str:
    role = str(record.get("role") or "?")
    if role == "worker" and record.get("generation") is not None:
        return f"worker {record['generation']}"
    return role


def render(record: dict[str, Any], colour: bool = False, tz: tzinfo | None = None) -> str:
    """One record as one line: time, who, event, level tag if not INFO, the message (+ a traceback's text)."""
    time = _clock(record.get("timestamp"), tz)
    source = who(record)
    event = str(record.get("event") or "")
    level = str(record.get("level") or "INFO").upper()
    message = str(record.get("message") or "")
    if record.get("event") == "child.output" and record.get("text") and record["text"] not in message:
        message = f"{message} {record['text']}".strip()
    if record.get("exc_info"):
        message = f"{message}\n{record['exc_info']}"
    tag = _LEVEL_TAGS.get(level, "")
    if source == "demo":
        if colour:
            return f"{DIM}{time}{RESET}  {BOLD}{CYAN}▶ {message}{RESET}"
        return f"{time}  ▶ {message}"
    if not colour:
        return f"{time}  {source:<9} {event:<{_EVENT_WIDTH}} {tag}{message}"
    hue = _LEVEL_COLOURS.get(level) or _EVENT_COLOURS.get(event, "")
    text = f"{hue}{tag}{message}{RESET}" if hue else f"{tag}{message}"
    return f"{DIM}{time}{RESET}  {source:<9} {hue or DIM}{event:<{_EVENT_WIDTH}}{RESET} {text}"


def render_line(line: str, colour: bool = False, tz: tzinfo | None = None) -> str:
    """A raw output line: rendered when it is a JSON object, else returned as it is."""
    text = line.rstrip("\n")
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            return text
        if isinstance(record, dict):
            return render(record, colour, tz)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="qqwatchdog pretty", description="Render qqwatchdog JSON log lines for people."
    )
    parser.add_argument("--colour", "--color", choices=("auto", "always", "never"), default="auto")
    parser.add_argument("--utc", action="store_true", help="show UTC times instead of local time")
    args = parser.parse_args(argv)
    # Ctrl-C reaches the whole foreground process group; the producer decides when output ends (EOF).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    colour = args.colour == "always" or (args.colour == "auto" and use_colour(sys.stdout))
    tz = timezone.utc if args.utc else None
    stdin = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    try:
        for line in stdin:
            sys.stdout.write(render_line(line, colour, tz) + "\n")
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, without a traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
