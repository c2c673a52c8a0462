"""NoneBot2 + nonebot-adapter-qq, unchanged and configured as its users do (`QQ_API_BASE`,
`QQ_AUTH_BASE` in its `.env`), behind the real watchdog + worker in `QQ_HANDLER=gateway` mode, with
the simulator playing the platform. Everything runs as real processes over real sockets."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.venvs import INSTALL_TIMEOUT_S, framework_python
from tests.support import LineProcess, SimulatorProcess, assert_no_secret, wait_until
from tests.watchdog.wd_harness import Watchdog, closed_port

PACKAGES = ("nonebot2[httpx,websockets]==2.5.0", "nonebot-adapter-qq==1.7.3")
BOT = Path(__file__).resolve().parent / "nonebot_bot.py"
STEP = 20.0


class NoneBot:
    """One run of the NoneBot2 bot process (its probe lines: connected, disconnected, event)."""

    def __init__(self, python: Path, workdir: Path, port: int, info: dict[str, Any]) -> None:
        bots = [
            {"id": info["app_id"], "secret": info["app_secret"], "intent": {"c2c_group_at_messages": True}}
        ]
        (workdir / ".env").write_text(
            "DRIVER=~httpx+~websockets\n"
            "LOG_LEVEL=INFO\n"
            f"QQ_API_BASE=http://127.0.0.1:{port}/\n"
            f"QQ_AUTH_BASE=http://127.0.0.1:{port}/app/getAppAccessToken\n"
            f"QQ_BOTS={json.dumps(bots)}\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QQ_", "QQW_"))}
        self.process = LineProcess([str(python), str(BOT)], env=env, cwd=workdir)

    def probes(self, what: str) -> list[dict[str, Any]]:
        return [r for r in self.process.records() if r.get("probe") and r.get("what") == what]

    def seen(self) -> set[str]:
        return {r["msg_id"] for r in self.probes("event")}

    def wait_connected(self, count: int = 1) -> None:
        wait_until(lambda: len(self.probes("connected")) >= count, STEP, f"NoneBot connected x{count}")

    def wait_events(self, ids: list[str]) -> None:
        try:
            wait_until(lambda: set(ids) <= self.seen(), STEP, f"NoneBot handling {len(ids)} events")
        except AssertionError as exc:
            tail = "\n".join(ln.text for ln in self.process.lines[-20:])
            raise AssertionError(f"{exc}; missing {sorted(set(ids) - self.seen())}\n{tail}") from None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def python() -> Path:
    return framework_python("nonebot-gateway", PACKAGES)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[SimulatorProcess, Watchdog, int]]:
    sim = SimulatorProcess(["--heartbeat-interval-ms", "2000"])
    port = closed_port()
    wd = Watchdog(
        tmp_path,
        sim,
        env={"QQ_HANDLER": "gateway", "QQW_GATEWAY_LISTEN": f"127.0.0.1:{port}"},
        gateway_heartbeat=1.0,
    )
    try:
        wd.connected()
        wd.wait_for("proxy.listening")
        yield sim, wd, port
        wd.finish()
    finally:
        wd.kill_all()
        sim.stop()


def send(sim: SimulatorProcess, kind: str, text: str) -> str:
    answer = sim.control("/_sim/events", {"type": kind, "d": {"content": text}})
    return str(answer["ids"][0])


def replies_to(sim: SimulatorProcess) -> dict[str, str]:
    return {r["body"].get("msg_id"): r["body"].get("content") for r in sim.state()["replies"]}


@pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)
def test_nonebot_logs_in_gets_events_replies_and_never_sees_upstream_trouble(
    python: Path, rig: tuple[SimulatorProcess, Watchdog, int], tmp_path: Path
) -> None:
    sim, wd, port = rig
    bot = NoneBot(python, tmp_path, port, sim.info)
    try:
        bot.wait_connected()
        ids = [send(sim, "C2C_MESSAGE_CREATE", "one"), send(sim, "GROUP_AT_MESSAGE_CREATE", "two")]
        bot.wait_events(ids)
        wait_until(lambda: set(ids) <= set(replies_to(sim)), STEP, "NoneBot's replies at the simulator")
        assert replies_to(sim)[ids[0]] == "echo one"
        # The 30-minute cycle, then an outage with events sent meanwhile (kept for the worker's Resume).
        mark = wd.process.mark()
        sim.control("/_sim/close", {"code": 4009})
        wd.connected(after=mark)
        sim.control("/_sim/outage", {"mode": "refuse", "seconds": 10})
        during = [send(sim, "C2C_MESSAGE_CREATE", f"during {i}") for i in range(3)]
        bot.wait_events(during)
        after = [send(sim, "GROUP_AT_MESSAGE_CREATE", "after")]
        bot.wait_events(after)
        assert len(bot.probes("connected")) == 1 and not bot.probes("disconnected")
        assert len(wd.process.records("proxy.client_connected")) == 1
        assert not wd.process.records("proxy.client_closed")
        handled = [r["msg_id"] for r in bot.probes("event")]
        assert len(handled) == len(set(handled)) == 6  # none lost, none twice
        assert_no_secret([wd.process.output(), bot.process.output()], [sim.info["app_secret"]])
    finally:
        bot.kill()


@pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)
def test_a_killed_nonebot_and_a_killed_worker_lose_nothing(
    python: Path, rig: tuple[SimulatorProcess, Watchdog, int], tmp_path: Path
) -> None:
    sim, wd, port = rig
    bot = NoneBot(python, tmp_path, port, sim.info)
    try:
        bot.wait_connected()
        first = [send(sim, "C2C_MESSAGE_CREATE", "first")]
        bot.wait_events(first)
        bot.kill()
        wd.wait_for("proxy.client_closed")
        missed = [send(sim, "C2C_MESSAGE_CREATE", f"missed {i}") for i in range(3)]
        bot = NoneBot(python, tmp_path, port, sim.info)  # restarted: it Identifies anew
        bot.wait_connected()
        bot.wait_events(missed)
        _, record = wd.wait_for("proxy.client_connected", where=lambda r: r["replayed"] >= 3)
        assert record["resumed"] is False
        # A worker SIGKILL: the link to NoneBot drops with it; the events sent while no worker runs,
        # and those it had not seen confirmed, reach NoneBot after its reconnect.
        mark = wd.process.mark()
        os.kill(wd.child_pid(), signal.SIGKILL)
        gap = [send(sim, "GROUP_AT_MESSAGE_CREATE", f"gap {i}") for i in range(2)]
        wd.connected(after=mark)
        assert wd.process.records("child.spawned")[-1]["resume"] is True
        bot.wait_events(gap)
        wait_until(lambda: set(gap) <= set(replies_to(sim)), STEP, "the replies to the gap's events")
        assert bot.probes("disconnected")  # this one NoneBot sees (and Identifies anew after op 9)
        assert set(missed) | set(gap) <= bot.seen()
    finally:
        bot.kill()
