"""Shared helpers for the tests that run real processes: the simulator, the worker, the watchdog.

Every helper is bounded: each wait has a timeout and fails loudly with what was seen so far.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from qqworker.simulator.client_env import client_env

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass
class Line:
    received_at: float  # time.monotonic() when the line was read
    text: str
    record: dict[str, Any] | None  # the parsed JSON object, or None for a non-JSON line

    @property
    def event(self) -> str | None:
        return None if self.record is None else self.record.get("event")


@dataclass
class LineProcess:
    """A subprocess whose stdout (and stderr, merged) is read line by line on a thread."""

    args: list[str]
    env: dict[str, str] | None = None
    cwd: Path = ROOT
    lines: list[Line] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            self.args,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for text in self.proc.stdout:
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
    ) -> tuple[int, dict[str, Any]]:
        """Waits for a line with this event (from line index `after` on); returns (index, record)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index in range(after, len(self.lines)):
                    record = self.lines[index].record
                    if record is not None and record.get("event") == event and where(record):
                        return index, record
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    tail = "\n".join(ln.text for ln in self.lines[-25:])
                    raise AssertionError(f"no {event!r} line within {timeout}s; last lines:\n{tail}")
                self._cond.wait(min(remaining, 0.2))

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

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL of the whole session if it does not end in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_session(self.proc.pid)
                return self.wait(5)
        self._reader.join(5)
        return self.proc.returncode


def kill_session(sid: int) -> None:
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid:
                proc.kill()
        except (ProcessLookupError, psutil.Error):
            pass


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


@dataclass
class SimulatorProcess:
    """`python -m qqworker.simulator` on 127.0.0.1 with its announced endpoints."""

    extra_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.process = LineProcess([PYTHON, "-m", "qqworker.simulator", "--port", "0", *self.extra_args])
        wait_until(lambda: self.process.lines, 20, "the simulator's JSON line")
        first = self.process.lines[0]
        if first.record is None or "api_base" not in first.record:
            raise AssertionError(f"unexpected first simulator line: {first.text}")
        self.info: dict[str, Any] = first.record
        self.control_url: str = self.info.get("control_url") or self.info["api_base"]
        self.state_file = private_state_file()

    def control(self, path: str, body: dict[str, Any] | None = None, timeout: float = 10) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.control_url.rstrip("/") + path,
            data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def state(self) -> Any:
        return self.control("/_sim/state")

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment a worker or watchdog needs to talk to this simulator; the persisted
        session goes to a file of this simulator's own (its sessions mean nothing to another one)."""
        return client_env(self.info, **{"QQW_STATE_FILE": str(self.state_file), **overrides})

    def stop(self) -> None:
        self.process.stop(10)
        shutil.rmtree(self.state_file.parent, ignore_errors=True)


def private_state_file() -> Path:
    """A QQW_STATE_FILE path in a fresh temporary directory (tests must not share the default ./run one)."""
    return Path(tempfile.mkdtemp(prefix="qqsim-state-")) / "qqwatchdog.session.json"


def assert_no_secret(outputs: Iterable[str], secrets: Iterable[str]) -> None:
    for text in outputs:
        for secret in secrets:
            if secret and secret in text:
                raise AssertionError(f"a secret or token appeared in the output: {secret[:4]}…")
