"""The real `python -m watchdog run` + worker against the real simulator, with short timings.

Every wait is bounded and fails with the last lines seen; `finish()` stops the watchdog and checks
that no process of its session outlived it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import psutil

from tests.support import PYTHON, LineProcess, SimulatorProcess, session_processes, wait_until

TIMINGS: dict[str, float] = {
    "heartbeat_interval": 0.2,
    "heartbeat_timeout": 2.0,
    "attempt_grace": 1.0,
    "connect_timeout": 2.0,
    "retry_initial": 0.1,
    "retry_max": 0.5,
    "respawn_initial": 0.1,
    "respawn_max": 0.5,
    "stop_timeout": 2.0,
    "healthy_after": 5.0,
    "max_attempts": 0,
}
HANDLER = "tests.watchdog.wd_handlers:act"
START_TIMEOUT = 30.0
# Detection bounds get this much on top of what the policy promises (loaded CI machines).
SLACK = 2.5


def flags(**overrides: Any) -> list[str]:
    out = []
    for name, value in {**TIMINGS, **overrides}.items():
        out += ["--" + name.replace("_", "-"), str(value)]
    return out


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Watchdog:
    def __init__(
        self,
        tmp_path: Path,
        sim: SimulatorProcess | None,
        *,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
        **overrides: Any,
    ) -> None:
        """`prefix`: a command the watchdog runs under, e.g. ("timeout", "5"); `pid` is then its pid."""
        self.tmp_path = tmp_path
        self.status_file = tmp_path / "status.json"
        base = sim.env() if sim is not None else dict(os.environ, PYTHONUNBUFFERED="1")
        base.update(QQ_HANDLER=HANDLER, QQW_TEST_MARKER=str(tmp_path / "marker"))
        # A state file of this test's own, never the shared ./run one (no simulator: sim.env() sets one).
        base.setdefault("QQW_STATE_FILE", str(tmp_path / "qqwatchdog.session.json"))
        base.update(env or {})
        self.env = base
        args = [*prefix, PYTHON, "-m", "watchdog", "run", *flags(**overrides)]
        args += ["--status-file", str(self.status_file)]
        self.process = LineProcess(args, env=base)
        self.sim = sim

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for(
        self, event: str, timeout: float = START_TIMEOUT, **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        return self.process.wait_for(event, timeout, **kwargs)

    def connected(self, after: int = 0, generation: int | None = None) -> tuple[int, dict[str, Any]]:
        return self.wait_for(
            "gateway.connected",
            where=lambda r: generation is None or r.get("generation") == generation,
            after=after,
        )

    def child_pid(self) -> int:
        return self.process.records("child.spawned")[-1]["child_pid"]

    def send(self, content: str, count: int = 1) -> tuple[int, int]:
        """Dispatches C2C messages; returns the (first, last) seq they got in our session."""
        assert self.sim is not None
        answer = self.sim.control(
            "/_sim/events", {"type": "C2C_MESSAGE_CREATE", "d": {"content": content}, "count": count}
        )
        spans = list(answer["seq"].values())
        assert len(spans) == 1, f"expected one session, got {answer}"
        return spans[0][0], spans[0][1]

    def seqs_logged(self) -> set[int]:
        return {r["seq"] for r in self.process.records("dispatch") if r.get("seq") is not None}

    def wait_all_delivered(self, first: int, last: int, timeout: float = 15.0) -> None:
        # READY and RESUMED take a seq of their own (the platform numbers them): not messages.
        wanted = set(range(first, last + 1)) - {
            r.get("seq") for r in self.process.records("gateway.connected")
        }
        try:
            wait_until(
                lambda: wanted <= self.seqs_logged(), timeout, f"dispatch lines for seq {first}..{last}"
            )
        except AssertionError as exc:
            wanted -= {r.get("seq") for r in self.process.records("gateway.connected")}
            missing = sorted(wanted - self.seqs_logged())[:10]
            raise AssertionError(f"{exc}; missing {missing}; last lines:\n{self.tail()}") from None

    def detected_within(self, event: str, since: float, bound: float, after: int = 0) -> dict[str, Any]:
        """Waits for a detection line and asserts it came within `bound` seconds of `since`."""
        index, record = self.wait_for(event, timeout=bound + 15, after=after)
        took = self.process.lines[index].received_at - since
        assert took <= bound, f"{event} after {took:.2f}s, bound {bound:.2f}s"
        return record

    def tree(self) -> list[psutil.Process]:
        return session_processes(self.pid)

    def finish(self, sig: int = signal.SIGTERM, expect: int | None = 0, timeout: float = 20.0) -> int:
        """Stops the watchdog with `sig`; asserts its exit code and that nothing of its tree is left."""
        if self.process.proc.poll() is None:
            self.process.signal(sig)
        code = self.process.wait(timeout)
        if expect is not None:
            assert code == expect, f"watchdog exited {code}, expected {expect}\n{self.tail()}"
        wait_until(lambda: not self.tree(), 10, "every process of the watchdog's session to be gone")
        return code

    def tail(self, n: int = 30) -> str:
        return "\n".join(line.text for line in self.process.lines[-n:])

    def kill_all(self) -> None:
        """Last-resort cleanup (a failed test must not leave processes behind)."""
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if self.process.proc.poll() is None:
            self.process.proc.kill()
        with contextlib.suppress(Exception):
            self.process.wait(5)


def now() -> float:
    return time.monotonic()
