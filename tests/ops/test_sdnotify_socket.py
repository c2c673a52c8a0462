"""sd_notify over real AF_UNIX datagram sockets: a filesystem path and an abstract '@' name (the pure
parts: tests/unit/test_sdnotify.py)."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qqworker.contract.events import LogEvent
from watchdog.sdnotify import Notifier


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"qqw-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    yield sock, "@" + name
    sock.close()


def received(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n"))


@pytest.mark.parametrize("which", ["path_socket", "abstract_socket"])
def test_ready_status_watchdog_arrive(which: str, request: pytest.FixtureRequest) -> None:
    sock, address = request.getfixturevalue(which)
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = Notifier(env)
    assert notifier.enabled
    assert notifier.watchdog_period == 30.0 and notifier.watchdog_interval == 15.0

    assert notifier.ready(status="supervising child 1, connecting")
    assert received(sock) == {"READY": "1", "STATUS": "supervising child 1, connecting"}
    assert notifier.ping_if_due(now=100.0)
    assert received(sock) == {"WATCHDOG": "1"}
    assert not notifier.ping_if_due(now=110.0)  # within half the period: nothing sent
    assert notifier.next_ping_delay(now=110.0) == pytest.approx(5.0)
    assert notifier.ping_if_due(now=115.0)
    assert received(sock) == {"WATCHDOG": "1"}
    assert notifier.status("connected\nsession abc")
    assert received(sock) == {"STATUS": "connected session abc"}
    assert notifier.stopping()
    assert received(sock) == {"STOPPING": "1"}
    assert notifier.sent == 5 and notifier.failed == 0
    notifier.close()


def test_child_process_messages_arrive(path_socket: tuple[socket.socket, str]) -> None:
    """A `Notifier` made from the environment in a separate process, as the watchdog makes it."""
    sock, address = path_socket
    env = dict(os.environ, NOTIFY_SOCKET=address)
    code = "from watchdog.sdnotify import Notifier; import sys; sys.exit(0 if Notifier().ready() else 1)"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)
    assert received(sock) == {"READY": "1"}


def test_missing_listener_fails_without_raising_or_blocking(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    assert notifier.enabled
    assert not notifier.ready()
    assert notifier.failed == 1 and isinstance(notifier.last_error, OSError)


def notify_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    wanted = {LogEvent.WATCHDOG_NOTIFY_FAILED, LogEvent.WATCHDOG_NOTIFY_RECOVERED}
    return [r for r in caplog.records if getattr(r, "event", None) in wanted]


def test_failures_are_logged_once_per_run_and_the_recovery_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No listener yet: one line for many failed sends; the listener appears: one line, with the count."""
    caplog.set_level(logging.INFO, logger="watchdog")
    path = str(tmp_path / "late.sock")
    clock = iter(float(n) for n in range(100))
    notifier = Notifier({"NOTIFY_SOCKET": path}, clock=lambda: next(clock))
    assert not any([notifier.ready(), notifier.status("a"), notifier.status("b")])
    (failed,) = notify_lines(caplog)
    assert failed.event == LogEvent.WATCHDOG_NOTIFY_FAILED and failed.levelno == logging.ERROR
    assert (failed.socket, failed.error) == (path, str(notifier.last_error))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    try:
        assert notifier.status("up") and notifier.status("still up")
        assert received(sock) == {"STATUS": "up"}
        lines = notify_lines(caplog)
        assert [r.event for r in lines] == [
            LogEvent.WATCHDOG_NOTIFY_FAILED,
            LogEvent.WATCHDOG_NOTIFY_RECOVERED,
        ]
        assert (lines[1].socket, lines[1].failed) == (path, 3)
    finally:
        sock.close()
        notifier.close()


def test_full_queue_does_not_block(path_socket: tuple[socket.socket, str]) -> None:
    """A service manager that stops reading must never stall the supervisor: sends fail instead."""
    _sock, address = path_socket
    notifier = Notifier({"NOTIFY_SOCKET": address})
    results = [notifier.status("x" * 1000) for _ in range(10_000)]
    assert results[0] is True
    assert False in results  # the receive queue filled up and later sends failed at once
    assert isinstance(notifier.last_error, BlockingIOError)


def test_the_real_watchdog_notifies_like_a_notify_service(tmp_path: Path) -> None:
    """scripts/run.sh under a fake service manager: an abstract NOTIFY_SOCKET, WatchdogSec=2. READY=1, then
    WATCHDOG=1 at least every half period, STATUS= lines, STOPPING=1 at the end, every datagram sent by
    the main process (what NotifyAccess=main accepts; SO_PASSCRED tells the sender), none by the worker."""
    import signal
    import struct
    import time

    from tests.support import LineProcess, SimulatorProcess

    root = Path(__file__).resolve().parents[2]
    name = f"qqw-notify-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.settimeout(0.2)
    received: list[tuple[float, int, dict[str, str]]] = []

    def drain(seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until():
            try:
                data, ancdata, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except TimeoutError:
                continue
            pid = next(
                struct.unpack("3i", d)[0]
                for level, kind, d in ancdata
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
            )
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            received.append((time.monotonic(), pid, fields))

    sim = SimulatorProcess()
    try:
        env = sim.env(
            NOTIFY_SOCKET="@" + name, WATCHDOG_USEC="2000000", QQW_STATUS_FILE=str(tmp_path / "s.json")
        )
        proc = LineProcess(["bash", str(root / "scripts" / "run.sh"), "--json"], env=env, cwd=tmp_path)
        try:
            proc.wait_for("gateway.connected", 30)
            drain(4.0)
            proc.signal(signal.SIGTERM)  # once: a second one would force
            drain(30.0, until=lambda: proc.proc.poll() is not None)
            assert proc.wait(5) == 0
            drain(0.3)  # anything still queued
        finally:
            proc.stop(20)
    finally:
        sim.stop()
        sock.close()

    assert received, "no notification at all"
    assert {pid for _, pid, _ in received} == {proc.pid}  # run.sh exec'd the watchdog: it is the main pid
    assert any(f.get("READY") == "1" for _, _, f in received)
    assert any("STATUS" in f for _, _, f in received)
    assert any(f.get("STOPPING") == "1" for _, _, f in received)
    pings = [t for t, _, f in received if f.get("WATCHDOG") == "1"]
    assert len(pings) >= 3  # 4 s at one ping per second (half of WATCHDOG_USEC)
    # Never a gap systemd would kill for (the full period; the watchdog aims at half of it).
    assert max(b - a for a, b in itertools.pairwise(pings)) < 2.0
    worker_pids = {r["child_pid"] for r in proc.records("child.spawned")}
    assert worker_pids and not worker_pids & {pid for _, pid, _ in received}
