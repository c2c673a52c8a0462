import pytest

from qqworker.closecodes import CLOSE_RULES, CloseAction, close_rule

# The platform's documented table (bot-docs error-trace/websocket.md) plus the field's refinements.
EXPECTED = {
    None: CloseAction.RESUME,
    1000: CloseAction.RESUME,
    1001: CloseAction.RESUME,
    1006: CloseAction.RESUME,
    1011: CloseAction.RESUME,
    4000: CloseAction.RESUME,
    4001: CloseAction.FATAL,
    4002: CloseAction.FATAL,
    4003: CloseAction.IDENTIFY,
    4004: CloseAction.IDENTIFY,
    4005: CloseAction.IDENTIFY,
    4006: CloseAction.IDENTIFY,
    4007: CloseAction.IDENTIFY,
    4008: CloseAction.BACKOFF,
    4009: CloseAction.RESUME,
    4010: CloseAction.FATAL,
    4011: CloseAction.FATAL,
    4012: CloseAction.FATAL,
    4013: CloseAction.FATAL,
    4014: CloseAction.FATAL,
    4914: CloseAction.FATAL,
    4915: CloseAction.FATAL,
    **{code: CloseAction.IDENTIFY for code in range(4900, 4914)},
}


@pytest.mark.parametrize(("code", "action"), sorted(EXPECTED.items(), key=lambda kv: kv[0] or 0))
def test_every_documented_code(code: int | None, action: CloseAction) -> None:
    rule = close_rule(code)
    assert rule.action is action
    assert rule.code == code
    assert rule.meaning


def test_the_table_has_nothing_undocumented_in_it() -> None:
    assert set(CLOSE_RULES) - set(EXPECTED) == {1012}


def test_only_4004_refreshes_the_token() -> None:
    assert [code for code, rule in CLOSE_RULES.items() if rule.refresh_token] == [4004]


@pytest.mark.parametrize("code", [4016, 4500, 4999, 4916])
def test_unknown_4xxx_codes_follow_the_platform_default_identify(code: int) -> None:
    assert close_rule(code).action is CloseAction.IDENTIFY


@pytest.mark.parametrize("code", [1002, 1003, 1008, 1009, 1013])
def test_transport_codes_resume(code: int) -> None:
    assert close_rule(code).action is CloseAction.RESUME
