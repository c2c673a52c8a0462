"""`python -m watchdog` / `qqwatchdog`: run the supervisor, ask its status, or report on its logs.

    python -m watchdog run [--config FILE] [flags]     the supervisor in the foreground
    python -m watchdog status [--status-file PATH] [--json]   0 healthy, 1 unhealthy or damaged, 3 not running
    python -m watchdog report LOGFILE... [--json]      the outage timeline of a log
    python -m watchdog pretty [--colour WHEN] [--utc]  JSON log lines on stdin rendered for people

A configuration error is one JSON line (`watchdog.stopped`) and exit 78; another watchdog already
running on the same status file (it holds `<status file>.lock`) is one such line and exit 73.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from qqworker.contract.events import LogEvent
from qqworker.contract.exitcodes import ExitCode
from qqworker.contract.logs import log_event, redactor
from qqworker.contract.settings import ConfigError, Settings, add_setting_flags, load_settings
from qqworker.logs import configure_logging

__all__ = ["main", "run_parser", "status_parser"]

log = logging.getLogger("watchdog")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"command line: {message}")


def run_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="qqwatchdog run",
        description="Supervise the QQ gateway worker. Secrets come from the environment.",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML config file ([qq], [worker], [watchdog], [logging])"
    )
    add_setting_flags(parser, ("qq", "worker", "watchdog", "logging"))
    return parser


def status_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qqwatchdog status",
        description="The running supervisor's state: exit 0 healthy, 1 running but unhealthy (or a damaged "
        "status file), 3 not running.",
    )
    parser.add_argument("--status-file", metavar="PATH", help="default: $QQW_STATUS_FILE or the config's")
    parser.add_argument("--config", metavar="FILE", help="TOML config file naming the status file")
    parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    return parser


def cmd_run(argv: Sequence[str]) -> int:
    # Held pending until the supervisor's handlers are in place, so a stop during start-up is a clean
    # stop with its lines instead of a silent death; the supervisor unblocks them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    configure_logging(role="watchdog")
    try:
        args = run_parser().parse_args(argv)
        settings = load_settings(args, os.environ, args.config)
        redactor.add(settings.app_secret)
        redactor.add(settings.push_url)
        check_monitoring(settings)
        handler = configure_logging(
            role="watchdog",
            log_file=settings.log_file or None,
            buffer_bytes=settings.log_buffer_kb * 1024,
            retry_s=settings.log_retry,
        )
    except (ConfigError, OSError) as exc:
        configure_logging(role="watchdog")  # the log file may be what failed: stdout alone
        redactor.add(os.environ.get("QQ_APP_SECRET"))
        return _refuse(f"configuration error: {exc}", ExitCode.CONFIG)
    from watchdog import lock

    try:
        lock_fd = lock.acquire(settings.status_file)
    except lock.AlreadyRunning as exc:
        return _refuse(f"already running: {exc}; stop it first (scripts/run.sh stop)", ExitCode.LOCKED)
    except OSError as exc:  # a read-only run directory must not stop the bot: it runs, unguarded
        lock_fd = None
        log.warning(
            "Cannot take the lock beside the status file %s (%s): running without it, so a second "
            "watchdog on this run directory would not be refused",
            settings.status_file,
            exc,
            extra={
                "event": LogEvent.LOCK_FAILED.value,
                "path": lock.lock_path(settings.status_file),
                "error": str(exc),
            },
        )
    pid_file = os.environ.pop("QQW_PID_FILE", None)  # scripts/run.sh --background asks for it
    pid_lock_fd = None
    if pid_file:
        try:
            pid_lock_fd = lock.acquire(pid_file)  # the run directory's own: one background watchdog
            lock.write_pid_file(pid_file)
        except lock.AlreadyRunning as exc:
            return _refuse(f"already running: {exc}; stop it first (scripts/run.sh stop)", ExitCode.LOCKED)
        except OSError as exc:
            return _refuse(f"cannot write the pid file {pid_file}: {exc}", ExitCode.CONFIG)
    from watchdog.supervisor import Supervisor

    try:
        return Supervisor(settings, handler).run()
    finally:
        for fd in (lock_fd, pid_lock_fd):
            if fd is not None:
                os.close(fd)


def _refuse(reason: str, code: ExitCode) -> int:
    """The one line a watchdog that cannot start writes (watchdog.stopped), and its exit code."""
    log_event(
        log,
        LogEvent.WATCHDOG_STOPPED,
        f"Cannot start: {reason}",
        level=logging.CRITICAL,
        reason=reason,
        exitcode=int(code),
    )
    return int(code)


def check_monitoring(settings: Settings) -> None:
    """--http and --push-url are the watchdog's alone: checked here, not in the shared Settings."""
    if settings.http:
        from watchdog.endpoints import parse_address

        parse_address(settings.http)
    if settings.push_url:
        from watchdog.push import check_push_url

        check_push_url(settings.push_url)


def status_path(args: argparse.Namespace) -> str:
    if args.status_file:
        return args.status_file
    try:
        return load_settings({}, os.environ, args.config, need_credentials=False).status_file
    except ConfigError:
        return os.environ.get("QQW_STATUS_FILE") or Settings().status_file


def cmd_status(argv: Sequence[str]) -> int:
    from watchdog.status import damaged_verdict, judge, pid_alive, read_status_file, render

    args = status_parser().parse_args(argv)
    path = status_path(args)
    read = read_status_file(path)
    status = read.status
    now = time.time()
    alive = status is not None and pid_alive(
        status.get("watchdog_pid"), status.get("watchdog_started_at_epoch")
    )
    code, verdict = damaged_verdict(read) if read.damage else judge(status, now, alive)
    if read.bad_fields and not read.damage:
        verdict += f" (ignored fields of the wrong type: {', '.join(read.bad_fields)})"
    if args.json:
        print(
            json.dumps(
                {
                    "exit_code": code,
                    "verdict": verdict,
                    "status_file": path,
                    "status": status,
                    "damaged": read.damage,
                    "bad_fields": read.bad_fields,
                }
            )
        )
    elif status is None:
        print(f"qqwatchdog: {verdict} ({path})")
    else:
        print(render(status, verdict, now))
    return code


def cmd_report(argv: Sequence[str]) -> int:
    from watchdog import report

    return int(report.main(list(argv)) or 0)


def cmd_pretty(argv: Sequence[str]) -> int:
    from watchdog import pretty

    return pretty.main(list(argv))


COMMANDS = {"run": cmd_run, "status": cmd_status, "report": cmd_report, "pretty": cmd_pretty}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        if argv and argv[0] in ("-h", "--help"):
            print(__doc__)
            return 0
        print(__doc__, file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
