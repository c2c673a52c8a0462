"""What the local gateway (QQ_HANDLER=gateway) adds to an event's path: one event at a time, simulator ->
client, first with the client on the simulator directly, then through the worker's local gateway.

Everything runs in this one process and event loop, so the figure is the work on the path (parse, dedupe,
queue, buffer, re-encode, write), not the scheduling between processes. Run with the project installed:
`.venv/bin/python scripts/benchmark/gateway_latency.py [N]`.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import sys
import time

import aiohttp

from qqworker.logs import configure_logging
from qqworker.simulator import Simulator
from qqworker.simulator.client_env import client_settings
from qqworker.simulator.docs_client import Gateway, fetch_token
from qqworker.worker import Worker

STEP_S = 5.0


async def one_by_one(sim: Simulator, gw: Gateway, n: int) -> list[float]:
    took = []
    for _ in range(n):
        started = time.perf_counter()
        await sim.dispatch("C2C_MESSAGE_CREATE")
        while (await gw.recv(STEP_S))["op"] != 0:
            pass
        took.append((time.perf_counter() - started) * 1000)
    return took


def summary(name: str, took: list[float]) -> str:
    ordered = sorted(took)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return f"{name}: median {statistics.median(took):.3f} ms, p99 {p99:.3f} ms over {len(took)} events"


async def main(n: int) -> None:
    configure_logging("worker", stream=io.StringIO())
    async with Simulator(heartbeat_interval_ms=30_000) as sim, aiohttp.ClientSession() as http:
        gw = await Gateway.open(sim.gateway_url)
        await gw.identify(await fetch_token(http, sim))
        direct = await one_by_one(sim, gw, n)
        await gw.ws.close()
        await sim.close_connections(4009, drop_sessions=True)
        settings = client_settings(
            sim.info(),
            handler="gateway",
            gateway_listen="127.0.0.1:0",
        )
        worker = Worker(settings)
        task = asyncio.create_task(worker.run())
        await sim.wait_until(lambda s: any(c["connected"] for c in s["sessions"]), timeout=10)
        local = worker.local_gateway
        assert local is not None
        answer = await http.post(
            f"{local.api_base}/app/getAppAccessToken",
            json={"appId": sim.app_id, "clientSecret": sim.app_secret},
        )
        gw = await Gateway.open(local.gateway_url)
        await gw.identify((await answer.json())["access_token"])
        via = await one_by_one(sim, gw, n)
        await gw.ws.close()
        worker.stop()
        await task
    print(summary("simulator -> client", direct))
    print(summary("simulator -> worker -> local gateway -> client", via))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
