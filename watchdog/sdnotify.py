"""The systemd notification protocol (sd_notify), small enough to read in one go.

systemd passes `NOTIFY_SOCKET` (a filesystem path, or an abstract socket name starting with `@`) to a
`Type=notify` service; the service sends newline-separated `KEY=VALUE` datagrams to it: `READY=1` once up,
`WATCHDOG=1` at least every `WatchdogSec` (systemd passes it as `$WATCHDOG_USEC`, for `$WATCHDOG_PID`), and
`STATUS=...` lines shown by `systemctl status`. Without `NOTIFY_SOCKET` every call is a no-op. A send never
blocks (non-blocking socket, `MSG_DONTWAIT`): a supervisor must not stall on its own service manager.
A failing send is counted, and logged as `FailureRun` decides: the first of a run of failures, and the
success that ends it (systemd kills a service whose `WATCHDOG=1` pings stop arriving, so it must be seen).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, MutableMapping

from qqworker.contract.events import LogEvent
from qqworker.contract.logs import log_event

__all__ = ["FailureRun", "Notifier", "format_message", "socket_address", "watchdog_period"]

log = logging.getLogger("watchdog")

# A failure run that starts within this long of the last reported one is only counted: a socket that
# flaps (a service manager that reads its queue in bursts) is worth one line, not one per ping.
REPORT_EVERY_S = 600.0

# Read once and removed from the environment by `Notifier(unset_environment=True)`, so the worker child
# (which inherits os.environ) can never pose as the service's main process.
_ENV_KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(value: str | None) -> str | bytes | None:
    """The `NOTIFY_SOCKET` value as an AF_UNIX address: `@name` is the abstract name `\\0name`."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock:… and other transports are not supported: stay a no-op rather than guess


def watchdog_period(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """systemd's WatchdogSec in seconds when it applies to this process, else None.

    `$WATCHDOG_PID`, when set, must be our pid (the variables may have been inherited by a child).
    """
    environ = os.environ if environ is None else environ
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return usec / 1_000_000


class FailureRun:
    """Which failed and successful sends are worth a line: the first failure of a run of failures (unless
    the last reported run began less than `every` seconds ago), and the success that ends a reported run.
    Pure and clock-injected: `failed(now)` and `sent()` say whether to log, nothing else."""

    def __init__(self, every: float = REPORT_EVERY_S) -> None:
        self.every = every
        self.failures = 0  # in the current run
        self._failing = False
        self._reported = False  # the current (or last) run was logged
        self._reported_at: float | None = None

    def failed(self, now: float) -> bool:
        """A send failed at `now`: True when this is the line to log."""
        self.failures += 1
        if self._failing:
            return False
        self._failing = True
        self._reported = self._reported_at is None or now - self._reported_at >= self.every
        if self._reported:
            self._reported_at = now
        return self._reported

    def sent(self) -> int | None:
        """A send worked: the failures of the run it ends when that run was logged, else None."""
        if not self._failing:
            return None
        failures, reported = self.failures, self._reported
        self._failing, self.failures = False, 0
        return failures if reported else None


def format_message(fields: Mapping[str, object]) -> bytes:
    """`ready=True, status="x"` → `b"READY=1\\nSTATUS=x"`; booleans are 1/0, newlines in values become
    spaces."""
    lines = []
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        text = str(value).replace("\r", " ").replace("\n", " ")
        lines.append(f"{key.upper()}={text}")
    return "\n".join(lines).encode()


class Notifier:
    """Sends sd_notify datagrams to `$NOTIFY_SOCKET`; every method is a cheap no-op without it."""

    def __init__(
        self,
        environ: MutableMapping[str, str] | None = None,
        *,
        unset_environment: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.socket = environ.get("NOTIFY_SOCKET")
        self.address = socket_address(self.socket)
        self.clock = clock
        self.failure_run = FailureRun()
        self.watchdog_period = watchdog_period(environ)
        # systemd's advice: ping at half the period, so one late loop turn is not yet fatal.
        self.watchdog_interval = None if self.watchdog_period is None else self.watchdog_period / 2
        self.sent = 0
        self.failed = 0
        self.last_error: OSError | None = None
        self._last_ping: float | None = None
        self._sock: socket.socket | None = None
        if unset_environment:
            for key in _ENV_KEYS:
                environ.pop(key, None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: object) -> bool:
        """Sends one datagram, e.g. `notify(ready=True, status="connected")`; True when it was sent."""
        if self.address is None:
            return False
        message = format_message(fields)
        if not message:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message, socket.MSG_DONTWAIT, self.address)
        except OSError as exc:  # no listener, queue full, socket gone
            self.failed += 1
            self.last_error = exc
            if self.failure_run.failed(self.clock()):
                log_event(
                    log,
                    LogEvent.WATCHDOG_NOTIFY_FAILED,
                    f"Cannot notify the service manager at {self.socket}: {exc}; supervising goes on "
                    "(if this lasts, systemd's watchdog misses its pings)",
                    level=logging.ERROR,
                    socket=self.socket,
                    error=str(exc),
                )
            return False
        self.sent += 1
        failures = self.failure_run.sent()
        if failures is not None:
            log_event(
                log,
                LogEvent.WATCHDOG_NOTIFY_RECOVERED,
                f"Notifying the service manager at {self.socket} works again, after {failures} failed "
                f"send{'s' if failures != 1 else ''}",
                socket=self.socket,
                failed=failures,
            )
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify(ready=True, status=status)

    def status(self, text: str) -> bool:
        return self.notify(status=text)

    def stopping(self, status: str | None = None) -> bool:
        return self.notify(stopping=True, status=status)

    def ping(self, now: float | None = None) -> bool:
        """`WATCHDOG=1` now (only when systemd asked for a watchdog)."""
        if self.watchdog_interval is None:
            return False
        self._last_ping = time.monotonic() if now is None else now
        return self.notify(watchdog=True)

    def ping_due(self, now: float | None = None) -> bool:
        if self.watchdog_interval is None or self.address is None:
            return False
        now = time.monotonic() if now is None else now
        return self._last_ping is None or now - self._last_ping >= self.watchdog_interval

    def next_ping_delay(self, now: float | None = None) -> float | None:
        """Seconds until the next ping is due (0 if due), None without a systemd watchdog: a bound for
        the supervisor loop's wait."""
        if self.watchdog_interval is None or self.address is None:
            return None
        if self._last_ping is None:
            return 0.0
        now = time.monotonic() if now is None else now
        return max(0.0, self._last_ping + self.watchdog_interval - now)

    def ping_if_due(self, now: float | None = None) -> bool:
        """Call on every supervisor loop turn: sends `WATCHDOG=1` at most every half WatchdogSec."""
        now = time.monotonic() if now is None else now
        return self.ping(now) if self.ping_due(now) else False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
