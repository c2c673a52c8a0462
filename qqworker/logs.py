"""Where both processes' JSON lines go: stdout and the log file, each a sink that never blocks.

The line itself (fields, redaction) is `qqworker.contract.logs`; this module routes every logger of
the process to one `JsonLinesHandler` over the bounded sinks of `qqworker.sinks` / `qqworker.outputs`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import IO, Any

from qqworker.contract.events import LogEvent
from qqworker.contract.logs import ContractFormatter, redactor, rfc3339_utc
from qqworker.logfile import refuse_unless_regular
from qqworker.outputs import AsyncioPump, Output, Outputs
from qqworker.sinks import DEFAULT_MAX_BYTES, DEFAULT_RETRY_S, Notice, SinkBuffer, SinkSet, SinkState


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


def pump_outputs(loop: Any) -> AsyncioPump | None:
    """Lets this asyncio loop write the stalled sinks when they are writable, and retry failing ones."""
    return AsyncioPump(_handler.outputs, loop) if _handler is not None else None
