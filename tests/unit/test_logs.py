import io
import json
import logging
import re
from pathlib import Path

import pytest

from qqworker.contract.events import EVENT_DOCS, LogEvent
from qqworker.contract.logs import REDACTED, Redactor, log_event, redactor
from qqworker.logs import configure_logging

RFC3339_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def stream() -> io.StringIO:
    out = io.StringIO()
    configure_logging("worker", generation=3, stream=out)
    yield out
    configure_logging("worker", stream=io.StringIO())


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_has_the_contract_fields_in_order(stream: io.StringIO) -> None:
    log_event(
        logging.getLogger("qqworker.test"),
        LogEvent.RECONNECT_SCHEDULED,
        "Reconnecting in 5.0s (attempt 3/100)",
        attempt=3,
        delay_s=5.0,
        max_attempts=100,
    )
    (line,) = lines(stream)
    assert list(line)[:8] == ["timestamp", "level", "logger", "message", "event", "role", "pid", "generation"]
    assert RFC3339_MS_Z.match(line["timestamp"])
    assert line["level"] == "INFO" and line["logger"] == "qqworker.test"
    assert line["message"] == "Reconnecting in 5.0s (attempt 3/100)"
    assert line["event"] == "reconnect.scheduled" and line["role"] == "worker" and line["generation"] == 3
    assert (line["attempt"], line["delay_s"], line["max_attempts"]) == (3, 5.0, 100)


def test_foreign_log_records_still_become_contract_lines(stream: io.StringIO) -> None:
    logging.getLogger("someone.else").warning("plain %s", "message")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("x").exception("failed")
    first, second = lines(stream)
    assert first["event"] == "log" and first["message"] == "plain message" and first["level"] == "WARNING"
    assert "RuntimeError: boom" in second["exc_info"]


def test_chinese_text_stays_readable(stream: io.StringIO) -> None:
    log_event(logging.getLogger("t"), LogEvent.DISPATCH, "收到消息", event_type="C2C_MESSAGE_CREATE")
    assert "收到消息" in stream.getvalue()


def test_secrets_and_tokens_never_reach_a_line(stream: io.StringIO) -> None:
    redactor.add("s3cr3t-Secret-value")
    redactor.add("tok-ABCDEF123456")
    log = logging.getLogger("t")
    log_event(
        log,
        LogEvent.TOKEN_FETCHED,
        "token tok-ABCDEF123456 fetched",
        expires_in=7200,
        header="QQBot tok-ABCDEF123456",
        nested={"secret": "s3cr3t-Secret-value"},
    )
    log.error("secret in args: %s", "s3cr3t-Secret-value")
    text = stream.getvalue()
    assert "s3cr3t-Secret-value" not in text and "tok-ABCDEF123456" not in text
    assert text.count(REDACTED) == 4
    assert all(json.loads(line) for line in text.splitlines())


def test_redactor_catches_json_escaped_forms() -> None:
    r = Redactor()
    r.add('quo"te\\secret')
    assert "secret" not in r(json.dumps({"v": 'quo"te\\secret'}))
    r.add("")
    assert r("unchanged") == "unchanged"


def test_relayed_lines_are_redacted_too(stream: io.StringIO) -> None:
    from qqworker.logs import current_handler

    redactor.add("relay-secret-999")
    handler = current_handler()
    assert handler is not None
    handler.write_line('{"message": "relay-secret-999"}')
    assert "relay-secret-999" not in stream.getvalue()


def test_log_file_is_written_and_reopened_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "qq.log"
    handler = configure_logging("watchdog", log_file=str(path), stream=io.StringIO())
    try:
        log = logging.getLogger("t")
        log_event(log, LogEvent.WATCHDOG_STARTED, "one")
        path.rename(tmp_path / "logs" / "qq.log.1")
        log_event(log, LogEvent.WATCHDOG_STARTED, "two")  # still into the renamed file
        handler.reopen()
        log_event(log, LogEvent.WATCHDOG_STARTED, "three")
        rotated = [
            json.loads(x)["message"] for x in (tmp_path / "logs" / "qq.log.1").read_text().splitlines()
        ]
        fresh = [json.loads(x)["message"] for x in path.read_text().splitlines()]
        assert rotated == ["one", "two"] and fresh == ["three"]
    finally:
        configure_logging("worker", stream=io.StringIO())


def test_every_event_is_documented() -> None:
    assert set(EVENT_DOCS) == set(LogEvent)
    assert len({e.value for e in LogEvent}) == len(LogEvent)


# The tokens the watchdog's redactor learns -------------------------------------------------------------


def test_the_redactor_lists_the_latest_secrets_it_learnt_and_not_those_a_known_one_covers() -> None:
    r = Redactor()
    told = []
    r.on_add = lambda: told.append(1)
    r.add("app-secret")
    r.add("token-1")
    r.add("QQBot token-1")  # covered by token-1
    r.add("token-1")  # known: nothing new
    for n in range(2, 6):
        r.add(f"token-{n}")
    assert r.learnt() == ("token-2", "token-3", "token-4", "token-5")
    assert len(told) == 7
    assert r("QQBot token-1 and token-5, token-1") == f"{REDACTED} and {REDACTED}, {REDACTED}"


def test_the_watchdog_remembers_a_bounded_number_of_tokens_it_was_told() -> None:
    r = Redactor()
    r.add("app-secret")
    r.remember(["tok-a", 'tok"b'])
    assert r('raw tok-a, json "tok\\"b", app-secret') == f'raw {REDACTED}, json "{REDACTED}", {REDACTED}'
    r.remember([f"later-{n}" for n in range(Redactor.MAX_REMEMBERED)])
    assert r("tok-a") == "tok-a"  # the oldest is forgotten; the bound holds
    assert r("later-0 later-7 app-secret") == f"{REDACTED} {REDACTED} {REDACTED}"


# Odd Unicode in a log line ------------------------------------------------------------------------


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
