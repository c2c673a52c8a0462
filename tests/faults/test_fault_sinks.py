"""Faults of the outputs around the processes: a stdout nobody reads, a full disk, a terminal that goes
away; and the whole process group paused. None of them may silence supervision or the bot."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import shlex
import signal
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import fault
from tests.faults.results import CaseResult
from tests.supervised import START_TIMEOUT, Supervised
from tests.support import (
    PYTHON,
    ROOT,
    RunTimings,
    SimulatorProcess,
    kill_session,
    wait_until,
    watchdog_status,
)

SMALL_BUFFER = ["--log-buffer-kb", "16", "--log-retry", "0.5"]


@pytest.fixture(autouse=True)
def _watchdog_only() -> None:
    if os.environ.get("QQW_FAULT_TARGET") == "worker":
        pytest.skip("output faults are about the watchdog's outputs")


class FileLines:
    """The JSON lines of a log file, read again on each look (the files here stay small)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        try:
            text = self.path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return []
        records = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and (event is None or record.get("event") == event):
                    records.append(record)
        return records

    def wait(self, event: str, timeout: float, after: int = 0, **match: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for record in self.records()[after:]:
                if record.get("event") == event and all(record.get(k) == v for k, v in match.items()):
                    return record
            return None

        return wait_until(found, timeout, f"{event} {match or ''} in {self.path}")

    def mark(self) -> int:
        return len(self.records())


class StuckReader:
    """A FIFO opened O_RDONLY|O_NONBLOCK and not read until `drain()`; then read on a thread."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.data = bytearray()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def drain(self) -> None:
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            select.select([self.fd], [], [], 0.1)
            with contextlib.suppress(BlockingIOError):
                chunk = os.read(self.fd, 1 << 16)
                if not chunk and not self._stop.is_set():
                    time.sleep(0.05)
                self.data += chunk

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in bytes(self.data).decode("utf-8", errors="replace").splitlines():
            record = json.loads(line)  # never a torn line
            if event is None or record.get("event") == event:
                out.append(record)
        return out

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        os.close(self.fd)


def stdout_to(path: Path) -> list[str]:
    """A command prefix that gives the watchdog this file (a FIFO) as its stdout; stderr stays on the pipe."""
    return ["sh", "-c", f'exec "$@" >{shlex.quote(str(path))}', "sh"]


def sim_counters(sim: SimulatorProcess) -> dict[str, int]:
    return sim.state()["counters"]


def events_flowing(
    sim: SimulatorProcess, stop: threading.Event, every_s: float = 0.25, count: int = 25
) -> list[int]:
    """Dispatches `count` echo events every `every_s` until `stop`; the seqs, for the test to check."""
    seqs: list[int] = []
    while not stop.is_set():
        with contextlib.suppress(OSError):
            seqs += sim.say("hello from the flow", count)
        stop.wait(every_s)
    return seqs


def in_thread(fn: Callable[[], list[int]]) -> tuple[threading.Thread, list[list[int]]]:
    out: list[list[int]] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


@fault(
    "process",
    "watchdog's stdout never read (a stuck pipe reader, XOFF)",
    "bot stays up, log file complete, frozen child still replaced, drops counted exactly",
)
@pytest.mark.parametrize(
    "stall_s", [10.0, pytest.param(60.0, marks=pytest.mark.slow, id="60s")], ids=lambda v: f"{v:g}s"
)
def test_stdout_never_read(
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
    tmp_path: Path,
    stall_s: float,
) -> None:
    reader = StuckReader(tmp_path / "stdout.fifo")
    log = FileLines(tmp_path / "qqw.log")
    try:
        run = supervise(
            sim,
            prefix=stdout_to(reader.path),
            extra_flags=["--log-file", str(log.path), *SMALL_BUFFER],
            env={"QQ_HANDLER": "echo"},
        )
        log.wait("gateway.connected", START_TIMEOUT)
        before = sim_counters(sim)
        stop = threading.Event()
        flow, seqs_out = in_thread(lambda: events_flowing(sim, stop))
        t0 = time.monotonic()
        # The pipe (64 KiB) and the 16 KiB buffer fill within a few seconds of events; then, mid-stall,
        # a frozen child must still be found and replaced.
        wait_until(
            lambda: (s := _status(run)) and s["sinks"]["stdout"]["dropped"] > 0, 15, "stdout dropping lines"
        )
        status = _status(run)
        assert status["sinks"]["stdout"]["state"] == "stalled", status["sinks"]
        shown = watchdog_status(run.status_file).stdout
        assert "output stdout    stalled since" in shown and "dropped" in shown, shown
        assert status["sinks"]["file"] == {**status["sinks"]["file"], "state": "ok", "dropped": 0}
        first = int(log.records("child.spawned")[-1]["child_pid"])
        mark = log.mark()
        frozen_at = time.monotonic()
        os.kill(first, signal.SIGSTOP)
        log.wait("child.heartbeat_missed", timings.heartbeat_timeout + 5, after=mark)
        killed = log.wait("child.killed", 5, after=mark)
        assert killed["child_pid"] == first
        back = log.wait("gateway.connected", 20, after=mark)
        record.measure("frozen_replaced_s", time.monotonic() - frozen_at, timings.heartbeat_timeout + 10)
        assert back["resumed"] is True and int(back["generation"]) >= 2, back
        time.sleep(max(0.0, stall_s - (time.monotonic() - t0)))
        after = sim_counters(sim)
        stop.set()
        flow.join(15)
        seqs = seqs_out[0]
        assert seqs, "no event was dispatched"
        # The bot stayed up through the stall: the platform kept getting heartbeats and answering them.
        for counter in ("heartbeats", "acks"):
            assert after.get(counter, 0) > before.get(counter, 0) + stall_s, (counter, before, after)
        wait_until(lambda: sim.state()["replies_received"] >= len(seqs), 20, "every event answered")
        dispatched = {int(r["seq"]) for r in log.records("dispatch")}
        assert not set(seqs) - dispatched, f"events not handled: {sorted(set(seqs) - dispatched)[:10]}"
        dropped = _status(run)["sinks"]["stdout"]["dropped"]
        # The reader drains: the stdout sink is written again and says what it lost.
        reader.drain()
        notice = wait_until(lambda: reader.records("log.dropped"), 10, "log.dropped on stdout")[0]
        assert notice["sink"] == "stdout" and notice["lines"] > 0
        assert log.wait("log.dropped", 5, sink="stdout")["lines"] == notice["lines"]
        record.measure("stdout_dropped", dropped, None, unit="lines")
        run.finish()
        time.sleep(0.3)
        # Exact accounting: every line produced for stdout was written to it or counted as dropped;
        # the file (never stalled) got them all.
        written = reader.records()
        lost = sum(r["lines"] for r in written if r["event"] == "log.dropped" and r["sink"] == "stdout")
        assert len(written) + lost == len(log.records()), (len(written), lost, len(log.records()))
        assert not log.records("log.sink_failed")
    finally:
        reader.close()


def _status(run: Supervised) -> dict[str, Any] | None:
    try:
        return json.loads(run.status_file.read_text())
    except (OSError, ValueError):
        return None


@fault(
    "process",
    "whole process group paused (SIGSTOP for 2x the heartbeat timeout, then SIGCONT)",
    "watchdog.paused, no child.killed, events flow again ≤ 10 s",
)
def test_whole_group_paused(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    run = supervise(sim)
    run.connected()
    time.sleep(1.0)
    mark = run.mark()
    pgid = os.getpgid(run.process.pid)  # its own session: the watchdog and its worker
    os.killpg(pgid, signal.SIGSTOP)
    time.sleep(2 * timings.heartbeat_timeout)
    os.killpg(pgid, signal.SIGCONT)
    t0 = time.monotonic()
    _, paused = run.wait_for("watchdog.paused", 5, after=mark)
    assert paused["gap_s"] >= timings.heartbeat_timeout, paused
    seqs = sim.events(3)
    missing = run.wait_seqs(seqs, 10)
    online_s = time.monotonic() - t0
    record.measure("online_again_s", online_s, 10.0)
    assert not missing, f"events lost after the pause: {sorted(missing)}"
    events = {ln.event for ln in run.process.lines[mark:]}
    assert not events & {"child.killed", "child.heartbeat_missed", "child.attempt_overdue"}, events
    assert len(run.process.records("child.spawned")) == 1
    run.finish()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@fault(
    "process",
    "log file's file system full (ENOSPC), then space given back",
    "log.sink_failed, bot and stdout go on, log.sink_recovered ≤ retry + 2 s after the space",
)
def test_log_disk_full(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], record: CaseResult, small_fs: Path
) -> None:
    log = FileLines(small_fs / "logs" / "qqw.log")
    run = supervise(sim, extra_flags=["--log-file", str(log.path), *SMALL_BUFFER])
    run.connected()
    seqs: list[int] = []
    deadline = time.monotonic() + 20
    while not run.process.records("log.sink_failed") and time.monotonic() < deadline:
        seqs += sim.events(20)
        time.sleep(0.1)
    _, failed = run.wait_for("log.sink_failed", 5)
    assert failed["sink"] == "file" and failed["error"].startswith("ENOSPC"), failed
    # Supervision and the bot go on: more events are handled (more than the 16 KiB buffer holds), in
    # bursts this test's own stdout reader keeps up with.
    for _ in range(6):
        seqs += sim.events(25)
        time.sleep(0.1)
    assert not run.wait_seqs(seqs, 10)
    wait_until(lambda: (s := _status(run)) and s["sinks"]["file"]["state"] == "failing", 5, "status: failing")
    assert len(run.process.records("log.sink_failed")) == 1, "one line per failure, not one per retry"
    mark = run.mark()
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_fs)], check=True)
    t0 = time.monotonic()
    at, recovered = run.wait_for("log.sink_recovered", 5, after=mark)
    record.measure("recovered_s", run.at(at) - t0, 0.5 + 2.0)
    assert recovered["sink"] == "file"
    _, dropped = run.wait_for("log.dropped", 5, after=mark, sink="file")
    assert dropped["lines"] > 0
    seqs = sim.events(3)
    assert not run.wait_seqs(seqs, 10)
    wait_until(
        lambda: {int(r["seq"]) for r in log.records("dispatch")} >= set(seqs), 5, "new lines in the file"
    )
    names = [r["event"] for r in log.records()]
    assert "log.sink_recovered" in names and "log.dropped" in names
    for line in log.path.read_bytes().splitlines():
        json.loads(line)  # a write cut by ENOSPC was completed later: no torn line
    assert not {ln.event for ln in run.process.lines} & {"child.killed", "child.exited"}
    run.finish()


@fault(
    "process",
    "terminal of a foreground watchdog closed (pty hang-up, then EIO)",
    "watchdog supervises on, log file says log.sink_failed, clean stop",
)
def test_terminal_closed(
    sim: SimulatorProcess, timings: RunTimings, record: CaseResult, tmp_path: Path
) -> None:
    log = FileLines(tmp_path / "qqw.log")
    master, slave = pty.openpty()

    def controlling_tty() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # a foreground job of this terminal: the hang-up reaches it

    proc = subprocess.Popen(
        [PYTHON, "-m", "watchdog", "run", *timings.flags(), "--status-file", str(tmp_path / "status.json"),
         "--log-file", str(log.path), *SMALL_BUFFER],
        cwd=ROOT, env=sim.env(QQ_HANDLER="echo"), stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True, preexec_fn=controlling_tty,
    )  # fmt: skip
    os.close(slave)
    try:
        log.wait("gateway.connected", START_TIMEOUT)
        mark = log.mark()
        os.close(master)  # the terminal goes away: SIGHUP, then EIO on every write to it
        master = -1
        t0 = time.monotonic()
        sim.events(3)
        failed = log.wait("log.sink_failed", 5, after=mark)
        record.measure("noticed_s", time.monotonic() - t0, 5.0)
        assert failed["sink"] == "stdout" and "EIO" in failed["error"], failed
        log.wait("log.reopened", 5, after=mark)  # the hang-up's SIGHUP still means "reopen the log"
        # Still supervising, still serving: events handled, a frozen child replaced.
        seqs = sim.events(3)
        wait_until(
            lambda: {int(r["seq"]) for r in log.records("dispatch")} >= set(seqs), 10, "events handled"
        )
        child = int(log.records("child.spawned")[-1]["child_pid"])
        os.kill(child, signal.SIGSTOP)
        log.wait("child.killed", timings.heartbeat_timeout + 5, after=mark)
        log.wait("gateway.connected", 20, after=mark, resumed=True)
        assert proc.poll() is None, "the watchdog must not die of its terminal"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timings.stop_timeout + 10) == 0
        assert log.records("watchdog.stopped")
    finally:
        if master >= 0:
            os.close(master)
        kill_session(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


@fault(
    "process",
    "worker run alone, its stdout never read",
    "gateway heartbeats and handlers go on, log file complete, drops counted exactly",
)
def test_worker_alone_stdout_never_read(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], record: CaseResult, tmp_path: Path
) -> None:
    reader = StuckReader(tmp_path / "stdout.fifo")
    log = FileLines(tmp_path / "worker.log")
    try:
        run = supervise(
            sim,
            alone=True,
            prefix=stdout_to(reader.path),
            extra_flags=["--log-file", str(log.path), *SMALL_BUFFER],
            env={"QQ_HANDLER": "echo"},
        )
        log.wait("gateway.connected", START_TIMEOUT)
        before = sim_counters(sim)
        seqs: list[int] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5.0:
            seqs += sim.say("hello", 40)
            time.sleep(0.2)
        after = sim_counters(sim)
        for counter in ("heartbeats", "acks"):
            assert after.get(counter, 0) >= before.get(counter, 0) + 10, (counter, before, after)
        wait_until(lambda: sim.state()["replies_received"] >= len(seqs), 20, "every event answered")
        assert not set(seqs) - {int(r["seq"]) for r in log.records("dispatch")}
        reader.drain()
        notice = wait_until(lambda: reader.records("log.dropped"), 10, "log.dropped on stdout")[0]
        record.measure("stdout_dropped", notice["lines"], None, unit="lines")
        assert notice["sink"] == "stdout" and notice["lines"] > 0
        run.finish()
        time.sleep(0.3)
        written = reader.records()
        lost = sum(r["lines"] for r in written if r["event"] == "log.dropped" and r["sink"] == "stdout")
        assert len(written) + lost == len(log.records()), (len(written), lost, len(log.records()))
    finally:
        reader.close()


@fault(
    "process",
    "watchdog alone stopped (SIGSTOP) while events flow: the worker's log pipe fills",
    "worker keeps its link and answers, counts its pipe's loss, not killed after the pause",
)
def test_watchdog_stopped_worker_pipe_full(
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
    tmp_path: Path,
) -> None:
    # The file is the complete record: the test's own reader of stdout may fall behind the burst that
    # follows SIGCONT, and the watchdog's stdout then drops (and counts) lines of its own.
    log = FileLines(tmp_path / "qqw.log")
    run = supervise(sim, extra_flags=["--log-file", str(log.path), *SMALL_BUFFER], env={"QQ_HANDLER": "echo"})
    run.connected()
    time.sleep(0.5)
    mark = log.mark()
    before = sim_counters(sim)
    replies = sim.state()["replies_received"]
    os.kill(run.process.pid, signal.SIGSTOP)
    seqs: list[int] = []
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5 * timings.heartbeat_timeout:
            seqs += sim.say("hello", 40)
            time.sleep(0.1)
        # While its supervisor is stopped the worker goes on: it is heartbeating and answering.
        after = sim_counters(sim)
        assert after.get("acks", 0) >= before.get("acks", 0) + 5, (before, after)
        wait_until(lambda: sim.state()["replies_received"] >= replies + len(seqs), 15, "answers, meanwhile")
    finally:
        os.kill(run.process.pid, signal.SIGCONT)
    log.wait("watchdog.paused", 5, after=mark)
    dropped = log.wait("log.dropped", 10, after=mark, role="worker", sink="stdout")
    record.measure("worker_stdout_dropped", dropped["lines"], None, unit="lines")
    shown = {int(r["seq"]) for r in log.records("dispatch")}
    assert len(set(seqs) - shown) <= dropped["lines"], "lines missing beyond those counted as dropped"
    events = {r["event"] for r in log.records()[mark:]}
    assert not events & {"child.killed", "child.heartbeat_missed", "child.ack_stale"}, events
    run.finish()
