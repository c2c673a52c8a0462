"""One watchdog per status file, on real processes: a second `python -m watchdog run` refuses at once with
one line and exit 73, touching nothing of the first one's."""

from __future__ import annotations

import json
from pathlib import Path

from tests.supervised import LIFECYCLE, Supervised
from tests.support import SimulatorProcess


def test_a_second_watchdog_on_the_same_status_file_refuses_with_73(
    tmp_path: Path, sim: SimulatorProcess
) -> None:
    first = Supervised(sim, tmp_path, timings=LIFECYCLE)
    second = None
    try:
        first.connected()
        before = json.loads(first.status_file.read_text())
        second = Supervised(sim, tmp_path, timings=LIFECYCLE)
        assert second.process.wait(30) == 73
        records = second.process.records()
        assert [r["event"] for r in records] == ["watchdog.stopped"], second.process.output()
        assert f"pid {first.pid}" in records[0]["reason"] and "already running" in records[0]["reason"]
        assert records[0]["exitcode"] == 73
        after = json.loads(first.status_file.read_text())
        assert before["watchdog_pid"] == after["watchdog_pid"] == first.pid
        assert not first.process.records("child.killed")  # the first one's worker is untouched
        first.finish()
        third = Supervised(sim, tmp_path, timings=LIFECYCLE)  # the lock went with its holder
        try:
            third.connected()
            third.finish()
        finally:
            third.close()
    finally:
        first.close()
        if second is not None:
            second.close()
