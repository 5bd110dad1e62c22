"""Is the goal reachable at all? The rate the plan needs against what the constraint has shown it delivers.

Why at the constraint: the line can never deliver more than its constraint, so the constraint's
demonstrated capacity (good units per ACTIVE hour: working, setup and down count, starved and
blocked do not, because they are the line's fault, not the constraint's) caps the line. Setup and
breakdowns stay in, since they will recur. Units the stations after it scrap are taken off (their
yield), and the plan's reserve is held back: available = capacity x downstream yield x (1 - reserve).
No verdict below MIN_ACTIVE_HOURS of the constraint's activity (NotMeasurable, "not enough data
yet"): ten minutes of a line say nothing about its capacity. The rate the plan needs is the units
its targets still hold over the planned production hours still left; a re-plan (`as_of` +
`delivered`) folds in what was really delivered, so after a bad month the answer gets stricter
instead of staler.

    needs 412/h, the constraint (s4) delivers 378/h when active, 340/h after the 10% reserve:
    17% short: elevate s4
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from analysis.indicators import (
    Spans,
    Telemetry,
    likely_constraint,
    line_states,
    state_ms,
    units_between,
    window,
)
from analysis.targets import HOUR_MS, Decomposition
from shopfloor.contract import ACTIVE_STATES
from shopfloor.errors import ShopfloorError
from shopfloor.plant import Line


class NotMeasurable(ShopfloorError):
    """The telemetry does not show the constraint running long enough to measure its capacity."""


@dataclass(frozen=True, slots=True)
class Capacity:
    station: str
    units: int
    active_hours: float
    downstream_yield: float

    @property
    def per_active_hour(self) -> float:
        """Good units per active hour of the station, as units leaving the line."""
        return self.units / self.active_hours * self.downstream_yield


@dataclass(frozen=True, slots=True)
class Feasibility:
    line: str
    constraint: str
    needed_per_hour: float
    delivered_per_hour: float
    reserve: float
    whatif_gain: float | None = None  # relative output gain of elevating the constraint (simulated)
    evidence_hours: float = 0.0  # the constraint's active hours the capacity rests on
    # issue 14, set by analysis.rollup.feasibility from the plan: the month's planned production hours
    # and what a unit is worth, so the what-if's gain becomes money a month
    month_hours: float | None = None
    throughput_per_unit: float | None = None
    currency: str | None = None

    @property
    def elevation_value_per_month(self) -> float | None:
        """What elevating the constraint is worth a month: the simulated gain of line output applied to
        the constraint's demonstrated rate over the month's planned production hours, at the plan's
        throughput per unit; None without a what-if or money."""
        if None in (self.whatif_gain, self.month_hours, self.throughput_per_unit):
            return None
        return self.whatif_gain * self.delivered_per_hour * self.month_hours * self.throughput_per_unit

    @property
    def available_per_hour(self) -> float:
        return self.delivered_per_hour * (1 - self.reserve)

    @property
    def shortfall(self) -> float:
        """Share of the needed rate the constraint cannot deliver (negative: headroom)."""
        return 1 - self.available_per_hour / self.needed_per_hour if self.needed_per_hour else -1.0

    @property
    def feasible(self) -> bool:
        return self.available_per_hour >= self.needed_per_hour

    @property
    def message(self) -> str:
        head = (f"needs {self.needed_per_hour:.0f}/h, the constraint ({self.constraint}) delivers "
                f"{self.delivered_per_hour:.0f}/h when active (over {self.evidence_hours:.1f} active h)")
        if self.reserve:
            head += f", {self.available_per_hour:.0f}/h after the {self.reserve:.0%} reserve"
        if self.feasible:
            return f"{head}: {-self.shortfall:.0%} headroom: feasible"
        gain = ""
        if self.whatif_gain is not None:
            worth = self.elevation_value_per_month
            money = "" if worth is None else \
                f", worth about {worth:,.0f}{' ' + self.currency if self.currency else ''} a month"
            gain = f" (the simulator gives +{self.whatif_gain:.0%} line output with it elevated{money})"
        return f"{head}: {self.shortfall:.0%} short: elevate {self.constraint}{gain}"

    def to_json(self) -> dict:
        return {"line": self.line, "constraint": self.constraint, "feasible": self.feasible,
                "needed_per_hour": round(self.needed_per_hour, 2),
                "delivered_per_hour": round(self.delivered_per_hour, 2), "reserve": self.reserve,
                "available_per_hour": round(self.available_per_hour, 2),
                "shortfall": round(self.shortfall, 4), "whatif_gain": self.whatif_gain,
                "evidence_hours": round(self.evidence_hours, 2),
                "elevation_value_per_month": None if (worth := self.elevation_value_per_month) is None
                else round(worth, 2), "currency": self.currency,
                "message": self.message}


def needed_rate(targets: Decomposition, now_ms: int | None = None) -> float:
    """Units still due over the planned production hours still left (the whole year without `now`)."""
    start = targets.year_start_ms if now_ms is None else max(now_ms, targets.year_start_ms)
    hours = targets.production_ms_between(start, targets.year_end_ms) / HOUR_MS
    if not hours:
        raise NotMeasurable(f"line {targets.line} has no planned production time left in {targets.year}")
    return targets.due_between(start, targets.year_end_ms) / hours


MIN_ACTIVE_HOURS = 1.0  # the constraint's active time a capacity verdict needs (as pace and forecast)


def demonstrated_capacity(telemetry: Telemetry, line: Line, station: str, start_ms: int, end_ms: int,
                          span: Spans) -> Capacity:
    """The station's good units per active hour in [start, end), with the yield of the stations after it."""
    ids = [s.id for s in line.stations]
    series = window(telemetry[station], start_ms, end_ms)
    spent = state_ms(span, start_ms, end_ms)
    active_hours = sum(spent[state] for state in ACTIVE_STATES) / HOUR_MS
    downstream_yield = 1.0
    for after in ids[ids.index(station) + 1:]:
        done = units_between(telemetry[after], start_ms, end_ms)
        good = units_between(telemetry[after], start_ms, end_ms, good=True)
        if done > 0:
            downstream_yield *= min(max(good / done, 0.0), 1.0)
    good = units_between(series, start_ms, end_ms, good=True)
    return Capacity(station, good, active_hours, downstream_yield)


WhatIf = Callable[[str], float]


def assess(telemetry: Telemetry, line: Line, start_ms: int, end_ms: int, *, needed_per_hour: float,
           reserve: float = 0.0, constraint: str | None = None, whatif: WhatIf | None = None) -> Feasibility:
    """Feasibility of `needed_per_hour` at the line's constraint, measured over [start, end).

    `whatif(station)`, when given, returns the simulated relative gain of the line's output with the
    station elevated (see analysis.whatif); it is only asked when the goal is short.
    """
    missing = [s.id for s in line.stations if not len(telemetry.get(s.id, ()))]
    if missing:
        raise NotMeasurable(f"no telemetry of station {missing[0]} on line {line.id}")
    telemetry = {s: window(series, start_ms, end_ms) for s, series in telemetry.items()}
    states = line_states(telemetry, line)
    constraint = constraint or likely_constraint(states, line, start_ms, end_ms)
    capacity = demonstrated_capacity(telemetry, line, constraint, start_ms, end_ms, states[constraint])
    if capacity.active_hours < MIN_ACTIVE_HOURS:
        raise NotMeasurable(f"not enough data yet: the constraint {constraint} of line {line.id} was active "
                            f"{capacity.active_hours:.1f} h in the window; a capacity verdict needs "
                            f"{MIN_ACTIVE_HOURS:g} h")
    result = Feasibility(line.id, constraint, needed_per_hour, capacity.per_active_hour, reserve,
                         evidence_hours=capacity.active_hours)
    if whatif is not None and not result.feasible:
        return Feasibility(line.id, constraint, needed_per_hour, capacity.per_active_hour, reserve,
                           whatif_gain=whatif(constraint), evidence_hours=capacity.active_hours)
    return result


def scenario_whatif(scenario_path: str | Path, *, speedup: float = 0.0, add_machines: int = 1,
                    hours: float | None = None, reps: int = 10) -> WhatIf:
    """The simulator's what-if as a `WhatIf` for `assess`: the relative gain of the line's output with
    the station elevated, on the scenario that models this line (the what-if glue; analysis imports
    simulators nowhere else)."""
    from simulators.scenario import load_scenario
    from simulators.whatif import whatif

    scenario = load_scenario(scenario_path)

    def gain(station: str) -> float:
        result = whatif(scenario, station, speedup=speedup, add_machines=add_machines, hours=hours, reps=reps)
        return result.gain / result.before if result.before else 0.0

    return gain
