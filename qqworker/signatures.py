"""Which calls a user handler accepts, decided once when it is loaded, never per event.

A handler is called as `f(event)` or `f(event, reply)`, sync or async. `adapt` checks the
signature against both and returns a callable the dispatcher can always call with two arguments:
the handler itself when it takes two, a thin wrapper (of the same kind, sync or async) when it takes
only the event. Anything that takes neither is a configuration error (exit 78), with the accepted
forms in the message, so a wrong handler fails at start rather than with a TypeError on every event.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from qqworker.contract.settings import ConfigError

ACCEPTED = "f(event) or f(event, reply), sync (def) or async (async def)"


def is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def _binds(sig: inspect.Signature, count: int) -> bool:
    try:
        sig.bind(*range(count))
    except TypeError:
        return False
    return True


def adapt(fn: Callable[..., Any], name: str) -> Callable[[Any, Any], Any]:
    """`fn` callable as `(event, reply)`; ConfigError when it takes neither `(event)` nor that."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a C callable without a signature: nothing to check against
        return fn
    if _binds(sig, 2):
        return fn
    if not _binds(sig, 1):
        raise ConfigError(f"handler: {name} takes {sig}, which accepts neither; a handler must be {ACCEPTED}")
    if is_async(fn):

        async def event_only_async(event: Any, reply: Any) -> Any:
            return await fn(event)

        wrapper: Callable[[Any, Any], Any] = event_only_async
    else:

        def event_only(event: Any, reply: Any) -> Any:
            return fn(event)

        wrapper = event_only
    wrapper.__qualname__ = wrapper.__name__ = getattr(fn, "__name__", wrapper.__name__)
    return wrapper
