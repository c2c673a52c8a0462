"""The child's side of the pipe to its watchdog: the non-blocking beater, the tokens it hands over, the
watchdog's beat version it reads."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from qqworker.child import Beater
from qqworker.contract.beat import BEAT_VERSION, Beat, Phase, Progress


def test_the_beater_never_blocks_and_counts_what_it_drops() -> None:
    read_fd, write_fd = os.pipe()
    try:
        progress = Progress(phase=Phase.CONNECTED, session_id="s", seq=3)
        beater = Beater(write_fd, progress, 5.0, os.getppid())
        beater.send()
        line = os.read(read_fd, 4096)
        assert line.endswith(b"\n") and Beat.decode(line).session_id == "s"
        started = time.monotonic()
        for _ in range(2000):  # far more than a pipe holds
            beater.send()
        assert time.monotonic() - started < 2.0
        assert beater.dropped > 0 and beater.sent + beater.dropped == 2001
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_a_broken_pipe_tells_the_child_its_watchdog_is_gone() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    reasons: list[str] = []
    beater = Beater(write_fd, Progress(), 5.0, os.getppid())
    beater.on_broken = reasons.append
    beater.send()
    beater.send()
    os.close(write_fd)
    assert beater.broken and len(reasons) == 1 and "EPIPE" in reasons[0]


def test_the_beater_notices_a_new_parent() -> None:
    read_fd, write_fd = os.pipe()
    try:
        reasons: list[str] = []
        beater = Beater(write_fd, Progress(), 5.0, parent_pid=os.getppid() + 1_000_000)
        beater.on_broken = reasons.append
        beater.send()
        assert beater.broken and "parent" in reasons[0]
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_the_beat_period_meets_the_next_attempt() -> None:
    now = [100.0]
    progress = Progress(clock=lambda: now[0])
    beater = Beater(os.open(os.devnull, os.O_WRONLY), progress, 5.0, os.getppid())
    assert beater.period() == 5.0
    progress.update(phase=Phase.WAITING, next_attempt_at=101.5)
    assert beater.period() == 1.5
    now[0] = 200.0  # overdue: no busy loop, the normal period
    assert beater.period() == 5.0
    os.close(beater.fd)


def test_the_beater_sends_the_learnt_tokens_newest_first_within_the_size_budget(tmp_path: Path) -> None:
    from qqworker import child
    from qqworker.contract.logs import redactor

    r, w = os.pipe()
    try:
        app = "qqw-unit-app-secret-7f3a"  # the process-wide redactor: strings no other test prints
        beater = child.Beater(w, Progress(), 1.0, os.getppid(), version=BEAT_VERSION, known_secret=app)
        redactor.add(app)
        redactor.add("tok-old-" + "x" * 20)
        redactor.add("tok-new-" + "y" * 20)
        beater.send()
        beat = Beat.decode(os.read(r, 4096).strip())
        assert beat.redact is not None and beat.redact[0].startswith("tok-new-")
        assert app not in beat.redact
        old = child.Beater(w, Progress(), 1.0, os.getppid())  # a watchdog that did not say: version 1
        old.send()
        assert b"tok-" not in os.read(r, 4096)
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize(("value", "expected"), [(None, 1), ("2", 2), ("7", 7), ("x", 1), ("0", 1)])
def test_the_child_reads_its_watchdogs_version_from_the_environment_and_keeps_it_to_itself(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: int
) -> None:
    from qqworker import child
    from qqworker.contract.beat import VERSION_ENV

    if value is None:
        monkeypatch.delenv(VERSION_ENV, raising=False)
    else:
        monkeypatch.setenv(VERSION_ENV, value)
    assert child.watchdog_beat_version() == expected
    assert VERSION_ENV not in os.environ  # not inherited by what the handlers start
