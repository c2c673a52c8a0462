"""The relay on a real watchdog and worker: only the worker logger's own lines are contract lines (a
library's structlog-style JSON or another process's line is `child.output`), and a 5 MB line is one
`child.output` record marked cut, with its length."""

from __future__ import annotations

import json
from pathlib import Path

from tests.supervised import LIFECYCLE, Supervised
from tests.support import SimulatorProcess, wait_until
from watchdog.relay import CUT_EXCERPT_BYTES


def test_foreign_json_and_a_5_mb_line_are_child_output(tmp_path: Path, sim: SimulatorProcess) -> None:
    wd = Supervised(sim, tmp_path, timings=LIFECYCLE)
    try:
        wd.connected()
        connecting_before = len(wd.process.records("gateway.connecting"))
        wd.send("foreignjson")
        wd.send("bigline")
        wait_until(lambda: any(r.get("cut") for r in wd.process.records("child.output")), 20, "the cut line")
        wait_until(lambda: len(wd.process.records("child.output")) >= 2, 10, "the foreign JSON lines")
        assert wd.finish() == 0
    finally:
        wd.close()
    outputs = wd.process.records("child.output")
    foreign = [json.loads(line) for r in outputs if not r.get("cut") for line in r["text"].splitlines()]
    assert {"structlog.lib", None} == {f.get("logger") for f in foreign}
    assert [f.get("pid") for f in foreign if f.get("role") == "worker"] == [1]
    # Neither reached the stream as a contract line, nor the policy as an attempt.
    assert len(wd.process.records("gateway.connecting")) == connecting_before
    (cut,) = [r for r in outputs if r.get("cut")]
    assert cut["bytes"] == 5 << 20 and cut["text"] == "x" * CUT_EXCERPT_BYTES
    assert "cut" in cut["message"]
    # The stream stayed one JSON object per line, and no line near the 5 MB one.
    assert all(line.record is not None for line in wd.process.lines)
    assert max(len(line.text) for line in wd.process.lines) < 64 << 10
