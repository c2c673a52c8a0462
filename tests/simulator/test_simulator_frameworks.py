"""A strict framework parses what the simulator sends: NoneBot2's adapter-qq (1.7.x validates every
event with pydantic and drops, "Failed to parse event", any that lacks a field the platform sends).

The adapter runs in a venv of its own under build/ (tests/gateway/venvs.py: made once from PyPI, then
reused), never in the
project's: the frames are captured here from a real simulator over a real WebSocket, and handed over
as text.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import aiohttp
import pytest

from qqworker.simulator import Simulator
from qqworker.simulator.docs_client import Gateway, fetch_token
from tests.gateway.venvs import INSTALL_TIMEOUT_S, framework_python

PACKAGES = ("nonebot-adapter-qq==1.7.3", "nonebot2==2.5.0")
PARSER = Path(__file__).resolve().parent / "nonebot_parse.py"
# The single-event path and the batch (`count`) templates, for each of the generated types.
SENT = (
    {"type": "C2C_MESSAGE_CREATE"},
    {"type": "C2C_MESSAGE_CREATE", "d": {"content": "hello"}},
    {"type": "C2C_MESSAGE_CREATE", "count": 4},
    {"type": "GROUP_AT_MESSAGE_CREATE"},
    {"type": "GROUP_AT_MESSAGE_CREATE", "count": 4},
    {"type": "AT_MESSAGE_CREATE"},
    {"type": "AT_MESSAGE_CREATE", "count": 2},
    {"type": "DIRECT_MESSAGE_CREATE"},
)
FRAMES = 1 + 1 + 4 + 1 + 4 + 1 + 2 + 1


async def capture_frames() -> list[str]:
    async with Simulator(heartbeat_interval_ms=5000) as sim, aiohttp.ClientSession() as http:
        token = await fetch_token(http, sim)
        gw = await Gateway.open(sim.gateway_url)
        ready = await gw.identify(token)
        assert ready["t"] == "READY", ready
        for body in SENT:
            resp = await http.post(f"{sim.control_url}/_sim/events", json=body)
            assert resp.status == 200, await resp.text()
        frames = [str(await asyncio.wait_for(gw.ws.recv(), 5)) for _ in range(FRAMES)]
        await gw.ws.close()
    return frames


@pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)
def test_nonebot_adapter_qq_parses_every_generated_event(tmp_path: Path) -> None:
    python = framework_python("nonebot", PACKAGES)  # build/nonebot-venv
    frames = asyncio.run(capture_frames())
    path = tmp_path / "frames.json"
    path.write_text(json.dumps(frames), encoding="utf-8")
    result = subprocess.run(
        [str(python), str(PARSER), str(path)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.stdout.strip(), result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["failures"], json.dumps(report["failures"][:3], ensure_ascii=False, indent=1)
    assert result.returncode == 0, result.stderr[-2000:]
    assert report["parsed"] == {
        "C2C_MESSAGE_CREATE": 6,
        "GROUP_AT_MESSAGE_CREATE": 5,
        "AT_MESSAGE_CREATE": 3,
        "DIRECT_MESSAGE_CREATE": 1,
    }
