"""The absolute-deadline control loop, driven by a fake clock (no timing assertions)."""

from __future__ import annotations

import threading
import time

import pytest

from wallwm_core.control.loop_runner import ControlLoop, LoopTick

PERIOD = 2_000_000  # 500 Hz
START = 1_000_000_000


class FakeClock:
    """Time only moves when the loop sleeps until a deadline or a callback 'works'."""

    def __init__(self, start_ns: int = START) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns

    def sleep_until(self, deadline_ns: int) -> None:
        self.now_ns = max(self.now_ns, deadline_ns)


def _run(
    work_ns: dict[int, int], ticks: int, default_work_ns: int = PERIOD // 3
) -> tuple[list[LoopTick], ControlLoop]:
    clock = FakeClock()
    seen: list[LoopTick] = []

    def callback(tick: LoopTick) -> None:
        seen.append(tick)
        clock.now_ns += work_ns.get(tick.index, default_work_ns)

    loop = ControlLoop(
        PERIOD, callback, clock=clock, sleep_until=clock.sleep_until, max_ticks=ticks
    )
    loop.start()
    assert loop.join(timeout_s=10.0)
    return seen, loop


def test_deadlines_are_absolute_and_do_not_drift() -> None:
    seen, loop = _run({}, ticks=200)
    assert [t.deadline_ns for t in seen] == [START + k * PERIOD for k in range(200)]
    assert all(t.start_ns == t.deadline_ns for t in seen)
    stats = loop.stats()
    assert stats.ticks == 200 and stats.overruns == 0 and stats.missed_deadlines == 0
    assert stats.achieved_rate_hz == pytest.approx(500.0)
    assert stats.period_error_max_ns == 0.0 and stats.lateness_max_ns == 0.0


def test_overruns_are_counted_and_whole_missed_periods_skipped() -> None:
    # Tick 3 runs 1.5 periods: tick 4 starts half a period late, tick 5 is on time again.
    # Tick 6 runs 3.5 periods: deadlines 7 and 8 are skipped, tick 7 runs at once (late).
    seen, loop = _run({3: 3 * PERIOD // 2, 6: 7 * PERIOD // 2}, ticks=10)
    deadlines = [(t.deadline_ns - START) // PERIOD for t in seen]
    assert deadlines == [0, 1, 2, 3, 4, 5, 6, 9, 10, 11]
    assert all((t.deadline_ns - START) % PERIOD == 0 for t in seen)  # still on the grid
    lateness = [t.start_ns - t.deadline_ns for t in seen]
    assert lateness[4] == PERIOD // 2 and lateness[5] == 0
    assert lateness[7] == PERIOD // 2 and lateness[8] == 0
    stats = loop.stats()
    assert stats.overruns == 2
    assert stats.missed_deadlines == 2
    assert stats.lateness_max_ns == PERIOD // 2


def test_clock_jumping_back_reanchors_the_grid() -> None:
    clock = FakeClock()
    seen: list[LoopTick] = []

    def callback(tick: LoopTick) -> None:
        seen.append(tick)
        clock.now_ns += PERIOD // 4
        if tick.index == 4:
            clock.now_ns = 7  # e.g. a simulation restarted its clock

    loop = ControlLoop(PERIOD, callback, clock=clock, sleep_until=clock.sleep_until, max_ticks=8)
    loop.start()
    assert loop.join(timeout_s=10.0)
    assert [t.deadline_ns for t in seen[5:]] == [7 + k * PERIOD for k in range(3)]
    assert loop.stats().clock_jumps_back == 1


def test_callback_errors_are_counted_and_the_loop_goes_on() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def callback(tick: LoopTick) -> None:
        calls.append(tick.index)
        if tick.index % 3 == 0:
            raise RuntimeError("boom")

    loop = ControlLoop(PERIOD, callback, clock=clock, sleep_until=clock.sleep_until, max_ticks=9)
    loop.start()
    assert loop.join(timeout_s=10.0)
    assert calls == list(range(9))
    assert loop.stats().callback_errors == 3


def test_stop_joins_cleanly() -> None:
    clock = FakeClock()
    started = threading.Event()

    def callback(tick: LoopTick) -> None:
        if tick.index >= 5:
            started.set()
        time.sleep(0)  # let the test thread run

    loop = ControlLoop(PERIOD, callback, clock=clock, sleep_until=clock.sleep_until)
    loop.start()
    assert started.wait(timeout=10.0)
    assert loop.running
    assert loop.stop(timeout_s=10.0)
    assert not loop.running
    ticks = loop.stats().ticks
    time.sleep(0.01)
    assert loop.stats().ticks == ticks


def test_real_clock_smoke() -> None:
    """Default clock and sleep: the loop runs and stops (no timing is asserted)."""
    ticks: list[int] = []
    with ControlLoop(1_000_000, lambda tick: ticks.append(tick.index)) as loop:
        deadline = time.monotonic() + 10.0
        while len(ticks) < 5 and time.monotonic() < deadline:
            time.sleep(0.001)
    assert not loop.running
    assert len(ticks) >= 5
    assert ticks == list(range(len(ticks)))


def test_rejects_bad_period_and_double_start() -> None:
    with pytest.raises(ValueError, match="period"):
        ControlLoop(0, lambda tick: None)
    clock = FakeClock()
    loop = ControlLoop(
        PERIOD, lambda tick: None, clock=clock, sleep_until=clock.sleep_until, max_ticks=1
    )
    loop.start()
    with pytest.raises(RuntimeError, match="already started"):
        loop.start()
    assert loop.join(timeout_s=10.0)
