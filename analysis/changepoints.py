"""Where the line's behaviour changes: change points in every station's own pace.

Why: a window of half an hour holds too little evidence to tell near-balanced stations apart, and the
line's constraint only moves when something about a station changes (it degrades, gets repaired, a
product changes). So the detector finds those moments and pools the evidence of the whole regime
between them.

What is watched is each station's own *paces*, binned per BIN_S: work seconds per unit that left (a
slower process) and down and setup seconds per minute of work (longer repairs, more setups). Starving
and blocking (the neighbours' doing) enter neither. An earlier
version segmented the shares of every state and the queues: on the first 30 `tune` lines of the
random family it found 17 of 80 planted changes within 10 minutes and made 90 false cuts, because a
long repair elsewhere moves every share and queue of the line for a while.

The line's bins are split by binary segmentation: per station and split point the two paces (sum of
seconds / sum of units on each side) are compared by a t statistic whose noise is the residual
spread of the bins around their side's pace (per unit, so a bin of few units weighs little); a split
stands where the largest statistic over stations exceeds THRESHOLD, with at least MIN_BINS and
MIN_UNITS on either side. (A moving-window test, 30 minutes each side, found fewer planted changes:
8 of 80 at the same threshold.) Failures make the bins' residuals heavy-tailed and autocorrelated, so
THRESHOLD is above a textbook t; it was chosen on `tune` lines of the family (bench/README.md), never
on `test`.
"""

from __future__ import annotations

import numpy as np

from analysis.states import StateSpans
from analysis.telemetry import DOWN, SETUP, WORKING, LineTelemetry

BIN_S = 300
MIN_BINS = 2
MIN_UNITS = 8  # a side with fewer units has no pace worth comparing
# Chosen on `tune` lines 0-29 (with states) among 4, 5, 6, 8, 10 by the planted changes found within
# 10 minutes against false cuts: 35/80 and 40 false, 25 and 10, 22 and 6, 17 and 0, 12 and 0.
THRESHOLD = 6.0


def pace_bins(spans: StateSpans, telemetry: LineTelemetry, begin_ms: int, end_ms: int,
              bin_s: int = BIN_S) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bin edges in ms, numerators and denominators per (bin, pace)) of the line over [begin_ms, end_ms):
    per station its work seconds per unit (columns 0..m-1) and its down and setup seconds per minute of
    work (columns m..2m-1)."""
    width = bin_s * 1000
    edges = np.arange(begin_ms, end_ms + 1, width, dtype=np.int64)
    m = len(telemetry.line.stations)
    bins = max(len(edges) - 1, 0)
    active = np.zeros((bins, 2 * m))
    units = np.zeros((bins, 2 * m))
    if bins == 0:
        return edges, active, units
    for j in range(m):
        ts, code, hold = spans.ts[j], spans.code[j], spans.hold[j]
        which = np.searchsorted(edges, ts, side="right") - 1
        inside = (which >= 0) & (which < bins)
        seconds = hold[inside] / 1000
        weights = {"work": seconds * (code[inside] == WORKING),
                   "lost": seconds * np.isin(code[inside], (DOWN, SETUP))}
        counts = {name: np.bincount(which[inside], weights=w, minlength=bins)[:bins]
                  for name, w in weights.items()}
        active[:, j] = counts["work"]  # work seconds per unit
        active[:, m + j], units[:, m + j] = counts["lost"], counts["work"] / 60  # lost s per work minute
        series = telemetry.series[j]
        if len(series):
            at = np.searchsorted(series.ts, edges) - 1
            counted = series.count[np.clip(at, 0, len(series) - 1)].astype(float)
            units[:, j] = np.clip(np.diff(counted), 0, None)
    return edges, active, units


def _best_split(active: np.ndarray, units: np.ndarray) -> tuple[int, float]:
    """The split of the bins that best separates some pace's two sides, and its t statistic."""
    n = len(active)
    k = np.arange(MIN_BINS, n - MIN_BINS + 1)
    if len(k) == 0:
        return 0, -np.inf

    def cum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.cumsum(x, axis=0)
        return c[k - 1], c[-1] - c[k - 1]

    (a_l, a_r), (u_l, u_r) = cum(active), cum(units)
    (aa_l, aa_r), (au_l, au_r), (uu_l, uu_r) = cum(active**2), cum(active * units), cum(units**2)
    r_l = a_l / np.maximum(u_l, 1e-9)
    r_r = a_r / np.maximum(u_r, 1e-9)
    # Residual squares of the bins around their side's pace: sum (a - r u)^2 = aa - 2 r au + r^2 uu.
    residual = (aa_l - 2 * r_l * au_l + r_l**2 * uu_l) + (aa_r - 2 * r_r * au_r + r_r**2 * uu_r)
    per_unit = np.maximum(residual, 0) / np.maximum(u_l + u_r, 1e-9)
    # A floor on the noise: a pace known to a few percent at best (1 Hz counts, a steady deterministic
    # station), so near-zero residuals do not make any wobble look significant.
    per_unit = np.maximum(per_unit, (0.02 * (a_l + a_r) / np.maximum(u_l + u_r, 1e-9)) ** 2)
    per_unit = np.maximum(per_unit, 1e-6)
    se = np.sqrt(per_unit * (1 / np.maximum(u_l, 1e-9) + 1 / np.maximum(u_r, 1e-9)))
    stat = np.abs(r_l - r_r) / se
    stat[(u_l < MIN_UNITS) | (u_r < MIN_UNITS)] = 0.0
    best = np.unravel_index(int(np.argmax(stat)), stat.shape)
    return int(k[best[0]]), float(stat[best])


def segment(active: np.ndarray, units: np.ndarray, threshold: float = THRESHOLD) -> list[int]:
    """Binary segmentation of the bins: the sorted bin indices where a new segment starts."""
    cuts: list[int] = []
    stack = [(0, len(active))]
    while stack:
        a, b = stack.pop()
        if b - a < 2 * MIN_BINS:
            continue
        k, stat = _best_split(active[a:b], units[a:b])
        if stat > threshold:
            cuts.append(a + k)
            stack += [(a, a + k), (a + k, b)]
    return sorted(cuts)


def change_points(spans: StateSpans, telemetry: LineTelemetry, begin_ms: int | None = None,
                  end_ms: int | None = None, threshold: float | None = None) -> list[int]:
    """Times (ms) at which some station's pace changes, in order."""
    begin = spans.begin_ms if begin_ms is None else begin_ms
    end = spans.end_ms if end_ms is None else end_ms
    edges, active, units = pace_bins(spans, telemetry, begin, end)
    if len(active) == 0:
        return []
    cuts = segment(active, units, THRESHOLD if threshold is None else threshold)
    return [int(edges[i]) for i in cuts]
