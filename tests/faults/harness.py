"""The fault matrix's harness: the simulator and the REAL `python -m watchdog run` (+ its worker) as
processes, the short timings every case uses, and the checks every case makes.

Every case asserts the same things about one fault: it was detected within its bound, the worker
connected again, the log never went silent longer than the retry delay + grace while not connected,
no event dispatched during the fault was lost, no process of the watchdog's tree outlived it, and no
secret or token reached any output.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from tests.faults.results import CaseResult
from tests.support import PYTHON, LineProcess, RunTimings, SimulatorProcess, assert_no_secret

DOWN_EVENTS = frozenset(
    {"gateway.closed", "gateway.ack_timeout", "reconnect.failed", "child.killed", "child.exited"}
)
# Every wait in a case is bounded by one of these (generous: CI machines are slow and shared).
START_TIMEOUT = 30.0


class TreeWatcher:
    """Remembers every process that was ever in the watchdog's tree (polled), to find orphans later."""

    def __init__(self, root_pid: int, interval: float = 0.1) -> None:
        self.root_pid = root_pid
        self.seen: dict[int, float] = {}  # pid -> create_time (pids get reused)
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self._interval)

    def poll(self) -> None:
        try:
            root = psutil.Process(self.root_pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                self.seen.setdefault(proc.pid, proc.create_time())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def alive(self) -> list[str]:
        """Processes of the tree still running (not zombies) now."""
        left = []
        for pid, created in self.seen.items():
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    left.append(f"{pid} {' '.join(proc.cmdline())[:120]}")
            except psutil.Error:
                continue
        return left


class Platform(Protocol):
    """What a run needs from the platform it talks to: the simulator, or a test's fake gateway."""

    info: dict[str, Any]

    def env(self, **overrides: str) -> dict[str, str]: ...

    def current_token(self) -> str | None: ...


@dataclass
class Supervised:
    """The real watchdog (`python -m watchdog run`) supervising the real worker, against a platform."""

    sim: Platform
    workdir: Path
    timings: RunTimings = field(default_factory=RunTimings)
    prefix: Sequence[str] = ()
    extra_flags: Sequence[str] = ()
    env_overrides: dict[str, str] = field(default_factory=dict)
    # QQW_FAULT_TARGET=worker runs the cases against `python -m qqworker` alone: for debugging a case
    # on the worker side only; the matrix itself always runs the watchdog.
    alone: bool = os.environ.get("QQW_FAULT_TARGET") == "worker"

    def __post_init__(self) -> None:
        self.status_file = self.workdir / "status.json"
        if self.alone:
            command = ["-m", "qqworker", *self.timings.worker_flags()]
        else:
            command = ["-m", "watchdog", "run", *self.timings.flags(), "--status-file", str(self.status_file)]
        args = [*self.prefix, PYTHON, *command, *self.extra_flags]
        self.process = LineProcess(args, env=self.sim.env(**self.env_overrides))
        self.tree = TreeWatcher(self.process.pid)
        self.started_at = time.monotonic()

    # Waiting on log lines ----------------------------------------------------------------------

    def wait(self, event: str, timeout: float, after: int = 0, **match: Any) -> tuple[int, dict[str, Any]]:
        return self.process.wait_for(
            event, timeout, where=lambda r: all(r.get(k) == v for k, v in match.items()), after=after
        )

    def wait_any(self, events: Sequence[str], timeout: float, after: int = 0) -> tuple[int, dict[str, Any]]:
        wanted = set(events)
        deadline = time.monotonic() + timeout
        while True:
            for index in range(after, self.process.mark()):
                line = self.process.lines[index]
                if line.event in wanted:
                    return index, line.record  # type: ignore[return-value]
            if time.monotonic() >= deadline or self.process.proc.poll() is not None:
                tail = "\n".join(ln.text for ln in self.process.lines[-25:])
                raise AssertionError(f"none of {sorted(wanted)} within {timeout}s; last lines:\n{tail}")
            time.sleep(0.02)

    def connected(self, timeout: float = START_TIMEOUT, after: int = 0) -> tuple[int, dict[str, Any]]:
        return self.wait("gateway.connected", timeout, after=after)

    def at(self, index: int) -> float:
        """When line `index` was read (monotonic)."""
        return self.process.lines[index].received_at

    def mark(self) -> int:
        return self.process.mark()

    def silence(self, start: int, end: int | None = None) -> float:
        return self.process.longest_gap(start, end)

    def silence_while_down(self, start: int, end: int | None = None) -> float:
        """The longest gap between consecutive lines within the stretches of [start, end) in which the
        worker was not connected (from a close or ACK timeout up to the next gateway.connected)."""
        lines = self.process.lines[start:end]
        longest = 0.0
        down = False
        for previous, line in itertools.pairwise(lines):
            if previous.event in DOWN_EVENTS:
                down = True
            if down:
                longest = max(longest, line.received_at - previous.received_at)
            if line.event == "gateway.connected":
                down = False
        return longest

    def seqs_dispatched(self) -> set[int]:
        return {int(r["seq"]) for r in self.process.records("dispatch") if r.get("seq") is not None}

    def wait_seqs(self, seqs: Sequence[int], timeout: float) -> set[int]:
        """Waits until every seq has a `dispatch` line; returns those still missing at the deadline."""
        wanted = set(seqs)
        deadline = time.monotonic() + timeout
        while True:
            missing = wanted - self.seqs_dispatched()
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.05)

    def output(self) -> str:
        return self.process.output()

    def assert_not_respawned(self) -> None:
        if not self.alone:
            spawns = self.process.records("child.spawned")
            assert len(spawns) == 1, f"a permanent error must not be respawned: {len(spawns)} spawns"

    # Ending ------------------------------------------------------------------------------------

    def stop(self, sig: int | None = None, timeout: float = 20) -> int | None:
        """Stops the watchdog (SIGTERM unless told) and returns its exit code."""
        self.tree.poll()
        if self.process.proc.poll() is None:
            self.process.signal(sig if sig is not None else 15)
            try:
                return self.process.wait(timeout)
            except Exception:
                self.kill()
                raise
        return self.process.proc.returncode

    def kill(self) -> None:
        for pid in list(self.tree.seen):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, 9)
        self.process.stop(5)

    def close(self) -> None:
        """Fixture teardown: whatever happened, nothing of this run is left."""
        with contextlib.suppress(Exception):
            self.stop(timeout=10)
        self.tree.stop()
        self.kill()

    def orphans(self, timeout: float = 10) -> list[str]:
        """Processes of the tree still alive, after giving them `timeout` to be reaped."""
        self.tree.stop()
        deadline = time.monotonic() + timeout
        while (left := self.tree.alive()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left

    def assert_clean_end(self, expected_exit: int | None = 0, sig: int | None = None) -> int | None:
        """Stops the watchdog; asserts its exit code, no orphan and no secret in any output."""
        code = self.stop(sig)
        left = self.orphans()
        assert not left, f"processes outlived the watchdog: {left}"
        if expected_exit is not None:
            assert code == expected_exit, f"watchdog exited {code}, expected {expected_exit}"
        self.assert_no_secret()
        return code

    def assert_no_secret(self) -> None:
        secrets = [str(self.sim.info["app_secret"])]
        token = self.sim.current_token()
        if token:
            secrets.append(token)
        status = self.status_file.read_text() if self.status_file.exists() else ""
        assert_no_secret([self.output(), status], secrets)


@dataclass
class Outcome:
    detect_s: float
    recover_s: float
    silence_s: float
    missing: set[int]
    detected: dict[str, Any]
    reconnected: dict[str, Any]


def assert_outcome(
    record: CaseResult, result: Outcome, *, detect_bound: float, recover_bound: float, silence_bound: float
) -> None:
    """Records a fault's three figures against their bounds, then holds it to them and to no lost event."""
    record.measure("detect_s", result.detect_s, detect_bound)
    record.measure("recover_s", result.recover_s, recover_bound)
    record.measure("silence_s", result.silence_s, silence_bound)
    assert result.detect_s <= detect_bound, f"detected after {result.detect_s:.2f}s (bound {detect_bound}s)"
    assert result.recover_s <= recover_bound, (
        f"recovered after {result.recover_s:.2f}s (bound {recover_bound}s)"
    )
    assert result.silence_s <= silence_bound, (
        f"log silent {result.silence_s:.2f}s while not connected (bound {silence_bound}s)"
    )
    assert not result.missing, f"events lost across the fault: seqs {sorted(result.missing)}"


def outage(
    run: Supervised,
    sim: SimulatorProcess,
    *,
    inject: Callable[[], Any],
    restore: Callable[[], Any] | None,
    detect_events: Sequence[str],
    hold_s: float = 0.0,
    events: int = 5,
    settle_s: float = 1.0,
    timeout: float = 30.0,
) -> Outcome:
    """One fault, end to end: connected → inject → events dispatched during the fault → detected →
    (held for hold_s, then restore) → connected again → every event delivered.

    detect_s: injection → the first detection line. recover_s: restore (or, without one, detection)
    → gateway.connected. silence_s: the longest gap between log lines from detection to reconnection,
    the stretch in which the contract forbids silence."""
    run.connected()
    time.sleep(settle_s)  # a few gateway heartbeats and pipe beats on a healthy link first
    mark = run.mark()
    t0 = time.monotonic()
    inject()
    seqs = sim.events(events) if events else []
    detected_at, detected = run.wait_any(detect_events, timeout, after=mark)
    detect_s = run.at(detected_at) - t0
    if restore is not None:
        time.sleep(max(0.0, hold_s - (time.monotonic() - t0)))
        t1 = time.monotonic()
        restore()
        back_at, reconnected = run.connected(timeout, after=detected_at)
        recover_s = max(0.0, run.at(back_at) - t1)
    else:
        back_at, reconnected = run.connected(timeout, after=detected_at)
        recover_s = run.at(back_at) - run.at(detected_at)
    missing = run.wait_seqs(seqs, timeout)
    return Outcome(detect_s, recover_s, run.silence(detected_at, back_at + 1), missing, detected, reconnected)
