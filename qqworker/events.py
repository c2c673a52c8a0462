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
    PINGS_IGNORED = "gateway.pings_ignored"
    NETWORK_BACK = "reconnect.network_back"
    # watchdog
    WATCHDOG_STARTED = "watchdog.started"
    CHILD_SPAWNED = "child.spawned"
    CHILD_HEARTBEAT_MISSED = "child.heartbeat_missed"
    CHILD_ATTEMPT_OVERDUE = "child.attempt_overdue"
    CHILD_MEMORY_EXCEEDED = "child.memory_exceeded"
    CHILD_ACK_STALE = "child.ack_stale"
    CHILD_STOP_OVERDUE = "child.stop_overdue"
    CHILD_KILLED = "child.killed"
    CHILD_EXITED = "child.exited"
    CHILD_OUTPUT = "child.output"
    RESPAWN_SCHEDULED = "respawn.scheduled"
    WATCHDOG_GAVE_UP = "watchdog.gave_up"
    WATCHDOG_STOPPING = "watchdog.stopping"
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


# What each event carries beyond the core fields, and when it is written (rendered into the README).
EVENT_DOCS: dict[LogEvent, tuple[str, str]] = {
    LogEvent.WORKER_STARTED: ("app_id, intents", "the worker process is up"),
    LogEvent.TOKEN_FETCHED: ("expires_in", "an access token was obtained"),
    LogEvent.TOKEN_FAILED: ("error", "a token request failed"),
    LogEvent.GATEWAY_CONNECTING: ("attempt, url", "before every connection attempt, the first included"),
    LogEvent.GATEWAY_CONNECTED: ("attempt, session_id, resumed", "READY or RESUMED received"),
    LogEvent.GATEWAY_CLOSED: ("close_code, reason, action", "the connection ended for any cause"),
    LogEvent.ACK_TIMEOUT: (
        "missed, evidence, silent_s, limit_s",
        "the link is dead (`evidence`: `missed_acks`, `no_pong` for an unanswered WebSocket ping, or "
        "`silence`); the connection is dropped",
    ),
    LogEvent.RECONNECT_SCHEDULED: ("attempt, delay_s, max_attempts", "before every backoff sleep"),
    LogEvent.RECONNECT_FAILED: ("attempt, error", "an attempt did not reach READY/RESUMED"),
    LogEvent.RECONNECT_GAVE_UP: ("attempts", "maximum attempts reached; exit 75 follows"),
    LogEvent.WORKER_FATAL: ("reason, close_code", "permanent error; exit 78 follows"),
    LogEvent.DISPATCH: ("event_type, event_id, seq", "the built-in `log` handler, once per dispatch event"),
    LogEvent.HANDLER_ERROR: ("event_type, error", "the user handler raised; the loop goes on"),
    LogEvent.HANDLER_BACKLOG: ("dropped, queue_size", "the handler queue was full and events were dropped"),
    LogEvent.REPLY_FAILED: ("error, status", "a reply through the REST API failed"),
    LogEvent.FRAME_REJECTED: ("reason, excerpt", "a malformed or unexpected gateway frame was ignored"),
    LogEvent.WORKER_STOPPED: ("reason", "clean stop"),
    LogEvent.PINGS_IGNORED: (
        "acks_without_pong",
        "once per process: the gateway answers no WebSocket ping; liveness falls back to heartbeat ACKs",
    ),
    LogEvent.NETWORK_BACK: (
        "probes, failed, waited_s, delay_s, target",
        "after a local failure (no route, link down, DNS down, no TCP answer) a probe connected: the backoff "
        "sleep is cut short",
    ),
    LogEvent.WATCHDOG_STARTED: ("config (no secrets)", "the watchdog process is up"),
    LogEvent.CHILD_SPAWNED: ("child_pid, resume", "each spawn; `resume` says it was given a session"),
    LogEvent.CHILD_HEARTBEAT_MISSED: ("silent_s", "no pipe heartbeat within the heartbeat timeout"),
    LogEvent.CHILD_ATTEMPT_OVERDUE: ("overdue_s", "an attempt the child announced was not logged in time"),
    LogEvent.CHILD_MEMORY_EXCEEDED: ("rss_mb, limit_mb", "over the memory limit"),
    LogEvent.CHILD_ACK_STALE: (
        "ack_age_s, limit_s",
        "the child says it is connected but has had no gateway ACK for too long (a half-open link it missed)",
    ),
    LogEvent.CHILD_STOP_OVERDUE: (
        "overdue_s",
        "the child said it was stopping and had not exited within the stop timeout plus the grace",
    ),
    LogEvent.CHILD_KILLED: ("child_pid, reason, signal", "the watchdog ended the child and its tree"),
    LogEvent.CHILD_EXITED: ("child_pid, exitcode, meaning", "the child ended, for any cause"),
    LogEvent.CHILD_OUTPUT: ("child_pid, text", "a non-JSON line the child printed (a traceback)"),
    LogEvent.RESPAWN_SCHEDULED: ("delay_s, restarts", "before every respawn sleep"),
    LogEvent.WATCHDOG_GAVE_UP: ("restarts", "its own restart limit reached; exit 69 follows"),
    LogEvent.WATCHDOG_STOPPING: ("signal, forced", "a stop signal arrived; a second one forces"),
    LogEvent.WATCHDOG_STOPPED: ("reason", "clean stop"),
    LogEvent.LOG_REOPENED: ("path", "the log file was reopened (SIGHUP, logrotate)"),
}
