"""What-if: the line's output before and after elevating one station, with confidence intervals.

Analysis turns this into "elevate this constraint and you gain N units a day". Both versions of the
line run on the same random draws (common random numbers), so the gain's interval comes from paired
differences and is far narrower than the difference of two independent intervals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from shopfloor.errors import ConfigError
from simulators.draws import US
from simulators.engine import LineModel, Variant, simulate
from simulators.scenario import Scenario
from simulators.stats import mean_and_halfwidth


@dataclass(frozen=True, slots=True)
class WhatIf:
    """Output in units per hour, each with the half-width of its 95 % confidence interval."""

    station: str
    speedup: float
    add_machines: int
    hours: float
    replications: int
    before: float
    before_ci: float
    after: float
    after_ci: float
    gain: float
    gain_ci: float
    target_per_hour: float | None

    def per_day(self, hours_per_day: float = 24.0) -> tuple[float, float]:
        """The gain in units a day of `hours_per_day` production hours, with its half-width."""
        return self.gain * hours_per_day, self.gain_ci * hours_per_day

    def as_dict(self) -> dict:
        return asdict(self)


def whatif(scenario: Scenario, station: str, *, speedup: float = 0.0, add_machines: int = 0,
           hours: float | None = None, reps: int = 20, seed: int = 0) -> WhatIf:
    """Simulate the scenario (with its changes) as it is and with `station` elevated.

    `speedup` 0.1 gives the station 10 % more units per hour of active time (setups, work and
    repairs all 1/1.1 as long); `add_machines` puts that many identical machines beside it.
    """
    if speedup <= -1:
        raise ConfigError(f"speedup {speedup} would stop the station: use a value above -1")
    if add_machines < 0:
        raise ConfigError(f"add_machines {add_machines}: only 0 or more machines can be added")
    if reps < 2:
        raise ConfigError("a confidence interval needs at least 2 replications")
    hours = scenario.hours if hours is None else hours
    if hours <= 0:
        raise ConfigError("hours must be above 0")
    k = scenario.index_of(station)
    model = LineModel.of(scenario, hours)
    scale = tuple(1.0 / (1.0 + speedup) if j == k else 1.0 for j in range(model.size))
    machines = tuple(int(c) + (add_machines if j == k else 0) for j, c in enumerate(model.machines))
    end_us = model.warmup_us + int(hours * 3600 * US)
    run = simulate(model, end_us, reps=reps, seed=seed, variants=[Variant(), Variant(scale, machines)])
    per_hour = run.output(model.warmup_us, end_us) / hours
    before, before_ci = mean_and_halfwidth(per_hour[0])
    after, after_ci = mean_and_halfwidth(per_hour[1])
    gain, gain_ci = mean_and_halfwidth(per_hour[1] - per_hour[0])
    return WhatIf(station, speedup, add_machines, hours, reps, before, before_ci, after, after_ci,
                  gain, gain_ci, scenario.target_per_hour)


def describe(result: WhatIf, hours_per_day: float = 24.0) -> list[str]:
    """The result as lines a person reads at the huddle."""
    change = []
    if result.speedup:
        change.append(f"{result.speedup:+.0%} speed")
    if result.add_machines:
        change.append(f"+{result.add_machines} machine{'s' if result.add_machines > 1 else ''}")
    day, day_ci = result.per_day(hours_per_day)
    lines = [
        f"{result.station} {' and '.join(change) or 'unchanged'}: {result.hours:g} h, "
        f"{result.replications} replications, 95 % intervals",
        f"  before  {result.before:8.1f} ± {result.before_ci:.1f} units/h",
        f"  after   {result.after:8.1f} ± {result.after_ci:.1f} units/h",
        f"  gain    {result.gain:+8.1f} ± {result.gain_ci:.1f} units/h  "
        f"= {day:+.0f} ± {day_ci:.0f} units per {hours_per_day:g} h day",
    ]
    if result.target_per_hour:
        target = result.target_per_hour
        lines.append(f"  target  {target:8.1f} units/h: before {result.before / target - 1:+.1%}, "
                     f"after {result.after / target - 1:+.1%}")
    return lines

