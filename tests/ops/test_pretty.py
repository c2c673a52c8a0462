"""The human rendering of log lines, and the filter process that run.sh puts behind the watchdog."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from datetime import timezone

from watchdog.pretty import render, render_line, use_colour

RECORD = {
    "timestamp": "2025-03-14T08:12:53.482Z",
    "level": "INFO",
    "logger": "qqworker.worker",
    "message": "Reconnecting in 5.0s (attempt 3/100)",
    "event": "reconnect.scheduled",
    "role": "worker",
    "pid": 4242,
    "generation": 2,
    "attempt": 3,
    "delay_s": 5.0,
    "max_attempts": 100,
}


def test_render_plain() -> None:
    line = render(RECORD, tz=timezone.utc)
    assert line.startswith("08:12:53.482  worker 2  reconnect.scheduled")
    assert line.endswith("Reconnecting in 5.0s (attempt 3/100)")
    assert "\033[" not in line


def test_render_levels_roles_and_colour() -> None:
    warn = dict(RECORD, level="WARNING", role="watchdog", event="child.killed", message="Killed child 4242")
    assert "watchdog  child.killed" in render(warn, tz=timezone.utc)
    assert "WARN Killed child 4242" in render(warn, tz=timezone.utc)
    coloured = render(warn, colour=True, tz=timezone.utc)
    assert "\033[33m" in coloured and coloured.endswith("\033[0m")
    demo = {"timestamp": RECORD["timestamp"], "role": "demo", "event": "demo.step", "message": "Freezing"}
    assert render(demo, tz=timezone.utc) == "08:12:53.482  ▶ Freezing"


def test_render_line_passes_other_text_through() -> None:
    assert render_line("Traceback (most recent call last):\n") == "Traceback (most recent call last):"
    assert render_line("{not json") == "{not json"
    assert render_line("[1, 2]") == "[1, 2]"
    assert "worker 2" in render_line(json.dumps(RECORD))


def test_colour_only_for_terminals() -> None:
    assert not use_colour(io.StringIO(), {})
    assert not use_colour(sys.stdout, {"NO_COLOR": "1"})


def test_filter_drains_after_sigint_and_ends_at_eof() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchdog", "pretty", "--utc"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(RECORD) + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline().startswith("08:12:53.482  worker 2")
    # It has rendered a line, so its SIGINT handler is in place (installed before reading).
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does to the whole process group
    proc.stdin.write(json.dumps(dict(RECORD, message="the watchdog's last line")) + "\nplain text\n")
    proc.stdin.close()
    rest = proc.stdout.read()
    assert proc.wait(timeout=30) == 0
    assert "the watchdog's last line" in rest and rest.endswith("plain text\n")
