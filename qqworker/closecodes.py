"""The gateway close-code policy: ONE table, code → meaning and what to do next.

Sources: the platform's WebSocket error table (tencent-connect/bot-docs,
docs/develop/api-v2/dev-prepare/error-trace/websocket.md: "4009 → resume; 4914, 4915 → never
reconnect; anything else → identify", with 4001/4002 and 4010–4014 marked neither resumable nor
identifiable), refined by what the SDKs and field reports show (qq-botpy, botgo, and the 30-minute
op 7 + 4009 cycle); the README's close-code table ("The worker") is rendered from this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class CloseAction(str, Enum):
    RESUME = "resume"  # keep the session, reconnect and Resume
    IDENTIFY = "identify"  # drop the session, reconnect and Identify anew
    BACKOFF = "backoff"  # rate limited: wait at least the retry cap, then Resume
    FATAL = "fatal"  # permanent: reconnecting cannot help; exit 78

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CloseRule:
    code: int | None
    meaning: str
    action: CloseAction
    refresh_token: bool = False  # fetch a new access token before the next attempt


def _rule(code: int, meaning: str, action: CloseAction, **kw: bool) -> tuple[int, CloseRule]:
    return code, CloseRule(code, meaning, action, **kw)


CLOSE_RULES: dict[int, CloseRule] = dict(
    [
        _rule(1000, "normal closure", CloseAction.RESUME),
        _rule(1001, "going away", CloseAction.RESUME),
        _rule(1006, "dropped without a close frame", CloseAction.RESUME),
        _rule(1011, "internal error or keepalive timeout", CloseAction.RESUME),
        _rule(1012, "service restart", CloseAction.RESUME),
        _rule(4000, "unknown error", CloseAction.RESUME),
        _rule(4001, "invalid opcode (a client bug)", CloseAction.FATAL),
        _rule(4002, "invalid payload (a client bug)", CloseAction.FATAL),
        _rule(4003, "not authenticated", CloseAction.IDENTIFY),
        _rule(4004, "authentication failed: stale or wrong token", CloseAction.IDENTIFY, refresh_token=True),
        _rule(4005, "already authenticated", CloseAction.IDENTIFY),
        _rule(4006, "session id invalid, cannot resume", CloseAction.IDENTIFY),
        _rule(4007, "invalid seq on resume", CloseAction.IDENTIFY),
        _rule(4008, "sending payloads too fast (rate limited)", CloseAction.BACKOFF),
        _rule(4009, "connection expired (the 30-minute cycle)", CloseAction.RESUME),
        _rule(4010, "invalid shard", CloseAction.FATAL),
        _rule(4011, "too many guilds: sharding required", CloseAction.FATAL),
        _rule(4012, "invalid gateway version", CloseAction.FATAL),
        _rule(4013, "invalid intent", CloseAction.FATAL),
        _rule(4014, "intent not permitted for this bot", CloseAction.FATAL),
        *(_rule(code, "platform internal error", CloseAction.IDENTIFY) for code in range(4900, 4914)),
        _rule(4914, "bot delisted: only the sandbox may connect", CloseAction.FATAL),
        _rule(4915, "bot banned", CloseAction.FATAL),
    ]
)
CLOSE_RULES[4902] = CloseRule(4902, "platform internal error: reset by resume", CloseAction.IDENTIFY)
CLOSE_RULES[4903] = CloseRule(4903, "platform internal error: create session error", CloseAction.IDENTIFY)

NO_CLOSE_FRAME = CloseRule(None, "connection lost without a close code", CloseAction.RESUME)


def close_rule(code: int | None) -> CloseRule:
    """The rule for a close code; unknown codes follow the platform's default ("identify")."""
    if code is None:
        return NO_CLOSE_FRAME
    rule = CLOSE_RULES.get(code)
    if rule is not None:
        return rule
    if 1000 <= code < 4000:
        return CloseRule(code, "transport-level close", CloseAction.RESUME)
    return CloseRule(code, "undocumented close code", CloseAction.IDENTIFY)
