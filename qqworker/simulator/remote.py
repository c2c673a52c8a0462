"""Driving real processes against the simulator: the one helper the tests, the demo and the benchmark use.

`LineProcess` runs a command and reads its stdout (stderr merged) line by line on a thread, each line
timestamped and parsed when it is a JSON object. `SimulatorProcess` is `python -m qqworker.simulator` as
such a process, with its control API (`/_sim/...`) and the environment that points a worker or a
watchdog at it. `RunTimings` is the one table of the timing flags a run gives the worker and the watchdog.
Every wait here is bounded and fails loudly with what was seen so far.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from signal import SIGTERM
from typing import Any

import psutil

from qqworker.simulator.client_env import client_env

__all__ = [
    "PYTHON",
    "Line",
    "LineProcess",
    "RunTimings",
    "SimulatorProcess",
    "kill_session",
    "private_state_file",
    "session_processes",
    "wait_until",
]

PYTHON = sys.executable
START_TIMEOUT = 30.0  # a simulator on a loaded 2-core CI machine


@dataclass
class Line:
    received_at: float  # time.monotonic() when the line was read
    text: str
    record: dict[str, Any] | None  # the parsed JSON object, or None for a non-JSON line

    @property
    def event(self) -> str | None:
        return None if self.record is None else self.record.get("event")


def _matches(record: dict[str, Any], match: dict[str, Any]) -> bool:
    return all(record.get(key) == value for key, value in match.items())


class LineProcess:
    """A subprocess in its own session whose stdout (and stderr, merged) is read line by line on a thread.

    `on_line` sees every raw line as it arrives (the demo relays them to the operator's terminal).
    """

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: Path | str | None = None,
        *,
        on_line: Callable[[str], None] | None = None,
        preexec_fn: Callable[[], Any] | None = None,
    ) -> None:
        self.args = list(args)
        self.lines: list[Line] = []
        self._on_line = on_line
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            self.args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
            preexec_fn=preexec_fn,
        )
        self._reader = threading.Thread(target=self._read, name="line-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for text in self.proc.stdout:
            if self._on_line is not None:
                self._on_line(text)
            text = text.rstrip("\n")
            try:
                record = json.loads(text)
                if not isinstance(record, dict):
                    record = None
            except ValueError:
                record = None
            with self._cond:
                self.lines.append(Line(time.monotonic(), text, record))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [
                ln.record
                for ln in self.lines
                if ln.record is not None and (event is None or ln.event == event)
            ]

    def output(self) -> str:
        with self._cond:
            return "\n".join(ln.text for ln in self.lines)

    def wait_for(
        self,
        event: str,
        timeout: float,
        where: Callable[[dict[str, Any]], bool] = lambda r: True,
        after: int = 0,
        **match: Any,
    ) -> tuple[int, dict[str, Any]]:
        """Waits for a line with this event (from line index `after` on) whose fields equal `match` and
        that `where` accepts; returns (index, record)."""
        return self.wait_any((event,), timeout, where, after, **match)

    def wait_any(
        self,
        events: Sequence[str],
        timeout: float,
        where: Callable[[dict[str, Any]], bool] = lambda r: True,
        after: int = 0,
        **match: Any,
    ) -> tuple[int, dict[str, Any]]:
        """The first line from `after` on with any of these events (and `match`, `where`)."""
        found = self.poll_for(events, timeout, where, after, **match)
        if found is None:
            with self._cond:
                tail = "\n".join(ln.text for ln in self.lines[-25:])
            wanted = "/".join(events)
            raise AssertionError(f"no {wanted!r} line within {timeout}s; last lines:\n{tail}")
        return found

    def poll_for(
        self,
        events: Sequence[str],
        timeout: float,
        where: Callable[[dict[str, Any]], bool] = lambda r: True,
        after: int = 0,
        **match: Any,
    ) -> tuple[int, dict[str, Any]] | None:
        """`wait_any`, but None when no such line came within `timeout` (or the process ended first);
        `timeout=0` looks only at the lines already read."""
        wanted = set(events)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index in range(after, len(self.lines)):
                    record = self.lines[index].record
                    if (
                        record is not None
                        and record.get("event") in wanted
                        and _matches(record, match)
                        and where(record)
                    ):
                        return index, record
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._cond.wait(min(remaining, 0.2))

    def reader_alive(self) -> bool:
        return self._reader.is_alive()

    def at(self, index: int) -> float:
        """When line `index` was read (time.monotonic())."""
        with self._cond:
            return self.lines[index].received_at

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def longest_gap(self, start: int = 0, end: int | None = None) -> float:
        """The longest time between two consecutive lines in [start, end)."""
        with self._cond:
            times = [ln.received_at for ln in self.lines[start:end]]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop(self, timeout: float = 15, sig: int = SIGTERM) -> int | None:
        """`sig` (SIGTERM), then SIGKILL of the whole session if it does not end in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_session(self.proc.pid)
                return self.wait(5)
        self._reader.join(5)
        return self.proc.returncode


def kill_session(sid: int) -> None:
    """SIGKILL to every process of a session (start_new_session=True: the leader's pid is the sid)."""
    for proc in session_processes(sid):
        with contextlib.suppress(psutil.Error):
            proc.kill()


def session_processes(sid: int) -> list[psutil.Process]:
    """Live processes of a session (start_new_session=True makes the child's pid the session id)."""
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getsid(proc.pid) == sid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, psutil.Error):
            pass
    return found


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def private_state_file() -> Path:
    """A QQW_STATE_FILE path in a fresh temporary directory (runs must not share the default ./run one)."""
    return Path(tempfile.mkdtemp(prefix="qqsim-state-")) / "qqwatchdog.session.json"


def _request(url: str, body: dict[str, Any] | None, timeout: float) -> Any:
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


Call = Callable[
    [Callable[[str, "dict[str, Any] | None", float], Any], str, "dict[str, Any] | None", float], Any
]


class SimulatorProcess:
    """`python -m qqworker.simulator --port 0` with its announced endpoints and its control API.

    `prefix` runs it inside something (e.g. `ip netns exec NAME`); `call` then makes the control
    requests from where they can reach it. Each simulator gets its own QQW_STATE_FILE in `env()`: its
    sessions mean nothing to another one.
    """

    def __init__(
        self,
        *extra: str,
        gateway_heartbeat_ms: int | None = None,
        prefix: Sequence[str] = (),
        call: Call | None = None,
        env: dict[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
        preexec_fn: Callable[[], Any] | None = None,
    ) -> None:
        args = [*prefix, PYTHON, "-m", "qqworker.simulator", "--port", "0"]
        if gateway_heartbeat_ms is not None:
            args += ["--heartbeat-interval-ms", str(gateway_heartbeat_ms)]
        self.process = LineProcess([*args, *extra], env=env, on_line=on_line, preexec_fn=preexec_fn)
        self._call = call
        try:
            wait_until(self.process.records, START_TIMEOUT, "the simulator's JSON line")
        except AssertionError:
            self.process.stop(5)
            raise AssertionError(f"the simulator did not start:\n{self.process.output()}") from None
        self.info: dict[str, Any] = self.process.records()[0]
        if "api_base" not in self.info:
            self.process.stop(5)
            raise AssertionError(f"unexpected first simulator line: {self.info}")
        self.control_url: str = self.info.get("control_url") or self.info["api_base"]
        self.port = int(self.info["api_base"].rsplit(":", 1)[1].rstrip("/"))
        self.state_file = private_state_file()

    def _send(self, url: str, body: dict[str, Any] | None, timeout: float) -> Any:
        if self._call is not None:
            return self._call(_request, url, body, timeout)
        return _request(url, body, timeout)

    def control(self, path: str, body: dict[str, Any] | None = None, timeout: float = 10) -> Any:
        return self._send(self.control_url.rstrip("/") + path, body, timeout)

    def state(self) -> Any:
        return self.control("/_sim/state")

    def connected(self) -> int:
        """How many sessions have a client connected right now."""
        return sum(1 for s in self.state()["sessions"] if s["connected"])

    def wait_connected(self, count: int = 1, timeout: float = 60) -> None:
        wait_until(
            lambda: self.connected() >= count, timeout, f"{count} client(s) connected to the simulator"
        )

    def events(self, count: int, kind: str = "C2C_MESSAGE_CREATE", timeout: float = 10) -> list[int]:
        """Dispatches `count` events to every session (kept for a session that is away); their seqs."""
        answer = self.control("/_sim/events", {"type": kind, "count": count}, timeout)
        return [s for first, last in answer.get("seq", {}).values() for s in range(first, last + 1)]

    def say(self, content: str, count: int = 1) -> list[int]:
        """Dispatches C2C messages with this content (a trigger word for tests/handlers.py)."""
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
        try:
            answer = self._send(self.info["token_url"], body, 10)
        except OSError:
            return None
        return answer.get("access_token") if isinstance(answer, dict) else None

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment a worker or watchdog needs to talk to this simulator."""
        return client_env(self.info, **{"QQW_STATE_FILE": str(self.state_file), **overrides})

    def stop(self) -> None:
        self.process.stop(10)
        shutil.rmtree(self.state_file.parent, ignore_errors=True)


# RunTimings' fields that are flags of the processes, in the order they are given.
FLAG_NAMES = {
    name: "--" + name.replace("_", "-")
    for name in (
        "retry_initial", "retry_max", "connect_timeout", "heartbeat_interval", "heartbeat_timeout",
        "attempt_grace", "respawn_initial", "respawn_max", "healthy_after", "stop_timeout", "max_attempts",
    )
}  # fmt: skip


@dataclass(frozen=True)
class RunTimings:
    """The timing flags a run gives the worker and the watchdog, and the bounds that follow from them.

    The defaults are the short intervals the tests use; `defaults=True` gives no timing flag at all
    (the processes then run with the production defaults, which these values do not mirror), and
    `RunTimings.only(...)` just the flags named (a None field gives no flag).
    """

    retry_initial: float | None = 0.1
    retry_max: float | None = 1.0
    connect_timeout: float | None = 2.0
    heartbeat_interval: float | None = 0.2
    heartbeat_timeout: float | None = 2.0
    attempt_grace: float | None = 1.0
    respawn_initial: float | None = 0.1
    respawn_max: float | None = 1.0
    healthy_after: float | None = 5.0
    stop_timeout: float | None = 3.0
    max_attempts: int | None = 0
    # The simulator's Hello interval: the worker heartbeats this often and misses ACKs after two.
    gateway_heartbeat_ms: int = 300
    # Log silence allowed beyond the longest retry delay while not connected.
    silence_grace: float = 1.5
    defaults: bool = False

    WORKER_FLAGS = frozenset(
        {"--retry-initial", "--retry-max", "--connect-timeout", "--heartbeat-interval", "--max-attempts"}
    )

    @classmethod
    def only(cls, **values: float) -> RunTimings:
        """Just these timings as flags, every other one left at the process's own default."""
        unset = {f.name: None for f in fields(cls) if f.name in FLAG_NAMES}
        return cls(**{**unset, **values})

    def flags(self) -> list[str]:
        """`python -m watchdog run` flags."""
        if self.defaults:
            return []
        named = ((flag, getattr(self, name)) for name, flag in FLAG_NAMES.items())
        return [x for flag, value in named if value is not None for x in (flag, str(value))]

    def worker_flags(self) -> list[str]:
        """The subset `python -m qqworker` takes."""
        flags = self.flags()
        return [
            x
            for name, value in zip(flags[::2], flags[1::2], strict=True)
            if name in self.WORKER_FLAGS
            for x in (name, value)
        ]

    def simulator_flags(self) -> list[str]:
        return ["--heartbeat-interval-ms", str(self.gateway_heartbeat_ms)]

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
