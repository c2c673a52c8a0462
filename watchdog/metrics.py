"""/metrics: the `Monitor`'s figures in the Prometheus text format, through prometheus-client.

One custom collector in a private registry (not the library's global one, whose default process and
GC collectors would describe the watchdog, not the bot): values are read from the monitor at scrape
time, so nothing is updated on the supervision loop's hot path.

This module is imported only at the first scrape of /metrics. It loads prometheus-client's registry,
metric families and OpenMetrics writer without the package `__init__` (watchdog/prom.py): a scraper that
asks for OpenMetrics, as Prometheus does first, costs the watchdog under 0.1 MB. The Prometheus text format
(curl, or no Accept header) is written by the library's `generate_latest`, in `exposition.py`, which loads
http.client and ssl: +6.3 MB resident, once (a one-time ~35 ms on the loop; every deadline it serves is
seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from watchdog import prom

__all__ = [
    "LIGHT_IMPORT",
    "Extra",
    "MonitorCollector",
    "registry",
    "render",
    "render_for",
    "text_content_type",
    "wants_openmetrics",
]

LIGHT_IMPORT = prom.load()  # False: the fallback ran (the full package, ssl and all)

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric  # noqa: E402
from prometheus_client.openmetrics import exposition as openmetrics  # noqa: E402
from prometheus_client.registry import CollectorRegistry  # noqa: E402
from prometheus_client.utils import parse_version  # noqa: E402

from watchdog.monitor import MODE_DOCS, Monitor, finite  # noqa: E402
from watchdog.states import SupervisorState  # noqa: E402

OPENMETRICS = "application/openmetrics-text"


@dataclass(frozen=True)
class Extra:
    """What the supervisor adds at scrape time: things the monitor does not observe itself."""

    supervisor_state: SupervisorState
    worker_rss_bytes: float | None
    sink_drops: Mapping[str, int]
    generation: int


class MonitorCollector:
    def __init__(self, monitor: Monitor, extra: Callable[[], Extra]) -> None:
        self.monitor = monitor
        self.extra = extra

    def collect(self) -> Iterator[Metric]:
        m, x = self.monitor, self.extra()
        ready = m.readiness(x.supervisor_state).ready
        yield _gauge("qqwatchdog_connected", "1 while the worker reports a live gateway session", m.connected)
        yield _gauge("qqwatchdog_ready", "1 while /readyz answers 200", ready)
        yield _gauge("qqwatchdog_worker_generation", "the worker generation (spawn count)", x.generation)
        attempts = CounterMetricFamily(
            "qqwatchdog_connection_attempts",
            "gateway connection attempts by outcome: identified, resumed (READY/RESUMED) or failed",
            labels=["outcome"],
        )
        for outcome in ("identified", "resumed", "failed"):
            attempts.add_metric([outcome], m.attempts[outcome])
        yield attempts
        reconnects = CounterMetricFamily(
            "qqwatchdog_reconnects",
            "gateway connections lost (each followed by a reconnect), by close code; none: no close frame",
            labels=["close_code"],
        )
        for code, count in sorted(m.reconnects.items()):
            reconnects.add_metric([code], count)
        yield reconnects
        respawns = CounterMetricFamily(
            "qqwatchdog_respawns", "worker respawns by the reason the last worker ended", labels=["reason"]
        )
        for reason, count in sorted(m.respawns.items()):
            respawns.add_metric([reason], count)
        yield respawns
        events = CounterMetricFamily(
            "qqwatchdog_events",
            "dispatch events by outcome: handled, failed (the handler raised), dropped (queue full)",
            labels=["outcome"],
        )
        for outcome, count in m.events().items():
            events.add_metric([outcome], count)
        yield events
        yield _gauge(
            "qqwatchdog_gateway_ack_age_seconds", "since the last gateway heartbeat ACK (NaN: not connected)",
            m.ack_age(),
        )  # fmt: skip
        yield _gauge(
            "qqwatchdog_gateway_ack_rtt_seconds", "the last gateway heartbeat's round trip to its ACK",
            m.ack_rtt(),
        )  # fmt: skip
        yield _gauge(
            "qqwatchdog_last_dispatch_age_seconds", "since the last dispatch event reached the worker",
            m.last_dispatch_age(),
        )  # fmt: skip
        yield _gauge("qqwatchdog_handler_queue_depth", "dispatch events waiting for a handler", m.queued())
        yield _gauge("qqwatchdog_worker_rss_bytes", "the worker's resident memory", x.worker_rss_bytes)
        for suffix, value in m.mode_gauges().items():
            yield _gauge(f"qqwatchdog_{suffix}", MODE_DOCS[suffix], value)
        drops = CounterMetricFamily(
            "qqwatchdog_log_lines_dropped", "log lines dropped, by output sink", labels=["sink"]
        )
        for sink, count in sorted(x.sink_drops.items()):
            drops.add_metric([sink], count)
        yield drops


def _gauge(name: str, doc: str, value: float | bool | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=finite(None if value is None else float(value)))


def registry(monitor: Monitor, extra: Callable[[], Extra]) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(MonitorCollector(monitor, extra))  # type: ignore[arg-type]
    return reg


def render(reg: CollectorRegistry) -> bytes:
    """The Prometheus text format, by the library's own writer (imported here: see the docstring)."""
    from prometheus_client.exposition import generate_latest

    return generate_latest(reg)


def text_content_type() -> str:
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    return CONTENT_TYPE_LATEST


def wants_openmetrics(accept: str) -> bool:
    """prometheus-client's own choice (`exposition.choose_encoder`), which lives in the module this one
    avoids: the first of `application/openmetrics-text` with no version or version >= 1.0.0 (OpenMetrics)
    and `text/plain` with version >= 1.0.0 (text) in the Accept header; the text format when neither."""
    for accepted in accept.split(","):
        media, *params = (token.strip() for token in accepted.split(";"))
        versions = [p.split("=", 1)[1] for p in params if p.startswith("version=")]
        version = versions[0] if versions else ""
        if media == OPENMETRICS and (not version or parse_version(version) >= (1, 0, 0)):
            return True
        if media == "text/plain" and version and parse_version(version) >= (1, 0, 0):
            return False
    return False


def render_for(reg: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """(body, content type) for a scrape with this Accept header."""
    if wants_openmetrics(accept):
        return openmetrics.generate_latest(reg), openmetrics.CONTENT_TYPE_LATEST
    return render(reg), text_content_type()
