"""What a benchmark run measures and with which counts: the full run and the quick smoke run."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from qqworker.simulator.remote import RunTimings

__all__ = ["EVENT", "FULL", "PY", "QUICK", "ROOT", "SCRIPTS", "START_METHODS", "WORK", "Plan"]

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"  # the import root of `benchmark`: the PYTHONPATH of every process it starts
PY = sys.executable
WORK = ROOT / ".bench" / "run"
EVENT = "C2C_MESSAGE_CREATE"
START_METHODS = ("spawn", "forkserver", "forkserver_preload", "fork")


@dataclass(frozen=True)
class Plan:
    events: int  # per throughput round
    rounds: int
    growth_events: int
    idle_s: float
    outage_s: float
    freeze_flags: tuple[str, ...]  # the watchdog's timings for the freeze and outage runs
    peers: bool
    profile: bool
    quick: bool = False

    @property
    def net_runs(self) -> int:
        return 2 if self.quick else 5

    @property
    def net_outage_s(self) -> float:
        return 20.0 if self.quick else 60.0  # longer than the dead-link detection (~12 s) either way

    @property
    def net_botpy_cap_s(self) -> float:
        # botpy checks no ACK: its dead link may go unnoticed for minutes
        return 60.0 if self.quick else 180.0

    @property
    def start_method_runs(self) -> int:
        return 3 if self.quick else 5


FULL = Plan(20_000, 5, 100_000, 60.0, 60.0, (), True, True)
QUICK_TIMINGS = RunTimings.only(
    heartbeat_interval=0.2, heartbeat_timeout=1, retry_initial=0.2, retry_max=1,
    stop_timeout=2, respawn_initial=0.1,
)  # fmt: skip
QUICK = Plan(2_000, 1, 10_000, 3.0, 3.0, tuple(QUICK_TIMINGS.flags()), True, False, quick=True)
