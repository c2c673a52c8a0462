"""The timing table runs are given (qqworker/simulator/remote.py `RunTimings`): its flags for each process."""

from __future__ import annotations

from dataclasses import replace

from qqworker.contract.settings import Settings
from qqworker.simulator.remote import FLAG_NAMES, RunTimings


def test_every_timing_is_a_flag_of_the_watchdog_in_the_table_order() -> None:
    flags = RunTimings().flags()
    assert flags[::2] == list(FLAG_NAMES.values())
    assert all(hasattr(Settings(), name) for name in FLAG_NAMES)  # each names a setting
    assert flags[flags.index("--retry-max") + 1] == "1.0" and flags[-2:] == ["--max-attempts", "0"]


def test_the_worker_gets_only_its_own_flags() -> None:
    flags = RunTimings(retry_initial=0.05, heartbeat_timeout=9).worker_flags()
    assert flags[::2] == [
        "--retry-initial",
        "--retry-max",
        "--connect-timeout",
        "--heartbeat-interval",
        "--max-attempts",
    ]
    assert flags[1] == "0.05" and "--heartbeat-timeout" not in flags


def test_only_gives_just_the_named_flags_and_defaults_gives_none() -> None:
    timings = RunTimings.only(retry_initial=0.2, stop_timeout=5)
    assert timings.flags() == ["--retry-initial", "0.2", "--stop-timeout", "5"]
    assert timings.worker_flags() == ["--retry-initial", "0.2"]
    assert RunTimings(defaults=True).flags() == [] and replace(timings, defaults=True).worker_flags() == []


def test_the_bounds_follow_from_the_timings() -> None:
    t = RunTimings(
        retry_max=1.0, connect_timeout=2.0, stop_timeout=3.0, silence_grace=1.5, gateway_heartbeat_ms=300
    )
    assert (t.silence_bound, t.kill_silence_bound, t.ack_bound) == (3.5, 4.5, 2.6)
    assert t.simulator_flags() == ["--heartbeat-interval-ms", "300"]
