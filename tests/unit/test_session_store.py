"""The persisted session: when it is used, why it is ignored, when it is written, how it is written."""

from __future__ import annotations

import json
import os
import stat
import threading
import time

import pytest

from qqworker.atomic import write_atomic
from watchdog.session_store import (
    REFRESH_EVERY_S,
    SessionFile,
    SessionKeeper,
    StoredSession,
    judge,
    load,
    parse,
    resumed_from,
)

APP = "102000001"
NOW = 1_800_000_000.0


def stored(**changes: object) -> bytes:
    raw = {
        "version": 1,
        "app_id": APP,
        "session_id": "s-1",
        "seq": 42,
        "api_base": "https://api.bot.qq.com",
        "last_connected_at": NOW - 10,
        "saved_at": NOW - 9,
        "clean_stop": True,
    }
    raw.update(changes)
    return json.dumps(raw).encode()


def test_a_fresh_session_of_this_bot_is_used() -> None:
    verdict = judge(stored(), app_id=APP, now=NOW, max_age_s=1800)
    assert verdict.session is not None
    assert (verdict.session.session_id, verdict.session.seq) == ("s-1", 42)
    assert verdict.session.api_base == "https://api.bot.qq.com" and verdict.session.clean_stop
    assert verdict.age_s == 10.0 and "10.0s ago" in verdict.reason


def test_no_file_is_quiet() -> None:
    verdict = judge(None, app_id=APP, now=NOW, max_age_s=1800)
    assert verdict.session is None and verdict.quiet


def test_age_counts_from_the_last_connection_up_to_the_limit() -> None:
    assert judge(stored(last_connected_at=NOW - 1800), app_id=APP, now=NOW, max_age_s=1800).session
    old = judge(stored(last_connected_at=NOW - 1801), app_id=APP, now=NOW, max_age_s=1800)
    assert old.session is None and not old.quiet
    assert "too old" in old.reason and "1801s ago" in old.reason and "1800s" in old.reason
    # Never connected while persisted: the save time stands in.
    assert judge(stored(last_connected_at=None, saved_at=NOW - 5), app_id=APP, now=NOW, max_age_s=10).session
    stale = stored(last_connected_at=None, saved_at=NOW - 50)
    assert not judge(stale, app_id=APP, now=NOW, max_age_s=10).session


def test_zero_max_age_turns_resuming_off() -> None:
    verdict = judge(stored(), app_id=APP, now=NOW, max_age_s=0)
    assert verdict.session is None and "off" in verdict.reason


def test_a_time_far_in_the_future_is_not_trusted_a_little_is() -> None:
    assert judge(stored(last_connected_at=NOW + 60), app_id=APP, now=NOW, max_age_s=1800).session
    verdict = judge(stored(last_connected_at=NOW + 3600), app_id=APP, now=NOW, max_age_s=1800)
    assert verdict.session is None and "future" in verdict.reason


def test_another_bots_session_is_never_used() -> None:
    verdict = judge(stored(app_id="999"), app_id=APP, now=NOW, max_age_s=1800)
    assert verdict.session is None and "another bot" in verdict.reason and "999" in verdict.reason


def test_a_dropped_session_is_not_resumable() -> None:
    for changes in ({"session_id": None}, {"seq": None}):
        verdict = judge(stored(**changes), app_id=APP, now=NOW, max_age_s=1800)
        assert verdict.session is None and "no resumable session" in verdict.reason


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "not JSON"),
        (stored()[:40], "truncated or corrupt"),
        (b"\xff\xfe garbage", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (stored(version=2), "unknown version 2"),
        (stored(session_id=7), "session_id is not a str"),
        (stored(session_id=""), "session_id is empty"),
        (stored(seq="42"), "seq is not a int"),
        (stored(seq=True), "seq is not a int"),
        (stored(seq=-1), "seq is negative"),
        (stored(app_id=None), "app_id is not a str"),
        (stored(saved_at="yesterday"), "saved_at is not a int or float"),
        (stored(api_base=["x"]), "api_base"),
        (stored(last_connected_at="NaN"), "last_connected_at"),
        (b'{"version": 1, "app_id": "1", "saved_at": Infinity, "session_id": "s", "seq": 1}', "finite"),
    ],
)
def test_a_damaged_file_is_ignored_with_the_reason(data: bytes, words: str) -> None:
    verdict = judge(data, app_id=APP, now=NOW, max_age_s=1800)
    assert verdict.session is None and not verdict.quiet
    assert verdict.reason.startswith("damaged: ") and words in verdict.reason


def test_encode_parse_round_trip_holds_no_secret_field() -> None:
    s = StoredSession(APP, "s-1", 5, None, NOW, NOW + 1, clean_stop=False)
    assert parse(s.encode()) == s
    assert set(json.loads(s.encode())) == {
        "version",
        "app_id",
        "session_id",
        "seq",
        "api_base",
        "last_connected_at",
        "saved_at",
        "clean_stop",
    }


# When to write --------------------------------------------------------------------------------


def test_keeper_writes_on_every_change_and_refreshes_while_connected() -> None:
    k = SessionKeeper(APP)
    first = k.observe(session_id="s", seq=1, api_base=None, connected=True, now=NOW)
    assert first is not None and first.last_connected_at == NOW and not first.clean_stop
    assert k.observe(session_id="s", seq=1, api_base=None, connected=True, now=NOW + 1) is None
    moved = k.observe(session_id="s", seq=2, api_base=None, connected=True, now=NOW + 2)
    assert moved is not None and moved.seq == 2
    based = k.observe(session_id="s", seq=2, api_base="https://b", connected=True, now=NOW + 3)
    assert based is not None and based.api_base == "https://b"
    # The API base is kept when a beat does not carry one (a beat of a version without the field).
    assert k.observe(session_id="s", seq=2, api_base=None, connected=True, now=NOW + 4) is None
    refreshed = k.observe(session_id="s", seq=2, api_base=None, connected=True, now=NOW + 3 + REFRESH_EVERY_S)
    assert refreshed is not None and refreshed.last_connected_at == NOW + 3 + REFRESH_EVERY_S


def test_keeper_records_when_the_connection_was_lost_and_then_stays_quiet() -> None:
    k = SessionKeeper(APP)
    k.observe(session_id="s", seq=9, api_base=None, connected=True, now=NOW)
    lost = k.observe(session_id="s", seq=9, api_base=None, connected=False, now=NOW + 2)
    assert lost is not None and lost.last_connected_at == NOW + 2
    assert k.observe(session_id="s", seq=9, api_base=None, connected=False, now=NOW + 600) is None
    final = k.final(NOW + 700)
    assert final.clean_stop and final.last_connected_at == NOW + 2 and final.saved_at == NOW + 700


def test_keeper_started_from_a_restored_session_keeps_its_last_connection_time() -> None:
    restored = StoredSession(APP, "s", 3, "https://b", NOW - 30, NOW - 29, clean_stop=True)
    k = SessionKeeper(APP, restored)
    out = k.observe(session_id="s", seq=3, api_base=None, connected=False, now=NOW)
    assert out is not None and out.last_connected_at == NOW - 30 and out.api_base == "https://b"
    assert k.final(NOW + 1).last_connected_at == NOW - 30


def test_keeper_writes_a_dropped_session_as_such() -> None:
    k = SessionKeeper(APP)
    k.observe(session_id="s", seq=3, api_base=None, connected=True, now=NOW)
    dropped = k.observe(session_id=None, seq=None, api_base=None, connected=False, now=NOW + 1)
    assert dropped is not None and not dropped.resumable
    assert judge(dropped.encode(), app_id=APP, now=NOW + 2, max_age_s=1800).session is None


# The file -------------------------------------------------------------------------------------


def test_write_atomic_is_private_and_leaves_no_temporary(tmp_path) -> None:
    path = tmp_path / "sub" / "state.json"
    write_atomic(str(path), b"one")
    write_atomic(str(path), b"two")
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(path.parent) == ["state.json"]


def test_load_reads_missing_unreadable_and_oversized_files(tmp_path) -> None:
    assert load(str(tmp_path / "none.json"), app_id=APP, now=NOW, max_age_s=10).quiet
    verdict = load(str(tmp_path), app_id=APP, now=NOW, max_age_s=10)  # a directory
    assert verdict.session is None and verdict.reason.startswith("unreadable")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (70 * 1024))
    assert "larger than" in load(str(big), app_id=APP, now=NOW, max_age_s=10).reason


def test_session_file_round_trip_and_failure_is_said_once(tmp_path, caplog) -> None:
    clock = [NOW]
    path = str(tmp_path / "state.json")
    f = SessionFile(path, APP, clock=lambda: clock[0])
    assert f.restore(1800).quiet
    f.observe(session_id="s", seq=4, api_base="https://b", connected=True)
    clock[0] += 3
    f.stop()
    g = SessionFile(path, APP, clock=lambda: clock[0] + 1)
    verdict = g.restore(1800)
    assert verdict.session is not None and verdict.session.seq == 4 and verdict.session.clean_stop
    info = resumed_from(verdict)
    assert info is not None and info["session_id"] == "s" and info["seq"] == 4 and info["age_s"] == 1.0
    assert SessionFile("", APP).restore(1800).quiet  # off
    blocked = SessionFile(str(tmp_path / "state.json" / "x"), APP)  # a file where a directory must be
    with caplog.at_level("ERROR", logger="watchdog"):
        for seq in (1, 2, 3):
            blocked.observe(session_id="s", seq=seq, api_base=None, connected=True)
            assert blocked.writer.flush(5)
        blocked.stop()
    assert len(caplog.records) == 1 and "Cannot write the persisted session" in caplog.records[0].getMessage()


def test_a_hung_disk_never_blocks_the_supervisor_and_the_stop_is_bounded(caplog) -> None:
    release = threading.Event()
    calls: list[bytes] = []

    def hanging_write(path: str, data: bytes) -> None:
        calls.append(data)
        release.wait(10)

    f = SessionFile("/nowhere/state.json", APP, write=hanging_write)
    started = time.monotonic()
    for seq in range(50):
        f.observe(session_id="s", seq=seq, api_base=None, connected=True)
    assert time.monotonic() - started < 0.5  # never waited for the disk
    with caplog.at_level("ERROR", logger="watchdog"):
        f.stop(timeout=0.2)
    assert time.monotonic() - started < 2
    assert "not written within 0.2s" in caplog.records[-1].getMessage()
    release.set()
    assert f.writer.flush(5)
    # Superseded contents were skipped: at most the one taken first, then only the newest (the final one).
    assert len(calls) <= 2 and json.loads(calls[-1])["clean_stop"] is True
