"""The `crn` method: each window's constraint by the definition, on the fitted line of its regime.

Why: the constraint is the station whose improvement raises the line's output most. Per window this
module takes the regime the window ends in (analysis/changepoints.py: from the last change of the
line's behaviour, or the data's start, up to the window's end: live, up to now), fits every station
on it (analysis/fit.py) and simulates the fitted line with each station 5 % faster on common random
numbers (analysis/crn_gain.py). The window then names the largest gain, its runner-up, the margin,
the confidence, and whether the lead is within noise ("no clear constraint" in the text output).
"""

from __future__ import annotations

import bisect

import numpy as np

from analysis.changepoints import change_points
from analysis.crn_gain import Effort, station_gains
from analysis.fit import FitTable
from analysis.states import StateSpans
from analysis.telemetry import LineTelemetry

MIN_REGIME_S = 900  # a change closer than this to a window's end: the fit starts at the change before
EFFORT = Effort()
# Within one regime a window whose fit moved less than this (relative, every station's mean time per
# unit: work, repairs, setups) reuses the previous window's simulation: a long steady regime is then
# simulated a few times, not once per window (the offline speed budget of 5 s for 20 stations x 24 h).
REUSE = 0.02
CHUNK_S = 300  # the fit's statistics are kept per 5 minutes (epoch-aligned, like the windows)


def _pace(fits: list) -> np.ndarray:
    return np.array([f.cycle_s * (1 + (f.mttr_min / f.mtbf_min if f.mtbf_min else 0.0))
                     + (f.setup_min * 60 / f.setup_every if f.setup_every else 0.0) for f in fits])


def by_simulation(windows: list, spans: StateSpans, telemetry: LineTelemetry, effort: Effort | None = None,
                  cuts: list[int] | None = None) -> None:
    """Fill each window's bottleneck, runner_up, margin, confidence and within_noise, in place."""
    effort = EFFORT if effort is None else effort
    cuts = change_points(spans, telemetry) if cuts is None else cuts
    stations = telemetry.stations
    chunk = CHUNK_S * 1000
    table = FitTable.of(spans, telemetry, spans.begin_ms // chunk * chunk, spans.end_ms, chunk)
    last: tuple[int, np.ndarray, object] | None = None
    for window in windows:
        end = window.end
        k = bisect.bisect_right(cuts, end - MIN_REGIME_S * 1000)
        begin = max(cuts[k - 1] if k else spans.begin_ms, spans.begin_ms)
        fits = table.fit(begin, end)
        pace = _pace(fits)
        if last is not None and last[0] == begin and np.all(np.abs(pace / last[1] - 1) < REUSE):
            gains = last[2]
        else:
            gains = station_gains(fits, effort)
            last = (begin, pace, gains)
        window.bottleneck = stations[gains.best]
        window.runner_up = stations[gains.runner_up] if gains.runner_up is not None else None
        window.margin = round(gains.margin, 4)
        window.confidence = round(gains.confidence, 3)
        window.within_noise = gains.within_noise
