"""`python -m qqworker.simulator`: one JSON line on stdout, serves, exits 0 on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import aiohttp
import pytest

pytestmark = pytest.mark.timeout(30)
STEP = 10.0


async def _start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "qqworker.simulator", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_prints_one_json_line_serves_and_exits_0_on_signal(signum: signal.Signals):
    proc = await _start(
        "--port", "0", "--heartbeat-interval-ms", "500", "--app-id", "42", "--app-secret", "s3"
    )
    try:
        assert proc.stdout is not None
        info = json.loads(await asyncio.wait_for(proc.stdout.readline(), STEP))
        assert set(info) == {"api_base", "token_url", "gateway_url", "control_url", "app_id", "app_secret"}
        assert info["api_base"].startswith("http://127.0.0.1:")
        assert info["token_url"] == info["api_base"] + "/app/getAppAccessToken"
        assert info["gateway_url"] == "ws" + info["api_base"][4:] + "/websocket/"
        assert (info["app_id"], info["app_secret"]) == ("42", "s3")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=STEP)) as http:
            token = await (
                await http.post(info["token_url"], json={"appId": "42", "clientSecret": "s3"})
            ).json()
            assert token["expires_in"] == "7200"
            async with http.ws_connect(info["gateway_url"]) as ws:
                assert await ws.receive_json(timeout=STEP) == {"op": 10, "d": {"heartbeat_interval": 500}}
                state = await (await http.get(info["control_url"] + "/_sim/state")).json()
                assert len(state["connections"]) == 1
                proc.send_signal(signum)
                assert await asyncio.wait_for(proc.wait(), STEP) == 0
        assert await proc.stdout.read() == b""  # the JSON line was the only output
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_refuses_a_non_loopback_host_without_allow_remote():
    proc = await _start("--host", "0.0.0.0")
    stdout, stderr = await asyncio.wait_for(proc.communicate(), STEP)
    assert proc.returncode == 2 and stdout == b""
    assert b"loopback" in stderr
