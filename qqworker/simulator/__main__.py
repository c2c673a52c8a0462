"""`python -m qqworker.simulator`: serve until SIGTERM/SIGINT, after printing one JSON line of addresses."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from qqworker.simulator.options import DEFAULT_APP_ID, DEFAULT_APP_SECRET, SimOptions
from qqworker.simulator.server import Simulator

_DEFAULTS = SimOptions()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m qqworker.simulator",
        description="A local QQ Bot platform (token, REST, WebSocket gateway) with fault injection.",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (loopback unless --allow-remote)"
    )
    p.add_argument("--port", type=int, default=0, help="main port (0: a free one)")
    p.add_argument(
        "--control-port", type=int, default=0, help="control-only port, never faulted (0: a free one)"
    )
    p.add_argument("--app-id", default=DEFAULT_APP_ID)
    p.add_argument("--app-secret", default=DEFAULT_APP_SECRET)
    p.add_argument("--heartbeat-interval-ms", type=int, default=_DEFAULTS.heartbeat_interval_ms)
    p.add_argument(
        "--heartbeat-timeout-factor",
        type=float,
        default=_DEFAULTS.heartbeat_timeout_factor,
        help="close 4009 after interval x this without a client frame (0: never)",
    )
    p.add_argument("--resume-window", type=float, default=_DEFAULTS.resume_window_s, metavar="S")
    p.add_argument(
        "--session-cycle",
        type=float,
        default=_DEFAULTS.session_cycle_s,
        metavar="S",
        help="op 7 + close 4009 after this long on one connection (0: never)",
    )
    p.add_argument("--allowed-intents", type=int, default=_DEFAULTS.allowed_intents)
    p.add_argument(
        "--intent-reject-code",
        type=int,
        default=_DEFAULTS.intent_reject_code,
        help="4903 (op 9 first, as in the field) or e.g. 4014 (as documented)",
    )
    p.add_argument("--token-ttl", type=int, default=_DEFAULTS.token_ttl_s, metavar="S")
    p.add_argument(
        "--retired",
        action="store_true",
        help="answer like a retired API host: 500 on /gateway and /gateway/bot, 404 on the token path",
    )
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    p.add_argument(
        "--no-pong", action="store_true", help="never answer WebSocket pings (clients must fall back to ACKs)"
    )
    p.add_argument("--log-level", default="WARNING", help="stderr log level (default WARNING)")
    return p.parse_args(argv)


async def serve_simulator(args: argparse.Namespace) -> int:
    sim = Simulator(
        args.host,
        args.port,
        control_port=args.control_port,
        allow_remote=args.allow_remote,
        app_id=args.app_id,
        app_secret=args.app_secret,
        heartbeat_interval_ms=args.heartbeat_interval_ms,
        heartbeat_timeout_factor=args.heartbeat_timeout_factor,
        resume_window_s=args.resume_window,
        session_cycle_s=args.session_cycle,
        allowed_intents=args.allowed_intents,
        intent_reject_code=args.intent_reject_code,
        token_ttl_s=args.token_ttl,
        retired=args.retired,
        answer_pings=not args.no_pong,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await sim.start()
    try:
        print(json.dumps(sim.info()), flush=True)
        await stop.wait()  # serving is the job: it ends with a signal
    finally:
        await sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return asyncio.run(serve_simulator(args))
    except (ValueError, OSError) as exc:
        print(f"qqworker.simulator: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
