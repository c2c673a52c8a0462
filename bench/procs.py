"""A subprocess whose output lines are read on a thread and timestamped, for the benchmark."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Line:
    t: float  # time.monotonic() when read
    text: str
    record: dict[str, Any] | None


class Proc:
    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.args = list(args)
        self.lines: list[Line] = []
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(
            self.args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for text in self.popen.stdout:
            text = text.rstrip("\n")
            try:
                record = json.loads(text)
            except ValueError:
                record = None
            with self._cond:
                self.lines.append(Line(time.monotonic(), text, record if isinstance(record, dict) else None))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def wait_for(self, event: str, timeout: float, after: int = 0, **match: Any) -> tuple[int, Line]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index in range(after, len(self.lines)):
                    line = self.lines[index]
                    rec = line.record
                    if (
                        rec is not None
                        and rec.get("event") == event
                        and all(rec.get(k) == v for k, v in match.items())
                    ):
                        return index, line
                left = deadline - time.monotonic()
                if left <= 0 or self.popen.poll() is not None:
                    tail = "\n".join(ln.text for ln in self.lines[-15:])
                    raise RuntimeError(
                        f"no {event} line within {timeout}s from {self.args[:4]}; last lines:\n{tail}"
                    )
                self._cond.wait(min(left, 0.2))

    def longest_gap(self, start: int, end: int | None = None) -> float:
        with self._cond:
            times = [ln.t for ln in self.lines[start:end]]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def stop(self, timeout: float = 15) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_session(self.pid)
                self.popen.wait(5)
        self._reader.join(5)
        return self.popen.returncode


def kill_session(sid: int) -> None:
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid:
                proc.kill()
        except (ProcessLookupError, psutil.Error):
            pass
