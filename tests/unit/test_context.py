"""The simulator's handler context: its addresses, its startup line, and the outage it starts."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from qqworker.simulator.context import Endpoints, SimContext
from qqworker.simulator.events import EventFactory, Identities
from qqworker.simulator.options import SimOptions
from qqworker.simulator.outage import Outages
from qqworker.simulator.state import SimState
from qqworker.simulator.tokens import TokenStore


def test_endpoints_of_an_ipv4_host() -> None:
    e = Endpoints("127.0.0.1", 8080, 8081)
    assert e.api_base == "http://127.0.0.1:8080"
    assert e.token_url == "http://127.0.0.1:8080/app/getAppAccessToken"
    assert e.gateway_url == "ws://127.0.0.1:8080/websocket/"
    assert e.control_url == "http://127.0.0.1:8081"


def test_endpoints_of_an_ipv6_host_are_bracketed() -> None:
    e = Endpoints("::1", 9000, None)
    assert e.api_base == "http://[::1]:9000"
    assert e.gateway_url == "ws://[::1]:9000/websocket/"


@pytest.mark.parametrize("control_port", [None, 0])
def test_without_a_control_port_control_goes_to_the_main_port(control_port: int | None) -> None:
    assert Endpoints("127.0.0.1", 9000, control_port).control_url == "http://127.0.0.1:9000"


class Recorder:
    """Outage callbacks that record what the context made them do, and what it had spared meanwhile."""

    def __init__(self) -> None:
        self.started: list[tuple[str, Any]] = []
        self.ended: list[str] = []
        self.ctx: SimContext | None = None
        self.tasks: list[asyncio.Task[Any]] = []

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.append(task)
        return task

    def on_start(self, mode: str) -> None:
        assert self.ctx is not None
        self.started.append((mode, self.ctx.spare))

    async def on_end(self, mode: str) -> None:
        self.ended.append(mode)


def make_context(rec: Recorder) -> SimContext:
    options = SimOptions(app_id="42", app_secret="s3cret")
    ctx = SimContext(
        options,
        SimState(options.replay_limit, options.max_replies_kept),
        TokenStore(options.token_ttl_s),
        Outages(rec.spawn, rec.on_start, rec.on_end),
        EventFactory(Identities(options.bot_id, options.bot_name)),
        Endpoints("127.0.0.1", 8080, 8081),
        rec.spawn,
    )
    rec.ctx = ctx
    return ctx


def test_info_is_the_startup_line() -> None:
    ctx = make_context(Recorder())
    assert ctx.info() == {
        "api_base": "http://127.0.0.1:8080",
        "token_url": "http://127.0.0.1:8080/app/getAppAccessToken",
        "gateway_url": "ws://127.0.0.1:8080/websocket/",
        "control_url": "http://127.0.0.1:8081",
        "app_id": "42",
        "app_secret": "s3cret",
    }


async def test_the_spare_connection_is_known_only_while_the_outage_starts() -> None:
    rec = Recorder()
    ctx = make_context(rec)
    spare = object()
    ctx.start_outage("refuse", 30, spare=spare)  # type: ignore[arg-type]
    assert rec.started == [("refuse", spare)]
    assert ctx.spare is None
    with pytest.raises(ValueError):
        ctx.start_outage("no_such_mode", 1, spare=spare)  # type: ignore[arg-type]
    assert ctx.spare is None
    await ctx.end_outage()
    assert rec.ended == ["refuse"]


async def test_end_outage_ends_one_mode_or_all() -> None:
    rec = Recorder()
    ctx = make_context(rec)
    ctx.start_outage("no_ack", 30)
    ctx.start_outage("no_hello", 30)
    await ctx.end_outage("no_ack")
    assert rec.ended == ["no_ack"] and ctx.outages.active("no_hello")
    await ctx.end_outage()
    assert rec.ended == ["no_ack", "no_hello"] and not ctx.outages.active("no_hello")


async def test_the_snapshot_adds_outages_tokens_and_addresses_but_never_the_secret() -> None:
    rec = Recorder()
    ctx = make_context(rec)
    ctx.tokens.issue()
    ctx.start_outage("no_ack", 30)
    snap = ctx.snapshot()
    await ctx.end_outage()
    assert set(snap["outages"]) == {"no_ack"}
    assert snap["tokens_issued"] == 1
    assert snap["gateway_url"] == "ws://127.0.0.1:8080/websocket/" and snap["app_id"] == "42"
    assert "app_secret" not in snap and "s3cret" not in repr(snap)
