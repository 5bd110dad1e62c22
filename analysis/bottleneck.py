"""The bottleneck timeline of a line: per window, each station's share as bottleneck, and the answer.

Why: the ops director asks "which station limits the line?" per hour or per shift, not per moment.
The active period method (analysis/apm.py) gives momentary sole and shifting bottlenecks; a window's
share of a station is the time it was (sole or shifting) bottleneck in the window, over the window's
observed time. A second, independent method, the turning-point (arrow) rule on blockage and
starvation, is stronger where the line is balanced and the active periods of several stations are
about as long; `METHODS` lists the ways the window's answer can be formed, and `DEFAULT_METHOD` is the
one chosen by measurement against the simulator's ground truth (bench/README.md has the numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis.apm import Momentary, Periods, momentary_bottlenecks
from analysis.calls import Call, call_fields, call_of
from analysis.states import StateSpans
from analysis.telemetry import BLOCKED, STARVED, LineTelemetry

METHODS = ("apm", "turning-point", "combined", "crn")
SPAN_METHODS = ("apm", "turning-point", "combined")  # those that need only state spans (the live loop's)
# The default of callers that have only state spans (the huddle page's fallback when no live answer is
# stored; the span part of a live `crn` tick, analysis/live.py SPAN_FOR_CRN).
DEFAULT_METHOD = "combined"
# The default of `shopfloor analyze bottleneck`, of the live loop (analysis/live.py LiveConfig) and of
# the losses' constraint timeline: `crn` (analysis/constraint.py) won on the random family's `tune`
# lines in every cell (bench/README.md); scored on `test` only afterwards.
ANALYZE_DEFAULT_METHOD = "crn"
# `combined` takes the APM answer when it is decisive (its station leads the runner-up by at least this
# share of the window), else the turning-point rule's. Chosen over 0.1-1.0 on the scenario library
# (5 seeds); with 10 seeds, 30 min windows and states (bench/README.md) it agrees 94.4 % in clear
# periods and 87.5 % in balanced ones (lenient rule; chance 75 %), against 94.2 % / 75.0 % for APM
# alone and 94.0 % / 88.8 % for the turning point alone.
BALANCED_MARGIN = 0.9
DEFAULT_MEMORY_S = 0.0  # the answer of a window is judged on at least this much trailing time


@dataclass(slots=True)
class Window:
    """One window of the timeline. `shares` covers every station of the line, in flow order."""

    start: int
    end: int
    bottleneck: str | None
    shares: dict[str, float]
    shifting: list[str]
    sole: dict[str, float] = field(default_factory=dict)
    blocked: dict[str, float] = field(default_factory=dict)
    starved: dict[str, float] = field(default_factory=dict)
    runner_up: str | None = None
    margin: float = 0.0
    observed_ms: int = 0
    confidence: float | None = None
    method: str = DEFAULT_METHOD
    within_noise: bool = False

    def contract(self) -> dict:
        """The window as `analyze bottleneck --json` prints it (docs/DESIGN.md §7)."""
        return {"start": self.start, "end": self.end, "bottleneck": self.bottleneck,
                "shares": self.shares, "shifting": self.shifting, "runner_up": self.runner_up,
                "margin": self.margin, "confidence": self.confidence, "method": self.method,
                **call_fields(self.call)}

    @property
    def call(self) -> Call | None:
        """How often an answer like this one names the true constraint (analysis/calls.py)."""
        return call_of(self.confidence) if self.bottleneck else None


@dataclass(slots=True)
class Timeline:
    line: str
    method: str
    windows: list[Window]
    momentary: Momentary
    stations: list[str]

    def contract(self) -> dict:
        return {"line": self.line, "method": self.method, "windows": [w.contract() for w in self.windows]}


def union(periods: Periods, n_stations: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per station, its intervals merged into sorted, non-overlapping ones."""
    merged = []
    for s in range(n_stations):
        mine = periods.take(np.flatnonzero(periods.station == s))
        order = np.argsort(mine.start, kind="stable")
        start, stop = mine.start[order], mine.stop[order]
        if len(start) == 0:
            merged.append((start, stop))
            continue
        reach = np.maximum.accumulate(stop)
        new = np.concatenate([[True], start[1:] > reach[:-1]])
        group = np.cumsum(new) - 1
        first = np.flatnonzero(new)
        ends = np.zeros(len(first), dtype=np.int64)
        np.maximum.at(ends, group, stop)
        merged.append((start[first], ends))
    return merged


def covered_until(start: np.ndarray, stop: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Total length of sorted non-overlapping intervals lying before each edge."""
    if len(start) == 0:
        return np.zeros(len(edges), dtype=np.int64)
    length = stop - start
    before = np.concatenate([[0], np.cumsum(length)])
    k = np.searchsorted(start, edges, side="right")
    last = np.maximum(k - 1, 0)
    partial = np.where(k > 0, np.clip(edges - start[last], 0, length[last]), 0)
    return before[last] * (k > 0) + partial


def per_window(periods: Periods, n_stations: int, edges: np.ndarray) -> np.ndarray:
    """(stations x windows) time each station spends in `periods` within each window, in ms."""
    out = np.zeros((n_stations, len(edges) - 1), dtype=np.int64)
    for s, (start, stop) in enumerate(union(periods, n_stations)):
        out[s] = np.diff(covered_until(start, stop, edges))
    return out


def window_edges(begin_ms: int, end_ms: int, window_s: float) -> np.ndarray:
    """Window edges aligned to the epoch (like InfluxQL's GROUP BY time()), covering the data."""
    width = int(round(window_s * 1000))
    if width <= 0:
        raise ValueError("the window must be longer than 0 s")
    first = begin_ms // width * width
    last = -(-end_ms // width) * width
    return np.arange(first, max(last, first + width) + 1, width, dtype=np.int64)


def turning_point(blocked: np.ndarray, starved: np.ndarray) -> int | None:
    """The arrow rule (Kuo, Lim and Meerkov; Li's turning point) on one window's fractions.

    Between stations i and i+1 the arrow points downstream when i is blocked more than i+1 is starved
    (the constraint is further down), else upstream. Stations no arrow leaves are candidates; the one
    with the largest severity |ST(i+1) - BL(i)| + |BL(i-1) - ST(i)| is the bottleneck.
    """
    n = len(blocked)
    if n == 1:
        return 0
    if not (blocked.any() or starved.any()):
        return None  # no station waited on another: the rule has no evidence to point with
    downstream = blocked[:-1] > starved[1:]  # arrow between i and i+1 points to i+1
    candidates = []
    for i in range(n):
        leaves_right = i < n - 1 and downstream[i]
        leaves_left = i > 0 and not downstream[i - 1]
        if not leaves_left and not leaves_right:
            candidates.append(i)
    if not candidates:
        return None
    severity = [(abs(starved[i + 1] - blocked[i]) if i < n - 1 else 0.0)
                + (abs(blocked[i - 1] - starved[i]) if i > 0 else 0.0) for i in candidates]
    return candidates[int(np.argmax(severity))]


def _trailing(values: np.ndarray, windows: int) -> np.ndarray:
    """Sum over each window and the `windows - 1` before it (along the last axis)."""
    if windows <= 1:
        return values
    total = np.cumsum(values, axis=-1)
    shifted = np.zeros_like(total)
    shifted[..., windows:] = total[..., :-windows]
    return total - shifted


def analyze(spans: StateSpans, stations: list[str], line_id: str, window_s: float,
            method: str = DEFAULT_METHOD, memory_s: float | None = None,
            telemetry: LineTelemetry | None = None, ahead_s: float | None = None) -> Timeline:
    """The bottleneck timeline of one line from its state spans, in windows of `window_s` seconds.

    Each window's `shares` are its own; its `bottleneck` is judged on the trailing `memory_s` (default
    DEFAULT_MEMORY_S, at least the window): a constraint that shows itself in bursts (a failing robot)
    stays named between them, at the price of a lag of about half the memory after a real move.
    Method `crn` (analysis/constraint.py) needs the `telemetry` too: it fits the stations and simulates;
    `ahead_s` sets how far past a window's end its fit may reach (default AHEAD_S; 0: as live, to its end).
    """
    if method == "crn" and telemetry is None:
        raise ValueError("method crn needs the line's telemetry (counts), not only its state spans")
    memory_s = DEFAULT_MEMORY_S if memory_s is None else memory_s
    depth = max(1, int(round(max(memory_s, window_s) / window_s)))
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    n = len(stations)
    momentary = momentary_bottlenecks(spans.active(), n)
    edges = window_edges(spans.begin_ms, spans.end_ms, window_s)
    observed = np.diff(np.clip(edges, spans.begin_ms, spans.end_ms))
    both = Periods(np.concatenate([momentary.sole.station, momentary.shifting.station]),
                   np.concatenate([momentary.sole.start, momentary.shifting.start]),
                   np.concatenate([momentary.sole.stop, momentary.shifting.stop]))
    denominator = np.maximum(observed, 1)
    shares_ms = per_window(both, n, edges)
    blocked_ms = per_window(spans.periods((BLOCKED,)), n, edges)
    starved_ms = per_window(spans.periods((STARVED,)), n, edges)
    shares = shares_ms / denominator
    sole = per_window(momentary.sole, n, edges) / denominator
    shifting = per_window(momentary.shifting, n, edges) / denominator
    blocked = blocked_ms / denominator
    starved = starved_ms / denominator
    # What the answer is judged on: the trailing memory, in the same units (share of observed time).
    memory = np.maximum(_trailing(observed, depth), 1)
    judged = _trailing(shares_ms, depth) / memory
    judged_blocked = _trailing(blocked_ms, depth) / memory
    judged_starved = _trailing(starved_ms, depth) / memory
    windows = []
    for w in np.flatnonzero(observed > 0).tolist():
        column = judged[:, w]
        ranked = np.argsort(-column, kind="stable")
        best, second = int(ranked[0]), (int(ranked[1]) if n > 1 else None)
        margin = float(column[best] - (column[second] if second is not None else 0.0))
        pick: int | None = best if column[best] > 0 else None
        arrow = turning_point(judged_blocked[:, w], judged_starved[:, w])
        if method == "turning-point" or (method == "combined" and margin < BALANCED_MARGIN):
            pick = arrow if arrow is not None else pick
        windows.append(Window(
            start=int(edges[w]), end=int(edges[w + 1]),
            bottleneck=stations[pick] if pick is not None else None,
            shares={s: round(float(shares[i, w]), 4) for i, s in enumerate(stations)},
            shifting=[s for i, s in enumerate(stations) if shifting[i, w] > 0],
            sole={s: round(float(sole[i, w]), 4) for i, s in enumerate(stations)},
            blocked={s: round(float(blocked[i, w]), 4) for i, s in enumerate(stations)},
            starved={s: round(float(starved[i, w]), 4) for i, s in enumerate(stations)},
            runner_up=stations[second] if second is not None and column[second] > 0 else None,
            margin=round(margin, 4), observed_ms=int(observed[w]), method=method))
    if method == "crn":
        from analysis.constraint import by_simulation

        by_simulation(windows, spans, telemetry, **({} if ahead_s is None else {"ahead_s": ahead_s}))
    return Timeline(line_id, method, windows, momentary, stations)
