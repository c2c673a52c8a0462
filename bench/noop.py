"""The no-op dispatch handler the benchmark runs in the worker (QQ_HANDLER=bench.noop:handle).

It only counts; every BENCH_TARGET events it appends one JSON line (count, wall time, CPU time) to
BENCH_OUT, so the benchmark learns when a batch has gone all the way through the listen loop."""

from __future__ import annotations

import json
import os
import time
from typing import Any

_TARGET = int(os.environ.get("BENCH_TARGET", "0") or 0)
_OUT = os.environ.get("BENCH_OUT", "")
_count = 0


def mark(count: int) -> None:
    with open(_OUT, "a", encoding="utf-8") as out:
        out.write(json.dumps({"count": count, "t": time.time(), "cpu_s": time.process_time()}) + "\n")


async def handle(event: Any, reply: Any) -> None:
    global _count
    _count += 1
    if _TARGET and _count % _TARGET == 0:
        mark(_count)
