"""The sinks' thin I/O over real pipes and files (no processes): never blocks, never raises, recovers."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qqworker.logs import JsonLinesHandler, configure_logging, pump_outputs
from qqworker.outputs import private_fd
from qqworker.sinks import SinkState


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)


def read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def handler_on(w: int, **kw: object) -> JsonLinesHandler:
    stream = open(w, "w", closefd=False)  # noqa: SIM115  (the fixture closes the fd)
    return configure_logging("worker", stream=stream, buffer_bytes=16 * 1024, **kw)  # type: ignore[arg-type]


def test_the_private_fd_is_non_blocking_and_the_original_is_left_blocking(pipe: tuple[int, int]) -> None:
    _, w = pipe
    mine = private_fd(w)
    try:
        assert os.get_blocking(w) and not os.get_blocking(mine)
        assert fcntl.fcntl(mine, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        os.close(mine)


def test_a_pipe_nobody_reads_never_blocks_and_every_line_is_accounted(
    pipe: tuple[int, int],
) -> None:
    r, w = pipe
    handler = handler_on(w)
    t0 = time.monotonic()
    for i in range(3000):
        handler.write_line(json.dumps({"event": "dispatch", "i": i}))
    assert time.monotonic() - t0 < 2.0, "writing must never wait for the reader"
    stdout = handler.outputs.sinks.get("stdout")
    assert stdout is not None and stdout.state is SinkState.STALLED and stdout.dropped > 0
    assert stdout.produced == stdout.written + stdout.dropped + stdout.pending_lines == 3000
    got = read_all(r)
    handler.outputs.flush()
    got += read_all(r)
    records = [json.loads(x) for x in got.splitlines()]  # whole lines only
    lost = [x for x in records if x["event"] == "log.dropped"]
    assert len(lost) == 1 and lost[0]["sink"] == "stdout" and lost[0]["lines"] == stdout.dropped
    seen = [x["i"] for x in records if x["event"] == "dispatch"]
    assert seen == sorted(seen), "order kept"
    assert len(seen) + lost[0]["lines"] == 3000
    assert stdout.state is SinkState.OK


def test_a_closed_reader_is_a_failing_sink_not_an_exception(pipe: tuple[int, int]) -> None:
    r, w = pipe
    handler = handler_on(w)
    os.close(r)
    handler.write_line('{"event": "dispatch"}')  # EPIPE (SIGPIPE is ignored by Python)
    stdout = handler.outputs.sinks.get("stdout")
    assert stdout is not None and stdout.state is SinkState.FAILING and stdout.error.startswith("EPIPE")
    assert handler.outputs.next_retry() is not None
    assert handler.sinks()["stdout"]["state"] == "failing"


def test_a_log_file_whose_directory_vanished_is_retried_reopened_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "qqw.log"
    handler = configure_logging(
        "watchdog",
        log_file=str(path),
        stream=open(os.devnull, "w"),  # noqa: SIM115
        retry_s=0.05,
    )
    handler.write_line('{"event": "one"}')
    file = handler.outputs.sinks.get("file")
    assert file is not None
    shutil.rmtree(tmp_path / "logs")
    (tmp_path / "logs").write_text("not a directory")  # the reopen cannot work yet
    handler.reopen()
    assert file.state is SinkState.FAILING, file.describe()
    handler.write_line('{"event": "two"}')
    (tmp_path / "logs").unlink()
    time.sleep(0.06)
    handler.outputs.retry_due(time.monotonic())
    assert file.state is SinkState.OK, file.describe()
    events = [json.loads(x)["event"] for x in path.read_text().splitlines()]
    assert "two" in events and "log.sink_recovered" in events


def test_a_fifo_that_replaced_the_log_file_is_refused_without_blocking(tmp_path: Path) -> None:
    """At start a FIFO is refused (qqworker/logfile.py); one put at the path later, then reopened (SIGHUP),
    is refused the same way without blocking: the file output fails (retried), stdout goes on."""
    path = tmp_path / "log"
    stdout = tmp_path / "stdout"
    handler = configure_logging(
        "watchdog",
        log_file=str(path),
        stream=open(stdout, "w"),  # noqa: SIM115
        buffer_bytes=8192,
    )
    path.unlink()
    os.mkfifo(path)
    r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        t0 = time.monotonic()
        error = handler.reopen()
        assert error is not None and "is a FIFO (named pipe), not a regular file" in error
        for i in range(200):
            handler.write_line(json.dumps({"event": "dispatch", "i": i}))
        assert time.monotonic() - t0 < 2.0
        file = handler.outputs.sinks.get("file")
        assert file is not None and file.state is SinkState.FAILING
        assert os.read(r, 1 << 16) == b""  # nothing went into the FIFO
        assert handler.outputs.sinks.get("stdout").dropped == 0  # type: ignore[union-attr]
        assert len(stdout.read_text().splitlines()) >= 200
    finally:
        os.close(r)


def test_the_asyncio_pump_writes_a_stalled_pipe_when_it_drains(pipe: tuple[int, int]) -> None:
    r, w = pipe
    handler = handler_on(w)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        pump = pump_outputs(loop)
        assert pump is not None
        try:
            for i in range(600):
                handler.write_line(json.dumps({"event": "dispatch", "i": i}))
            ticks = 0
            t0 = loop.time()
            while loop.time() - t0 < 0.2:  # the loop goes on while the sink is stalled
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks > 5
            got = b""
            stdout = handler.outputs.sinks.get("stdout")
            assert stdout is not None
            for _ in range(200):
                got += read_all(r)
                await asyncio.sleep(0.005)  # add_writer flushes what is left, without a new line
                if not stdout.pending_lines:
                    break
            return got + read_all(r)
        finally:
            pump.close()

    got = asyncio.run(main())
    records = [json.loads(x) for x in got.splitlines()]
    stdout = handler.outputs.sinks.get("stdout")
    assert stdout is not None and stdout.pending_lines == 0 and stdout.state is SinkState.OK
    lost = sum(x["lines"] for x in records if x["event"] == "log.dropped")
    assert len([x for x in records if x["event"] == "dispatch"]) + lost == 600


def teardown_module() -> None:
    configure_logging("worker", stream=open(os.devnull, "w"))  # noqa: SIM115


def test_the_metrics_count_the_lines_a_stalled_sink_dropped(pipe: tuple[int, int]) -> None:
    """`/metrics`' qqwatchdog_log_lines_dropped_total{sink} is the sinks' own count, not a stand-in."""
    from watchdog.monitoring import sink_drops

    _, w = pipe  # never read: stdout stalls, then drops
    handler = handler_on(w)
    for i in range(2000):
        handler.write_line(json.dumps({"event": "dispatch", "i": i, "pad": "x" * 100}))
    dropped = handler.outputs.sinks.get("stdout").dropped  # type: ignore[union-attr]
    assert dropped > 0 and sink_drops(handler) == {"stdout": dropped}
