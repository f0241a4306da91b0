"""A fixed-rate loop on absolute deadlines, in its own thread.

Deadlines lie on a grid ``t0 + k * period``: after every tick the next deadline is the previous
one plus the period (not "now plus the period"), so sleep jitter and callback time never make the
loop drift. A tick that ends after the next deadline is an *overrun*: the next tick starts at
once (late); if whole periods went by, their deadlines are skipped and counted as missed rather
than run in a burst. If the clock jumps backwards (a restarted simulation clock), the grid is
re-anchored at the new time.

Clock and sleep are injectable: tests drive the loop with a fake clock, and a ROS node can use
its (sim) clock. The default is ``time.monotonic_ns`` with ``time.sleep``.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from wallwm_core.control.loop_stats import LoopStats

logger = logging.getLogger(__name__)

STATS_WINDOW = 5000  # ticks kept for rate and period-error statistics (10 s at 500 Hz)


@dataclasses.dataclass(frozen=True)
class LoopTick:
    """What the callback gets: tick number, the deadline it was due at, when it started (ns)."""

    index: int
    deadline_ns: int
    start_ns: int


def _default_sleep_until(clock: Callable[[], int]) -> Callable[[int], None]:
    def sleep_until(deadline_ns: int) -> None:
        remaining = deadline_ns - clock()
        if remaining > 0:
            time.sleep(remaining / 1e9)

    return sleep_until


class ControlLoop:
    """Calls ``callback(LoopTick)`` every ``period_ns`` in a dedicated thread.

    ``sleep_until(deadline_ns)`` must return no earlier than the deadline on ``clock`` (returning
    early only makes the tick early) and within a bounded time, so :meth:`stop` can join.
    ``max_ticks`` ends the loop by itself after that many ticks (benchmarks and tests).
    Exceptions from the callback are logged and counted; they do not end the loop.
    """

    def __init__(
        self,
        period_ns: int,
        callback: Callable[[LoopTick], None],
        clock: Callable[[], int] = time.monotonic_ns,
        sleep_until: Callable[[int], None] | None = None,
        max_ticks: int | None = None,
        name: str = "control_loop",
    ) -> None:
        if period_ns <= 0:
            raise ValueError(f"period must be positive, got {period_ns=}")
        self.period_ns = int(period_ns)
        self._callback = callback
        self._clock = clock
        self._sleep_until = sleep_until or _default_sleep_until(clock)
        self._max_ticks = max_ticks
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._ticks = self._overruns = self._missed = self._errors = self._clock_jumps = 0
        self._starts: collections.deque[int] = collections.deque(maxlen=STATS_WINDOW)
        self._lateness: collections.deque[int] = collections.deque(maxlen=STATS_WINDOW)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the control loop was already started")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Ask the loop to end and join its thread; True once it has ended."""
        self._stop.set()
        return self.join(timeout_s)

    def join(self, timeout_s: float | None = None) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> ControlLoop:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        deadline = self._clock()
        index = 0
        while not self._stop.is_set():
            if deadline - self._clock() > self.period_ns:
                # The clock went backwards (e.g. a simulation restarted): re-anchor the grid
                # instead of sleeping until the old deadline.
                deadline = self._clock()
                self._clock_jumps += 1
            self._sleep_until(deadline)
            if self._stop.is_set():
                break
            start = self._clock()
            try:
                self._callback(LoopTick(index, deadline, start))
            except Exception:
                self._errors += 1
                if self._errors == 1 or self._errors % 1000 == 0:
                    logger.exception(
                        "%s: tick %d raised (%d errors so far)", self._name, index, self._errors
                    )
            end = self._clock()
            with self._lock:
                self._ticks += 1
                self._starts.append(start)
                self._lateness.append(start - deadline)
                deadline += self.period_ns
                if end > deadline:
                    self._overruns += 1
                    behind = (end - deadline) // self.period_ns
                    deadline += behind * self.period_ns
                    self._missed += behind
            index += 1
            if self._max_ticks is not None and index >= self._max_ticks:
                break

    def stats(self) -> LoopStats:
        """A consistent snapshot (safe to call from any thread)."""
        with self._lock:
            starts = np.array(self._starts, dtype=np.int64)
            lateness = np.array(self._lateness, dtype=np.float64)
            ticks, overruns, missed = self._ticks, self._overruns, self._missed
            errors, jumps = self._errors, self._clock_jumps
        rate = 0.0
        period_error = np.zeros(1)
        if len(starts) >= 2:
            span = float(starts[-1] - starts[0])
            rate = (len(starts) - 1) * 1e9 / span if span > 0 else float("inf")
            period_error = np.abs(np.diff(starts).astype(np.float64) - self.period_ns)
        if len(lateness) == 0:
            lateness = np.zeros(1)
        return LoopStats(
            period_ns=self.period_ns,
            ticks=ticks,
            overruns=overruns,
            missed_deadlines=missed,
            callback_errors=errors,
            clock_jumps_back=jumps,
            achieved_rate_hz=rate,
            period_error_p50_ns=float(np.percentile(period_error, 50)),
            period_error_p99_ns=float(np.percentile(period_error, 99)),
            period_error_max_ns=float(period_error.max()),
            lateness_p50_ns=float(np.percentile(lateness, 50)),
            lateness_p99_ns=float(np.percentile(lateness, 99)),
            lateness_max_ns=float(lateness.max()),
        )
