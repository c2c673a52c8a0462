"""The webhook handler under the real watchdog: the queue shows in `watchdog status`, and a worker
killed while events are unacknowledged is respawned, Resumes below them, and delivers them."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.supervised import LIFECYCLE, Supervised
from tests.support import SimulatorProcess, wait_until, watchdog_status
from tests.worker.test_webhook_process import Endpoint


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.close()


def webhook_status(wd: Supervised) -> dict[str, object] | None:
    result = watchdog_status(wd.status_file, "--json")
    return json.loads(result.stdout)["status"].get("webhook") if result.stdout else None


def test_unacknowledged_events_show_in_status_and_survive_a_killed_worker(
    tmp_path: Path, sim: SimulatorProcess, endpoint: Endpoint
) -> None:
    endpoint.mode = 503
    wd = Supervised(
        sim,
        tmp_path,
        timings=LIFECYCLE,
        env={"QQ_HANDLER": "webhook", "QQW_WEBHOOK_URL": endpoint.url},
        webhook_retry_max=0.5,
    )
    try:
        wd.connected()
        wd.send("queued", 4)
        wait_until(lambda: (webhook_status(wd) or {}).get("pending") == 4, 15, "4 pending in the status")
        human = watchdog_status(wd.status_file).stdout
        assert "webhook" in human and "4 pending (oldest waiting" in human, human
        sent_before = {i for i, _ in endpoint.received}
        assert len(sent_before) == 1  # only the head, retried
        old = wd.child_pid()
        mark = wd.process.mark()
        os.kill(old, signal.SIGKILL)
        _, spawned = wd.wait_for("child.spawned", after=mark)
        assert spawned["resume"] is True
        _, connected = wd.connected(after=mark, generation=spawned["generation"])
        assert connected["resumed"] is True
        endpoint.mode = 200
        wait_until(lambda: len(endpoint.acked()) >= 4, 15, "the 4 events acknowledged after the respawn")
        acked = endpoint.acked()
        assert len(acked) == len(set(acked)) == 4, acked  # replayed by the Resume, each acked once
        assert acked[0] in sent_before  # the same envelope id as before the kill
        wait_until(lambda: (webhook_status(wd) or {}).get("pending") == 0, 15, "nothing pending")
        wd.finish()
    finally:
        wd.close()


def test_events_acknowledged_before_a_kill_are_not_sent_again_by_the_successor(
    tmp_path: Path, sim: SimulatorProcess, endpoint: Endpoint
) -> None:
    # Beats only every 1.5 s: the handed seq must still move on within moments of the
    # acknowledgements (the webhook handler beats soon after them), or the Resume would resend.
    wd = Supervised(
        sim,
        tmp_path,
        timings=replace(LIFECYCLE, heartbeat_interval=1.5, heartbeat_timeout=5.0),
        env={"QQ_HANDLER": "webhook", "QQW_WEBHOOK_URL": endpoint.url},
    )
    try:
        wd.connected()
        wd.send("before", 3)
        wait_until(lambda: len(endpoint.acked()) >= 3, 15, "3 events acknowledged")
        time.sleep(0.5)
        mark = wd.process.mark()
        os.kill(wd.child_pid(), signal.SIGKILL)
        _, spawned = wd.wait_for("child.spawned", after=mark)
        _, connected = wd.connected(after=mark, generation=spawned["generation"])
        assert connected["resumed"] is True
        wd.send("after", 1)
        wait_until(lambda: len(endpoint.acked()) >= 4, 15, "the 4th event acknowledged")
        time.sleep(0.5)
        acked = endpoint.acked()
        assert len(acked) == len(set(acked)) == 4, acked
        wd.finish()
    finally:
        wd.close()


def test_a_consumer_down_across_several_worker_deaths_is_never_taken_for_a_poison_event(
    tmp_path: Path, sim: SimulatorProcess, endpoint: Endpoint
) -> None:
    # The watchdog skips an event that stays oldest unhandled while children die with it
    # (--poison-after 3). Waiting for a webhook is not what kills them: the event must survive.
    endpoint.mode = 503
    wd = Supervised(
        sim, tmp_path, timings=LIFECYCLE, env={"QQ_HANDLER": "webhook", "QQW_WEBHOOK_URL": endpoint.url}
    )
    try:
        wd.connected()
        wd.send("waiting", 1)
        wait_until(lambda: endpoint.received, 15, "the first attempt")
        for _ in range(4):
            mark = wd.process.mark()
            time.sleep(0.5)  # a beat or two naming the waiting event as the oldest
            os.kill(wd.child_pid(), signal.SIGKILL)
            _, spawned = wd.wait_for("child.spawned", after=mark)
            wd.connected(after=mark, generation=spawned["generation"])
        assert not wd.process.records("events.skipped")
        endpoint.mode = 200
        wait_until(lambda: endpoint.acked(), 15, "the event acknowledged")
        assert len({i for i, _ in endpoint.received}) == 1  # the same event all along
        wd.finish()
    finally:
        wd.close()
