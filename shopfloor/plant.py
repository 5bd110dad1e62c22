"""The plant file (docs/DESIGN.md §6): which lines exist and their stations in flow order.

Loaded once into plain pydantic models; every error names the file and the field, in one line.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from shopfloor.contract import IDENTIFIER_PATTERN
from shopfloor.errors import ConfigError

# Anchored: pydantic matches a pattern anywhere in the value, so "s 1" would pass the bare pattern.
Identifier = Field(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=64)


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r}: use an IANA name like Europe/Berlin") from None
    return value


# An IANA time zone name, checked when a plant, plan or scenario file is read.
TimeZoneName = Annotated[str, AfterValidator(_known_zone)]


class Station(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Identifier
    buffer: int = Field(ge=0, description="capacity of the input buffer in front of this station")
    ideal_cycle_s: float = Field(gt=0)
    # Optional: the edge agent (line PC) that publishes this station, as its agent.toml names it. Stations
    # of one line with the same agent share one broker credential (`shopfloor security init`). Default: an
    # agent per station, named after the station.
    agent: str | None = Field(None, pattern=IDENTIFIER_PATTERN, min_length=1, max_length=64)

    @property
    def agent_id(self) -> str:
        """The agent that publishes this station: the `agent` key, else the station's own id."""
        return self.agent or self.id


class Line(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Identifier
    name: str = ""
    station: list[Station] = Field(min_length=1)

    @property
    def stations(self) -> list[Station]:
        return self.station

    @property
    def station_ids(self) -> list[str]:
        return [s.id for s in self.station]

    @model_validator(mode="after")
    def _unique_stations(self) -> Line:
        ids = self.station_ids
        if len(set(ids)) != len(ids):
            raise ValueError(f"line {self.id} lists a station twice: {ids}")
        return self


class Plant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    plant: str = Identifier
    timezone: TimeZoneName = "UTC"
    line: list[Line] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_lines(self) -> Plant:
        ids = [line.id for line in self.line]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a line id is used twice: {ids}")
        return self

    @property
    def lines(self) -> list[Line]:
        return self.line

    def get_line(self, line_id: str) -> Line:
        for line in self.line:
            if line.id == line_id:
                return line
        raise ConfigError(f"plant {self.plant} has no line {line_id!r}; it has {[x.id for x in self.line]}")


def read_toml(path: str | Path, what: str) -> dict:
    """Read a TOML file, turning a missing file or bad syntax into one ConfigError line."""
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{what} file {path} is not valid TOML: {error}") from None


def validation_message(path: str | Path, error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{path}: {where + ': ' if where else ''}{message}"


def load_plant(path: str | Path) -> Plant:
    try:
        return Plant.model_validate(read_toml(path, "plant"))
    except ValidationError as error:
        raise ConfigError(validation_message(path, error)) from None
