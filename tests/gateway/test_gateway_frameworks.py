"""Real QQ bot frameworks nobody here wrote, unchanged and configured as their users do, behind the
real watchdog + worker in `QQ_HANDLER=gateway` mode, with the simulator playing the platform: NoneBot2
+ nonebot-adapter-qq (`QQ_API_BASE`/`QQ_AUTH_BASE`), qq-botpy (patched hosts) and qqbotsdk-py
(`BASE_URL`). Each runs in a venv of its own under build/ with pinned versions (tests/gateway/bots.py);
everything is a real process over real loopback sockets."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.bots import FRAMEWORKS, STEP, BotProcess, Framework
from tests.gateway.venvs import INSTALL_TIMEOUT_S
from tests.supervised import LIFECYCLE, Supervised
from tests.support import SimulatorProcess, assert_no_secret, closed_port, wait_until, watchdog_status

TIMEOUT = INSTALL_TIMEOUT_S + 120
# The local Hello interval: qqbotsdk-py drops a link whose next frame is over 1.1x it late, so the
# 10% margin has to cover a loaded CI machine's scheduling jitter.
GATEWAY_HEARTBEAT_S = 4.0


@dataclass
class Rig:
    framework: Framework
    python: Path
    sim: SimulatorProcess
    wd: Supervised
    base: str
    workdir: Path

    def bot(self) -> BotProcess:
        return BotProcess(self.framework, self.python, self.workdir, self.base, self.sim.info)

    def clients_connected(self) -> list[dict[str, Any]]:
        return self.wd.process.records("proxy.client_connected")

    def wait_clients(self, count: int) -> None:
        wait_until(lambda: len(self.clients_connected()) >= count, STEP, f"{count} client login(s)")

    def send(self, kind: str, text: str) -> str:
        answer = self.sim.control("/_sim/events", {"type": kind, "d": {"content": text}})
        return str(answer["ids"][0])

    def replies(self) -> dict[str, str]:
        return {r["body"].get("msg_id"): r["body"].get("content") for r in self.sim.state()["replies"]}

    def wait_replies(self, ids: list[str]) -> None:
        wait_until(lambda: set(ids) <= set(self.replies()), STEP, "the bot's replies at the simulator")


@pytest.fixture(params=FRAMEWORKS, ids=[f.name for f in FRAMEWORKS])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    framework: Framework = request.param
    python = framework.python()
    sim = SimulatorProcess("--heartbeat-interval-ms", "2000")
    port = closed_port()
    wd = Supervised(
        sim,
        tmp_path,
        timings=LIFECYCLE,
        env={"QQ_HANDLER": "gateway", "QQW_GATEWAY_LISTEN": f"127.0.0.1:{port}"},
        gateway_heartbeat=GATEWAY_HEARTBEAT_S,
    )
    workdir = tmp_path / framework.name
    workdir.mkdir()
    try:
        wd.connected()
        wd.wait_for("proxy.listening")
        yield Rig(framework, python, sim, wd, f"http://127.0.0.1:{port}", workdir)
        wd.finish()
    finally:
        wd.close()
        sim.stop()


@pytest.mark.timeout(TIMEOUT)
def test_login_events_replies_and_upstream_trouble_never_reaches_the_framework(rig: Rig) -> None:
    bot = rig.bot()
    try:
        rig.wait_clients(1)
        ids = [rig.send("C2C_MESSAGE_CREATE", "one"), rig.send("GROUP_AT_MESSAGE_CREATE", "two")]
        bot.wait_events(ids)
        rig.wait_replies(ids)
        assert rig.replies()[ids[0]] == "echo one"
        # The 30-minute cycle, then a 10 s outage with events sent meanwhile (the platform keeps them
        # for the worker's Resume).
        mark = rig.wd.process.mark()
        rig.sim.control("/_sim/close", {"code": 4009})
        rig.wd.connected(after=mark)
        rig.sim.control("/_sim/outage", {"mode": "refuse", "seconds": 10})
        during = [rig.send("C2C_MESSAGE_CREATE", f"during {i}") for i in range(3)]
        bot.wait_events(during)
        after = [rig.send("GROUP_AT_MESSAGE_CREATE", "after")]
        bot.wait_events(after)
        rig.wait_replies(during + after)
        # One login, never a disconnect: the framework saw none of it.
        assert len(rig.clients_connected()) == 1
        assert not rig.wd.process.records("proxy.client_closed")
        assert not bot.probes("disconnected")  # NoneBot's own hook (the others have none)
        handled = bot.handled()
        assert len(handled) == len(set(handled)) == 6, handled  # none lost, none twice

        # `watchdog status` lists the connected framework and the buffer (the file is rewritten twice
        # a second here).
        def status() -> str:
            return watchdog_status(rig.wd.status_file).stdout

        wanted = "local gateway    1 client(s), 6 event(s) buffered, local seq 6"
        wait_until(lambda: wanted in status(), STEP, f"{wanted!r} in watchdog status")
        assert_no_secret([rig.wd.process.output(), bot.process.output()], [rig.sim.info["app_secret"]])
    finally:
        bot.kill()


@pytest.mark.timeout(TIMEOUT)
def test_a_killed_framework_and_a_killed_worker_lose_nothing(rig: Rig) -> None:
    bot = rig.bot()
    try:
        rig.wait_clients(1)
        first = [rig.send("C2C_MESSAGE_CREATE", "first")]
        bot.wait_events(first)
        bot.kill()
        rig.wd.wait_for("proxy.client_closed")
        missed = [rig.send("C2C_MESSAGE_CREATE", f"missed {i}") for i in range(3)]
        bot = rig.bot()  # restarted: frameworks Identify anew after a restart
        rig.wait_clients(2)
        bot.wait_events(missed)
        assert rig.clients_connected()[-1]["replayed"] >= 3
        # A worker SIGKILL: the framework's link drops with it (the listening socket is the worker's).
        # It reconnects and Resumes its session with the next worker, which takes the session over
        # and sends the events sent while no worker ran, and any it had not confirmed.
        mark = rig.wd.process.mark()
        logins = len(rig.clients_connected())
        os.kill(rig.wd.child_pid(), signal.SIGKILL)
        gap = [rig.send("GROUP_AT_MESSAGE_CREATE", f"gap {i}") for i in range(2)]
        rig.wd.connected(after=mark)
        assert rig.wd.process.records("child.spawned")[-1]["resume"] is True
        bot.wait_events(gap)
        rig.wait_replies(gap)
        assert set(missed) | set(gap) <= set(bot.handled())
        after_respawn = rig.clients_connected()[logins:]
        assert [r["resumed"] for r in after_respawn] == [True], after_respawn  # one Resume, no op 9
    finally:
        bot.kill()
