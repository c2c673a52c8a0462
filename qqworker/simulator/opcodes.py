"""The platform's gateway numbers as the simulator speaks them.

Kept apart from the worker's tables on purpose: a simulator that imports the client's idea of the
protocol would share its mistakes instead of catching them.
"""

from __future__ import annotations

from enum import IntEnum


class Op(IntEnum):
    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    RESUME = 6
    RECONNECT = 7
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


class Close(IntEnum):
    GOING_AWAY = 1001
    UNKNOWN_ERROR = 4000
    INVALID_OPCODE = 4001
    INVALID_PAYLOAD = 4002
    NOT_AUTHENTICATED = 4003
    AUTHENTICATION_FAILED = 4004
    ALREADY_AUTHENTICATED = 4005
    INVALID_SESSION = 4006
    INVALID_SEQ = 4007
    RATE_LIMITED = 4008
    SESSION_TIMED_OUT = 4009
    INVALID_SHARD = 4010
    INVALID_INTENT = 4013
    INTENT_NOT_PERMITTED = 4014
    CREATE_SESSION_ERROR = 4903
    INTERNAL_ERROR = 4901


CLOSE_REASONS: dict[int, str] = {
    1001: "going away",
    4000: "unknown error",
    4001: "invalid opcode",
    4002: "invalid payload",
    4003: "not authenticated",
    4004: "authentication fail",
    4005: "already authenticated",
    4006: "invalid session",
    4007: "invalid seq",
    4008: "rate limited",
    4009: "session timed out",
    4010: "invalid shard",
    4011: "sharding required",
    4012: "invalid version",
    4013: "invalid intent",
    4014: "disallowed intent",
    4901: "internal error",
    4902: "reset by resume",
    4903: "create session error",
    4914: "bot offline, sandbox only",
    4915: "bot banned",
}


class Intent(IntEnum):
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    DIRECT_MESSAGE = 1 << 12
    GROUP_AND_C2C_EVENT = 1 << 25
    INTERACTION = 1 << 26
    MESSAGE_AUDIT = 1 << 27
    FORUMS_EVENT = 1 << 28
    AUDIO_ACTION = 1 << 29
    PUBLIC_GUILD_MESSAGES = 1 << 30


ALL_INTENTS = 0
for _intent in Intent:
    ALL_INTENTS |= _intent
del _intent


def close_reason(code: int) -> str:
    return CLOSE_REASONS.get(code, "closed by the simulator")
