"""One line's day against its plan: the glue that the `targets` commands and the API share.

Why a module of its own: the pure pieces (targets, indicators, feasibility, escalation) know nothing
of files, servers or time windows; this one picks the window in the plant's timezone, finds the
objective of that year, and puts the executive view together once, so the command line, the API
and the InfluxDB writer cannot disagree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace

from analysis.escalation import Escalator
from analysis.feasibility import Feasibility, WhatIf, assess, needed_rate
from analysis.indicators import (
    Indicators,
    Telemetry,
    ToDate,
    by_station,
    hour_by_hour,
    indicator_lines,
    indicators,
    read_data_start,
    read_line_output,
    run_rate,
    to_date,
    units_between,
)
from analysis.targets import Decomposition, decompose, local_ms, to_local
from analysis.telemetry import from_store
from shopfloor.counters import BASELINE_MS
from shopfloor.errors import ConfigError, ShopfloorError
from shopfloor.plan import Plan
from shopfloor.plant import Line, Plant
from shopfloor.store import Store


def day_window(plan: Plan, day: dt.date) -> tuple[int, int]:
    """[local midnight, next local midnight) of `day` in the plan's timezone, in ms (23 or 25 h on
    DST days)."""
    zone = plan.calendar.zone
    return local_ms(day, 0, zone), local_ms(day + dt.timedelta(days=1), 0, zone)


def targets_at(plan: Plan, line: str, moment_ms: int) -> Decomposition:
    """The line's decomposition for the plan year that holds `moment_ms` (local time)."""
    year = to_local(moment_ms, plan.calendar.zone).year
    return decompose(plan, line, year)


@dataclass(frozen=True)
class DayReport:
    """The huddle's view of a window: seven indicators, the hours, each planned shift in it (as far as
    it ran), month and quarter to date."""

    line: str
    indicators: Indicators
    hours: list[dict]
    shifts: list[tuple[str, Indicators]]
    month: ToDate
    quarter: ToDate

    def to_json(self) -> dict:
        return {"line": self.line, "indicators": self.indicators.to_json(), "hours": self.hours,
                "shifts": [{"shift": name, **result.to_json()} for name, result in self.shifts],
                "month_to_date": self.month.to_json(), "quarter_to_date": self.quarter.to_json()}

    def lines(self, plant: str) -> list[str]:
        """The day's, each shift's and each hour's points of measurement `indicator`."""
        points = indicator_lines(plant, self.line, self.indicators, self.hours, "day")
        for _, result in self.shifts:
            points += indicator_lines(plant, self.line, result, [], "shift")
        return points


def shift_indicators(targets: Decomposition, line: Line, telemetry: Telemetry, start_ms: int, end_ms: int,
                     constraint: str | None = None) -> list[tuple[str, Indicators]]:
    """Indicators of each planned shift that overlaps [start, end) and has output samples in it."""
    last = telemetry[line.stations[-1].id]
    shifts = []
    for occurrence in targets.occurrences:
        begin, until = max(occurrence.start_ms, start_ms), min(occurrence.end_ms, end_ms)
        if begin >= until or not targets.production_ms_between(begin, until):
            continue
        if not ((last.ts >= begin) & (last.ts < until)).any():
            continue
        name = f"{occurrence.day.isoformat()} {occurrence.name}"
        due = targets.due_between(begin, until)
        shifts.append((name, indicators(telemetry, line, begin, until, target=due, constraint=constraint)))
    return shifts


def day_report(plan: Plan, line: Line, telemetry: Telemetry, start_ms: int, end_ms: int, *,
               constraint: str | None = None, month_actual: int | None = None,
               quarter_actual: int | None = None, data_since_ms: int | None = None) -> DayReport:
    """Indicators of [start, end) against the plan; to-date figures up to `end`.

    The month and quarter actuals default to what `telemetry` shows since the period began, which is
    right when it covers the period (the store does); pass them when it does not, with
    `data_since_ms`, the line's first sample in the quarter. Both forecasts use one run rate, the
    quarter's since the line's data began, so they agree across grains.
    """
    if end_ms <= start_ms:
        raise ConfigError("the window is empty: its end must be after its start")
    targets = targets_at(plan, line.id, start_ms)
    now_ms = min(end_ms, targets.year_end_ms - 1)
    result = indicators(telemetry, line, start_ms, end_ms, target=targets.due_between(start_ms, end_ms),
                        constraint=constraint)
    last = telemetry[line.stations[-1].id]
    actuals = {}
    for grain, actual in (("month", month_actual), ("quarter", quarter_actual)):
        begin, _ = targets.period_containing(grain, now_ms)
        actuals[grain] = units_between(last, begin, now_ms, good=True) if actual is None else actual
    quarter_start, _ = targets.period_containing("quarter", now_ms)
    if data_since_ms is None:
        seen = last.ts[(last.ts >= quarter_start) & (last.ts < now_ms)]
        data_since_ms = int(seen[0]) if len(seen) else now_ms
    rate = run_rate(targets, actuals["quarter"], max(quarter_start, data_since_ms), now_ms)
    rollups = [to_date(targets, grain, now_ms, actuals[grain], rate=rate) for grain in ("month", "quarter")]
    return DayReport(line.id, result, hour_by_hour(telemetry, line, targets, start_ms, end_ms),
                     shift_indicators(targets, line, telemetry, start_ms, end_ms, constraint), *rollups)


def store_actuals(store: Store, plant: str, plan: Plan, line: Line, now_ms: int) -> tuple[int, int, int]:
    """Month and quarter to date good output of the line, summed inside InfluxDB, and when the line's
    data began in the quarter (now when it has none)."""
    targets = targets_at(plan, line.id, now_ms)
    actuals = []
    for grain in ("month", "quarter"):
        begin, _ = targets.period_containing(grain, now_ms)
        actuals.append(read_line_output(store, plant, line, begin, now_ms + 1))
    begin, _ = targets.period_containing("quarter", now_ms)
    since = read_data_start(store, plant, line, begin, now_ms + 1)
    return actuals[0], actuals[1], now_ms if since is None else since


def feasibility(plan: Plan, line: Line, telemetry: Telemetry, start_ms: int, end_ms: int, *,
                constraint: str | None = None, needed_per_hour: float | None = None,
                whatif: WhatIf | None = None) -> Feasibility:
    """The plan's remaining rate from `end` on against the constraint's capacity shown in [start, end);
    with a what-if and the line's throughput per unit, what elevating the constraint is worth in the
    month that holds `end` (issue 14)."""
    if needed_per_hour is None:
        targets = targets_at(plan, line.id, start_ms)
        needed_per_hour = needed_rate(targets, min(end_ms, targets.year_end_ms - 1))
    result = assess(telemetry, line, start_ms, end_ms, needed_per_hour=needed_per_hour,
                    reserve=plan.calendar.reserve, constraint=constraint, whatif=whatif)
    money = plan.money_for(line.id)
    if result.whatif_gain is None or money is None:
        return result
    targets = targets_at(plan, line.id, start_ms)  # the month's planned hours need the year's objective
    month = targets.period_containing("month", min(end_ms, targets.year_end_ms - 1))
    return replace(result, month_hours=targets.production_ms_between(*month) / 3_600_000,
                   throughput_per_unit=money.throughput_per_unit, currency=money.currency)


def stored_constraint(store: Store, plant: str, line: str, start_ms: int, end_ms: int) -> str | None:
    """The live detector's stored answer at the end of the window (analysis.live.live_constraint): the
    one constraint of the boards, the huddle and the alerts; None (then the indicators' own rule) when no
    live detector wrote for the line in the window."""
    from analysis.live import live_constraint

    return live_constraint(store, plant, line, start_ms, end_ms)


def stored_day_report(store: Store, plant: Plant, plan: Plan, line: Line, start_ms: int, end_ms: int, *,
                      constraint: str | None = None) -> DayReport:
    """The day report of [start, end) from InfluxDB: samples of the window, to-date sums in the store."""
    telemetry = by_station(from_store(store, plant, line.id, start_ms - BASELINE_MS, end_ms))
    constraint = constraint or stored_constraint(store, plant.plant, line.id, start_ms, end_ms)
    month_actual, quarter_actual, since = store_actuals(store, plant.plant, plan, line, end_ms - 1)
    return day_report(plan, line, telemetry, start_ms, end_ms, constraint=constraint,
                      month_actual=month_actual, quarter_actual=quarter_actual, data_since_ms=since)


def escalate(plan: Plan, report: DayReport, now_ms: int, send: Callable[[dict], bool | None]) -> list[dict]:
    """Run the escalation checks on the day so far and hand new alerts to `send` (AlertSink.send)."""
    result = report.indicators
    targets = targets_at(plan, report.line, result.start_ms)
    return Escalator(report.line, targets, plan.escalation, send).check(now_ms, result.output, result,
                                                                       report.month)


def watch_once(store: Store, plant: Plant, plan: Plan, now_ms: int,
               sinks: dict[str, Callable[[dict], bool | None]] | None = None) -> dict[str, str]:
    """One round for every line of the plant that has an objective this year: write the day's
    indicator points and send new escalations. A line that fails reports its one-line reason and the
    others go on; returns a status line per line."""
    status = {}
    zone = plan.calendar.zone
    today = to_local(now_ms, zone).date()
    start_ms, end_ms = day_window(plan, today)
    planned = {goal.line for goal in plan.objective if goal.year == today.year}
    for line in plant.lines:
        if line.id not in planned:
            continue
        try:
            report = stored_day_report(store, plant, plan, line, start_ms, min(end_ms, now_ms))
            store.write(report.lines(plant.plant))
            sent = escalate(plan, report, now_ms, sinks[line.id]) if sinks else []
        except ShopfloorError as error:
            status[line.id] = f"skipped: {error}"
            continue
        result = report.indicators
        status[line.id] = (f"{result.output} of {result.target:.0f} due, constraint {result.constraint}, "
                           f"{len(sent)} new alert(s)")
    return status
