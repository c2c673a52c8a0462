"""The benchmark's table (scripts/benchmark/table.py): qq-botpy's real-link figures render next to the
worker's when they were measured, say "not noticed/connected within" for a capped None, and leave saved
results as they were."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from benchmark import netrecovery, table  # noqa: E402
from benchmark.botpy_netrecovery import BACK_CAP_S  # noqa: E402

SETTINGS = dict.fromkeys(("throughput", "warmup", "growth", "recovery", "outage", "idle"), "")
WORKER = {"dead_link_detect_s": 12.0, "dead_link_evidence": "ws ping", "network_back_unreachable_s": 1.1,
          "network_back_unreachable_median_s": 0.9, "network_back_blackhole_s": 0.4}  # fmt: skip


def net_rows(figures: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = table.rows(figures, {**SETTINGS, "netrecovery": "N", "netrecovery_botpy": "B"})
    return [row for row in rows if row[0].startswith(("dead link", "network back"))]


def test_botpy_rows_follow_the_worker_row_of_the_same_fault() -> None:
    figures = {**WORKER, "dead_link_detect_s_botpy": 95.5, "dead_link_botpy_cap_s": 180.0,
               "network_back_unreachable_s_botpy": 5.25, "network_back_unreachable_botpy_via": "READY",
               "network_back_blackhole_s_botpy": 0.03,
               "network_back_blackhole_botpy_via": "an event on the connection that survived"}  # fmt: skip
    rows = net_rows(figures)
    assert [r[0].endswith("qq-botpy 1.2.1") for r in rows] == [False, True] * 3
    assert [r[1] for r in rows] == ["12.00 s", "95.50 s", "1.10 s", "5.25 s", "0.40 s", "0.03 s"]
    assert "via READY" in rows[3][2] and rows[3][2].endswith("B")


def test_a_capped_botpy_figure_says_so_and_no_number() -> None:
    figures = {**WORKER, "dead_link_botpy_cap_s": 180.0, **dict.fromkeys((
        "dead_link_detect_s_botpy", "network_back_unreachable_s_botpy", "network_back_blackhole_s_botpy",
        "network_back_unreachable_botpy_via", "network_back_blackhole_botpy_via"))}  # fmt: skip
    rows = net_rows(figures)
    assert rows[1][1] == "not noticed within 180 s"
    assert rows[3][1] == rows[5][1] == f"not connected within {BACK_CAP_S:g} s"


def test_botpy_not_measured_adds_no_row() -> None:
    unmeasured = dict.fromkeys(netrecovery.KEYS)  # the quick run, --no-peers: every key null
    assert len(net_rows({**WORKER, **{k: v for k, v in unmeasured.items() if "botpy" in k}})) == 3
    assert len(net_rows(WORKER)) == 3


def test_committed_results_still_render_as_the_readme_shows() -> None:
    done = subprocess.run([sys.executable, "scripts/bench.py", "--check-readme"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_update_readme_writes_results_that_check_readme_then_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = json.loads(table.RESULTS.read_text(encoding="utf-8"))
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n## Benchmarks\n\nProse.\n", encoding="utf-8")
    monkeypatch.setattr(table, "RESULTS", tmp_path / "results.json")
    monkeypatch.setattr(table.readme_blocks, "README", readme)
    text = table.table(saved["figures"], saved["settings"], saved["meta"], saved.get("profile"))
    table.save(text, saved)
    assert json.loads(table.RESULTS.read_text(encoding="utf-8")) == saved
    assert readme.read_text(encoding="utf-8").startswith(
        "# Title\n\n## Benchmarks\n\n<!-- BEGIN generated:bench (scripts/bench.py --update-readme) -->\n"
    )
    assert table.check_readme() == 0
    saved["figures"]["events_per_s"] += 1
    table.RESULTS.write_text(json.dumps(saved), encoding="utf-8")
    assert table.check_readme() == 1
