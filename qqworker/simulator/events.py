"""Realistic dispatch payloads, generated fast.

`payload()` builds one event's `d` as a dict (the reference shape); `EventFactory.batch()` produces the same
JSON text from string templates, because `{"count": N}` must reach tens of thousands of events per second.
The tests hold the two to the same shape.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from qqworker.simulator.intents import Intent
from qqworker.wire import dumps

__all__ = [
    "AT_MESSAGE",
    "C2C",
    "DIRECT_MESSAGE",
    "GENERATED_TYPES",
    "GROUP_AT",
    "REQUIRED_INTENT",
    "EventFactory",
    "Identities",
    "PreparedEvent",
    "msg_idx",
    "now_timestamp",
    "payload",
]

C2C = "C2C_MESSAGE_CREATE"
GROUP_AT = "GROUP_AT_MESSAGE_CREATE"
AT_MESSAGE = "AT_MESSAGE_CREATE"
DIRECT_MESSAGE = "DIRECT_MESSAGE_CREATE"

# An event reaches a session only when the session asked for it; custom types reach everyone.
REQUIRED_INTENT: dict[str, int] = {
    C2C: Intent.GROUP_AND_C2C_EVENT,
    GROUP_AT: Intent.GROUP_AND_C2C_EVENT,
    AT_MESSAGE: Intent.PUBLIC_GUILD_MESSAGES,
    DIRECT_MESSAGE: Intent.DIRECT_MESSAGE,
    "MESSAGE_CREATE": Intent.GUILD_MESSAGES,
}
GENERATED_TYPES = (C2C, GROUP_AT, AT_MESSAGE, DIRECT_MESSAGE)

_CN_TZ = timezone(timedelta(hours=8))
_USERS = 4
# The group roles the platform reports in `author.member_role` since 2026 (adapter-qq issue 207).
_ROLES = ("owner", "admin", "member", "member")


def now_timestamp() -> str:
    """The platform's timestamp style: ISO 8601 with the +08:00 offset."""
    return datetime.now(_CN_TZ).isoformat(timespec="seconds")


@dataclass(frozen=True)
class PreparedEvent:
    envelope_id: str  # the frame's "id": "<TYPE>:<opaque>"
    message_id: str  # d.id, what a reply quotes as msg_id
    d_json: str


class Identities:
    """A handful of stable users, a group, a guild and a channel for the generated events."""

    def __init__(self, bot_id: str, bot_name: str) -> None:
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.openids = [secrets.token_hex(16).upper() for _ in range(_USERS)]
        self.group_openid = secrets.token_hex(16).upper()
        base = 10_000_000_000_000_000 + secrets.randbelow(10**15)
        self.user_ids = [str(base + i) for i in range(_USERS)]
        self.usernames = [f"user{i + 1}" for i in range(_USERS)]
        self.bot_openid = secrets.token_hex(16).upper()  # the bot as a group member sees it
        self.guild_id = str(base + 1_000)
        self.channel_id = str(base + 2_000)
        self.dm_guild_id = str(base + 3_000)


def msg_idx(message_id: str) -> str:
    """The `message_scene.ext` entry naming the message for quoting (`REFIDX_...` in captures)."""
    return f"msg_idx=REFIDX_{message_id[9:]}"


# The C2C and group shapes follow live captures of 2026: nonebot/adapter-qq PR 195 (2026-05-15, a
# GROUP_MESSAGE_CREATE: author.bot, author.username, mentions, message_scene {"ext": ["msg_idx=..."],
# "source": "default"}) and issue 207 (2026-06-18, a group message: author.member_role owner/admin/member).
# adapter-qq 1.7.x requires message_scene.ext and, for groups, author.bot and author.member_role.
# No 2026 capture of a C2C author was found: it keeps the documented fields.
def payload(kind: str, who: Identities, n: int, message_id: str, content: str, ts: str) -> dict[str, Any]:
    """The reference `d` of one generated event of type `kind` (one of GENERATED_TYPES)."""
    u = n % _USERS
    if kind == C2C:
        openid = who.openids[u]
        return {
            "author": {"id": openid, "user_openid": openid, "union_openid": openid},
            "content": content,
            "id": message_id,
            "timestamp": ts,
            "message_scene": {"ext": [msg_idx(message_id)], "source": "default"},
            "message_type": 0,
        }
    if kind == GROUP_AT:
        openid = who.openids[u]
        return {
            "author": {
                "bot": False,
                "id": openid,
                "member_openid": openid,
                "member_role": _ROLES[u],
                "union_openid": openid,
                "username": who.usernames[u],
            },
            "content": content,
            "group_id": who.group_openid,
            "group_openid": who.group_openid,
            "id": message_id,
            "mentions": [
                {
                    "bot": True,
                    "id": who.bot_openid,
                    "is_you": True,
                    "member_openid": who.bot_openid,
                    "scope": "single",
                    "username": who.bot_name,
                }
            ],
            "timestamp": ts,
            "message_scene": {"ext": [msg_idx(message_id)], "source": "default"},
            "message_type": 0,
        }
    author = {"avatar": "", "bot": False, "id": who.user_ids[u], "username": who.usernames[u]}
    if kind == AT_MESSAGE:
        return {
            "author": author,
            "channel_id": who.channel_id,
            "content": f"<@!{who.bot_id}> {content}",
            "guild_id": who.guild_id,
            "id": message_id,
            "member": {"joined_at": ts, "roles": ["1"]},
            "mentions": [{"avatar": "", "bot": True, "id": who.bot_id, "username": who.bot_name}],
            "seq": n,
            "seq_in_channel": str(n),
            "timestamp": ts,
        }
    if kind == DIRECT_MESSAGE:
        return {
            "author": author,
            "channel_id": who.channel_id,
            "content": content,
            "direct_message": True,
            "guild_id": who.dm_guild_id,
            "id": message_id,
            "member": {"joined_at": ts},
            "seq": n,
            "seq_in_channel": str(n),
            "src_guild_id": who.guild_id,
            "timestamp": ts,
        }
    raise ValueError(f"no generator for event type {kind!r}")


class EventFactory:
    """Unique ids across the simulator's life, and `d` JSON text for each event."""

    def __init__(self, who: Identities) -> None:
        self.who = who
        self._run = secrets.token_hex(4)
        self._n = 0

    def _ids(self, kind: str, n: int) -> tuple[str, str]:
        opaque = f"{self._run}{n:010x}"
        message_id = f"ROBOT1.0_{opaque}" if kind in (C2C, GROUP_AT) else f"08{opaque}"
        return f"{kind}:{opaque}", message_id

    def one(self, kind: str, overrides: dict[str, Any] | None) -> PreparedEvent:
        """One event; `overrides` replace top-level fields of the generated `d` (or are the whole `d` of a
        type without a generator)."""
        self._n += 1
        n = self._n
        envelope_id, message_id = self._ids(kind, n)
        if kind in GENERATED_TYPES:
            d = payload(kind, self.who, n, message_id, f"message {n}", now_timestamp())
            d.update(overrides or {})
        else:
            # A type without a generator: the d given, or a minimal one.
            d = dict(overrides) if overrides is not None else {"id": message_id, "timestamp": now_timestamp()}
        return PreparedEvent(envelope_id, str(d.get("id", message_id)), dumps(d))

    def batch(self, kind: str, count: int) -> list[PreparedEvent]:
        """`count` generated events of a GENERATED_TYPES kind, built from templates."""
        if kind not in GENERATED_TYPES:
            raise ValueError(f"unknown event type {kind!r}: give its d")
        who = self.who
        ts = now_timestamp()
        first = self._n + 1
        self._n += count
        run = self._run
        out: list[PreparedEvent] = []
        append = out.append
        # The same shapes as payload() (see the captures named there), as pre-serialised text.
        if kind == C2C:
            heads = [
                f'{{"author":{{"id":"{o}","user_openid":"{o}","union_openid":"{o}"}},' for o in who.openids
            ]
            for n in range(first, first + count):
                opaque = f"{run}{n:010x}"
                mid = f"ROBOT1.0_{opaque}"
                append(
                    PreparedEvent(
                        f"{kind}:{opaque}",
                        mid,
                        f'{heads[n % _USERS]}"content":"message {n}","id":"{mid}","timestamp":"{ts}",'
                        f'"message_scene":{{"ext":["msg_idx=REFIDX_{opaque}"],"source":"default"}},'
                        '"message_type":0}',
                    )
                )
        elif kind == GROUP_AT:
            g = who.group_openid
            heads = [
                f'{{"author":{{"bot":false,"id":"{o}","member_openid":"{o}","member_role":"{_ROLES[u]}",'
                f'"union_openid":"{o}","username":{dumps(who.usernames[u])}}},'
                for u, o in enumerate(who.openids)
            ]
            b = who.bot_openid
            mentions = (
                f'"mentions":[{{"bot":true,"id":"{b}","is_you":true,"member_openid":"{b}",'
                f'"scope":"single","username":{dumps(who.bot_name)}}}],'
            )
            for n in range(first, first + count):
                opaque = f"{run}{n:010x}"
                mid = f"ROBOT1.0_{opaque}"
                append(
                    PreparedEvent(
                        f"{kind}:{opaque}",
                        mid,
                        f'{heads[n % _USERS]}"content":"message {n}","group_id":"{g}","group_openid":"{g}",'
                        f'"id":"{mid}",{mentions}"timestamp":"{ts}",'
                        f'"message_scene":{{"ext":["msg_idx=REFIDX_{opaque}"],"source":"default"}},'
                        '"message_type":0}',
                    )
                )
        else:
            # The guild kinds are rarer in tests and benchmarks: the dict path is fast enough for them.
            for n in range(first, first + count):
                opaque = f"{run}{n:010x}"
                mid = f"08{opaque}"
                d = payload(kind, who, n, mid, f"message {n}", ts)
                append(PreparedEvent(f"{kind}:{opaque}", mid, dumps(d)))
        return out
