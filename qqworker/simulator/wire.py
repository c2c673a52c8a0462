"""Bytes on the wire: JSON bodies exactly as the platform sends them, and WebSocket text frames."""

from __future__ import annotations

import json
import struct
import uuid
from typing import Any

from aiohttp import web

# Exactly this, never with "; charset=...": qq-botpy only decodes a body whose Content-Type equals it.
JSON_TYPE = "application/json"

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


def client_frame(data: str) -> tuple[int, Any, dict[str, Any]] | None:
    """A client's gateway frame as (op, d, the whole frame); None when it is not a JSON object with an
    integer `op` (the gateway closes with 4002, invalid payload)."""
    try:
        frame = json.loads(data)
    except ValueError:
        return None
    op = frame.get("op") if isinstance(frame, dict) else None
    if type(op) is not int:
        return None
    return op, frame.get("d"), frame


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
