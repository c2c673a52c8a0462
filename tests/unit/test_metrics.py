"""/metrics' text, rendered by prometheus-client from a hand-fed Monitor and read back with its own parser;
scripts/grafana-dashboard.json queries only what it exports."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from qqworker.contract.beat import Beat
from watchdog.metrics import Extra, registry, render
from watchdog.monitor import Monitor
from watchdog.states import SupervisorState

REQUIRED = {  # the contract's "HTTP endpoints"
    "qqwatchdog_connected",
    "qqwatchdog_reconnects_total",
    "qqwatchdog_respawns_total",
    "qqwatchdog_events_total",
    "qqwatchdog_log_lines_dropped_total",
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def line(event: str, **fields: Any) -> tuple[str, str]:
    return event, json.dumps({"event": event, **fields})


def scrape(mon: Monitor, **extra: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {"supervisor_state": SupervisorState.RUNNING, "worker_rss_bytes": 40e6,
              "sink_drops": {"stdout": 0}, "generation": 2, **extra}  # fmt: skip
    return samples(render(registry(mon, lambda: Extra(**values))).decode())


def test_required_metrics_are_there_from_the_start() -> None:
    got = scrape(Monitor(beat_interval=1.0))
    names = {name for name, _ in got}
    assert names >= REQUIRED - {"qqwatchdog_reconnects_total", "qqwatchdog_respawns_total"}
    assert got[("qqwatchdog_connected", ())] == 0
    assert math.isnan(got[("qqwatchdog_gateway_ack_age_seconds", ())])
    extra = Extra(SupervisorState.RUNNING, None, {}, 0)
    text = render(registry(Monitor(beat_interval=1.0), lambda: extra)).decode()
    # Families without samples yet are still declared, so a dashboard's query names exist.
    for name in ("qqwatchdog_reconnects", "qqwatchdog_respawns"):
        assert f"# TYPE {name}_total counter" in text or f"# TYPE {name} counter" in text


def test_values_follow_the_monitor() -> None:
    t = [10.0]
    mon = Monitor(beat_interval=1.0, clock=lambda: t[0])
    mon.child_spawned()
    mon.on_line(*line("gateway.connected", resumed=False))
    mon.on_beat(
        Beat(phase="connected", attempt=1, ack_age_s=0.5, heartbeat_interval_s=5.0, ack_rtt_s=0.02,
             events_handled=7, events_failed=1, events_dropped=0, queued=2)
    )  # fmt: skip
    mon.on_line(*line("gateway.closed", close_code=4009))
    mon.on_line(*line("gateway.connected", resumed=True))
    mon.child_killed("ack stale")
    mon.child_exited(-9)
    mon.respawn_scheduled()
    got = scrape(mon, sink_drops={"stdout": 3, "file": 0})
    assert got[("qqwatchdog_reconnects_total", (("close_code", "4009"),))] == 1
    assert got[("qqwatchdog_connection_attempts_total", (("outcome", "identified"),))] == 1
    assert got[("qqwatchdog_connection_attempts_total", (("outcome", "resumed"),))] == 1
    assert got[("qqwatchdog_respawns_total", (("reason", "ack stale"),))] == 1
    assert got[("qqwatchdog_events_total", (("outcome", "handled"),))] == 7
    assert got[("qqwatchdog_events_total", (("outcome", "failed"),))] == 1
    assert got[("qqwatchdog_log_lines_dropped_total", (("sink", "stdout"),))] == 3
    assert got[("qqwatchdog_log_lines_dropped_total", (("sink", "file"),))] == 0
    assert got[("qqwatchdog_worker_rss_bytes", ())] == 40e6
    assert got[("qqwatchdog_connected", ())] == 0  # the worker is gone


def test_connected_figures() -> None:
    t = [10.0]
    mon = Monitor(beat_interval=1.0, clock=lambda: t[0])
    mon.child_spawned()
    mon.on_line(*line("gateway.connected", resumed=False))
    mon.on_beat(Beat(phase="connected", attempt=1, ack_age_s=0.5, heartbeat_interval_s=5.0, ack_rtt_s=0.02))
    t[0] += 1.0
    got = scrape(mon)
    assert got[("qqwatchdog_connected", ())] == 1 and got[("qqwatchdog_ready", ())] == 1
    assert got[("qqwatchdog_gateway_ack_age_seconds", ())] == 1.5
    assert got[("qqwatchdog_gateway_ack_rtt_seconds", ())] == 0.02


def test_the_gateway_and_webhook_modes_add_their_clients_and_backlog_gauges() -> None:
    mon = Monitor(beat_interval=1.0, clock=lambda: 10.0)
    mon.child_spawned()
    mon.on_beat(Beat(phase="connected", attempt=1))
    assert not [name for name, _ in scrape(mon) if "gateway_clients" in name or "webhook_" in name]
    mon.on_beat(Beat(phase="connected", attempt=1, gateway_clients=2, gateway_buffered=40))
    got = scrape(mon)
    assert got[("qqwatchdog_gateway_clients", ())] == 2
    assert got[("qqwatchdog_gateway_buffered_events", ())] == 40
    mon.on_beat(Beat(phase="connected", attempt=1, webhook_pending=5, webhook_oldest_age_s=12.5))
    got = scrape(mon)
    assert got[("qqwatchdog_webhook_pending_events", ())] == 5
    assert got[("qqwatchdog_webhook_oldest_pending_age_seconds", ())] == 12.5
    assert ("qqwatchdog_gateway_clients", ()) not in got


# scripts/grafana-dashboard.json queries only metrics (and labels) that /metrics really exports ----


DASHBOARD = Path(__file__).resolve().parents[2] / "scripts" / "grafana-dashboard.json"
METRIC = re.compile(r"\b(qqwatchdog_[a-z_]+)")
BY = re.compile(r"\bby \(([a-z_, ]+)\)")


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    queries += [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return queries


def exported(text: str) -> dict[str, set[str]]:
    """Sample name -> the label names it carries."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


def check(text: str) -> None:
    samples = exported(text)
    queries = dashboard_queries()
    assert queries, "the dashboard has no queries"
    for expr in queries:
        names = METRIC.findall(expr)
        assert names, f"a query without a qqwatchdog metric: {expr}"
        for name in names:
            assert name in samples, f"{name} (in {expr!r}) is not in /metrics"
            for group in BY.findall(expr):
                for label in (part.strip() for part in group.split(",")):
                    assert label in samples[name] | {"instance", "job"}, f"{name} has no label {label!r}"


def busy_monitor() -> Monitor:
    """A monitor that has seen every kind of thing, so each labelled family has samples."""
    mon = Monitor(beat_interval=1.0)
    mon.child_spawned()
    mon.on_line("gateway.connected", json.dumps({"resumed": False}))
    mon.on_line("gateway.closed", json.dumps({"close_code": 4009}))
    mon.child_killed("heartbeat missed")
    mon.child_exited(-9)
    mon.respawn_scheduled()
    mon.child_spawned()
    mon.on_beat(Beat(phase="connected", attempt=1, ack_age_s=0.1, heartbeat_interval_s=5.0, ack_rtt_s=0.01,
                     events_handled=1, events_failed=0, events_dropped=0, queued=0))  # fmt: skip
    return mon


def test_every_dashboard_metric_is_exported() -> None:
    extra = Extra("running", 4e7, {"stdout": 0}, 2)
    check(render(registry(busy_monitor(), lambda: extra)).decode())


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    wanted = {"qqwatchdog_connected", "qqwatchdog_reconnects_total", "qqwatchdog_gateway_ack_age_seconds",
              "qqwatchdog_events_total", "qqwatchdog_respawns_total"}  # fmt: skip
    used = {name for expr in dashboard_queries() for name in METRIC.findall(expr)}
    assert wanted <= used
