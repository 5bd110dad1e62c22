"""Losses at the constraint: why it did not produce, in minutes, units and money (issue 14).

Why at the constraint only: a minute the constraint does not produce is a minute of the whole line
lost; a minute lost anywhere else costs nothing unless it starves or blocks the constraint. So for a
period this walks the detector's constraint timeline (analysis.bottleneck windows, or the stored ones
of analysis/live.py) and classifies every moment the constraint of that moment did not work:
- its own stops (`down`, `setup`, `idle`), by the stop's reason; a stop without one is `unassigned`;
  a supervisor's correction (measurement `reason_correction`) replaces the reason of the stop it
  falls in, and is counted as corrected;
- `starved`, naming the upstream station that starved it: walking upstream from the constraint, the
  nearest station that was not itself starved at that moment (down, in setup, idle, or working but
  not yet delivering after a stop);
- `blocked`, naming the downstream station: the nearest one downstream that was not itself blocked;
- no data: moments where the constraint's state is unknown (a gap in its telemetry);
- slow running: while working, the units below its demonstrated rate, turned into minutes.
The constraint's demonstrated rate is what it has shown it does while working: one unit per the median
unit's working time in the period (see `demonstrated_rate`). Lost units = lost minutes x that rate;
money = lost units x the plan's `throughput_per_unit`. States come from analysis/states.py, the one
owner of state (reported, or inferred where the stations send none); everything is evaluated on one
grid of `step_ms`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from analysis.states import StateSpans
from analysis.telemetry import BLOCKED, DOWN, IDLE, SETUP, STARVED, UNKNOWN, WORKING, LineTelemetry

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
STOP_CODES = {DOWN: "down", SETUP: "setup", IDLE: "idle"}
UNASSIGNED = "unassigned"
STOPPED_CODES = (DOWN, SETUP, IDLE, UNKNOWN)  # a neighbour in one of these is "not producing"


@dataclass(frozen=True, slots=True)
class ConstraintWindow:
    """One window of the constraint timeline (what analysis.bottleneck.Window and the store give)."""

    start: int
    end: int
    bottleneck: str | None


@dataclass(frozen=True, slots=True)
class ReasonMark:
    """A reason at a moment of a station: as a sample reported it, or as a supervisor corrected it."""

    station: str
    ts: int
    reason: str
    corrected_at: int | None = None  # set for a correction: when it was made (the latest one wins)
    by: str | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """One uninterrupted own stop of a station (a run of one stop state on the grid)."""

    station: str
    kind: str  # down | setup | idle
    start: int
    end: int
    reason: str | None
    reported: str | None  # what the station said, before any correction
    corrected: bool

    @property
    def minutes(self) -> float:
        return (self.end - self.start) / MINUTE_MS

    def to_json(self) -> dict:
        return {"station": self.station, "kind": self.kind, "start": self.start, "end": self.end,
                "minutes": round(self.minutes, 2), "reason": self.reason or UNASSIGNED,
                "reported": self.reported, "corrected": self.corrected}


@dataclass(slots=True)
class Cause:
    station: str  # the constraint at the time
    kind: str  # down | setup | idle | starved | blocked | slow | no_data
    detail: str  # the reason, or the station that starved or blocked it ("" for slow, no_data)
    ms: float = 0.0
    corrected_ms: float = 0.0

    @property
    def label(self) -> str:
        if self.kind in STOP_CODES.values():
            return f"{self.station} {self.kind}: {self.detail}"
        if self.kind in ("starved", "blocked"):
            return f"{self.station} {self.kind} by {self.detail}"
        return f"{self.station} {'slow running' if self.kind == 'slow' else 'no data'}"


@dataclass(slots=True)
class Losses:
    line: str
    start: int
    end: int
    constraint_ms: dict[str, int]  # time each station was the constraint in the period
    rates: dict[str, float | None]  # demonstrated units per working hour of each constraint station
    causes: list[Cause]  # largest first
    stops: list[Stop]  # the constraint's own stops while it was the constraint
    output_units: int
    target_units: int | None = None
    throughput_per_unit: float | None = None
    currency: str | None = None
    unattributed_ms: int = 0  # time of the period in no window with a constraint
    notes: list[str] = field(default_factory=list)

    def units_of(self, cause: Cause) -> float | None:
        rate = self.rates.get(cause.station)
        return None if rate is None else cause.ms / HOUR_MS * rate

    @property
    def gap_units(self) -> int | None:
        return None if self.target_units is None else self.target_units - self.output_units

    @property
    def constraint_hour_value(self) -> float | None:
        """Money one constraint hour makes: the demonstrated rate of the longest-serving constraint."""
        if self.throughput_per_unit is None or not self.constraint_ms:
            return None
        main = max(self.constraint_ms, key=self.constraint_ms.__getitem__)
        rate = self.rates.get(main)
        return None if rate is None else rate * self.throughput_per_unit

    def to_json(self) -> dict:
        gap = self.gap_units
        rows = []
        for cause in self.causes:
            units = self.units_of(cause)
            rows.append({
                "station": cause.station, "kind": cause.kind, "detail": cause.detail, "label": cause.label,
                "minutes": round(cause.ms / MINUTE_MS, 2),
                "corrected_minutes": round(cause.corrected_ms / MINUTE_MS, 2),
                "units": None if units is None else round(units, 1),
                "share_of_gap": None if units is None or not gap or gap <= 0 else round(units / gap, 4),
                "money": None if units is None or self.throughput_per_unit is None
                else round(units * self.throughput_per_unit, 2)})
        value = self.constraint_hour_value
        return {
            "line": self.line, "start": self.start, "end": self.end,
            "constraint_minutes": {s: round(ms / MINUTE_MS, 2) for s, ms in self.constraint_ms.items()},
            "rate_per_hour": {s: None if r is None else round(r, 2) for s, r in self.rates.items()},
            "output_units": self.output_units, "target_units": self.target_units, "gap_units": gap,
            "lost_minutes": round(sum(c.ms for c in self.causes) / MINUTE_MS, 2),
            "currency": self.currency, "throughput_per_unit": self.throughput_per_unit,
            "constraint_hour_value": None if value is None else round(value, 2),
            "lost_money": None if self.throughput_per_unit is None else round(sum(
                r["money"] for r in rows if r["money"] is not None), 2),
            "unattributed_minutes": round(self.unattributed_ms / MINUTE_MS, 2),
            "causes": rows,
            "unassigned_stops": [s.to_json() for s in self.stops if s.reason is None],
            "corrections": [s.to_json() for s in self.stops if s.corrected],
            "notes": self.notes,
        }


# --- the grid ---------------------------------------------------------------------------------------


def state_grid(spans: StateSpans, grid: np.ndarray) -> np.ndarray:
    """(stations x grid) state codes, UNKNOWN where a station's last sample no longer holds."""
    codes = np.full((len(spans.ts), len(grid)), UNKNOWN, dtype=np.int8)
    for i, (ts, code, hold) in enumerate(zip(spans.ts, spans.code, spans.hold, strict=True)):
        if len(ts) == 0:
            continue
        index = np.searchsorted(ts, grid, side="right") - 1
        at = np.maximum(index, 0)
        valid = (index >= 0) & (grid < ts[at] + hold[at])
        codes[i] = np.where(valid, code[at], UNKNOWN)
    return codes


def count_grid(telemetry: LineTelemetry, grid: np.ndarray) -> np.ndarray:
    """(stations x grid) completed units since the grid's start, resets of the counter undone."""
    out = np.zeros((len(telemetry.series), len(grid)), dtype=np.int64)
    for i, series in enumerate(telemetry.series):
        if len(series) == 0:
            continue
        step = np.diff(series.count)
        made = np.concatenate([[0], np.cumsum(np.where(step < 0, series.count[1:], step))])
        index = np.searchsorted(series.ts, grid, side="right") - 1
        value = np.where(index >= 0, made[np.maximum(index, 0)], 0)
        out[i] = value - value[0]
    return out


def constraint_index(windows: Sequence[ConstraintWindow], stations: list[str], grid: np.ndarray
                     ) -> np.ndarray:
    """Per grid point, the index of the station the timeline names the constraint there (-1: none)."""
    out = np.full(len(grid), -1, dtype=np.int64)
    position = {s: i for i, s in enumerate(stations)}
    for window in windows:
        if window.bottleneck not in position:
            continue
        first, last = np.searchsorted(grid, [window.start, window.end])
        out[first:last] = position[window.bottleneck]
    return out


def _nearest(codes: np.ndarray, passing: int, upstream: bool) -> np.ndarray:
    """(stations x grid): the nearest station at or up/downstream of each that is not in `passing`.

    Upstream, the first station never passes (a saturated source); downstream, the last one (free sink).
    """
    n, length = codes.shape
    out = np.zeros((n, length), dtype=np.int64)
    order = range(n) if upstream else range(n - 1, -1, -1)
    previous = None
    for k in order:
        stops_here = (codes[k] != passing) | (previous is None)
        out[k] = np.where(stops_here, k, previous if previous is not None else k)
        previous = out[k]
    return out


def _culprits(flagged: np.ndarray, neighbour: np.ndarray, codes: np.ndarray, n: int
              ) -> list[tuple[int, int]]:
    """(station, grid steps): each starved (or blocked) run of the constraint charged to one station.

    Moment by moment the nearest not-starved station upstream is named, but as a stop ends the first
    unit still travels through the stations between, which then work and are named for a few cycles.
    So a whole run goes to the station named most often while it was not producing (down, setup, idle
    or without data); only a run with no such moment (an upstream station merely slow) goes to the
    station named most often.
    """
    index = np.flatnonzero(flagged)
    if len(index) == 0:
        return []
    run = np.cumsum(np.diff(index, prepend=-2) != 1) - 1
    culprit = neighbour[index]
    stopped = np.isin(codes[culprit, index], STOPPED_CODES)
    key = run * n + culprit
    runs = int(run[-1]) + 1
    named = np.bincount(key, minlength=runs * n).reshape(runs, n)
    named_stopped = np.bincount(key, weights=stopped, minlength=runs * n).reshape(runs, n)
    choice = np.argmax(named_stopped * (len(index) + 1) + named, axis=1)
    length = np.bincount(run, minlength=runs)
    charged = np.bincount(choice, weights=length, minlength=n)
    return [(int(k), int(charged[k])) for k in np.flatnonzero(charged)]


# --- stops and reasons ------------------------------------------------------------------------------


def stop_runs(codes: np.ndarray, grid: np.ndarray, step_ms: int, stations: list[str]
              ) -> list[tuple[int, int, int, int, int]]:
    """Every own stop of every station: (station index, code, first grid index, last + 1, end ms)."""
    runs = []
    for i in range(codes.shape[0]):
        row = codes[i]
        stopped = np.isin(row, list(STOP_CODES))
        change = np.flatnonzero(np.diff(row) != 0) + 1
        bounds = np.concatenate([[0], change, [len(row)]])
        for first, last in zip(bounds[:-1], bounds[1:], strict=True):
            if stopped[first]:
                runs.append((i, int(row[first]), int(first), int(last), int(grid[last - 1]) + step_ms))
    return runs


def _reason_of(marks: list[ReasonMark], start: int, end: int) -> str | None:
    inside = [m for m in marks if start <= m.ts < end]
    return inside[-1].reason if inside else None


def find_stop(stops: Iterable[Stop], station: str, ts: int) -> Stop | None:
    """The stop of `station` that holds moment `ts`, if any (where a correction lands)."""
    for stop in stops:
        if stop.station == station and stop.start <= ts < stop.end:
            return stop
    return None


def build_stops(codes: np.ndarray, grid: np.ndarray, step_ms: int, stations: list[str],
                reported: Iterable[ReasonMark], corrections: Iterable[ReasonMark] = ()) -> list[Stop]:
    """Every own stop of every station on the grid with its reason: the reported one, or the latest
    correction that falls in it."""
    by_station: dict[str, list[ReasonMark]] = {s: [] for s in stations}
    for mark in sorted(reported, key=lambda m: m.ts):
        by_station.setdefault(mark.station, []).append(mark)
    fixes: dict[str, list[ReasonMark]] = {s: [] for s in stations}
    for mark in sorted(corrections, key=lambda m: (m.corrected_at or 0, m.ts)):
        fixes.setdefault(mark.station, []).append(mark)
    stops = []
    for i, code, first, _last, end in stop_runs(codes, grid, step_ms, stations):
        station, start = stations[i], int(grid[first])
        said = _reason_of(by_station[station], start, end)
        fixed = [m for m in fixes[station] if start <= m.ts < end]
        stops.append(Stop(station, STOP_CODES[code], start, end, fixed[-1].reason if fixed else said, said,
                          bool(fixed)))
    return stops


# --- the rate ---------------------------------------------------------------------------------------


def demonstrated_rate(working: np.ndarray, made: np.ndarray, step_ms: int) -> float | None:
    """Units per working hour at the median unit's working time (time worked since the unit before).

    Why the median unit: it is what the station shows it does while it works, untouched by a slow
    stretch shorter than half the period (that stretch is the slow-running loss, not the reference),
    and a unit cut by a stop, a starve or a block still counts only the time it was worked on.
    `working` flags the grid steps the station worked; `made` holds the units completed in each step.
    """
    done = np.flatnonzero(made > 0)
    if len(done) < 2:
        return None
    worked = np.cumsum(working) * step_ms
    per_unit = np.diff(worked[done]) / made[done[1:]]
    per_unit = np.repeat(per_unit, made[done[1:]])
    median = float(np.median(per_unit))
    return HOUR_MS / median if median > 0 else None


# --- the losses -------------------------------------------------------------------------------------


def good_output(telemetry: LineTelemetry, start: int, end: int) -> int:
    """Good units (count - scrap) the line's last station delivered in [start, end)."""
    series = telemetry.series[-1]
    inside = (series.ts >= start) & (series.ts < end)
    if inside.sum() < 2:
        return 0
    good = (series.count - series.scrap)[inside]
    step = np.diff(good)
    return int(np.where(step < 0, np.maximum(good[1:], 0), step).sum())


def losses(telemetry: LineTelemetry, spans: StateSpans, windows: Sequence[ConstraintWindow], start: int,
           end: int, *, reported: Iterable[ReasonMark] = (), corrections: Iterable[ReasonMark] = (),
           target_units: int | None = None, throughput_per_unit: float | None = None,
           currency: str | None = None, step_ms: int = 1000) -> Losses:
    """The constraint's losses in [start, end), Pareto order (largest first)."""
    stations = telemetry.stations
    grid = np.arange(start, end, step_ms, dtype=np.int64)
    if len(grid) == 0:
        raise ValueError(f"the period [{start}, {end}) is empty")
    codes = state_grid(spans, grid)
    counts = count_grid(telemetry, np.append(grid, end))
    made = np.diff(counts, axis=1)  # units each station completed in each grid step
    who = constraint_index(windows, stations, grid)
    covered = who >= 0
    up = _nearest(codes, STARVED, upstream=True)
    down = _nearest(codes, BLOCKED, upstream=False)
    columns = np.arange(len(grid))
    at = np.maximum(who, 0)
    state = codes[at, columns]
    all_stops = build_stops(codes, grid, step_ms, stations, reported, corrections)
    causes: dict[tuple[str, str, str], Cause] = {}

    def add(station: str, kind: str, detail: str, ms: float, corrected_ms: float = 0.0) -> None:
        cause = causes.setdefault((station, kind, detail), Cause(station, kind, detail))
        cause.ms += ms
        cause.corrected_ms += corrected_ms

    constraint_ms: dict[str, int] = {}
    rates: dict[str, float | None] = {}
    for c in np.unique(who[covered]).tolist():
        mine = who == c
        name = stations[c]
        constraint_ms[name] = int(mine.sum()) * step_ms
        working = codes[c] == WORKING
        rates[name] = rate = demonstrated_rate(working, made[c], step_ms)
        for code, kind in ((STARVED, "starved"), (BLOCKED, "blocked")):
            flagged = mine & (state == code)
            neighbour = (up[c - 1] if c > 0 else np.zeros(len(grid), np.int64)) if code == STARVED else \
                (down[c + 1] if c + 1 < len(stations) else np.full(len(grid), c))
            for k, n in _culprits(flagged, neighbour, codes, len(stations)):
                add(name, kind, stations[k], n * step_ms)
        unknown = int((mine & (state == UNKNOWN)).sum())
        if unknown:
            add(name, "no_data", "", unknown * step_ms)
        if rate:
            worked = mine & working
            slow_ms = worked.sum() * step_ms - made[c][mine].sum() / rate * HOUR_MS
            if slow_ms > 0:
                add(name, "slow", "", float(slow_ms))
    stops = []
    for stop in all_stops:
        c = stations.index(stop.station)
        first, last = np.searchsorted(grid, [stop.start, stop.end])
        while_constraint = int((who[first:last] == c).sum()) * step_ms
        if while_constraint:
            stops.append(stop)
            add(stop.station, stop.kind, stop.reason or UNASSIGNED, while_constraint,
                while_constraint if stop.corrected else 0)
    ranked = sorted(causes.values(), key=lambda cause: -cause.ms)
    notes = []
    if spans.inferred:
        notes.append("states inferred from counts and queues (the stations send none)")
    return Losses(telemetry.line.id, start, end, constraint_ms, rates, ranked, stops,
                  good_output(telemetry, start, end), target_units, throughput_per_unit, currency,
                  int((~covered).sum()) * step_ms, notes)
