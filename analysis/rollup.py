"""One line's day against its plan: the glue that the `targets` commands and the API share.

Why a module of its own: the pure pieces (targets, indicators, feasibility, escalation) know nothing
of files, servers or time windows; this one picks the window in the plant's timezone, finds the
objective of that year, and puts the executive view together once, so the command line, the API
and the InfluxDB writer cannot disagree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from analysis.escalation import Escalator
from analysis.feasibility import Feasibility, WhatIf, assess, needed_rate
from analysis.indicators import (
    Indicators,
    Telemetry,
    ToDate,
    hour_by_hour,
    indicator_lines,
    indicators,
    read_line_output,
    to_date,
    units_between,
)
from analysis.targets import Decomposition, decompose, local_ms, to_local
from shopfloor.errors import ConfigError
from shopfloor.plan import Plan
from shopfloor.plant import Line
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
               quarter_actual: int | None = None) -> DayReport:
    """Indicators of [start, end) against the plan; to-date figures up to `end`.

    The month and quarter actuals default to what `telemetry` shows since the period began, which is
    right when it covers the period (the store does); pass them when it does not.
    """
    if end_ms <= start_ms:
        raise ConfigError("the window is empty: its end must be after its start")
    targets = targets_at(plan, line.id, start_ms)
    now_ms = min(end_ms, targets.year_end_ms - 1)
    result = indicators(telemetry, line, start_ms, end_ms, target=targets.due_between(start_ms, end_ms),
                        constraint=constraint)
    last = telemetry[line.stations[-1].id]
    rollups = []
    for grain, actual in (("month", month_actual), ("quarter", quarter_actual)):
        begin, _ = targets.period_containing(grain, now_ms)
        if actual is None:
            actual = units_between(last, begin, now_ms, good=True)
        rollups.append(to_date(targets, grain, now_ms, actual))
    return DayReport(line.id, result, hour_by_hour(telemetry, line, targets, start_ms, end_ms),
                     shift_indicators(targets, line, telemetry, start_ms, end_ms, constraint), *rollups)


def store_actuals(store: Store, plant: str, plan: Plan, line: Line, now_ms: int) -> tuple[int, int]:
    """Month and quarter to date good output of the line, summed inside InfluxDB."""
    targets = targets_at(plan, line.id, now_ms)
    actuals = []
    for grain in ("month", "quarter"):
        begin, _ = targets.period_containing(grain, now_ms)
        actuals.append(read_line_output(store, plant, line, begin, now_ms))
    return actuals[0], actuals[1]


def feasibility(plan: Plan, line: Line, telemetry: Telemetry, start_ms: int, end_ms: int, *,
                constraint: str | None = None, needed_per_hour: float | None = None,
                whatif: WhatIf | None = None) -> Feasibility:
    """The plan's remaining rate from `end` on against the constraint's capacity shown in [start, end)."""
    if needed_per_hour is None:
        targets = targets_at(plan, line.id, start_ms)
        needed_per_hour = needed_rate(targets, min(end_ms, targets.year_end_ms - 1))
    return assess(telemetry, line, start_ms, end_ms, needed_per_hour=needed_per_hour,
                  reserve=plan.calendar.reserve, constraint=constraint, whatif=whatif)


def escalate(plant: str, plan: Plan, line: Line, telemetry: Telemetry, store: Store, start_ms: int,
             end_ms: int, send: Callable[[dict], bool | None], *, constraint: str | None = None
             ) -> list[dict]:
    """Run the escalation checks for the day so far ([start, end), end = now) and send what is new."""
    month_actual, quarter_actual = store_actuals(store, plant, plan, line, end_ms - 1)
    report = day_report(plan, line, telemetry, start_ms, end_ms, constraint=constraint,
                        month_actual=month_actual, quarter_actual=quarter_actual)
    escalator = Escalator(line.id, targets_at(plan, line.id, start_ms), plan.escalation, send)
    return escalator.check(end_ms, report.indicators.output, report.indicators, report.month)
