"""The child's output stream, relayed line by line into the watchdog's own ordered JSON stream.

`LineSplitter` turns chunks of bytes into whole lines (a line is never torn: a partial one waits
for its end, or for EOF). `classify` tells a contract JSON line (relayed as is, its `event` fed to
the policy) from anything else the process printed (a traceback, C-level output), which becomes a
`child.output` line so the stream stays one JSON object per line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_LINE_BYTES = 1 << 20  # a "line" this long without a newline is cut, so memory stays bounded


class LineSplitter:
    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._buf = bytearray()
        self.max_line = max_line
        self.cut = 0  # how many over-long lines were cut

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        lines: list[bytes] = []
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end < 0:
                break
            lines.append(bytes(self._buf[start:end]))
            start = end + 1
        del self._buf[:start]
        if len(self._buf) > self.max_line:
            self.cut += 1
            lines.append(bytes(self._buf))
            self._buf.clear()
        return lines

    def flush(self) -> list[bytes]:
        """At EOF: the last line, even without its newline."""
        if not self._buf:
            return []
        line = bytes(self._buf)
        self._buf.clear()
        return [line]


@dataclass(frozen=True)
class Classified:
    text: str
    event: str | None  # a JSON line's event (None: not a contract JSON line)


def classify(raw: bytes) -> Classified:
    text = raw.decode("utf-8", errors="replace").rstrip("\r")
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            return Classified(text, None)
        if isinstance(record, dict) and isinstance(record.get("event"), str):
            return Classified(text, record["event"])
    return Classified(text, None)


def group_output(items: list[Classified]) -> list[tuple[str, str | None]]:
    """Consecutive non-JSON lines of one read (a traceback, mostly) become one `child.output` text."""
    grouped: list[tuple[str, str | None]] = []
    pending: list[str] = []
    for item in items:
        if item.event is None:
            if item.text.strip():
                pending.append(item.text)
            continue
        if pending:
            grouped.append(("\n".join(pending), None))
            pending = []
        grouped.append((item.text, item.event))
    if pending:
        grouped.append(("\n".join(pending), None))
    return grouped
