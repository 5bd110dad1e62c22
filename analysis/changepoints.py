"""Where each station's own behaviour changes: change points of its pace, setups and failures.

Why: a window of half an hour holds too little evidence to tell near-balanced stations apart, and a
station's failures are rare (MTBF up to 8 h of work), so the detector pools evidence over as long a
stretch as the station stayed the same. What changes a station is the station itself (it degrades,
gets repaired, a product changes); its neighbours change only what it is allowed to do. So each
station is cut on its intrinsic behaviour, binned per BIN_S, in two groups with regimes of their own:
- pace: work seconds per unit that left, and setup seconds per minute of work;
- failures: down seconds per minute of work (failures happen on busy time) and the log of each
  repair's length (repairs are heavy-tailed; 12x longer repairs are a clear step on a log scale).
Starved, blocked and queue features move whenever any station changes, so they cut no station's
failures. They do cut its pace: the line's own segmentation (states, output and queues of every
station, as before this module was per station) marks moments where something changed, and a pace
change too small to stand out in a noisy station's own paces (cv up to 1.2) still moves the line. On
`tune` lines 0-39 (clear / hard, with states): one regime per station for all its features, cut by its
own segmentation and by the line's changes where its own features differed, 78.5 % / 40.4 %; by its
own segmentation alone (threshold 5) 77.3 % / 42.6 %; the two groups as here, 82.4 % / 44.8 %. A
line's change also cuts a station's failures where they differ there by more than LOCAL_THRESHOLD
within 1, 2 or 3 hours either side (the place is given, so a smaller statistic is evidence).

A station's bins are split by seeded binary segmentation: per feature and split point the two rates
(sum of seconds / sum of units on each side) are compared by a t statistic whose noise is the
residual spread of the bins around their side's rate (per unit, so a bin of few units weighs little);
the search covers the segment and seeded intervals inside it (halving lengths, half-length steps;
a change undone later, s7's long repairs from hour 3 to 6 of moving_constraint.toml, is a bump that
no split of the whole segment separates, but a step inside some interval); a split stands where the
largest statistic exceeds THRESHOLD, with at least MIN_BINS bins, MIN_UNITS units (work minutes,
repairs) on either side and MIN_EVENTS episodes on the busier side (a single long repair in two bins
scores a t near 10 against hours without one: one draw of a heavy tail, not a regime). The constants
were chosen on `tune` lines of the random family (bench/README.md), never on `test`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.states import StateSpans
from analysis.telemetry import BLOCKED, DOWN, SETUP, STARVED, WORKING, LineTelemetry

BIN_S = 300
MIN_BINS = 2
MIN_UNITS = 8.0  # a side with fewer units (work minutes) has no rate worth comparing
MIN_EVENTS = 3  # down or setup episodes on the busier side of a split of those features
THRESHOLD = 6.0
LINE_THRESHOLD = 10.0
LINE_MIN_BINS = 3
LOCAL_THRESHOLD = 3.0  # the place is given by the line: one test, not a search over split points
LOCAL_SPANS = (12, 24, 36)  # bins: 1, 2 and 3 hours either side of a line's change
MIN_INTERVAL = 8  # bins: the shortest seeded interval searched for a split of pace (40 minutes)
# ... and of failures (2 hours): on a steady station failing every 3 minutes the largest statistic
# over intervals of 40 minutes reached 10 on 1 of 5 seeds (few repairs a side, a noisy spread), over
# 2 hours at most 4.1; a planted 8x change of its repairs scored 6.7-10.2 (tests/test_constraint_fit.py).
FAILURE_MIN_INTERVAL = 24
PACE, DOWN_RATE, SETUP_RATE, REPAIR_LOG = range(4)
FEATURES = 4
# A rate is known to a few percent at best (1 Hz counts, a steady deterministic station): a floor on
# the noise, so near-zero residuals do not make any wobble look significant.
NOISE_FLOOR = 0.02


def _runs(code: np.ndarray, hold: np.ndarray, value: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first sample and length (s) of every run of `value`."""
    flag = np.concatenate([[0], (code == value).astype(np.int8), [0]])
    edges = np.diff(flag)
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    total = np.concatenate([[0], np.cumsum(hold)])
    return starts, (total[stops] - total[starts]) / 1000.0


def station_bins(spans: StateSpans, telemetry: LineTelemetry, j: int, edges: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Station j's (seconds, units, episodes) per (bin, feature) over the bins of `edges` (ms)."""
    bins = len(edges) - 1
    seconds = np.zeros((bins, FEATURES))
    units = np.zeros((bins, FEATURES))
    events = np.zeros((bins, FEATURES))
    ts, code, hold = spans.ts[j], spans.code[j], spans.hold[j]
    which = np.searchsorted(edges, ts, side="right") - 1
    inside = (which >= 0) & (which < bins)

    def per_bin(index: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(index, weights=weights, minlength=bins)[:bins]

    held = hold[inside] / 1000
    at, code_in = which[inside], code[inside]
    work = per_bin(at, held * (code_in == WORKING))
    seconds[:, PACE] = work
    for column, value in ((DOWN_RATE, DOWN), (SETUP_RATE, SETUP)):
        seconds[:, column] = per_bin(at, held * (code_in == value))
        units[:, column] = work / 60
        starts, lengths = _runs(code, hold, value)
        keep = inside[starts]
        events[:, column] = per_bin(which[starts[keep]])
        if value == DOWN:  # each repair's length, on a log scale (repairs are heavy-tailed)
            seconds[:, REPAIR_LOG] = per_bin(which[starts[keep]], np.log1p(lengths[keep]))
            units[:, REPAIR_LOG] = events[:, REPAIR_LOG] = events[:, column]
    series = telemetry.series[j]
    if len(series):
        at_edge = np.searchsorted(series.ts, edges) - 1
        counted = series.count[np.clip(at_edge, 0, len(series) - 1)].astype(float)
        units[:, PACE] = np.clip(np.diff(counted), 0, None)
        events[:, PACE] = units[:, PACE]
    return seconds, units, events


def prefix_sums(seconds: np.ndarray, units: np.ndarray, events: np.ndarray) -> np.ndarray:
    """Running sums (bins + 1, 6, features) of seconds, units, episodes, seconds^2, seconds x units and
    units^2: every interval's statistics are then differences, not sums again (the speed budget)."""
    stack = np.stack([seconds, units, events, seconds**2, seconds * units, units**2], axis=1)
    return np.concatenate([np.zeros((1, *stack.shape[1:])), np.cumsum(stack, axis=0)])


def _t(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """t statistic per (..., feature) of the two sides' rates, from their sums (..., 6, feature)."""
    a_l, u_l, e_l, aa_l, au_l, uu_l = np.moveaxis(left, -2, 0)
    a_r, u_r, e_r, aa_r, au_r, uu_r = np.moveaxis(right, -2, 0)
    r_l = a_l / np.maximum(u_l, 1e-9)
    r_r = a_r / np.maximum(u_r, 1e-9)
    # Residual squares of the bins around their side's rate: sum (a - r u)^2 = aa - 2 r au + r^2 uu.
    residual = (aa_l - 2 * r_l * au_l + r_l**2 * uu_l) + (aa_r - 2 * r_r * au_r + r_r**2 * uu_r)
    per_unit = np.maximum(residual, 0) / np.maximum(u_l + u_r, 1e-9)
    per_unit = np.maximum(per_unit, (NOISE_FLOOR * (a_l + a_r) / np.maximum(u_l + u_r, 1e-9)) ** 2)
    per_unit = np.maximum(per_unit, 1e-6)
    se = np.sqrt(per_unit * (1 / np.maximum(u_l, 1e-9) + 1 / np.maximum(u_r, 1e-9)))
    stat = np.abs(r_l - r_r) / se
    stat[(u_l < MIN_UNITS) | (u_r < MIN_UNITS)] = 0.0
    stat[np.where(r_l > r_r, e_l, e_r) < MIN_EVENTS] = 0.0
    return stat


def _split_stats(prefix: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """(split points k, t statistic per (k, feature)) of the bins [a, b): each feature's rates of the
    bins [a, k) and [k, b)."""
    k = np.arange(a + MIN_BINS, b - MIN_BINS + 1)
    if len(k) == 0:
        return k, np.zeros((0, prefix.shape[2]))
    at = prefix[k]
    return k, _t(at - prefix[a], prefix[b] - at)


def _best_splits(prefix: np.ndarray, starts: np.ndarray, length: int) -> list[tuple[int, float]]:
    """_best_split of every interval [start, start + length) at once (one scale of the seeded ones)."""
    offsets = np.arange(MIN_BINS, length - MIN_BINS + 1)
    if len(offsets) == 0:
        return [(int(a), -np.inf) for a in starts]
    at = prefix[starts[:, None] + offsets[None, :]]
    stat = _t(at - prefix[starts][:, None], prefix[starts + length][:, None] - at).max(axis=2)
    best = np.argmax(stat, axis=1)
    rows = np.arange(len(starts))
    return [(int(a + offsets[i]), float(v)) for a, i, v in zip(starts, best, stat[rows, best], strict=True)]


def _best_split(prefix: np.ndarray, a: int, b: int) -> tuple[int, float]:
    """The split of the bins [a, b) that best separates some feature's two rates, and its t statistic."""
    return _best_splits(prefix, np.array([a], dtype=np.int64), b - a)[0]


def _stat_at(prefix: np.ndarray, a: int, b: int, at: int) -> float:
    """The largest feature's t statistic of the split of the bins [a, b) at `at` (0 where a side is
    too short)."""
    k, stat = _split_stats(prefix, a, b)
    where = np.flatnonzero(k == at)
    return float(stat[where[0]].max()) if len(where) else 0.0


def seeded_intervals(n: int, shortest: int = MIN_INTERVAL) -> list[tuple[int, int]]:
    """The intervals searched for a split besides the segment itself: at each scale (n, n/2, n/4, ...
    down to MIN_INTERVAL bins) intervals of that length starting every half length. A change that is
    undone later (s7's long repairs from hour 3 to hour 6 of moving_constraint.toml) is a bump no single
    split of the whole segment separates well; inside an interval holding one of its edges it is a step."""
    out: list[tuple[int, int]] = []
    length = n
    while length >= shortest:
        step = max(1, length // 2)
        out += [(a, min(a + length, n)) for a in range(0, max(n - length, 0) + 1, step)]
        length //= 2
    return out


def segment(seconds: np.ndarray, units: np.ndarray, events: np.ndarray,
            threshold: float = THRESHOLD, shortest: int = MIN_INTERVAL) -> list[int]:
    """Seeded binary segmentation of one station's bins: the sorted bin indices where a new regime
    starts. Each segment is cut at the strongest split of any seeded interval inside it."""
    n = len(seconds)
    intervals = seeded_intervals(n, shortest)
    prefix = prefix_sums(seconds, units, events)
    best: dict[tuple[int, int], tuple[int, float]] = {}
    for length in sorted({e - a for a, e in intervals}):
        starts = np.array([a for a, e in intervals if e - a == length], dtype=np.int64)
        best.update({(int(a), int(a) + length): found
                     for a, found in zip(starts, _best_splits(prefix, starts, length), strict=True)})

    def split_of(a: int, b: int) -> tuple[int, float]:
        if (a, b) not in best:
            best[(a, b)] = _best_split(prefix, a, b)
        return best[(a, b)]

    cuts: list[int] = []
    stack = [(0, n)]
    while stack:
        a, b = stack.pop()
        if b - a < 2 * MIN_BINS:
            continue
        inside = [(a, b)] + [(s, e) for s, e in intervals if a <= s and e <= b and (s, e) != (a, b)]
        k, stat = max((split_of(s, e) for s, e in inside), key=lambda found: found[1])
        if stat > threshold:
            cuts.append(k)
            stack += [(a, k), (k, b)]
    return sorted(cuts)


def line_features(spans: StateSpans, telemetry: LineTelemetry, edges: np.ndarray) -> np.ndarray:
    """The line's (bins, features) over the bins of `edges`: per station the share of time working,
    down, in setup, starved and blocked, the units that left, and the queue's fill."""
    width = float(edges[1] - edges[0]) if len(edges) > 1 else 1.0
    bins = len(edges) - 1
    columns = []
    for j, station in enumerate(telemetry.line.stations):
        ts, code, hold = spans.ts[j], spans.code[j], spans.hold[j]
        which = np.searchsorted(edges, ts, side="right") - 1
        inside = (which >= 0) & (which < bins)
        which, code_in, hold_in = which[inside], code[inside], hold[inside]
        for value in (WORKING, DOWN, SETUP, STARVED, BLOCKED):
            columns.append(np.bincount(which, weights=hold_in * (code_in == value), minlength=bins)[:bins]
                           / width)
        series = telemetry.series[j]
        if len(series):
            at = np.searchsorted(series.ts, edges) - 1
            counted = series.count[np.clip(at, 0, len(series) - 1)]
            columns.append(np.diff(counted).astype(float))
            where = np.searchsorted(edges, series.ts, side="right") - 1
            ok = (where >= 0) & (where < bins)
            sums = np.bincount(where[ok], weights=series.queue[ok], minlength=bins)[:bins]
            n = np.bincount(where[ok], minlength=bins)[:bins]
            columns.append(sums / np.maximum(n, 1) / (station.buffer + 1))
    return np.column_stack(columns) if columns else np.zeros((bins, 0))


def line_segment(x: np.ndarray, threshold: float = LINE_THRESHOLD) -> list[int]:
    """Binary segmentation of the line's feature bins (each feature scaled to unit spread): the sorted
    bin indices where the line's behaviour changes, by the largest two-sample t over features."""
    if len(x) < 3:
        return []
    noise = np.std(x, axis=0)
    keep = noise > 1e-9
    z = (x[:, keep] - x[:, keep].mean(axis=0)) / noise[keep]
    cuts: list[int] = []
    stack = [(0, len(z))]
    while stack:
        a, b = stack.pop()
        n = b - a
        k = np.arange(LINE_MIN_BINS, n - LINE_MIN_BINS + 1)
        if len(k) == 0 or z.shape[1] == 0:
            continue
        total, squares = np.cumsum(z[a:b], axis=0), np.cumsum(z[a:b] ** 2, axis=0)
        left = total[k - 1] / k[:, None]
        right = (total[-1] - total[k - 1]) / (n - k)[:, None]
        within = (squares[-1] - k[:, None] * left**2 - (n - k)[:, None] * right**2) / n
        stat = (np.sqrt(k * (n - k) / n)[:, None] * np.abs(left - right)
                / np.sqrt(np.maximum(within, 1e-12))).max(axis=1)
        best = int(np.argmax(stat))
        if stat[best] > threshold:
            cuts.append(a + int(k[best]))
            stack += [(a, a + int(k[best])), (a + int(k[best]), b)]
    return sorted(cuts)


@dataclass(frozen=True, slots=True)
class StationCuts:
    """One station's regime changes (ms, in order): of its pace and setups, and of its failures."""

    pace: list[int]
    failures: list[int]


def station_change_points(spans: StateSpans, telemetry: LineTelemetry, begin_ms: int | None = None,
                          end_ms: int | None = None, threshold: float | None = None) -> list[StationCuts]:
    """Per station (flow order), the moments its own behaviour changes.

    Pace and setups: its own segmentation's cuts of them, and every moment the line's behaviour
    changes (a pace change too small to show in the station's own noisy paces still moves the line:
    the fit then starts afresh). Failures: only its own segmentation's cuts of its down rate and repair
    lengths, and those moments of the line's change at which its failure features differ by more than
    LOCAL_THRESHOLD between the neighbouring moments (the place is given, so a smaller statistic is
    evidence): failures are rare, so they are pooled over all of the station's unchanged stretch."""
    begin = spans.begin_ms if begin_ms is None else begin_ms
    end = spans.end_ms if end_ms is None else end_ms
    edges = np.arange(begin, end + 1, BIN_S * 1000, dtype=np.int64)
    threshold = THRESHOLD if threshold is None else threshold
    if len(edges) < 2:
        return [StationCuts([], []) for _ in telemetry.line.stations]
    line_cuts = line_segment(line_features(spans, telemetry, edges))
    out = []
    for j in range(len(telemetry.line.stations)):
        seconds, units, events = station_bins(spans, telemetry, j, edges)
        pace_cols, fail_cols = [PACE, SETUP_RATE], [DOWN_RATE, REPAIR_LOG]
        pace = set(segment(seconds[:, pace_cols], units[:, pace_cols], events[:, pace_cols], threshold))
        s, u, e = seconds[:, fail_cols], units[:, fail_cols], events[:, fail_cols]
        failures = set(segment(s, u, e, threshold, FAILURE_MIN_INTERVAL))
        prefix = prefix_sums(s, u, e)
        for c in line_cuts:
            # The station's failure features before and after the line's change, over LOCAL_SPANS
            # bins either side (a repair law that changes back later is a step within some span).
            if c not in failures and max(_stat_at(prefix, max(c - w, 0), min(c + w, len(s)), c)
                                         for w in LOCAL_SPANS) > LOCAL_THRESHOLD:
                failures.add(c)
        out.append(StationCuts([int(edges[i]) for i in sorted(pace | set(line_cuts))],
                               [int(edges[i]) for i in sorted(failures)]))
    return out


def change_points(spans: StateSpans, telemetry: LineTelemetry, begin_ms: int | None = None,
                  end_ms: int | None = None, threshold: float | None = None) -> list[int]:
    """Times (ms) at which some station's behaviour changes, in order (the union over stations)."""
    cuts = station_change_points(spans, telemetry, begin_ms, end_ms, threshold)
    return sorted({c for own in cuts for c in (*own.pace, *own.failures)})
