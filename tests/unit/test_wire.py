"""The simulator's wire encoding: odd Unicode (lone surrogates, NUL, a BOM, the last code point) goes out
as JSON any standards-following decoder reads back, UTF-8 as is where it can be."""

import json

import pytest

from qqworker.wire import dumps, frame_json
from tests.unit.test_protocol import ODD


@pytest.mark.parametrize("content", ODD)
def test_the_simulator_encodes_odd_unicode(content: str) -> None:
    text = dumps({"content": content})
    assert json.loads(text) == {"content": content}
    text.encode()  # never a UnicodeEncodeError: a lone surrogate goes out escaped
    assert json.loads(frame_json({"d": content})[2:].decode()) == {"d": content}
    if content == "中文 😀 \u0000 \u2028 \ufeff \U0010ffff":
        assert "中文" in text  # UTF-8 as is when it can be
