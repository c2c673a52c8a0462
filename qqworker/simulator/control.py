"""The control API (/_sim/*): make events, close connections, start outages, read state. JSON in, JSON out."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from qqworker.gwserver import Close
from qqworker.simulator.context import CONTEXT_KEY
from qqworker.simulator.dispatch import check, dispatch
from qqworker.simulator.gateway import close_connections, reconnect_connections
from qqworker.simulator.rest import read_json
from qqworker.wire import json_response

__all__ = ["add_routes"]


class BadRequest(ValueError):
    pass


def _bad(message: str) -> web.Response:
    return json_response({"error": message}, status=400)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await read_json(request)
    except ValueError as exc:
        raise BadRequest(f"body must be JSON: {exc}") from exc
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _close_code(value: Any, name: str) -> int:
    # 1004-1006 and 1015 may never appear in a close frame (RFC 6455 §7.4.1): use "abort" for a 1006.
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (1000 <= value <= 1003 or 1007 <= value <= 1014 or 3000 <= value <= 4999)
    ):
        raise BadRequest(f"{name} must be a close code a server may send (1000-1003, 1007-1014, 3000-4999)")
    return value


async def events(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT_KEY]
    try:
        body = await _body(request)
        kind, d, count = body.get("type"), body.get("d"), body.get("count", 1)
        session = body.get("session_id")
        if session is not None and not isinstance(session, str):
            raise BadRequest("session_id must be a string")
        check(kind, d, count)
    except ValueError as exc:
        return _bad(str(exc))
    if body.get("wait", True) is False:
        ctx.spawn(dispatch(ctx, kind, d, count, session))
        return json_response({"type": kind, "count": count, "queued": True})
    return json_response(await dispatch(ctx, kind, d, count, session))


async def close(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT_KEY]
    try:
        body = await _body(request)
        code = _close_code(body.get("code", Close.SESSION_TIMED_OUT), "code")
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise BadRequest("reason must be a string")
    except ValueError as exc:
        return _bad(str(exc))
    closed = await close_connections(
        ctx.state, code, reason, abort=bool(body.get("abort")), drop_sessions=bool(body.get("drop_sessions"))
    )
    return json_response({"closed": closed})


async def reconnect(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT_KEY]
    try:
        body = await _body(request)
        code = body.get("close_code", Close.SESSION_TIMED_OUT)
        if code is not None:
            code = _close_code(code, "close_code")
    except ValueError as exc:
        return _bad(str(exc))
    return json_response({"reconnected": await reconnect_connections(ctx.state, code)})


async def outage(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT_KEY]
    try:
        body = await _body(request)
        mode, seconds = body.get("mode"), body.get("seconds")
        if seconds == 0 and isinstance(mode, str):
            await ctx.end_outage(mode)
        else:
            # Asked over the main port, `refuse` would drop the very connection that carries this request:
            # that one is spared, answered, then closed (Connection: close).
            ctx.start_outage(mode, seconds, spare=request.transport)
    except ValueError as exc:
        return _bad(str(exc))
    response = json_response({"outages": ctx.outages.describe()})
    if mode == "refuse" and seconds != 0:
        response.force_close()
    return response


async def revoke_tokens(request: web.Request) -> web.Response:
    return json_response({"revoked": request.app[CONTEXT_KEY].tokens.revoke_all()})


async def state(request: web.Request) -> web.Response:
    return json_response(request.app[CONTEXT_KEY].snapshot())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/_sim/events", events)
    app.router.add_post("/_sim/close", close)
    app.router.add_post("/_sim/reconnect", reconnect)
    app.router.add_post("/_sim/outage", outage)
    app.router.add_post("/_sim/revoke_tokens", revoke_tokens)
    app.router.add_get("/_sim/state", state)
