"""Bytes as the platform writes them: REST bodies exactly as it sends them, and gateway text frames.

Shared by the two servers that play the platform, the simulator and the local gateway.
"""

from __future__ import annotations

import json
import struct
import uuid
from typing import Any

from aiohttp import web

from qqworker.gwserver import Op

__all__ = [
    "AUTH_MISSING",
    "HEARTBEAT_ACK_FRAME",
    "INVALID_SESSION_FRAME",
    "JSON_TYPE",
    "RECONNECT_FRAME",
    "TOKEN_INVALID",
    "dumps",
    "error_response",
    "frame_json",
    "hello_frame",
    "json_response",
    "text_frame",
    "token_issued",
    "token_rejected",
    "unauthorized",
]

# Exactly this, never with "; charset=...": qq-botpy only decodes a body whose Content-Type equals it.
JSON_TYPE = "application/json"
# The platform's codes for a token request with wrong credentials, and for a call without a valid token.
TOKEN_INVALID = 100016
AUTH_MISSING = 11244

_PACK_SHORT = struct.Struct("!BB").pack
_PACK_MEDIUM = struct.Struct("!BBH").pack
_PACK_LONG = struct.Struct("!BBQ").pack


def dumps(obj: Any) -> str:
    """Compact JSON, UTF-8 as is; a lone surrogate (which UTF-8 cannot carry) is sent as its escape."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return json.dumps(obj, separators=(",", ":"))
    return text


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=dumps(obj).encode(),
        status=status,
        headers={"Content-Type": JSON_TYPE, "X-Tps-trace-ID": uuid.uuid4().hex},
    )


def error_response(status: int, code: int, message: str) -> web.Response:
    """The platform's REST error body."""
    trace = uuid.uuid4().hex
    body = {"message": message, "code": code, "err_code": code, "trace_id": trace}
    return web.Response(
        body=dumps(body).encode(),
        status=status,
        headers={"Content-Type": JSON_TYPE, "X-Tps-trace-ID": trace},
    )


def unauthorized() -> web.Response:
    """A REST call without a valid token."""
    return error_response(401, AUTH_MISSING, "token not exist or expire")


def token_rejected() -> web.Response:
    """The token endpoint's answer to wrong credentials: HTTP 200 with a code, as the platform answers."""
    return json_response({"code": TOKEN_INVALID, "message": "invalid appid or secret"})


def token_issued(token: str, expires_in: int) -> web.Response:
    """The token endpoint's answer, `expires_in` a string as the platform sends it."""
    return json_response({"access_token": token, "expires_in": str(expires_in)})


def text_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed, final WebSocket text frame (server to client, RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        return _PACK_SHORT(0x81, n) + payload
    if n < 65536:
        return _PACK_MEDIUM(0x81, 126, n) + payload
    return _PACK_LONG(0x81, 127, n) + payload


def frame_json(obj: Any) -> bytes:
    return text_frame(dumps(obj).encode())


def hello_frame(heartbeat_interval_ms: int) -> bytes:
    return frame_json({"op": Op.HELLO, "d": {"heartbeat_interval": heartbeat_interval_ms}})


HEARTBEAT_ACK_FRAME = frame_json({"op": Op.HEARTBEAT_ACK})
RECONNECT_FRAME = frame_json({"op": Op.RECONNECT})
INVALID_SESSION_FRAME = frame_json({"op": Op.INVALID_SESSION, "d": False})
