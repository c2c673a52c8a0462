"""`scripts/run.sh --demo`: the point of the project in about a minute, on this machine alone.

Starts the local simulator (loopback, a free port) and a second one playing the API host the platform
retired in 2026 (`--retired`), then the watchdog + worker against both (the retired one first in
`QQ_API_BASE`, as `api.sgroup.qq.com` was) with short timings and the `echo` handler. The first attempt
meets the retired host and moves on (`gateway.base_switched`); then it sends a few messages, and plays an
outage script while narrating it:

1. a refused link (the gateway stops listening): `reconnect.scheduled` lines, then recovery;
2. a half-open link (connections accepted, nothing answered): missed heartbeat ACKs detected, recovery;
3. a frozen worker (SIGSTOP): the watchdog notices the silent heartbeat, kills, respawns, and the new
   worker Resumes: the messages sent meanwhile are delivered and answered.

Then it keeps running until Ctrl-C (or `--duration S`), stops everything, checks no process is left, and
prints the outage report of the demo's log. The narration is JSON lines with `role` "demo" (or plain text
with --pretty); the watchdog's lines are relayed as they come. The processes it starts run in their own
sessions (a terminal's Ctrl-C reaches only the demo, which stops them in order) and get SIGTERM should the
demo itself die (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from qqworker.contract.logs import rfc3339_utc
from qqworker.simulator.remote import (
    PYTHON,
    LineProcess,
    RunTimings,
    SimulatorProcess,
    kill_session,
    session_processes,
)
from watchdog.pretty import render, render_line, use_colour

ROOT = Path(__file__).resolve().parent.parent
DEMO_EVENT = "demo.step"
# Short timings so that every detection happens within seconds; Hello's interval (2 s): missed ACKs are
# noticed after two of them.
DEMO_TIMINGS = RunTimings(
    retry_initial=0.5,
    retry_max=4,
    connect_timeout=3,
    heartbeat_interval=0.5,
    heartbeat_timeout=4,
    attempt_grace=3,
    respawn_initial=0.5,
    respawn_max=4,
    healthy_after=10,
    stop_timeout=3,
    gateway_heartbeat_ms=2000,
)
STEP_TIMEOUT_S = 30.0  # generous: each step normally completes in 2-10 s


class Stopped(Exception):
    """Ctrl-C, SIGTERM or the end of --duration: wind down."""


def _pdeathsig() -> Callable[[], None] | None:
    """A preexec_fn giving the child SIGTERM when the demo dies (Linux; elsewhere None)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return preexec


@dataclass
class Output:
    """One ordered output stream: the watchdog's lines relayed, the demo's narration added."""

    pretty: bool
    stream: IO[str] = field(default_factory=lambda: sys.stdout)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.colour = self.pretty and use_colour(self.stream)

    def _write(self, text: str) -> None:
        with self.lock:
            try:
                self.stream.write(text + "\n")
                self.stream.flush()
            except (BrokenPipeError, ValueError):
                pass

    def relay(self, line: str) -> None:
        self._write(render_line(line, self.colour) if self.pretty else line.rstrip("\n"))

    def say(self, message: str, **fields: Any) -> None:
        record = {
            "timestamp": rfc3339_utc(time.time()),
            "level": "INFO",
            "logger": "demo",
            "message": message,
            "event": DEMO_EVENT,
            "role": "demo",
            "pid": os.getpid(),
            "generation": 0,
            **fields,
        }
        self._write(render(record, self.colour) if self.pretty else json.dumps(record, ensure_ascii=False))


class Watched(LineProcess):
    """The watchdog process: its lines relayed to the demo's output as they come, and kept for the script."""

    def find(
        self, event: str, after: int = 0, where: Callable[[dict[str, Any]], bool] = lambda r: True
    ) -> Any:
        found = self.poll_for((event,), 0, where, after)
        return None if found is None else found[1]

    def wait_until_event(
        self,
        event: str,
        after: int,
        timeout: float,
        stopping: threading.Event,
        where: Callable[[dict[str, Any]], bool] = lambda r: True,
    ) -> dict[str, Any] | None:
        """The record, None after `timeout` (or once the watchdog is gone); raises Stopped on a stop."""
        deadline = time.monotonic() + timeout
        while not stopping.is_set():
            found = self.poll_for((event,), min(0.5, max(0.0, deadline - time.monotonic())), where, after)
            if found is not None:
                return found[1]
            if time.monotonic() >= deadline or not self.reader_alive():
                return None
        raise Stopped

    def count(self, event: str, after: int = 0) -> int:
        with self._cond:
            return sum(1 for line in self.lines[after:] if line.event == event)


class Demo:
    def __init__(self, output: Output, duration: float | None, extra: list[str]) -> None:
        self.output = output
        self.say = output.say
        self.duration = duration
        self.extra = extra
        self.stopping = threading.Event()
        self.failures: list[str] = []
        self.preexec = _pdeathsig()
        self.sim: SimulatorProcess | None = None
        self.retired: SimulatorProcess | None = None  # plays the API host the platform retired
        self.watchdog: Watched | None = None
        run_dir = Path(os.environ.get("QQW_RUN_DIR") or ROOT / "run")
        run_dir.mkdir(parents=True, exist_ok=True)
        # run/demo.log for the report afterwards; a second demo running at the same time gets its own files
        # rather than truncating the first one's log (the lock lives as long as this process).
        self._lock = open(run_dir / "demo.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.log_file = run_dir / "demo.log"
        except OSError:
            self.log_file = run_dir / f"demo-{os.getpid()}.log"
        self.status_file = run_dir / f"demo-{os.getpid()}.status.json"

    # Processes ---------------------------------------------------------------------------------------

    @property
    def info(self) -> dict[str, Any]:
        assert self.sim is not None
        return self.sim.info

    def start_simulator(self) -> None:
        self.sim = self._simulator()
        self.say(
            f"Local QQ platform simulator up at {self.info['api_base']} (gateway {self.info['gateway_url']})",
            api_base=self.info["api_base"],
            simulator_pid=self.sim.process.pid,
        )
        self.retired = self._simulator("--retired")
        self.say(
            f"A second one at {self.retired.info['api_base']} answers like the API host the platform "
            "retired in 2026 (HTTP 500 on /gateway): the worker is given it first, as a bot configured "
            "before the move would be",
            api_base=self.retired.info["api_base"],
            simulator_pid=self.retired.process.pid,
        )

    def _simulator(self, *flags: str) -> SimulatorProcess:
        try:
            return SimulatorProcess(
                "--host", "127.0.0.1", *DEMO_TIMINGS.simulator_flags(), *flags, preexec_fn=self.preexec
            )
        except AssertionError as exc:  # it did not announce itself: say what it printed
            raise RuntimeError(str(exc)) from None

    def start_watchdog(self) -> None:
        self.log_file.write_text("")  # this demo's log only, for the report at the end
        assert self.sim is not None and self.retired is not None
        env = self.sim.env(
            QQ_API_BASE=f"{self.retired.info['api_base']},{self.info['api_base']}",
            QQ_HANDLER="echo",
            QQW_LOG_FILE=str(self.log_file),
            QQW_STATUS_FILE=str(self.status_file),
            QQW_STATE_FILE="",  # a fresh simulator each time: a session of the last demo means nothing to it
        )
        flags = DEMO_TIMINGS.flags()
        self.say(
            "Starting the watchdog and its worker with demo timings: " + " ".join(flags),
            log_file=str(self.log_file),
        )
        self.watchdog = Watched(
            [PYTHON, "-m", "watchdog", "run", *flags, *self.extra],
            env,
            ROOT,
            on_line=self.output.relay,
            preexec_fn=self.preexec,
        )

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self.sim is not None
        return self.sim.control(path, body)

    def stop_all(self) -> list[int]:
        """SIGTERM the watchdog (it stops its worker), then the simulator; SIGKILL what outlives its bound.
        Returns the pids still alive afterwards (none, unless something is badly wrong)."""
        leftovers: list[int] = []
        for name, process, bound in (
            ("watchdog", self.watchdog, 15.0),
            ("simulator", self.sim.process if self.sim else None, 10.0),
            ("retired-host simulator", self.retired.process if self.retired else None, 10.0),
        ):
            proc = process.proc if process is not None else None
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(bound)
            except subprocess.TimeoutExpired:
                self.say(f"The {name} did not stop within {bound:.0f}s: killing it", level="WARNING")
                kill_session(proc.pid)
                proc.wait(5)
            # Its helpers end on EOF right after it: give them a moment.
            deadline = time.monotonic() + 5
            while _session_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            leftovers += _session_alive(proc.pid)
        if self.watchdog is not None:
            self.watchdog.wait(5)
            # Every worker the watchdog ever started must be gone too, wherever it was parented.
            workers = {r.get("child_pid") for r in self.watchdog.records("child.spawned")}
            leftovers += [
                pid for pid in workers if isinstance(pid, int) and _alive(pid) and pid not in leftovers
            ]
        return leftovers

    # The script ----------------------------------------------------------------------------------------

    def wait_connected(self, after: int, what: str) -> bool:
        assert self.watchdog is not None
        record = self.watchdog.wait_until_event("gateway.connected", after, STEP_TIMEOUT_S, self.stopping)
        if record is None:
            self.failures.append(what)
            self.say(f"{what}: no gateway.connected within {STEP_TIMEOUT_S:.0f}s", level="WARNING")
            return False
        return True

    def replies(self) -> int:
        return int(self.control("/_sim/state").get("replies_received", 0))

    def send_messages(self, texts: list[str]) -> None:
        for text in texts:
            self.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "d": {"content": text}})

    def wait_replies(self, count: int, what: str) -> bool:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while self.replies() < count:
            if time.monotonic() > deadline:
                self.failures.append(what)
                got = self.replies()
                self.say(f"{what}: {got} of {count} replies within {STEP_TIMEOUT_S:.0f}s", level="WARNING")
                return False
            self.sleep(0.2)
        return True

    def sleep(self, seconds: float) -> None:
        if self.stopping.wait(seconds):
            raise Stopped

    def child_pid(self) -> int | None:
        """The current worker's pid, from the watchdog's status file (else its last child.spawned line),
        and only if it really is a child of our watchdog: never SIGSTOP anything else."""
        assert self.watchdog is not None
        pid = None
        with contextlib.suppress(OSError, ValueError, AttributeError):
            pid = json.loads(self.status_file.read_text()).get("child_pid")
        if not isinstance(pid, int):
            spawned = self.watchdog.records("child.spawned")
            pid = spawned[-1].get("child_pid") if spawned else None
        try:
            if isinstance(pid, int) and psutil.Process(pid).ppid() == self.watchdog.proc.pid:
                return pid
        except psutil.Error:
            pass
        return None

    def script(self) -> None:
        assert self.watchdog is not None
        wd = self.watchdog
        if not self.wait_connected(0, "first connection"):
            return
        switched = wd.find("gateway.base_switched")
        if switched is None:
            self.failures.append("host switch")
            self.say("The worker connected without moving off the retired host", level="WARNING")
        else:
            self.say(
                f"The retired host answered {switched['reason']}; the worker moved to {switched['to']} "
                "(gateway.base_switched) and connected through it, where it stays."
            )
        self.say("Connected. Sending 3 messages; the echo handler answers each through the REST API.")
        before = self.replies()
        self.send_messages(["hello", "你好", "still there?"])
        if self.wait_replies(before + 3, "echo replies"):
            self.say(f"3 replies received by the simulator ({before + 3} so far).")
        self.sleep(1)

        seconds = 6
        self.say(
            f"Outage 1/3, a refused link: the gateway stops listening for {seconds}s. Watch gateway.closed, "
            "then reconnect.failed / reconnect.scheduled for every attempt, with growing delays."
        )
        mark = wd.mark()
        self.control("/_sim/outage", {"mode": "refuse", "seconds": seconds})
        if self.wait_connected(mark, "recovery from the refused link"):
            failed = wd.count("reconnect.failed", mark)
            self.say(f"Recovered from the refused link after {failed} failed attempt(s), every one logged.")
        self.sleep(1)

        seconds = 10
        self.say(
            f"Outage 2/3, a half-open link for {seconds}s: connections stay open but nothing answers, not "
            "even heartbeat ACKs. TCP alone would not notice for ~15 minutes; the missing ACKs give it away."
        )
        mark = wd.mark()
        self.control("/_sim/outage", {"mode": "blackhole", "seconds": seconds})
        if self.wait_connected(mark, "recovery from the half-open link"):
            detected = wd.find("gateway.ack_timeout", mark) or wd.find("child.ack_stale", mark)
            how = f"detected by {detected['event']}" if detected else "detected"
            self.say(f"Half-open link {how}, and recovered once the gateway answered again.")
        self.sleep(1)

        pid = self.child_pid()
        if pid is None:
            self.failures.append("frozen worker")
            self.say("Cannot find the worker's pid: skipping the frozen-worker step", level="WARNING")
            return
        self.say(
            f"Outage 3/3, a frozen worker: SIGSTOP to worker pid {pid}. Its heartbeat over the pipe stops; "
            f"the watchdog kills it after {DEMO_TIMINGS.heartbeat_timeout:g}s of silence and respawns it. "
            "Once it is gone, 2 messages are sent: the platform keeps them for the session, the new worker "
            "Resumes it and answers them."
        )
        mark = wd.mark()
        os.kill(pid, signal.SIGSTOP)
        exited = wd.wait_until_event(
            "child.exited", mark, STEP_TIMEOUT_S, self.stopping, lambda r: r["child_pid"] == pid
        )
        if exited is None:
            self.failures.append("frozen worker detection")
            self.say("The frozen worker was not killed in time", level="WARNING")
            os.kill(pid, signal.SIGCONT)
            return
        before = self.replies()
        self.send_messages(["sent while no worker is connected 1", "sent while no worker is connected 2"])
        if self.wait_connected(mark, "respawn after the frozen worker"):
            resumed = wd.find("gateway.connected", mark, lambda r: bool(r.get("resumed")))
            if self.wait_replies(before + 2, "replies after the respawn"):
                self.say(
                    f"The new worker {'resumed the session' if resumed else 'connected'} and answered both "
                    "messages sent while no worker was connected: nothing was lost."
                )
        self.say(
            "Demo script done. Still running: send your own events with "
            f"curl -X POST {self.info.get('control_url', self.info['api_base'])}/_sim/events "
            '-d \'{"type": "C2C_MESSAGE_CREATE", "d": {"content": "hi"}}\'' + "; Ctrl-C stops everything.",
            failures=self.failures,
        )

    def report(self) -> None:
        from watchdog.report import read_logs, summary_line

        try:
            report = read_logs([self.log_file])
        except OSError as exc:
            self.say(f"No report: cannot read {self.log_file}: {exc}", level="WARNING")
            return
        shown = report.listed(0.5)
        self.say(
            f"Outage report of this demo (python -m watchdog report {self.log_file}): "
            f"{len(shown)} outage(s) of 0.5s or more.",
            outages=len(shown),
        )
        for outage in shown:
            self.say("  " + summary_line(outage), outage=outage.to_dict())

    def run(self) -> int:
        timer = None
        if self.duration:
            timer = threading.Timer(self.duration, self.stopping.set)
            timer.daemon = True
            timer.start()
        try:
            self.start_simulator()
            self.start_watchdog()
            self.script()
            while True:  # until Ctrl-C, SIGTERM or --duration
                self.sleep(1)
                if self.watchdog is not None and self.watchdog.proc.poll() is not None:
                    code = self.watchdog.proc.returncode
                    self.say(f"The watchdog exited with status {code}", level="WARNING")
                    self.failures.append("watchdog exited")
                    break
        except (Stopped, KeyboardInterrupt):
            pass  # a requested stop, not a failure
        except (OSError, RuntimeError, urllib.error.URLError) as exc:
            self.failures.append(str(exc))
            self.say(f"The demo failed: {exc}", level="ERROR")
        finally:
            if timer is not None:
                timer.cancel()
            self.stopping.set()
            # A second Ctrl-C while stopping must not abandon the children half-stopped.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.say("Stopping: SIGTERM to the watchdog (it stops its worker), then the simulator.")
            leftovers = self.stop_all()
            for path in (self.status_file, self.status_file.with_name(self.status_file.name + ".lock")):
                with contextlib.suppress(OSError):
                    path.unlink()
            if leftovers:
                self.failures.append(f"processes left: {leftovers}")
                self.say(f"Processes still alive: {leftovers}", level="ERROR")
            else:
                self.say("Everything stopped; no process left.")
        self.report()
        return 1 if self.failures else 0


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _session_alive(sid: int) -> list[int]:
    """Pids of the session (they were started with start_new_session) still alive."""
    return [proc.pid for proc in session_processes(sid)]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="scripts/run.sh --demo", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--pretty", action="store_true", help="readable lines (default on a terminal)")
    mode.add_argument("--json", action="store_true", help="JSON lines (default otherwise)")
    parser.add_argument(
        "--duration", type=float, default=None, metavar="S", help="stop by itself after S seconds (0: never)"
    )
    args = parser.parse_args(argv)
    pretty = args.pretty or (not args.json and sys.stdout.isatty())
    demo = Demo(Output(pretty), args.duration, extra)
    signal.signal(signal.SIGTERM, lambda *_: demo.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: demo.stopping.set())
    return demo.run()


if __name__ == "__main__":
    sys.exit(main())
