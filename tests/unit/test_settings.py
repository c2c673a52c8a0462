import argparse
from dataclasses import fields
from pathlib import Path

import pytest

from qqworker.contract.settings import (
    DEFAULT_INTENTS,
    INTENT_BITS,
    PRODUCTION_API,
    SANDBOX_API,
    ConfigError,
    Settings,
    add_setting_flags,
    check_url,
    load_settings,
    parse_intents,
    parse_listen,
)

CREDS = {"QQ_APP_ID": "102000001", "QQ_APP_SECRET": "s3cr3t-value"}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "qq.toml"
    path.write_text(text)
    return str(path)


def test_defaults_match_the_contract() -> None:
    s = load_settings({}, CREDS)
    assert (s.retry_initial, s.retry_max, s.max_attempts, s.connect_timeout) == (2, 60, 100, 15)
    assert (s.heartbeat_interval, s.heartbeat_timeout, s.attempt_grace) == (1, 5, 15)
    assert (s.respawn_initial, s.respawn_max, s.healthy_after) == (1, 300, 60)
    assert (s.max_restarts, s.restart_window, s.memory_limit_mb, s.stop_timeout) == (0, 600, 0, 10)
    assert s.handler == "log" and s.status_file == "./run/qqwatchdog.status.json"
    assert s.rest_base == PRODUCTION_API
    assert s.intents_mask == INTENT_BITS["public_guild_messages"] | INTENT_BITS["group_and_c2c_event"]


def test_precedence_flags_over_environment_over_file(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        '[worker]\nretry_initial = 3\nretry_max = 90\n[qq]\nhandler = "echo"\n'
        '[logging]\nlog_file = "from-file.log"\n',
    )
    env = {**CREDS, "QQW_LOG_FILE": "from-env.log", "QQ_HANDLER": "log"}
    s = load_settings({"retry_initial": "4"}, env, config)
    assert s.retry_initial == 4.0  # flag
    assert s.retry_max == 90.0  # file
    assert s.handler == "log"  # environment beats the file
    assert s.log_file == "from-env.log"


def test_flags_parse_through_argparse() -> None:
    parser = argparse.ArgumentParser()
    add_setting_flags(parser, ("worker", "watchdog", "qq", "logging"))
    ns = parser.parse_args(["--max-attempts", "7", "--sandbox", "--memory-limit-mb", "256"])
    s = load_settings(ns, CREDS)
    assert s.max_attempts == 7 and s.sandbox and s.memory_limit_mb == 256
    assert s.rest_base == SANDBOX_API
    with pytest.raises(SystemExit):
        parser.parse_args(["--app-secret", "x"])  # a secret never goes on a command line


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[worker]\nretry_intial = 3\n", "retry_intial"),
        ("[workers]\nretry_initial = 3\n", "[workers]"),
        ('[worker]\nmax_attempts = "many"\n', "max_attempts"),
        ("[worker]\nmax_attempts = 2.5\n", "max_attempts"),
        ("[worker]\nretry_initial = -1\n", "retry_initial"),
        ('[qq]\napp_secret = "x"\n', "app_secret"),
        ("[worker\n", "qq.toml"),
        ('[qq]\nintents = "guilds,telepathy"\n', "telepathy"),
        ('[qq]\napi_base = "http://api.example.com"\n', "loopback"),
    ],
)
def test_config_errors_name_the_culprit(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, CREDS, write(tmp_path, text))
    assert needle in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_settings({}, CREDS, str(tmp_path / "nope.toml"))


def test_missing_credentials_unless_not_needed() -> None:
    with pytest.raises(ConfigError, match="QQ_APP_SECRET"):
        load_settings({}, {"QQ_APP_ID": "1"})
    assert load_settings({}, {}, need_credentials=False).app_id == ""


def test_retry_cap_below_initial_is_refused() -> None:
    with pytest.raises(ConfigError, match="retry_max"):
        load_settings({"retry_initial": 10, "retry_max": 5}, CREDS)


@pytest.mark.parametrize(
    ("value", "mask"),
    [
        ("513", 513),
        ("guilds", 1),
        ("GUILDS, direct_message", 1 | 1 << 12),
        (DEFAULT_INTENTS, (1 << 30) | (1 << 25)),
    ],
)
def test_intents(value: str, mask: int) -> None:
    assert parse_intents(value) == mask


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/x", "ws://localhost/", "http://[::1]:1/", "https://a.b/"]
)
def test_allowed_urls(url: str) -> None:
    check_url(url, "x")


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1/", "ws://api.sgroup.qq.com/", "ftp://127.0.0.1/", "nonsense"]
)
def test_refused_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        check_url(url, "x")


def test_public_dict_has_no_secret() -> None:
    s = load_settings({}, CREDS)
    public = s.public_dict()
    assert "app_secret" not in public and "s3cr3t-value" not in repr(public)
    assert set(public) == {f for f in Settings.__dataclass_fields__} - {"app_secret", "push_url"}


def test_push_url_is_kept_out_of_logs_and_config_files(tmp_path: Path) -> None:
    # The push URL carries the monitor's token: like the secret, never in public_dict or a config file.
    s = load_settings({}, {**CREDS, "QQW_PUSH_URL": "https://kuma.example/api/push/T0KEN"})
    assert s.push_url.endswith("T0KEN") and "T0KEN" not in repr(s.public_dict())
    config = tmp_path / "c.toml"
    config.write_text('[watchdog]\npush_url = "https://kuma.example/api/push/T0KEN"\n')
    with pytest.raises(ConfigError, match="environment"):
        load_settings({}, CREDS, str(config))


def test_boolean_environment_values() -> None:
    assert load_settings({}, {**CREDS, "QQ_SANDBOX": "1"}).sandbox
    assert not load_settings({}, {**CREDS, "QQ_SANDBOX": "0"}).sandbox
    with pytest.raises(ConfigError, match="sandbox"):
        load_settings({}, {**CREDS, "QQ_SANDBOX": "maybe"})


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


# QQ_HANDLER=gateway: the listen address and the loopback rule -------------------------------------


GATEWAY_CREDS = {**CREDS, "QQ_HANDLER": "gateway"}


def test_the_default_listen_address_is_the_contracts() -> None:
    s = load_settings({}, GATEWAY_CREDS)
    assert s.gateway_listen == "127.0.0.1:8765" and not s.gateway_allow_remote
    assert (
        load_settings({}, {**GATEWAY_CREDS, "QQW_GATEWAY_LISTEN": "[::1]:9000"}).gateway_listen
        == "[::1]:9000"
    )
    assert load_settings({"gateway_listen": "localhost:1"}, GATEWAY_CREDS).gateway_listen == "localhost:1"


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("127.0.0.1:8765", ("127.0.0.1", 8765)), ("9000", ("127.0.0.1", 9000)), ("[::1]:80", ("::1", 80))],
)
def test_listen_addresses_parse(value: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(value, "gateway_listen") == parsed


@pytest.mark.parametrize("value", ["", "host:", "127.0.0.1:http", "127.0.0.1:70000"])
def test_bad_listen_addresses_are_config_errors(value: str) -> None:
    with pytest.raises(ConfigError, match="gateway_listen"):
        load_settings({"gateway_listen": value}, GATEWAY_CREDS)


def test_a_non_loopback_address_needs_the_explicit_option() -> None:
    with pytest.raises(ConfigError, match="gateway-allow-remote"):
        load_settings({"gateway_listen": "0.0.0.0:8765"}, GATEWAY_CREDS)
    s = load_settings({"gateway_listen": "0.0.0.0:8765", "gateway_allow_remote": True}, GATEWAY_CREDS)
    assert s.gateway_listen == "0.0.0.0:8765"
    # Only the gateway handler listens: another handler does not care what the setting says.
    load_settings({"gateway_listen": "0.0.0.0:8765"}, {**GATEWAY_CREDS, "QQ_HANDLER": "log"})


# QQ_HANDLER=webhook: names, defaults and what validation refuses ----------------------------------


def test_defaults_and_the_contracts_names() -> None:
    s = load_settings(
        {}, {**CREDS, "QQ_HANDLER": "webhook", "QQW_WEBHOOK_URL": "http://127.0.0.1:8080/qq/webhook"}
    )
    assert s.webhook_urls == ("http://127.0.0.1:8080/qq/webhook",)
    assert s.webhook_retry_max == 30.0
    s = load_settings(
        {"webhook_url": "http://localhost:1/a, https://bot.example.com/qq/webhook", "webhook_retry_max": "5"},
        {**CREDS, "QQ_HANDLER": "webhook"},
    )
    assert s.webhook_urls == ("http://localhost:1/a", "https://bot.example.com/qq/webhook")
    assert s.webhook_retry_max == 5.0


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("", "needs QQW_WEBHOOK_URL"),
        ("http://bot.example.com/qq/webhook", "only for loopback"),
        ("ws://127.0.0.1:1/qq", "not an http(s) URL"),
        ("127.0.0.1:8080/qq/webhook", "not an http(s) URL"),
    ],
)
def test_refused_webhook_urls(url: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="webhook_url") as info:
        load_settings({}, {**CREDS, "QQ_HANDLER": "webhook", "QQW_WEBHOOK_URL": url})
    assert needle in str(info.value)


def test_the_url_is_only_checked_for_the_webhook_handler() -> None:
    assert load_settings({}, {**CREDS, "QQW_WEBHOOK_URL": "http://bot.example.com/"}).handler == "log"
