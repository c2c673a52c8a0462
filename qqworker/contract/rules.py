"""The rules every setting must obey, checked as a whole at start and rendered into the README.

Per field, from the settings table's metadata: a number (int or float field) must be finite, and
within its `minimum`/`maximum`; an int field without a `maximum` is still bounded by INT_MAX, so an
overflowing value is refused too. A field added to the table later gets these rules by default.
`RELATIONS` holds the rules that tie several settings together.

The functions here return a one-line error (naming the key, its value, where the value came from,
and the rule) or None; `Settings.validate` turns that line into a `ConfigError` (exit 78).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass
from typing import Any

INT_MAX = 2**31 - 1
FRESH_WORKER_MB = 40  # a fresh worker's RSS (measured ~39 MB): a limit below it kills every child
MEMORY_FLOOR_MB = 64  # the smallest memory limit accepted, with room for a handler and a backlog
HEARTBEAT_MARGIN = 2.0  # the heartbeat timeout must span at least this many beat intervals


def is_number(f: Field[Any]) -> bool:
    kind = type(f.default)
    return kind in (int, float)


def bounds(f: Field[Any]) -> tuple[float | None, float | None]:
    """(minimum, maximum) of a number field; an int is bounded by INT_MAX when it names no maximum."""
    minimum, maximum = f.metadata.get("minimum"), f.metadata.get("maximum")
    if maximum is None and type(f.default) is int:
        maximum = INT_MAX
    return minimum, maximum


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}".replace(",", "_") if abs(value) >= 10_000 else f"{value:g}"


def field_rule(f: Field[Any]) -> str:
    """The rule of one field, in words (empty for a field with none)."""
    if not is_number(f):
        return ""
    minimum, maximum = bounds(f)
    kind = "an integer" if type(f.default) is int else "a finite number"
    if minimum is not None and maximum is not None:
        return f"{kind}, {_num(minimum)} to {_num(maximum)}"
    if minimum is not None:
        return f"{kind}, at least {_num(minimum)}"
    if maximum is not None:
        return f"{kind}, at most {_num(maximum)}"
    return kind


def _origin(name: str, origins: Mapping[str, str] | None) -> str:
    origin = (origins or {}).get(name)
    return f" (from {origin})" if origin else ""


def field_error(f: Field[Any], value: Any, origins: Mapping[str, str] | None = None) -> str | None:
    if not is_number(f):
        return None
    where = _origin(f.name, origins)
    rule = field_rule(f)
    if isinstance(value, float) and not math.isfinite(value):
        return f"{f.name}: must be {rule}, got {value!r}{where}"
    minimum, maximum = bounds(f)
    if minimum is not None and value < minimum:
        return f"{f.name}: must be at least {_num(minimum)} ({rule}), got {value!r}{where}"
    if maximum is not None and value > maximum:
        return f"{f.name}: must be at most {_num(maximum)} ({rule}), got {value!r}{where}"
    return None


@dataclass(frozen=True)
class Relation:
    key: str  # the setting the error names (the one to change, usually)
    others: tuple[str, ...]  # the settings it is compared with
    rule: str  # in words, for the error and the README
    holds: Callable[[Any], bool]


RELATIONS: tuple[Relation, ...] = (
    Relation(
        "retry_max", ("retry_initial",), "retry_max ≥ retry_initial", lambda s: s.retry_max >= s.retry_initial
    ),
    Relation(
        "respawn_max",
        ("respawn_initial",),
        "respawn_max ≥ respawn_initial",
        lambda s: s.respawn_max >= s.respawn_initial,
    ),
    Relation(
        "heartbeat_timeout",
        ("heartbeat_interval",),
        f"heartbeat_timeout ≥ {HEARTBEAT_MARGIN:g} × heartbeat_interval (a late beat is no hang)",
        lambda s: s.heartbeat_timeout >= HEARTBEAT_MARGIN * s.heartbeat_interval,
    ),
    Relation(
        "memory_limit_mb",
        (),
        f"memory_limit_mb is 0 (off) or at least {MEMORY_FLOOR_MB} (a fresh worker uses about "
        f"{FRESH_WORKER_MB} MB: a lower limit kills every child)",
        lambda s: s.memory_limit_mb == 0 or s.memory_limit_mb >= MEMORY_FLOOR_MB,
    ),
)


def relation_error(settings: Any, origins: Mapping[str, str] | None = None) -> str | None:
    for relation in RELATIONS:
        if relation.holds(settings):
            continue
        value = getattr(settings, relation.key)
        others = ", ".join(f"{name} = {getattr(settings, name)!r}" for name in relation.others)
        return (
            f"{relation.key}: {value!r}{_origin(relation.key, origins)} breaks the rule {relation.rule}"
            + (f" ({others})" if others else "")
        )
    return None
