"""The child's output stream, relayed line by line into the watchdog's own ordered JSON stream.

`LineSplitter` turns chunks of bytes into whole lines (a line is never torn: a partial one waits
for its end, or for EOF; one longer than the maximum is cut: an excerpt and its size, as a `CutLine`).
`classify` tells a contract JSON line (relayed as is, its `event` fed to the policy) from anything
else the process printed (a traceback, C-level output, a library's own JSON), which becomes a
`child.output` line so the stream stays one JSON object per line. A contract line is one the worker's
own logger wrote: a JSON object with a string `event`, `role` "worker" and the child's `pid`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = [
    "CUT_EXCERPT_BYTES",
    "MAX_LINE_BYTES",
    "Classified",
    "CutLine",
    "LineSplitter",
    "classify",
    "group_output",
]

MAX_LINE_BYTES = 1 << 20  # a "line" this long without a newline is cut, so memory stays bounded
CUT_EXCERPT_BYTES = 4096  # what is kept of a cut line


class CutLine(bytes):
    """The start of a line that was longer than the maximum; `size` is the whole line's length."""

    size: int

    def __new__(cls, excerpt: bytes, size: int | None = None) -> CutLine:
        line = super().__new__(cls, excerpt)
        line.size = len(excerpt) if size is None else size
        return line


class LineSplitter:
    def __init__(self, max_line: int = MAX_LINE_BYTES, excerpt: int = CUT_EXCERPT_BYTES) -> None:
        self._buf = bytearray()
        self.max_line = max_line
        self.excerpt = min(excerpt, max_line)
        self.cut = 0  # how many over-long lines were cut
        self._cutting: tuple[bytes, int] | None = None  # (excerpt, bytes so far) of a line being cut

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        lines: list[bytes] = []
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end < 0:
                break
            if self._cutting is not None:  # the end of an over-long line: one record for all of it
                excerpt, size = self._cutting
                self._cutting = None
                lines.append(CutLine(excerpt, size + end - start))
            else:
                lines.append(bytes(self._buf[start:end]))
            start = end + 1
        del self._buf[:start]
        if self._cutting is not None:
            excerpt, size = self._cutting
            self._cutting = (excerpt, size + len(self._buf))
            self._buf.clear()
        elif len(self._buf) > self.max_line:
            self.cut += 1
            self._cutting = (bytes(self._buf[: self.excerpt]), len(self._buf))
            self._buf.clear()
        return lines

    def flush(self) -> list[bytes]:
        """At EOF: the last line, even without its newline."""
        if self._cutting is not None:
            excerpt, size = self._cutting
            self._cutting = None
            return [CutLine(excerpt, size + len(self._buf))]
        if not self._buf:
            return []
        line = bytes(self._buf)
        self._buf.clear()
        return [line]


@dataclass(frozen=True)
class Classified:
    text: str
    event: str | None  # a JSON line's event (None: not a contract JSON line)
    cut_bytes: int | None = None  # a cut line: the whole line's length (`text` is its start)


def classify(raw: bytes, child_pid: int | None = None) -> Classified:
    """`child_pid`: the pid a contract line must carry (None: any pid, for tests of the shape only)."""
    text = raw.decode("utf-8", errors="replace").rstrip("\r")
    if isinstance(raw, CutLine):
        return Classified(text, None, raw.size)
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            return Classified(text, None)
        if (
            isinstance(record, dict)
            and isinstance(record.get("event"), str)
            and record.get("role") == "worker"
            and (child_pid is None or record.get("pid") == child_pid)
        ):
            return Classified(text, record["event"])
    return Classified(text, None)


def group_output(items: list[Classified]) -> list[Classified]:
    """Consecutive non-JSON lines of one read (a traceback, mostly) become one `child.output` text;
    a cut line stays a record of its own."""
    grouped: list[Classified] = []
    pending: list[str] = []
    for item in items:
        if item.event is None and item.cut_bytes is None:
            if item.text.strip():
                pending.append(item.text)
            continue
        if pending:
            grouped.append(Classified("\n".join(pending), None))
            pending = []
        grouped.append(item)
    if pending:
        grouped.append(Classified("\n".join(pending), None))
    return grouped
