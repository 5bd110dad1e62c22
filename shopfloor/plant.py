"""The plant file (docs/DESIGN.md §6): which lines exist and their stations in flow order.

Loaded once into plain pydantic models; every error names the file and the field, in one line.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from shopfloor.contract import IDENTIFIER_PATTERN, State
from shopfloor.errors import ConfigError
from shopfloor.reasons import ReasonTable

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


# --- mappings from a plant's existing MQTT network (docs/DESIGN.md §6, collector/README.md) ------------

# A metric or JSON value, written as text (TOML keys are strings: 1 -> "1", true -> "true"), to a state.
StateTable = dict[str, State]


def _reason_needs_a_state(what: str, state: str | None, reason: str | None) -> None:
    """A mapped reason needs a mapped state: a reason holds only while the station stops (§4)."""
    if reason and not state:
        raise ValueError(f"{what} {reason!r} is mapped to reason without a state: a reason holds only "
                         f"while the station is down, setup or idle")


class SparkplugSource(BaseModel):
    """Which Sparkplug B edge node (and device) publishes a station, and which metric is which field.

    `reason` is a metric holding a code of the `reasons` table or a reason name (shopfloor/reasons.py).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    group: str = Field(min_length=1)
    node: str = Field(min_length=1)
    device: str | None = Field(None, min_length=1, description="omitted: the edge node's own metrics")
    count: str = Field(min_length=1)
    queue: str = Field(min_length=1)
    scrap: str | None = None
    state: str | None = None
    reason: str | None = None
    states: StateTable = Field(default_factory=dict)
    reasons: ReasonTable = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tables(self) -> SparkplugSource:
        if self.state and not self.states:
            raise ValueError(f"sparkplug metric {self.state!r} is mapped to state without a `states` table")
        _reason_needs_a_state("sparkplug metric", self.state, self.reason)
        return self

    @property
    def label(self) -> str:
        return "/".join(x for x in (self.group, self.node, self.device) if x)


class JsonTopic(BaseModel):
    """A topic template of the plant's own JSON messages: `{line}` and `{station}` name whole topic
    levels, matched against this file's ids; the other keys are dotted JSON paths to the sample fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    topic: str
    ts: str = Field(min_length=1)
    ts_unit: Literal["ms", "s", "iso"] = "ms"
    count: str = Field(min_length=1)
    queue: str = Field(min_length=1)
    scrap: str | None = None
    state: str | None = None
    reason: str | None = None
    seq: str | None = Field(None, description="omitted: the sample's ts in ms serves as its seq")
    states: StateTable = Field(default_factory=dict)
    reasons: ReasonTable = Field(default_factory=dict)

    @model_validator(mode="after")
    def _template(self) -> JsonTopic:
        _reason_needs_a_state("JSON path", self.state, self.reason)
        levels = self.topic.split("/")
        if levels.count("{line}") != 1 or levels.count("{station}") != 1:
            raise ValueError(f"topic template {self.topic!r} needs levels {{line}} and {{station}} once")
        if any(("{" in level or "+" in level or "#" in level) and level not in ("{line}", "{station}")
               for level in levels) or "" in levels:
            raise ValueError(f"topic template {self.topic!r}: a level is {{line}}, {{station}} or plain text")
        return self


VALUE_FIELDS = ("count", "queue", "scrap", "state", "reason")


def _plain_level(level: str) -> bool:
    """A topic level without wildcards or placeholders, not empty."""
    return bool(level) and not any(c in level for c in "+#{}")


def _plain_levels(text: str) -> bool:
    return all(_plain_level(level) for level in text.split("/"))


class JsonValue(BaseModel):
    """One value per topic: a template with `{line}`, `{station}` and `{field}` levels, and for each sample
    field the text that stands for `{field}` (one or more plain levels: "good", "counters/good").

    The payload is the bare value (a JSON number, string, true/false or null; unquoted text for `state`
    and `reason`), or, with `value`, a JSON object holding it at that dotted path and, with `ts`, its
    time. Without `ts` the sample time is the collector's clock when the message arrives.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    topic: str
    count: str = Field(min_length=1)
    queue: str = Field(min_length=1)
    scrap: str | None = Field(None, min_length=1)
    state: str | None = Field(None, min_length=1)
    reason: str | None = Field(None, min_length=1)
    value: str | None = Field(None, min_length=1, description="omitted: the payload is the bare value")
    ts: str | None = Field(None, min_length=1, description="omitted: the arrival time")
    ts_unit: Literal["ms", "s", "iso"] = "ms"
    states: StateTable = Field(default_factory=dict)
    reasons: ReasonTable = Field(default_factory=dict)

    @model_validator(mode="after")
    def _template(self) -> JsonValue:
        levels = self.topic.split("/")
        if any(levels.count(p) != 1 for p in ("{line}", "{station}", "{field}")):
            raise ValueError(f"topic template {self.topic!r} needs levels {{line}}, {{station}} and "
                             f"{{field}} once each")
        if not all(_plain_level(x) for x in levels if x not in ("{line}", "{station}", "{field}")):
            raise ValueError(f"topic template {self.topic!r}: a level is {{line}}, {{station}}, {{field}} "
                             f"or plain text")
        texts = list(self.fields.values())
        if bad := [text for text in texts if not _plain_levels(text)]:
            raise ValueError(f"{bad[0]!r} is not plain topic levels (no +, #, braces or empty levels)")
        if len(set(texts)) != len(texts):
            raise ValueError(f"two fields of {self.topic!r} name the same topic level {texts}")
        if self.ts and not self.value:
            raise ValueError("`ts` needs `value`: a bare value carries no timestamp")
        _reason_needs_a_state("JSON value", self.state, self.reason)
        return self

    @property
    def fields(self) -> dict[str, str]:
        """Sample field -> the text of its `{field}` level, for the fields this template maps."""
        return {name: text for name in VALUE_FIELDS if (text := getattr(self, name)) is not None}

    @property
    def field_topics(self) -> dict[str, str]:
        """Sample field -> its own topic template, e.g. count -> `factory/{line}/{station}/good`."""
        return {name: self.topic.replace("{field}", text) for name, text in self.fields.items()}


class Station(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Identifier
    buffer: int = Field(ge=0, description="capacity of the input buffer in front of this station")
    ideal_cycle_s: float = Field(gt=0)
    # Optional: the edge agent (line PC) that publishes this station, as its agent.toml names it. Stations
    # of one line with the same agent share one broker credential (`shopfloor security init`). Default: an
    # agent per station, named after the station.
    agent: str | None = Field(None, pattern=IDENTIFIER_PATTERN, min_length=1, max_length=64)
    # Optional: the station is published by the plant's Sparkplug B network, not by our agent.
    sparkplug: SparkplugSource | None = None

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
    # Optional: the plant's own JSON topics the collector maps to stations (docs/DESIGN.md §6).
    json_topic: list[JsonTopic] = Field(default_factory=list)
    # Optional: the plant's own topics of one value each (a field per topic), combined per station.
    json_value: list[JsonValue] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_lines(self) -> Plant:
        ids = [line.id for line in self.line]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a line id is used twice: {ids}")
        sources = [(s.sparkplug.group, s.sparkplug.node, s.sparkplug.device)
                   for line in self.line for s in line.station if s.sparkplug]
        if len(set(sources)) != len(sources):
            raise ValueError("two stations map the same Sparkplug group/node/device")
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
