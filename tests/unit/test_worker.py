"""The listen loop's human-readable message parts."""

from __future__ import annotations

import pytest

from qqworker.worker import attempts_text, describe_error, seconds_text


@pytest.mark.parametrize(
    ("delay", "text"),
    [(5.0, "5.0s"), (60, "60.0s"), (0, "0.0s"), (0.05, "0.05s"), (0.5, "0.50s"), (1.04, "1.0s")],
)
def test_delays_read_as_the_contract_shows_them(delay: float, text: str) -> None:
    assert seconds_text(delay) == text


def test_attempts_show_the_limit_or_say_there_is_none() -> None:
    assert attempts_text(3, 100) == "attempt 3/100"
    assert attempts_text(7, 0) == "attempt 7, no limit"


def test_errors_name_their_type_even_without_a_message() -> None:
    assert describe_error(TimeoutError()) == "TimeoutError"
    assert (
        describe_error(OSError(101, "Network is unreachable"))
        == "OSError: [Errno 101] Network is unreachable"
    )
