"""`python -m qqworker` / `qqworker`: the worker alone, in the foreground.

Flags override the environment, which overrides the config file. A configuration error is one
`worker.fatal` line and exit 78. SIGTERM/SIGINT stop it cleanly (exit 0, `worker.stopped`);
SIGHUP reopens the log file (logrotate).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from qqworker.contract.events import LogEvent
from qqworker.contract.exitcodes import ExitCode
from qqworker.contract.logs import log_event, redactor
from qqworker.contract.settings import ConfigError, Settings, add_setting_flags, load_settings
from qqworker.logs import configure_logging, current_handler, pump_outputs
from qqworker.runloop import exit_despite_stuck_threads, run_loop
from qqworker.worker import Worker

log = logging.getLogger("qqworker.cli")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"command line: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="qqworker",
        description="The QQ Bot gateway worker, alone (no watchdog). Secrets come from the environment.",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config file ([qq], [worker], [logging])")
    add_setting_flags(parser, ("qq", "worker", "logging"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["webhook-check"]:
        from qqworker.webhook_check import main as webhook_check

        return webhook_check(argv[1:])
    configure_logging(role="worker")
    try:
        args = build_parser().parse_args(argv)
        settings = load_settings(args, os.environ, args.config)
    except ConfigError as exc:
        redactor.add(os.environ.get("QQ_APP_SECRET"))
        return _config_error(exc)
    redactor.add(settings.app_secret)
    outputs = {"buffer_bytes": settings.log_buffer_kb * 1024, "retry_s": settings.log_retry}
    try:
        configure_logging(role="worker", log_file=settings.log_file or None, **outputs)
    except (ConfigError, OSError) as exc:
        configure_logging(role="worker", **outputs)
        return _config_error(exc)
    code = run_loop(serve_standalone(settings))
    exit_despite_stuck_threads(code)
    return code


def _config_error(exc: Exception) -> int:
    """The one line a configuration error gets (worker.fatal), and its exit code."""
    log_event(
        log,
        LogEvent.WORKER_FATAL,
        f"Configuration error: {exc}",
        level=logging.CRITICAL,
        reason=str(exc),
        close_code=None,
    )
    return int(ExitCode.CONFIG)


async def serve_standalone(settings: Settings) -> ExitCode:
    """Runs a Worker with the process signals wired to it."""
    worker = Worker(settings)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, worker.stop, f"received {sig.name}")
    loop.add_signal_handler(signal.SIGHUP, _reopen_log)
    pump = pump_outputs(loop)
    try:
        return await worker.run()
    finally:
        for sig in (*signals, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        # Stopped and exiting now: a late stop signal (GNU timeout, or a terminal's Ctrl-C, reaches
        # the whole process group, and the watchdog sends its own) must not turn exit 0 into -15.
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
        if pump is not None:
            pump.close()


def _reopen_log() -> None:
    handler = current_handler()
    if handler is not None:
        try:
            handler.reopen()
        except (ConfigError, OSError) as exc:
            log_event(
                log,
                LogEvent.LOG_REOPENED,
                f"Cannot reopen the log file: {exc}; writing to stdout only",
                level=logging.ERROR,
                path=handler.file_path,
                error=str(exc),
            )
            return
        log_event(log, LogEvent.LOG_REOPENED, "Reopened the log file", path=handler.file_path)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
