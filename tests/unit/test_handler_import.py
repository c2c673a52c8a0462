"""The handler import retried with backoff, an attempt line per try; a permanent error is not retried."""

from __future__ import annotations

import asyncio
import logging

import pytest

from qqworker.backoff import Backoff
from qqworker.contract.beat import Phase, Progress
from qqworker.contract.events import ATTEMPT_EVENTS, LogEvent
from qqworker.contract.settings import ConfigError
from qqworker.handler_import import load_handler_retrying
from qqworker.handlers import HandlerImportFailed


def test_a_failing_import_is_retried_with_backoff_and_a_line_per_try(caplog) -> None:
    tries = []

    def load(spec: str):
        tries.append(spec)
        if len(tries) < 3:
            raise HandlerImportFailed("mod", ConnectionError("refused"))
        return print

    progress = Progress()
    phases = []
    progress.on_change = lambda: phases.append((progress.phase, progress.attempt))
    caplog.set_level(logging.INFO)
    handler = asyncio.run(load_handler_retrying("mod:f", Backoff(0.01, 0.02), progress, load=load))
    assert handler is print and len(tries) == 3
    lines = [r for r in caplog.records if getattr(r, "event", None) == LogEvent.HANDLER_IMPORT_FAILED]
    assert [(r.attempt, r.error) for r in lines] == [
        (1, "ConnectionError: refused"),
        (2, "ConnectionError: refused"),
    ]
    assert all(0 < r.delay_s <= 0.02 for r in lines)
    assert phases == [(Phase.WAITING, 1), (Phase.WAITING, 2)]
    # Each try is an attempt line for the watchdog's liveness check while the beat says WAITING.
    assert LogEvent.HANDLER_IMPORT_FAILED in ATTEMPT_EVENTS


def test_a_permanent_import_error_is_not_retried() -> None:
    def load(spec: str):
        raise ConfigError("handler: cannot import 'x'")

    with pytest.raises(ConfigError):
        asyncio.run(load_handler_retrying("x:f", Backoff(0.01, 0.02), Progress(), load=load))
