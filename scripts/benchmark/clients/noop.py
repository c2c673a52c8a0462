"""The no-op dispatch handler the benchmark runs in the worker (QQ_HANDLER=benchmark.clients.noop:handle).

It only counts; every BENCH_TARGET events it appends one JSON line (count, wall time, CPU time) to
BENCH_OUT, so the benchmark learns when a batch has gone all the way through the listen loop. The bare
loops (ws_loop, aiohttp_loop) mark their progress the same way."""

from __future__ import annotations

import json
import os
import time
from typing import Any

TARGET = int(os.environ.get("BENCH_TARGET", "0") or 0)
_OUT = os.environ.get("BENCH_OUT", "")
_count = 0


def mark(count: int) -> None:
    with open(_OUT, "a", encoding="utf-8") as out:
        out.write(json.dumps({"count": count, "t": time.time(), "cpu_s": time.process_time()}) + "\n")


async def handle(event: Any, reply: Any) -> None:
    global _count
    _count += 1
    if TARGET and _count % TARGET == 0:
        mark(_count)
