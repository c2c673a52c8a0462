"""Restarts lose nothing: `scripts/run.sh restart` resumes the persisted session (QQW_STATE_FILE) against
the real simulator; events sent while the watchdog was down reach the handler after the restart, once each;
a damaged, foreign or old state, or a session the platform forgot, means a fresh Identify with a line
saying why, never a crash. (A SIGKILLed watchdog started again, whose Resume replays events the old
worker had handled, is a fault-matrix row: test_fault_restart.py::test_watchdog_killed_and_started_again.)"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.supervised import Supervised
from tests.support import PYTHON, RunTimings, SimulatorProcess, assert_no_secret, wait_until

ROOT = Path(__file__).resolve().parents[2]
RUN = str(ROOT / "scripts" / "run.sh")
FAST = RunTimings.only(retry_initial=0.2, retry_max=1, respawn_initial=0.1, stop_timeout=5)


def sh(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def records(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):  # a line being written
                out.append(json.loads(line))
    return out


def of(recs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [r for r in recs if r.get("event") == event]


def wait_count(source: Any, event: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """Until `source()` (records) holds at least `count` lines of `event`."""
    return wait_until(
        lambda: (found := of(source(), event)) and len(found) >= count and found, timeout, f"{count}× {event}"
    )


def send(sim: SimulatorProcess, count: int) -> None:
    sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "count": count})


def handled_once_each(recs: list[dict[str, Any]], expected: int) -> None:
    """The built-in `log` handler writes one `dispatch` line per event handed to it."""
    ids = Counter(r["event_id"] for r in of(recs, "dispatch"))
    assert len(ids) == expected, f"{len(ids)} distinct events handled, expected {expected}"
    twice = {i: n for i, n in ids.items() if n > 1}
    assert not twice, f"handed to the handler more than once: {twice}"


def background_env(sim: SimulatorProcess, run_dir: Path) -> dict[str, str]:
    env = sim.env(QQW_RUN_DIR=str(run_dir), QQW_STATUS_FILE=str(run_dir / "status.json"), QQ_HANDLER="log")
    env.pop("NOTIFY_SOCKET", None)
    return env


def test_run_sh_restart_resumes_the_session_and_loses_no_event(tmp_path: Path) -> None:
    sim = SimulatorProcess()
    run_dir = tmp_path / "run"
    log = run_dir / "qqwatchdog.log"
    env = background_env(sim, run_dir)
    state_file = Path(env["QQW_STATE_FILE"])
    # The credentials come from an env file given by a relative path: restart, run from elsewhere with
    # no credentials in its environment, must find it through the saved (absolute) options.
    (tmp_path / "bot.env").write_text(
        f"QQ_APP_ID={env.pop('QQ_APP_ID')}\nQQ_APP_SECRET={env.pop('QQ_APP_SECRET')}\n"
    )
    (tmp_path / "bot.env").chmod(0o600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def logged() -> list[dict[str, Any]]:
        return records(log)

    try:
        started = sh(["bash", RUN, "--background", "--env-file", "bot.env", *FAST.flags()], env, tmp_path)
        assert started.returncode == 0, started.stdout + started.stderr
        wait_count(logged, "gateway.connected", 1)
        send(sim, 3)
        wait_count(logged, "dispatch", 3)

        # A plain stop keeps the session resumable: the worker closes with 4000, never 1000.
        stopped = sh(["bash", RUN, "stop"], env, tmp_path)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert sim.state()["client_closes"] == {"4000": 1}
        saved = json.loads(state_file.read_text())
        (session,) = sim.state()["sessions"]
        assert saved["session_id"] == session["session_id"] and saved["seq"] == session["seq"]
        assert saved["app_id"] == sim.info["app_id"] and saved["clean_stop"] is True
        assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
        seen_file = state_file.with_name("qqwatchdog.session.seen.json")
        assert stat.S_IMODE(seen_file.stat().st_mode) == 0o600

        send(sim, 4)  # while nothing runs: kept by the platform for the session's Resume
        # Not running: restart starts it with the options saved at the --background start.
        first = sh(["bash", RUN, "restart"], env, elsewhere)
        assert first.returncode == 0, first.stdout + first.stderr
        connected = wait_count(logged, "gateway.connected", 2)
        assert connected[1]["resumed"] is True and connected[1]["session_id"] == session["session_id"]
        wait_count(logged, "dispatch", 7)

        again = sh(["bash", RUN, "restart"], env, elsewhere)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "restart: stopped pid" in again.stdout and "resumed the session" in again.stdout, again.stdout
        gap = re.search(r"connected again ([0-9.]+)s after the stop began", again.stdout)
        assert gap is not None, again.stdout
        assert float(gap.group(1)) < 15  # under load on 2 shared cores; typically 1-2 s
        send(sim, 2)
        wait_count(logged, "dispatch", 9)

        recs = logged()
        handled_once_each(recs, 9)
        state = sim.state()
        assert state["identifies"] == 1 and state["resumes"] == 2  # one session throughout
        assert state["client_closes"] == {"4000": 2}
        starts = of(recs, "watchdog.started")
        assert len(starts) == 3 and starts[0]["resumed_from"] is None
        assert all(s["resumed_from"]["session_id"] == session["session_id"] for s in starts[1:])
        spawned = of(recs, "child.spawned")
        assert [s["resume"] for s in spawned] == [False, True, True]
        # The saved options are those of the first start, with the paths made absolute.
        saved_args = (run_dir / "qqwatchdog.args").read_text().split("\0")
        assert saved_args[:2] == ["--env-file", str(tmp_path / "bot.env")] and "--retry-initial" in saved_args
        assert stat.S_IMODE((run_dir / "qqwatchdog.args").stat().st_mode) == 0o600
        assert sim.info["app_secret"] not in (run_dir / "qqwatchdog.args").read_text()
        assert_no_secret([state_file.read_text(), seen_file.read_text()], [sim.info["app_secret"]])
        status = sh(["bash", RUN, "status", "--json"], env, tmp_path)
        assert json.loads(status.stdout)["status"]["resumed_from"]["session_id"] == session["session_id"]
        human = sh(["bash", RUN, "status"], env, tmp_path).stdout
        assert f"resumed from     session {session['session_id']} at seq" in human and "clean stop" in human
        # The report shows both restarts as their own kind of gap, each resumed, and no outage.
        report = sh([PYTHON, "-m", "watchdog", "report", "--json", str(log)], env, tmp_path)
        data = json.loads(report.stdout)
        assert [(r["clean"], r["resumed"]) for r in data["restarts"]] == [(True, True), (True, True)]
        assert data["outages"] == [] and all(r["duration_s"] is not None for r in data["restarts"])
    finally:
        sh(["bash", RUN, "stop"], env, tmp_path)
        sim.stop()


def watchdog(sim: SimulatorProcess, tmp_path: Path, *extra: str, **env: str) -> Supervised:
    return Supervised(sim, tmp_path, timings=FAST, handler="log", extra_flags=extra, env=env)


STATE_OF_ANOTHER_KIND = {
    "corrupt": (b"\x00\x17 not json at all", "damaged: not JSON"),
    "truncated": (b'{"version": 1, "app_id": "102000001", "session_id": "abc", "se', "truncated or corrupt"),
    "wrong types": (
        b'{"version": 1, "app_id": "102000001", "session_id": ["x"], "seq": "7", "saved_at": 1}',
        "session_id is not a str",
    ),
    "foreign": (None, "another bot"),
    "old": (None, "too old"),
}


def test_a_damaged_foreign_or_old_state_means_a_fresh_identify_and_one_line(tmp_path: Path) -> None:
    sim = SimulatorProcess()
    state_file = sim.state_file
    try:
        # A real, resumable session to start from.
        wd = watchdog(sim, tmp_path)
        wait_count(wd.process.records, "gateway.connected", 1)
        wd.stop(timeout=10)
        good = json.loads(state_file.read_text())
        assert good["session_id"]
        for kind, (content, words) in STATE_OF_ANOTHER_KIND.items():
            if kind == "foreign":
                content = json.dumps({**good, "app_id": "999999"}).encode()
            elif kind == "old":
                content = json.dumps({**good, "last_connected_at": time.time() - 7200}).encode()
            state_file.write_bytes(content)
            wd = watchdog(sim, tmp_path)
            try:
                (connected,) = wait_count(wd.process.records, "gateway.connected", 1)
                recs = wd.process.records()
                (ignored,) = of(recs, "watchdog.session_ignored")
                assert words in ignored["reason"], (kind, ignored)
                assert of(recs, "watchdog.started")[0]["resumed_from"] is None
                assert of(recs, "child.spawned")[0]["resume"] is False
                assert connected["resumed"] is False and "no session to resume" in connected["reason"]
                assert not of(recs, "child.output")  # no traceback anywhere
            finally:
                assert wd.stop(timeout=10) == 0, kind
        # After the last run the file is good again: a session of this bot, written whole.
        assert json.loads(state_file.read_text())["app_id"] == sim.info["app_id"]
    finally:
        sim.stop()


def test_a_session_the_platform_forgot_is_identified_anew_at_once_and_said_so(tmp_path: Path) -> None:
    sim = SimulatorProcess()
    try:
        wd = watchdog(sim, tmp_path)
        wait_count(wd.process.records, "gateway.connected", 1)
        assert wd.stop(timeout=10) == 0
        sim.control("/_sim/close", {"code": 4009, "drop_sessions": True})  # the platform forgets it
        # A long retry delay: a refused Resume must not wait for it.
        wd = watchdog(sim, tmp_path, "--retry-initial", "20", "--retry-max", "30")
        try:
            (connected,) = wait_count(wd.process.records, "gateway.connected", 1, timeout=15)
            recs = wd.process.records()
            assert of(recs, "watchdog.started")[0]["resumed_from"] is not None
            closed = of(recs, "gateway.closed")[0]
            assert closed["action"] == "identify"
            assert connected["resumed"] is False and "refused the Resume" in connected["reason"]
            assert [r["delay_s"] for r in of(recs, "reconnect.scheduled")] == [0.0]
            state = sim.state()
            assert state["counters"]["resumes_failed"] == 1 and state["identifies"] == 2
        finally:
            assert wd.stop(timeout=10) == 0
    finally:
        sim.stop()


def test_resume_max_age_zero_never_resumes(tmp_path: Path) -> None:
    sim = SimulatorProcess()
    try:
        wd = watchdog(sim, tmp_path)
        wait_count(wd.process.records, "gateway.connected", 1)
        assert wd.stop(timeout=10) == 0
        wd = watchdog(sim, tmp_path, "--resume-max-age", "0")
        try:
            (connected,) = wait_count(wd.process.records, "gateway.connected", 1)
            assert connected["resumed"] is False
            assert "off" in of(wd.process.records(), "watchdog.session_ignored")[0]["reason"]
        finally:
            assert wd.stop(timeout=10) == 0
    finally:
        sim.stop()


def test_the_systemd_unit_keeps_the_state_file_where_a_restart_finds_it() -> None:
    """systemd removes RuntimeDirectory (/run/qqwatchdog) at every stop: the state file must live in the
    StateDirectory (/var/lib/qqwatchdog), which survives `systemctl restart` and a reboot."""
    unit: dict[str, list[str]] = {}
    for line in (ROOT / "scripts" / "qqwatchdog.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            unit.setdefault(key.strip(), []).append(value.strip())
    (state,) = [v.split("=", 1)[1] for v in unit["Environment"] if v.startswith("QQW_STATE_FILE=")]
    (directory,) = unit["StateDirectory"]
    assert state.startswith(f"/var/lib/{directory}/")
    assert not any(state.startswith(f"/run/{d}/") for d in unit["RuntimeDirectory"])


def test_events_running_at_a_clean_stop_are_run_again_and_those_finished_behind_them_are_not(
    tmp_path: Path,
) -> None:
    """The handed seq stops short of the event still running at the stop, so the Resume replays it and the
    three that finished after it; the dedupe window (handled events only) lets through just the first."""
    sim = SimulatorProcess()
    journal = tmp_path / "journal.txt"
    journal.touch()
    env = {"QQ_HANDLER": "tests.handlers:journal", "QQW_TEST_JOURNAL": str(journal)}

    def notes() -> list[str]:
        return journal.read_text().splitlines()

    wd = watchdog(sim, tmp_path, **env)
    try:
        wait_count(wd.process.records, "gateway.connected", 1)
        sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "d": {"content": "slow"}})
        send(sim, 3)
        wait_until(lambda: sum(n.startswith("done") for n in notes()) == 3, 15, "the three quick events")
        assert wd.stop(timeout=10) == 0
        (slow,) = [
            n.split()[1] for n in notes() if n.startswith("start") and f"done {n.split()[1]}" not in notes()
        ]
        wd = watchdog(sim, tmp_path, **env)
        (connected,) = wait_count(wd.process.records, "gateway.connected", 1)
        assert connected["resumed"] is True
        wait_until(lambda: f"done {slow}" in notes(), 15, "the interrupted event to run again")
        time.sleep(0.5)  # a duplicate of the others would show by now
        assert sim.state()["counters"]["replayed"] >= 4  # the slow one and the three behind it
        done = Counter(n.split()[1] for n in notes() if n.startswith("done"))
        assert len(done) == 4 and set(done.values()) == {1}, done
        started = Counter(n.split()[1] for n in notes() if n.startswith("start"))
        assert started[slow] == 2 and sorted(started.values()) == [1, 1, 1, 2]
    finally:
        wd.stop(timeout=10)
        sim.stop()


def test_restart_without_a_background_start_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QQ_", "QQW_"))}
    env["QQW_RUN_DIR"] = str(tmp_path / "run")
    result = sh(["bash", RUN, "restart"], env, tmp_path)
    assert result.returncode == 1 and "no saved start options" in result.stderr, result.stderr
    bad = sh(["bash", RUN, "restart", "--frobnicate"], env, tmp_path)
    assert bad.returncode == 2 and "unknown option --frobnicate" in bad.stderr
