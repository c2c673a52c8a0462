"""Measures how long each `multiprocess` start method takes to give the watchdog a working child.

`python scripts/benchmark/start_methods.py [--runs N] [--json]`: from `Process.start()` until the child
has imported what the worker needs (aiohttp, websockets) and answered over a pipe, median of N runs,
from a parent with an event loop and a second thread running (the harder case for fork). The figures
and the choice they led to are in the README ("Supervision model"); `start_methods(runs)` is the
benchmark's call, in a fresh interpreter so that nothing the benchmark imported is inherited.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import multiprocess

__all__ = ["start_methods"]

HEAVY_MODULES = ("aiohttp", "websockets.asyncio.client", "qqworker.logs", "qqworker.contract.settings")


def _child(conn: Any) -> None:
    import importlib

    for name in HEAVY_MODULES:
        importlib.import_module(name)
    conn.send_bytes(b"up")
    conn.close()


def _measure(ctx: Any, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        reader, writer = ctx.Pipe(duplex=False)
        started = time.perf_counter()
        proc = ctx.Process(target=_child, args=(writer,), daemon=True)
        proc.start()
        writer.close()
        if not reader.poll(30):
            raise RuntimeError(f"{ctx.get_start_method()} child did not answer within 30 s")
        reader.recv_bytes()
        times.append(time.perf_counter() - started)
        proc.join(10)
        reader.close()
    return times


async def _run(runs: int) -> dict[str, dict[str, float]]:
    # The watchdog's situation: an event loop running and a second thread alive while it spawns.
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    results: dict[str, dict[str, float]] = {}
    variants = [
        ("spawn", None),
        ("forkserver", None),
        ("forkserver+preload", HEAVY_MODULES),
        ("fork", None),
    ]
    try:
        for label, preload in variants:
            method = label.split("+")[0]
            ctx = multiprocess.get_context(method)
            if preload:
                ctx.set_forkserver_preload(list(preload))
            if method == "forkserver":
                # A fresh server per variant so the preload setting applies.
                from multiprocess import forkserver

                forkserver._forkserver._stop()
            times = _measure(ctx, runs + 1)[1:]  # the first run pays for starting helpers
            results[label] = {
                "median_ms": round(statistics.median(times) * 1000, 1),
                "min_ms": round(min(times) * 1000, 1),
                "max_ms": round(max(times) * 1000, 1),
            }
    finally:
        stop.set()
    return results


def start_methods(runs: int) -> dict[str, Any]:
    """The figures, measured by this file run as a script in a fresh interpreter."""
    out = subprocess.run([sys.executable, str(Path(__file__)), "--runs", str(runs), "--json"],
                         capture_output=True, text=True, timeout=300, check=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark/start_methods.py", description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = asyncio.run(_run(args.runs))
    if args.json:
        print(json.dumps(results))
    else:
        for label, figures in results.items():
            low, high = figures["min_ms"], figures["max_ms"]
            print(f"{label:20} median {figures['median_ms']:7.1f} ms  (min {low}, max {high})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
