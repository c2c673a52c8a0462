"""Everything about the simulator a test or an operator may tune, with the platform's values as defaults."""

from __future__ import annotations

from dataclasses import dataclass

from qqworker.simulator.intents import ALL_INTENTS

__all__ = ["DEFAULT_APP_ID", "DEFAULT_APP_SECRET", "MIN_IDLE_TIMEOUT_S", "SimOptions"]

# Test credentials, not secrets: fixed so that scripts and docs can name them.
DEFAULT_APP_ID = "102000001"
DEFAULT_APP_SECRET = "qqsimTestSecret00000000000000000"
# With the short Hello intervals tests use, a scheduling hiccup must not look like a dead client.
MIN_IDLE_TIMEOUT_S = 1.0


@dataclass
class SimOptions:
    app_id: str = DEFAULT_APP_ID
    app_secret: str = DEFAULT_APP_SECRET
    bot_id: str = "14600000000000000001"  # numeric string: qq-botpy does int(id)
    bot_name: str = "qqsim-bot"
    # Hello's interval; the docs say 45000, the field sees 41250.
    heartbeat_interval_ms: int = 41250
    # No frame from the client for interval × this (at least MIN_IDLE_TIMEOUT_S): close 4009 (0 disables).
    heartbeat_timeout_factor: float = 2.0
    # How long a session stays resumable after its connection is gone.
    resume_window_s: float = 300.0
    # Dispatches kept per session for Resume; a Resume needing older ones gets op 9.
    replay_limit: int = 100_000
    allowed_intents: int = ALL_INTENTS
    # 4903 (after op 9 d:false) is what the field sees; 4014 alone is what the docs say.
    intent_reject_code: int = 4903
    token_ttl_s: int = 7200
    # GET /gateway/bot reports this minus the READYs so far as session_start_limit.remaining.
    session_start_total: int = 1000
    # The platform ends every connection about every 30 minutes with op 7 then 4009 (0 disables).
    session_cycle_s: float = 1800.0
    # The close handshake and a slow reader get this long before the connection is dropped.
    close_timeout_s: float = 2.0
    send_timeout_s: float = 10.0
    max_replies_kept: int = 1000
    # Answer like a host the platform has retired (api.sgroup.qq.com in 2026, hermes-agent issue 73378):
    # HTTP 500 on /gateway and /gateway/bot, 404 on the token path; everything else as usual.
    retired: bool = False
    # Answer WebSocket pings (the edge most likely does); False tests a client's fallback to ACKs alone.
    answer_pings: bool = True

    @property
    def idle_timeout_s(self) -> float | None:
        """How long a connection may stay silent before the server gives up on it (None: forever)."""
        if self.heartbeat_timeout_factor <= 0:
            return None
        return max(self.heartbeat_interval_ms / 1000 * self.heartbeat_timeout_factor, MIN_IDLE_TIMEOUT_S)

    def validate(self) -> None:
        if self.heartbeat_interval_ms <= 0:
            raise ValueError("heartbeat_interval_ms must be positive")
        if self.resume_window_s < 0 or self.token_ttl_s <= 60:
            raise ValueError("resume_window_s must be >= 0 and token_ttl_s > 60")
        if self.replay_limit < 1:
            raise ValueError("replay_limit must be at least 1")
        if not 4000 <= self.intent_reject_code <= 4999:
            raise ValueError("intent_reject_code must be a 4xxx close code")
