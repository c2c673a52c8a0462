"""Loading the handler module with retries: a transient failure at import is never permanent.

A handler module may reach out at import (a client connecting to its database or broker) while that
server is still starting, at boot for instance. `load_handler` tells the spec's own errors
(ImportError, SyntaxError, AttributeError: no retry can fix them, exit 78) from anything else the
module raised (`HandlerImportFailed`); this retries the latter with the worker's reconnect backoff,
one `handler.import_failed` line per try. Meanwhile the beat says WAITING with the next try's due
time, and each try logs an attempt line, so the watchdog's liveness checks hold as for reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from qqworker.backoff import Backoff
from qqworker.contract.beat import Phase, Progress
from qqworker.contract.events import LogEvent
from qqworker.contract.logs import log_event
from qqworker.handlers import Handler, HandlerImportFailed, load_handler

log = logging.getLogger("qqworker.handlers")


async def load_handler_retrying(
    spec: str,
    backoff: Backoff,
    progress: Progress,
    *,
    load: Callable[[str], Handler] = load_handler,
) -> Handler:
    """The handler, once its module imports; ConfigError when the spec itself is wrong. Cancel to stop."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return load(spec)
        except HandlerImportFailed as exc:
            delay = backoff.next_delay()
            log_event(
                log,
                LogEvent.HANDLER_IMPORT_FAILED,
                f"Importing the handler failed (try {attempt}): {exc.error}; retrying in {delay:.2f}s",
                level=logging.WARNING,
                attempt=attempt,
                error=exc.error,
                delay_s=round(delay, 3),
            )
            progress.update(phase=Phase.WAITING, attempt=attempt, next_attempt_at=progress.clock() + delay)
            await asyncio.sleep(delay)
