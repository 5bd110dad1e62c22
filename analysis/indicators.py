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

from dataclasses import asdict, dataclass

import numpy as np

from analysis.states import DEFAULT_MAX_GAP_MS
from analysis.targets import Decomposition
from analysis.telemetry import STATE_CODE, UNKNOWN, LineTelemetry, StationSeries
from shopfloor.contract import (
    ACTIVE_STATES,
    INDICATOR_MEASUREMENT,
    STATES,
    STATION_MEASUREMENT,
    line_protocol,
)
from shopfloor.errors import ShopfloorError
from shopfloor.plant import Line
from shopfloor.store import Store, quote_ident, quote_string

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
    """The samples in [start, end) plus the one before start (its counter is the baseline)."""
    first = max(int(np.searchsorted(series.ts, start_ms, side="left")) - 1, 0)
    last = int(np.searchsorted(series.ts, end_ms, side="left"))
    part = slice(first, last)
    return StationSeries(series.ts[part], series.count[part], series.queue[part], series.scrap[part],
                         series.state[part])


def with_states(series: StationSeries, state: np.ndarray) -> StationSeries:
    return StationSeries(series.ts, series.count, series.queue, series.scrap, state.astype(np.int8))


# --- counters and states ----------------------------------------------------------------------------


def increments(counter: np.ndarray) -> np.ndarray:
    """Units added between consecutive samples; a reset to a smaller value counts from 0."""
    step = np.diff(counter)
    return np.where(step < 0, counter[1:], step)


def units_between(series: StationSeries, start_ms: int, end_ms: int, *, good: bool = False) -> int:
    """Units the station completed in [start, end): increments shown by samples inside the window."""
    added = increments(series.count - series.scrap if good else series.count)
    inside = (series.ts[1:] >= start_ms) & (series.ts[1:] < end_ms)
    return int(added[inside].sum())


def scrap_between(series: StationSeries, start_ms: int, end_ms: int) -> int:
    added = increments(series.scrap)
    inside = (series.ts[1:] >= start_ms) & (series.ts[1:] < end_ms)
    return int(added[inside].sum())


def units_per_bucket(series: StationSeries, edges: np.ndarray, *, good: bool = True) -> np.ndarray:
    """Units completed in each bucket [edges[i], edges[i+1]) (hour-by-hour output)."""
    added = increments(series.count - series.scrap if good else series.count)
    index = np.searchsorted(edges, series.ts[1:], side="right") - 1
    keep = (index >= 0) & (index < len(edges) - 1)
    return np.bincount(index[keep], weights=added[keep], minlength=len(edges) - 1).round().astype(np.int64)


def holding_ms(series: StationSeries, start_ms: int, end_ms: int) -> np.ndarray:
    """How long each sample's state holds inside [start, end): until the next sample, except across a
    gap longer than the detector's limit (an agent away), where it holds one usual interval."""
    if len(series) == 0:
        return np.zeros(0, dtype=np.int64)
    gaps = np.diff(series.ts)
    step = int(np.median(gaps)) if len(gaps) else 0
    gaps = np.append(gaps, step)
    stop = series.ts + np.where(gaps <= max(DEFAULT_MAX_GAP_MS, step), gaps, step)
    return np.clip(np.minimum(stop, end_ms) - np.maximum(series.ts, start_ms), 0, None)


def state_ms(series: StationSeries, start_ms: int, end_ms: int) -> dict[str, int]:
    """Milliseconds spent in each state inside [start, end) (states must be known: see infer_states)."""
    held = holding_ms(series, start_ms, end_ms)
    known = series.state != MISSING
    totals = np.bincount(series.state[known].astype(np.int64), weights=held[known], minlength=len(STATES))
    return {state: int(totals[code]) for state, code in CODE.items()}


def infer_states(telemetry: Telemetry, line: Line) -> Telemetry:
    """Fill missing states from the queues: empty input queue -> starved; the next station's input
    buffer at capacity -> blocked; otherwise working."""
    filled = {}
    stations = [station for station in line.stations if station.id in telemetry]
    for position, station in enumerate(stations):
        series = telemetry[station.id]
        missing = series.state == MISSING
        if not missing.any():
            filled[station.id] = series
            continue
        guess = np.where(series.queue == 0, STARVED, WORKING).astype(np.int8)
        if position + 1 < len(stations):
            after, capacity = telemetry[stations[position + 1].id], stations[position + 1].buffer
            if len(after):
                latest = np.clip(np.searchsorted(after.ts, series.ts, side="right") - 1, 0, None)
                guess = np.where(after.queue[latest] >= capacity, BLOCKED, guess).astype(np.int8)
        filled[station.id] = with_states(series, np.where(missing, guess, series.state))
    return {**telemetry, **filled}


def active_share(series: StationSeries, start_ms: int, end_ms: int) -> float:
    spent = state_ms(series, start_ms, end_ms)
    planned = sum(spent.values()) - spent["idle"]
    return sum(spent[s] for s in ACTIVE_STATES) / planned if planned else 0.0


def likely_constraint(telemetry: Telemetry, line: Line, start_ms: int, end_ms: int) -> str:
    """The station active for the largest share of planned time (Roser's average active duration
    in its simplest form); the detector in analysis/ gives the momentary view."""
    shares = {station.id: active_share(telemetry[station.id], start_ms, end_ms)
              for station in line.stations if station.id in telemetry}
    if not shares:
        raise NoTelemetry(f"no telemetry of line {line.id} between {start_ms} and {end_ms}")
    return max(shares, key=lambda station: shares[station])


# --- the indicators ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Oee:
    availability: float
    performance: float
    quality: float

    @property
    def oee(self) -> float:
        return self.availability * self.performance * self.quality

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "oee": self.oee}


def station_oee(series: StationSeries, ideal_cycle_s: float, start_ms: int, end_ms: int) -> Oee:
    spent = state_ms(series, start_ms, end_ms)
    planned = sum(spent.values()) - spent["idle"]
    units = units_between(series, start_ms, end_ms)
    good = units_between(series, start_ms, end_ms, good=True)
    working = spent["working"]
    return Oee(availability=working / planned if planned else 0.0,
               performance=ideal_cycle_s * 1000 * units / working if working else 0.0,
               quality=good / units if units else 1.0)


def line_oee(telemetry: Telemetry, line: Line, constraint: str, start_ms: int, end_ms: int) -> Oee:
    """The line's OEE seen through its constraint: see the module docstring for the split."""
    spent = state_ms(telemetry[constraint], start_ms, end_ms)
    planned, working = sum(spent.values()) - spent["idle"], spent["working"]
    last = telemetry[line.stations[-1].id]
    good = units_between(last, start_ms, end_ms, good=True)
    finished = units_between(last, start_ms, end_ms) + sum(
        scrap_between(telemetry[s.id], start_ms, end_ms) for s in line.stations[:-1] if s.id in telemetry)
    ideal_s = max(station.ideal_cycle_s for station in line.stations)
    return Oee(availability=working / planned if planned else 0.0,
               performance=ideal_s * 1000 * finished / working if working else 0.0,
               quality=good / finished if finished else 1.0)


def scrap_rate(telemetry: Telemetry, line: Line, start_ms: int, end_ms: int) -> float:
    """Units scrapped anywhere on the line over all units finished or scrapped."""
    last = telemetry[line.stations[-1].id]
    scrapped = sum(scrap_between(telemetry[station.id], start_ms, end_ms)
                   for station in line.stations if station.id in telemetry)
    finished = units_between(last, start_ms, end_ms, good=True) + scrapped
    return scrapped / finished if finished else 0.0


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
                "constraint_oee": self.constraint_oee.as_dict(), "line_oee": self.line_oee.as_dict()}


def indicators(telemetry: Telemetry, line: Line, start_ms: int, end_ms: int, *, target: float = 0.0,
               constraint: str | None = None) -> Indicators:
    """The seven leading indicators of `line` over [start, end); `target` = units due in the window."""
    missing = [station.id for station in line.stations if not len(telemetry.get(station.id, ()))]
    if missing:
        raise NoTelemetry(f"no telemetry of station {missing[0]} on line {line.id}: is its agent running?")
    telemetry = infer_states({s: window(series, start_ms, end_ms) for s, series in telemetry.items()}, line)
    constraint = constraint or likely_constraint(telemetry, line, start_ms, end_ms)
    stations = {station.id: station for station in line.stations}
    if constraint not in stations:
        raise NoTelemetry(f"constraint {constraint!r} is not a station of line {line.id}")
    series = telemetry[constraint]
    spent = state_ms(series, start_ms, end_ms)
    planned = sum(spent.values()) - spent["idle"]
    fill, empty = buffer_fill(series, stations[constraint].buffer, start_ms, end_ms)
    return Indicators(
        start_ms=start_ms, end_ms=end_ms, constraint=constraint,
        output=units_between(telemetry[line.stations[-1].id], start_ms, end_ms, good=True), target=target,
        constraint_uptime=1 - spent["down"] / planned if planned else 0.0,
        constraint_active_share=sum(spent[s] for s in ACTIVE_STATES) / planned if planned else 0.0,
        buffer_health=fill, buffer_empty_share=empty,
        constraint_oee=station_oee(series, stations[constraint].ideal_cycle_s, start_ms, end_ms),
        line_oee=line_oee(telemetry, line, constraint, start_ms, end_ms),
        scrap_rate=scrap_rate(telemetry, line, start_ms, end_ms))


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


@dataclass(frozen=True, slots=True)
class ToDate:
    """A month or quarter so far: delivered against what was due, and where the run rate ends up."""

    grain: str
    start_ms: int
    end_ms: int
    actual: int
    due: float
    target: int
    forecast: float | None

    @property
    def gap(self) -> float:
        return self.actual - self.due

    def to_json(self) -> dict:
        return {"grain": self.grain, "start": self.start_ms, "end": self.end_ms, "actual": self.actual,
                "due": round(self.due, 3), "target": self.target, "gap": round(self.gap, 3),
                "forecast": None if self.forecast is None else round(self.forecast, 1)}


def to_date(targets: Decomposition, grain: str, now_ms: int, actual: int) -> ToDate:
    """Month or quarter to date; forecast = actual + actual per planned hour so far x planned hours left."""
    start, end = targets.period_containing(grain, now_ms)
    elapsed = targets.production_ms_between(start, now_ms)
    remaining = targets.production_ms_between(now_ms, end)
    forecast = actual + actual / elapsed * remaining if elapsed else None
    return ToDate(grain, start, end, actual, targets.due_between(start, now_ms),
                  int(round(targets.due_between(start, end))), forecast)


def read_line_output(store: Store, plant: str, line: Line, start_ms: int, end_ms: int) -> int:
    """Good units that left the line in [start, end), summed inside InfluxDB (no raw rows travel).

    The differences start from the last sample up to an hour before `start`, so the first interval
    counts; a counter reset loses the units of its interval (non_negative_difference).
    """
    last = line.stations[-1].id
    where = (f"\"plant\" = {quote_string(plant)} AND \"line\" = {quote_string(line.id)} AND "
             f"\"station\" = {quote_string(last)}")
    window = f"time >= {int(start_ms) - HOUR_MS}ms AND time < {int(end_ms)}ms"
    inner = (f"SELECT non_negative_difference(\"count\") AS dc, non_negative_difference(\"scrap\") AS ds "
             f"FROM {quote_ident(STATION_MEASUREMENT)} WHERE {where} AND {window}")
    rows = store.query(f"SELECT sum(dc) AS units, sum(ds) AS scrapped FROM ({inner}) "
                       f"WHERE time >= {int(start_ms)}ms").rows()
    if not rows:
        return 0
    return int((rows[0]["units"] or 0) - (rows[0]["scrapped"] or 0))


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
