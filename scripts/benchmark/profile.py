"""A pyinstrument profile of the worker's hot path: the self time per part while it takes many events."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from benchmark.plan import ROOT, SCRIPTS, WORK
from benchmark.throughput import dispatch, wait_mark
from qqworker.simulator.remote import LineProcess, SimulatorProcess

__all__ = ["OTHER", "PROFILE_BUCKETS", "profile", "profile_buckets"]

_DISPATCH = "handler dispatch: queue, runner tasks, Reply objects"
_RECEIVE = "receive path: link.py transport callbacks, gateway.py, worker callbacks"
_LOOP = "asyncio event loop and socket transport"
PROFILE_BUCKETS = (  # (path fragment, what it is), first match wins; self time of each frame
    ("/websockets/", "websockets sans-I/O protocol: frame parsing"),
    ("qqworker/protocol.py", "qqworker protocol: orjson parse (C, counted here), seq, dedupe, event objects"),
    ("qqworker/handlers.py", _DISPATCH),
    ("qqworker/link.py", _RECEIVE),
    ("qqworker/gateway.py", _RECEIVE),
    ("qqworker/worker.py", _RECEIVE),
    ("benchmark/clients/noop.py", "the no-op handler itself"),
    ("/asyncio/", _LOOP),
    ("selectors.py", _LOOP),
)
OTHER = "everything else: start-up, imports, token, connect (not in the shares)"


def profile_buckets(tree: dict[str, Any]) -> dict[str, float]:
    """Self time per bucket (seconds) from pyinstrument's JSON tree."""
    buckets: dict[str, float] = {}

    def walk(node: dict[str, Any]) -> None:
        children = node.get("children", [])
        own = node["time"] - sum(c["time"] for c in children)
        path = node.get("file_path") or ""
        name = next((label for frag, label in PROFILE_BUCKETS if frag in path), OTHER)
        buckets[name] = buckets.get(name, 0.0) + max(0.0, own)
        for child in children:
            walk(child)

    walk(tree)
    return dict(sorted(buckets.items(), key=lambda kv: -kv[1]))


def profile(bench_py: Path, events: int) -> dict[str, Any]:
    """pyinstrument over the worker while it takes `events` events: the text report in build/bench/, and
    the self time per part of the hot path."""
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "marks-profile.jsonl"
    reports = ROOT / "build" / "bench"
    session = reports / "profile.pyisession"
    out.unlink(missing_ok=True)
    reports.mkdir(parents=True, exist_ok=True)
    sim = SimulatorProcess()
    args = [str(bench_py), "-m", "pyinstrument", "-r", "pyisession", "-o", str(session),
            "-m", "qqworker", "--handler", "benchmark.clients.noop:handle"]  # fmt: skip
    client: LineProcess | None = None
    try:
        env = sim.env(PYTHONPATH=str(SCRIPTS), BENCH_TARGET=str(events // 10), BENCH_OUT=str(out))
        client = LineProcess(args, env=env, cwd=WORK)
        sim.wait_connected()
        dispatch(sim, events)
        wait_mark(out, events, 600, client)
    finally:
        if client is not None:
            client.stop(60)
        sim.stop()
    load = [str(bench_py), "-m", "pyinstrument", f"--load={session}"]
    text = reports / "profile.txt"
    subprocess.run([*load, "-r", "text", "--show-all", "-o", str(text)], check=True, timeout=120)
    tree = json.loads(subprocess.run([*load, "-r", "json"], check=True, timeout=120, capture_output=True,
                                     text=True).stdout)  # fmt: skip
    buckets = profile_buckets(tree["root_frame"])
    other = buckets.pop(OTHER, 0.0)
    total = sum(buckets.values())
    parts = {name: {"s": round(t, 3), "pct": round(100 * t / total, 1)} for name, t in buckets.items()}
    parts[OTHER] = {"s": round(other, 3), "pct": None}  # start-up: not part of the per-event shares
    return {
        "report": str(text.relative_to(ROOT)),
        "events": events,
        "cpu_s": tree.get("cpu_time"),
        "parts": parts,
    }
