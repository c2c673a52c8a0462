"""The webhook settings: names and defaults of the contract, and what validation refuses."""

from __future__ import annotations

import pytest

from qqworker.contract.settings import ConfigError, load_settings

CREDS = {"QQ_APP_ID": "1", "QQ_APP_SECRET": "s"}


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
