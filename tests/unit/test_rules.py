"""The settings rules (qqworker/contract/rules.py): unit cases, and property tests over the whole settings
table proving that no accepted value makes a zero, negative, NaN or infinite delay or deadline."""

import math
from dataclasses import Field, fields, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from qqworker.backoff import Backoff
from qqworker.contract.beat import Beat
from qqworker.contract.rules import INT_MAX, RELATIONS, bounds, field_rule, is_number
from qqworker.contract.settings import ConfigError, Settings, load_settings, parse_intents
from qqworker.reconnect import ReconnectAction, ReconnectPolicy
from watchdog.policy import SupervisionPolicy, SupervisionTimings

CREDS = {"QQ_APP_ID": "102000001", "QQ_APP_SECRET": "s3cr3t-value"}
NUMBER_FIELDS = [f for f in fields(Settings) if is_number(f)]
FLOAT_FIELDS = [f for f in NUMBER_FIELDS if type(f.default) is float]


def test_every_number_field_has_a_rule_and_a_lower_bound() -> None:
    for f in NUMBER_FIELDS:
        minimum, maximum = bounds(f)
        assert minimum is not None, f.name
        assert field_rule(f), f.name
        assert type(f.default) is float or maximum is not None  # ints are always bounded: no overflow


def test_a_new_field_gets_the_default_rules() -> None:
    from qqworker.contract.settings import _opt  # the table's own field maker

    fresh: Field[Any] = _opt(3, "worker", "a new count", minimum=1)
    fresh.name = "new_count"
    assert bounds(fresh) == (1, INT_MAX)
    assert field_rule(fresh) == "an integer, 1 to 2_147_483_647"


@pytest.mark.parametrize("name", [f.name for f in FLOAT_FIELDS])
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "NaN", "1e400"])
def test_non_finite_floats_are_refused_naming_key_value_and_origin(name: str, bad: str) -> None:
    flag = "--" + name.replace("_", "-")
    with pytest.raises(ConfigError) as info:
        load_settings({name: bad}, CREDS)
    message = str(info.value)
    assert message.startswith(f"{name}: must be a finite number"), message
    assert f"(from {flag})" in message and "\n" not in message


@pytest.mark.parametrize("f", NUMBER_FIELDS, ids=lambda f: f.name)
def test_just_outside_the_bounds_is_refused_and_the_bounds_themselves_pass(f: Field[Any]) -> None:
    minimum, maximum = bounds(f)
    assert minimum is not None
    ok = [minimum] + ([maximum] if maximum is not None else [])
    for value in ok:
        # A relation may still refuse an extreme (e.g. retry_max below retry_initial): only the bound counts.
        try:
            load_settings({f.name: value}, CREDS)
        except ConfigError as exc:
            assert "breaks the rule" in str(exc), exc
    step = 1 if type(f.default) is int else 1e-6
    below = [minimum - step]
    above = [maximum + step] if maximum is not None else []
    for value in below + above:
        with pytest.raises(ConfigError, match=f"^{f.name}: must be at"):
            load_settings({f.name: value}, CREDS)


def test_integer_overflow_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_attempts: must be at most"):
        load_settings({"max_attempts": "99999999999999999999999"}, CREDS)
    with pytest.raises(ConfigError, match="handler_queue: must be at most"):
        load_settings({"handler_queue": str(INT_MAX + 1)}, CREDS)


@pytest.mark.parametrize(
    ("given", "key", "rule"),
    [
        ({"heartbeat_timeout": 0.5, "heartbeat_interval": 5}, "heartbeat_timeout", "2 × heartbeat_interval"),
        ({"heartbeat_timeout": 1.9}, "heartbeat_timeout", "2 × heartbeat_interval"),  # the 1 s beat
        ({"retry_initial": 10, "retry_max": 5}, "retry_max", "retry_max ≥ retry_initial"),
        ({"respawn_initial": 10, "respawn_max": 5}, "respawn_max", "respawn_max ≥ respawn_initial"),
        ({"memory_limit_mb": 30}, "memory_limit_mb", "at least 64"),
        ({"memory_limit_mb": 0.5}, "memory_limit_mb", "at least 64"),
        ({"attempt_grace": 0}, "attempt_grace", "at least 0.5"),
    ],
)
def test_contradictions_are_refused_naming_the_key_value_and_rule(
    given: dict[str, float], key: str, rule: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(given, CREDS)
    message = str(info.value)
    assert message.startswith(f"{key}: ") and rule in message, message
    assert repr(float(given[key])) in message and "\n" not in message


def test_relations_accept_the_defaults_and_a_sane_config() -> None:
    assert load_settings({}, CREDS).heartbeat_timeout == 5
    s = load_settings({"heartbeat_interval": 0.2, "heartbeat_timeout": 0.4, "memory_limit_mb": 64}, CREDS)
    assert s.memory_limit_mb == 64
    assert {r.key for r in RELATIONS} >= {"heartbeat_timeout", "retry_max", "respawn_max", "memory_limit_mb"}


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("0", "subscribes to nothing"),
        ("99999999999999999999999", "out of range"),
        (str(1 << 3), "unknown bits 1<<3"),
        (str((1 << 30) | (1 << 5) | (1 << 7)), "unknown bits 1<<5, 1<<7"),
        ("", "none given"),
        (" , ", "none given"),
    ],
)
def test_intents_must_be_non_zero_and_known(value: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_intents(value)
    with pytest.raises(ConfigError, match=needle):
        load_settings({"intents": value}, CREDS)


def test_known_integer_intents_pass() -> None:
    assert parse_intents(str((1 << 30) | (1 << 25))) == (1 << 30) | (1 << 25)


def test_the_same_error_from_flag_environment_and_file(tmp_path: Path) -> None:
    config = tmp_path / "qq.toml"
    config.write_text("[watchdog]\nheartbeat_timeout = nan\n")
    from_file = load_error({}, {}, str(config))
    assert (
        from_file
        == f"heartbeat_timeout: must be a finite number, 0.1 to 3600, got nan (from config file {config})"
    )
    from_flag = load_error({"heartbeat_timeout": "nan"}, {}, None)
    assert from_flag.endswith("got nan (from --heartbeat-timeout)")
    # A setting with an environment variable: the same rule names $QQ_INTENTS.
    from_env = load_error({}, {"QQ_INTENTS": "0"}, None)
    assert from_env.startswith("intents: 0 subscribes to nothing")


def load_error(flags: dict[str, str], env: dict[str, str], config: str | None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(flags, {**CREDS, **env}, config)
    return str(info.value)


# Property tests ------------------------------------------------------------------------------


HOSTILE_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, 1e-300, -1.0, 1e308]


def any_number(f: Field[Any]) -> st.SearchStrategy[Any]:
    """Anything a flag, the environment or the file could give this field, the hostile included."""
    if type(f.default) is int:
        return st.sampled_from([0, -1, INT_MAX, INT_MAX + 1, 2**64]) | st.integers(-(2**70), 2**70)
    return st.sampled_from(HOSTILE_FLOATS) | st.floats(allow_nan=True, allow_infinity=True)


def in_bounds(f: Field[Any]) -> st.SearchStrategy[Any]:
    minimum, maximum = bounds(f)
    if type(f.default) is int:
        return st.integers(min_value=int(minimum or 0), max_value=int(maximum or INT_MAX))
    return st.floats(min_value=minimum, max_value=maximum if maximum is not None else 1e300)


def assert_sane_delay(value: float, what: str) -> None:
    assert math.isfinite(value) and value > 0, f"{what} = {value!r}"


def assert_no_bad_delay(s: Settings) -> None:
    """Every delay and deadline the worker and the watchdog derive from accepted settings."""
    for initial, cap, what in (
        (s.retry_initial, s.retry_max, "reconnect delay"),
        (s.respawn_initial, s.respawn_max, "respawn delay"),
    ):
        for rand in (0.0, 0.5, 1.0 - 1e-16):
            backoff = Backoff(initial, cap, rand=lambda rand=rand: rand)
            for _ in range(80):  # past the exponent clamp
                assert_sane_delay(backoff.next_delay(), what)
    policy_w = ReconnectPolicy(Backoff(s.retry_initial, s.retry_max, rand=lambda: 0.5), s.max_attempts)
    for _ in range(70):  # the worker's own loop: every retry it schedules has a sane delay
        policy_w.start_attempt()
        decision = policy_w.attempt_failed("refused")
        if decision.verdict is not ReconnectAction.RETRY:
            break
        assert_sane_delay(decision.delay_s, "reconnect decision")
    for name in (
        "connect_timeout",
        "heartbeat_interval",
        "heartbeat_timeout",
        "stop_timeout",
        "attempt_grace",
    ):
        assert_sane_delay(getattr(s, name), name)
    timings = SupervisionTimings.from_settings(s)
    assert_sane_delay(timings.attempt_bound, "attempt bound")
    policy = SupervisionPolicy(timings, rand=lambda: 0.5)
    now = 1000.0
    policy.child_spawned(now)
    for beat in (
        Beat("connecting", 1, attempt_age_s=0.0),
        Beat("waiting", 2, next_attempt_in_s=s.retry_max),
        Beat("waiting", 3),
        Beat("connected", 3, session_id="s", seq=1, ack_age_s=0.0, connected_for_s=0.0),
    ):
        policy.beat(now, beat)
        deadline = policy.next_deadline()
        assert deadline is not None
        assert_sane_delay(deadline - now, f"policy deadline after a {beat.phase} beat")


@pytest.mark.parametrize("f", NUMBER_FIELDS, ids=lambda f: f.name)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_accepted_hostile_value_makes_a_bad_delay(f: Field[Any], data: st.DataObject) -> None:
    """One field at a time given anything at all: either refused, or every delay stays sane."""
    value = data.draw(any_number(f), label=f.name)
    try:
        s = replace(Settings(), **{f.name: value}).validate(need_credentials=False)
    except ConfigError:
        return
    assert_no_bad_delay(s)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(data=st.data())
def test_no_accepted_combination_makes_a_bad_delay(data: st.DataObject) -> None:
    """Every number field drawn at once within its bounds: the relations refuse or the delays are sane."""
    values = {f.name: data.draw(in_bounds(f), label=f.name) for f in NUMBER_FIELDS}
    try:
        s = replace(Settings(), **values).validate(need_credentials=False)
    except ConfigError as exc:
        assert "breaks the rule" in str(exc), exc  # within the bounds, only a relation can refuse
        assume(False)
        return
    assert_no_bad_delay(s)


@pytest.mark.parametrize("toml", ["[worker]\nmax_attempts = true\n", "[watchdog]\nstop_timeout = false\n"])
def test_a_toml_boolean_is_no_number(tmp_path: Path, toml: str) -> None:
    config = tmp_path / "qq.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match="bad value"):
        load_settings({}, CREDS, str(config))
