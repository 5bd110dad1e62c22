"""Fit each station's behaviour over a stretch of telemetry: pace, failures, repairs, setups.

Why: the constraint is the station whose improvement raises the line's output most (the definition
simulators/truth.py scores against). To estimate that from telemetry the detector rebuilds the line it
sees, station by station, and simulates it (analysis/crn_gain.py). This module is the rebuild: from a
station's states (reported, or inferred from queues by analysis/states.py) and its count over
[from_ms, to_ms):
- work time per unit = working time / units that left it;
- MTBF = working time / failures (failures happen on busy time), MTTR = down time / failures, and the
  repairs' CV from the down episodes;
- setups: units per setup and minutes per setup from the setup episodes;
- the process time's CV from the gaps between departures while the station kept working (the only
  gaps that are pure process time), less the 1 Hz rounding;
- buffers from the plant file; one machine per station (the plant file does not say more).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.states import StateSpans
from analysis.telemetry import DOWN, SETUP, WORKING, LineTelemetry

ROUNDING_VAR_S2 = 1 / 6  # variance of a gap read off two 1 Hz samples (two roundings of 1 s)
MIN_GAPS = 10  # fewer clean gaps than this: the CV is not estimated (DEFAULT_CV)
DEFAULT_CV = 0.5


@dataclass(frozen=True, slots=True)
class StationFit:
    """What a station did over the fitted stretch; the derived laws are properties."""

    id: str
    buffer: int
    observed_s: float
    units: int
    working_s: float
    down_s: float
    setup_s: float
    failures: float  # a count; fractional when pooled at another stretch's rate (analysis/constraint.py)
    setups: int
    cv: float
    mttr_cv: float

    @property
    def cycle_s(self) -> float:
        """Mean work seconds per unit (working time only)."""
        return max(self.working_s, 1.0) / max(self.units, 0.5)

    @property
    def mtbf_min(self) -> float | None:
        return max(self.working_s, 1.0) / self.failures / 60 if self.failures else None

    @property
    def mttr_min(self) -> float:
        return self.down_s / self.failures / 60 if self.failures else 0.0

    @property
    def setup_every(self) -> int:
        return max(1, round(self.units / self.setups)) if self.setups else 0

    @property
    def setup_min(self) -> float:
        return self.setup_s / self.setups / 60 if self.setups else 0.0

    @property
    def units_per_working_hour(self) -> float:
        return self.units / max(self.working_s, 1.0) * 3600


def _run_starts(code: np.ndarray, hold: np.ndarray, value: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first sample and length (s) of every run of `value` (a run going at the start counts)."""
    flag = code == value
    if not flag.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    edges = np.diff(np.concatenate([[0], flag.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    total = np.concatenate([[0], np.cumsum(hold)])
    return starts, (total[stops] - total[starts]) / 1000.0


def _clean_gaps(ts: np.ndarray, count: np.ndarray, working: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first sample, seconds) of the gaps between single departures with the station working all the
    way between them: the only gaps that are pure process time."""
    step = np.diff(count)
    rose = np.flatnonzero(step > 0) + 1  # sample index where a departure is first seen
    if len(rose) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    not_working = np.concatenate([[0], np.cumsum(~working)])
    a, b = rose[:-1], rose[1:]
    # The unit between a and b was worked on in samples a .. b-1 (seen departed at b).
    clean = (not_working[b] - not_working[a] == 0) & (step[b - 1] == 1) & (step[a - 1] == 1)
    return a[clean], (ts[b] - ts[a])[clean] / 1000.0


def _cv(n: float, total: float, squares: float, noise_var: float = 0.0) -> float | None:
    """CV from a count, sum and sum of squares (less a known noise variance)."""
    if n < MIN_GAPS:
        return None
    mean = total / n
    if mean <= 0:
        return None
    return float(np.sqrt(max(squares / n - mean * mean - noise_var, 0.0)) / mean)


# Per station and chunk, in this order: observed, working, down, setup seconds; units; failures, repair
# seconds and their squares; setups; clean gaps, their seconds and squares.
OBSERVED, WORK, DOWN_S, SETUP_S, UNITS, FAILS, REPAIR, REPAIR2, SETUPS, GAPS, GAP, GAP2 = range(12)


@dataclass(frozen=True, slots=True)
class FitTable:
    """Sufficient statistics of every station per chunk of time, computed once, so the fit of any run of
    chunks (a regime so far, live: up to now) is a sum: refitting costs only what changed."""

    ids: list[str]
    buffers: list[int]
    edges: np.ndarray  # chunk edges, ms
    stats: np.ndarray  # (station, chunk, 12) cumulated over chunks (a leading zero chunk)

    @staticmethod
    def of(spans: StateSpans, telemetry: LineTelemetry, begin_ms: int, end_ms: int,
           chunk_ms: int) -> FitTable:
        edges = np.arange(begin_ms, end_ms + chunk_ms, chunk_ms, dtype=np.int64)
        edges[-1] = min(edges[-1], max(end_ms, edges[-2] + 1)) if len(edges) > 1 else edges[-1]
        chunks = len(edges) - 1
        stations = telemetry.line.stations
        stats = np.zeros((len(stations), chunks + 1, 12))
        for j in range(len(stations)):
            ts, code, hold = spans.ts[j], spans.code[j], spans.hold[j]
            first, last = np.searchsorted(ts, [begin_ms, end_ms])
            ts, code, hold = ts[first:last], code[first:last], hold[first:last]
            where = np.searchsorted(edges, ts, side="right") - 1
            table = np.zeros((chunks, 12))

            def add(column: int, index: np.ndarray, weights: np.ndarray | None = None,
                    into: np.ndarray = table) -> None:
                into[:, column] += np.bincount(index, weights=weights, minlength=chunks)[:chunks]

            add(OBSERVED, where, hold / 1000)
            for column, value in ((WORK, WORKING), (DOWN_S, DOWN), (SETUP_S, SETUP)):
                add(column, where, hold * (code == value) / 1000)
            starts, lengths = _run_starts(code, hold, DOWN)
            add(FAILS, where[starts])
            add(REPAIR, where[starts], lengths)
            add(REPAIR2, where[starts], lengths * lengths)
            starts, _ = _run_starts(code, hold, SETUP)
            add(SETUPS, where[starts])
            series = telemetry.series[j]
            s_first, s_last = np.searchsorted(series.ts, [begin_ms, end_ms])
            s_ts, count = series.ts[s_first:s_last], series.count[s_first:s_last]
            if len(count) > 1:
                s_where = np.searchsorted(edges, s_ts, side="right") - 1
                add(UNITS, s_where[1:], np.clip(np.diff(count), 0, None).astype(float))
                # States at the series' own sample times (inferred ones live on a grid of the same step).
                at = np.clip(np.searchsorted(ts, s_ts, side="right") - 1, 0, max(len(ts) - 1, 0))
                working = (code[at] == WORKING) if len(ts) else np.zeros(len(count), bool)
                gap_at, gaps = _clean_gaps(s_ts, count, working)
                add(GAPS, s_where[gap_at])
                add(GAP, s_where[gap_at], gaps)
                add(GAP2, s_where[gap_at], gaps * gaps)
            stats[j, 1:] = np.cumsum(table, axis=0)
        return FitTable([s.id for s in stations], [s.buffer for s in stations], edges, stats)

    def fit(self, from_ms: int | Sequence[int], to_ms: int | Sequence[int]) -> list[StationFit]:
        """Every station's fit over the chunks in [from_ms, to_ms), in flow order; `from_ms` and `to_ms`
        may be one moment per station (each station's own regime, analysis/constraint.py)."""
        rows = np.arange(len(self.ids))
        starts = np.broadcast_to(np.asarray(from_ms, dtype=np.int64), (len(self.ids),))
        ends = np.broadcast_to(np.asarray(to_ms, dtype=np.int64), (len(self.ids),))
        a = np.searchsorted(self.edges[:-1], starts)
        b = np.maximum(np.searchsorted(self.edges[:-1], ends), a)
        total = self.stats[rows, b] - self.stats[rows, a]
        fits = []
        for j, row in enumerate(total):
            cv = _cv(row[GAPS], row[GAP], row[GAP2], ROUNDING_VAR_S2)
            mttr_cv = _cv(row[FAILS] if row[FAILS] >= MIN_GAPS else 0, row[REPAIR], row[REPAIR2])
            fits.append(StationFit(
                id=self.ids[j], buffer=self.buffers[j], observed_s=float(row[OBSERVED]),
                units=int(row[UNITS]),
                working_s=float(row[WORK]), down_s=float(row[DOWN_S]), setup_s=float(row[SETUP_S]),
                failures=int(row[FAILS]), setups=int(row[SETUPS]),
                cv=DEFAULT_CV if cv is None else min(cv, 2.0), mttr_cv=min(mttr_cv or 1.0, 3.0)))
        return fits


def fit_line(spans: StateSpans, telemetry: LineTelemetry, from_ms: int, to_ms: int) -> list[StationFit]:
    """Every station's fit over [from_ms, to_ms), in flow order."""
    return FitTable.of(spans, telemetry, from_ms, to_ms, max(to_ms - from_ms, 1)).fit(from_ms, to_ms)
