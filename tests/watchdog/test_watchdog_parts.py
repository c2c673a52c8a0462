"""The watchdog's building blocks on their own: line splitting and classification, the status verdict,
the child's non-blocking beater, and killing a real process tree (stopped and stubborn members too)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from qqworker.child import Beater
from qqworker.contract.beat import Beat, Phase, Progress
from watchdog.process import Child, TreeKill
from watchdog.relay import CutLine, LineSplitter, classify, group_output
from watchdog.status import HEALTHY, NOT_RUNNING, UNHEALTHY, judge, pid_alive, read_status_file, write_status

# Lines -------------------------------------------------------------------------------------------


def test_lines_are_never_torn_across_chunks() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"event": "a"}\n{"ev') == [b'{"event": "a"}']
    assert splitter.feed(b'ent": "b"}') == []
    assert splitter.feed(b"\nplain\n\n") == [b'{"event": "b"}', b"plain", b""]
    assert splitter.feed(b"no newline at the end") == []
    assert splitter.flush() == [b"no newline at the end"]
    assert splitter.flush() == []


def test_an_endless_line_is_cut_so_memory_stays_bounded() -> None:
    splitter = LineSplitter(max_line=10, excerpt=4)
    assert splitter.feed(b"x" * 25) == []  # cut: its start is kept, the rest only counted
    assert splitter.feed(b"y" * 30) == []
    (cut,) = splitter.feed(b"z\nnext\n")[:1]
    assert isinstance(cut, CutLine) and cut == b"xxxx" and cut.size == 56
    assert splitter.cut == 1
    splitter.feed(b"w" * 11)
    (last,) = splitter.flush()
    assert isinstance(last, CutLine) and last.size == 11 and splitter.flush() == []


def test_classify_tells_contract_lines_from_other_output() -> None:
    line = b'{"event": "gateway.connecting", "role": "worker", "pid": 42, "attempt": 1}'
    assert classify(line).event == "gateway.connecting"
    assert classify(line, child_pid=42).event == "gateway.connecting"
    assert classify(line, child_pid=43).event is None  # another process's line (a handler's subprocess)
    assert classify(b'{"event": "gateway.connecting", "level": "info"}', 42).event is None  # structlog-style
    assert classify(b'{"event": "x", "role": "watchdog", "pid": 42}', 42).event is None
    assert classify(b"Traceback (most recent call last):").event is None
    assert classify(b'{"not": "an event line"}').event is None
    assert classify(b"{broken json").event is None
    assert classify("中文 \xff".encode(errors="surrogateescape")).text.startswith("中文")


def test_consecutive_plain_lines_become_one_output_record() -> None:
    own = b'{"event": "e", "role": "worker", "pid": 1}'
    items = [classify(x, 1) for x in (b"Traceback:", b"  File x", own, b"", b"tail", CutLine(b"long"))]
    assert [(g.text, g.event) for g in group_output(items)] == [
        ("Traceback:\n  File x", None),
        (own.decode(), "e"),
        ("tail", None),
        ("long", None),
    ]


# Status ------------------------------------------------------------------------------------------


def healthy_status(now: float) -> dict:
    return {
        "state": "running",
        "phase": "connected",
        "last_beat_age_s": 0.5,
        "heartbeat_timeout_s": 30,
        "updated_at_epoch": now - 1,
        "stale_after_s": 20,
    }


def test_status_verdicts() -> None:
    now = 1_000_000.0
    assert judge(None, now, False)[0] == NOT_RUNNING
    assert judge(healthy_status(now), now, False)[0] == NOT_RUNNING
    assert judge(healthy_status(now), now, True) == (HEALTHY, "healthy: connected")
    assert judge({**healthy_status(now), "phase": "waiting"}, now, True)[0] == UNHEALTHY
    assert judge({**healthy_status(now), "state": "respawning"}, now, True)[0] == UNHEALTHY
    assert judge({**healthy_status(now), "updated_at_epoch": now - 60}, now, True)[0] == UNHEALTHY
    assert judge({**healthy_status(now), "last_beat_age_s": 29.5}, now, True)[0] == UNHEALTHY


def test_status_file_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "run" / "status.json"
    write_status(str(path), {"state": "running", "n": 1})
    write_status(str(path), {"state": "running", "n": 2})
    assert read_status_file(str(path)).status == {"state": "running", "n": 2}
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]  # no temporary left
    path.write_text("{half")
    assert read_status_file(str(path)).status is None


def test_pid_alive_checks_the_start_time_against_pid_reuse() -> None:
    me = psutil.Process()
    assert pid_alive(os.getpid(), me.create_time())
    assert not pid_alive(os.getpid(), me.create_time() - 3600)
    assert not pid_alive(None) and not pid_alive(-1)


# The child's beater --------------------------------------------------------------------------------


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


# Killing a real tree -----------------------------------------------------------------------------

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
    out = subprocess.run(
        [sys.executable, "-m", "watchdog", "status", "--status-file", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 3
    assert json.loads(out.stdout)["verdict"].startswith("not running")


def test_stranded_spans_take_only_well_formed_entries_from_a_beat() -> None:
    from qqworker.contract.beat import Beat
    from qqworker.delivery import Span
    from watchdog.policy import stranded_spans

    beat = Beat(
        phase="connected", attempt=0, stranded=[["A", 4, 6, 3], ["B", "x", 1, 1], "junk", ["C", 1, 1]]
    )
    assert stranded_spans(beat) == [Span("A", 4, 6, 3)]
    assert stranded_spans(Beat(phase="connected", attempt=0, stranded="nope")) == []  # type: ignore[arg-type]
    assert stranded_spans(None) == []


def test_watchdog_status_shows_skipped_poison_events() -> None:
    from watchdog.status import render

    last = {"event_type": "C2C_MESSAGE_CREATE", "event_id": "C2C_MESSAGE_CREATE:ab12", "seq": 41}
    text = render({"state": "running", "skipped_events": 2, "last_skipped": last}, "healthy: connected", 0.0)
    assert "skipped events   2 (last: C2C_MESSAGE_CREATE id C2C_MESSAGE_CREATE:ab12 seq 41)" in text
    assert "skipped" not in render({"state": "running", "skipped_events": 0}, "healthy", 0.0)


def test_status_render_shows_each_output_state_and_its_losses() -> None:
    from watchdog.status import render

    status = {
        "state": "running",
        "sinks": {
            "stdout": {"state": "stalled", "since": "2026-01-01T00:00:00.000Z", "error": None,
                       "produced": 900, "written": 300, "dropped": 550, "pending": 50},
            "file": {"state": "failing", "since": "2026-01-01T00:00:01.000Z", "error": "ENOSPC: No space",
                     "produced": 900, "written": 10, "dropped": 0, "pending": 890},
        },
    }  # fmt: skip
    text = render(status, "healthy: connected", 0.0)
    assert "output stdout    stalled since 2026-01-01T00:00:00.000Z, 550 line(s) dropped of 900" in text
    assert "output file      failing since 2026-01-01T00:00:01.000Z: ENOSPC: No space" in text
    assert "output" not in render({"state": "running"}, "x", 0.0)
