"""The log event names of the contract: the one place both processes take them from."""

from __future__ import annotations

from enum import Enum


class LogEvent(str, Enum):
    """Every `event` value a log line can carry (../shared/CONTRACT.md, "Log lines")."""

    # worker
    WORKER_STARTED = "worker.started"
    TOKEN_FETCHED = "auth.token_fetched"
    TOKEN_FAILED = "auth.token_failed"
    GATEWAY_CONNECTING = "gateway.connecting"
    GATEWAY_CONNECTED = "gateway.connected"
    GATEWAY_CLOSED = "gateway.closed"
    ACK_TIMEOUT = "gateway.ack_timeout"
    RECONNECT_SCHEDULED = "reconnect.scheduled"
    RECONNECT_FAILED = "reconnect.failed"
    RECONNECT_GAVE_UP = "reconnect.gave_up"
    WORKER_FATAL = "worker.fatal"
    DISPATCH = "dispatch"
    HANDLER_ERROR = "handler.error"
    HANDLER_BACKLOG = "handler.backlog"
    REPLY_FAILED = "reply.failed"
    FRAME_REJECTED = "gateway.frame_rejected"
    WORKER_STOPPED = "worker.stopped"
    # watchdog
    WATCHDOG_STARTED = "watchdog.started"
    CHILD_SPAWNED = "child.spawned"
    CHILD_HEARTBEAT_MISSED = "child.heartbeat_missed"
    CHILD_ATTEMPT_OVERDUE = "child.attempt_overdue"
    CHILD_MEMORY_EXCEEDED = "child.memory_exceeded"
    CHILD_KILLED = "child.killed"
    CHILD_EXITED = "child.exited"
    CHILD_OUTPUT = "child.output"
    RESPAWN_SCHEDULED = "respawn.scheduled"
    WATCHDOG_GAVE_UP = "watchdog.gave_up"
    WATCHDOG_STOPPED = "watchdog.stopped"
    LOG_REOPENED = "log.reopened"

    def __str__(self) -> str:
        return self.value


# Events that prove the worker's reconnect loop is making progress: the watchdog's attempt-log
# liveness check is satisfied by any of them.
ATTEMPT_EVENTS = frozenset(
    {
        LogEvent.GATEWAY_CONNECTING,
        LogEvent.GATEWAY_CONNECTED,
        LogEvent.RECONNECT_FAILED,
        LogEvent.TOKEN_FAILED,
        LogEvent.TOKEN_FETCHED,
    }
)
