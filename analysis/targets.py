"""Annual goal -> quarter, month, week, day, shift and hour targets on the plant's real calendar.

Why it is built this way:
- Production time is measured in real elapsed time (UTC milliseconds), so a night shift across a
  DST change really is 7 or 9 hours long, and an hour on the fall-back night appears twice.
- The smallest pieces ("leaves") are one shift's working time inside one clock hour. Units are
  apportioned down a strict hierarchy year > quarter > month > day > hour > leaf with the
  largest-remainder method in exact integer arithmetic, so each child is within one unit of its
  exact share of its parent; equal remainders are served along a golden-ratio sequence, so the
  extra units spread over a month's days and a day's hours instead of piling up at their start.
  Every grain (including weeks and shifts, which do not nest in months or days) is then the sum of
  its leaves: all levels add up exactly, by construction.
- A shift belongs to the day it starts on (workdays and holidays are checked on that date), but its
  units count in the calendar periods in which its hours fall: a Friday 22:00-06:00 shift puts 6
  hours of units into Saturday. A year's first hours may come from the previous year's last shift.
- ISO weeks crossing a year end are clipped to the year: the week's target is its days in that year.
- Planned downtime removes the first `hours` of the day's production time at or after its `start`
  (default: the day's first shift start) from that day's shifts.
- A re-plan (`as_of` + `delivered`) keeps the delivered units on the time before `as_of` and spreads
  the remaining units over the time after it: the living plan. Reserve never changes targets (see
  shopfloor/plan.py); it belongs to the feasibility check.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from pydantic import ValidationError

from shopfloor.contract import TARGET_MEASUREMENT, line_protocol
from shopfloor.errors import ConfigError
from shopfloor.plan import WEEKDAYS, Calendar, Objective, Plan
from shopfloor.plant import validation_message

# `shift_hour`: each shift's hours counted from its start (05:30-06:30 for a 05:30 shift), what a
# huddle board buckets by; `hour` is the clock hour.
GRAINS = ("year", "quarter", "month", "week", "day", "shift", "hour", "shift_hour")
HOUR_MS = 3_600_000
UTC = dt.UTC
GOLDEN = (5 ** 0.5 - 1) / 2


class PlanError(ConfigError):
    """A plan that cannot be decomposed (no production time, downtime longer than the day, ...)."""


@dataclass(frozen=True, slots=True)
class Period:
    """One target period: [start, end) in the plant's timezone, the units due and planned hours in it."""

    start: dt.datetime
    end: dt.datetime
    units: int
    label: str
    production_hours: float

    def to_json(self) -> dict:
        """The docs/DESIGN.md §7 shape: exactly start, end (ISO 8601 with offset) and units."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "units": self.units}


@dataclass(frozen=True, slots=True)
class ShiftOccurrence:
    """One run of one shift: the local date it starts on and its real [start, end) in ms."""

    name: str
    day: dt.date
    start_ms: int
    end_ms: int
    works: bool


def local_ms(day: dt.date, minutes: int, zone: dt.tzinfo) -> int:
    """Milliseconds since the epoch of a local wall-clock time (a time in a DST gap moves forward)."""
    moment = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minutes)
    return int(moment.replace(tzinfo=zone).timestamp() * 1000)


def to_local(ms: int | np.integer, zone: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ms) / 1000, tz=UTC).astimezone(zone)


def as_local_ms(moment: dt.datetime | dt.date, zone: dt.tzinfo) -> int:
    """A naive local moment, an aware moment or a date (local midnight) as ms since the epoch."""
    if not isinstance(moment, dt.datetime):
        return local_ms(moment, 0, zone)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return int(moment.timestamp() * 1000)


# --- the calendar as working intervals --------------------------------------------------------------


def shift_occurrences(calendar: Calendar, year: int) -> list[ShiftOccurrence]:
    """Every shift of every day whose time reaches into `year` (from the previous year's last day on).

    Occurrences keep their full length; the year's bounds are applied when leaves are cut.
    """
    zone = calendar.zone
    year_start, year_end = local_ms(dt.date(year, 1, 1), 0, zone), local_ms(dt.date(year + 1, 1, 1), 0, zone)
    return [occ for occ in _occurrences(calendar, dt.date(year - 1, 12, 31), dt.date(year, 12, 31))
            if occ.start_ms < year_end and occ.end_ms > year_start]


def _occurrences(calendar: Calendar, first_day: dt.date, last_day: dt.date) -> list[ShiftOccurrence]:
    """The shifts that start on the local days first_day..last_day, in time order (DST-exact)."""
    zone = calendar.zone
    shifts = sorted(calendar.shifts, key=lambda shift: shift.start)
    occurrences = []
    day = first_day
    while day <= last_day:
        for shift in shifts:
            occurrences.append(ShiftOccurrence(shift.name, day, local_ms(day, shift.start, zone),
                                               local_ms(day, shift.start + shift.minutes, zone),
                                               calendar.works_on(day)))
        day += dt.timedelta(days=1)
    return occurrences


def shifts_between(calendar: Calendar, from_ms: int, to_ms: int, *, working: bool = True
                   ) -> list[ShiftOccurrence]:
    """The shift runs that overlap [from_ms, to_ms), in time order: THE production calendar that the
    service's shares, the huddle page and the targets all read (a night shift belongs to the day it
    starts on; with `working`, only those on workdays that are not holidays)."""
    zone = calendar.zone
    first_day = to_local(from_ms, zone).date() - dt.timedelta(days=1)
    last_day = to_local(max(from_ms, to_ms - 1), zone).date()
    return [occ for occ in _occurrences(calendar, first_day, last_day)
            if occ.start_ms < to_ms and occ.end_ms > from_ms and (occ.works or not working)]


def shift_label(calendar: Calendar, occurrence: ShiftOccurrence) -> str:
    """'A 06:00-14:00': the shift's name and its local clock times."""
    for shift in calendar.shifts:
        if shift.name == occurrence.name:
            return shift.label()
    return occurrence.name


def rolling_calendar(timezone: str, first_start: str = "06:00", hours: float = 8.0) -> Calendar:
    """A plan-less calendar: back-to-back shifts of `hours` from `first_start`, every day (the analysis
    settings' [shifts]); as many whole shifts as fit in a day."""
    start = int(first_start[:2]) * 60 + int(first_start[3:5])
    length = int(round(hours * 60))
    per_day = max(1, (24 * 60) // length)
    shifts = [{"name": str(k + 1), "start": _clock((start + k * length) % (24 * 60)),
               "end": _clock((start + (k + 1) * length) % (24 * 60))} for k in range(per_day)]
    return Calendar.model_validate({"timezone": timezone, "workdays": list(WEEKDAYS), "shifts": shifts})


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def check_zones(plant_timezone: str, calendar: Calendar) -> None:
    """The plant file and the plan must keep the same clock: hours, shifts and days are cut on it."""
    if plant_timezone != calendar.timezone:
        raise ConfigError(f"the plant file's timezone {plant_timezone} and the plan's calendar timezone "
                          f"{calendar.timezone} differ: set the same one in both files")


def _working_intervals(calendar: Calendar, occurrences: list[ShiftOccurrence]) -> list[tuple[int, int, int]]:
    """(start_ms, end_ms, occurrence index) of planned production time, planned downtime removed."""
    zone = calendar.zone
    intervals = [(occ.start_ms, occ.end_ms, index) for index, occ in enumerate(occurrences) if occ.works]
    first_start = min(shift.start for shift in calendar.shifts)
    days = {occ.day for occ in occurrences}
    for down in calendar.downtime:
        if down.date not in days:
            continue
        from_ms = local_ms(down.date, first_start if down.start is None else down.start, zone)
        todo_ms = round(down.hours * HOUR_MS)
        same_day = [i for i, (_, _, occ) in enumerate(intervals) if occurrences[occ].day == down.date]
        available = sum(max(0, intervals[i][1] - max(intervals[i][0], from_ms)) for i in same_day)
        if available < todo_ms:
            raise PlanError(f"downtime on {down.date} removes {down.hours:g} h but the day's shifts have "
                            f"only {available / HOUR_MS:g} h from its start on: lower hours or start earlier")
        replaced = []
        for i in same_day:
            start, end, occ = intervals[i]
            cut_from = max(start, from_ms)
            take = min(todo_ms, max(0, end - cut_from))
            todo_ms -= take
            pieces = [(start, cut_from, occ), (cut_from + take, end, occ)] if take else [(start, end, occ)]
            replaced.append((i, [piece for piece in pieces if piece[0] < piece[1]]))
        for i, pieces in reversed(replaced):
            intervals[i:i + 1] = pieces
    return intervals


def _cut(intervals: list[tuple[int, int, int]], cuts: np.ndarray, bounds: tuple[int, int]
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip intervals to `bounds` and split them at every cut point (sorted ms): leaves that never
    straddle an hour or a re-plan."""
    starts, ends, owners = [], [], []
    for start, end, owner in intervals:
        start, end = max(start, bounds[0]), min(end, bounds[1])
        if start >= end:
            continue
        inner = cuts[(cuts > start) & (cuts < end)]
        edges = np.concatenate(([start], inner, [end]))
        starts.append(edges[:-1])
        ends.append(edges[1:])
        owners.append(np.full(len(inner) + 1, owner, dtype=np.int64))
    if not starts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return (np.concatenate(starts).astype(np.int64), np.concatenate(ends).astype(np.int64),
            np.concatenate(owners))


# --- apportionment ----------------------------------------------------------------------------------


def largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Whole units per weight summing exactly to `total`; equal remainders are served spread out."""
    return apportion(total, np.asarray(weights, dtype=np.int64), [])


def apportion(total: int, weights: np.ndarray, levels: list[np.ndarray]) -> np.ndarray:
    """Split `total` down nested groups (`levels`, outermost first, one id per leaf) to the leaves.

    At each level every parent's units go to its children by the largest-remainder method on their
    integer weights, computed exactly (no floating point): child i of a parent with units U and
    weight W gets floor(U*w_i/W), and the parent's leftover units go to the largest remainders.
    """
    weights = np.asarray(weights, dtype=np.int64)
    count = len(weights)
    if count == 0:
        if total:
            raise PlanError(f"{total} units have no production time to go to")
        return np.zeros(0, dtype=np.int64)
    parent_of_leaf = np.zeros(count, dtype=np.int64)
    parent_units = np.array([total], dtype=np.int64)
    for ids in [*levels, np.arange(count)]:
        _, first, child_of_leaf = np.unique(ids, return_index=True, return_inverse=True)
        child_weight = np.bincount(child_of_leaf, weights=weights).round().astype(np.int64)
        child_parent = parent_of_leaf[first]
        parent_units = _split(parent_units, child_parent, child_weight)
        parent_of_leaf = child_of_leaf
    return parent_units


def _split(parent_units: np.ndarray, parent: np.ndarray, weight: np.ndarray) -> np.ndarray:
    parent_weight = np.bincount(parent, weights=weight, minlength=len(parent_units)).round().astype(np.int64)
    if np.any((parent_weight == 0) & (parent_units > 0)):
        raise PlanError("units were planned on a period without production time")
    numerator = parent_units[parent] * weight
    divisor = np.maximum(parent_weight[parent], 1)
    units, remainder = np.divmod(numerator, divisor)
    leftover = parent_units - np.bincount(parent, weights=units, minlength=len(parent_units)).round().astype(
        np.int64)
    # Equal remainders (equal hours, equal days) are the rule, not the exception: break those ties
    # along a golden-ratio sequence over the children's positions, which spreads the extra units
    # evenly over the parent instead of piling them onto its first children.
    by_parent = np.argsort(parent, kind="stable")
    position = np.empty(len(weight), dtype=np.int64)
    position[by_parent] = np.arange(len(weight)) - np.searchsorted(parent[by_parent], parent[by_parent])
    spread = np.mod(position * GOLDEN, 1.0)
    order = np.lexsort((spread, -remainder, parent))
    group_start = np.searchsorted(parent[order], parent[order], side="left")
    rank = np.empty(len(weight), dtype=np.int64)
    rank[order] = np.arange(len(weight)) - group_start
    return units + (rank < leftover[parent])


# --- the decomposition ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decomposition:
    """One line's targets for one year, down to leaves of production time."""

    line: str
    year: int
    objective: Objective
    calendar: Calendar
    occurrences: list[ShiftOccurrence]
    leaf_start_ms: np.ndarray
    leaf_end_ms: np.ndarray
    leaf_occurrence: np.ndarray
    leaf_units: np.ndarray

    @property
    def zone(self) -> dt.tzinfo:
        return self.calendar.zone

    @cached_property
    def year_start_ms(self) -> int:
        return local_ms(dt.date(self.year, 1, 1), 0, self.zone)

    @cached_property
    def year_end_ms(self) -> int:
        return local_ms(dt.date(self.year + 1, 1, 1), 0, self.zone)

    @property
    def total_units(self) -> int:
        return int(self.leaf_units.sum())

    @property
    def production_hours(self) -> float:
        return float((self.leaf_end_ms - self.leaf_start_ms).sum()) / HOUR_MS

    def boundaries(self, grain: str) -> tuple[np.ndarray, list[str]]:
        """Period starts plus the year's end (ms), and a label per period, for a calendar grain."""
        zone, year = self.zone, self.year
        if grain == "year":
            starts, labels = [dt.date(year, 1, 1)], [str(year)]
        elif grain == "quarter":
            starts = [dt.date(year, month, 1) for month in (1, 4, 7, 10)]
            labels = [f"{year}-Q{quarter}" for quarter in range(1, 5)]
        elif grain == "month":
            starts = [dt.date(year, month, 1) for month in range(1, 13)]
            labels = [day.strftime("%Y-%m") for day in starts]
        elif grain in ("week", "day"):
            days = [dt.date(year, 1, 1) + dt.timedelta(days=n)
                    for n in range((dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days)]
            starts = days if grain == "day" else [day for day in days if day.weekday() == 0 or day == days[0]]
            labels = ([day.strftime("%Y-%m-%d %a") for day in starts] if grain == "day" else
                      ["{}-W{:02d}".format(*day.isocalendar()[:2]) for day in starts])
        elif grain == "hour":
            edges = np.arange(self.year_start_ms, self.year_end_ms + 1, HOUR_MS, dtype=np.int64)
            if edges[-1] != self.year_end_ms:
                edges = np.append(edges, self.year_end_ms)
            return edges, []  # hour labels are made from the local times in `periods`
        else:
            raise PlanError(f"unknown grain {grain!r}: use one of {', '.join(GRAINS)}")
        edges = np.array([local_ms(day, 0, zone) for day in starts] + [self.year_end_ms], dtype=np.int64)
        return edges, labels

    def periods(self, grain: str) -> list[Period]:
        """Every period of the year at `grain`, including those with 0 units, in time order."""
        if grain == "shift":
            return self._shift_periods()
        if grain == "shift_hour":
            return self._shift_hour_periods()
        edges, labels = self.boundaries(grain)
        count = len(edges) - 1
        index = np.searchsorted(edges, self.leaf_start_ms, side="right") - 1
        units = np.bincount(index, weights=self.leaf_units, minlength=count).round().astype(np.int64).tolist()
        hours = (np.bincount(index, weights=self.leaf_end_ms - self.leaf_start_ms, minlength=count)
                 / HOUR_MS).tolist()
        moments = [to_local(ms, self.zone) for ms in edges.tolist()]
        if not labels:
            labels = [f"{moment:%Y-%m-%d %H:%M%z}" for moment in moments[:-1]]
        return [Period(moments[i], moments[i + 1], units[i], labels[i], hours[i]) for i in range(count)]

    def _shift_periods(self) -> list[Period]:
        count = len(self.occurrences)
        units = np.bincount(self.leaf_occurrence, weights=self.leaf_units, minlength=count).round().astype(
            np.int64)
        millis = np.bincount(self.leaf_occurrence, weights=self.leaf_end_ms - self.leaf_start_ms,
                             minlength=count)
        return [Period(to_local(max(occ.start_ms, self.year_start_ms), self.zone),
                       to_local(min(occ.end_ms, self.year_end_ms), self.zone), int(units[i]),
                       f"{occ.day.isoformat()} {occ.name}", float(millis[i]) / HOUR_MS)
                for i, occ in enumerate(self.occurrences)]

    def _shift_hour_periods(self) -> list[Period]:
        """Each shift run's hours from its start (the last one shorter when the shift is), clipped to
        the year; leaves never straddle them (decompose cuts at their edges), so the units are exact."""
        starts, ends, owners = [], [], []
        for index, occ in enumerate(self.occurrences):
            edges = [*range(occ.start_ms, occ.end_ms, HOUR_MS), occ.end_ms]
            for begin, end in zip(edges, edges[1:], strict=False):
                begin, end = max(begin, self.year_start_ms), min(end, self.year_end_ms)
                if begin < end:
                    starts.append(begin)
                    ends.append(end)
                    owners.append(index)
        count = len(starts)
        index = np.searchsorted(np.array(starts, dtype=np.int64), self.leaf_start_ms, side="right") - 1
        units = np.bincount(index, weights=self.leaf_units, minlength=count).round().astype(np.int64).tolist()
        hours = (np.bincount(index, weights=self.leaf_end_ms - self.leaf_start_ms, minlength=count)
                 / HOUR_MS).tolist()
        periods = []
        for i in range(count):
            occ, start = self.occurrences[owners[i]], to_local(starts[i], self.zone)
            periods.append(Period(start, to_local(ends[i], self.zone), units[i],
                                  f"{occ.day.isoformat()} {occ.name} {start:%H:%M}", hours[i]))
        return periods

    def due_between(self, start_ms: int, end_ms: int) -> float:
        """Units due in [start, end): whole leaves plus the pro-rata share of partly covered leaves."""
        overlap = np.clip(np.minimum(self.leaf_end_ms, end_ms) - np.maximum(self.leaf_start_ms, start_ms),
                          0, None)
        length = self.leaf_end_ms - self.leaf_start_ms
        return float((self.leaf_units * overlap / length).sum())

    def production_ms_between(self, start_ms: int, end_ms: int) -> int:
        """Planned production time inside [start, end), in ms."""
        overlap = np.minimum(self.leaf_end_ms, end_ms) - np.maximum(self.leaf_start_ms, start_ms)
        return int(np.clip(overlap, 0, None).sum())

    def period_containing(self, grain: str, moment_ms: int) -> tuple[int, int]:
        """[start, end) in ms of the calendar period at `grain` that holds `moment_ms`."""
        edges, _ = self.boundaries(grain)
        index = int(np.searchsorted(edges, moment_ms, side="right")) - 1
        if not 0 <= index < len(edges) - 1:
            moment = to_local(moment_ms, self.zone).isoformat()
            raise PlanError(f"{moment} is outside the plan year {self.year}")
        return int(edges[index]), int(edges[index + 1])


def decompose(plan: Plan, line: str, year: int | None = None, *, as_of: dt.datetime | dt.date | None = None,
              delivered: int | None = None) -> Decomposition:
    """The line's targets for the year; `as_of` and `delivered` re-plan it (they override the file's)."""
    objective = plan.objective_for(line, year)
    if (as_of is None) != (delivered is None):
        raise PlanError("a re-plan needs both --as-of and --delivered")
    if as_of is not None:
        try:
            objective = objective.replanned(as_of, delivered)
        except ValidationError as error:
            raise PlanError(validation_message("re-plan", error)) from None
    return decompose_objective(plan.calendar, objective)


def decompose_objective(calendar: Calendar, objective: Objective) -> Decomposition:
    zone, year = calendar.zone, objective.year
    occurrences = shift_occurrences(calendar, year)
    intervals = _working_intervals(calendar, occurrences)
    year_start, year_end = local_ms(dt.date(year, 1, 1), 0, zone), local_ms(dt.date(year + 1, 1, 1), 0, zone)
    hour_edges = np.arange(year_start, year_end, HOUR_MS, dtype=np.int64)
    # leaves also end on each shift's hours, so the `shift_hour` grain sums whole leaves
    shift_hours = [edge for occ in occurrences for edge in range(occ.start_ms + HOUR_MS, occ.end_ms, HOUR_MS)]
    cuts = np.union1d(hour_edges, np.array(shift_hours, dtype=np.int64))
    replan_ms = None
    if objective.as_of is not None:
        replan_ms = as_local_ms(objective.as_of, zone)
        cuts = np.union1d(cuts, [replan_ms])
    starts, ends, owners = _cut(intervals, cuts, (year_start, year_end))
    weights = ends - starts
    if weights.sum() == 0:
        raise PlanError(f"line {objective.line} has no production time in {year}: check the calendar's "
                        f"workdays, shifts, holidays and downtime")
    levels = [_period_index(starts, zone, year, grain) for grain in ("quarter", "month", "day")]
    levels.append(np.searchsorted(hour_edges, starts, side="right") - 1)
    if replan_ms is None:
        units = apportion(objective.units, weights, levels)
    else:
        delivered = int(objective.delivered or 0)
        past = starts < replan_ms
        remaining = max(0, objective.units - delivered)
        if delivered and not weights[past].sum():
            raise PlanError(f"{delivered} units delivered before {objective.as_of} but the plan has no "
                            f"production time in {year} before it")
        if remaining and not weights[~past].sum():
            raise PlanError(f"{remaining} units remain after {objective.as_of} but the plan has no "
                            f"production time left in {year}")
        units = (apportion(delivered, np.where(past, weights, 0), levels)
                 + apportion(remaining, np.where(past, 0, weights), levels))
    return Decomposition(objective.line, year, objective, calendar, occurrences, starts, ends, owners, units)


def _period_index(starts: np.ndarray, zone: dt.tzinfo, year: int, grain: str) -> np.ndarray:
    if grain == "quarter":
        days = [dt.date(year, month, 1) for month in (1, 4, 7, 10)]
    elif grain == "month":
        days = [dt.date(year, month, 1) for month in range(1, 13)]
    else:
        first = dt.date(year, 1, 1)
        days = [first + dt.timedelta(days=n) for n in range((dt.date(year + 1, 1, 1) - first).days)]
    edges = np.array([local_ms(day, 0, zone) for day in days], dtype=np.int64)
    return np.searchsorted(edges, starts, side="right") - 1


def target_lines(targets: Decomposition, plant: str, grains: tuple[str, ...] = GRAINS) -> list[str]:
    """Measurement `target` (contract.TARGET_MEASUREMENT): one point per period and grain at its start.

    Tags plant, line, grain; fields units (integer), hours (planned production hours, float), end
    (the period's end, ms since the epoch, integer). Writing again after a re-plan overwrites the
    same points, since tags and timestamps are the same.
    """
    lines = []
    for grain in grains:
        for period in targets.periods(grain):
            lines.append(line_protocol(
                TARGET_MEASUREMENT, {"plant": plant, "line": targets.line, "grain": grain},
                {"units": period.units, "hours": float(period.production_hours),
                 "end": int(period.end.timestamp() * 1000)},
                int(period.start.timestamp() * 1000)))
    return lines
