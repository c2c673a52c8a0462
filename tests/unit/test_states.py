"""The supervisor's states: their strings are the status file's, `watchdog status`'s and /healthz's."""

from __future__ import annotations

import json

from watchdog.states import ENDING_THE_CHILD, NOT_SUPERVISING, SupervisorState
from watchdog.status import HEALTHY, UNHEALTHY, judge


def test_the_states_are_exactly_the_strings_of_the_status_file() -> None:
    assert [s.value for s in SupervisorState] == [
        "starting", "running", "respawning", "killing", "stopping", "fatal", "gave_up", "stopped",
    ]  # fmt: skip


def test_a_state_reads_and_writes_as_its_plain_string() -> None:
    state = SupervisorState.GAVE_UP
    # %-formatting is what logging's messages use.
    assert (str(state), f"{state}", "%s" % state, json.dumps({"state": state})) == (  # noqa: UP031
        "gave_up", "gave_up", "gave_up", '{"state": "gave_up"}',
    )  # fmt: skip
    assert SupervisorState(json.loads('"killing"')) is SupervisorState.KILLING
    assert state == "gave_up"  # what `watchdog status` reads back is a plain string


def test_over_and_ending_are_disjoint_and_leave_the_living_states_out() -> None:
    assert set(NOT_SUPERVISING) == {SupervisorState.STOPPED, SupervisorState.FATAL, SupervisorState.GAVE_UP}
    assert set(ENDING_THE_CHILD) == {SupervisorState.KILLING, SupervisorState.STOPPING}
    living = set(SupervisorState) - set(NOT_SUPERVISING) - set(ENDING_THE_CHILD)
    assert living == {SupervisorState.STARTING, SupervisorState.RUNNING, SupervisorState.RESPAWNING}


def test_only_running_can_be_healthy_in_the_status_verdict() -> None:
    for state in SupervisorState:
        status = {"state": state.value, "updated_at_epoch": 100.0, "phase": "connected"}
        code, verdict = judge(status, 100.0, alive=True)
        if state is SupervisorState.RUNNING:
            assert code == HEALTHY
        else:
            assert (code, verdict) == (UNHEALTHY, f"running, state {state.value}")
