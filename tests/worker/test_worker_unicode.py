"""A lone surrogate in a message, end to end over real sockets: the simulator sends it (escaped, as a
standards-following encoder does), the real worker delivers it instead of rejecting the frame, and the
echo handler's reply carries it back to the platform."""

from __future__ import annotations

from tests.support import PYTHON, LineProcess, SimulatorProcess, wait_until

CONTENTS = ["lone \ud83d high", "lone \udc00 low", "中文 \U0001f600 \u2028 end"]

SIMULATOR_FLAGS = ("--heartbeat-interval-ms", "500")


def test_a_surrogate_event_is_delivered_and_echoed(sim: SimulatorProcess) -> None:
    worker = LineProcess(
        [PYTHON, "-m", "qqworker", "--retry-initial", "0.05"], env=sim.env(QQ_HANDLER="echo")
    )
    try:
        worker.wait_for("gateway.connected", 20)
        for content in CONTENTS:
            answer = sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "d": {"content": content}})
            assert answer["seq"], answer  # the simulator took it (it used to answer 500)

        def echoed() -> list[str]:
            return [
                r["body"].get("content") for r in sim.state()["replies"] if isinstance(r.get("body"), dict)
            ]

        wait_until(lambda: set(CONTENTS) <= set(echoed()), 15, "the echo replies")
        assert len(worker.records("dispatch")) == len(CONTENTS)
        assert not worker.records("gateway.frame_rejected")
        assert worker.stop(10) == 0
    finally:
        if worker.proc.poll() is None:
            worker.proc.kill()
    assert all(line.record is not None for line in worker.lines), worker.output()[-2000:]
