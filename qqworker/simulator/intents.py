"""The platform's intent bits as the simulator knows them (which events a session asked for).

Kept apart from the worker's tables on purpose: a simulator that imports the client's idea of the
protocol would share its mistakes instead of catching them.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ALL_INTENTS", "Intent"]


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
