"""Leading indicators of a line: the few numbers the line controls that decide whether today's share
of the annual goal is met.

Why pure functions over numpy arrays: the same code serves a JSON Lines file (simulator output) and
the live store, both read by analysis.telemetry (`from_file`, `from_store`: sorted, duplicates
collapsed), and the tests' hand-made arrays; it stays fast for a day of 1 Hz samples of a line.

Conventions (docs/DESIGN.md §4):
- A sample's `state` holds from its `ts` until the next sample of that station; the last sample,
  and one before a gap longer than the detector's limit, holds for the median sample interval.
  Missing states are inferred per sample from the queues (input queue empty: starved; the next
  station's input buffer full: blocked; else working); the detector's finer inference
  (analysis.states) works on spans, these indicators on samples.
- `count` is a counter (a reset to a smaller value restarts from 0); units are attributed to the
  interval that ends at the sample that shows them. `scrap` counts units the station completed and
  scrapped, so its good units are count - scrap.
- Planned time is the station's non-idle time (`idle` = no production planned).
- OEE of a station = availability (working / planned) x performance (ideal cycle x units / working)
  x quality (good / units) = ideal cycle x good units / planned time.
- OEE of the line = the line's ideal cycle (its slowest station's) x good units leaving the line /
  the constraint's planned time; its availability is the constraint's (the line runs at the
  constraint's pace), its quality is good units over all units finished or scrapped anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.states import DEFAULT_MAX_GAP_MS, spans
from analysis.targets import Decomposition
from analysis.telemetry import STATE_CODE, UNKNOWN, LineTelemetry, StationSeries
from shopfloor.contract import (
    ACTIVE_STATES,
    INDICATOR_MEASUREMENT,
    STATES,
    line_protocol,
)
from shopfloor.counters import BASELINE_MS, increments
from shopfloor.errors import ShopfloorError
from shopfloor.plant import Line
from shopfloor.store import Store

MISSING = UNKNOWN
CODE = STATE_CODE
WORKING, SETUP, DOWN, STARVED, BLOCKED, IDLE = (CODE[s] for s in STATES)
HOUR_MS = 3_600_000

Telemetry = dict[str, StationSeries]


class NoTelemetry(ShopfloorError):
    """The window holds no samples of a station the indicator needs."""


def by_station(telemetry: LineTelemetry) -> Telemetry:
    """A line's telemetry (analysis.telemetry.from_file / from_store) keyed by station id."""
    return dict(zip(telemetry.stations, telemetry.series, strict=True))


def window(series: StationSeries, start_ms: int, end_ms: int) -> StationSeries:
    """The samples in [start, end) plus those of the hour before start, whose last one is the baseline
    of the window's first interval (shopfloor.counters.BASELINE_MS)."""
    first = int(np.searchsorted(series.ts, start_ms - BASELINE_MS, side="left"))
    last = int(np.searchsorted(series.ts, end_ms, side="left"))
    part = slice(first, last)
    return StationSeries(series.ts[part], series.count[part], series.queue[part], series.scrap[part],
                         series.state[part])


# --- counters (the rule is shopfloor.counters') ------------------------------------------------------


def _counted(series: StationSeries, values: np.ndarray, start_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Each interval's units and the time of the sample that shows them; an interval whose first sample
    is more than BASELINE_MS before `start` counts nothing (its units cannot be placed in time)."""
    if len(series) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    added = increments(values)
    return np.where(series.ts[:-1] >= start_ms - BASELINE_MS, added, 0), series.ts[1:]


def units_between(series: StationSeries, start_ms: int, end_ms: int, *, good: bool = False) -> int:
    """Units the station completed in [start, end) (good: less the units scrapped in it)."""
    added, at = _counted(series, series.count, start_ms)
    units = int(added[(at >= start_ms) & (at < end_ms)].sum())
    return units - scrap_between(series, start_ms, end_ms) if good else units


def scrap_between(series: StationSeries, start_ms: int, end_ms: int) -> int:
    added, at = _counted(series, series.scrap, start_ms)
    return int(added[(at >= start_ms) & (at < end_ms)].sum())


def units_per_bucket(series: StationSeries, edges: np.ndarray, *, good: bool = True) -> np.ndarray:
    """Units completed in each bucket [edges[i], edges[i+1]) (hour-by-hour output); they sum to
    units_between over [edges[0], edges[-1])."""
    buckets = len(edges) - 1
    total = np.zeros(max(buckets, 0), dtype=np.int64)
    for values, sign in ((series.count, 1), (series.scrap, -1)) if good else ((series.count, 1),):
        added, at = _counted(series, values, int(edges[0]) if len(edges) else 0)
        index = np.searchsorted(edges, at, side="right") - 1
        keep = (index >= 0) & (index < buckets)
        summed = np.bincount(index[keep], weights=added[keep], minlength=buckets)
        total += sign * summed.round().astype(np.int64)
    return total


# --- states (the detector's inference, analysis.states) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Spans:
    """One station's state spans from analysis.states: start, state code, how long it holds (ms)."""

    ts: np.ndarray
    code: np.ndarray
    hold: np.ndarray


def line_states(telemetry: Telemetry, line: Line) -> dict[str, Spans]:
    """Each station's states as the detector sees them: the reported ones where every sample has one,
    else inferred by WIP conservation (analysis.states.spans); never a second inference here."""
    empty = StationSeries(*(np.zeros(0, dtype=np.int64),) * 4, np.zeros(0, dtype=np.int8))
    series = [telemetry.get(station.id, empty) for station in line.stations]
    if not any(len(s) for s in series):
        raise NoTelemetry(f"no telemetry of line {line.id}")
    found = spans(LineTelemetry("", line, series))
    return {station.id: Spans(found.ts[i], found.code[i], found.hold[i])
            for i, station in enumerate(line.stations) if len(series[i])}


def state_ms(span: Spans, start_ms: int, end_ms: int) -> dict[str, int]:
    """Milliseconds spent in each state inside [start, end); unknown time counts in none."""
    held = np.clip(np.minimum(span.ts + span.hold, end_ms) - np.maximum(span.ts, start_ms), 0, None)
    known = span.code != MISSING
    totals = np.bincount(span.code[known].astype(np.int64), weights=held[known], minlength=len(STATES))
    return {state: int(totals[code]) for state, code in CODE.items()}


def active_share(span: Spans, start_ms: int, end_ms: int) -> float:
    spent = state_ms(span, start_ms, end_ms)
    planned = sum(spent.values()) - spent["idle"]
    return sum(spent[s] for s in ACTIVE_STATES) / planned if planned else 0.0


def likely_constraint(states: dict[str, Spans], line: Line, start_ms: int, end_ms: int) -> str:
    """The station active for the largest share of planned time (Roser's average active duration
    in its simplest form); the detector in analysis/ gives the momentary view."""
    shares = {station.id: active_share(states[station.id], start_ms, end_ms)
              for station in line.stations if station.id in states}
    if not shares:
        raise NoTelemetry(f"no telemetry of line {line.id} between {start_ms} and {end_ms}")
    return max(shares, key=lambda station: shares[station])


# --- the indicators ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Oee:
    """Each factor in [0, 1]. Figures the data cannot support (a cycle faster than the ideal one, more
    good units than units) are held at the bound and named in `problem` instead of printed as 234 %."""

    availability: float
    performance: float
    quality: float
    problem: str | None = None

    @property
    def oee(self) -> float:
        return self.availability * self.performance * self.quality

    def as_dict(self) -> dict[str, float | str | None]:
        return {"availability": self.availability, "performance": self.performance, "quality": self.quality,
                "oee": self.oee, "problem": self.problem}


def bounded_oee(who: str, ideal_cycle_s: float, units: int, good: int, planned_ms: int, working_ms: int
                ) -> Oee:
    """OEE from its counts, every factor held in [0, 1]; what was held, and why, goes into `problem`."""
    problems = []
    availability = working_ms / planned_ms if planned_ms else 0.0
    performance = ideal_cycle_s * 1000 * units / working_ms if working_ms else 0.0
    if performance > 1:
        problems.append(f"{who} made {units} units in {working_ms / 1000:.0f} s of working time, faster than "
                        f"its ideal cycle of {ideal_cycle_s:g} s ({performance:.0%}): check ideal_cycle_s "
                        f"in the plant file or the station's states")
    quality = good / units if units else 1.0
    if not 0 <= quality <= 1:
        problems.append(f"{who}: {good} good of {units} units (scrap of units made before the window)")
    return Oee(min(max(availability, 0.0), 1.0), min(max(performance, 0.0), 1.0), min(max(quality, 0.0), 1.0),
               "; ".join(problems) or None)


def holding_ms(series: StationSeries, start_ms: int, end_ms: int) -> np.ndarray:
    """How long each sample's queue reading holds inside [start, end): until the next sample, except
    across a gap longer than the detector's limit, where it holds one usual interval."""
    if len(series) == 0:
        return np.zeros(0, dtype=np.int64)
    gaps = np.diff(series.ts)
    step = int(np.median(gaps)) if len(gaps) else 0
    gaps = np.append(gaps, step)
    stop = series.ts + np.where(gaps <= max(DEFAULT_MAX_GAP_MS, step), gaps, step)
    return np.clip(np.minimum(stop, end_ms) - np.maximum(series.ts, start_ms), 0, None)


def station_oee(series: StationSeries, span: Spans, ideal_cycle_s: float, start_ms: int, end_ms: int,
                who: str = "the station") -> Oee:
    spent = state_ms(span, start_ms, end_ms)
    planned = sum(spent.values()) - spent["idle"]
    return bounded_oee(who, ideal_cycle_s, units_between(series, start_ms, end_ms),
                       units_between(series, start_ms, end_ms, good=True), planned, spent["working"])


def line_oee(telemetry: Telemetry, states: dict[str, Spans], line: Line, constraint: str, start_ms: int,
             end_ms: int, constraint_oee: Oee | None = None) -> Oee:
    """The line's OEE seen through its constraint (module docstring). It is never above the
    constraint's own: the line cannot finish more than its constraint lets through, so a higher figure
    is units drained from the buffers, held at the constraint's and named in `problem`."""
    spent = state_ms(states[constraint], start_ms, end_ms)
    planned, working = sum(spent.values()) - spent["idle"], spent["working"]
    last = telemetry[line.stations[-1].id]
    good = units_between(last, start_ms, end_ms, good=True)
    finished = units_between(last, start_ms, end_ms) + sum(
        scrap_between(telemetry[s.id], start_ms, end_ms) for s in line.stations[:-1] if s.id in telemetry)
    ideal_s = max(station.ideal_cycle_s for station in line.stations)
    result = bounded_oee(f"line {line.id}", ideal_s, finished, good, planned, working)
    if constraint_oee is None or result.oee <= constraint_oee.oee:
        return result
    factors = result.availability * result.quality
    held = constraint_oee.oee / factors if factors else 0.0
    note = (f"line OEE held at its constraint {constraint}'s ({constraint_oee.oee:.0%}): the line finished "
            f"more than its constraint let through (units drained from the buffers)")
    return Oee(result.availability, min(held, 1.0), result.quality,
               "; ".join(p for p in (result.problem, note) if p))


def scrap_rate(telemetry: Telemetry, line: Line, start_ms: int, end_ms: int) -> float:
    """Units scrapped anywhere on the line over all units finished or scrapped, in [0, 1]."""
    last = telemetry[line.stations[-1].id]
    scrapped = sum(scrap_between(telemetry[station.id], start_ms, end_ms)
                   for station in line.stations if station.id in telemetry)
    finished = units_between(last, start_ms, end_ms, good=True) + scrapped
    return min(max(scrapped / finished, 0.0), 1.0) if finished > 0 else 0.0


def buffer_fill(series: StationSeries, capacity: int, start_ms: int, end_ms: int) -> tuple[float, float]:
    """Time-weighted mean fill of the input buffer (0..1) and the share of time it was empty."""
    held = holding_ms(series, start_ms, end_ms)
    total = held.sum()
    if not total:
        return 0.0, 0.0
    fill = float((np.minimum(series.queue, capacity) * held).sum() / total / capacity) if capacity else 0.0
    return fill, float(held[series.queue == 0].sum() / total)


@dataclass(frozen=True, slots=True)
class Indicators:
    """The executive view of one line over one window: seven leading indicators, nothing more."""

    start_ms: int
    end_ms: int
    constraint: str
    output: int
    target: float
    constraint_uptime: float
    constraint_active_share: float
    buffer_health: float
    buffer_empty_share: float
    constraint_oee: Oee
    line_oee: Oee
    scrap_rate: float
    data_from_ms: int | None = None  # the line's first sample in the window: evidence starts there

    @property
    def pace(self) -> float | None:
        """Output over the target due in the window (1.0 = on plan)."""
        return self.output / self.target if self.target else None

    def executive(self) -> dict[str, float | int | str | None]:
        """At most seven numbers, in the order the huddle reads them."""
        return {"output_vs_target": self.pace, "constraint_uptime": self.constraint_uptime,
                "constraint_active_share": self.constraint_active_share, "buffer_health": self.buffer_health,
                "constraint_oee": self.constraint_oee.oee, "line_oee": self.line_oee.oee,
                "scrap_rate": self.scrap_rate}

    def to_json(self) -> dict:
        return {"start": self.start_ms, "end": self.end_ms, "constraint": self.constraint,
                "output": self.output, "target": round(self.target, 3), "executive": self.executive(),
                "buffer_empty_share": self.buffer_empty_share,
                "constraint_oee": self.constraint_oee.as_dict(), "line_oee": self.line_oee.as_dict(),
                "data_from": self.data_from_ms}


def indicators(telemetry: Telemetry, line: Line, start_ms: int, end_ms: int, *, target: float = 0.0,
               constraint: str | None = None) -> Indicators:
    """The seven leading indicators of `line` over [start, end); `target` = units due in the window."""
    missing = [station.id for station in line.stations if not len(telemetry.get(station.id, ()))]
    if missing:
        raise NoTelemetry(f"no telemetry of station {missing[0]} on line {line.id}: is its agent running?")
    telemetry = {s: window(series, start_ms, end_ms) for s, series in telemetry.items()}
    states = line_states(telemetry, line)
    constraint = constraint or likely_constraint(states, line, start_ms, end_ms)
    stations = {station.id: station for station in line.stations}
    if constraint not in stations:
        raise NoTelemetry(f"constraint {constraint!r} is not a station of line {line.id}")
    series = telemetry[constraint]
    spent = state_ms(states[constraint], start_ms, end_ms)
    planned = sum(spent.values()) - spent["idle"]
    fill, empty = buffer_fill(series, stations[constraint].buffer, start_ms, end_ms)
    constraint_oee = station_oee(series, states[constraint], stations[constraint].ideal_cycle_s, start_ms,
                                 end_ms, who=f"the constraint {constraint}")
    last = telemetry[line.stations[-1].id]
    seen = last.ts[(last.ts >= start_ms) & (last.ts < end_ms)]
    return Indicators(
        start_ms=start_ms, end_ms=end_ms, constraint=constraint,
        output=units_between(last, start_ms, end_ms, good=True), target=target,
        constraint_uptime=1 - spent["down"] / planned if planned else 0.0,
        constraint_active_share=sum(spent[s] for s in ACTIVE_STATES) / planned if planned else 0.0,
        buffer_health=fill, buffer_empty_share=empty,
        constraint_oee=constraint_oee,
        line_oee=line_oee(telemetry, states, line, constraint, start_ms, end_ms, constraint_oee),
        scrap_rate=scrap_rate(telemetry, line, start_ms, end_ms),
        data_from_ms=int(seen[0]) if len(seen) else None)


def line_output(telemetry: Telemetry, line: Line, edges: np.ndarray) -> np.ndarray:
    """Good units leaving the line in each bucket [edges[i], edges[i+1])."""
    last = telemetry.get(line.stations[-1].id)
    if last is None or not len(last):
        return np.zeros(len(edges) - 1, dtype=np.int64)
    return units_per_bucket(last, edges)


# --- against the plan -------------------------------------------------------------------------------


def hour_by_hour(telemetry: Telemetry, line: Line, targets: Decomposition, start_ms: int, end_ms: int
                 ) -> list[dict]:
    """Each clock hour of [start, end): good units out of the line against the hour's target; an hour
    still running at `end` is cut there, with its target pro rata."""
    edges, _ = targets.boundaries("hour")
    edges = edges[(edges >= start_ms) & (edges <= end_ms)]
    if len(edges) and edges[-1] < end_ms:
        edges = np.append(edges, end_ms)
    if len(edges) < 2:
        return []
    output = line_output(telemetry, line, edges)
    return [{"start": int(edges[i]), "end": int(edges[i + 1]), "output": int(output[i]),
             "target": round(targets.due_between(int(edges[i]), int(edges[i + 1])), 3)}
            for i in range(len(edges) - 1)]


MIN_EVIDENCE_MS = HOUR_MS  # a run rate (forecast) rests on at least an hour of planned production with data


@dataclass(frozen=True, slots=True)
class ToDate:
    """A month or quarter so far: delivered against what was due, and where the run rate ends up.

    `evidence_ms` is the planned production time the run rate rests on; below MIN_EVIDENCE_MS there is
    no forecast (None: "not enough data yet")."""

    grain: str
    start_ms: int
    end_ms: int
    actual: int
    due: float
    target: int
    forecast: float | None
    evidence_ms: int = 0

    @property
    def gap(self) -> float:
        return self.actual - self.due

    def to_json(self) -> dict:
        return {"grain": self.grain, "start": self.start_ms, "end": self.end_ms, "actual": self.actual,
                "due": round(self.due, 3), "target": self.target, "gap": round(self.gap, 3),
                "forecast": None if self.forecast is None else round(self.forecast, 1),
                "evidence_hours": round(self.evidence_ms / HOUR_MS, 2)}


def run_rate(targets: Decomposition, actual: int, since_ms: int, now_ms: int) -> tuple[float | None, int]:
    """Good units per planned production ms since `since_ms` (when the line's data began in the
    period), and the production time that rests on; the rate is None below MIN_EVIDENCE_MS."""
    elapsed = targets.production_ms_between(since_ms, now_ms) if since_ms < now_ms else 0
    return (actual / elapsed if elapsed >= MIN_EVIDENCE_MS else None), elapsed


def to_date(targets: Decomposition, grain: str, now_ms: int, actual: int, *, since_ms: int | None = None,
            rate: tuple[float | None, int] | None = None) -> ToDate:
    """Month or quarter to date; forecast = actual + run rate x planned time left in the period.

    The run rate is measured from `since_ms` (default: the period's start) unless one is given: the
    day report gives the month and the quarter the same rate (the quarter's, since the line's data
    began), so a quarter's forecast is never below the forecast of a month inside it.
    """
    start, end = targets.period_containing(grain, now_ms)
    if rate is None:
        rate = run_rate(targets, actual, max(start, since_ms or start), now_ms)
    per_ms, evidence = rate
    forecast = actual + per_ms * targets.production_ms_between(now_ms, end) if per_ms is not None else None
    return ToDate(grain, start, end, actual, targets.due_between(start, now_ms),
                  int(round(targets.due_between(start, end))), forecast, evidence)


def read_line_output(store: Store, plant: str, line: Line, start_ms: int, end_ms: int) -> int:
    """Good units that left the line in [start, end), summed inside InfluxDB by shopfloor.counters'
    rule (dashboards.queries, the boards' very query shape), so no raw rows travel."""
    from dashboards import queries

    rows = store.query(queries.good_units(plant, line.id, line.stations[-1].id, start_ms, end_ms)).rows()
    return int(round(rows[0]["good"] or 0)) if rows else 0


def read_data_start(store: Store, plant: str, line: Line, start_ms: int, end_ms: int) -> int | None:
    """When the line's last station first reported in [start, end): where its evidence begins."""
    from dashboards import queries

    rows = store.query(queries.first_sample(plant, line.id, line.stations[-1].id, start_ms, end_ms)).rows()
    return int(rows[0]["time"]) if rows else None


def indicator_lines(plant: str, line: str, result: Indicators, hours: list[dict], period: str = "day"
                    ) -> list[str]:
    """Measurement `indicator` (contract.INDICATOR_MEASUREMENT) for one window and its hours.

    The window's point: tags plant, line, period (`day` or `shift`); fields output (integer), target,
    pace (when a target is due), the seven executive indicators as floats, and constraint (string).
    Each hour's point: tags plant, line, period=`hour`; fields output (integer) and target (float).
    Timestamps are the window's or hour's start, so rewriting a day overwrites its points.
    """
    fields: dict[str, int | float | str] = {"output": result.output, "target": float(result.target),
                                            "constraint": result.constraint}
    fields.update({name: float(value) for name, value in result.executive().items()
                   if value is not None and name != "output_vs_target"})
    if result.pace is not None:
        fields["pace"] = float(result.pace)
    points = [line_protocol(INDICATOR_MEASUREMENT, {"plant": plant, "line": line, "period": period}, fields,
                            result.start_ms)]
    points += [line_protocol(INDICATOR_MEASUREMENT, {"plant": plant, "line": line, "period": "hour"},
                             {"output": hour["output"], "target": float(hour["target"])}, hour["start"])
               for hour in hours]
    return points
