"""`python -m watchdog` / `qqwatchdog`: run the supervisor, ask its status, or report on its logs.

    python -m watchdog run [--config FILE] [flags]     the supervisor in the foreground
    python -m watchdog status [--status-file PATH] [--json]   0 healthy, 1 unhealthy, 3 not running
    python -m watchdog report LOGFILE... [--json]      the outage timeline of a log

A configuration error is one JSON line (`watchdog.stopped`) and exit 78.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from qqworker.events import LogEvent
from qqworker.exitcodes import ExitCode
from qqworker.logs import configure_logging, log_event, redactor
from qqworker.settings import ConfigError, Settings, add_setting_flags, load_settings

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
        description="The running supervisor's state: exit 0 healthy, 1 running but unhealthy, 3 not running.",
    )
    parser.add_argument("--status-file", metavar="PATH", help="default: $QQW_STATUS_FILE or the config's")
    parser.add_argument("--config", metavar="FILE", help="TOML config file naming the status file")
    parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    return parser


def cmd_run(argv: Sequence[str]) -> int:
    configure_logging(role="watchdog")
    try:
        args = run_parser().parse_args(argv)
        settings = load_settings(args, os.environ, args.config)
        redactor.add(settings.app_secret)
        handler = configure_logging(
            role="watchdog",
            log_file=settings.log_file or None,
            buffer_bytes=settings.log_buffer_kb * 1024,
            retry_s=settings.log_retry,
        )
    except (ConfigError, OSError) as exc:
        redactor.add(os.environ.get("QQ_APP_SECRET"))
        reason = f"configuration error: {exc}"
        log_event(
            log,
            LogEvent.WATCHDOG_STOPPED,
            f"Cannot start: {reason}",
            level=logging.CRITICAL,
            reason=reason,
            exitcode=int(ExitCode.CONFIG),
        )
        return int(ExitCode.CONFIG)
    from watchdog.supervisor import Supervisor

    return Supervisor(settings, handler).run()


def status_path(args: argparse.Namespace) -> str:
    if args.status_file:
        return args.status_file
    try:
        return load_settings({}, os.environ, args.config, need_credentials=False).status_file
    except ConfigError:
        return os.environ.get("QQW_STATUS_FILE") or Settings().status_file


def cmd_status(argv: Sequence[str]) -> int:
    from watchdog.status import judge, pid_alive, read_status, render

    args = status_parser().parse_args(argv)
    path = status_path(args)
    status = read_status(path)
    now = time.time()
    alive = status is not None and pid_alive(
        status.get("watchdog_pid"), status.get("watchdog_started_at_epoch")
    )
    code, verdict = judge(status, now, alive)
    if args.json:
        print(json.dumps({"exit_code": code, "verdict": verdict, "status_file": path, "status": status}))
    elif status is None:
        print(f"qqwatchdog: {verdict} ({path})")
    else:
        print(render(status, verdict, now))
    return code


def cmd_report(argv: Sequence[str]) -> int:
    from watchdog import report

    return int(report.main(list(argv)) or 0)


COMMANDS = {"run": cmd_run, "status": cmd_status, "report": cmd_report}


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
