"""Dispatch throughput: the simulator pushes batches of events into one client process (the worker with
a no-op handler, a bare websockets or aiohttp loop, qq-botpy) and each client marks its progress in a
file; then the worker's RSS before and after many more events."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from benchmark.plan import EVENT, PY, SCRIPTS, WORK, Plan
from qqworker.simulator.remote import LineProcess, SimulatorProcess

__all__ = ["CLIENTS", "dispatch", "throughput", "wait_mark"]

BATCH = 50_000  # events per control request
CLIENTS: dict[str, Callable[[Path], list[str]]] = {
    "worker": lambda bench_py: [
        PY, "-m", "qqworker", "--handler", "benchmark.clients.noop:handle", "--max-attempts", "0",
    ],
    "websockets": lambda bench_py: [PY, "-m", "benchmark.clients.ws_loop"],
    "aiohttp": lambda bench_py: [PY, "-m", "benchmark.clients.aiohttp_loop"],
    "botpy": lambda bench_py: [str(bench_py), "-m", "benchmark.clients.botpy_client"],
}  # fmt: skip


def dispatch(sim: SimulatorProcess, count: int) -> None:
    for start in range(0, count, BATCH):
        sim.events(min(BATCH, count - start), EVENT, timeout=120)


def read_marks(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_mark(path: Path, count: int, timeout: float, client: LineProcess) -> dict[str, Any]:
    """The client's first mark of at least `count` events handled."""
    deadline = time.monotonic() + timeout
    while True:
        for mark in read_marks(path):
            if mark["count"] >= count:
                return mark
        if time.monotonic() > deadline or client.proc.poll() is not None:
            tail = "\n".join(ln.text for ln in client.lines[-10:])
            raise RuntimeError(f"{count} events were not handled within {timeout}s; client output:\n{tail}")
        time.sleep(0.01)


def throughput(kind: str, plan: Plan, bench_py: Path | None, growth: bool = False) -> dict[str, Any]:
    """Events per second (median of the rounds) from the POST that dispatches a batch until the client's
    handler has seen its last event, and the client's CPU time per event."""
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / f"marks-{kind}.jsonl"
    out.unlink(missing_ok=True)
    sim = SimulatorProcess()
    client: LineProcess | None = None
    result: dict[str, Any] = {}
    try:
        env = sim.env(PYTHONPATH=str(SCRIPTS), BENCH_TARGET=str(plan.events), BENCH_OUT=str(out))
        client = LineProcess(CLIENTS[kind](bench_py or Path(PY)), env=env, cwd=WORK)
        sim.wait_connected()
        proc = psutil.Process(client.pid)
        rates, cpu = [], []
        for round_no in range(1, plan.rounds + 1):
            cpu0 = sum(proc.cpu_times()[:2])
            t0 = time.time()
            dispatch(sim, plan.events)
            mark = wait_mark(out, round_no * plan.events, 300, client)
            rates.append(plan.events / (mark["t"] - t0))
            cpu.append((sum(proc.cpu_times()[:2]) - cpu0) / plan.events * 1e6)
        result = {"events_per_s": statistics.median(rates), "cpu_us_per_event": statistics.median(cpu),
                  "rounds": [round(r) for r in rates]}  # fmt: skip
        if growth:
            result.update(_rss_growth(sim, client, proc, out, plan))
    finally:
        if client is not None:
            client.stop()
        sim.stop()
    return result


def _rss_growth(
    sim: SimulatorProcess, client: LineProcess, proc: psutil.Process, out: Path, plan: Plan
) -> dict[str, Any]:
    """The worker's RSS after the warm-up rounds, then after `growth_events` more."""
    done = max((m["count"] for m in read_marks(out)), default=0)
    time.sleep(0.5)
    before = proc.memory_info().rss
    dispatch(sim, plan.growth_events)
    wait_mark(out, done + plan.growth_events, 600, client)
    time.sleep(0.5)
    after = proc.memory_info().rss
    return {"rss_before_mb": before / 2**20, "rss_after_mb": after / 2**20,
            "rss_growth_pct": (after - before) / before * 100}  # fmt: skip
