"""How fast the simulator pushes dispatch events:
`python scripts/benchmark/simulator_throughput.py [--events N] [--json]`.

The simulator runs in this process; each client runs in its own process (as a bot would) and counts the
events until the last one: `raw` reads frames off the socket with a minimal parser (the simulator's own
ceiling), `websockets` is a plain `websockets` receive loop (what a typical Python client gets).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from qqworker.simulator import Simulator
from qqworker.simulator.events import C2C
from qqworker.simulator.intents import Intent

INTENTS = Intent.GROUP_AND_C2C_EVENT | Intent.PUBLIC_GUILD_MESSAGES
STEP_TIMEOUT_S = 120.0
THIS_FILE = os.path.abspath(__file__)  # the clients run this file again, with --as-client


async def _token(token_url: str, app_id: str, secret: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        resp = await http.post(token_url, json={"appId": app_id, "clientSecret": secret})
        return str((await resp.json())["access_token"])


def _identify(token: str) -> str:
    return json.dumps({"op": 2, "d": {"token": f"QQBot {token}", "intents": INTENTS, "shard": [0, 1]}})


def _masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    body = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * 32)[: len(payload)], "big")).to_bytes(
        len(payload), "big"
    )
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


async def _raw_client(gateway_url: str, token: str, events: int) -> dict[str, Any]:
    url = urlsplit(gateway_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    buf = bytearray()
    frames = 0
    first = last = 0.0
    last_payload = b""
    identified = False
    while True:
        chunk = await reader.read(1 << 20)
        if not chunk:
            raise ConnectionError("closed before the last event")
        buf += chunk
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if n - pos < head + length:
                break
            frames += 1
            if frames == 3:
                first = time.monotonic()
            if frames == 1 and not identified:
                writer.write(_masked_text_frame(_identify(token)))
                identified = True
            elif frames == 2:
                print("ready", flush=True)
            last_payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
        del buf[:pos]
        if frames >= events + 2:
            last = time.monotonic()
            break
    writer.close()
    return {"first": first, "last": last, "events": frames - 2, "last_s": json.loads(last_payload)["s"]}


async def _websockets_client(gateway_url: str, token: str, events: int) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    async with connect(gateway_url, max_size=None) as ws:
        await ws.recv()
        await ws.send(_identify(token))
        await ws.recv()
        print("ready", flush=True)
        msg = await ws.recv()
        first = time.monotonic()
        for _ in range(events - 1):
            msg = await ws.recv()
        last = time.monotonic()
    return {"first": first, "last": last, "events": events, "last_s": json.loads(msg)["s"]}


async def _client_main(args: argparse.Namespace) -> None:
    token = await _token(args.token_url, args.app_id, args.app_secret)
    run = _raw_client if args.client == "raw" else _websockets_client
    print(json.dumps(await run(args.gateway_url, token, args.events)), flush=True)


async def _measure(sim: Simulator, client: str, events: int) -> dict[str, Any]:
    cmd = [
        sys.executable, THIS_FILE, "--as-client", client, "--events", str(events),
        "--gateway-url", sim.gateway_url, "--token-url", sim.token_url,
        "--app-id", sim.app_id, "--app-secret", sim.app_secret,
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), STEP_TIMEOUT_S)
        if line.strip() != b"ready":
            raise RuntimeError(f"{client} client did not get READY: {line!r}")
        start = time.monotonic()
        await asyncio.wait_for(sim.dispatch(C2C, count=events), STEP_TIMEOUT_S)
        written = time.monotonic()
        result = json.loads(await asyncio.wait_for(proc.stdout.readline(), STEP_TIMEOUT_S))
        await asyncio.wait_for(proc.wait(), STEP_TIMEOUT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    elapsed = result["last"] - start
    return {
        "client": client,
        "events": result["events"],
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / elapsed),
        "written_in_s": round(written - start, 3),
        "last_seq_ok": result["last_s"] == events + 1,
    }


async def _bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    clients = ["raw", "websockets"] if args.client == "both" else [args.client]
    for client in clients:
        async with Simulator(session_cycle_s=0, heartbeat_timeout_factor=0) as sim:
            results.append(await _measure(sim, client, args.events))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/benchmark/simulator_throughput.py", description=__doc__)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--client", choices=["raw", "websockets", "both"], default="both")
    p.add_argument("--json", action="store_true", help="print the results as one JSON line")
    p.add_argument("--as-client", dest="as_client", choices=["raw", "websockets"], help=argparse.SUPPRESS)
    for name in ("--gateway-url", "--token-url", "--app-id", "--app-secret"):
        p.add_argument(name, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.as_client:
        args.client = args.as_client
        asyncio.run(_client_main(args))
        return 0
    results = asyncio.run(_bench(args))
    if args.json:
        print(json.dumps({"simulator_push": results}))
    else:
        for r in results:
            print(
                f"{r['client']:>10}: {r['events']} events in {r['seconds']} s"
                f" = {r['events_per_s']:,} events/s (seq check {'ok' if r['last_seq_ok'] else 'FAILED'})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
