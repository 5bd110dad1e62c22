"""What the boards need to know about one plant: its lines in flow order, its clock and its shifts.

The plant file (plant.toml) gives each line's last station (whose counter is the line's output) and
the plant's time zone; the plan file (plan.toml, optional) gives the shifts, so hour buckets and the
board's shift links start where a shift starts. Both are the same files the rest of the system reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shopfloor.plan import Shift, load_plan
from shopfloor.plant import Plant, load_plant

DEFAULT_INFLUX_URL_IN_GRAFANA = "http://influxdb:8086"


@dataclass(frozen=True, slots=True)
class BoardConfig:
    """Everything a board is generated from; `build` and `push` make the same boards from it."""

    plant: Plant
    shifts: tuple[Shift, ...] = ()
    reserve: float = 0.0  # share of constraint capacity the plan holds back (plan.toml calendar.reserve)
    pace_tolerance: float = 0.10  # plan.toml [escalation]: the huddle's pace and uptime targets
    constraint_uptime: float = 0.85
    influx_url: str = DEFAULT_INFLUX_URL_IN_GRAFANA  # as Grafana reaches InfluxDB (compose: service name)
    database: str = "shopfloor"
    refresh: str = "30s"
    boards_path: str = "/etc/grafana/provisioning/dashboards/shopfloor"
    currency: str | None = None  # plan.toml [[line]] currency, when every line that names one agrees

    @property
    def timezone(self) -> str:
        return self.plant.timezone

    @property
    def bucket_offset(self) -> str:
        """Minutes past the hour at which the shifts start, so hour buckets follow shift hours."""
        minutes = self.shifts[0].start % 60 if self.shifts else 0
        return f"{minutes}m"


def load_config(plant_path: str | Path, plan_path: str | Path | None = None, **options: str) -> BoardConfig:
    plant = load_plant(plant_path)
    if plan_path is None:
        return BoardConfig(plant=plant, **options)
    plan = load_plan(plan_path)
    currencies = {entry.currency for entry in plan.line if entry.currency}
    return BoardConfig(plant=plant, shifts=tuple(plan.calendar.shifts), reserve=plan.calendar.reserve,
                       pace_tolerance=plan.escalation.pace_tolerance,
                       constraint_uptime=plan.escalation.constraint_uptime,
                       currency=currencies.pop() if len(currencies) == 1 else None, **options)
