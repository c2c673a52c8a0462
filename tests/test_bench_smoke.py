"""scripts/bench.py runs end to end: the quick smoke run without the peers (qq-botpy and supervisord
need the bench's own venv from PyPI; the full run installs them). Timing goals are the bench's business,
not this test's: it checks that every contract key is there and every measured figure is sane."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONTRACT_KEYS = (
    "events_per_s", "events_per_s_websockets", "events_per_s_botpy", "ratio_vs_websockets", "ratio_vs_botpy",
    "freeze_to_connected_s", "network_back_to_connected_s", "longest_silence_s", "watchdog_idle_rss_mb",
    "supervisord_idle_rss_mb", "watchdog_idle_cpu_s", "supervisord_idle_cpu_s", "worker_rss_growth_pct",
    "watchdog_idle_rss_total_mb",
    "dead_link_detect_s", "network_back_unreachable_s", "network_back_blackhole_s",
    "dead_link_detect_s_botpy", "network_back_unreachable_s_botpy", "network_back_blackhole_s_botpy",
)  # fmt: skip
PEER_KEYS = {"events_per_s_botpy", "ratio_vs_botpy", "supervisord_idle_rss_mb", "supervisord_idle_cpu_s"}
# Measured over a real link by the full run and `--only recovery`; the quick run reports them as null.
NET_KEYS = {
    "dead_link_detect_s",
    "network_back_unreachable_s",
    "network_back_blackhole_s",
    "dead_link_detect_s_botpy",
    "network_back_unreachable_s_botpy",
    "network_back_blackhole_s_botpy",
}


def test_bench_quick_json() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--no-peers", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for key in CONTRACT_KEYS:
        assert key in figures, f"bench --json lacks {key!r}"
        if key in PEER_KEYS or key in NET_KEYS:
            assert figures[key] is None, f"{key} measured without the peers?"
        else:
            assert isinstance(figures[key], (int, float)), f"{key} = {figures[key]!r}"
    assert figures["events_per_s"] > 0 and figures["events_per_s_websockets"] > 0
    assert 0 < figures["freeze_to_connected_s"] < 60
    assert 0 <= figures["network_back_to_connected_s"] < 60
    assert 0 < figures["longest_silence_s"] < 10
    assert figures["watchdog_idle_rss_mb"] > 1
    assert figures["watchdog_idle_rss_total_mb"] >= figures["watchdog_idle_rss_mb"]
    assert abs(figures["worker_rss_growth_pct"]) < 100
    assert "| figure | measured | settings |" in done.stderr, (
        "the human-readable table goes to stderr with --json"
    )
