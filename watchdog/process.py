"""Spawning the worker child and ending whole process trees: the watchdog's process handling.

Start method: `spawn` (measured and argued in the README, "Supervision model"): the child is a fresh
interpreter that inherits no lock, thread, event loop or socket of the watchdog, and it is the
watchdog's direct child, so the kernel's parent-death signal and the exit status work without any
helper in between. Spawning happens on the watchdog's main thread: PR_SET_PDEATHSIG fires when the
*thread* that forked the child ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import multiprocess
import psutil

from qqworker.child import run_child
from qqworker.contract.beat import BEAT_VERSION, VERSION_ENV
from qqworker.contract.settings import Settings

__all__ = [
    "POLL_S",
    "START_METHOD",
    "Child",
    "TreeKill",
    "alive",
    "descendants",
    "helper_pids",
    "no_resource_tracker",
    "remember_tree",
    "rss_mb",
    "send",
    "spawn_child",
    "strays",
]

START_METHOD = "spawn"
POLL_S = 0.05  # how often a kill under way checks whether the tree is gone

log = logging.getLogger("watchdog.process")


@dataclass
class Child:
    """One spawned worker and the watchdog's ends of its two pipes (raw, non-blocking fds)."""

    process: Any  # multiprocess.Process
    pid: int
    generation: int
    log_fd: int
    beat_fd: int
    started_at: float
    known: dict[int, float] = field(default_factory=dict)  # descendants seen: pid -> create_time

    @property
    def exitcode(self) -> int | None:
        """The exit status once the child has ended (reaps it), else None; negative: killed by signal."""
        return self.process.exitcode

    def close_pipes(self) -> None:
        for fd in (self.log_fd, self.beat_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.log_fd = self.beat_fd = -1


def no_resource_tracker() -> bool:
    """Keeps `spawn` from starting multiprocess's resource tracker, a ~17 MB helper process.

    The tracker exists to unlink named semaphores and shared memory a crashed process leaves behind;
    neither the watchdog nor the worker creates any (the pipes are plain fds). So the tracker's fd is
    pointed at /dev/null: `ensure_running` finds it "alive", the child inherits it, and a registration,
    should one ever come, is discarded. True when done; False (the tracker starts as before) if
    multiprocess's private layout has moved.
    """
    try:
        from multiprocess import resource_tracker

        tracker = resource_tracker._resource_tracker
        if getattr(tracker, "_fd", 0) is None and getattr(tracker, "_pid", 0) is None:
            tracker._fd = os.open(os.devnull, os.O_WRONLY)
        return tracker._pid is None and tracker._check_alive()
    except Exception:  # private API: if it moved, the real tracker is the safe fallback
        return False


def spawn_child(settings: Settings, resume: tuple[str, int] | None, generation: int) -> Child:
    no_resource_tracker()
    ctx = multiprocess.get_context(START_METHOD)
    log_r, log_w = ctx.Pipe(duplex=False)
    beat_r, beat_w = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=run_child,
        args=(settings, resume, generation, beat_w, log_w, os.getpid()),
        name=f"qqworker-{generation}",
        daemon=True,
    )
    os.environ[VERSION_ENV] = str(BEAT_VERSION)  # the spawned interpreter inherits it
    try:
        process.start()
    finally:
        # Our copies of the child's ends: closed, or EOF never comes when the child dies.
        log_w.close()
        beat_w.close()
    log_fd = os.dup(log_r.fileno())
    beat_fd = os.dup(beat_r.fileno())
    log_r.close()
    beat_r.close()
    for fd in (log_fd, beat_fd):
        os.set_blocking(fd, False)
        os.set_inheritable(fd, False)
    return Child(process, process.pid, generation, log_fd, beat_fd, time.monotonic())


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def remember_tree(child: Child) -> None:
    """Records the child's descendants, to find any it leaves behind when it dies."""
    for proc in descendants(child.pid):
        with contextlib.suppress(psutil.Error):
            child.known.setdefault(proc.pid, proc.create_time())


def strays(child: Child, helpers: set[int]) -> list[psutil.Process]:
    """Processes the child left behind: its known descendants still alive, and orphans re-parented
    to us (we are a subreaper) that are neither the child nor a helper of `multiprocess`."""
    found: dict[int, psutil.Process] = {}
    for pid, created in list(child.known.items()):
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                found[pid] = proc
        except psutil.Error:
            child.known.pop(pid, None)
    try:
        ours = psutil.Process().children(recursive=False)
    except psutil.Error:
        ours = []
    for proc in ours:
        if proc.pid == child.pid or proc.pid in helpers:
            continue
        found[proc.pid] = proc
        found.update({p.pid: p for p in descendants(proc.pid)})
    return list(found.values())


def helper_pids() -> set[int]:
    """multiprocess's own helper processes (the resource tracker, if one runs): never strays."""
    pids = set()
    try:
        from multiprocess import resource_tracker

        pid = getattr(resource_tracker._resource_tracker, "_pid", None)
        if pid:
            pids.add(pid)
    except Exception:  # private API: if it moves, cmdlines below still identify the helper
        pass
    for proc in psutil.Process().children():
        try:
            if any("resource_tracker" in part for part in proc.cmdline()):
                pids.add(proc.pid)
        except psutil.Error:
            pass
    return pids


def send(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def alive(procs: list[psutil.Process], child: Child | None = None) -> list[psutil.Process]:
    """Those not yet gone; our own children are reaped here (except the worker: multiprocess reaps it)."""
    left = []
    for proc in procs:
        if child is not None and proc.pid == child.pid:
            if child.exitcode is None:
                left.append(proc)
            continue
        try:
            if proc.ppid() == os.getpid():
                proc.wait(timeout=0)  # reaps a re-parented orphan; raises if still running
                continue
            if proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
        except psutil.TimeoutExpired:
            left.append(proc)
        except psutil.Error:
            pass
    return left


class TreeKill:
    """Ends the child and its whole tree, stepped by the caller's loop (which keeps relaying output).

    SIGTERM (+SIGCONT: a stopped process acts on SIGTERM only once continued) to the child and every
    descendant, SIGKILL after `stop_timeout` to those left, then wait for them to be gone. The tree is
    taken before any signal: once the child dies its descendants are re-parented and no longer
    findable from it. `force` goes straight to SIGKILL.
    """

    def __init__(
        self,
        child: Child,
        stop_timeout: float,
        helpers: set[int],
        on_signal: Callable[[str, int], None],
        *,
        force: bool = False,
        now: float,
    ) -> None:
        self.child = child
        self.stop_timeout = stop_timeout
        self.on_signal = on_signal
        self.force = force
        self.signals: list[str] = []
        self.survivors: list[int] = []
        self.done = False
        remember_tree(child)
        tree = [p for p in (_process(child.pid), *descendants(child.pid)) if p is not None]
        seen = {p.pid for p in tree}
        tree += [p for p in strays(child, helpers) if p.pid not in seen]
        self.left = alive(tree, child)
        if not self.left:
            self.done = True
        elif force:
            self._signal("SIGKILL", signal.SIGKILL, now)
        else:
            self._signal("SIGTERM", signal.SIGTERM, now)
            send(self.left, signal.SIGCONT)

    def _signal(self, name: str, sig: int, now: float) -> None:
        self.signals.append(name)
        self.on_signal(name, len(self.left))
        send(self.left, sig)
        grace = self.stop_timeout if sig == signal.SIGTERM else max(2.0, self.stop_timeout)
        self.deadline = now + grace

    def step(self, now: float) -> bool:
        """Checks progress; escalates or finishes when due. True once nothing is left (or given up)."""
        if self.done:
            return True
        self.left = alive(self.left, self.child)
        if not self.left:
            self.done = True
        elif now >= self.deadline:
            if "SIGKILL" not in self.signals:
                self._signal("SIGKILL", signal.SIGKILL, now)
            else:
                self.survivors = [p.pid for p in self.left]
                self.done = True
        return self.done


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def rss_mb(pid: int) -> float | None:
    try:
        return psutil.Process(pid).memory_info().rss / (1024 * 1024)
    except psutil.Error:
        return None
