"""Lone surrogates and other odd Unicode round-trip: the simulator encodes them, the worker's gateway
accepts every frame a standards-following JSON encoder can produce, and a log line holding one stays
one valid JSON line."""

import io
import json
import logging

import orjson
import pytest

from qqworker.contract.events import LogEvent
from qqworker.contract.logs import log_event
from qqworker.logs import configure_logging
from qqworker.protocol import Dispatch, FrameRejected
from qqworker.wire import dumps, frame_json
from tests.unit.test_protocol import established

ODD = [
    "\ud83d",  # a lone high surrogate: orjson refuses its escape, json and the RFC accept it
    "\udc00 tail",  # a lone low surrogate
    "\U0001f600",  # an emoji: json.dumps sends it as an escaped surrogate pair
    "中文 😀 \u0000 \u2028 \ufeff \U0010ffff",  # CJK, NUL, a line separator, a BOM, the last code point
]


@pytest.mark.parametrize("content", ODD)
def test_the_worker_accepts_every_standard_frame(content: str) -> None:
    conn = established()
    text = json.dumps(
        {"op": 0, "s": 2, "t": "C2C_MESSAGE_CREATE", "id": "C2C:m1", "d": {"id": "m1", "content": content}}
    )
    for wire in (text, text.encode()):
        (event,) = established().receive_text(wire, 1)
        assert isinstance(event, Dispatch) and event.data["content"] == content
    assert isinstance(conn.receive_text(text, 1)[0], Dispatch)


def test_orjson_alone_refuses_a_lone_surrogate_escape() -> None:
    """Why the fallback exists (and that it is only a fallback: orjson takes everything else)."""
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads('{"a": "\\ud83d"}')
    assert orjson.loads('{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}


@pytest.mark.parametrize("bad", [b'{"op": 0, "d": "\xff"}', "{not json", b"\xc3("])
def test_what_is_not_json_is_still_rejected(bad: str | bytes) -> None:
    (out,) = established().receive_text(bad, 1)
    assert isinstance(out, FrameRejected) and out.reason == "frame is not JSON"


@pytest.mark.parametrize("content", ODD)
def test_the_simulator_encodes_odd_unicode(content: str) -> None:
    text = dumps({"content": content})
    assert json.loads(text) == {"content": content}
    text.encode()  # never a UnicodeEncodeError: a lone surrogate goes out escaped
    assert json.loads(frame_json({"d": content})[2:].decode()) == {"d": content}
    if content == "中文 😀 \u0000 \u2028 \ufeff \U0010ffff":
        assert "中文" in text  # UTF-8 as is when it can be


def test_a_log_line_with_a_lone_surrogate_is_one_valid_json_line() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    log = logging.getLogger("test.unicode")
    try:
        configure_logging(role="worker", stream=stream)
        log_event(log, LogEvent.HANDLER_ERROR, "handler failed on \ud83d", event_type="X", error="\udc00")
    finally:
        configure_logging(role="worker")
    (line,) = raw.getvalue().decode("utf-8").splitlines()
    record = json.loads(line)
    assert record["message"] == "handler failed on \ud83d" and record["error"] == "\udc00"
