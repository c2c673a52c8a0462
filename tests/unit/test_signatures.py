"""Handler signatures: `(event)` and `(event, reply)`, sync or async, decided once at load."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

from qqworker.contract.settings import ConfigError
from qqworker.signatures import adapt, is_async

calls: list[tuple[str, Any]] = []


def one(event: Any) -> str:
    calls.append(("one", event))
    return "one"


async def one_async(event: Any) -> str:
    calls.append(("one_async", event))
    return "one_async"


def two(event: Any, reply: Any) -> None:
    calls.append(("two", (event, reply)))


def with_default(event: Any, reply: Any = None, *, flag: bool = False) -> None: ...


def star(*args: Any) -> None: ...


class Callable1:
    async def __call__(self, event: Any) -> str:
        return "instance"


def test_two_argument_handlers_are_used_as_they_are() -> None:
    for fn in (two, with_default, star, functools.partial(lambda a, b, c: None, 1)):
        assert adapt(fn, "h") is fn


def test_a_sync_one_argument_handler_gets_only_the_event() -> None:
    calls.clear()
    wrapped = adapt(one, "mod:one")
    assert not is_async(wrapped)
    assert wrapped("ev", "reply") == "one"
    assert calls == [("one", "ev")]


def test_an_async_one_argument_handler_stays_async() -> None:
    calls.clear()
    for fn in (one_async, Callable1()):
        wrapped = adapt(fn, "h")
        assert is_async(wrapped)
        assert asyncio.run(wrapped("ev", "reply")) in ("one_async", "instance")
    assert calls == [("one_async", "ev")]


@pytest.mark.parametrize(
    "fn",
    [lambda: None, lambda a, b, c: None, lambda *, event: None, lambda event, reply, *, must: None],
    ids=["none", "three", "keyword-only", "required-keyword"],
)
def test_any_other_signature_is_refused_with_the_accepted_forms(fn: Any) -> None:
    with pytest.raises(ConfigError) as info:
        adapt(fn, "mod:fn")
    message = str(info.value)
    assert "mod:fn" in message and "f(event)" in message and "f(event, reply)" in message
