"""The README's generated blocks: one reader and one writer for every table a script renders into it.

A block is

    <!-- BEGIN generated:NAME (how to regenerate it) -->
    BODY
    <!-- END generated:NAME -->

`read` returns BODY, `replace` swaps it (keeping the BEGIN line as it is), `check` says whether the README
holds exactly this BODY. scripts/gen_docs.py, scripts/fault_table.py and the benchmark all go through here.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["README", "MissingBlock", "begin_marker", "check", "read", "replace"]

README = Path(__file__).resolve().parent.parent / "README.md"


class MissingBlock(LookupError):
    """The text has no generated block of this name (and none may be created)."""


def begin_marker(name: str, how: str) -> str:
    return f"<!-- BEGIN generated:{name} ({how}) -->"


def _pattern(name: str) -> re.Pattern[str]:
    # The name ends at a space or at "-->": "settings" must not match "settings-rules".
    key = re.escape(name)
    return re.compile(
        rf"(<!-- BEGIN generated:{key}(?= |-->)[^\n]*-->\n)(.*?)\n(<!-- END generated:{key} -->)", re.DOTALL
    )


def read(text: str, name: str) -> str | None:
    """The body of block `name`, or None when there is none."""
    found = _pattern(name).search(text)
    return None if found is None else found.group(2)


def check(text: str, name: str, body: str) -> bool:
    """True when block `name` exists and holds exactly `body`."""
    return read(text, name) == body


def replace(text: str, name: str, body: str, *, how: str | None = None, section: str | None = None) -> str:
    """`text` with block `name` holding `body`. A missing block is created only when `how` (its BEGIN
    line's note) is given: right under the `section` heading (`## Benchmarks`), or at the end under a new
    one; without `how` it raises MissingBlock."""
    pattern = _pattern(name)
    if pattern.search(text):
        return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(3), text, count=1)
    if how is None or section is None:
        raise MissingBlock(f"README.md has no generated:{name} block")
    block = f"{begin_marker(name, how)}\n{body}\n<!-- END generated:{name} -->"
    if section in text:
        head, tail = text.split(section, 1)
        heading_rest, _, rest = tail.partition("\n")
        return f"{head}{section}{heading_rest}\n\n{block}\n{rest}"
    return text.rstrip("\n") + f"\n\n{section}\n\n{block}\n"
