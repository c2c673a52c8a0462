"""Exit codes and what they mean: defined once, read by the worker, the watchdog and the docs."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    GAVE_UP = 75  # EX_TEMPFAIL: the worker ran out of attempts; respawning can help
    UNAVAILABLE = 69  # EX_UNAVAILABLE: the watchdog hit its own restart limit
    CONFIG = 78  # EX_CONFIG: bad credentials or configuration; respawning cannot help
    # EX_CANTCREAT: the watchdog cannot take its status file's lock: another watchdog holds it. Not 78
    # (nothing is misconfigured, and systemd must try again once the other one is gone) and not 75 or
    # 69 (they say a worker or the watchdog gave up on the bot, which alerts would misread).
    LOCKED = 73


_MEANINGS = {
    ExitCode.OK: "stopped on request",
    ExitCode.GAVE_UP: "gave up reconnecting after its maximum attempts",
    ExitCode.UNAVAILABLE: "gave up after the restart limit",
    ExitCode.CONFIG: "permanent configuration or credential error",
    ExitCode.LOCKED: "another watchdog already runs on this status file / run directory",
}


def exit_meaning(code: int | None) -> str:
    """A person-readable meaning of a process exit status (negative: killed by that signal)."""
    if code is None:
        return "still running"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    try:
        return _MEANINGS[ExitCode(code)]
    except ValueError:
        return "crashed" if code == 1 else f"exited with status {code}"


def is_permanent(code: int | None) -> bool:
    """An exit that respawning cannot fix."""
    return code == ExitCode.CONFIG
