"""Sans-I/O parts of supervision robustness: beat version skew, token hand-over for redaction, the
closed log pipe as a detection, the handler import retry and the one-watchdog lock."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from qqworker.backoff import Backoff
from qqworker.contract.beat import BEAT_VERSION, V1_FIELDS, Beat, Phase, Progress
from qqworker.contract.events import ATTEMPT_EVENTS, LogEvent
from qqworker.contract.exitcodes import ExitCode, exit_meaning
from qqworker.contract.logs import REDACTED, Redactor
from qqworker.contract.settings import ConfigError
from qqworker.handler_import import load_handler_retrying
from qqworker.handlers import HandlerImportFailed, load_handler
from tests.unit.test_policy import T, connect_cleanly, is_kill, make
from watchdog import lock
from watchdog.policy import KEEP, Respawn


def strict_v1_decode(data: bytes) -> Beat:
    """What a watchdog from before beat versions did: every key must be a field it knows."""
    raw = json.loads(data)
    unknown = set(raw) - set(V1_FIELDS)
    if unknown:
        raise TypeError(f"unexpected keyword arguments {unknown}")
    return Beat(**raw)


# Version skew ---------------------------------------------------------------------------------


def test_a_newer_beat_with_fields_this_version_does_not_know_is_read_and_they_are_named() -> None:
    raw = asdict(Beat(phase="connected", attempt=1, session_id="s", seq=4))
    raw.update(v=BEAT_VERSION + 1, future_field={"x": 1}, another=[1, 2])
    beat, unknown = Beat.parse(json.dumps(raw).encode())
    assert (beat.phase, beat.session_id, beat.seq, beat.v) == ("connected", "s", 4, BEAT_VERSION + 1)
    assert unknown == {"future_field", "another"}
    assert Beat.decode(json.dumps(raw).encode()) == beat


def test_a_beat_without_a_version_is_version_1_and_missing_later_fields_take_defaults() -> None:
    beat, unknown = Beat.parse(b'{"phase": "waiting", "attempt": 2, "next_attempt_in_s": 1.5}')
    assert (beat.v, beat.redact, beat.next_attempt_in_s, unknown) == (1, None, 1.5, frozenset())


def test_for_a_version_1_watchdog_the_beat_has_exactly_the_fields_it_knows() -> None:
    beat = Beat(phase="connected", attempt=1, session_id="s", seq=9, redact=("tok",))
    data = beat.encode(version=1)
    old = strict_v1_decode(data)  # would raise on any other field
    assert (old.session_id, old.seq) == ("s", 9)
    assert b"tok" not in data and b'"v"' not in data


def test_every_field_appended_after_version_1_is_left_out_for_it_and_sent_to_newer_ones() -> None:
    later = [f.name for f in fields(Beat) if f.name not in V1_FIELDS]
    assert later[:2] == ["v", "redact"]  # fields appended later by anyone follow; they need no change here
    beat = Beat(phase="starting", attempt=0, redact=("a",))
    assert set(json.loads(beat.encode(version=1))) == set(V1_FIELDS)
    current = json.loads(beat.encode())
    assert current["v"] == BEAT_VERSION and current["redact"] == ["a"]
    assert Beat.decode(beat.encode()) == beat


@pytest.mark.parametrize(
    "raw",
    [
        {"phase": "waiting", "attempt": 1, "v": "2"},
        {"phase": "waiting", "attempt": 1, "redact": "tok"},
        {"phase": "waiting", "attempt": 1, "redact": [1]},
        {"attempt": 1, "v": 3},
        {"phase": "flying", "attempt": 1, "v": BEAT_VERSION},
    ],
)
def test_what_is_not_a_beat_is_still_refused(raw: dict) -> None:
    with pytest.raises(ValueError):
        Beat.decode(json.dumps(raw).encode())


# Tokens for the watchdog's redactor -----------------------------------------------------------


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


def test_the_beater_sends_the_learnt_tokens_newest_first_within_the_size_budget(tmp_path: Path) -> None:
    from qqworker import child
    from qqworker.contract.logs import redactor

    r, w = os.pipe()
    try:
        app = "qqw-unit-app-secret-7f3a"  # the process-wide redactor: strings no other test prints
        beater = child.Beater(w, Progress(), 1.0, os.getppid(), version=BEAT_VERSION, known_secret=app)
        redactor.add(app)
        redactor.add("tok-old-" + "x" * 20)
        redactor.add("tok-new-" + "y" * 20)
        beater.send()
        beat = Beat.decode(os.read(r, 4096).strip())
        assert beat.redact is not None and beat.redact[0].startswith("tok-new-")
        assert app not in beat.redact
        old = child.Beater(w, Progress(), 1.0, os.getppid())  # a watchdog that did not say: version 1
        old.send()
        assert b"tok-" not in os.read(r, 4096)
    finally:
        os.close(r)
        os.close(w)


# A closed log pipe ----------------------------------------------------------------------------


def test_a_closed_log_pipe_while_the_child_runs_is_a_detection_after_a_short_grace() -> None:
    policy = make()
    connect_cleanly(policy, 1.0)
    assert policy.logs_closed(2.0) is KEEP
    grace = min(T.heartbeat_timeout, T.stop_timeout)
    assert policy.next_deadline() == 2.0 + grace
    assert policy.tick(2.0 + grace - 0.1) is KEEP
    assert policy.logs_closed(2.5) is KEEP  # the first EOF counts
    kill = is_kill(policy.tick(2.0 + grace + 0.1), LogEvent.CHILD_LOG_CLOSED)
    assert kill.reason == "log pipe closed" and not kill.force
    assert kill.fields["closed_s"] == pytest.approx(grace + 0.1)


def test_a_closed_log_pipe_followed_by_the_exit_is_a_plain_exit() -> None:
    policy = make()
    connect_cleanly(policy, 1.0)
    policy.logs_closed(2.0)
    assert isinstance(policy.child_exited(2.1, 1), Respawn)
    policy.child_spawned(3.0)
    assert policy.logs_closed_at is None  # a new child starts clean


# The handler import -------------------------------------------------------------------------


@pytest.fixture
def modules(tmp_path: Path):
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("qqw_probe_")]:
        del sys.modules[name]


@pytest.mark.parametrize(
    ("body", "permanent"),
    [
        ("raise ConnectionError('broker not up')", False),
        ("raise OSError(111, 'refused')", False),
        ("raise RuntimeError('not yet')", False),
        ("import qqw_no_such_module_anywhere", True),
        ("def broken(:\n    pass", True),
        ("import os\nos.no_such_attribute", True),
        ("def handle(event):\n    pass", False),
    ],
)
def test_only_errors_of_the_spec_itself_are_permanent(modules: Path, body: str, permanent: bool) -> None:
    name = f"qqw_probe_{abs(hash(body))}"
    (modules / f"{name}.py").write_text(body + "\n")
    if body.startswith("def handle"):
        assert callable(load_handler(f"{name}:handle"))
        with pytest.raises(ConfigError, match="has no"):
            load_handler(f"{name}:missing")
        return
    with pytest.raises(ConfigError if permanent else HandlerImportFailed):
        load_handler(f"{name}:handle")


def test_a_failing_import_is_retried_with_backoff_and_a_line_per_try(caplog) -> None:
    tries = []

    def load(spec: str):
        tries.append(spec)
        if len(tries) < 3:
            raise HandlerImportFailed("mod", ConnectionError("refused"))
        return print

    progress = Progress()
    phases = []
    progress.on_change = lambda: phases.append((progress.phase, progress.attempt))
    caplog.set_level(logging.INFO)
    handler = asyncio.run(load_handler_retrying("mod:f", Backoff(0.01, 0.02), progress, load=load))
    assert handler is print and len(tries) == 3
    lines = [r for r in caplog.records if getattr(r, "event", None) == LogEvent.HANDLER_IMPORT_FAILED]
    assert [(r.attempt, r.error) for r in lines] == [
        (1, "ConnectionError: refused"),
        (2, "ConnectionError: refused"),
    ]
    assert all(0 < r.delay_s <= 0.02 for r in lines)
    assert phases == [(Phase.WAITING, 1), (Phase.WAITING, 2)]
    # Each try is an attempt line for the watchdog's liveness check while the beat says WAITING.
    assert LogEvent.HANDLER_IMPORT_FAILED in ATTEMPT_EVENTS


def test_a_permanent_import_error_is_not_retried() -> None:
    def load(spec: str):
        raise ConfigError("handler: cannot import 'x'")

    with pytest.raises(ConfigError):
        asyncio.run(load_handler_retrying("x:f", Backoff(0.01, 0.02), Progress(), load=load))


# One watchdog per status file -----------------------------------------------------------------


def test_the_lock_admits_one_holder_names_it_and_is_free_once_closed(tmp_path: Path) -> None:
    status = str(tmp_path / "run" / "status.json")
    fd = lock.acquire(status)
    try:
        assert Path(lock.lock_path(status)).read_text() == f"{os.getpid()}\n"
        with pytest.raises(lock.AlreadyRunning) as refused:
            lock.acquire(status)  # another open file description: refused like another process
        assert refused.value.holder == os.getpid()
        assert str(os.getpid()) in str(refused.value)
    finally:
        os.close(fd)
    os.close(lock.acquire(status))


def test_the_pid_file_is_replaced_atomically(tmp_path: Path) -> None:
    pid_file = tmp_path / "qqwatchdog.pid"
    pid_file.write_text("1\n")
    lock.write_pid_file(str(pid_file))
    assert pid_file.read_text() == f"{os.getpid()}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["qqwatchdog.pid"]


def test_the_refusal_has_its_own_exit_code() -> None:
    assert ExitCode.LOCKED == 73 and len({int(c) for c in ExitCode}) == len(ExitCode)
    assert "another watchdog" in exit_meaning(73)


@pytest.mark.parametrize(("value", "expected"), [(None, 1), ("2", 2), ("7", 7), ("x", 1), ("0", 1)])
def test_the_child_reads_its_watchdogs_version_from_the_environment_and_keeps_it_to_itself(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: int
) -> None:
    from qqworker import child
    from qqworker.contract.beat import VERSION_ENV

    if value is None:
        monkeypatch.delenv(VERSION_ENV, raising=False)
    else:
        monkeypatch.setenv(VERSION_ENV, value)
    assert child.watchdog_beat_version() == expected
    assert VERSION_ENV not in os.environ  # not inherited by what the handlers start


def test_a_phase_only_a_newer_worker_knows_is_a_beat_but_not_judged() -> None:
    data = json.dumps({"phase": "hibernating", "attempt": 1, "v": BEAT_VERSION + 1}).encode()
    beat, unknown = Beat.parse(data)
    assert unknown == {"phase:hibernating"}
    with pytest.raises(ValueError):  # from a worker of this version or older it is garbage
        Beat.decode(json.dumps({"phase": "hibernating", "attempt": 1}).encode())
    policy = make()
    connect_cleanly(policy, 1.0)
    phase, last = policy.phase, policy.last_beat
    assert policy.beat(T.heartbeat_timeout, beat) is KEEP
    assert policy.last_beat_at == T.heartbeat_timeout  # liveness: the heartbeat timeout starts again
    assert (policy.phase, policy.last_beat) == (phase, last)
    assert policy.tick(T.heartbeat_timeout * 1.9) is KEEP
    is_kill(policy.tick(T.heartbeat_timeout * 2.1), LogEvent.CHILD_HEARTBEAT_MISSED)


def test_a_newer_child_unpickles_an_older_watchdogs_settings_with_defaults_for_new_fields() -> None:
    """The spawned child gets the watchdog's Settings pickled; after a `git pull` the child's class
    has fields the old watchdog's instance lacks. Every field must therefore have a plain default
    (a class attribute): no default_factory, no slots."""
    import pickle
    from dataclasses import MISSING

    from qqworker.contract.settings import Settings

    for f in fields(Settings):
        assert f.default is not MISSING, f"{f.name} needs a plain default (version skew)"
    current = Settings(app_id="1", stop_timeout=3.0)
    older = Settings.__new__(Settings)  # what an instance from before `stop_timeout` existed holds
    object.__setattr__(older, "__dict__", {k: v for k, v in current.__dict__.items() if k != "stop_timeout"})
    child_side = pickle.loads(pickle.dumps(older))
    assert child_side.stop_timeout == Settings().stop_timeout and child_side.app_id == "1"
