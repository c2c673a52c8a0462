"""One watchdog per status file: the lock, the pid file, the refusal's exit code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qqworker.contract.exitcodes import ExitCode, exit_meaning
from watchdog import lock


def test_the_lock_admits_one_holder_names_it_and_is_free_once_closed(tmp_path: Path) -> None:
    status = str(tmp_path / "run" / "status.json")
    fd = lock.acquire(status)
    try:
        assert Path(lock.lock_path(status)).read_text() == f"{os.getpid()}\n"
        with pytest.raises(lock.AlreadyRunning) as refused:
            lock.acquire(status)  # another open file description: refused like another process
        assert refused.value.holder == os.getpid()
        assert str(os.getpid()) in str(refused.value)
    finally:
        os.close(fd)
    os.close(lock.acquire(status))


def test_the_pid_file_is_replaced_atomically(tmp_path: Path) -> None:
    pid_file = tmp_path / "qqwatchdog.pid"
    pid_file.write_text("1\n")
    lock.write_pid_file(str(pid_file))
    assert pid_file.read_text() == f"{os.getpid()}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["qqwatchdog.pid"]


def test_the_refusal_has_its_own_exit_code() -> None:
    assert ExitCode.LOCKED == 73 and len({int(c) for c in ExitCode}) == len(ExitCode)
    assert "another watchdog" in exit_meaning(73)
