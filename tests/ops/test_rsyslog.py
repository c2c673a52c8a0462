"""A real log shipper reads our log file: rsyslog (imfile → mmjsonparse → omfile), in the foreground.

The watchdog + worker write QQW_LOG_FILE while a private rsyslogd follows it; every line must arrive
parsed, with all of its fields and their JSON types, also lines written after a copytruncate rotation.
rsyslog is installed with apt when missing (CI runs as root with the package registries reachable); where
that is impossible the test says why and skips.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from qqworker.contract.events import LogEvent
from qqworker.contract.logs import log_event
from qqworker.logs import configure_logging
from tests.ops.packages import ensure_binary
from tests.support import LineProcess, SimulatorProcess, wait_until

ROOT = Path(__file__).resolve().parents[2]

RSYSLOG_CONF = """
global(workDirectory="{work}" maxMessageSize="256k")
module(load="imfile")
module(load="mmjsonparse")
# The fields an aggregator indexes, by name, plus the whole parsed tree to compare against the source.
template(name="fields" type="list") {{
  constant(value="{{")
  property(outname="event" name="$!event" format="jsonf") constant(value=",")
  property(outname="level" name="$!level" format="jsonf") constant(value=",")
  property(outname="role" name="$!role" format="jsonf") constant(value=",")
  property(outname="generation" name="$!generation" format="jsonf") constant(value=",")
  property(outname="message" name="$!message" format="jsonf") constant(value=",\\"all\\":")
  property(name="$!all-json")
  constant(value="}}\\n")
}}
template(name="raw" type="string" string="%msg%\\n")
ruleset(name="qqwatchdog") {{
  action(type="mmjsonparse" cookie="")
  if $parsesuccess == "OK" then {{
    action(type="omfile" file="{parsed}" template="fields")
  }} else {{
    action(type="omfile" file="{failed}" template="raw")
  }}
}}
input(type="imfile" file="{log}" tag="qqwatchdog" ruleset="qqwatchdog" addMetadata="off"
      reopenOnTruncate="on")
"""


class Rsyslog:
    def __init__(self, binary: str, log: Path, tmp: Path) -> None:
        work = tmp / "rsyslog-work"
        work.mkdir()
        self.parsed = tmp / "parsed.jsonl"
        self.failed = tmp / "failed.log"
        conf = tmp / "rsyslog.conf"
        conf.write_text(RSYSLOG_CONF.format(work=work, parsed=self.parsed, failed=self.failed, log=log))
        check = subprocess.run([binary, "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(
            [binary, "-n", "-f", str(conf), "-i", str(tmp / "rsyslogd.pid")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def records(self) -> list[dict[str, Any]]:
        if not self.parsed.exists():
            return []
        return [json.loads(line) for line in self.parsed.read_text(encoding="utf-8").splitlines()]

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.records()) >= count or self.proc.poll() is not None, 60, f"{count} lines")
        assert self.proc.poll() is None, self.proc.communicate()[0]
        time.sleep(0.5)  # anything beyond the expected lines would be a bug: give it a moment to show
        return self.records()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def source_records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_rsyslog_ingests_every_line_with_its_fields(tmp_path: Path) -> None:
    binary = ensure_binary("rsyslogd", "rsyslog")
    log = tmp_path / "qqwatchdog.log"
    sim = SimulatorProcess()
    shipper = None
    try:
        # 1. The real watchdog + worker write the log file, started through the launcher.
        env = sim.env(QQW_LOG_FILE=str(log), QQW_STATUS_FILE=str(tmp_path / "status.json"), QQ_HANDLER="log")
        bot = LineProcess(
            ["bash", str(ROOT / "scripts" / "run.sh"), "--json", "--retry-initial", "0.2"],
            env=env,
            cwd=tmp_path,
        )
        try:
            bot.wait_for("gateway.connected", 30)
            shipper = Rsyslog(binary, log, tmp_path)  # starts on a file that already has lines, then follows
            sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "count": 5})
            sim.control("/_sim/events", {"type": "GROUP_AT_MESSAGE_CREATE", "count": 5})
            mark = bot.mark()
            sim.control("/_sim/outage", {"mode": "refuse", "seconds": 1})
            bot.wait_for("reconnect.failed", 30, after=mark)
            bot.wait_for("gateway.connected", 30, after=mark)
            bot.wait_for("dispatch", 30, lambda r: r["seq"] >= 11)
        finally:
            assert bot.stop(20) == 0
        # 2. Lines that stress the parser: non-ASCII, quotes, backslashes, a multi-line traceback.
        handler = configure_logging("worker", generation=7, log_file=str(log), stream=open(os.devnull, "w"))  # noqa: SIM115
        try:
            logger = logging.getLogger("qqworker.test")
            log_event(
                logger, LogEvent.HANDLER_ERROR, '处理失败: "引号" \\ 反斜杠', event_type="C2C", error="x\ty"
            )
            try:
                raise ValueError("多行\nerror")
            except ValueError:
                logger.exception("with a traceback", extra={"event": LogEvent.HANDLER_ERROR.value})
            before_rotation = log.read_text(encoding="utf-8")
            expected = source_records(before_rotation)
            received = shipper.wait_for(len(expected))
            # 3. logrotate's copytruncate: the file is copied and truncated in place; rsyslog follows.
            shutil.copy(log, tmp_path / "qqwatchdog.log.1")
            with open(log, "r+") as fh:
                fh.truncate(0)
            time.sleep(1.5)  # imfile notices the truncation on its next look at the file
            log_event(logger, LogEvent.LOG_REOPENED, "after the rotation", path=str(log))
        finally:
            handler.close()
            configure_logging("worker", stream=open(os.devnull, "w"))  # noqa: SIM115
        expected += source_records(log.read_text(encoding="utf-8"))
        received = shipper.wait_for(len(expected))
    finally:
        if shipper is not None:
            shipper.stop()
        sim.stop()

    assert not shipper.failed.exists(), shipper.failed.read_text()
    assert len(received) == len(expected) >= 25
    for got, want in zip(received, expected, strict=True):
        assert got["all"] == want  # every field, with its JSON type (numbers, booleans, null, nesting)
        assert got["event"] == want["event"] and got["level"] == want["level"]
        assert got["role"] == want["role"] and got["message"] == want["message"]
        assert got["generation"] == str(want["generation"])
    events = {r["event"] for r in received}
    assert {
        "watchdog.started",
        "child.spawned",
        "gateway.connected",
        "dispatch",
        "reconnect.failed",
    } <= events
    assert {
        "reconnect.scheduled",
        "worker.stopped",
        "watchdog.stopped",
        "handler.error",
        "log.reopened",
    } <= events
    assert received[-1]["message"] == "after the rotation"
