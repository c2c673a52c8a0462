"""The listen loop: connect, listen, and on any loss ask `ReconnectPolicy` what now, logging every step.

Each attempt (token, discovery, TCP, TLS, handshake, Hello, READY/RESUMED) is bounded by
`connect_timeout`; `gateway.connecting` is logged before it and `reconnect.failed` after it fails;
`reconnect.scheduled` is logged before every sleep. So while not connected the loop is never silent
for longer than the current retry delay (or one bounded attempt) plus a little. `Progress` mirrors
where the loop is, for the watchdog's pipe heartbeat.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import aiohttp

from qqworker.auth import TokenError, TokenManager
from qqworker.backoff import Backoff
from qqworker.beat import Phase, Progress
from qqworker.closecodes import CloseAction
from qqworker.deadlines import within
from qqworker.events import LogEvent
from qqworker.exitcodes import ExitCode
from qqworker.gateway import Callbacks, drive, open_link
from qqworker.handlers import Dispatcher, Handler, load_handler
from qqworker.liveness import PingsIgnored
from qqworker.logs import log_event
from qqworker.netpath import DEAD_LINK, local_failure, probe_target, tcp_probe, wait_for_path
from qqworker.protocol import Established, GatewayConnection, Session
from qqworker.reconnect import Decision, ReconnectPolicy, Verdict
from qqworker.rest import RestClient
from qqworker.settings import ConfigError, Settings

log = logging.getLogger("qqworker.worker")
TOKEN_MARGIN_S = 0.05


def attempts_text(attempt: int, max_attempts: int) -> str:
    return f"attempt {attempt}/{max_attempts}" if max_attempts else f"attempt {attempt}, no limit"


def seconds_text(delay: float) -> str:
    """`5.0s`, but `0.05s` rather than a misleading `0.1s` or `0.0s` for short test delays."""
    return f"{delay:.1f}s" if delay >= 1 or delay == 0 else f"{delay:.2f}s"


def describe_error(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        session: Session | None = None,
        handler: Handler | str | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.session = session if session is not None else Session()
        self.progress = progress if progress is not None else Progress()
        # The seq a beat hands on is worked out when the beat is sent, not at every event.
        self.progress.update(session_id=self.session.session_id, seq_source=self._handed_seq)
        self.policy = ReconnectPolicy(
            Backoff(settings.retry_initial, settings.retry_max), settings.max_attempts
        )
        self._handler_spec = handler if handler is not None else settings.handler
        self.stop_reason: str | None = None
        self._main: asyncio.Task[ExitCode] | None = None
        self._close_code: int | None = None
        self.tokens: TokenManager | None = None
        self.rest: RestClient | None = None
        self.dispatcher: Dispatcher | None = None
        self._path_down: str | None = None  # the last attempt failed before reaching the platform: why
        self._pings_ignored = False  # a connection found that the gateway answers no WebSocket ping
        self._probes: tuple[int, int] | None = None  # (probes, failed) of the wait before this attempt

    # Public API ------------------------------------------------------------------------------

    def stop(self, reason: str = "stop requested") -> None:
        """Ends `run()` cleanly (exit 0). Call it on the event loop's thread (e.g. a signal handler)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self._main is not None and not self._main.done():
            self._main.cancel()

    async def run(self) -> ExitCode:
        """Runs until stopped (0), out of attempts (75) or a permanent error (78). Never raises,
        except CancelledError when the task running it is cancelled (after cleaning up)."""
        s = self.settings
        log_event(
            log,
            LogEvent.WORKER_STARTED,
            f"Worker started for app {s.app_id} (intents {s.intents_mask})",
            app_id=s.app_id,
            intents=s.intents_mask,
            resume=self.session.resumable,
        )
        try:
            handler = self._handler_spec if callable(self._handler_spec) else load_handler(self._handler_spec)
        except ConfigError as exc:
            return self._fatal(str(exc))
        http = aiohttp.ClientSession()
        self.tokens = TokenManager(
            http,
            app_id=s.app_id,
            app_secret=s.app_secret,
            token_url=s.token_url,
            timeout_s=s.connect_timeout,
        )
        self.rest = RestClient(
            http, self.tokens, base=s.rest_base, app_id=s.app_id, timeout_s=s.connect_timeout
        )
        self.dispatcher = Dispatcher(
            handler, rest=self.rest, concurrency=s.handler_concurrency, queue_size=s.handler_queue
        )
        self.dispatcher.start()
        # Everything imported and set up so far lives as long as the process: out of the collector's
        # way, so the collections that per-event garbage triggers no longer walk it.
        gc.freeze()
        self._main = main = asyncio.create_task(self._listen(), name="qqworker-listen")
        if self.stop_reason is not None:
            main.cancel()
        cancelled = False
        try:
            try:
                await asyncio.wait({main})
            except asyncio.CancelledError:
                cancelled = True
                self.stop(reason="cancelled")
                await asyncio.wait({main})  # its cleanup (closing the connection) is bounded
            code = self._outcome(main)
        finally:
            self.progress.update(phase=Phase.STOPPING)
            await self.dispatcher.close()
            await http.close()
        if code is ExitCode.OK:
            log_event(
                log, LogEvent.WORKER_STOPPED, f"Worker stopped: {self.stop_reason}", reason=self.stop_reason
            )
        if cancelled:
            raise asyncio.CancelledError
        return code

    # The loop --------------------------------------------------------------------------------

    def _outcome(self, main: asyncio.Task[ExitCode]) -> ExitCode:
        if main.cancelled():
            return ExitCode.OK
        exc = main.exception()
        if exc is None:
            return main.result()
        # A bug, not a network condition: say so, and exit 75 so a supervisor starts a fresh process.
        log_event(
            log,
            LogEvent.RECONNECT_GAVE_UP,
            f"The listen loop failed unexpectedly: {describe_error(exc)}",
            level=logging.ERROR,
            attempts=self.policy.attempt,
            error=describe_error(exc),
        )
        return ExitCode.GAVE_UP

    async def _listen(self) -> ExitCode:
        while True:
            attempt = self.policy.start_attempt()
            decision = await self._attempt(attempt)
            if decision.verdict is Verdict.FATAL:
                return self._fatal(decision.reason, self._close_code)
            if decision.verdict is Verdict.GIVE_UP:
                log_event(
                    log,
                    LogEvent.RECONNECT_GAVE_UP,
                    f"Giving up after {decision.attempt} failed attempts: {decision.reason}",
                    level=logging.ERROR,
                    attempts=decision.attempt,
                    reason=decision.reason,
                )
                return ExitCode.GAVE_UP
            if decision.refresh_token and self.tokens is not None:
                self.tokens.invalidate()
            await self._wait(decision)
            self._path_down = None

    async def _wait(self, decision: Decision) -> None:
        loop = asyncio.get_running_loop()
        delay = round(decision.delay_s, 3)  # the same number in the message, the field and the sleep
        self.progress.update(phase=Phase.WAITING, next_attempt_at=loop.time() + delay)
        attempts = attempts_text(decision.attempt, self.settings.max_attempts)
        log_event(
            log,
            LogEvent.RECONNECT_SCHEDULED,
            f"Reconnecting in {seconds_text(delay)} ({attempts})",
            attempt=decision.attempt,
            delay_s=delay,
            max_attempts=self.settings.max_attempts,
            reason=decision.reason,
        )
        if self._path_down is None or delay <= 0:
            await asyncio.sleep(delay)
            return
        # The failure never reached the platform: watch the path and go as soon as it is back.
        host, port = probe_target(self._probe_url())
        report = await wait_for_path(
            delay, lambda: tcp_probe(host, port), down_first=self._path_down == DEAD_LINK
        )
        self._probes = (report.probes, report.failed)  # counted on the next gateway.connecting line
        if report.back:
            log_event(
                log,
                LogEvent.NETWORK_BACK,
                f"The network is back ({host}:{port} answered after {report.failed} failed probes): "
                f"reconnecting now instead of in {seconds_text(max(0.0, delay - report.waited_s))}",
                probes=report.probes,
                failed=report.failed,
                waited_s=round(report.waited_s, 3),
                delay_s=delay,
                target=f"{host}:{port}",
                cause=self._path_down,
            )

    def _probe_url(self) -> str:
        cached = self.rest.cached_gateway_url if self.rest is not None else None
        return cached or self.settings.rest_base

    async def _attempt(self, attempt: int) -> Decision:
        """One connection attempt and, when it succeeds, the whole connection; then what next."""
        assert self.tokens is not None and self.rest is not None
        loop = asyncio.get_running_loop()
        timeout = self.settings.connect_timeout
        started = loop.time()
        deadline = started + timeout
        self._close_code = None
        self.progress.update(
            phase=Phase.CONNECTING, attempt=attempt, attempt_started_at=started, next_attempt_at=None
        )
        url = self.rest.cached_gateway_url
        log_event(
            log,
            LogEvent.GATEWAY_CONNECTING,
            f"Connecting to the gateway ({attempts_text(attempt, self.settings.max_attempts)})",
            attempt=attempt,
            url=url or f"{self.settings.rest_base}/gateway/bot",
            resume=self.session.resumable,
            **({} if self._probes is None else {"probes": self._probes[0], "probes_failed": self._probes[1]}),
        )
        self._probes = None
        stage = "token"
        try:
            # The request's own timeout comes first, so that it is logged as auth.token_failed.
            remaining = deadline - loop.time()
            token = await within(remaining, self.tokens.authorization(max(0.01, remaining - TOKEN_MARGIN_S)))
            stage = "discovery"
            url = await within(deadline - loop.time(), self.rest.gateway_url())
            stage = "connect"
            link = await open_link(url, deadline - loop.time())
        except TokenError as exc:
            self._path_down = None if exc.permanent else local_failure(exc)
            return self._attempt_failed(attempt, f"{stage}: {exc}", permanent=exc.permanent)
        except asyncio.TimeoutError as exc:
            self._path_down = local_failure(exc)
            if stage == "connect" and self._path_down is None:  # the path, not the URL, was the problem
                self.rest.forget_gateway_url()
            return self._attempt_failed(attempt, f"{stage}: the attempt timed out after {timeout:g}s")
        except Exception as exc:  # network errors, handshake refusals, bad answers, bad URLs
            self._path_down = local_failure(exc)
            if stage == "connect" and self._path_down is None:
                self.rest.forget_gateway_url()
            return self._attempt_failed(attempt, f"{stage}: {describe_error(exc)}")

        conn = GatewayConnection(
            token=token,
            intents=self.settings.intents_mask,
            session=self.session,
            now=loop.time(),
            liveness=True,
            pings=not self._pings_ignored,
        )
        established = False

        def on_established(out: Established) -> None:
            nonlocal established
            established = True
            now = loop.time()
            self.policy.established(now)
            self.progress.update(
                phase=Phase.CONNECTED,
                session_id=out.session_id,
                last_ack_at=now,
                connected_since=now,
                heartbeat_interval_s=conn.heartbeat_interval,
            )
            log_event(
                log,
                LogEvent.GATEWAY_CONNECTED,
                f"{'Resumed' if out.resumed else 'Identified'} session {out.session_id} "
                f"({attempts_text(attempt, self.settings.max_attempts)})",
                attempt=attempt,
                session_id=out.session_id,
                resumed=out.resumed,
                seq=out.seq,
                heartbeat_interval_s=conn.heartbeat_interval,
            )

        try:
            disconnect = await drive(
                link,
                conn,
                Callbacks(
                    established=on_established,
                    dispatch=self.dispatcher.submit,
                    control=self._on_control,
                    pings_ignored=self._on_pings_ignored,
                ),
                deadline=deadline,
            )
        except asyncio.CancelledError:
            self._log_closed(None, "the worker is stopping", CloseAction.RESUME)
            raise
        self._close_code = disconnect.close_code
        self._log_closed(disconnect.close_code, disconnect.reason, disconnect.action)
        self.progress.update(session_id=self.session.session_id)
        if conn.heartbeat_interval is None:
            self.rest.forget_gateway_url()  # no Hello: this URL may be the problem
        decision = self.policy.connection_lost(disconnect, loop.time())
        if established and disconnect.close_code is None and disconnect.action is CloseAction.RESUME:
            self._path_down = DEAD_LINK  # no word from the server: watch the path while waiting
        if not established:
            code = "" if disconnect.close_code is None else f" (close {disconnect.close_code})"
            self._log_failed(attempt, f"closed before READY{code}: {disconnect.reason}")
        return decision

    # Callbacks from the receive path (keep them instant) ------------------------------------

    def _handed_seq(self) -> int | None:
        """The seq the watchdog may hand to a successor: never past an event not yet handled."""
        if self.dispatcher is None:
            return self.session.seq
        return self.dispatcher.handed_seq(self.session.seq)

    def _on_pings_ignored(self, out: PingsIgnored) -> None:
        if self._pings_ignored:
            return
        self._pings_ignored = True
        log_event(
            log,
            LogEvent.PINGS_IGNORED,
            f"The gateway answered {out.acks_without_pong} heartbeats but no WebSocket ping: liveness "
            "falls back to heartbeat ACKs and receive silence (a dead link takes longer to notice)",
            level=logging.WARNING,
            acks_without_pong=out.acks_without_pong,
        )

    def _on_control(self, conn: GatewayConnection) -> None:
        if conn.last_ack_at is not None and conn.last_ack_at != self.progress.last_ack_at:
            self.progress.update(last_ack_at=conn.last_ack_at)

    # Log lines -------------------------------------------------------------------------------

    def _attempt_failed(self, attempt: int, error: str, *, permanent: bool = False) -> Decision:
        self._log_failed(attempt, error)
        return self.policy.attempt_failed(error, permanent=permanent)

    def _log_failed(self, attempt: int, error: str) -> None:
        log_event(
            log,
            LogEvent.RECONNECT_FAILED,
            f"Attempt {attempt} failed: {error}",
            level=logging.WARNING,
            attempt=attempt,
            error=error,
        )

    def _log_closed(self, code: int | None, reason: str, action: CloseAction) -> None:
        shown = "no close code" if code is None else f"close {code}"
        log_event(
            log,
            LogEvent.GATEWAY_CLOSED,
            f"Gateway connection closed ({shown}: {reason}); next: {action.value}",
            level=logging.WARNING if action is not CloseAction.RESUME else logging.INFO,
            close_code=code,
            reason=reason,
            action=action.value,
        )

    def _fatal(self, reason: str, close_code: int | None = None) -> ExitCode:
        self.progress.update(phase=Phase.STOPPING)
        log_event(
            log,
            LogEvent.WORKER_FATAL,
            f"Permanent error, not retrying: {reason}",
            level=logging.CRITICAL,
            reason=reason,
            close_code=close_code,
        )
        return ExitCode.CONFIG
