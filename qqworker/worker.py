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
import time
from typing import TYPE_CHECKING, Any

import aiohttp

from qqworker.auth import TokenError, TokenManager
from qqworker.backoff import Backoff
from qqworker.closecodes import CloseAction
from qqworker.contract.beat import Phase, Progress
from qqworker.contract.events import LogEvent
from qqworker.contract.exitcodes import ExitCode
from qqworker.contract.logs import log_event
from qqworker.contract.settings import ConfigError, Settings
from qqworker.deadlines import within
from qqworker.delivery import MAX_REPORTED, report_abandoned
from qqworker.gateway import STOPPING, TOO_BIG, Callbacks, drive, open_link
from qqworker.handler_import import load_handler_retrying
from qqworker.handlers import Dispatcher, Handler
from qqworker.hostprobe import RESOLVE_TIMEOUT_S, classify, name_failure
from qqworker.hosts import HostRing, Switch
from qqworker.liveness import PingsIgnored
from qqworker.netpath import DEAD_LINK, local_failure, probe_target, tcp_probe, wait_for_path
from qqworker.oversize import Move, OversizeGuard
from qqworker.protocol import Established, GatewayProtocol, ResumePoint
from qqworker.reconnect import ReconnectAction, ReconnectDecision, ReconnectPolicy
from qqworker.rest import RestClient, RestError
from qqworker.signatures import adapt

if TYPE_CHECKING:  # imported when the webhook handler is chosen: its crypto costs the others nothing
    from qqworker.localgw import LocalGateway
    from qqworker.webhook import WebhookHandler

log = logging.getLogger("qqworker.worker")
TOKEN_MARGIN_S = 0.05
MIN_PROBE_S = 0.2  # the least time a "do the other names resolve?" check gets
# A stop waits for queued and running handlers until this long before the watchdog's SIGKILL
# (--stop-timeout after its SIGTERM): time left to close, report and exit.
STOP_MARGIN_S = 1.0
# A successor (started with a session to resume) beats at each change of its oldest unhandled event,
# for this many changes: the replay is where a poison event strikes again, before any periodic beat.
# 64 beats (~25 KB) fit the 64 KB pipe even if the watchdog reads none of them meanwhile.
REPLAY_WATCH_BEATS = 64


def attempts_text(attempt: int, max_attempts: int) -> str:
    return f"attempt {attempt}/{max_attempts}" if max_attempts else f"attempt {attempt}, no limit"


def seconds_text(delay: float) -> str:
    """`5.0s`, but `0.05s` rather than a misleading `0.1s` or `0.0s` for short test delays."""
    return f"{delay:.1f}s" if delay >= 1 or delay == 0 else f"{delay:.2f}s"


def connected_reason(resumed: bool, refused: str | None) -> str:
    """`gateway.connected`'s `reason`: why this connection resumed, or why it is a new session."""
    if resumed:
        return "resumed the session"
    if refused is not None:
        return f"the platform refused the Resume ({refused}): a new session, events since are not replayed"
    return "no session to resume: a new session"


def describe_error(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Worker:
    """One bot's gateway client: loads the handler, connects (`gateway.drive` over a
    `GatewayProtocol`), hands events to the `Dispatcher`, reconnects as `ReconnectPolicy` decides,
    and mirrors where it is in `progress` (the watchdog's beats). `run()` returns the exit code;
    `stop()` ends it cleanly. The session to resume, if any, comes in as a `ResumePoint`."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: ResumePoint | None = None,
        handler: Handler | str | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.session = session if session is not None else ResumePoint()
        self.progress = progress if progress is not None else Progress()
        # The seq a beat hands on is worked out when the beat is sent, not at every event.
        self.progress.update(
            session_id=self.session.session_id, seq_source=self._handed_seq, delivery_source=self._delivery
        )
        self.policy = ReconnectPolicy(
            Backoff(settings.retry_initial, settings.retry_max), settings.max_attempts
        )
        self._handler_spec = handler if handler is not None else settings.handler
        self.stop_reason: str | None = None
        self._stop_deadline: float | None = None
        self._stop_again = asyncio.Event()
        self._watch_left = 0
        self.oversize = OversizeGuard()
        self._main: asyncio.Task[ExitCode] | None = None
        self._close_code: int | None = None
        self.tokens: TokenManager | None = None
        self.rest: RestClient | None = None
        self.dispatcher: Dispatcher | None = None
        self.webhook: WebhookHandler | None = None  # QQ_HANDLER=webhook
        self.local_gateway: LocalGateway | None = None  # QQ_HANDLER=gateway
        self.bases = HostRing("api_base", settings.api_bases)
        self.token_urls = HostRing("token_url", settings.token_urls)
        self.progress.update(api_base=self.bases.current, token_url=self.token_urls.current)
        # Why the next READY is a new session although we had one (the platform refused the Resume).
        self._resume_refused: str | None = None
        self._path_down: str | None = None  # the last attempt failed before reaching the platform: why
        self._pings_ignored = False  # a connection found that the gateway answers no WebSocket ping
        self._probes: tuple[int, int] | None = None  # (probes, failed) of the wait before this attempt

    # Public API ------------------------------------------------------------------------------

    def stop(self, reason: str = "stop requested") -> None:
        """Ends `run()` cleanly (exit 0). Call it on the event loop's thread (e.g. a signal handler)."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._stop_deadline = time.monotonic() + max(0.0, self.settings.stop_timeout - STOP_MARGIN_S)
        else:
            self._stop_again.set()  # a second request ends the wait for the handlers at once
        if self._main is not None and not self._main.done():
            self._main.cancel()

    async def run(self) -> ExitCode:
        """Runs until stopped (0), out of attempts (75) or a permanent error (78). Never raises,
        except CancelledError when the task running it is cancelled (after cleaning up)."""
        s = self.settings
        log_event(
            log,
            LogEvent.WORKER_STARTED,
            f"Worker started for app {s.app_id} (intents {s.intents_mask}, API base {self.bases.current}, "
            f"token endpoint {self.token_urls.current})",
            app_id=s.app_id,
            intents=s.intents_mask,
            resume=self.session.resumable,
            api_base=self.bases.current,
            token_url=self.token_urls.current,
            api_bases=list(self.bases.urls),
            token_urls=list(self.token_urls.urls),
            known_event_ids=self.session.window_mark()[0],
        )
        gateway_mode = isinstance(self._handler_spec, str) and self._handler_spec.strip() == "gateway"
        try:
            handler = None if gateway_mode else await self._load_handler()
        except ConfigError as exc:
            return self._fatal(str(exc))
        if handler is None and not gateway_mode:  # stopped while retrying the handler's import
            self.progress.update(phase=Phase.STOPPING)
            log_event(
                log, LogEvent.WORKER_STOPPED, f"Worker stopped: {self.stop_reason}", reason=self.stop_reason
            )
            return ExitCode.OK
        http = aiohttp.ClientSession()
        self.tokens = TokenManager(
            http,
            app_id=s.app_id,
            app_secret=s.app_secret,
            token_url=self.token_urls.current,
            timeout_s=s.connect_timeout,
        )
        self.rest = RestClient(
            http, self.tokens, base=self.bases.current, app_id=s.app_id, timeout_s=s.connect_timeout
        )
        if gateway_mode:
            from qqworker.localgw import LocalGateway  # the aiohttp server: only in this mode

            self.local_gateway = LocalGateway(
                s, http=http, tokens=self.tokens, rest=self.rest, session=self.session
            )
            try:
                await self.local_gateway.start()
            except ConfigError as exc:
                await self.local_gateway.close()
                await http.close()
                return self._fatal(str(exc))
            handler = adapt(self.local_gateway.handle, "gateway")
        assert handler is not None
        self.dispatcher = Dispatcher(
            handler,
            rest=self.rest,
            concurrency=s.handler_concurrency if self.webhook is None else self.webhook.runners,
            queue_size=s.handler_queue,
            session_id=self.session.session_id,
        )
        self.dispatcher.on_stranded_done = self.progress.update  # the next beat says so
        if self.session.resumable:
            self._watch_left = REPLAY_WATCH_BEATS
            self.dispatcher.on_oldest = self._oldest_changed
        self.dispatcher.start()
        self.progress.totals_source = self.dispatcher.totals
        if self.webhook is not None:
            await self.webhook.start()
            self.progress.webhook_source = self.webhook.beat_fields
            self.webhook.on_progress = self.progress.update  # beat soon after acknowledgements
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
            if code is ExitCode.OK and not cancelled:
                await self._drain()
        finally:
            self.progress.update(phase=Phase.STOPPING)
            await self.dispatcher.close()
            if self.webhook is not None:
                await self.webhook.close()
            if self.local_gateway is not None:
                await self.local_gateway.close()
            await http.close()
            self.progress.update()  # a last beat: the handed seq stays below every unhandled event
        if code is ExitCode.OK:
            self._report_stop()
        if cancelled:
            raise asyncio.CancelledError
        return code

    async def _load_handler(self) -> Handler | None:
        """The handler (its module's transient import failures retried); None if stopped meanwhile."""
        spec = self._handler_spec
        if callable(spec):
            return adapt(spec, getattr(spec, "__name__", "handler"))
        if spec.strip() == "webhook":
            from qqworker.webhook import WebhookHandler

            self.webhook = WebhookHandler(self.settings)
            return self.webhook
        backoff = Backoff(self.settings.retry_initial, self.settings.retry_max)
        self._main = loading = asyncio.create_task(
            load_handler_retrying(self._handler_spec, backoff, self.progress), name="qqworker-handler"
        )
        if self.stop_reason is not None:
            loading.cancel()
        try:
            await asyncio.wait({loading})
        except asyncio.CancelledError:
            loading.cancel()
            raise
        finally:
            self._main = None
        if loading.cancelled():
            return None
        return loading.result()

    # Stopping -------------------------------------------------------------------------------

    async def _drain(self) -> None:
        """A clean stop hands the queue on: waits, up to the stop deadline, for the events queued
        and running; what is left stays below the handed seq (the next start replays it)."""
        assert self.dispatcher is not None
        remaining = (self._stop_deadline or 0.0) - time.monotonic()
        if remaining <= 0 or self.dispatcher.idle:
            return
        self.progress.update(phase=Phase.STOPPING)
        waits = {
            asyncio.ensure_future(self.dispatcher.join()),
            asyncio.ensure_future(self._stop_again.wait()),
        }
        try:
            await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    def _report_stop(self) -> None:
        assert self.dispatcher is not None
        report_abandoned(self.dispatcher.inflight.stranded(), "the worker stopped")
        left = self.dispatcher.inflight.unhandled()
        fields: dict[str, object] = {"unhandled": 0}
        text = ""
        if left is not None:
            fields = {
                "unhandled": left.count,
                "unhandled_first_seq": left.first_seq,
                "unhandled_last_seq": left.last_seq,
                "session_id": left.session_id,
            }
            text = (
                f"; {left.count} event(s) not handled (seqs {left.first_seq}-{left.last_seq}), "
                "left for the next start to replay"
            )
        log_event(
            log,
            LogEvent.WORKER_STOPPED,
            f"Worker stopped: {self.stop_reason}{text}",
            reason=self.stop_reason,
            **fields,
        )

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
            if decision.verdict is ReconnectAction.FATAL:
                return self._fatal(decision.reason, self._close_code)
            if decision.verdict is ReconnectAction.GIVE_UP:
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

    async def _wait(self, decision: ReconnectDecision) -> None:
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

    async def _attempt(self, attempt: int) -> ReconnectDecision:
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
            url=url or f"{self.bases.current}/gateway/bot",
            resume=self.session.resumable,
            **({} if self._probes is None else {"probes": self._probes[0], "probes_failed": self._probes[1]}),
        )
        self._probes = None
        stage = "token"
        try:
            # The request's own timeout comes first, so that it is logged as auth.token_failed.
            remaining = deadline - loop.time()
            token = await within(remaining, self.tokens.authorization(max(0.01, remaining - TOKEN_MARGIN_S)))
            self.token_urls.succeeded()
            stage = "discovery"
            discovered = self.rest.cached_gateway_url is None
            url = await within(deadline - loop.time(), self.rest.gateway_url())
            if discovered:
                self.bases.succeeded()
            stage = "connect"
            link = await open_link(url, deadline - loop.time(), max_size=self.settings.max_frame_bytes)
        except TokenError as exc:
            self._path_down = None if exc.permanent else local_failure(exc)
            decision = self._attempt_failed(attempt, f"{stage}: {exc}", permanent=exc.permanent)
            if stage == "token":
                await self._maybe_switch(self.token_urls, exc, exc.status, deadline)
            return decision
        except asyncio.TimeoutError as exc:
            self._path_down = local_failure(exc)
            if stage == "connect" and self._path_down is None:  # the path, not the URL, was the problem
                self.rest.forget_gateway_url()
            return self._attempt_failed(attempt, f"{stage}: the attempt timed out after {timeout:g}s")
        except Exception as exc:  # network errors, handshake refusals, bad answers, bad URLs
            self._path_down = local_failure(exc)
            if stage == "connect" and self._path_down is None:
                self.rest.forget_gateway_url()
            decision = self._attempt_failed(attempt, f"{stage}: {describe_error(exc)}")
            if stage == "discovery" and isinstance(exc, RestError):
                await self._maybe_switch(self.bases, exc, exc.status, deadline)
            return decision

        conn = GatewayProtocol(
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
            self.dispatcher.session(out.session_id)
            self.progress.update(
                phase=Phase.CONNECTED,
                session_id=out.session_id,
                last_ack_at=now,
                connected_since=now,
                heartbeat_interval_s=conn.heartbeat_interval,
            )
            reason, self._resume_refused = connected_reason(out.resumed, self._resume_refused), None
            log_event(
                log,
                LogEvent.GATEWAY_CONNECTED,
                f"{'Resumed' if out.resumed else 'Identified'} session {out.session_id} "
                f"({attempts_text(attempt, self.settings.max_attempts)})"
                + ("" if out.resumed else f": {reason}"),
                attempt=attempt,
                session_id=out.session_id,
                resumed=out.resumed,
                seq=out.seq,
                heartbeat_interval_s=conn.heartbeat_interval,
                reason=reason,
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
            ended = conn.end(STOPPING)  # what drive decided on the way out
            self._log_closed(ended.close_code, ended.reason, ended.action)
            raise
        self._close_code = disconnect.close_code
        if disconnect.resume_refused:
            self._resume_refused = disconnect.reason
        self._log_closed(disconnect.close_code, disconnect.reason, disconnect.action)
        if disconnect.close_code == TOO_BIG:
            self._frame_too_big()
        self.dispatcher.session(self.session.session_id)  # None: dropped, what was in flight is stranded
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

    # Host agility ----------------------------------------------------------------------------

    async def _maybe_switch(
        self, ring: HostRing, exc: BaseException, status: int | None, deadline: float
    ) -> None:
        """After a failed token or discovery request: move to the ring's next URL if the failure
        says "wrong host" (hosts.HostRing decides); the next attempt uses it. A name that did not
        resolve is checked against the other names within what is left of the attempt's bound."""
        if status == 401:
            return  # a stale token, not a wrong host
        failure = classify(getattr(exc, "cause", None) or exc, status)
        left = deadline - asyncio.get_running_loop().time()
        failure = await name_failure(failure, ring.others, min(RESOLVE_TIMEOUT_S, max(MIN_PROBE_S, left)))
        switch = ring.failed(failure)
        if switch is None:
            return
        assert self.tokens is not None and self.rest is not None
        if switch.kind == "api_base":
            self.rest.use_base(switch.to_url)
        else:
            self.tokens.use_url(switch.to_url)
        self.progress.update(api_base=self.bases.current, token_url=self.token_urls.current)
        self._log_switch(switch)

    def _log_switch(self, switch: Switch) -> None:
        what = "API base" if switch.kind == "api_base" else "token endpoint"
        log_event(
            log,
            LogEvent.BASE_SWITCHED,
            f"Switching the {what} from {switch.from_url} to {switch.to_url}: {switch.reason}",
            level=logging.WARNING,
            **{"from": switch.from_url, "to": switch.to_url},
            reason=switch.reason,
            kind=switch.kind,
        )

    # Callbacks from the receive path (keep them instant) ------------------------------------

    def _handed_seq(self) -> int | None:
        """The seq the watchdog may hand to a successor: never past an event not yet handled."""
        if self.dispatcher is None:
            return self.session.seq
        seq = self.dispatcher.handed_seq(self.session.seq)
        if self.local_gateway is not None:  # nor past an event a framework has not confirmed
            floor = self.local_gateway.floor(self.session.session_id)
            if floor is not None and (seq is None or floor < seq):
                seq = floor
        return seq

    def _delivery(self) -> dict[str, Any]:
        """The beat's delivery fields: the oldest unhandled event, and stranded events if any."""
        if self.dispatcher is None:
            return {}
        inflight = self.dispatcher.inflight
        fields: dict[str, Any] = {}
        # The webhook handler's oldest event waits for a bot, it cannot be what kills a worker: naming
        # it would let the watchdog's poison check skip it after a few unrelated deaths.
        oldest = inflight.oldest() if self.webhook is None else None
        if oldest is not None:
            event_id = oldest.id[:128] if oldest.id is not None else None
            fields.update(oldest_seq=oldest.seq, oldest_type=oldest.type[:128], oldest_id=event_id)
        stranded = inflight.stranded()
        if stranded:
            fields["stranded"] = [
                [s.session_id, s.first_seq, s.last_seq, s.count] for s in stranded[:MAX_REPORTED]
            ]
        if self.local_gateway is not None:
            fields.update(self.local_gateway.beat_fields())
        return fields

    def _frame_too_big(self) -> None:
        """A 1009: the same frame again at the same position is skipped, or the session given up."""
        session = self.session
        verdict = self.oversize.too_big(session.seq if session.resumable else None)
        if verdict.move is Move.RESUME:
            return
        session_id = session.session_id
        if verdict.move is Move.SKIP:
            session.seq = verdict.seq
            what = f"skipping seq {verdict.lost_first}: the next Resume asks for what follows it"
        else:
            session.forget()
            what = (
                f"giving up the session: everything from seq {verdict.lost_first} on is lost; Identify anew"
            )
        log_event(
            log,
            LogEvent.EVENTS_LOST,
            f"A frame over the {self.settings.max_frame_bytes}-byte limit came again at the same "
            f"position; {what}",
            level=logging.ERROR,
            session_id=session_id,
            first_seq=verdict.lost_first,
            last_seq=verdict.lost_last,
            reason="frame too large",
        )

    def _oldest_changed(self) -> None:
        self._watch_left -= 1
        if self._watch_left <= 0 and self.dispatcher is not None:
            self.dispatcher.on_oldest = None
        self.progress.update()  # beats at once (one short non-blocking write)

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

    def _on_control(self, conn: GatewayProtocol) -> None:
        if conn.last_ack_at is not None and conn.last_ack_at != self.progress.last_ack_at:
            rtt = None if conn.ack_rtt is None else round(conn.ack_rtt, 4)
            self.progress.update(last_ack_at=conn.last_ack_at, ack_rtt_s=rtt)

    # Log lines -------------------------------------------------------------------------------

    def _attempt_failed(self, attempt: int, error: str, *, permanent: bool = False) -> ReconnectDecision:
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
