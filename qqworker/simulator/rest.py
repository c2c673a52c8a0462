"""The platform's HTTP side: the token endpoint, gateway discovery, the bot profile, the reply endpoints."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from typing import Any

from aiohttp import web

from qqworker.gwserver import token_from_authorization
from qqworker.simulator.context import CONTEXT_KEY
from qqworker.simulator.events import now_timestamp
from qqworker.simulator.state import Reply
from qqworker.wire import error_response, json_response, token_issued, token_rejected, unauthorized

__all__ = ["add_routes", "read_json"]

BODY_TIMEOUT_S = 10.0
REPLY_KEYS_KEPT = 100_000

# Codes the platform uses (its OpenAPI documentation and field reports).
TOKEN_INTERNAL = 100002
MSG_ID_INVALID = 40034024
PROACTIVE_DENIED = 40034105
DUPLICATE_MSG_SEQ = 40054005
RETIRED_INTERNAL = 500  # a retired host's discovery: HTTP 500 (hermes-agent issue 73378, 2026-07-28)
RETIRED_NOT_FOUND = 404


def retired_answer(request: web.Request, status: int) -> web.Response | None:
    """With `--retired`: the answer of a host the platform has moved away from, else None."""
    ctx = request.app[CONTEXT_KEY]
    if not ctx.options.retired:
        return None
    ctx.state.counters["retired_answers"] += 1
    message = "internal error" if status >= 500 else "not found"
    code = RETIRED_INTERNAL if status >= 500 else RETIRED_NOT_FOUND
    return error_response(status, code, message)


_reply_numbers = itertools.count(1)
_RUN = secrets.token_hex(4)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON (bounded wait); ValueError when it is not JSON."""
    try:
        raw = await asyncio.wait_for(request.read(), BODY_TIMEOUT_S)
    except asyncio.TimeoutError as exc:
        raise ValueError("request body timed out") from exc
    return json.loads(raw or b"null")


def authorized(request: web.Request) -> bool:
    ctx = request.app[CONTEXT_KEY]
    return ctx.tokens.is_valid(token_from_authorization(request.headers.get("Authorization")))


async def access_token(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT_KEY]
    counters = ctx.state.counters
    counters["token_requests"] += 1
    retired = retired_answer(request, 404)
    if retired is not None:
        return retired
    if ctx.outages.active("token_error"):
        counters["token_errors"] += 1
        return json_response({"code": TOKEN_INTERNAL, "message": "internal error"}, status=500)
    try:
        body = await read_json(request)
    except ValueError:
        body = None
    options = ctx.options
    if (
        not isinstance(body, dict)
        or str(body.get("appId")) != options.app_id
        or body.get("clientSecret") != options.app_secret
    ):
        counters["token_rejected"] += 1
        return token_rejected()
    token, expires_in = ctx.tokens.issue()
    return token_issued(token, expires_in)


async def gateway(request: web.Request) -> web.Response:
    retired = retired_answer(request, 500)
    if retired is not None:
        return retired
    if not authorized(request):
        return unauthorized()
    return json_response({"url": request.app[CONTEXT_KEY].endpoints.gateway_url})


async def gateway_bot(request: web.Request) -> web.Response:
    retired = retired_answer(request, 500)
    if retired is not None:
        return retired
    if not authorized(request):
        return unauthorized()
    ctx = request.app[CONTEXT_KEY]
    total = ctx.options.session_start_total
    return json_response(
        {
            "url": ctx.endpoints.gateway_url,
            "shards": 1,
            "session_start_limit": {
                "total": total,
                "remaining": max(0, total - ctx.state.counters["ready"]),
                "reset_after": 14_400_000,
                "max_concurrency": 1,
            },
        }
    )


async def users_me(request: web.Request) -> web.Response:
    if not authorized(request):
        return unauthorized()
    options = request.app[CONTEXT_KEY].options
    return json_response(
        {
            "id": options.bot_id,
            "username": options.bot_name,
            "avatar": "",
            "union_openid": "",
            "union_user_account": "",
        }
    )


def message_handler(kind: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return await post_message(request, kind)

    return handler


async def post_message(request: web.Request, kind: str) -> web.Response:
    """Record a reply; reject it as the platform would when it is unauthorised, proactive or a repeat."""
    if not authorized(request):
        return unauthorized()
    ctx = request.app[CONTEXT_KEY]
    state = ctx.state
    target = request.match_info["target"]
    try:
        body = await read_json(request)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _rejected(request, kind, target, {}, MSG_ID_INVALID, "request body must be a JSON object")
    ref = body.get("msg_id") or body.get("event_id")
    if not isinstance(ref, str):
        return _rejected(
            request, kind, target, body, PROACTIVE_DENIED, "proactive messages are not allowed: give msg_id"
        )
    msg_seq = body.get("msg_seq") or 1
    if type(msg_seq) is not int or msg_seq < 1:
        return _rejected(request, kind, target, body, MSG_ID_INVALID, "msg_seq must be a positive integer")
    key = (ref, msg_seq)
    if key in state.reply_keys:
        return _rejected(request, kind, target, body, DUPLICATE_MSG_SEQ, "消息被去重，请检查请求msgseq")
    state.reply_keys[key] = None
    if len(state.reply_keys) > REPLY_KEYS_KEPT:
        del state.reply_keys[next(iter(state.reply_keys))]
    state.counters["replies_received"] += 1
    state.replies.append(Reply(request.method, request.path, kind, target, body, 200, None))
    number = next(_reply_numbers)
    ts = now_timestamp()
    if kind in ("c2c", "group"):
        return json_response({"id": f"ROBOT1.0_{_RUN}r{number:010x}", "timestamp": ts})
    options = ctx.options
    return json_response(
        {
            "id": f"08{_RUN}r{number:014x}",
            "channel_id": target,
            "guild_id": target if kind == "dms" else "",
            "content": body.get("content", ""),
            "timestamp": ts,
            "tts": False,
            "mention_everyone": False,
            "author": {"id": options.bot_id, "username": options.bot_name, "bot": True},
            "seq": number,
            "seq_in_channel": str(number),
        }
    )


def _rejected(
    request: web.Request, kind: str, target: str, body: dict[str, Any], code: int, message: str
) -> web.Response:
    state = request.app[CONTEXT_KEY].state
    state.counters["replies_rejected"] += 1
    state.replies.append(Reply(request.method, request.path, kind, target, body, 400, code))
    return error_response(400, code, message)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/app/getAppAccessToken", access_token)
    app.router.add_get("/gateway", gateway)
    app.router.add_get("/gateway/bot", gateway_bot)
    app.router.add_get("/users/@me", users_me)
    app.router.add_post("/v2/users/{target}/messages", message_handler("c2c"))
    app.router.add_post("/v2/groups/{target}/messages", message_handler("group"))
    app.router.add_post("/channels/{target}/messages", message_handler("channel"))
    app.router.add_post("/dms/{target}/messages", message_handler("dms"))
