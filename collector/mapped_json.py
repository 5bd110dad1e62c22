"""The plant's own JSON topics, mapped to stations by topic templates and JSON paths (docs/DESIGN.md §6).

A template such as `factory/{line}/{station}/metrics` becomes the subscription `factory/+/+/metrics`;
the two levels must name a line and station of the plant file (no station is made up from a topic).
Each field is a dotted JSON path (`counters.good`, `lanes.0.queue`); the timestamp is in ms, s or
ISO 8601 with a UTC offset (a local time without one is refused: the collector does not guess the zone).
"""

from __future__ import annotations

from datetime import datetime

import orjson

from collector.mapped import Decoded, build_sample
from shopfloor.contract import ContractError, StationKey, json_topic_filter
from shopfloor.plant import JsonTopic, Plant

MISSING = object()


def find(document: object, path: str) -> object:
    """The value at a dotted path (list indexes as numbers), or MISSING."""
    for part in path.split("."):
        if isinstance(document, dict) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return MISSING
    return document


def timestamp_ms(value: object, unit: str) -> int:
    """A JSON timestamp in the template's unit as ms since the epoch, or ContractError."""
    if unit == "iso":
        if not isinstance(value, str):
            raise ContractError(f"timestamp {value!r} is not an ISO 8601 string")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ContractError(f"timestamp {value!r} is not ISO 8601") from None
        if moment.tzinfo is None:
            raise ContractError(f"timestamp {value!r} has no UTC offset")
        return round(moment.timestamp() * 1000)
    whole = isinstance(value, int) and not isinstance(value, bool)
    if not (whole or (unit == "s" and isinstance(value, float))):
        raise ContractError(f"timestamp {value!r} is not a number of {unit}")
    return round(value * 1000) if unit == "s" else value


class JsonTopics:
    """Decodes messages on the plant file's `[[json_topic]]` templates."""

    def __init__(self, plant: Plant):
        self._plant = plant.plant
        self._stations = {(line.id, station.id) for line in plant.lines for station in line.stations}
        self._templates = [(template.topic.split("/"), template) for template in plant.json_topic]

    @property
    def subscriptions(self) -> list[str]:
        return sorted({json_topic_filter(template.topic) for _, template in self._templates})

    def handles(self, topic: str) -> bool:
        levels = topic.split("/")
        return any(matches(pattern, levels) for pattern, _ in self._templates)

    def decode(self, topic: str, payload: bytes) -> Decoded:
        levels = topic.split("/")
        for pattern, template in self._templates:
            if not matches(pattern, levels):
                continue
            line, station = levels[pattern.index("{line}")], levels[pattern.index("{station}")]
            if (line, station) not in self._stations:
                continue
            key = StationKey(self._plant, line, station)
            try:
                line, warning = self._sample(key, template, payload)
                return Decoded([line], None, [warning] if warning else [])
            except ContractError as error:
                return Decoded([], f"{template.topic}: {error}")
        return Decoded([], f"topic {topic!r} names no line and station of plant {self._plant} through "
                           f"any template ({', '.join(t.topic for _, t in self._templates)})")

    @staticmethod
    def _sample(key: StationKey, template: JsonTopic, payload: bytes) -> tuple[str, str | None]:
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise ContractError(f"payload is not UTF-8 JSON: {error}") from None
        names = {name: path for name in ("count", "queue", "scrap", "state", "reason", "seq")
                 if (path := getattr(template, name)) is not None}
        values = {name: find(document, path) for name, path in names.items()}
        for name in ("count", "queue"):
            if values[name] is MISSING:
                raise ContractError(f"no value at path {names[name]!r} ({name})")
        values = {name: value for name, value in values.items() if value is not MISSING}
        if (raw_ts := find(document, template.ts)) is MISSING:
            raise ContractError(f"no timestamp at path {template.ts!r}")
        return build_sample(key, timestamp_ms(raw_ts, template.ts_unit), values, template, names)


def matches(pattern: list[str], levels: list[str]) -> bool:
    return len(pattern) == len(levels) and all(p in ("{line}", "{station}") or p == level
                                               for p, level in zip(pattern, levels, strict=True))
