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
import json
import os
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from qqworker.simulator.client_env import client_env
from tests.faults.results import CaseResult
from tests.support import PYTHON, LineProcess, assert_no_secret, private_state_file, wait_until

DOWN_EVENTS = frozenset(
    {"gateway.closed", "gateway.ack_timeout", "reconnect.failed", "child.killed", "child.exited"}
)
# Every wait in a case is bounded by one of these (generous: CI machines are slow and shared).
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Timings:
    """The short intervals the matrix runs with (production defaults are in the contract)."""

    retry_initial: float = 0.1
    retry_max: float = 1.0
    connect_timeout: float = 2.0
    heartbeat_interval: float = 0.2
    heartbeat_timeout: float = 2.0
    attempt_grace: float = 1.0
    respawn_initial: float = 0.1
    respawn_max: float = 1.0
    healthy_after: float = 5.0
    stop_timeout: float = 3.0
    max_attempts: int = 0
    # The simulator's Hello interval: the worker heartbeats this often and misses ACKs after two.
    gateway_heartbeat_ms: int = 300
    # Log silence allowed beyond the longest retry delay while not connected.
    silence_grace: float = 1.5
    # True: the processes get no timing flag at all (these values then mirror the production defaults).
    defaults: bool = False

    def worker_flags(self) -> list[str]:
        worker = {
            "--retry-initial",
            "--retry-max",
            "--connect-timeout",
            "--heartbeat-interval",
            "--max-attempts",
        }
        flags = self.flags()
        return [
            x
            for name, value in zip(flags[::2], flags[1::2], strict=True)
            if name in worker
            for x in (name, value)
        ]

    def flags(self) -> list[str]:
        if self.defaults:
            return []
        return [
            "--retry-initial", str(self.retry_initial),
            "--retry-max", str(self.retry_max),
            "--connect-timeout", str(self.connect_timeout),
            "--heartbeat-interval", str(self.heartbeat_interval),
            "--heartbeat-timeout", str(self.heartbeat_timeout),
            "--attempt-grace", str(self.attempt_grace),
            "--respawn-initial", str(self.respawn_initial),
            "--respawn-max", str(self.respawn_max),
            "--healthy-after", str(self.healthy_after),
            "--stop-timeout", str(self.stop_timeout),
            "--max-attempts", str(self.max_attempts),
        ]  # fmt: skip

    @property
    def silence_bound(self) -> float:
        """The contract's rule: no gap longer than the (largest) retry delay plus a small grace. A
        connect attempt that hangs is bounded by connect_timeout, so that counts as a delay too."""
        return max(self.retry_max, self.connect_timeout) + self.silence_grace

    @property
    def kill_silence_bound(self) -> float:
        """While the watchdog replaces a child it may wait stop_timeout for SIGTERM to work (a blocked
        loop never runs its handler) before SIGKILL: that wait is a bounded, configured silence."""
        return max(self.retry_max, self.connect_timeout, self.stop_timeout) + self.silence_grace

    @property
    def ack_bound(self) -> float:
        """A half-open link must be noticed within two missed gateway heartbeats, plus slack."""
        return 2 * self.gateway_heartbeat_ms / 1000 + 2.0


class FaultSim:
    """`python -m qqworker.simulator`, optionally inside a namespace (`prefix`, `call`)."""

    def __init__(
        self,
        timings: Timings,
        extra: Sequence[str] = (),
        prefix: Sequence[str] = (),
        call: Callable[..., Any] | None = None,
    ) -> None:
        args = [
            *prefix, PYTHON, "-m", "qqworker.simulator", "--port", "0",
            "--heartbeat-interval-ms", str(timings.gateway_heartbeat_ms), *extra,
        ]  # fmt: skip
        self.process = LineProcess(args)
        self._call = call
        try:
            wait_until(lambda: self.process.records(), START_TIMEOUT, "the simulator's JSON line")
        except AssertionError:
            self.process.stop(5)
            raise AssertionError(f"the simulator did not start:\n{self.process.output()}") from None
        self.info: dict[str, Any] = self.process.records()[0]
        self.control_url: str = self.info.get("control_url") or self.info["api_base"]
        self.port = int(self.info["api_base"].rsplit(":", 1)[1].rstrip("/"))
        self.state_file = private_state_file()

    def _request(self, url: str, body: dict[str, Any] | None, timeout: float) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            url,
            data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def control(self, path: str, body: dict[str, Any] | None = None, timeout: float = 10) -> Any:
        url = self.control_url.rstrip("/") + path
        if self._call is not None:
            return self._call(self._request, url, body, timeout)
        return self._request(url, body, timeout)

    def state(self) -> Any:
        return self.control("/_sim/state")

    def events(self, count: int, kind: str = "C2C_MESSAGE_CREATE") -> list[int]:
        """Dispatches `count` events to every session (kept for a session that is away); their seqs."""
        answer = self.control("/_sim/events", {"type": kind, "count": count})
        seqs: list[int] = []
        for first, last in answer.get("seq", {}).values():
            seqs.extend(range(first, last + 1))
        return seqs

    def say(self, content: str, count: int = 1) -> list[int]:
        """Dispatches C2C messages with this content (a trigger word for tests/faults/handlers.py)."""
        answer = self.control(
            "/_sim/events", {"type": "C2C_MESSAGE_CREATE", "d": {"content": content}, "count": count}
        )
        return [s for first, last in answer.get("seq", {}).values() for s in range(first, last + 1)]

    def outage(self, mode: str, seconds: float) -> None:
        self.control("/_sim/outage", {"mode": mode, "seconds": seconds})

    def close(self, code: int, **extra: Any) -> int:
        return int(self.control("/_sim/close", {"code": code, **extra})["closed"])

    def current_token(self) -> str | None:
        """The access token the worker holds: the endpoint hands out the same one until near expiry."""
        body = {"appId": str(self.info["app_id"]), "clientSecret": str(self.info["app_secret"])}
        url = self.info["token_url"]
        try:
            answer = self._call(self._request, url, body, 10) if self._call else self._request(url, body, 10)
        except OSError:
            return None
        return answer.get("access_token") if isinstance(answer, dict) else None

    def env(self, **overrides: str) -> dict[str, str]:
        return client_env(self.info, **{"QQW_STATE_FILE": str(self.state_file), **overrides})

    def stop(self) -> None:
        self.process.stop(10)
        shutil.rmtree(self.state_file.parent, ignore_errors=True)


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
    """The real watchdog (`python -m watchdog run`) supervising the real worker, against a FaultSim."""

    sim: Platform
    workdir: Path
    timings: Timings = field(default_factory=Timings)
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
    sim: FaultSim,
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
