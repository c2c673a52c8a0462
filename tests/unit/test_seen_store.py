"""The dedupe window on disk: only handled events' keys, only for the same bot's same session."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading

from qqworker.atomic import write_atomic
from qqworker.protocol import DEDUPE_WINDOW, Dispatch, ResumePoint, event_key
from qqworker.seen_store import SeenKeeper, decode, encode, handled_keys, load, seen_path

APP = "102000001"


def session_with(*ids: str) -> ResumePoint:
    s = ResumePoint(session_id="s-1", seq=len(ids))
    for i in ids:
        assert s.first_sighting(event_key("C2C_MESSAGE_CREATE", f"env-{i}", {"id": i}) or "")
    return s


def event(msg_id: str, seq: int) -> Dispatch:
    return Dispatch("C2C_MESSAGE_CREATE", f"env-{msg_id}", seq, {"id": msg_id})


def test_the_key_is_the_protocols_and_made_in_one_place() -> None:
    assert event_key("T", "env", {"id": "m"}) == "env"  # the envelope id names the event
    assert event_key("T", None, {"id": "m"}) == "T:m"  # d.id (the object's) only without one
    assert event_key("T", None, {"no": "id"}) is None
    assert event_key("T", None, None) is None


def test_seen_path_sits_next_to_the_state_file() -> None:
    assert seen_path("./run/qqwatchdog.session.json") == "./run/qqwatchdog.session.seen.json"
    assert seen_path("/x/state") == "/x/state.seen.json"


def test_unhandled_events_are_left_out_so_a_successor_gets_them_again() -> None:
    s = session_with("a", "b", "c", "d")
    assert handled_keys(s, [event("c", 3)]) == [
        "env-a",
        "env-b",
        "env-d",
    ]
    assert handled_keys(s, []) == s.recent_keys()


def test_round_trip_only_for_the_same_bot_and_session() -> None:
    data = encode(APP, "s-1", ["k1", "k2"])
    assert decode(data, app_id=APP, session_id="s-1") == ["k1", "k2"]
    for kwargs, words in (
        ({"app_id": "9", "session_id": "s-1"}, "another bot"),
        ({"app_id": APP, "session_id": "s-2"}, "another session"),
    ):
        try:
            decode(data, **kwargs)
        except ValueError as exc:
            assert words in str(exc)
        else:
            raise AssertionError("accepted")


def test_encode_is_bounded_by_the_window() -> None:
    keys = [f"k{i}" for i in range(DEDUPE_WINDOW + 10)]
    assert json.loads(encode(APP, "s", keys))["keys"] == keys[-DEDUPE_WINDOW:]


def test_load_never_raises(tmp_path) -> None:
    path = tmp_path / "w.json"
    assert load(str(path), app_id=APP, session_id="s") == ([], None)
    for content, words in (
        (b'{"version": 1, "app_id"', "truncated"),
        (b"[]", "version"),
        (
            json.dumps({"version": 1, "app_id": APP, "session_id": "s", "keys": [1]}).encode(),
            "list of strings",
        ),
    ):
        path.write_bytes(content)
        keys, problem = load(str(path), app_id=APP, session_id="s")
        assert keys == [] and problem is not None and words in problem
    assert load(str(tmp_path), app_id=APP, session_id="s")[1].startswith("unreadable")


def test_a_restored_window_drops_what_the_predecessor_handled() -> None:
    successor = ResumePoint(session_id="s-1", seq=1)
    successor.remember(["C2C_MESSAGE_CREATE:a", "C2C_MESSAGE_CREATE:b"])
    assert not successor.first_sighting("C2C_MESSAGE_CREATE:a")
    assert successor.first_sighting("C2C_MESSAGE_CREATE:c")


def test_keeper_writes_on_change_only_privately(tmp_path) -> None:
    path = str(tmp_path / "w.json")
    s = session_with("a")
    unfinished: list[Dispatch] = []
    keeper = SeenKeeper(path, APP, s, lambda: unfinished)

    async def scenario() -> None:
        await keeper.save()
        assert keeper.saves == 1
        await keeper.save()  # nothing new
        assert keeper.saves == 1
        s.first_sighting("env-b")
        unfinished.append(event("b", 2))
        await keeper.save()
        assert keeper.saves == 2
        assert load(path, app_id=APP, session_id="s-1")[0] == ["env-a"]
        unfinished.clear()  # b handled
        await keeper.save()
        assert load(path, app_id=APP, session_id="s-1")[0] == ["env-a", "env-b"]

    asyncio.run(scenario())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_keeper_survives_a_failing_write_and_retries(tmp_path, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    keeper = SeenKeeper(str(blocker / "w.json"), APP, session_with("a"), lambda: [])

    async def scenario() -> None:
        await keeper.save()
        await keeper.save()  # retried (the mark was reset), said only once

    with caplog.at_level("WARNING", logger="qqworker.seen"):
        asyncio.run(scenario())
    assert keeper.saves == 0 and keeper.failed
    said = [r for r in caplog.records if r.name == "qqworker.seen"]  # not another logger's line under load
    assert len(said) == 1 and "Cannot write the dedupe window" in said[0].getMessage()


def test_a_write_cut_short_by_the_stop_lands_before_the_final_one_never_after(tmp_path) -> None:
    """The periodic save is cancelled at the stop while its thread still writes: the final save waits
    for that write, then writes the newer content, so the file ends with the newest."""
    path = str(tmp_path / "w.json")
    s = session_with("a")
    release = threading.Event()
    order: list[list[str]] = []

    def slow_first_write(target: str, data: bytes) -> None:
        if not order:
            release.wait(5)
        order.append(json.loads(data)["keys"])
        write_atomic(target, data)

    keeper = SeenKeeper(path, APP, s, lambda: [], write=slow_first_write)

    async def scenario() -> None:
        periodic = asyncio.create_task(keeper.save())
        await asyncio.sleep(0.05)
        periodic.cancel()  # the stop: its write goes on in its thread
        s.first_sighting("env-b")
        asyncio.get_running_loop().call_later(0.1, release.set)
        await keeper.save(timeout=5)

    asyncio.run(scenario())
    assert order == [["env-a"], ["env-a", "env-b"]]
    assert load(path, app_id=APP, session_id="s-1")[0] == order[-1]


def test_the_final_save_is_bounded_when_the_disk_hangs(tmp_path, caplog) -> None:
    release = threading.Event()
    keeper = SeenKeeper(
        str(tmp_path / "w.json"), APP, session_with("a"), lambda: [], write=lambda p, d: release.wait(5)
    )

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await keeper.save(timeout=0.2)
        return loop.time() - started

    with caplog.at_level("WARNING", logger="qqworker.seen"):
        took = asyncio.run(scenario())
    release.set()
    assert took < 1 and keeper.failed and "not written within 0.2s" in keeper.failed
