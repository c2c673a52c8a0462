"""`watchdog status` from the worker's beat (watchdog/status.py): the webhook queue and the local gateway."""

from __future__ import annotations

from qqworker.contract.beat import Beat, Phase, Progress
from watchdog.status import gateway_status, render, webhook_status


def test_the_beat_carries_the_webhook_fields_and_status_shows_them() -> None:
    fields = {
        "webhook_pending": 7,
        "webhook_oldest_age_s": 12.5,
        "webhook_delivered": 40,
        "webhook_failures": 3,
        "webhook_dropped": 0,
    }
    progress = Progress(clock=lambda: 100.0, webhook_source=lambda: fields)
    beat, unknown = Beat.parse(progress.beat().encode())
    assert not unknown
    status = {"state": "running", "webhook": webhook_status(beat)}
    assert status["webhook"] == {
        "pending": 7,
        "oldest_age_s": 12.5,
        "delivered": 40,
        "failures": 3,
        "dropped": 0,
    }
    text = render(status, "healthy", 0.0)
    row = "webhook          7 pending (oldest waiting 12.5s), 40 delivered, 3 failed attempts, 0 dropped"
    assert row in text.splitlines()[1:] or f"  {row}" in text.splitlines()


def test_no_webhook_handler_no_webhook_status() -> None:
    beat = Progress(clock=lambda: 0.0).beat()
    assert webhook_status(beat) is None
    assert webhook_status(None) is None
    assert "webhook" not in render({"state": "running", "webhook": None}, "healthy", 0.0)


# The local gateway (QQ_HANDLER=gateway) from the beat ---------------------------------------------


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
