"""From samples to state spans: reported states, or states inferred from queue counts and buffers.

Why: the active period method needs, per station, when it was active (working, setup, down) and when
not (starved, blocked). Agents that cannot read a PLC state still send counts and queues, so the
state is inferred where it is missing, minding the known pitfalls:
- the unit in process is not in the queue: an empty input queue does not mean starved. The units
  inside a station are counted by conservation, `WIP = arrivals - queue - completed`, where arrivals
  are the upstream station's good output; only a station with no unit inside and an empty queue is
  starved;
- a down station with an empty input buffer is active (it holds its unit, so WIP = 1);
- blocked: the next station's input buffer is full and this station made no progress for longer than
  one ideal cycle since its last departure (or holds nothing to work on);
- down: it holds a unit and made no progress for longer than its cycle without being blocked (a
  slow cycle looks the same for a while; both are active, so the detector does not care);
- sampling gaps: a sample's state holds until the next sample only if that comes within `max_gap_ms`;
  beyond that the station is unknown (counted as not active) after one nominal sample interval.
The first station of a line has no upstream to count: a saturated source, never inferred starved.
Inference runs on a regular grid (the median sample interval) since stations sample at their own
moments; reported states keep their exact sample times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.apm import Periods
from analysis.telemetry import (
    ACTIVE_CODES,
    BLOCKED,
    DOWN,
    STARVED,
    UNKNOWN,
    WORKING,
    LineTelemetry,
    StationSeries,
)
from shopfloor.counters import cumulative

DEFAULT_MAX_GAP_MS = 5_000
STALL_FACTOR = 1.5  # no completion for this many ideal cycles counts as "not progressing"


@dataclass(frozen=True, slots=True)
class StateSpans:
    """Per station: sample times, state codes, and how long each sample's state holds (ms)."""

    ts: list[np.ndarray]
    code: list[np.ndarray]
    hold: list[np.ndarray]
    begin_ms: int
    end_ms: int
    inferred: bool

    def periods(self, codes: tuple[int, ...]) -> Periods:
        """Uninterrupted runs, per station, of samples whose code is in `codes`."""
        stations, starts, stops = [], [], []
        for index, (ts, code, hold) in enumerate(zip(self.ts, self.code, self.hold, strict=True)):
            if len(ts) == 0:
                continue
            flag = np.isin(code, codes)
            end = ts + hold
            contiguous = np.append(end[:-1] == ts[1:], False)
            # A run starts where the flag rises or the previous sample's span did not reach this one.
            previous_flag = np.concatenate([[False], flag[:-1] & contiguous[:-1]])
            run_start = flag & ~previous_flag
            run_end = flag & ~(np.append(flag[1:], False) & contiguous)
            first, last = np.flatnonzero(run_start), np.flatnonzero(run_end)
            stations.append(np.full(len(first), index, dtype=np.int64))
            starts.append(ts[first])
            stops.append(end[last])
        if not starts:
            return Periods.empty()
        return Periods.of(np.concatenate(stations), np.concatenate(starts), np.concatenate(stops))

    def active(self) -> Periods:
        return self.periods(ACTIVE_CODES)


def _step_ms(ts: np.ndarray) -> int:
    if len(ts) < 2:
        return 1000
    return max(1, int(np.median(np.diff(ts))))


def _holds(ts: np.ndarray, end_ms: int, max_gap_ms: int) -> np.ndarray:
    """How long each sample's state holds: to the next sample, unless the gap is too long."""
    if len(ts) == 0:
        return np.zeros(0, dtype=np.int64)
    step = _step_ms(ts)
    following = np.append(ts[1:], max(end_ms, int(ts[-1]) + step))
    gap = following - ts
    return np.where(gap <= max(max_gap_ms, step), gap, step)


def reported(telemetry: LineTelemetry, max_gap_ms: int = DEFAULT_MAX_GAP_MS) -> StateSpans:
    """State spans from the states the stations sent (missing ones count as unknown)."""
    end = telemetry.end_ms
    holds = [_holds(s.ts, end, max_gap_ms) for s in telemetry.series]
    observed_end = max(int(s.ts[-1] + h[-1]) for s, h in zip(telemetry.series, holds, strict=True) if len(s))
    return StateSpans([s.ts for s in telemetry.series], [s.state for s in telemetry.series], holds,
                      telemetry.begin_ms, observed_end, inferred=False)


def _on_grid(series: StationSeries, grid: np.ndarray, max_gap_ms: int):
    """Sample-and-hold values of a station on the grid, and whether the grid point is observed."""
    index = np.searchsorted(series.ts, grid, side="right") - 1
    seen = index >= 0
    index = np.maximum(index, 0)
    seen &= (grid - series.ts[index]) <= max_gap_ms
    return index, seen


def inferred(telemetry: LineTelemetry, max_gap_ms: int = DEFAULT_MAX_GAP_MS) -> StateSpans:
    """State spans inferred from counts and queues (docs/DESIGN.md §4), ignoring any reported states."""
    present = [s for s in telemetry.series if len(s)]
    step = int(np.median([_step_ms(s.ts) for s in present]))
    begin, end = telemetry.begin_ms, telemetry.end_ms
    grid = np.arange(begin, end + 1, step, dtype=np.int64)
    stations = telemetry.line.stations
    n = len(stations)
    count = np.zeros((n, len(grid)), dtype=np.int64)
    good = np.zeros((n, len(grid)), dtype=np.int64)
    queue = np.zeros((n, len(grid)), dtype=np.int64)
    seen = np.zeros((n, len(grid)), dtype=bool)
    for i, series in enumerate(telemetry.series):
        if not len(series):
            continue
        index, seen[i] = _on_grid(series, grid, max_gap_ms)
        count[i] = _unwrapped(series.count)[index]
        good[i] = count[i] - _unwrapped(series.scrap)[index]
        queue[i] = series.queue[index]
    codes = np.full((n, len(grid)), WORKING, dtype=np.int8)
    for i in range(n):
        cycle_ms = stations[i].ideal_cycle_s * 1000
        since_progress = _time_since_increase(count[i], grid)
        stalled = since_progress > STALL_FACTOR * cycle_ms
        if i > 0:
            raw_wip = (good[i - 1] - good[i - 1][0]) - (queue[i] - queue[i][0]) - (count[i] - count[i][0])
            both_seen = seen[i] & seen[i - 1]
            low = raw_wip[both_seen].min() if both_seen.any() else 0
            high = raw_wip[both_seen].max() if both_seen.any() else 0
            # WIP is 0 at its lowest, unless it never changes: a station never empty always holds one.
            holding = (raw_wip - min(low, high - 1)) >= 1
            starved = ~holding & (queue[i] == 0) & both_seen
        else:
            holding = np.ones(len(grid), dtype=bool)  # a saturated source: always a unit to work on
            starved = np.zeros(len(grid), dtype=bool)
        if i + 1 < n:
            # Blocked after service: downstream full, and the unit started at the last departure should
            # be done by now (one ideal cycle), or there is no unit inside at all.
            full = queue[i + 1] >= stations[i + 1].buffer
            blocked = full & ((since_progress > cycle_ms) | ~holding) & seen[i + 1]
        else:
            blocked = np.zeros(len(grid), dtype=bool)
        codes[i][holding & stalled & ~blocked] = DOWN  # holds a unit and makes no progress
        codes[i][starved] = STARVED
        codes[i][blocked & ~starved] = BLOCKED
        codes[i][~seen[i]] = UNKNOWN
    hold = np.full(len(grid), step, dtype=np.int64)
    return StateSpans([grid] * n, list(codes), [hold] * n, begin, int(grid[-1]) + step, inferred=True)


def _unwrapped(counter: np.ndarray) -> np.ndarray:
    """A cumulative counter with its wraps and resets undone, by shopfloor.counters' rule (its owner):
    the detector and the indicators count the same units."""
    return cumulative(counter)


def _time_since_increase(counter: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Milliseconds since the counter last went up, at each grid point (from the grid start if never)."""
    rose = np.concatenate([[True], np.diff(counter) > 0])
    last = np.maximum.accumulate(np.where(rose, np.arange(len(grid)), 0))
    return grid - grid[last]


def spans(telemetry: LineTelemetry, *, use_states: bool | None = None,
          max_gap_ms: int = DEFAULT_MAX_GAP_MS) -> StateSpans:
    """Reported states where every sample has one (unless `use_states` is False), else inferred."""
    if use_states is None:
        use_states = telemetry.has_states
    return reported(telemetry, max_gap_ms) if use_states else inferred(telemetry, max_gap_ms)
