"""The watchdog seen from outside: wires the `Monitor` to the HTTP endpoints and the push.

The supervisor calls `monitor` with what it observes, `tick` from its housekeeping and `next_wake`
when it computes its next wake-up; everything here runs on its one thread and loop (the push's
blocking request alone runs on `PushSender`'s thread).
"""

from __future__ import annotations

import json
import logging
import selectors
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qqworker.contract.events import LogEvent
from qqworker.contract.logs import log_event, rfc3339_utc
from qqworker.contract.settings import Settings
from qqworker.logs import JsonLinesHandler
from watchdog.monitor import Monitor
from watchdog.states import NOT_SUPERVISING, SupervisorState

__all__ = ["Monitoring", "SupervisorView", "sink_drops"]

log = logging.getLogger("watchdog")


@dataclass(frozen=True)
class SupervisorView:
    state: SupervisorState
    generation: int
    child_pid: int | None


def sink_drops(out: JsonLinesHandler) -> dict[str, int]:
    """Log lines dropped per output sink (stdout, the log file), as the sinks count them."""
    return {name: int(sink["dropped"]) for name, sink in out.sinks().items()}


class Monitoring:
    def __init__(
        self,
        settings: Settings,
        sel: selectors.BaseSelector,
        out: JsonLinesHandler,
        view: Callable[[], SupervisorView],
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.sel = sel
        self.out = out
        self.view = view
        self.clock = clock
        self.monitor = Monitor(beat_interval=settings.heartbeat_interval, clock=clock)
        self.server: Any = None  # watchdog.endpoints.HttpServer once started
        self._registry: Any = None
        self.schedule: Any = None
        self.sender: Any = None
        self.reports: Any = None

    def start(self) -> None:
        """Binds the endpoints (raises OSError) and prepares the push; nothing when neither is set."""
        if self.settings.http:
            from watchdog.endpoints import HttpServer, parse_address

            self.server = HttpServer(
                parse_address(self.settings.http),
                self.sel,
                {"/healthz": self._healthz, "/readyz": self._readyz, "/metrics": self._metrics},
                self.clock,
            )
        if self.settings.push_url:
            from watchdog.push import FailureReports, PushSchedule, PushSender

            self.schedule = PushSchedule(self.settings.push_interval)
            self.sender = PushSender(timeout=self.settings.push_interval / 2)
            self.reports = FailureReports()

    def describe(self) -> dict[str, Any]:
        """For watchdog.started: where the endpoints are, and whether the push is on."""
        out: dict[str, Any] = {}
        if self.server is not None:
            host, port = self.server.address
            out["http"] = f"{host}:{port}"
        out["push"] = self.sender is not None
        return out

    # The loop's calls ---------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        if self.server is not None:
            self.server.tick(now)
            self.monitor.readiness(self.view().state)  # keeps the readiness' "since" current
        if self.sender is None:
            return
        for outcome in self.sender.take_outcomes():
            report = self.reports.record(now, outcome)
            if report is not None:
                error, failures = report
                log_event(
                    log,
                    LogEvent.PUSH_FAILED,
                    f"The push URL could not be reached: {error} ({failures} failure(s) since the last line)",
                    level=logging.WARNING,
                    error=error,
                    failures=failures,
                )
        view = self.view()
        if self.schedule.due(now, self.monitor.readiness(view.state).ready):
            from watchdog.push import push_request_url

            rtt = self.monitor.ack_rtt()
            self.sender.push(
                push_request_url(
                    self.settings.push_url,
                    ping_ms=None if rtt is None else rtt * 1000,
                    msg=f"connected (generation {view.generation})",
                )
            )

    def next_wake(self) -> float | None:
        times = []
        if self.server is not None:
            times.append(self.server.next_deadline())
        if self.schedule is not None:
            times.append(self.schedule.next_wake())
        return min((t for t in times if t is not None), default=None)

    def close(self) -> None:
        # The push thread is a daemon holding nothing to clean up: a request in flight at exit is
        # abandoned (it is bounded by its timeout anyway), so stopping never waits for the monitor.
        if self.server is not None:
            self.server.close()
            self.server = None

    # Routes ------------------------------------------------------------------------------------

    def _healthz(self) -> Any:
        from watchdog.endpoints import Response

        view = self.view()
        supervising = view.state not in NOT_SUPERVISING
        body = {"supervising": supervising, "state": view.state.value, "generation": view.generation}
        return Response(200 if supervising else 503, _json(body))

    def _readyz(self) -> Any:
        from watchdog.endpoints import Response

        view = self.view()
        readiness = self.monitor.readiness(view.state)
        body = readiness.as_dict(rfc3339_utc)
        if readiness.ready:
            age, rtt = self.monitor.ack_age(), self.monitor.ack_rtt()
            body["ack_age_s"] = None if age is None else round(age, 3)
            body["ack_rtt_s"] = rtt
        body["generation"] = view.generation
        return Response(200 if readiness.ready else 503, _json(body))

    def _metrics(self) -> Any:
        # prometheus-client only once scraped, and its text-format writer (with the http.client and ssl
        # it loads, 6.3 MB resident) only when a scraper does not ask for OpenMetrics (watchdog/metrics.py).
        from watchdog import metrics
        from watchdog.endpoints import Response

        if self._registry is None:
            self._registry = metrics.registry(self.monitor, self._extra)
        body, content_type = metrics.render_for(self._registry, self.server.accept if self.server else "")
        return Response(200, body, content_type)

    def _extra(self) -> Any:
        from watchdog import metrics
        from watchdog.process import rss_mb

        view = self.view()
        rss = rss_mb(view.child_pid) if view.child_pid is not None else None
        return metrics.Extra(
            supervisor_state=view.state,
            worker_rss_bytes=None if rss is None else rss * 1024 * 1024,
            sink_drops=sink_drops(self.out),
            generation=view.generation,
        )


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"
