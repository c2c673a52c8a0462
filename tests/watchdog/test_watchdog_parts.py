"""The watchdog's building blocks against real processes: killing a real process tree (stopped and
stubborn members too) and `watchdog status --json` run as a command. Their pure parts are in tests/unit
(test_relay.py, test_status.py, test_child.py, test_policy.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support import watchdog_status
from watchdog.process import Child, TreeKill
from watchdog.status import write_status

TREE = """
import os, signal, subprocess, sys, time
IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
STUBBORN = IGNORE_TERM + "print('ready', flush=True); time.sleep(60)"
stubborn = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE)
stubborn.stdout.readline()
frozen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
os.kill(frozen.pid, signal.SIGSTOP)
print(stubborn.pid, frozen.pid, flush=True)
time.sleep(60)
"""


def run_kill(kill: TreeKill) -> TreeKill:
    deadline = time.monotonic() + 30
    while not kill.step(time.monotonic()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return kill


class _Proc:
    """Stands in for the multiprocess.Process: exit status through subprocess."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self.popen = popen

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()


@pytest.mark.parametrize("stop_timeout", [1.0])
def test_kill_tree_terms_then_kills_everyone_and_leaves_nothing(stop_timeout: float) -> None:
    popen = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        stubborn, frozen = map(int, popen.stdout.readline().split())
        child = Child(_Proc(popen), popen.pid, 1, -1, -1, time.monotonic())
        sent: list[tuple[str, int]] = []
        started = time.monotonic()
        report = run_kill(TreeKill(child, stop_timeout, set(), lambda s, n: sent.append((s, n)), now=started))
        took = time.monotonic() - started
        assert report.survivors == []
        assert [s for s, _ in sent] == ["SIGTERM", "SIGKILL"] == report.signals
        assert sent[0][1] == 3  # the tree was taken before the first signal
        assert stop_timeout <= took < stop_timeout + 5
        for pid in (popen.pid, stubborn, frozen):
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert popen.poll() == -signal.SIGTERM  # the parent itself went on SIGTERM
    finally:
        popen.kill()
        popen.wait()


def test_kill_tree_force_goes_straight_to_sigkill() -> None:
    popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        child = Child(_Proc(popen), popen.pid, 1, -1, -1, time.monotonic())
        report = run_kill(TreeKill(child, 30.0, set(), lambda s, n: None, force=True, now=time.monotonic()))
        assert report.signals == ["SIGKILL"] and report.survivors == []
        assert popen.wait(5) == -signal.SIGKILL
    finally:
        popen.kill()
        popen.wait()


def test_status_json_cli_shape(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_status(str(path), {"state": "running", "watchdog_pid": 999_999_999})
    out = watchdog_status(path, "--json")
    assert out.returncode == 3
    assert json.loads(out.stdout)["verdict"].startswith("not running")
