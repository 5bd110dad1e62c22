"""The plan file (docs/DESIGN.md §6): what each line must deliver in a year, and when the plant works.

Loaded once into frozen pydantic models. Everything that would make the decomposition wrong in a
way nobody notices (overlapping shifts, a holiday that is not a date, downtime on a day without
shifts, a re-plan outside the objective's year) is refused here with one line naming the file and
the field, so `analysis.targets` can trust what it gets.

Reserve is kept in the plan but deliberately does NOT shrink the targets: it is the share of
constraint capacity held back as a buffer, so it only makes the feasibility check stricter
(`analysis.feasibility`). Targets spread the whole objective over the whole planned time.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shopfloor.contract import IDENTIFIER_PATTERN
from shopfloor.errors import ConfigError
from shopfloor.plant import TimeZoneName, read_toml, validation_message

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
MINUTES_A_DAY = 24 * 60
MAX_UNITS = 1_000_000_000


def _clock_minutes(value: object) -> int:
    """'06:30' -> 390 minutes after midnight; anything else is a one-line error."""
    if isinstance(value, dt.time):
        return value.hour * 60 + value.minute
    if not isinstance(value, str) or not _CLOCK.fullmatch(value):
        raise ValueError(f"{value!r} is not a clock time: use HH:MM from 00:00 to 23:59")
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def _as_date(value: object) -> dt.date:
    """A TOML date or an ISO date string; a date that does not exist is named, not guessed."""
    if isinstance(value, dt.datetime):
        raise ValueError(f"{value.isoformat()} is a date and time: give a date like 2027-08-02")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date that exists: use YYYY-MM-DD") from None
    raise ValueError(f"{value!r} is not a date: use YYYY-MM-DD")


def _as_local_datetime(value: object) -> dt.datetime:
    """A re-plan point: a date (local midnight) or a local date-time without offset."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise ValueError(f"{value.isoformat()} has an offset: give local plant time without one")
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a local date or date-time: use YYYY-MM-DD[THH:MM]") from None
        return _as_local_datetime(parsed)
    raise ValueError(f"{value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM")


PlanDate = Annotated[dt.date, BeforeValidator(_as_date)]
ClockMinutes = Annotated[int, BeforeValidator(_clock_minutes)]
LocalDateTime = Annotated[dt.datetime, BeforeValidator(_as_local_datetime)]


class Shift(BaseModel):
    """A daily shift in local time; `end` at or before `start` means it ends the next day."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=IDENTIFIER_PATTERN)
    start: ClockMinutes
    end: ClockMinutes

    @property
    def minutes(self) -> int:
        """Nominal length on a day without a clock change (start == end is a 24-hour shift)."""
        return (self.end - self.start) % MINUTES_A_DAY or MINUTES_A_DAY

    @property
    def crosses_midnight(self) -> bool:
        return self.start + self.minutes > MINUTES_A_DAY

    def label(self) -> str:
        end = (self.start + self.minutes) % MINUTES_A_DAY
        return f"{self.name} {self.start // 60:02d}:{self.start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


class Downtime(BaseModel):
    """Planned maintenance: `hours` of production time removed from one day's shifts from `start` on."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    date: PlanDate
    hours: float = Field(gt=0, le=24)
    start: ClockMinutes | None = None


class Calendar(BaseModel):
    """When the plant works: the same for every line of the plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    timezone: TimeZoneName = "UTC"
    workdays: list[str] = Field(default_factory=lambda: list(WEEKDAYS[:5]))
    shifts: list[Shift] = Field(min_length=1)
    holidays: list[PlanDate] = Field(default_factory=list)
    downtime: list[Downtime] = Field(default_factory=list)
    reserve: float = Field(default=0.0, ge=0.0, lt=1.0)

    @field_validator("workdays")
    @classmethod
    def _known_weekdays(cls, value: list[str]) -> list[str]:
        days = [day.lower() for day in value]
        unknown = [day for day in days if day not in WEEKDAYS]
        if unknown:
            raise ValueError(f"unknown weekday {unknown[0]!r}: use {', '.join(WEEKDAYS)}")
        if len(set(days)) != len(days):
            raise ValueError(f"a weekday is listed twice: {value}")
        return days

    @model_validator(mode="after")
    def _consistent(self) -> Calendar:
        names = [shift.name for shift in self.shifts]
        if len(set(names)) != len(names):
            raise ValueError(f"a shift name is used twice: {names}")
        _refuse_overlapping(self.shifts)
        dates = [down.date for down in self.downtime]
        twice = sorted({day for day in dates if dates.count(day) > 1})
        if twice:
            raise ValueError(f"downtime lists {twice[0]} twice: merge it into one entry with the total hours")
        for down in self.downtime:
            if not self.works_on(down.date):
                raise ValueError(f"downtime on {down.date} falls on a day without shifts "
                                 f"({'holiday' if down.date in self.holidays else 'not a workday'}): "
                                 f"fix the date or remove it")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def works_on(self, day: dt.date) -> bool:
        """Whether the shifts that START on this local date run (a night shift belongs to its start day)."""
        return WEEKDAYS[day.weekday()] in self.workdays and day not in self.holidays

    def downtime_on(self, day: dt.date) -> Downtime | None:
        for down in self.downtime:
            if down.date == day:
                return down
        return None


def _refuse_overlapping(shifts: list[Shift]) -> None:
    """Two shifts overlap if their minute ranges meet on the same or the following day."""
    spans = [(shift.start, shift.start + shift.minutes, shift.name) for shift in shifts]
    for index, (start_a, end_a, name_a) in enumerate(spans):
        for start_b, end_b, name_b in spans[index + 1:]:
            for shift_days in (-1, 0, 1):
                offset = shift_days * MINUTES_A_DAY
                if start_a < end_b + offset and start_b + offset < end_a:
                    raise ValueError(f"shifts {name_a} and {name_b} overlap: a minute of the day "
                                     f"belongs to one shift only")
        if end_a - start_a > MINUTES_A_DAY:
            raise ValueError(f"shift {name_a} is longer than a day")


class Objective(BaseModel):
    """A line's annual goal; `as_of` + `delivered` turn it into a mid-year re-plan (the living plan)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    line: str = Field(pattern=IDENTIFIER_PATTERN)
    year: int = Field(ge=1970, le=2200)
    # at most a billion units a line a year keeps the exact integer apportionment inside int64
    units: int = Field(ge=0, le=MAX_UNITS)
    as_of: LocalDateTime | None = None
    delivered: int | None = Field(default=None, ge=0, le=MAX_UNITS)

    @model_validator(mode="after")
    def _replan_complete(self) -> Objective:
        if (self.as_of is None) != (self.delivered is None):
            raise ValueError(f"line {self.line} {self.year}: a re-plan needs both as_of and delivered")
        if self.as_of is not None and not (
            dt.datetime(self.year, 1, 1) <= self.as_of <= dt.datetime(self.year + 1, 1, 1)
        ):
            raise ValueError(f"line {self.line}: as_of {self.as_of} is outside the year {self.year}")
        return self

    def replanned(self, as_of: dt.datetime | dt.date, delivered: int) -> Objective:
        """The same goal re-planned at `as_of` (local time) with `delivered` units already made."""
        return Objective.model_validate({**self.model_dump(), "as_of": as_of, "delivered": delivered})


class Escalation(BaseModel):
    """When the targets become alerts (item 4 of issue 5): tolerances an ops director can tune."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pace_tolerance: float = Field(default=0.10, ge=0.0, lt=1.0)
    checkpoints: list[ClockMinutes] = Field(default_factory=lambda: [10 * 60, 14 * 60, 18 * 60])
    constraint_uptime: float = Field(default=0.85, ge=0.0, le=1.0)
    forecast_tolerance: float = Field(default=0.0, ge=0.0, lt=1.0)
    # Money rules (issue 14): alert once a shift when the constraint has lost more than this much money
    # (needs the line's [[line]] throughput_per_unit) or this many constraint minutes in the shift so far.
    shift_loss_money: float | None = Field(default=None, gt=0, le=1e12, allow_inf_nan=False)
    shift_loss_minutes: float | None = Field(default=None, gt=0, le=24 * 60, allow_inf_nan=False)


class LineMoney(BaseModel):
    """What one unit of a line is worth to the plant (issue 14): the money of a lost constraint minute.

    `throughput_per_unit` is throughput accounting's T per unit: sales price minus truly variable cost
    (materials, not labour), in the plant's currency; `currency` is only a label for the figures.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=IDENTIFIER_PATTERN)
    throughput_per_unit: float = Field(ge=0, le=1e9, allow_inf_nan=False)
    currency: str | None = Field(default=None, min_length=1, max_length=8)


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    objective: list[Objective] = Field(min_length=1)
    calendar: Calendar
    escalation: Escalation = Field(default_factory=Escalation)
    line: list[LineMoney] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_money_per_line(self) -> Plan:
        ids = [entry.id for entry in self.line]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"line {twice[0]} has two [[line]] tables: keep one")
        return self

    @model_validator(mode="after")
    def _money_rule_has_money(self) -> Plan:
        """A money escalation for a line without a unit value could never fire: refuse it here."""
        if self.escalation.shift_loss_money is None:
            return self
        priced = {entry.id for entry in self.line}
        missing = sorted({goal.line for goal in self.objective} - priced)
        if missing:
            raise ValueError(f"escalation shift_loss_money needs a [[line]] throughput_per_unit for line "
                             f"{missing[0]}: add it, or set shift_loss_minutes instead")
        return self

    def money_for(self, line: str) -> LineMoney | None:
        """The line's throughput per unit and currency, or None when the plan gives none."""
        return next((entry for entry in self.line if entry.id == line), None)

    @model_validator(mode="after")
    def _one_goal_per_line_year(self) -> Plan:
        keys = [(goal.line, goal.year) for goal in self.objective]
        twice = [key for key in keys if keys.count(key) > 1]
        if twice:
            raise ValueError(f"line {twice[0][0]} has two objectives for {twice[0][1]}: keep one")
        return self

    @model_validator(mode="after")
    def _dates_in_the_plan_years(self) -> Plan:
        """A holiday or downtime in a year no objective covers is a typo (2072 for 2027), not a plan;
        the previous year's dates count too, since its last night shift reaches into the plan year."""
        years = {goal.year for goal in self.objective}
        known = years | {year - 1 for year in years}
        dates = [("holiday", day) for day in self.calendar.holidays]
        dates += [("downtime", down.date) for down in self.calendar.downtime]
        for what, day in dates:
            if day.year not in known:
                raise ValueError(f"{what} {day} is in no year of the plan's objectives "
                                 f"({', '.join(map(str, sorted(years)))}): fix the date")
        return self

    def objective_for(self, line: str, year: int | None = None) -> Objective:
        """The line's objective; `year` may be left out when the plan has one year for the line."""
        goals = [goal for goal in self.objective if goal.line == line]
        if not goals:
            raise ConfigError(f"the plan has no objective for line {line!r}; it has "
                              f"{sorted({goal.line for goal in self.objective})}")
        if year is None:
            if len(goals) > 1:
                raise ConfigError(f"the plan has objectives for line {line} in "
                                  f"{sorted(goal.year for goal in goals)}: pick one with --year")
            return goals[0]
        for goal in goals:
            if goal.year == year:
                return goal
        raise ConfigError(f"the plan has no objective for line {line} in {year}; it has "
                          f"{sorted(goal.year for goal in goals)}")


def load_plan(path: str | Path) -> Plan:
    try:
        return Plan.model_validate(read_toml(path, "plan"))
    except ValidationError as error:
        raise ConfigError(validation_message(path, error)) from None
