"""The aiohttp application key under which handlers find their Simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from qqworker.simulator.server import Simulator

SIM_KEY: web.AppKey[Simulator] = web.AppKey("qqworker.simulator")
