"""Line splitting and classification of the child's output: whole lines, bounded, contract or not."""

from __future__ import annotations

from watchdog.relay import CutLine, LineSplitter, classify, group_output


def test_lines_are_never_torn_across_chunks() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"event": "a"}\n{"ev') == [b'{"event": "a"}']
    assert splitter.feed(b'ent": "b"}') == []
    assert splitter.feed(b"\nplain\n\n") == [b'{"event": "b"}', b"plain", b""]
    assert splitter.feed(b"no newline at the end") == []
    assert splitter.flush() == [b"no newline at the end"]
    assert splitter.flush() == []


def test_an_endless_line_is_cut_so_memory_stays_bounded() -> None:
    splitter = LineSplitter(max_line=10, excerpt=4)
    assert splitter.feed(b"x" * 25) == []  # cut: its start is kept, the rest only counted
    assert splitter.feed(b"y" * 30) == []
    (cut,) = splitter.feed(b"z\nnext\n")[:1]
    assert isinstance(cut, CutLine) and cut == b"xxxx" and cut.size == 56
    assert splitter.cut == 1
    splitter.feed(b"w" * 11)
    (last,) = splitter.flush()
    assert isinstance(last, CutLine) and last.size == 11 and splitter.flush() == []


def test_classify_tells_contract_lines_from_other_output() -> None:
    line = b'{"event": "gateway.connecting", "role": "worker", "pid": 42, "attempt": 1}'
    assert classify(line).event == "gateway.connecting"
    assert classify(line, child_pid=42).event == "gateway.connecting"
    assert classify(line, child_pid=43).event is None  # another process's line (a handler's subprocess)
    assert classify(b'{"event": "gateway.connecting", "level": "info"}', 42).event is None  # structlog-style
    assert classify(b'{"event": "x", "role": "watchdog", "pid": 42}', 42).event is None
    assert classify(b"Traceback (most recent call last):").event is None
    assert classify(b'{"not": "an event line"}').event is None
    assert classify(b"{broken json").event is None
    assert classify("中文 \xff".encode(errors="surrogateescape")).text.startswith("中文")


def test_consecutive_plain_lines_become_one_output_record() -> None:
    own = b'{"event": "e", "role": "worker", "pid": 1}'
    items = [classify(x, 1) for x in (b"Traceback:", b"  File x", own, b"", b"tail", CutLine(b"long"))]
    assert [(g.text, g.event) for g in group_output(items)] == [
        ("Traceback:\n  File x", None),
        (own.decode(), "e"),
        ("tail", None),
        ("long", None),
    ]
