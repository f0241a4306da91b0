"""Outcome codes of executed events and states of a policy node.

The integer values are the constants of wallwm_msgs (EventOutcome, ExecuteEvent/ExecuteTask
results, PolicyStatus); a test keeps them in step.
"""

from __future__ import annotations

import enum


class Outcome(enum.IntEnum):
    """How an event (or a task) ended.

    0 is UNKNOWN, never SUCCEEDED: a result nobody filled in (an empty message, rclpy's
    empty result after its result time-out) must read as a failure.
    """

    UNKNOWN = 0
    SUCCEEDED = 6
    TIMED_OUT = 1
    CANCELED = 2
    ABORTED = 3
    FAULT = 4
    ESTOP = 5  # the controller's e-stop is engaged


class PolicyState(enum.IntEnum):
    """What a policy node is doing."""

    IDLE = 0
    RUNNING = 1
    HOLDING = 2
    FAULT = 3
    ESTOP = 4
