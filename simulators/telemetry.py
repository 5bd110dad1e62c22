"""Sampling a recorded run at 1 Hz into contract samples (docs/DESIGN.md §4), exactly as the recursion says.

At a sample time t a station's `count` is the units that have left it, its `queue` the units that have
arrived but not started, and its state that of its busiest machine: `setup`, `down` or `working` while
a unit is between start and completion, `blocked` while it holds a finished unit, `starved` while it
waits for the next one. Intervals are closed at the start and open at the end, the way a PLC would
report the state in force at the instant it is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from shopfloor.contract import Sample, StationKey
from shopfloor.errors import ConfigError
from simulators.draws import US
from simulators.engine import Run
from simulators.scenario import Scenario

# Best first: a station with several machines shows the state of its best one.
STATE_NAMES = ("working", "setup", "down", "blocked", "starved")
WORKING, SETUP, DOWN, BLOCKED, STARVED = range(5)
DEFAULT_START = "2026-09-21T06:00:00Z"
# Stop reasons the simulator gives (issue 14): each failure draws one of FAILURE_REASONS, every setup
# is a changeover. Drawn per down interval from a seed of the station's index, so a run's reasons are
# as reproducible as the run.
FAILURE_REASONS = ("jam", "breakdown", "material_shortage")
SETUP_REASON = "changeover"
REASON_NAMES = (*FAILURE_REASONS, SETUP_REASON)
NO_REASON = -1


def parse_start(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 time (`Z` or an offset), or `now`."""
    if text == "now":
        return int(datetime.now(UTC).timestamp()) * 1000
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"start {text!r} is not an ISO 8601 time like {DEFAULT_START} (or 'now')") from None
    if moment.tzinfo is None:
        raise ConfigError(f"start {text!r} needs a time zone, e.g. {DEFAULT_START}")
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class StationTrace:
    """One station's life in a recorded run: per unit start, completion, setup end and departure."""

    start: np.ndarray
    setup_end: np.ndarray
    done: np.ndarray
    depart: np.ndarray
    down_from: np.ndarray  # down intervals, in unit order
    down_to: np.ndarray
    down_unit: np.ndarray
    machines: int


def traces(run: Run, row: int = 0) -> list[StationTrace]:
    """Per station of `row`: the unit timeline, with each unit's active time at the rates of its start."""
    if run.start is None or run.depart is None or run.period is None:
        raise ValueError("sampling needs a run simulated with record=True")
    rates = run.rates
    rep = int(rates.rep_of_row[row])
    process, setup, repair, failures = run.draws()
    result = []
    mine = failures.rep == rep
    for j in range(run.model.size):
        period = run.period[:, row, j].astype(np.int64)
        work_rate = rates.process[period, row, j]
        repair_rate = rates.repair[period, row, j]
        setting_up = np.rint(rates.setup[row, j] * setup[:, rep, j]).astype(np.int64)
        active = (setting_up + np.rint(work_rate * process[:, rep, j]).astype(np.int64)
                  + np.rint(repair_rate * repair[:, rep, j]).astype(np.int64))
        start = run.start[:, row, j]
        chosen = mine & (failures.station == j)
        unit = failures.unit[chosen]
        before = failures.repaired_before_us[chosen]
        after = before + failures.repair_us[chosen]
        down_from = (start[unit] + setting_up[unit] + np.rint(work_rate[unit] * failures.offset_us[chosen])
                     + np.rint(repair_rate[unit] * before)).astype(np.int64)
        down_to = down_from + (np.rint(repair_rate[unit] * after) - np.rint(repair_rate[unit] * before)
                               ).astype(np.int64)
        result.append(StationTrace(start, start + setting_up, start + active, run.depart[:, row, j],
                                   down_from, down_to, unit, int(rates.machines[row, j])))
    return result


def _states(trace: StationTrace, times: np.ndarray) -> np.ndarray:
    best = np.full(len(times), STARVED)
    units = np.arange(len(trace.start))
    for k in range(trace.machines):
        mine = units % trace.machines == k
        start, done, depart = trace.start[mine], trace.done[mine], trace.depart[mine]
        current = np.searchsorted(start, times, side="right") - 1
        held = current >= 0
        at = np.maximum(current, 0)
        code = np.full(len(times), STARVED)
        code[held & (times < depart[at])] = BLOCKED
        busy = held & (times < done[at])
        code[busy] = WORKING
        code[busy & (times < trace.setup_end[mine][at])] = SETUP
        failing = trace.down_unit % trace.machines == k
        down_from, down_to = trace.down_from[failing], trace.down_to[failing]
        if len(down_from):
            last = np.searchsorted(down_from, times, side="right") - 1
            code[busy & (last >= 0) & (times < down_to[np.maximum(last, 0)])] = DOWN
        best = np.minimum(best, code)
    return best


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Samples of every station at 1 Hz: arrays (station, sample)."""

    ids: tuple[str, ...]
    ts_ms: np.ndarray
    count: np.ndarray
    queue: np.ndarray
    state: np.ndarray  # index into STATE_NAMES
    reason: np.ndarray | None = None  # index into REASON_NAMES while down or in setup, else NO_REASON

    def records(self, plant: str, line: str) -> Iterator[tuple[StationKey, Sample]]:
        """The offline file form, time-major (every station's sample at t, then t + 1 s)."""
        keys = [StationKey(plant, line, s) for s in self.ids]
        ts = self.ts_ms.tolist()
        count, queue, state = self.count.T.tolist(), self.queue.T.tolist(), self.state.T.tolist()
        reason = self.reason.T.tolist() if self.reason is not None else None
        for seq, t in enumerate(ts):
            row_count, row_queue, row_state = count[seq], queue[seq], state[seq]
            for j, key in enumerate(keys):
                sample: Sample = {"ts": t, "seq": seq, "count": row_count[j], "queue": row_queue[j],
                                  "state": STATE_NAMES[row_state[j]]}  # type: ignore[typeddict-item]
                if reason is not None and reason[seq][j] != NO_REASON:
                    sample["reason"] = REASON_NAMES[reason[seq][j]]
                yield key, sample


def sample(run: Run, from_us: int, samples: int, start_ms: int, row: int = 0, every_s: int = 1) -> Telemetry:
    """`samples` readings of every station, every `every_s` seconds from engine time `from_us`."""
    model = run.model
    times = from_us + np.arange(samples, dtype=np.int64) * every_s * US
    if samples and times[-1] > run.end_us:
        raise ValueError("the run does not reach the last sample time: simulate further")
    lines = traces(run, row)
    m = model.size
    count = np.empty((m, samples), np.int64)
    queue = np.empty((m, samples), np.int64)
    state = np.empty((m, samples), np.int64)
    reason = np.empty((m, samples), np.int64)
    for j, trace in enumerate(lines):
        count[j] = np.searchsorted(trace.depart, times, side="right")
        started = np.searchsorted(trace.start, times, side="right")
        if j == 0:
            queue[j] = model.buffer[0]  # the saturated source keeps the first buffer full
        else:
            queue[j] = np.searchsorted(lines[j - 1].depart, times, side="right") - started
        state[j] = _states(trace, times)
        reason[j] = _reasons(trace, times, state[j], j)
    ts_ms = start_ms + np.arange(samples, dtype=np.int64) * every_s * 1000
    return Telemetry(model.ids, ts_ms, count, queue, state, reason)


def _reasons(trace: StationTrace, times: np.ndarray, state: np.ndarray, station: int) -> np.ndarray:
    """Per sample, the reason of the failure the station is down for, or the changeover of its setup."""
    reason = np.full(len(times), NO_REASON, np.int64)
    reason[state == SETUP] = REASON_NAMES.index(SETUP_REASON)
    down = np.flatnonzero(state == DOWN)
    if len(down) and len(trace.down_from):
        order = np.argsort(trace.down_from, kind="stable")
        drawn = np.random.default_rng([14, station]).integers(0, len(FAILURE_REASONS), len(order))
        which = np.maximum(np.searchsorted(trace.down_from[order], times[down], side="right") - 1, 0)
        reason[down] = drawn[which]
    return reason


def simulate_telemetry(scenario: Scenario, hours: float | None = None, seed: int = 0,
                       start_ms: int | None = None) -> Telemetry:
    """Simulate `scenario` for `hours` after its warm-up and sample every station at 1 Hz."""
    from simulators.engine import LineModel, simulate

    hours = scenario.hours if hours is None else hours
    model = LineModel.of(scenario, hours)
    samples = int(round(hours * 3600))
    end_us = model.warmup_us + samples * US
    run = simulate(model, end_us, seed=seed, record=True)
    return sample(run, model.warmup_us, samples, parse_start(DEFAULT_START) if start_ms is None else start_ms)
