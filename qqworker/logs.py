"""JSON log lines for both processes, exactly the fields of the contract.

One object per line: `timestamp` (RFC 3339 UTC, ms, `Z`), `level`, `logger`, `message`, `event`, `role`,
`pid`, `generation`, then the event's own fields. Every line passes through `Redactor` as the last
step, so a registered secret or access token cannot reach stdout or the log file by any path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

from qqworker.events import LogEvent
from qqworker.logfile import refuse_unless_regular
from qqworker.outputs import AsyncioPump, Output, Outputs
from qqworker.sinks import DEFAULT_MAX_BYTES, DEFAULT_RETRY_S, Notice, SinkBuffer, SinkSet, SinkState

REDACTED = "[REDACTED]"
_CORE_FIELDS = ("timestamp", "level", "logger", "message", "event", "role", "pid", "generation")


class Redactor:
    """Replaces every registered secret in a text, also in its JSON-escaped form.

    `learnt()` lists the most recent secrets added (the worker's access tokens, newest last; one that
    contains a known secret is covered by it and not listed) so the worker can pass them on;
    `remember()` takes such a list on the watchdog's side, where only the most recent
    `MAX_REMEMBERED` are kept (the current and previous tokens of a child and of the one before).
    Neither is ever written anywhere.
    """

    MAX_REMEMBERED = 8
    MAX_LEARNT = 4

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._remembered: dict[str, str] = {}  # raw -> JSON-escaped; insertion-ordered, bounded
        self._learnt: list[str] = []
        self._ordered: tuple[str, ...] = ()
        self._lock = threading.Lock()
        self.on_add: Callable[[], None] | None = None  # told after each new secret

    def add(self, secret: str | None) -> None:
        if not secret:
            return
        with self._lock:
            if secret in self._secrets:
                return
            if not any(known in secret for known in self._secrets):
                self._learnt = [*self._learnt, secret][-self.MAX_LEARNT :]
            self._secrets.add(secret)
            self._secrets.add(json.dumps(secret, ensure_ascii=False)[1:-1])
            self._rebuild()
        if self.on_add is not None:
            self.on_add()

    def learnt(self) -> tuple[str, ...]:
        return tuple(self._learnt)

    def remember(self, secrets: Iterable[str]) -> None:
        """Secrets another process told us about (bounded: the oldest are forgotten first)."""
        new = [s for s in secrets if s and s not in self._remembered and s not in self._secrets]
        if not new:
            return
        with self._lock:
            for secret in new:
                self._remembered[secret] = json.dumps(secret, ensure_ascii=False)[1:-1]
            while len(self._remembered) > self.MAX_REMEMBERED:
                del self._remembered[next(iter(self._remembered))]
            self._rebuild()

    def _rebuild(self) -> None:
        # Longest first, so a secret containing another is replaced whole; built once per change,
        # not at every line.
        remembered = {*self._remembered, *self._remembered.values()}
        self._ordered = tuple(sorted(self._secrets | remembered, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


redactor = Redactor()


def rfc3339_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class ContractFormatter(JsonFormatter):
    """Orders the contract's core fields first and adds the process context to each record."""

    def __init__(self, role: str, generation: int = 1) -> None:
        super().__init__(json_ensure_ascii=False, timestamp=False, json_default=str)
        self.role = role
        self.generation = generation

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_record, record, message_dict)
        event = getattr(record, "event", None)
        core = {
            "timestamp": rfc3339_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "event": str(event) if event is not None else LogEvent.LIBRARY_LOG.value,
            "role": self.role,
            "pid": record.process or os.getpid(),
            "generation": getattr(record, "generation", self.generation),
        }
        extras = {k: v for k, v in log_record.items() if k not in _CORE_FIELDS}
        if record.exc_info and "exc_info" not in extras:
            extras["exc_info"] = self.formatException(record.exc_info)
        log_record.clear()
        log_record.update(core)
        log_record.update(extras)

    def format(self, record: logging.LogRecord) -> str:
        return redactor(super().format(record))


class JsonLinesHandler(logging.Handler):
    """Writes whole lines to stdout and, optionally, a file that SIGHUP can reopen (logrotate).

    Each is a sink (`qqworker.sinks`, `qqworker.outputs`): written without ever blocking the caller,
    through its own bounded buffer, so a stuck reader or a full disk delays or drops only its own lines
    (counted, then said with `log.dropped`) and an output error is a condition, never an exception.
    `write_line` lets the watchdog relay its child's lines into the same ordered streams.
    """

    def __init__(
        self,
        stream: IO[str],
        file_path: str | None = None,
        *,
        buffer_bytes: int = DEFAULT_MAX_BYTES,
        retry_s: float = DEFAULT_RETRY_S,
    ) -> None:
        super().__init__()
        self.stream = stream
        self.file_path = file_path
        outputs = [Output(SinkBuffer("stdout", buffer_bytes, retry_s), **_stream_target(stream))]
        self._file: Output | None = None
        if file_path:
            self._file = Output(SinkBuffer("file", buffer_bytes, retry_s), path=file_path)
            refuse_unless_regular(file_path)  # a FIFO, a device, a directory: ConfigError (exit 78)
            self._file.open()  # at start-up an unusable log file is a configuration error
            outputs.append(self._file)
        self.outputs = Outputs(outputs, SinkSet([o.buffer for o in outputs], self._render))
        if outputs[0].stream is None:
            outputs[0].connect()  # fd 1 unusable (closed): failing from the start, and retried

    def reopen(self) -> str | None:
        """SIGHUP: the log file again at its path (a failing one is retried at once). Returns why it
        could not be opened (it is then a failing sink, retried), None when it was."""
        error = None
        with self.outputs.lock:
            if self._file is not None:
                buffer = self._file.buffer
                if not self._file.connect():
                    error = buffer.error
                elif buffer.state is SinkState.FAILING:
                    buffer.retry_at = buffer.clock()  # reopened: its queue is written now, not at the retry
            self.outputs.flush()
        return error

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write_line(self.format(record))
        except Exception:
            self.handleError(record)

    def write_line(self, line: str) -> None:
        data = (redactor(line.rstrip("\n")) + "\n").encode("utf-8", errors="backslashreplace")
        self.outputs.write(data)

    def sinks(self) -> dict[str, dict[str, Any]]:
        """Each sink's state and counts, for the status file."""
        described = self.outputs.describe()
        for sink in described.values():
            if sink["since"] is not None:
                sink["since"] = rfc3339_utc(sink["since"])
        return described

    def _render(self, notice: Notice) -> bytes:
        level = _NOTICE_LEVELS.get(notice.event, logging.WARNING)
        record = logging.LogRecord("qqworker.logs", level, __file__, 0, notice.message, None, None)
        record.event = notice.event.value
        for key, value in notice.fields.items():
            setattr(record, key, rfc3339_utc(value) if key == "since" and value is not None else value)
        return (redactor(self.format(record)) + "\n").encode("utf-8", errors="backslashreplace")

    def flush(self) -> None:
        """At exit (logging.shutdown): a bounded wait for stalled sinks."""
        self.outputs.drain()

    def close(self) -> None:
        with self.outputs.lock:
            for output in self.outputs.outputs:
                output.close()
        super().close()


_NOTICE_LEVELS = {
    LogEvent.LOG_DROPPED: logging.WARNING,
    LogEvent.LOG_SINK_FAILED: logging.ERROR,
    LogEvent.LOG_SINK_RECOVERED: logging.INFO,
}


def _stream_target(stream: IO[str]) -> dict[str, Any]:
    """stdout by its fd when it has one (after flushing what Python buffered), else as a text stream."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return {"stream": stream}
    with contextlib.suppress(OSError, ValueError):
        stream.flush()
    return {"source_fd": fd}


_handler: JsonLinesHandler | None = None


def configure_logging(
    role: str,
    generation: int = 1,
    log_file: str | None = None,
    stream: IO[str] | None = None,
    level: int = logging.INFO,
    *,
    buffer_bytes: int = DEFAULT_MAX_BYTES,
    retry_s: float = DEFAULT_RETRY_S,
) -> JsonLinesHandler:
    """Route every logger of the process to one JSON-lines handler; idempotent."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.flush()
        _handler.close()
    _handler = JsonLinesHandler(stream or sys.stdout, log_file, buffer_bytes=buffer_bytes, retry_s=retry_s)
    _handler.setFormatter(ContractFormatter(role, generation))
    root.addHandler(_handler)
    root.setLevel(level)
    for noisy in ("websockets", "aiohttp", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return _handler


def current_handler() -> JsonLinesHandler | None:
    return _handler


def log_event(
    logger: logging.Logger, event: LogEvent, message: str, *, level: int = logging.INFO, **fields: Any
) -> None:
    """One contract log line: a readable sentence plus the event and its fields."""
    logger.log(level, message, extra={"event": event.value, **fields})


def pump_outputs(loop: Any) -> AsyncioPump | None:
    """Lets this asyncio loop write the stalled sinks when they are writable, and retry failing ones."""
    return AsyncioPump(_handler.outputs, loop) if _handler is not None else None
