"""The health of a fixed-rate control loop: a plain record shared by the loop and the controller."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class LoopStats:
    """Loop health, filled by :class:`~wallwm_core.control.loop_runner.ControlLoop`.

    Percentiles cover the loop's last ``STATS_WINDOW`` ticks; the controller keeps the latest
    stats for its status.
    """

    period_ns: int
    ticks: int
    overruns: int  # ticks that ended after the next deadline
    missed_deadlines: int  # deadlines skipped because whole periods went by
    callback_errors: int
    clock_jumps_back: int  # times the clock went backwards and the deadline grid was re-anchored
    achieved_rate_hz: float  # over the window; 0 before two ticks
    period_error_p50_ns: float  # |actual tick-to-tick period - nominal period|
    period_error_p99_ns: float
    period_error_max_ns: float
    lateness_p50_ns: float  # tick start - its deadline
    lateness_p99_ns: float
    lateness_max_ns: float
