"""Scenario files: a serial line, how each station behaves, and what changes during the run.

A scenario is the one input of the simulator, the ground truth and the what-if; it also yields the plant
model (`Scenario.plant`) so the detector can be run against the very line that produced the telemetry.
Every error names the file and the field in one line (`ConfigError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shopfloor.contract import IDENTIFIER_PATTERN
from shopfloor.errors import ConfigError
from shopfloor.plant import Line, Plant, Station, TimeZoneName, read_toml, validation_message

Identifier = Field(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=64)
Distribution = Literal["deterministic", "gamma", "lognormal"]


class StationSpec(BaseModel):
    """One station: its process time, reliability, setups and the input buffer in front of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Identifier
    cycle_s: float = Field(gt=0, description="mean process time of one unit on one machine")
    distribution: Distribution = "gamma"
    cv: float = Field(0.0, ge=0, le=3, description="coefficient of variation of the process time")
    buffer: int = Field(5, ge=0, le=1000, description="input buffer capacity in front of the station")
    machines: int = Field(1, ge=1, le=64, description="identical parallel machines sharing the buffer")
    mtbf_min: float | None = Field(None, gt=0, description="mean operating minutes between failures")
    mttr_min: float = Field(0.0, ge=0, description="mean minutes to repair")
    mttr_cv: float = Field(1.0, ge=0, le=3)
    setup_every: int = Field(0, ge=0, description="a setup before every N-th unit; 0: no setups")
    setup_min: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> StationSpec:
        if self.distribution == "deterministic" and self.cv:
            raise ValueError(f"station {self.id}: a deterministic process time has cv = 0")
        if self.distribution != "deterministic" and not self.cv:
            raise ValueError(f"station {self.id}: {self.distribution} needs cv > 0 (or use deterministic)")
        if self.mtbf_min is not None and not self.mttr_min:
            raise ValueError(f"station {self.id}: mtbf_min needs mttr_min > 0")
        if bool(self.setup_every) != bool(self.setup_min):
            raise ValueError(f"station {self.id}: give both setup_every and setup_min, or neither")
        return self

    @property
    def ideal_cycle_s(self) -> float:
        """The station's design cycle per unit: all machines working, nothing lost."""
        return self.cycle_s / self.machines


class Change(BaseModel):
    """From `at_hour` on, a station's process time and repair time differ from its base.

    Values are relative to the station's base, not to the previous change; a key a change leaves out
    keeps the value it had (`slow_by_pct = 0` or `mttr_factor = 1` restore the base).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    at_hour: float = Field(ge=0)
    station: str = Identifier
    slow_by_pct: float | None = Field(None, gt=-90, le=1000, description="process time x (1 + pct/100)")
    mttr_factor: float | None = Field(None, gt=0, le=1000, description="repair times x factor")

    @model_validator(mode="after")
    def _changes_something(self) -> Change:
        if self.slow_by_pct is None and self.mttr_factor is None:
            raise ValueError(f"change at hour {self.at_hour} for {self.station}: give slow_by_pct "
                             "and/or mttr_factor")
        return self


@dataclass(frozen=True, slots=True)
class Period:
    """A stationary stretch of the run: hours [start_h, end_h) with one factor per station."""

    start_h: float
    end_h: float
    slow: tuple[float, ...]  # process-time multiplier per station, 1.0 = base
    mttr: tuple[float, ...]  # repair-time multiplier per station


class Scenario(BaseModel):
    """A serial line in flow order with a saturated source and a free sink."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    name: str = ""
    description: str = ""
    plant_id: str = Field("p1", alias="plant", pattern=IDENTIFIER_PATTERN)
    line_id: str = Field("l1", alias="line", pattern=IDENTIFIER_PATTERN)
    line_name: str = ""
    timezone: TimeZoneName = "UTC"
    hours: float = Field(8.0, gt=0, le=24 * 366, description="default length of a run")
    warmup_min: float = Field(30.0, ge=0, le=24 * 60, description="simulated before the first sample")
    target_per_hour: float | None = Field(None, gt=0, description="the line's hourly output target")
    station: list[StationSpec] = Field(min_length=1, max_length=5000)
    change: list[Change] = []

    @model_validator(mode="after")
    def _known_stations(self) -> Scenario:
        ids = self.station_ids
        if len(set(ids)) != len(ids):
            raise ValueError(f"a station id is used twice: {ids}")
        for change in self.change:
            if change.station not in ids:
                raise ValueError(f"change at hour {change.at_hour} names station {change.station!r}, "
                                 f"which is not on the line {ids}")
        return self

    @property
    def stations(self) -> list[StationSpec]:
        return self.station

    @property
    def station_ids(self) -> list[str]:
        return [s.id for s in self.station]

    def index_of(self, station_id: str) -> int:
        try:
            return self.station_ids.index(station_id)
        except ValueError:
            raise ConfigError(f"scenario has no station {station_id!r}; it has {self.station_ids}") from None

    @property
    def plant(self) -> Plant:
        """The plant model of this line (docs/DESIGN.md §6): ids, buffers and ideal cycles."""
        stations = [Station(id=s.id, buffer=s.buffer, ideal_cycle_s=s.ideal_cycle_s) for s in self.station]
        line = Line(id=self.line_id, name=self.line_name or self.name, station=stations)
        return Plant(plant=self.plant_id, timezone=self.timezone, line=[line])

    def periods(self, hours: float | None = None) -> list[Period]:
        """The stationary periods of a run of `hours` (default: the scenario's), in time order."""
        hours = self.hours if hours is None else hours
        bounds = sorted({c.at_hour for c in self.change if 0 < c.at_hour < hours})
        changes = sorted(self.change, key=lambda c: c.at_hour)  # stable: file order within an hour
        periods: list[Period] = []
        start = 0.0
        for end in [*bounds, hours]:
            slow = [1.0] * len(self.station)
            mttr = [1.0] * len(self.station)
            for change in changes:
                if change.at_hour <= start:
                    k = self.index_of(change.station)
                    if change.slow_by_pct is not None:
                        slow[k] = 1.0 + change.slow_by_pct / 100.0
                    if change.mttr_factor is not None:
                        mttr[k] = change.mttr_factor
            periods.append(Period(start, end, tuple(slow), tuple(mttr)))
            start = end
        return periods

    def repeated_periods(self, hours: float) -> list[Period]:
        """The periods of `hours` with the scenario's pattern starting over every `self.hours` (a shift
        that repeats): the schedule of a long live feed."""
        cycle = self.periods()
        periods: list[Period] = []
        offset = 0.0
        while offset < hours:
            for period in cycle:
                start, end = offset + period.start_h, min(offset + period.end_h, hours)
                if start < end:
                    periods.append(Period(start, end, period.slow, period.mttr))
            offset += self.hours
        return periods


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario TOML file; `[defaults]` fills every station key a station leaves out."""
    document = read_toml(path, "scenario")
    defaults = document.pop("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: defaults must be a table")
    stations = document.get("station")
    if isinstance(stations, list):
        document["station"] = [{**defaults, **s} if isinstance(s, dict) else s for s in stations]
    try:
        return Scenario.model_validate(document)
    except ValidationError as error:
        raise ConfigError(validation_message(path, error)) from None
