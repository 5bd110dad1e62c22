"""The `crn` method: each window's constraint by the definition, on the fitted line of its regimes.

Why: the constraint is the station whose improvement raises the line's output most. Per window this
module fits every station on its own regime holding the window's end (analysis/changepoints.py): its
pace, setups and process spread since its last pace change or the line's last change, its failures and
repairs since its last failure change, which is rarer (a station's failures are rare, MTBF up to 8 h of
work: a regime of 1-4 h holds none or one, and one long repair would make it the constraint), so an
unchanged station pools hours of failures while a changed one is judged on its new repairs
(moving_constraint.toml's s7). The change points come from all the data given (live: up to now), and
the fit reaches past the window's end to the end of its regime or AHEAD_S after the window, whichever
comes first, unless the regime begins inside the window (live the data ends now, so the newest window
is fitted up to now): a window early in its regime is judged on more of that regime than its minutes.
It then simulates the fitted line with each station 5 % faster on common random numbers
(analysis/crn_gain.py); the window names the largest gain, its runner-up, the margin, the confidence,
and whether the lead is within noise ("no clear constraint" in the text output).
On `tune` lines 0-79 the own regimes scored 76.1 % / 46.2 % (clear / hard, with states) and 73.7 % /
37.3 % from queues, against 74.1 % / 42.2 % and 71.2 % / 37.0 % with one line-wide regime for every
station; fitting up to 1 h ahead in the regime 78.8 % / 47.9 % and 74.8 % / 38.7 % (bench/README.md).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from analysis.changepoints import StationCuts, station_change_points
from analysis.crn_gain import Effort, Gains, station_gains
from analysis.fit import FitTable, StationFit
from analysis.states import StateSpans
from analysis.telemetry import LineTelemetry

MIN_REGIME_S = 900  # a change closer than this to a window's end: the fit starts at the change before
EFFORT = Effort()
# Within one regime a window whose fit moved less than this (relative, every station's mean time per
# unit: work, repairs, setups) reuses the previous window's simulation: a long steady regime is then
# simulated a few times, not once per window (the offline speed budget of 5 s for 20 stations x 24 h).
REUSE = 0.02
POOL_FAILURES = True
CHUNK_S = 300  # the fit's statistics are kept per 5 minutes (epoch-aligned, like the windows)
# How far past a window's end its fit may reach, within the window's regime. Chosen on `tune` lines 0-79
# among 0, 0.5, 1, 2 h and the whole regime (bench/README.md): 1 h was up in all four cells; the whole
# regime gained most clear with states but lost 3 points clear from queues, where a missed change lets
# the next regime's data in. Not past the window's end where the regime begins inside it (regime_ends).
AHEAD_S = 3600


def _pace(fits: list) -> np.ndarray:
    return np.array([f.cycle_s * (1 + (f.mttr_min / f.mtbf_min if f.mtbf_min else 0.0))
                     + (f.setup_min * 60 / f.setup_every if f.setup_every else 0.0) for f in fits])


def _changes_before(own: list[int], end_ms: int) -> int:
    """How many of a station's changes lie at least MIN_REGIME_S before `end_ms` (a later one leaves
    too little to fit): the regime holding a window that ends there begins at the last of them."""
    return bisect.bisect_right(own, end_ms - MIN_REGIME_S * 1000)


def regime_starts(cuts: list[list[int]], end_ms: int, begin_ms: int) -> list[int]:
    """Per station, where its regime holding a window that ends at `end_ms` begins: its last change at
    least MIN_REGIME_S before the end (`_changes_before`), or the data's start."""
    starts = []
    for own in cuts:
        k = _changes_before(own, end_ms)
        starts.append(max(own[k - 1] if k else begin_ms, begin_ms))
    return starts


def regime_ends(cuts: list[list[int]], start_ms: int, end_ms: int, data_end_ms: int, ahead_s: float
                ) -> list[int]:
    """Per station, how far the fit of the window [start_ms, end_ms) reaches: the end of the regime of
    `regime_starts` (its next change, or the data's end), at most `ahead_s` past the window, never
    before the window's end; only to the window's end if the regime begins inside the window. Why:
    a change point is placed within a bin or two (5 minutes each), so a window it cuts may be mostly
    the old regime; fitting it on the next hour as well judged it by the new one (moving_constraint.toml
    seed 1: s3's change at 3 h is cut at 2.75 h, and the window 2.5-3 h named s7)."""
    ends = []
    for own in cuts:
        k = _changes_before(own, end_ms)
        regime_end = min(own[k], data_end_ms) if k < len(own) else data_end_ms
        if k and own[k - 1] > start_ms:
            regime_end = end_ms
        ends.append(max(min(regime_end, end_ms + int(ahead_s * 1000)), end_ms))
    return ends


def _failures_pooled(fits: list[StationFit], pooled: list[StationFit]) -> list[StationFit]:
    """The pace regime's fits with each station's failures and repairs at the rates of its own failure
    regime (scaled to the pace regime's working time: failures happen on busy time)."""
    out = []
    for f, g in zip(fits, pooled, strict=True):
        share = f.working_s / max(g.working_s, 1.0)
        out.append(replace(f, failures=g.failures * share, down_s=g.down_s * share, mttr_cv=g.mttr_cv))
    return out


Simulate = Callable[[object, list[StationFit], Effort], Gains]  # (window, fits, effort) -> gains


def by_simulation(windows: list, spans: StateSpans, telemetry: LineTelemetry, effort: Effort | None = None,
                  cuts: list[StationCuts] | None = None, ahead_s: float = AHEAD_S,
                  simulate: Simulate | None = None) -> None:
    """Fill each window's bottleneck, runner_up, margin, confidence and within_noise, in place.
    `cuts`: per station its regime changes (default: station_change_points of all the data given);
    `ahead_s`: how far past a window's end its fit may reach within the regime (0: up to its end);
    `simulate`: the gains of a window's fits instead of station_gains (the bounds study's rungs that
    know part of the true line); each window is then simulated, no reuse."""
    effort = EFFORT if effort is None else effort
    cuts = station_change_points(spans, telemetry) if cuts is None else cuts
    stations = telemetry.stations
    chunk = CHUNK_S * 1000
    table = FitTable.of(spans, telemetry, spans.begin_ms // chunk * chunk, spans.end_ms, chunk)
    last: tuple[list[int], np.ndarray, object] | None = None
    for window in windows:
        end = window.end
        begins = regime_starts([c.pace for c in cuts], end, spans.begin_ms)
        ends = regime_ends([c.pace for c in cuts], window.start, end, spans.end_ms, ahead_s)
        fits = table.fit(begins, ends)
        if POOL_FAILURES:
            pooled = regime_starts([c.failures for c in cuts], end, spans.begin_ms)
            pooled_ends = regime_ends([c.failures for c in cuts], window.start, end, spans.end_ms, ahead_s)
            fits = _failures_pooled(fits, table.fit(pooled, pooled_ends))
            begins = begins + pooled
        pace = _pace(fits)
        if simulate is not None:
            gains = simulate(window, fits, effort)
        elif last is not None and last[0] == begins and np.all(np.abs(pace / last[1] - 1) < REUSE):
            gains = last[2]
        else:
            gains = station_gains(fits, effort)
            last = (begins, pace, gains)
        window.bottleneck = stations[gains.best]
        window.runner_up = stations[gains.runner_up] if gains.runner_up is not None else None
        window.margin = round(gains.margin, 4)
        window.confidence = round(gains.confidence, 3)
        window.within_noise = gains.within_noise
