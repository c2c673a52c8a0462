"""QQ_HANDLER=gateway's settings (listen address, loopback rule) and how `watchdog status` shows the
local gateway from the worker's beat."""

from __future__ import annotations

from dataclasses import replace

import pytest

from qqworker.contract.beat import MAX_REDACT_CHARS, Beat, Phase, Progress
from qqworker.contract.settings import ConfigError, load_settings, parse_listen
from watchdog.status import gateway_status, render

CREDS = {"QQ_APP_ID": "102000001", "QQ_APP_SECRET": "s3cr3t-value", "QQ_HANDLER": "gateway"}


def test_the_default_listen_address_is_the_contracts() -> None:
    s = load_settings({}, CREDS)
    assert s.gateway_listen == "127.0.0.1:8765" and not s.gateway_allow_remote
    assert load_settings({}, {**CREDS, "QQW_GATEWAY_LISTEN": "[::1]:9000"}).gateway_listen == "[::1]:9000"
    assert load_settings({"gateway_listen": "localhost:1"}, CREDS).gateway_listen == "localhost:1"


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("127.0.0.1:8765", ("127.0.0.1", 8765)), ("9000", ("127.0.0.1", 9000)), ("[::1]:80", ("::1", 80))],
)
def test_listen_addresses_parse(value: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(value, "gateway_listen") == parsed


@pytest.mark.parametrize("value", ["", "host:", "127.0.0.1:http", "127.0.0.1:70000"])
def test_bad_listen_addresses_are_config_errors(value: str) -> None:
    with pytest.raises(ConfigError, match="gateway_listen"):
        load_settings({"gateway_listen": value}, CREDS)


def test_a_non_loopback_address_needs_the_explicit_option() -> None:
    with pytest.raises(ConfigError, match="gateway-allow-remote"):
        load_settings({"gateway_listen": "0.0.0.0:8765"}, CREDS)
    s = load_settings({"gateway_listen": "0.0.0.0:8765", "gateway_allow_remote": True}, CREDS)
    assert s.gateway_listen == "0.0.0.0:8765"
    # Only the gateway handler listens: another handler does not care what the setting says.
    load_settings({"gateway_listen": "0.0.0.0:8765"}, {**CREDS, "QQ_HANDLER": "log"})


def test_the_status_shows_clients_and_buffer_from_the_beat() -> None:
    progress = Progress(phase=Phase.CONNECTED)
    fields = {
        "gateway_clients": 1,
        "gateway_buffered": 12,
        "gateway_seq": 40,
        "gateway_evicted": 0,
        "gateway_client_marks": [["127.0.0.1:5000#1", 40, 38]],
    }
    progress.delivery_source = lambda: fields
    beat = Beat.decode(progress.beat().encode())
    status = {"state": "running", "gateway": gateway_status(beat)}
    assert status["gateway"] == {
        "clients": 1,
        "buffered": 12,
        "seq": 40,
        "evicted": 0,
        "marks": [{"client": "127.0.0.1:5000#1", "sent": 40, "confirmed": 38}],
    }
    text = render(status, "healthy", 0.0)
    assert "local gateway" in text and "1 client(s), 12 event(s) buffered" in text
    assert "127.0.0.1:5000#1 sent 40 confirmed 38" in text


def test_no_gateway_line_for_other_handlers_or_malformed_beats() -> None:
    assert gateway_status(None) is None
    assert gateway_status(Beat(phase="connected", attempt=1)) is None
    odd = Beat(phase="connected", attempt=1, gateway_clients=2, gateway_client_marks=[["x"], 5])  # type: ignore[list-item]
    assert gateway_status(odd) == {"clients": 2, "buffered": None, "seq": None, "evicted": None, "marks": []}
    assert "local gateway" not in render({"state": "running"}, "healthy", 0.0)
    # A damaged status file's gateway entry is shown as far as it goes, never a traceback.
    for damaged in ({"clients": "x", "marks": 5}, {"marks": [1, None, {"client": 2}]}, {}):
        assert "local gateway" in render({"gateway": damaged}, "healthy", 0.0)
    assert "local gateway" not in render({"gateway": [1, 2]}, "healthy", 0.0)


def test_a_gateway_beat_stays_far_below_the_pipe_limit() -> None:
    """The watchdog reads beats as lines of at most 4096 bytes: the gateway's fields, with the most
    client marks a beat carries and the longest names, take a few hundred of them."""
    progress = Progress(phase=Phase.CONNECTED, session_id="s" * 36, seq=10**12)
    name = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535#1000000000"
    fields = {
        "gateway_clients": 10**6,
        "gateway_buffered": 10**6,
        "gateway_seq": 10**15,
        "gateway_evicted": 10**15,
        "gateway_client_marks": [[name, 10**15, 10**15]] * 4,
        "oldest_seq": 10**12,
        "oldest_type": "T" * 128,
        "oldest_id": "i" * 128,
    }
    progress.delivery_source = lambda: fields
    progress.totals_source = lambda: (10**12, 10**12, 10**12, 10**6)
    beat = progress.beat()
    assert len(beat.encode()) < 2048
    # With the largest list of tokens to redact a beat may carry, it still fits one pipe write.
    tokens = tuple("t" * 60 for _ in range(MAX_REDACT_CHARS // 63))
    size = len(replace(beat, redact=tokens).encode())
    assert size < 4096, size
