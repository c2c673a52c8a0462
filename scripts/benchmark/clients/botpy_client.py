"""The official SDK (qq-botpy) with a no-op handler, pointed at the local simulator (hosts patched by
clients/botpy_hosts.py). Runs with the bench's own venv (.bench/venv), never the project's:
`python -m benchmark.clients.botpy_client`, BENCH_TARGET and BENCH_OUT as for clients/noop.py."""

from __future__ import annotations

import json
import os
import sys
import time

import botpy

from benchmark.clients.botpy_hosts import run_from_env

TARGET = int(os.environ.get("BENCH_TARGET", "1"))
OUT = os.environ.get("BENCH_OUT", os.devnull)


def _mark(count: int) -> None:
    with open(OUT, "a", encoding="utf-8") as out:
        out.write(json.dumps({"count": count, "t": time.time(), "cpu_s": time.process_time()}) + "\n")


class BenchClient(botpy.Client):
    count = 0

    async def on_c2c_message_create(self, message: object) -> None:
        BenchClient.count += 1
        if BenchClient.count % TARGET == 0:
            _mark(BenchClient.count)


def main() -> int:
    return run_from_env(BenchClient)


if __name__ == "__main__":
    sys.exit(main())
