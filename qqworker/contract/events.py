"""The log event names of the contract: the one place both processes take them from."""

from __future__ import annotations

from enum import Enum


class LogEvent(str, Enum):
    """Every `event` value a log line can carry (the README's "Log lines" table is rendered from it)."""

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
    BASE_SWITCHED = "gateway.base_switched"
    HANDLER_IMPORT_FAILED = "handler.import_failed"
    EVENTS_ABANDONED = "events.abandoned"
    EVENTS_LOST = "events.lost"
    BEAT_DROPPED = "beat.dropped"
    DISCOVERY_FALLBACK = "gateway.discovery_fallback"
    DEDUPE_IGNORED = "dedupe.ignored"
    DEDUPE_UNSAVED = "dedupe.unsaved"
    LOG_DROPPED = "log.dropped"
    LOG_SINK_FAILED = "log.sink_failed"
    LOG_SINK_RECOVERED = "log.sink_recovered"
    PINGS_IGNORED = "gateway.pings_ignored"
    NETWORK_BACK = "reconnect.network_back"
    WEBHOOK_FAILED = "webhook.failed"
    WEBHOOK_DROPPED = "webhook.dropped"
    WEBHOOK_DELIVERED = "webhook.delivered"
    WEBHOOK_RECOVERED = "webhook.recovered"
    WEBHOOK_BACKLOG = "webhook.backlog"
    PROXY_CLIENT_CONNECTED = "proxy.client_connected"
    PROXY_CLIENT_CLOSED = "proxy.client_closed"
    PROXY_LISTENING = "proxy.listening"
    PROXY_PROFILE_UNAVAILABLE = "proxy.profile_unavailable"
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
    PUSH_FAILED = "push.failed"
    CHILD_LOG_CLOSED = "child.log_closed"
    WATCHDOG_VERSION_SKEW = "watchdog.version_skew"
    EVENTS_SKIPPED = "events.skipped"
    BEAT_MALFORMED = "child.beat_malformed"
    OUTPUT_NO_EOF = "child.output_no_eof"
    KILL_SURVIVORS = "child.kill_survivors"
    STATUS_WRITE_FAILED = "watchdog.status_write_failed"
    LOCK_FAILED = "watchdog.lock_failed"
    SESSION_IGNORED = "watchdog.session_ignored"
    SESSION_UNSAVED = "watchdog.session_unsaved"
    WATCHDOG_PAUSED = "watchdog.paused"
    WATCHDOG_NOTIFY_FAILED = "watchdog.notify_failed"
    WATCHDOG_NOTIFY_RECOVERED = "watchdog.notify_recovered"
    # Not written by our code (a static test enforces it): a library's or Python's own line.
    LIBRARY_LOG = "log"

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
        LogEvent.HANDLER_IMPORT_FAILED,
    }
)


# What each event carries beyond the core fields, and when it is written (rendered into the README).
EVENT_DOCS: dict[LogEvent, tuple[str, str]] = {
    LogEvent.WORKER_STARTED: ("app_id, intents, api_base, token_url", "the worker process is up"),
    LogEvent.TOKEN_FETCHED: ("expires_in", "an access token was obtained"),
    LogEvent.TOKEN_FAILED: ("error", "a token request failed"),
    LogEvent.GATEWAY_CONNECTING: ("attempt, url", "before every connection attempt, the first included"),
    LogEvent.GATEWAY_CONNECTED: (
        "attempt, session_id, resumed, reason",
        "READY or RESUMED received; `reason` says why a new session (e.g. the platform refused the Resume)",
    ),
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
    LogEvent.BASE_SWITCHED: (
        "from, to, reason, kind",
        "a wrong-host failure (HTTP 404/410/5xx, a name gone, a TLS name mismatch) moved the worker to "
        "the next API base (`kind` api_base) or token URL (`kind` token_url)",
    ),
    LogEvent.WATCHDOG_STARTED: (
        "config (no secrets), api_base, token_url, resumed_from",
        "the watchdog process is up; `resumed_from`: the persisted session it hands to its first worker",
    ),
    LogEvent.HANDLER_IMPORT_FAILED: (
        "attempt, error, delay_s",
        "importing the handler module raised something other than ImportError/SyntaxError/AttributeError "
        "(a server it connects to at import not up yet): retried after `delay_s`, never exit 78",
    ),
    LogEvent.WORKER_STOPPED: (
        "reason, unhandled (+ unhandled_first_seq, unhandled_last_seq)",
        "clean stop, after waiting (within the stop timeout) for queued and running handlers; what is "
        "left is counted and stays below the handed seq, for the next start to replay",
    ),
    LogEvent.EVENTS_ABANDONED: (
        "session_id, first_seq, last_seq, count",
        "events of a session that can no longer be resumed (an Identify anew came while they were in "
        "a handler) were never handled: the worker stopped, or (logged by the watchdog) died",
    ),
    LogEvent.EVENTS_LOST: (
        "session_id, first_seq, last_seq, reason",
        "a frame over --max-frame-bytes came again at the same position: its seq is skipped (last_seq "
        "null: the session was given up and everything from first_seq on is lost)",
    ),
    LogEvent.BEAT_DROPPED: (
        "dropped_beats",
        "the heartbeat pipe was full (the watchdog is not reading): beats dropped, at most one line per 10 s",
    ),
    LogEvent.DISCOVERY_FALLBACK: ("error", "`GET /gateway/bot` failed; the worker tries `GET /gateway`"),
    LogEvent.DEDUPE_UNSAVED: (
        "path, error",
        "the dedupe window could not be written (once per failure run): a successor may see events twice",
    ),
    LogEvent.DEDUPE_IGNORED: (
        "path, reason",
        "a resumed worker could not use its predecessor's dedupe window (damaged, another session's)",
    ),
    LogEvent.LOG_DROPPED: (
        "sink, lines, since",
        "a stalled or failing sink accepts lines again: how many it lost, since when (also said at once on "
        "the other sinks)",
    ),
    LogEvent.LOG_SINK_FAILED: (
        "sink, error",
        "writes to a sink fail (ENOSPC, EIO, EPIPE, ...): said on the other sinks; it is retried every few "
        "seconds and neither process dies of it",
    ),
    LogEvent.LOG_SINK_RECOVERED: ("sink, error", "a failing sink accepts writes again"),
    LogEvent.PINGS_IGNORED: (
        "acks_without_pong",
        "once per process: the gateway answers no WebSocket ping; liveness falls back to heartbeat ACKs",
    ),
    LogEvent.NETWORK_BACK: (
        "probes, failed, waited_s, delay_s, target",
        "after a local failure (no route, link down, DNS down, no TCP answer) a probe connected: the backoff "
        "sleep is cut short",
    ),
    LogEvent.WEBHOOK_FAILED: (
        "url, status, error, pending, failures, retry_in_s",
        "deliveries to a webhook URL failing (refused, timeout, non-2xx): at most one line per 10 s per URL, "
        "`failures` counting the attempts since the last line; the event is retried, never skipped",
    ),
    LogEvent.WEBHOOK_DROPPED: (
        "url, events, dropped_total, capacity",
        "the URL's delivery queue (--webhook-queue) overflowed: its oldest waiting events were dropped",
    ),
    LogEvent.WEBHOOK_DELIVERED: (
        "url, events, delivered_total, pending",
        "a summary, not a line per event: the first delivery, then at most one line a minute with the count",
    ),
    LogEvent.WEBHOOK_RECOVERED: ("url, failures, pending", "a webhook URL acknowledges again after failures"),
    LogEvent.WEBHOOK_BACKLOG: (
        "url, oldest_age_s, pending",
        "an event has waited longer than --webhook-backlog-warn for its webhook (once per backlog)",
    ),
    LogEvent.PROXY_CLIENT_CONNECTED: (
        "client, session_id, resumed, replayed, lost",
        "`QQ_HANDLER=gateway`: a framework finished Identify/Resume on the local gateway; `client` is its "
        "address and connection number, `session_id` the local session, `replayed` the buffered events it "
        "was sent before the live stream, `lost` those it missed that had left the buffer",
    ),
    LogEvent.PROXY_CLIENT_CLOSED: (
        "client, session_id, resumed, replayed, close_code, reason, sent, confirmed",
        "a framework's connection to the local gateway ended (`sent`/`confirmed`: the last local seq it "
        "was sent / confirmed by heartbeat), or was refused (a wrong token: 4004 with `session_id` null); "
        "`reason` says why when the gateway ended it (a warning, but for a silent client's 4009)",
    ),
    LogEvent.PROXY_LISTENING: (
        "listen, api_base, gateway_url",
        "the local gateway serves frameworks at this address (once per worker)",
    ),
    LogEvent.PROXY_PROFILE_UNAVAILABLE: (
        "error",
        "a framework's Identify came before the bot's profile (`GET /users/@me`) could be had upstream: "
        "it is closed 4901 and the framework retries",
    ),
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
    LogEvent.CHILD_OUTPUT: (
        "child_pid, text; cut, bytes (a line over 1 MiB: its start and its length)",
        "anything the child printed that its own logger did not write (a traceback, a library's JSON)",
    ),
    LogEvent.RESPAWN_SCHEDULED: ("delay_s, restarts", "before every respawn sleep"),
    LogEvent.WATCHDOG_GAVE_UP: ("restarts", "its own restart limit reached; exit 69 follows"),
    LogEvent.WATCHDOG_STOPPING: ("signal, forced", "a stop signal arrived; a second one forces"),
    LogEvent.WATCHDOG_STOPPED: ("reason", "clean stop"),
    LogEvent.LOG_REOPENED: ("path", "the log file was reopened (SIGHUP, logrotate)"),
    LogEvent.PUSH_FAILED: (
        "error, failures",
        "the push URL could not be reached (at most one line a minute; `failures`: since the last one)",
    ),
    LogEvent.CHILD_LOG_CLOSED: (
        "closed_s",
        "the child closed its output (every fd of the log pipe) and is still running: killed and respawned",
    ),
    LogEvent.WATCHDOG_VERSION_SKEW: (
        "worker_version, watchdog_version, unknown_fields",
        "once: the worker speaks a newer beat format (its code was upgraded); it is supervised on the "
        "fields this watchdog knows; restart the watchdog to use the rest",
    ),
    LogEvent.EVENTS_SKIPPED: (
        "event_type, event_id, seq, session_id, deaths",
        "a poison event: --poison-after successive children died with it as their oldest unhandled "
        "event; the next child resumes past it (never its content; counted in the status)",
    ),
    LogEvent.BEAT_MALFORMED: (
        "excerpt, malformed",
        "a heartbeat message could not be read (at most one line per 5 s)",
    ),
    LogEvent.OUTPUT_NO_EOF: (
        "child_pid",
        "the exited worker's output pipe stayed open; the watchdog closed it",
    ),
    LogEvent.KILL_SURVIVORS: ("survivors, child_pid", "processes of the worker's tree survived SIGKILL"),
    LogEvent.STATUS_WRITE_FAILED: (
        "path, error",
        "the status file could not be written (once, until it works again)",
    ),
    LogEvent.LOCK_FAILED: (
        "path, error",
        "the run directory's lock file cannot be taken (read-only directory): the watchdog runs unguarded",
    ),
    LogEvent.LIBRARY_LOG: (
        "exc_info (maybe)",
        "a library's line (websockets, asyncio) or Python's own, in either process: no event of its own",
    ),
    LogEvent.SESSION_IGNORED: (
        "path, reason",
        "at start: the persisted session (`QQW_STATE_FILE`) was not used: too old, another app id's, damaged",
    ),
    LogEvent.SESSION_UNSAVED: (
        "path, error",
        "the persisted session could not be written (once per failure run)",
    ),
    LogEvent.WATCHDOG_PAUSED: (
        "gap_s",
        "the watchdog itself was not running for far longer than it slept (host suspend, SIGSTOP): "
        "deadlines restart from now, the child is not blamed",
    ),
    LogEvent.WATCHDOG_NOTIFY_FAILED: (
        "socket, error",
        "a systemd notification (`READY`, `WATCHDOG`, `STATUS`, `STOPPING`) could not be sent: the first of "
        "a run of failures, at most one run in 10 minutes",
    ),
    LogEvent.WATCHDOG_NOTIFY_RECOVERED: (
        "socket, failed",
        "the notifications after a logged `watchdog.notify_failed` are sent again; `failed`: sends lost",
    ),
}
