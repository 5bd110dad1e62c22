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
    failures: int
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


def _episodes(code: np.ndarray, value: int) -> int:
    """Runs of `value` in `code` (a run already going at the start counts)."""
    flag = code == value
    return int(flag[0]) + int((flag[1:] & ~flag[:-1]).sum()) if len(flag) else 0


def _run_lengths(code: np.ndarray, hold: np.ndarray, value: int) -> np.ndarray:
    flag = code == value
    if not flag.any():
        return np.zeros(0)
    edges = np.diff(np.concatenate([[0], flag.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    total = np.concatenate([[0], np.cumsum(hold)])
    return (total[stops] - total[starts]) / 1000.0


def _cv(values: np.ndarray, noise_var: float = 0.0) -> float | None:
    if len(values) < MIN_GAPS:
        return None
    mean = float(values.mean())
    if mean <= 0:
        return None
    return float(np.sqrt(max(float(values.var()) - noise_var, 0.0)) / mean)


def _process_cv(ts: np.ndarray, count: np.ndarray, working: np.ndarray) -> float | None:
    """CV of the gaps between single departures with the station working all the way between them."""
    step = np.diff(count)
    rose = np.flatnonzero(step > 0) + 1  # sample index where a departure is first seen
    if len(rose) < MIN_GAPS + 1:
        return None
    not_working = np.concatenate([[0], np.cumsum(~working)])
    a, b = rose[:-1], rose[1:]
    # The unit between a and b was worked on in samples a .. b-1 (seen departed at b).
    clean = (not_working[b] - not_working[a] == 0) & (step[b - 1] == 1) & (step[a - 1] == 1)
    gaps = (ts[b] - ts[a])[clean] / 1000.0
    return _cv(gaps, ROUNDING_VAR_S2)


def fit_line(spans: StateSpans, telemetry: LineTelemetry, from_ms: int, to_ms: int) -> list[StationFit]:
    """Every station's fit over [from_ms, to_ms), in flow order."""
    fits = []
    for j, station in enumerate(telemetry.line.stations):
        ts, code, hold = spans.ts[j], spans.code[j], spans.hold[j]
        first, last = np.searchsorted(ts, [from_ms, to_ms])
        code, hold, ts = code[first:last], hold[first:last], ts[first:last]
        series = telemetry.series[j]
        s_first, s_last = np.searchsorted(series.ts, [from_ms, to_ms])
        count = series.count[s_first:s_last]
        units = int(np.clip(np.diff(count), 0, None).sum()) if len(count) > 1 else 0
        # States at the series' own sample times (the inferred ones live on a grid of the same step).
        at = np.clip(np.searchsorted(ts, series.ts[s_first:s_last], side="right") - 1, 0, max(len(ts) - 1, 0))
        working = (code[at] == WORKING) if len(ts) else np.zeros(len(count), bool)
        cv = _process_cv(series.ts[s_first:s_last], count, working)
        repairs = _run_lengths(code, hold, DOWN)
        fits.append(StationFit(
            id=station.id, buffer=station.buffer, observed_s=float(hold.sum()) / 1000, units=units,
            working_s=float(hold[code == WORKING].sum()) / 1000,
            down_s=float(hold[code == DOWN].sum()) / 1000,
            setup_s=float(hold[code == SETUP].sum()) / 1000, failures=_episodes(code, DOWN),
            setups=_episodes(code, SETUP), cv=DEFAULT_CV if cv is None else min(cv, 2.0),
            mttr_cv=min(_cv(repairs) or 1.0, 3.0)))
    return fits
