"""The webhook handler against a real consumer nobody here wrote: NoneBot2 + nonebot-adapter-qq in
webhook mode (`"use_websocket": false`, `QQ_VERIFY_WEBHOOK=true`, route `/qq/webhook`), in a venv of
its own under build/, fed by the real worker process holding a real WebSocket to the simulator.

NoneBot answers 200 before its handler runs and does not dedupe, so "each event once, in order" here
is the worker's doing. On its first POST it fetches a token and calls `GET /users/@me`: its API base
and token URL point at the same simulator.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.venvs import INSTALL_TIMEOUT_S, framework_python
from tests.support import PYTHON, LineProcess, RunTimings, SimulatorProcess, assert_no_secret, wait_until

PACKAGES = (
    "nonebot-adapter-qq==1.7.3",
    "nonebot2[fastapi,httpx]==2.5.0",
    "fastapi==0.165.0",
    "uvicorn==0.54.0",
    "httpx==0.28.1",
)
BOT = Path(__file__).resolve().parent / "nonebot_webhook_bot.py"
T = 30  # one wait: NoneBot starts in a few seconds, more on a loaded machine
FAST = RunTimings.only(retry_initial=0.2, retry_max=1, connect_timeout=2)
WEBHOOK_RETRY = ["--webhook-retry-max", "1"]

SIMULATOR_FLAGS = ("--heartbeat-interval-ms", "500")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NoneBot:
    """One NoneBot2 bot directory (its .env, the probe file) that can be started and stopped."""

    def __init__(
        self, python: Path, directory: Path, sim: SimulatorProcess, secret: str | None = None
    ) -> None:
        self.python = python
        self.dir = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/qq/webhook"
        self.probe = directory / "events.jsonl"
        self.proc: LineProcess | None = None
        self.outputs: list[str] = []
        info = sim.info
        bots = [
            {
                "id": str(info["app_id"]),
                "token": "",
                "secret": secret if secret is not None else str(info["app_secret"]),
                "use_websocket": False,
                "intent": {"c2c_group_at_messages": True},
            }
        ]
        directory.mkdir(parents=True, exist_ok=True)
        (directory / ".env").write_text(
            "\n".join(
                [
                    "DRIVER=~fastapi+~httpx",
                    "HOST=127.0.0.1",
                    f"PORT={self.port}",
                    "LOG_LEVEL=INFO",
                    "QQ_VERIFY_WEBHOOK=true",
                    f"QQ_API_BASE={str(info['api_base']).rstrip('/')}/",
                    f"QQ_AUTH_BASE={info['token_url']}",
                    f"QQ_BOTS={json.dumps(bots)}",
                    "",
                ]
            ),
            encoding="utf-8",
        )

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QQ_", "QQW_", "VIRTUAL_ENV"))}
        env.update(PROBE_FILE=str(self.probe), PYTHONUNBUFFERED="1", ENVIRONMENT="prod")
        self.proc = LineProcess([str(self.python), str(BOT)], env=env, cwd=self.dir)
        wait_until(
            lambda: "Uvicorn running on" in self.proc.output() or self.proc.proc.poll() is not None,
            T,
            "NoneBot's server up",
        )
        assert self.proc.proc.poll() is None, self.proc.output()[-3000:]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(10)
            self.outputs.append(self.proc.output())
            self.proc = None

    def events(self) -> list[dict[str, Any]]:
        if not self.probe.exists():
            return []
        return [json.loads(line) for line in self.probe.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def nonebot_py() -> Path:
    return framework_python("nonebot-webhook", PACKAGES)  # build/nonebot-webhook-venv


@pytest.fixture
def bots(nonebot_py: Path, sim: SimulatorProcess, tmp_path: Path) -> Iterator[Callable[..., NoneBot]]:
    made: list[NoneBot] = []

    def make(secret: str | None = None) -> NoneBot:
        bot = NoneBot(nonebot_py, tmp_path / f"bot{len(made)}", sim, secret)
        made.append(bot)
        return bot

    yield make
    for bot in made:
        bot.stop()


@pytest.fixture
def worker(sim: SimulatorProcess) -> Iterator[Callable[..., LineProcess]]:
    started: list[LineProcess] = []

    def start(url: str, *flags: str) -> LineProcess:
        env = sim.env(QQ_HANDLER="webhook", QQW_WEBHOOK_URL=url)
        proc = LineProcess([PYTHON, "-m", "qqworker", *FAST.worker_flags(), *WEBHOOK_RETRY, *flags], env=env)
        started.append(proc)
        proc.wait_for("gateway.connected", T)
        return proc

    yield start
    for proc in started:
        proc.stop(10)
    for proc in started:
        for line in proc.lines:
            assert line.record is not None, f"not a JSON line: {line.text}"
    assert_no_secret([proc.output() for proc in started], [str(sim.info["app_secret"])])


def webhook_check(sim: SimulatorProcess, url: str) -> subprocess.CompletedProcess[str]:
    """`python -m qqworker webhook-check URL` with the bot's credentials."""
    return subprocess.run(
        [PYTHON, "-m", "qqworker", "webhook-check", url],
        env=sim.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def send(sim: SimulatorProcess, first: int, last: int) -> None:
    for n in range(first, last + 1):
        sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "d": {"content": f"m{n}"}})


def contents(bot: NoneBot) -> list[str]:
    return [e.get("content", "") for e in bot.events()]


def assert_each_once_in_order(bot: NoneBot, count: int) -> None:
    events = bot.events()
    assert [e["content"] for e in events] == [f"m{n}" for n in range(1, count + 1)], events
    ids = [e["event_id"] for e in events]
    assert all(ids) and len(set(ids)) == len(ids), ids  # the upstream envelope ids, each once


@pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)
def test_events_reach_a_nonebot_webhook_bot_each_once_in_order(
    bots: Callable[..., NoneBot], worker: Callable[..., LineProcess], sim: SimulatorProcess
) -> None:
    bot = bots()
    bot.start()
    check = webhook_check(sim, bot.url)  # NoneBot answers the platform's op 13 validation
    assert check.returncode == 0 and "PASS" in check.stdout, check.stdout + check.stderr
    proc = worker(bot.url)
    send(sim, 1, 5)
    wait_until(lambda: len(bot.events()) >= 5, T, "5 events in NoneBot's handler")
    proc.wait_for("webhook.delivered", T)
    assert_each_once_in_order(bot, 5)
    assert all(e["type"] == "C2C_MESSAGE_CREATE" for e in bot.events())
    assert not proc.records("webhook.failed") or all(
        r["status"] != 403 for r in proc.records("webhook.failed")
    )  # a failure here can only be NoneBot still starting up, never a rejected signature


@pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)
@pytest.mark.parametrize("down_s", [5.0, pytest.param(30.0, marks=pytest.mark.slow)])
def test_a_nonebot_bot_down_for_a_while_gets_every_event_once_in_order(
    bots: Callable[..., NoneBot], worker: Callable[..., LineProcess], sim: SimulatorProcess, down_s: float
) -> None:
    bot = bots()
    proc = worker(bot.url, "--webhook-backlog-warn", "3")
    down_since = time.monotonic()
    send(sim, 1, 10)
    _, failed = proc.wait_for("webhook.failed", T)
    assert failed["status"] is None and failed["pending"] >= 1 and failed["url"] == bot.url
    proc.wait_for("webhook.backlog", T)  # the oldest has waited over 3 s: its own warning
    send(sim, 11, 12)
    time.sleep(max(0.0, down_s - (time.monotonic() - down_since)))
    bot.start()
    wait_until(lambda: len(bot.events()) >= 12, T, "12 events in NoneBot's handler")
    proc.wait_for("webhook.recovered", T)
    assert_each_once_in_order(bot, 12)
    time.sleep(1.5)  # longer than the retry cap: nothing acknowledged comes again
    assert_each_once_in_order(bot, 12)
    assert not proc.records("gateway.closed")  # the gateway never suffered from the dead endpoint
    # About one attempt a second all along, but one failed line per 10 s; the recovery counts them all.
    failed = proc.records("webhook.failed")
    assert len(failed) <= down_s / 10 + 2, failed
    [recovered] = proc.records("webhook.recovered")
    assert recovered["failures"] >= down_s / 2, recovered


@pytest.mark.timeout(INSTALL_TIMEOUT_S + 120)
def test_a_wrong_secret_is_rejected_by_nonebot_with_403(
    bots: Callable[..., NoneBot], worker: Callable[..., LineProcess], sim: SimulatorProcess
) -> None:
    bot = bots(secret="not-the-bot-secret-at-all")
    bot.start()
    check = webhook_check(sim, bot.url)
    assert check.returncode == 1 and "does not verify" in check.stdout, check.stdout + check.stderr
    proc = worker(bot.url)
    send(sim, 1, 1)
    _, failed = proc.wait_for("webhook.failed", T, where=lambda r: r["status"] == 403)
    assert failed["pending"] == 1
    assert bot.events() == []  # the signature is really checked: nothing reached the handler
    # A stop waits for the unacknowledged event (a second SIGTERM ends the wait), then says it is
    # left unhandled: it stays below the handed seq, for the next start to replay.
    proc.signal(signal.SIGTERM)
    time.sleep(0.5)
    proc.signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    [stopped] = proc.records("worker.stopped")
    assert stopped["unhandled"] == 1, stopped
