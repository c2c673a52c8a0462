"""Nothing the worker started outlives it when its watchdog dies, even by SIGKILL.

The worker is a child subreaper (PR_SET_CHILD_SUBREAPER): whatever its handlers start, and whatever
those start and leave (a double fork), stays its descendant. A guard thread waits for the watchdog's
exit on a pidfd (no polling; a 0.5 s poll of the parent pid where pidfds are missing). When the
watchdog is gone, PR_SET_PDEATHSIG has already asked the worker to stop cleanly; the guard ends the
worker's descendants at once (SIGTERM, SIGKILL after `KILL_GRACE_S`), gives the worker its stop
timeout to finish, then ends the process itself: a worker whose loop is blocked cannot act on SIGTERM.

While the watchdog lives it alone ends the worker's tree (it knows the stop timeout and logs it).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import threading
import time

PR_SET_CHILD_SUBREAPER = 36
KILL_GRACE_S = 1.0
POLL_S = 0.5


def become_subreaper() -> bool:
    """Orphans of our descendants are re-parented to us (not to init), so none can escape."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def wait_for_exit(pid: int) -> None:
    """Returns once process `pid` (our parent) has ended."""
    fd = -1
    with contextlib.suppress(OSError, AttributeError):
        fd = os.pidfd_open(pid)
    try:
        if fd >= 0 and os.getppid() == pid:  # the pidfd names our parent, not a recycled pid
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while not poller.poll():
                pass
            return
    finally:
        if fd >= 0:
            os.close(fd)
    while os.getppid() == pid:
        time.sleep(POLL_S)


def end_descendants(grace: float = KILL_GRACE_S) -> int:
    """SIGTERM (+SIGCONT) to every descendant, SIGKILL to those left after `grace`; reaps them.
    Returns how many there were."""
    import psutil  # only now: the worker's steady state does not need it

    try:
        tree = psutil.Process().children(recursive=True)
    except psutil.Error:
        return 0
    for sig in (signal.SIGTERM, signal.SIGCONT):
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
    _, left = psutil.wait_procs(tree, timeout=grace)
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(left, timeout=grace)
    return len(tree)


def _guard(parent_pid: int, stop_timeout: float, exit_code: int) -> None:
    wait_for_exit(parent_pid)
    end_descendants()
    time.sleep(stop_timeout)  # the worker's own clean stop (PDEATHSIG sent it SIGTERM)
    end_descendants(grace=0.2)
    os._exit(exit_code)


def guard(parent_pid: int, stop_timeout: float, exit_code: int = 0) -> threading.Thread:
    """Starts the guard for a worker whose watchdog is `parent_pid`."""
    become_subreaper()
    thread = threading.Thread(
        target=_guard, args=(parent_pid, stop_timeout, exit_code), name="qqworker-orphan-guard", daemon=True
    )
    thread.start()
    return thread
