"""The watchdog under test: the REAL `python -m watchdog run` supervising the real worker against a platform
(the simulator, or a test's fake gateway), with the short timings of a RunTimings.

Every wait is bounded and fails with the last lines seen. `finish()` stops the watchdog and asserts its
exit code, that no process that was ever in its tree outlived it, and that no secret or token reached
its output or status file; `close()` is the teardown that leaves nothing behind whatever happened.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import psutil

from tests.support import (
    PYTHON,
    ROOT,
    LineProcess,
    RunTimings,
    assert_no_secret,
    session_processes,
    wait_until,
)

__all__ = ["ACT", "LIFECYCLE", "SLACK", "START_TIMEOUT", "Platform", "Supervised", "TreeWatcher"]

# The default handler: logs every event and does the misbehaviour a message names (tests/handlers.py).
ACT = "tests.handlers:act"
START_TIMEOUT = 30.0  # generous: CI machines are slow and shared
# Detection bounds get this much on top of what the policy promises (loaded CI machines).
SLACK = 2.5
# tests/watchdog/'s runs: the matrix's timings with shorter caps (they measure no fault's figures).
LIFECYCLE = RunTimings(retry_max=0.5, respawn_max=0.5, stop_timeout=2.0)
DOWN_EVENTS = frozenset(
    {"gateway.closed", "gateway.ack_timeout", "reconnect.failed", "child.killed", "child.exited"}
)


class Platform(Protocol):
    """What a run needs from the platform it talks to: the simulator, or a test's fake gateway."""

    info: dict[str, Any]

    def env(self, **overrides: str) -> dict[str, str]: ...

    def current_token(self) -> str | None: ...


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


class Supervised:
    """One run of the watchdog under test.

    `sim` is the platform (None: no platform at all, the caller's `env` says where to connect);
    `workdir` holds the status file and, unless `env` names another, the handlers' QQF_FLAG_DIR.
    `prefix` is a command the watchdog runs under (e.g. `timeout 5`: `pid` is then that command's);
    `extra_flags` and `flags` (`memory_limit_mb=200` → `--memory-limit-mb 200`) follow the timing flags.
    QQW_FAULT_TARGET=worker runs `python -m qqworker` alone instead: for debugging a fault case on the
    worker side only; the matrix itself always runs the watchdog.
    """

    def __init__(
        self,
        sim: Platform | None,
        workdir: Path,
        *,
        timings: RunTimings | None = None,
        handler: str = ACT,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
        extra_flags: Sequence[str] = (),
        alone: bool = os.environ.get("QQW_FAULT_TARGET") == "worker",
        **flags: object,
    ) -> None:
        self.sim = sim
        self.workdir = workdir
        self.timings = timings or RunTimings()
        self.alone = alone
        self.status_file = workdir / "status.json"
        flag_dir = workdir / "flags"
        flag_dir.mkdir(parents=True, exist_ok=True)
        base = sim.env() if sim is not None else dict(os.environ, PYTHONUNBUFFERED="1")
        base.update(QQ_HANDLER=handler, QQF_FLAG_DIR=str(flag_dir))
        base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))
        # A state file of this run's own, never the shared ./run one (a platform's env() sets one).
        base.setdefault("QQW_STATE_FILE", str(workdir / "qqwatchdog.session.json"))
        base.update(env or {})
        self.env = base
        named = [x for name, value in flags.items() for x in ("--" + name.replace("_", "-"), str(value))]
        if alone:
            command = ["-m", "qqworker", *self.timings.worker_flags()]
        else:
            command = ["-m", "watchdog", "run", *self.timings.flags(), "--status-file", str(self.status_file)]
        self.process = LineProcess([*prefix, PYTHON, *command, *extra_flags, *named], env=base)
        self.tree = TreeWatcher(self.process.pid)
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    # Waiting on log lines ----------------------------------------------------------------------

    def wait_for(
        self,
        event: str,
        timeout: float = START_TIMEOUT,
        *,
        where: Callable[[dict[str, Any]], bool] = lambda r: True,
        after: int = 0,
        **match: Any,
    ) -> tuple[int, dict[str, Any]]:
        return self.process.wait_for(event, timeout, where, after, **match)

    def wait_any(self, events: Sequence[str], timeout: float, after: int = 0) -> tuple[int, dict[str, Any]]:
        return self.process.wait_any(events, timeout, after=after)

    def connected(
        self, timeout: float = START_TIMEOUT, after: int = 0, generation: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        """The next gateway.connected (of this child generation, when given)."""
        return self.wait_for(
            "gateway.connected",
            timeout,
            where=lambda r: generation is None or r.get("generation") == generation,
            after=after,
        )

    def detected_within(self, event: str, since: float, bound: float, after: int = 0) -> dict[str, Any]:
        """Waits for a detection line and asserts it came within `bound` seconds of `since`."""
        index, record = self.wait_for(event, bound + 15, after=after)
        took = self.at(index) - since
        assert took <= bound, f"{event} after {took:.2f}s, bound {bound:.2f}s"
        return record

    def at(self, index: int) -> float:
        """When line `index` was read (monotonic)."""
        return self.process.at(index)

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

    def child_pid(self) -> int:
        spawned = self.process.records("child.spawned")
        assert spawned, "no child.spawned line"
        return int(spawned[-1]["child_pid"])

    def output(self) -> str:
        return self.process.output()

    def tail(self, n: int = 30) -> str:
        return "\n".join(line.text for line in self.process.lines[-n:])

    # Events ------------------------------------------------------------------------------------

    def send(self, content: str, count: int = 1) -> tuple[int, int]:
        """Dispatches C2C messages to the one session; returns the (first, last) seq they got."""
        assert self.sim is not None and hasattr(self.sim, "control"), "send needs the simulator"
        answer = self.sim.control(
            "/_sim/events", {"type": "C2C_MESSAGE_CREATE", "d": {"content": content}, "count": count}
        )
        spans = list(answer["seq"].values())
        assert len(spans) == 1, f"expected one session, got {answer}"
        return spans[0][0], spans[0][1]

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

    def wait_all_delivered(self, first: int, last: int, timeout: float = 15.0) -> None:
        """Asserts a `dispatch` line for every message seq in first..last."""

        def wanted() -> set[int]:
            # READY and RESUMED take a seq of their own (the platform numbers them): not messages.
            ready = {r.get("seq") for r in self.process.records("gateway.connected")}
            return set(range(first, last + 1)) - ready

        try:
            wait_until(
                lambda: wanted() <= self.seqs_dispatched(), timeout, f"dispatch lines for seq {first}..{last}"
            )
        except AssertionError as exc:
            missing = sorted(wanted() - self.seqs_dispatched())[:10]
            raise AssertionError(f"{exc}; missing {missing}; last lines:\n{self.tail()}") from None

    def assert_not_respawned(self) -> None:
        if not self.alone:
            spawns = self.process.records("child.spawned")
            assert len(spawns) == 1, f"a permanent error must not be respawned: {len(spawns)} spawns"

    # Ending ------------------------------------------------------------------------------------

    def session(self) -> list[psutil.Process]:
        """Live processes of the watchdog's session."""
        return session_processes(self.pid)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        """Stops the watchdog with `sig` and returns its exit code."""
        self.tree.poll()
        if self.process.proc.poll() is None:
            self.process.signal(sig)
            try:
                return self.process.wait(timeout)
            except Exception:
                self.kill()
                raise
        self.process.wait(5)
        return self.process.proc.returncode

    def orphans(self, timeout: float = 10) -> list[str]:
        """Processes of the tree still alive, after giving them `timeout` to be reaped."""
        self.tree.stop()
        deadline = time.monotonic() + timeout
        while (left := self.tree.alive()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left

    def finish(self, sig: int = signal.SIGTERM, expect: int | None = 0, timeout: float = 20) -> int | None:
        """Stops the watchdog; asserts its exit code (unless `expect` is None), that nothing of its tree
        or session is left, and that no secret reached any output."""
        code = self.stop(sig, timeout)
        if expect is not None:
            assert code == expect, f"watchdog exited {code}, expected {expect}\n{self.tail()}"
        left = self.orphans()
        assert not left, f"processes outlived the watchdog: {left}"
        wait_until(lambda: not self.session(), 10, "every process of the watchdog's session to be gone")
        self.assert_no_secret()
        return code

    def assert_no_secret(self) -> None:
        if self.sim is None:
            return
        secrets = [str(self.sim.info["app_secret"])]
        token = self.sim.current_token()
        if token:
            secrets.append(token)
        status = self.status_file.read_text() if self.status_file.exists() else ""
        assert_no_secret([self.output(), status], secrets)

    def kill(self) -> None:
        for pid, created in list(self.tree.seen.items()):
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created:  # not a later process that got the pid
                    proc.kill()
        for proc in self.session():
            with contextlib.suppress(psutil.Error):
                proc.kill()
        self.process.stop(5)

    def close(self) -> None:
        """Teardown: whatever happened, nothing of this run is left."""
        with contextlib.suppress(Exception):
            self.stop(timeout=10)
        self.tree.stop()
        self.kill()
