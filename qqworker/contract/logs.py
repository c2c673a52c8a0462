"""The log line both processes write: exactly the fields of the contract, and redaction.

One object per line: `timestamp` (RFC 3339 UTC, ms, `Z`), `level`, `logger`, `message`, `event`, `role`,
`pid`, `generation`, then the event's own fields. Every line passes through `Redactor` as the last
step, so a registered secret or access token cannot reach stdout or the log file by any path.
Where the lines go (the non-blocking sinks) is `qqworker.logs`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from qqworker.contract.events import LogEvent

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


def log_event(
    logger: logging.Logger, event: LogEvent, message: str, *, level: int = logging.INFO, **fields: Any
) -> None:
    """One contract log line: a readable sentence plus the event and its fields."""
    logger.log(level, message, extra={"event": event.value, **fields})
