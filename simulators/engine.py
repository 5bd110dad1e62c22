"""The exact departure-time recursion of a serial line with finite buffers and blocking after service.

For unit n at station j with c_j round-robin machines and an input buffer of b_j (units are numbered
in the order they enter the line, and leave every station in that order):

    start   S[n, j] = max(D[n, j-1], D[n-c_j, j])              (arrived, and its machine is free)
    done    C[n, j] = S[n, j] + active time (setup + work + repairs, at the rates in force at S)
    depart  D[n, j] = max(C[n, j], D[n-b_{j+1}-c_{j+1}, j+1], D[n-1, j])
                                                 (a slot is free downstream; units leave in order)

Station 1 has a saturated source (D[n, 0] = 0), the last a free sink. Along the stations of one
unit this is a max-plus linear recursion, D[n, j] = max(D[n, j-1] + e_j, A_j), solved for all stations
at once by a prefix maximum: D = P + cummax(A - P) with P the running sum of the active times e.
The loop therefore runs over units only, with numpy across stations and across rows (replications x
versions of the line), which is what makes a day of a 20-station line cost milliseconds.

Rates that change at fixed hours depend on the start time S, which the prefix maximum does not know
in advance: it guesses the period from D[n-c_j, j] (a lower bound of S), checks, and redoes the few
rows where a change falls between the guess and the start, station by station, exactly.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np

from simulators.draws import US, Chunk, DrawStream, Failures, StationLaws
from simulators.scenario import Period, Scenario

CHUNK_ELEMENTS = 1_000_000


@dataclass(frozen=True, slots=True)
class Variant:
    """One version of the line, run on the same draws as the others (common random numbers).

    `scale` multiplies each station's active time (setup, work, repair): 1 / 1.05 is a 5 % speed-up.
    `machines` replaces each station's machine count. None keeps the scenario's.
    """

    scale: tuple[float, ...] | None = None
    machines: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class LineModel:
    """A scenario turned into arrays: laws per station, buffers, machines, and the rate schedule."""

    ids: tuple[str, ...]
    laws: StationLaws
    buffer: np.ndarray
    machines: np.ndarray
    breaks_us: np.ndarray  # engine times at which a new period starts (sorted)
    slow: np.ndarray  # (period, station) process-time multiplier
    mttr: np.ndarray  # (period, station) repair-time multiplier
    warmup_us: int

    @property
    def size(self) -> int:
        return len(self.ids)

    @staticmethod
    def of(scenario: Scenario, hours: float | None = None, periods: list[Period] | None = None,
           warmup_min: float | None = None) -> LineModel:
        """The model of `scenario`; pass one `periods` entry to simulate that stationary period alone."""
        stations = scenario.stations
        periods = periods if periods is not None else scenario.periods(hours)
        warmup_us = int(round((scenario.warmup_min if warmup_min is None else warmup_min) * 60 * US))
        laws = StationLaws(
            cycle_us=np.array([s.cycle_s * US for s in stations]),
            dist=tuple(s.distribution for s in stations),
            cv=np.array([s.cv for s in stations]),
            mtbf_us=np.array([s.mtbf_min * 60 * US if s.mtbf_min else np.inf for s in stations]),
            mttr_us=np.array([s.mttr_min * 60 * US for s in stations]),
            mttr_cv=np.array([s.mttr_cv for s in stations]),
            setup_every=np.array([s.setup_every for s in stations], np.int64),
            setup_us=np.array([round(s.setup_min * 60 * US) for s in stations], np.int64),
        )
        breaks = np.array([warmup_us + round(p.start_h * 3600 * US) for p in periods[1:]], np.int64)
        return LineModel(
            ids=tuple(s.id for s in stations),
            laws=laws,
            buffer=np.array([s.buffer for s in stations], np.int64),
            machines=np.array([s.machines for s in stations], np.int64),
            breaks_us=breaks,
            slow=np.array([p.slow for p in periods]),
            mttr=np.array([p.mttr for p in periods]),
            warmup_us=warmup_us,
        )

    def period_at(self, t_us: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.breaks_us, t_us, side="right")


@dataclass(frozen=True, slots=True)
class Rates:
    """Per row (replication x version): the time multipliers of every period and the machines."""

    process: np.ndarray  # (period, row, station)
    repair: np.ndarray  # (period, row, station)
    setup: np.ndarray  # (row, station)
    machines: np.ndarray  # (row, station)
    rep_of_row: np.ndarray

    @staticmethod
    def of(model: LineModel, variants: list[Variant], reps: int) -> Rates:
        m = model.size
        scale = np.array([v.scale if v.scale is not None else (1.0,) * m for v in variants], float)
        machines = np.array([v.machines if v.machines is not None else tuple(model.machines)
                             for v in variants], np.int64)
        if scale.shape != (len(variants), m) or machines.shape != (len(variants), m) or (machines < 1).any():
            raise ValueError("every variant needs one scale and one machine count (>= 1) per station")
        scale = np.repeat(scale, reps, axis=0)
        return Rates(
            process=model.slow[:, None, :] * scale[None],
            repair=model.mttr[:, None, :] * scale[None],
            setup=scale,
            machines=np.repeat(machines, reps, axis=0),
            rep_of_row=np.tile(np.arange(reps), len(variants)),
        )

    def active_times(self, chunk: Chunk) -> np.ndarray:
        """(period, unit, row, station): setup + work + repairs of every unit at each period's rates."""
        rows = self.rep_of_row
        process = chunk.process_us[:, rows, :].astype(np.float64)
        active = np.empty((len(self.process), *process.shape), np.int64)
        for p, rate in enumerate(self.process):
            active[p] = np.rint(process * rate)
        if chunk.repair_us.any():
            repair = chunk.repair_us[:, rows, :].astype(np.float64)
            for p, rate in enumerate(self.repair):
                active[p] += np.rint(repair * rate).astype(np.int64)
        if chunk.setup_us.any():
            active += np.rint(self.setup[None] * chunk.setup_us[:, rows, :]).astype(np.int64)[None]
        return active


@dataclass
class Run:
    """What a simulation produced. Unit arrays are (unit, row); `start`/`depart`/`period` (unit, row,
    station) exist only for a recorded run, with the draws that made them."""

    model: LineModel
    rates: Rates
    reps: int
    variants: int
    end_us: int
    last_depart: np.ndarray
    start: np.ndarray | None = None
    depart: np.ndarray | None = None
    period: np.ndarray | None = None
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def units(self) -> int:
        return self.last_depart.shape[0]

    def output(self, from_us: int, to_us: int) -> np.ndarray:
        """Units the line delivered in (from_us, to_us], as (variant, replication)."""
        done = ((self.last_depart > from_us) & (self.last_depart <= to_us)).sum(axis=0)
        return done.reshape(self.variants, self.reps)

    def draws(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, Failures]:
        """Process, setup and repair draws (unit, rep, station) and every failure of a recorded run."""
        return (np.concatenate([c.process_us for c in self.chunks]),
                np.concatenate([c.setup_us for c in self.chunks]),
                np.concatenate([c.repair_us for c in self.chunks]),
                Failures.concat([c.failures for c in self.chunks]))


def simulate(model: LineModel, end_us: int, *, reps: int = 1, seed: int = 0, stream: int = 0,
             variants: list[Variant] | None = None, record: bool = False) -> Run:
    """Run every (version, replication) row until each station has started a unit after `end_us`."""
    variants = variants or [Variant()]
    rates = Rates.of(model, variants, reps)
    rows, m = rates.machines.shape
    width = m + 1  # a last column that stays 0: the free sink never blocks
    lag_self = rates.machines
    lag_next = np.concatenate([model.buffer[None, 1:] + rates.machines[:, 1:], np.ones((rows, 1), np.int64)],
                              axis=1)
    ring_len = int(max(lag_self.max(), lag_next.max())) + 1
    ring = np.zeros((ring_len, rows, width), np.int64)
    flat = ring.reshape(-1)
    # Where D[n - lag] sits in the ring depends only on n % ring_len: one gather table per slot.
    base = np.arange(rows)[:, None] * width + np.arange(m)[None, :]
    slots = np.arange(ring_len)[:, None, None]
    take_self = ((slots - lag_self[None]) % ring_len) * (rows * width) + base[None]
    take_next = ((slots - lag_next[None]) % ring_len) * (rows * width) + base[None] + 1
    one_machine = bool((rates.machines == 1).all())  # then D[n - c] is simply the previous unit's row
    breaks = model.breaks_us
    bounds = breaks.tolist()
    stream_of_draws = DrawStream(model.laws, seed, reps, stream)
    last, starts, departs, periods, chunks = [], [], [], [], []
    n = 0
    # Bound a chunk's arrays (period x unit x row x station) so they stay in cache-friendly sizes.
    most = max(64, CHUNK_ELEMENTS // (len(model.slow) * rows * m))
    size = min(_first_chunk(model, rates, end_us), most)
    while True:
        chunk = stream_of_draws.next(size)
        active = rates.active_times(chunk)
        running = np.cumsum(active, axis=3)
        s_out = np.empty((size, rows, m), np.int64) if record else None
        d_out = np.empty((size, rows, m), np.int64) if record else None
        p_out = np.zeros((size, rows, m), np.int16) if record else None
        l_out = np.empty((size, rows), np.int64)
        start = None
        for i in range(size):
            slot = n % ring_len
            previous = ring[(n - 1) % ring_len, :, :m]
            guess = previous if one_machine else flat.take(take_self[slot])
            blocker = flat.take(take_next[slot])
            period = bisect_right(bounds, int(guess.min())) if bounds else 0
            ready = guess + active[period, i]
            np.maximum(ready, blocker, out=ready)
            if not one_machine:
                np.maximum(ready, previous, out=ready)
            ready -= running[period, i]
            depart = np.maximum.accumulate(ready, axis=1)
            depart += running[period, i]
            if record or bounds:
                start = guess.copy()
                np.maximum(depart[:, :-1], guess[:, 1:], out=start[:, 1:])
            if period < len(bounds) and int(start.max()) >= bounds[period]:
                # A rate change falls between some guess and its true start: period per row and station.
                period = _mixed_periods(active[:, i], guess, blocker, previous, breaks, start, depart)
            ring[slot, :, :m] = depart
            l_out[i] = depart[:, m - 1]
            if record:
                s_out[i], d_out[i], p_out[i] = start, depart, period
            n += 1
        first = ring[(n - 1) % ring_len, :, 0] if one_machine else flat.take(take_self[n % ring_len])[:, 0]
        last.append(l_out)
        if record:
            starts.append(s_out)
            departs.append(d_out)
            periods.append(p_out)
            chunks.append(chunk)
        if (first > end_us).all():  # the next unit would start at station 1 after the end: done
            break
        size = min(_next_chunk(n, int(first.min()), end_us), most)
    run = Run(model, rates, reps, len(variants), end_us, np.concatenate(last))
    if record:
        run.start, run.depart, run.period = map(np.concatenate, (starts, departs, periods))
        run.chunks = chunks
    return run


def _first_chunk(model: LineModel, rates: Rates, end_us: int) -> int:
    """Units to draw first: enough for the slowest station's mean pace to reach `end_us`, plus the
    line's capacity (units inside it) and a margin, so most runs need a single chunk."""
    laws = model.laws
    failing = np.where(np.isfinite(laws.mtbf_us), laws.mttr_us / laws.mtbf_us, 0.0)
    setups = np.where(laws.setup_every > 0, laws.setup_us / np.maximum(laws.setup_every, 1), 0.0)
    cycle = (laws.cycle_us * rates.process.max(axis=(0, 1)) * (1 + failing * rates.repair.max(axis=(0, 1)))
             + setups) / rates.machines.max(axis=0)
    inside = int((model.buffer + rates.machines.max(axis=0)).sum())
    return int(min(max(end_us / cycle.max() * 1.05 + inside + 32, 64), 200_000))


def _next_chunk(units: int, reached_us: int, end_us: int) -> int:
    """Units to draw next, from the pace station 1 has shown so far."""
    pace = max(reached_us, 1) / max(units, 1)
    return int(min(max((end_us - reached_us) / pace * 1.1 + 32, 64), 200_000))


def _mixed_periods(active: np.ndarray, guess: np.ndarray, blocker: np.ndarray, previous: np.ndarray,
                   breaks: np.ndarray, start: np.ndarray, depart: np.ndarray) -> np.ndarray:
    """The unit's step when rows or stations run under different periods; fills start and depart."""
    rows, m = guess.shape
    period = np.searchsorted(breaks, guess, side="right")
    effort = active[period, np.arange(rows)[:, None], np.arange(m)[None, :]]
    ready = np.maximum(np.maximum(guess + effort, blocker), previous)
    running = np.cumsum(effort, axis=1)
    depart[:] = running + np.maximum.accumulate(ready - running, axis=1)
    start[:] = guess
    np.maximum(depart[:, :-1], guess[:, 1:], out=start[:, 1:])
    wrong = (np.searchsorted(breaks, start, side="right") != period).any(axis=1)
    if wrong.any():
        _redo(np.flatnonzero(wrong), active, guess, blocker, previous, breaks, start, depart, period)
    return period


def _redo(rows: np.ndarray, active: np.ndarray, guess: np.ndarray, blocker: np.ndarray,
          previous: np.ndarray, breaks: np.ndarray, start: np.ndarray, depart: np.ndarray,
          period: np.ndarray) -> None:
    """The recursion station by station for `rows`, with each unit's period read at its true start."""
    upstream = None
    for j in range(guess.shape[1]):
        s = guess[rows, j] if upstream is None else np.maximum(upstream, guess[rows, j])
        p = np.searchsorted(breaks, s, side="right")
        d = np.maximum(np.maximum(s + active[p, rows, j], blocker[rows, j]), previous[rows, j])
        start[rows, j], depart[rows, j], period[rows, j] = s, d, p
        upstream = d
