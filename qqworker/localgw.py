"""`QQ_HANDLER=gateway`: the worker holds the one upstream session and serves frameworks, on
`--gateway-listen` (loopback unless `--gateway-allow-remote`), a local QQ-compatible platform.

- the token endpoint: the bot's own appId/clientSecret get a LOCAL token (localtokens.py: never the
  real one, still valid after a worker respawn; wrong credentials get HTTP 200 + code, as the
  platform answers); REST and the gateway accept local tokens (and the platform's current token,
  for frameworks whose token URL cannot be changed: `token_valid`);
- `GET /gateway` and `/gateway/bot` answer the local `ws://HOST:PORT/websocket`; `GET /users/@me`
  the bot's profile (fetched upstream once, then kept: a READY needs it during outages too);
- every other call is forwarded to the worker's current API base with the real token: status, body
  and Content-Type as they came, never retried; when upstream cannot be reached, a 502 carrying
  `X-Qqw-Proxy: error` (the proxy made it, not the platform);
- the WebSocket gateway (localws.py) over the shared stream (gwbuffer.py), fed by `handle()` in
  order as the worker's handler.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
from typing import Any

import aiohttp
from aiohttp import web

from qqworker.auth import TokenError, TokenManager
from qqworker.contract.events import LogEvent
from qqworker.contract.logs import log_event
from qqworker.contract.settings import ConfigError, Settings, parse_listen
from qqworker.gwbuffer import StreamBuffer
from qqworker.gwserver import token_from_authorization
from qqworker.localtokens import LocalTokens, SessionIds
from qqworker.localws import ClientConnection, serve_client
from qqworker.protocol import Dispatch, ResumePoint
from qqworker.rest import TRACE_HEADER, RestClient, RestError
from qqworker.wire import error_response, json_response, token_issued, token_rejected, unauthorized

log = logging.getLogger("qqworker.localgw")

FORWARD_TIMEOUT_S = 30.0
BODY_TIMEOUT_S = 10.0
PROFILE_TIMEOUT_S = 5.0
BIND_ATTEMPTS = 50  # a predecessor's socket may linger a moment after it died
BIND_PAUSE_S = 0.1
PROXY_HEADER = "X-Qqw-Proxy"
# Request headers not passed on: the connection's own, and the client's local credentials.
DROPPED_REQUEST = frozenset(
    {
        "host",
        "authorization",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",  # aiohttp asks for what it can decode, and hands the body on decoded
    }
)
PASSED_RESPONSE = ("Content-Type", TRACE_HEADER, "Retry-After")


class LocalGateway:
    """The local platform the frameworks connect to: its listener and aiohttp application, the shared
    stream (`buffer`) fed by `handle()`, the local tokens and session ids, the connected clients, and
    the REST proxy to the worker's current API base."""

    def __init__(
        self,
        settings: Settings,
        *,
        http: aiohttp.ClientSession,
        tokens: TokenManager,
        rest: RestClient,
        session: ResumePoint,
    ) -> None:
        self.settings = settings
        self.host, self.port = parse_listen(settings.gateway_listen, "gateway_listen")
        self.http = http
        self.upstream_tokens = tokens
        self.rest = rest
        self.upstream = session  # the worker's upstream session (its id tags buffered events)
        self.heartbeat_ms = int(settings.gateway_heartbeat * 1000)
        self.buffer = StreamBuffer(settings.gateway_buffer, settings.gateway_buffer_age)
        self.tokens = LocalTokens(settings.app_secret)  # valid on the next worker too
        self.sessions = SessionIds(settings.app_secret)
        self.connections: set[ClientConnection] = set()
        self._attached: set[ClientConnection] = set()
        self.lagged = 0  # times a client's unread output made it catch up from the buffer
        self._user: dict[str, Any] | None = None
        self._user_lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None

    # Addresses -------------------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def gateway_url(self) -> str:
        return f"ws{self.api_base[4:]}/websocket"

    def gateway_url_for(self, request: web.Request) -> str:
        """The gateway URL as this client reached us (its Host header): on a wildcard address such as
        0.0.0.0 (with --gateway-allow-remote) the listen address is no URL a client can use."""
        host = request.headers.get("Host")
        return f"ws://{host}/websocket" if host else self.gateway_url

    # Lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listens (retrying a port still held, bounded); ConfigError when it cannot."""
        app = web.Application(client_max_size=32 << 20)
        app.router.add_post("/app/getAppAccessToken", self._token)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/bot", self._gateway_bot)
        app.router.add_get("/users/@me", self._users_me)
        app.router.add_get("/websocket", self._websocket)
        app.router.add_get("/websocket/", self._websocket)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = await self._bind()
        self.port = sock.getsockname()[1]
        self._server = await asyncio.get_running_loop().create_server(self._runner.server, sock=sock)
        log_event(
            log,
            LogEvent.PROXY_LISTENING,
            f"Local gateway for frameworks on {self.api_base} (gateway {self.gateway_url})",
            listen=f"{self.host}:{self.port}",
            api_base=self.api_base,
            gateway_url=self.gateway_url,
        )

    async def _bind(self) -> socket.socket:
        error: OSError | None = None
        for _ in range(BIND_ATTEMPTS):
            try:
                family, _, _, _, addr = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0]
                sock = socket.create_server(addr[:2], family=family, backlog=128)
                sock.setblocking(False)
                return sock
            except OSError as exc:
                error = exc
                await asyncio.sleep(BIND_PAUSE_S)
        raise ConfigError(f"gateway_listen: cannot listen on {self.host}:{self.port}: {error}")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.connections):
            conn.abort("the worker is stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # The stream ------------------------------------------------------------------------------

    async def handle(self, event: Dispatch) -> None:
        """The worker's handler: buffered and sent to every attached client. Never awaits before
        the buffer has it, so events enter the stream in the order the dispatcher took them."""
        entry = self.buffer.add(event.type, event.id, event.data, self.upstream.session_id, event.seq)
        for conn in list(self._attached):
            conn.send_entries([entry])

    def attached(self, conn: ClientConnection) -> None:
        self._attached.add(conn)

    def detached(self, conn: ClientConnection) -> None:
        self._attached.discard(conn)

    def floor(self, upstream_session_id: str | None) -> int | None:
        return self.buffer.upstream_floor(upstream_session_id)

    def beat_fields(self) -> dict[str, Any]:
        self.buffer.expire()
        clients = [[m.name, m.sent, m.confirmed] for m in self.buffer.clients[:4]]
        return {
            "gateway_clients": len(self._attached),
            "gateway_buffered": self.buffer.depth,
            "gateway_seq": self.buffer.last_seq,
            "gateway_evicted": self.buffer.evicted,
            "gateway_client_marks": clients,
        }

    async def bot_user(self) -> dict[str, Any] | None:
        """The bot's `user` for READY: `GET /users/@me` upstream once, then kept."""
        if self._user is not None:
            return self._user
        async with self._user_lock:
            if self._user is None:
                try:
                    body = await asyncio.wait_for(
                        self.rest.request("GET", "/users/@me", "bot profile (/users/@me)"), PROFILE_TIMEOUT_S
                    )
                except (RestError, TokenError, asyncio.TimeoutError) as exc:
                    log.warning(
                        "local gateway: the bot's profile is not available yet: %s",
                        exc,
                        extra={"event": LogEvent.PROXY_PROFILE_UNAVAILABLE.value, "error": str(exc)},
                    )
                    return None  # the Identify is closed 4901 (logged with this reason)
                if isinstance(body, dict) and body.get("id") is not None:
                    self._user = {
                        "id": str(body["id"]),
                        "username": body.get("username", ""),
                        "bot": True,
                        "status": 1,
                    }
        return self._user

    # REST ------------------------------------------------------------------------------------

    def token_valid(self, token: str | None) -> bool:
        """A local token, or the platform's own current token: Koishi's adapter-qq fetches its token
        from bots.qq.com whatever its baseUrl says, and the platform hands every asker the same one
        (its holder can reach the platform anyway; the proxy never hands the real token out)."""
        if self.tokens.is_valid(token):
            return True
        real = self.upstream_tokens.current
        return token is not None and real is not None and hmac.compare_digest(token, real.value)

    def _authorized(self, request: web.Request) -> bool:
        return self.token_valid(token_from_authorization(request.headers.get("Authorization")))

    async def _token(self, request: web.Request) -> web.Response:
        try:
            body = await asyncio.wait_for(request.json(loads=_loads), BODY_TIMEOUT_S)
        except (ValueError, asyncio.TimeoutError):
            body = None
        s = self.settings
        app_id = str(body.get("appId")) if isinstance(body, dict) else ""
        secret = body.get("clientSecret") if isinstance(body, dict) else None
        if not (
            hmac.compare_digest(app_id.encode(), s.app_id.encode())
            and isinstance(secret, str)
            and hmac.compare_digest(secret.encode(), s.app_secret.encode())
        ):
            return token_rejected()
        token, expires_in = self.tokens.issue()
        return token_issued(token, expires_in)

    async def _gateway(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return unauthorized()
        return json_response({"url": self.gateway_url_for(request)})

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return unauthorized()
        limit = {"total": 1000, "remaining": 1000, "reset_after": 14_400_000, "max_concurrency": 1}
        return json_response(
            {"url": self.gateway_url_for(request), "shards": 1, "session_start_limit": limit}
        )

    async def _users_me(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return unauthorized()
        user = await self.bot_user()
        if user is None:
            return await self._forward(request)
        return json_response({"id": user["id"], "username": user["username"], "avatar": ""})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        return await serve_client(self, request)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return unauthorized()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in DROPPED_REQUEST}
        try:
            body = await asyncio.wait_for(request.read(), BODY_TIMEOUT_S)
            headers["Authorization"] = await self.upstream_tokens.authorization(FORWARD_TIMEOUT_S)
            headers["X-Union-Appid"] = self.settings.app_id
            url = self.rest.base + request.rel_url.raw_path_qs
            timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
            async with self.http.request(
                request.method,
                url,
                data=body or None,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                data = await resp.read()
                out = {name: resp.headers[name] for name in PASSED_RESPONSE if name in resp.headers}
                if resp.status == 401:
                    self.upstream_tokens.invalidate()
                return web.Response(status=resp.status, body=data, headers=out)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, TokenError) as exc:
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            response = error_response(502, 502, f"qqwatchdog gateway: upstream not reachable: {text}")
            response.headers[PROXY_HEADER] = "error"
            return response


def _loads(text: str) -> Any:
    import json

    return json.loads(text or "null")
