"""`scripts/run.sh --demo` end to end: the whole outage script, then Ctrl-C (SIGINT) stops everything."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from tests.support import LineProcess

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_demo_outage_script_then_sigint_leaves_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QQ_", "QQW_"))}
    env["QQW_RUN_DIR"] = str(tmp_path / "run")  # its own demo.log and status file, whatever else runs
    # --duration is only a safety net here: the test interrupts it as an operator would.
    demo = LineProcess(
        ["bash", str(ROOT / "scripts" / "run.sh"), "--demo", "--json", "--duration", "170"],
        env=env,
        cwd=tmp_path,
    )
    try:
        _, done = demo.wait_for("demo.step", 150, lambda r: r["message"].startswith("Demo script done"))
        assert done["failures"] == [], demo.output()[-4000:]
        demo.signal(signal.SIGINT)  # Ctrl-C; run.sh exec'd the demo, so this pid is the demo's
        assert demo.wait(60) == 0, demo.output()[-4000:]
    finally:
        demo.stop(15)

    records = demo.records()
    events = [r["event"] for r in records]
    steps = [r["message"] for r in records if r["event"] == "demo.step"]
    # 0. the first API base plays the host the platform retired: one switch, then connected on the second
    (switched,) = demo.records("gateway.base_switched")
    assert switched["kind"] == "api_base" and any("moved to" in m for m in steps)
    # 1. messages answered; 2. refused link: every attempt logged, then back
    assert any(m.startswith("3 replies received") for m in steps)
    assert events.count("reconnect.scheduled") >= 2 and "reconnect.failed" in events
    assert any(m.startswith("Recovered from the refused link") for m in steps)
    # 3. half-open link detected by missing ACKs
    assert "gateway.ack_timeout" in events or "child.ack_stale" in events
    # 4. frozen worker: detected, killed, respawned, resumed, and the messages sent meanwhile answered
    assert "child.heartbeat_missed" in events and "child.killed" in events
    spawned = demo.records("child.spawned")
    assert len(spawned) >= 2 and spawned[-1]["resume"] is True
    assert any(r["event"] == "gateway.connected" and r["generation"] >= 2 and r["resumed"] for r in records)
    assert any("answered both messages sent while no worker was connected" in m for m in steps)
    # Ctrl-C: everything stopped in order, and the demo printed the outage report of its own log
    assert "watchdog.stopped" in events
    assert "Everything stopped; no process left." in steps
    assert any(m.startswith("  offline ") for m in steps)
    assert (tmp_path / "run" / "demo.log").stat().st_size > 0
    assert not list((tmp_path / "run").glob("*.status.json"))  # cleaned up

    # And independently of what the demo says: no process left, the simulator's port closed.
    sim_line, retired_line = [r for r in records if "simulator_pid" in r]
    pids = {sim_line["simulator_pid"], retired_line["simulator_pid"], demo.pid}
    pids |= {r["pid"] for r in records if r.get("role") in ("watchdog", "worker")}
    pids |= {r["child_pid"] for r in spawned}
    assert [pid for pid in pids if alive(pid)] == []
    for line in (sim_line, retired_line):
        port = urlsplit(line["api_base"]).port
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    # No secret in the output: the simulator's test secret is passed by environment only.
    assert "qqsimTestSecret" not in demo.output()
