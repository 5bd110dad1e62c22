"""The losses of a plan period read from InfluxDB, and supervisors' reason corrections written to it.

Why a module of its own: the command line (`shopfloor losses show`) and the API (analysis/losses_api.py)
must give the same figures, so both call `period_losses`; analysis/losses.py stays pure numpy. All
InfluxDB I/O goes through shopfloor/store.py. The constraint timeline is the one the live detector
stored (analysis/live.py, measurement `bottleneck`) where it covers the period, and the detector run
here with the live detector's settings (analysis.live.LiveConfig) where it does not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from analysis.bottleneck import analyze
from analysis.live import LiveConfig
from analysis.losses import (
    ConstraintWindow,
    Losses,
    ReasonMark,
    Stop,
    build_stops,
    find_stop,
    losses,
    state_grid,
)
from analysis.states import spans as state_spans
from analysis.targets import Period, decompose, to_local
from analysis.telemetry import TelemetryError, from_store
from shopfloor.contract import (
    BOTTLENECK_MEASUREMENT,
    IDENTIFIER,
    LOSSES_MEASUREMENT,
    REASON_MEASUREMENT,
    STATION_MEASUREMENT,
    ContractError,
    line_protocol,
)
from shopfloor.errors import ShopfloorError
from shopfloor.plan import Plan
from shopfloor.plant import Plant
from shopfloor.store import Store, quote_ident, quote_string

GRAINS = ("hour", "shift", "day", "month")
STEP_MS = 1000
# A correction is checked against the stops found in this much telemetry around its moment.
CORRECTION_CONTEXT_MS = 8 * 3_600_000


class NoStop(ShopfloorError, ValueError):
    """A correction for a moment at which the station was not stopped."""


@dataclass(frozen=True, slots=True)
class PeriodLosses:
    grain: str
    period: Period
    losses: Losses

    def to_json(self) -> dict:
        period = self.period
        return {"grain": self.grain, "period": {"label": period.label, "start": period.start.isoformat(),
                                                "end": period.end.isoformat(), "target_units": period.units},
                **self.losses.to_json()}


def plan_period(plan: Plan, line: str, grain: str, now_ms: int) -> Period:
    """The plan's period at `grain` that holds `now_ms` (for shifts: the last one begun by then)."""
    if grain not in GRAINS:
        raise ShopfloorError(f"unknown period {grain!r}: use one of {', '.join(GRAINS)}")
    year = to_local(now_ms, plan.calendar.zone).year
    periods = decompose(plan, line, year).periods(grain)
    begun = [p for p in periods if p.start.timestamp() * 1000 <= now_ms]
    if not begun:
        raise ShopfloorError(f"no {grain} of line {line} has begun by {to_local(now_ms, plan.calendar.zone)}")
    return begun[-1]


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def shifts_between(plan: Plan, line: str, start_ms: int, end_ms: int) -> list[Period]:
    """The plan's shifts of `line` that overlap [start_ms, end_ms), in time order (every plan year the
    range touches; a year the plan has no objective for is refused by the plan, in one line)."""
    zone = plan.calendar.zone
    years = range(to_local(start_ms, zone).year, to_local(end_ms - 1, zone).year + 1)
    return [shift for year in years for shift in decompose(plan, line, year).periods("shift")
            if _ms(shift.start) < end_ms and _ms(shift.end) > start_ms]


def stored_windows(store: Store, plant: str, line: str, start: int, end: int) -> list[ConstraintWindow]:
    """The live detector's stored timeline windows that overlap [start, end)."""
    rows = store.query(
        f'SELECT "bottleneck", "window_s" FROM {quote_ident(BOTTLENECK_MEASUREMENT)} WHERE plant = '
        f"{quote_string(plant)} AND line = {quote_string(line)} AND time >= {start - 3_600_000}ms "
        f"AND time < {end}ms").rows()
    return [ConstraintWindow(int(r["time"]), int(r["time"]) + int(r["window_s"]) * 1000, r["bottleneck"])
            for r in rows if r["bottleneck"] is not None and r["window_s"] and
            int(r["time"]) + int(r["window_s"]) * 1000 > start]


def _covers(windows: list[ConstraintWindow], start: int, end: int) -> bool:
    """Whether the windows leave no gap in [start, end) (then the detector need not run here)."""
    reach = start
    for window in sorted(windows, key=lambda w: w.start):
        if window.start > reach:
            break
        reach = max(reach, window.end)
    return reach >= end


def reported_reasons(store: Store, plant: str, line: str, start: int, end: int) -> list[ReasonMark]:
    rows = store.query(
        f'SELECT "reason", "station" FROM {quote_ident(STATION_MEASUREMENT)} WHERE plant = '
        f"{quote_string(plant)} AND line = {quote_string(line)} AND time >= {start}ms AND time < {end}ms"
    ).rows()
    return [ReasonMark(r["station"], int(r["time"]), r["reason"]) for r in rows if r["reason"]]


def corrections(store: Store, plant: str, line: str, start: int, end: int) -> list[ReasonMark]:
    rows = store.query(
        f'SELECT "reason", "by", "at", "station" FROM {quote_ident(REASON_MEASUREMENT)} WHERE plant = '
        f"{quote_string(plant)} AND line = {quote_string(line)} AND time >= {start}ms AND time < {end}ms"
    ).rows()
    return [ReasonMark(r["station"], int(r["time"]), r["reason"], int(r["at"] or 0), r["by"]) for r in rows
            if r["reason"]]


def window_losses(store: Store, plant: Plant, plan: Plan | None, line_id: str, start: int, end: int,
                  target_units: int | None = None) -> Losses:
    """The constraint's losses in [start, end) from the store."""
    telemetry = from_store(store, plant, line_id, start, end)
    spans = state_spans(telemetry)
    stored = stored_windows(store, plant.plant, line_id, start, end)
    windows = []
    if not _covers(stored, start, end):
        config = LiveConfig()  # the live detector's method (crn: it needs the telemetry) and windows
        timeline = analyze(spans, telemetry.stations, line_id, config.window_s, config.method,
                           config.memory_s, telemetry=telemetry)
        windows = [ConstraintWindow(w.start, w.end, w.bottleneck) for w in timeline.windows]
    windows += stored  # later windows win: stored ones
    money = plan.money_for(line_id) if plan is not None else None
    return losses(telemetry, spans, windows, start, end,
                  reported=reported_reasons(store, plant.plant, line_id, start, end),
                  corrections=corrections(store, plant.plant, line_id, start, end),
                  target_units=target_units, throughput_per_unit=money.throughput_per_unit if money else None,
                  currency=money.currency if money else None, step_ms=STEP_MS)


def period_losses(store: Store, plant: Plant, plan: Plan, line_id: str, grain: str, now_ms: int
                  ) -> PeriodLosses:
    """The losses of the plan period at `grain` that holds `now_ms`, up to `now_ms`."""
    plant.get_line(line_id)
    return losses_of(store, plant, plan, line_id, grain, plan_period(plan, line_id, grain, now_ms), now_ms)


def losses_of(store: Store, plant: Plant, plan: Plan, line_id: str, grain: str, period: Period, now_ms: int
              ) -> PeriodLosses:
    """The losses of one plan period up to `now_ms` (the whole period once it has ended)."""
    start, end = _ms(period.start), min(_ms(period.end), now_ms)
    due = period.units if end == _ms(period.end) else due_units(plan, line_id, start, end)
    return PeriodLosses(grain, period, window_losses(store, plant, plan, line_id, start, end, due))


def due_units(plan: Plan, line_id: str, start: int, end: int) -> int:
    """The target units due in [start, end): the plan's hour targets, the current hour pro rata."""
    year = to_local(start, plan.calendar.zone).year
    due = 0.0
    for hour in decompose(plan, line_id, year).periods("hour"):
        begin, until = _ms(hour.start), _ms(hour.end)
        overlap = min(until, end) - max(begin, start)
        if overlap > 0 and hour.units:
            due += hour.units * overlap / (until - begin)
    return round(due)


def stop_at(store: Store, plant: Plant, line_id: str, station: str, ts: int) -> Stop:
    """The own stop of `station` that holds moment `ts`, from the telemetry around it; else NoStop."""
    line = plant.get_line(line_id)
    if station not in line.station_ids:
        raise ShopfloorError(f"station {station!r} is not on line {line_id} ({', '.join(line.station_ids)})")
    try:
        telemetry = from_store(store, plant, line_id, ts - CORRECTION_CONTEXT_MS, ts + CORRECTION_CONTEXT_MS)
    except TelemetryError:
        raise NoStop(f"line {line_id} has no telemetry around {ts} ms: no stop to correct there") from None
    spans = state_spans(telemetry)
    grid = np.arange(telemetry.begin_ms, telemetry.end_ms + STEP_MS, STEP_MS, dtype=np.int64)
    stops = build_stops(state_grid(spans, grid), grid, STEP_MS, telemetry.stations, [])
    stop = find_stop(stops, station, ts)
    if stop is None:
        raise NoStop(f"station {station} was not down, in setup or idle at {ts} ms: nothing to correct")
    return stop


def correction_line(plant: str, line: str, station: str, ts: int, reason: str, by: str, at_ms: int) -> str:
    """The point of one correction in measurement `reason_correction` (docs/DESIGN.md §5)."""
    if not IDENTIFIER.fullmatch(reason):
        raise ContractError(f"reason {reason!r} is not an identifier: use 1-64 of A-Z a-z 0-9 _ -")
    return line_protocol(REASON_MEASUREMENT, {"plant": plant, "line": line, "station": station},
                         {"reason": reason, "by": by, "at": int(at_ms)}, ts)


def losses_lines(plant: str, result: PeriodLosses) -> list[str]:
    """The period's points of measurement `losses` (shopfloor/contract.py LOSSES_MEASUREMENT): one per
    cause and one for the period, all at its start, with the figures of `Losses.to_json` (the API's)."""
    figures = result.losses.to_json()
    ts, line = figures["start"], figures["line"]
    tags = {"plant": plant, "line": line, "grain": result.grain}
    period_end = _ms(result.period.end)  # so a range that starts inside the period finds it
    points = []
    for row in figures["causes"]:
        fields = {"minutes": float(row["minutes"]), "corrected_minutes": float(row["corrected_minutes"]),
                  "end": period_end}
        fields |= {key: float(row[key]) for key in ("units", "money") if row[key] is not None}
        cause = {**tags, "cause": row["label"], "station": row["station"], "kind": row["kind"]}
        points.append(line_protocol(LOSSES_MEASUREMENT, cause, fields, ts))
    units = [row["units"] for row in figures["causes"] if row["units"] is not None]
    total: dict = {"lost_minutes": float(figures["lost_minutes"]), "lost_units": float(sum(units)),
                   "output_units": int(figures["output_units"]), "through": int(figures["end"]),
                   "end": period_end}
    if figures["target_units"] is not None:
        total["target_units"] = int(figures["target_units"])
    if figures["causes"]:
        total["top_cause"] = figures["causes"][0]["label"]
    per_unit = figures["throughput_per_unit"]
    if per_unit is not None:
        total |= {"lost_money": float(figures["lost_money"]),
                  "output_money": float(round(figures["output_units"] * per_unit, 2))}
        if figures["target_units"] is not None:
            total["target_money"] = float(round(figures["target_units"] * per_unit, 2))
        if figures["constraint_hour_value"] is not None:
            total["constraint_hour_value"] = float(figures["constraint_hour_value"])
    points.append(line_protocol(LOSSES_MEASUREMENT, tags, total, ts))
    return points


def backfill_losses(store: Store, plant: Plant, plan: Plan, line_id: str, shifts: list[Period], now_ms: int,
                    advance: Callable[[], None] | None = None) -> list[PeriodLosses]:
    """Write the `losses` points of each shift that has begun by `now_ms` (a running one up to then), as
    the live loop would have: the shifts stored before the analysis service ran with --plan have none.
    A shift without telemetry is passed over (nothing was seen to be lost). `advance` is called per
    shift (a progress bar). Returns the shifts written."""
    written = []
    for shift in shifts:
        if _ms(shift.start) <= now_ms:
            try:
                result = losses_of(store, plant, plan, line_id, "shift", shift, now_ms)
            except TelemetryError:
                result = None
            if result is not None:
                write_losses(store, plant.plant, result)
                written.append(result)
        if advance is not None:
            advance()
    return written


def write_losses(store: Store, plant: str, result: PeriodLosses) -> int:
    """Write the period's `losses` points; a cause stored for the period before but gone now (a stop
    whose reason was corrected, a culprit renamed as more data came) is overwritten with 0, so sums over
    the measurement never count it twice. Returns the points written."""
    points = losses_lines(plant, result)
    start, line = result.losses.start, result.losses.line
    now = {row["label"] for row in result.losses.to_json()["causes"]}
    stored = store.query(
        f'SELECT "minutes" FROM {quote_ident(LOSSES_MEASUREMENT)} WHERE plant = {quote_string(plant)} AND '
        f"line = {quote_string(line)} AND grain = {quote_string(result.grain)} AND time = {start}ms "
        f'GROUP BY "cause", "station", "kind"')
    for series in stored.series:
        tags = series.tags
        if tags.get("cause") and tags["cause"] not in now:
            points.append(line_protocol(
                LOSSES_MEASUREMENT, {"plant": plant, "line": line, "grain": result.grain, **tags},
                {"minutes": 0.0, "corrected_minutes": 0.0, "units": 0.0, "money": 0.0}, start))
    store.write(points)
    return len(points)
