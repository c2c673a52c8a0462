"""The supervisor's states: a leaf, written by the loop and read by the status file, `watchdog status`
and the endpoints, so it imports nothing.

The values are part of the outside interface: they are the `state` of the status file, of `watchdog status
--json` and of `/healthz`. The policy's `ChildState` is another thing: the child as the policy judges it
(none, running, condemned), whereas this is what the whole supervisor is doing.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["ENDING_THE_CHILD", "NOT_SUPERVISING", "SupervisorState"]


class SupervisorState(str, Enum):
    """What the supervisor is doing; each member is its status-file string."""

    STARTING = "starting"  # before the first child runs
    RUNNING = "running"  # a child runs and is judged
    RESPAWNING = "respawning"  # a child exited; the next one starts after the respawn delay
    KILLING = "killing"  # ending a child the policy condemned
    STOPPING = "stopping"  # ending the child because the watchdog itself stops
    FATAL = "fatal"  # not respawning: the worker reported a permanent error (exit 78)
    GAVE_UP = "gave_up"  # the restart limit was reached (exit 69)
    STOPPED = "stopped"  # stopped on request

    # Rendered as the plain string everywhere (messages, JSON, metrics), on every Python version.
    def __str__(self) -> str:
        return str.__str__(self)

    __format__ = str.__format__


# The supervisor is over: no child will run again.
NOT_SUPERVISING = (SupervisorState.STOPPED, SupervisorState.FATAL, SupervisorState.GAVE_UP)
# A child still runs, but it is being ended.
ENDING_THE_CHILD = (SupervisorState.KILLING, SupervisorState.STOPPING)
