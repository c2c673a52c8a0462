"""scripts/grafana-dashboard.json queries only metrics (and labels) that /metrics really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from qqworker.contract.beat import Beat
from watchdog.metrics import Extra, registry, render
from watchdog.monitor import Monitor

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
