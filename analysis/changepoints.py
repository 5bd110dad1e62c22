"""Where the line's behaviour changes: change points in every station's states, output and queue.

Why: a window of half an hour holds too little evidence to tell near-balanced stations apart, and the
line's constraint only moves when something about a station changes (it degrades, gets repaired, a
product changes). So the detector finds those moments and pools the evidence of the whole regime
between them. The telemetry is cut into bins (BIN_S); per station and bin: the share of time working,
down, in setup, starved and blocked, the units that left, and the queue's fill. Each feature is scaled
to unit spread, and the line's bins are split by binary segmentation: a split stands where one
feature's means before and after differ by more than THRESHOLD standard errors (a two-sample t
statistic on the spread around the two means, the largest over features and split points), with at
least MIN_BINS on either side. (A statistic summed over all features, or scaled by the bin-to-bin
noise, split the family's lines ten times too often: failures and long repairs make every feature
strongly autocorrelated; so THRESHOLD is far above a textbook t.) The constants were chosen on
the `tune` lines of the random family (bench/README.md), never on `test`.
"""

from __future__ import annotations

import numpy as np

from analysis.states import StateSpans
from analysis.telemetry import BLOCKED, DOWN, SETUP, STARVED, WORKING, LineTelemetry

BIN_S = 300
MIN_BINS = 3
THRESHOLD = 10.0  # on 20 `tune` lines: 3, 4, 6, 8, 12 and none tried; 6 scored best (bench/README.md)


def features(spans: StateSpans, telemetry: LineTelemetry, begin_ms: int, end_ms: int,
             bin_s: int = BIN_S) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges in ms, features as (bins, features)) of the line over [begin_ms, end_ms)."""
    width = bin_s * 1000
    edges = np.arange(begin_ms, end_ms + 1, width, dtype=np.int64)
    if len(edges) < 2:
        return edges, np.zeros((0, 0))
    columns = []
    for j, station in enumerate(telemetry.line.stations):
        ts, code, hold = spans.ts[j], spans.code[j], spans.hold[j]
        which = np.searchsorted(edges, ts, side="right") - 1
        inside = (which >= 0) & (which < len(edges) - 1)
        which, code_in, hold_in = which[inside], code[inside], hold[inside]
        for value in (WORKING, DOWN, SETUP, STARVED, BLOCKED):
            columns.append(np.bincount(which, weights=hold_in * (code_in == value), minlength=len(edges) - 1)
                           / width)
        series = telemetry.series[j]
        if len(series):
            at = np.searchsorted(series.ts, edges) - 1
            counted = series.count[np.clip(at, 0, len(series) - 1)]
            columns.append(np.diff(counted).astype(float))
            where = np.searchsorted(edges, series.ts, side="right") - 1
            ok = (where >= 0) & (where < len(edges) - 1)
            sums = np.bincount(where[ok], weights=series.queue[ok], minlength=len(edges) - 1)
            n = np.bincount(where[ok], minlength=len(edges) - 1)
            columns.append(sums / np.maximum(n, 1) / (station.buffer + 1))
    return edges, np.column_stack(columns)


def _standardised(x: np.ndarray) -> np.ndarray:
    """Features that vary at all, each scaled to unit spread (so none dominates the search)."""
    if len(x) < 3:
        return np.zeros((len(x), 0))
    noise = np.std(x, axis=0)
    keep = noise > 1e-9
    return (x[:, keep] - x[:, keep].mean(axis=0)) / noise[keep]


def _best_split(z: np.ndarray) -> tuple[int, float]:
    """The split of z's rows that best separates their means, and its standardised statistic."""
    n, d = z.shape
    total = np.cumsum(z, axis=0)
    k = np.arange(MIN_BINS, n - MIN_BINS + 1)
    if len(k) == 0 or d == 0:
        return 0, -np.inf
    left = total[k - 1] / k[:, None]
    right = (total[-1] - total[k - 1]) / (n - k)[:, None]
    # The spread around the two means (a t statistic): scaling by the whole stretch's spread would
    # count the shift itself as noise and cap the statistic at sqrt(n).
    squares = np.cumsum(z * z, axis=0)
    within = (squares[-1] - k[:, None] * left**2 - (n - k)[:, None] * right**2) / n
    spread = np.sqrt(np.maximum(within, 1e-12))
    stat = (np.sqrt(k * (n - k) / n)[:, None] * np.abs(left - right) / spread).max(axis=1)
    best = int(np.argmax(stat))
    return int(k[best]), float(stat[best])


def segment(z: np.ndarray, threshold: float = THRESHOLD) -> list[int]:
    """Binary segmentation of the rows of z: the sorted row indices where a new segment starts."""
    cuts: list[int] = []
    stack = [(0, len(z))]
    while stack:
        a, b = stack.pop()
        if b - a < 2 * MIN_BINS:
            continue
        k, stat = _best_split(z[a:b])
        if stat > threshold:
            cuts.append(a + k)
            stack += [(a, a + k), (a + k, b)]
    return sorted(cuts)


def change_points(spans: StateSpans, telemetry: LineTelemetry, begin_ms: int | None = None,
                  end_ms: int | None = None, threshold: float | None = None) -> list[int]:
    """Times (ms) at which the line's behaviour changes, in order."""
    begin = spans.begin_ms if begin_ms is None else begin_ms
    end = spans.end_ms if end_ms is None else end_ms
    edges, x = features(spans, telemetry, begin, end)
    if len(x) == 0:
        return []
    cuts = segment(_standardised(x), THRESHOLD if threshold is None else threshold)
    return [int(edges[i]) for i in cuts]
