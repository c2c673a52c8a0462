"""The REST calls the worker makes: gateway discovery and passive replies.

Every request has a total timeout, carries `Authorization: QQBot <token>` and `X-Union-Appid`, and
uses aiohttp's default TLS context (certificates always verified; plain http is allowed only for
loopback hosts, checked in settings). Errors name the platform's `X-Tps-trace-ID`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from qqworker.auth import TokenManager
from qqworker.contract.events import LogEvent
from qqworker.contract.settings import check_url

log = logging.getLogger("qqworker.rest")

TRACE_HEADER = "X-Tps-trace-ID"


class RestError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        trace_id: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message + (f" (trace id {trace_id})" if trace_id else ""))
        self.status = status
        self.code = code
        self.trace_id = trace_id
        self.cause = cause  # the network error behind it (host agility reads it)


@dataclass(frozen=True)
class ReplyRoute:
    """Where a passive reply to an event goes, and whether it is a v2 (C2C/group) message."""

    kind: str  # c2c, group, channel, dms
    path: str
    v2: bool


def reply_route(event_type: str, data: Any) -> ReplyRoute | None:
    """The reply endpoint for a message event, or None for events that cannot be answered."""
    if not isinstance(data, dict):
        return None
    author = data.get("author") if isinstance(data.get("author"), dict) else {}
    if event_type == "C2C_MESSAGE_CREATE" and isinstance(author.get("user_openid"), str):
        return ReplyRoute("c2c", f"/v2/users/{author['user_openid']}/messages", True)
    if event_type == "GROUP_AT_MESSAGE_CREATE" and isinstance(data.get("group_openid"), str):
        return ReplyRoute("group", f"/v2/groups/{data['group_openid']}/messages", True)
    if event_type in ("AT_MESSAGE_CREATE", "MESSAGE_CREATE") and isinstance(data.get("channel_id"), str):
        return ReplyRoute("channel", f"/channels/{data['channel_id']}/messages", False)
    if event_type == "DIRECT_MESSAGE_CREATE" and isinstance(data.get("guild_id"), str):
        return ReplyRoute("dms", f"/dms/{data['guild_id']}/messages", False)
    return None


def reply_body(route: ReplyRoute, content: str, msg_id: str, msg_seq: int) -> dict[str, Any]:
    if route.v2:
        return {"content": content, "msg_type": 0, "msg_id": msg_id, "msg_seq": msg_seq}
    return {"content": content, "msg_id": msg_id}


def error_from_body(status: int, body: Any, trace_id: str | None, what: str) -> RestError:
    code = message = None
    if isinstance(body, dict):
        code = body.get("code") if isinstance(body.get("code"), int) else None
        message = body.get("message")
        trace_id = trace_id or body.get("trace_id")
    detail = f" code {code}" if code is not None else ""
    text = f": {message}" if message else ""
    return RestError(f"{what}: HTTP {status}{detail}{text}", status=status, code=code, trace_id=trace_id)


class RestClient:
    def __init__(
        self, http: aiohttp.ClientSession, tokens: TokenManager, *, base: str, app_id: str, timeout_s: float
    ) -> None:
        self._http = http
        self._tokens = tokens
        self._base = base.rstrip("/")
        self._app_id = app_id
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._gateway_url: str | None = None

    async def request(self, method: str, path: str, what: str, *, json: Any = None) -> Any:
        """One authorized call; returns the decoded JSON body or raises RestError (401 drops the token)."""
        headers = {"Authorization": await self._tokens.authorization(), "X-Union-Appid": self._app_id}
        try:
            async with self._http.request(
                method, self._base + path, json=json, headers=headers, timeout=self._timeout
            ) as resp:
                trace_id = resp.headers.get(TRACE_HEADER)
                try:
                    body = await resp.json(content_type=None) if resp.status != 204 else None
                except ValueError:
                    body = None
                status = resp.status
        except asyncio.TimeoutError:
            raise RestError(f"{what}: timed out after {self._timeout.total}s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise RestError(f"{what}: {type(exc).__name__}: {exc}", cause=exc) from None
        # 201/202 may still carry an error body (the platform's REST conventions).
        failed = status >= 300 or (
            isinstance(body, dict) and isinstance(body.get("code"), int) and body["code"]
        )
        if failed:
            if status == 401:
                self._tokens.invalidate()
            raise error_from_body(status, body, trace_id, what)
        return body

    # Gateway discovery ---------------------------------------------------------------------

    @property
    def base(self) -> str:
        return self._base

    def use_base(self, base: str) -> None:
        """Host agility moved the API base: discovery and replies go there from now on."""
        self._base = base.rstrip("/")
        self._gateway_url = None

    @property
    def cached_gateway_url(self) -> str | None:
        return self._gateway_url

    def forget_gateway_url(self) -> None:
        """After a failed connect: the next attempt asks the platform again."""
        self._gateway_url = None

    async def gateway_url(self) -> str:
        """The cached gateway URL, or `GET /gateway/bot` (falling back to `/gateway`)."""
        if self._gateway_url is not None:
            return self._gateway_url
        try:
            body = await self.request("GET", "/gateway/bot", "gateway discovery (/gateway/bot)")
            url = _url_of(body)
        except RestError as exc:
            if exc.status is None or exc.status == 401:
                raise  # no answer at all, or a stale token: /gateway would fare no better
            log.info(
                "GET /gateway/bot failed (%s); trying /gateway",
                exc,
                extra={"event": LogEvent.DISCOVERY_FALLBACK.value, "error": str(exc)},
            )
            url = None
        if url is None:
            url = _url_of(await self.request("GET", "/gateway", "gateway discovery (/gateway)"))
        if url is None:
            raise RestError("gateway discovery: the answer has no url")
        check_url(url, "gateway url")
        self._gateway_url = url
        return url

    # Replies -------------------------------------------------------------------------------

    async def reply(self, event_type: str, data: Any, content: str, msg_seq: int) -> Any:
        """A passive reply to a message event (carrying its `msg_id` and a distinct `msg_seq`)."""
        route = reply_route(event_type, data)
        if route is None:
            raise RestError(f"cannot reply to a {event_type} event")
        msg_id = data.get("id")
        if not isinstance(msg_id, str):
            raise RestError(f"cannot reply: the {event_type} event has no message id")
        body = reply_body(route, content, msg_id, msg_seq)
        return await self.request("POST", route.path, f"reply to {event_type}", json=body)


def _url_of(body: Any) -> str | None:
    url = body.get("url") if isinstance(body, dict) else None
    return url if isinstance(url, str) and url else None
