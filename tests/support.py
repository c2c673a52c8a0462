"""Shared helpers for the tests that run real processes: the simulator, the worker, the watchdog.

The process drivers are `qqworker.simulator.remote` (also the demo's and the benchmark's); this module
re-exports them for the tests and adds the checks only tests make.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path

from qqworker.simulator.remote import (
    PYTHON,
    Line,
    LineProcess,
    RunTimings,
    SimulatorProcess,
    kill_session,
    private_state_file,
    session_processes,
    wait_until,
)

__all__ = [
    "PYTHON",
    "ROOT",
    "Line",
    "LineProcess",
    "RunTimings",
    "SimulatorProcess",
    "assert_no_secret",
    "closed_port",
    "kill_session",
    "private_state_file",
    "session_processes",
    "wait_until",
    "watchdog_status",
]

ROOT = Path(__file__).resolve().parent.parent


def assert_no_secret(outputs: Iterable[str], secrets: Iterable[str]) -> None:
    for text in outputs:
        for secret in secrets:
            if secret and secret in text:
                raise AssertionError(f"a secret or token appeared in the output: {secret[:4]}…")


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def watchdog_status(status_file: Path | str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`python -m watchdog status --status-file FILE [extra]`, as an operator runs it."""
    return subprocess.run(
        [PYTHON, "-m", "watchdog", "status", "--status-file", str(status_file), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
