"""The plant's own topics of one value each (docs/DESIGN.md §6 `[[json_value]]`), combined per station.

Node-RED flows, Kepware's IoT gateway and many UNS trees publish one tag per topic
(`factory/l1/s1/good` -> `1234`). A sample needs count and queue together, so the values of one station
and template are held as they arrive, and **every value message makes a sample** at its own time with
the latest held values of the other fields, the way a Sparkplug report-by-exception DDATA does in
collector/sparkplug.py. Why not let the count drive the samples: a stopped station's count does not
change, so a `down` state would never be stored until it ran again.

Until a station has had both a count and a queue value since the collector started, its messages are
held and acknowledged without a point (a sample without either breaks the contract); a value of the
wrong type is rejected even then, and never held. Held values live in memory: after a restart they come
back from the broker when the plant publishes them retained (most UNS tools do), else with the next
change. Runs in the collector's gather thread, one message at a time in arrival order.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from collector.mapped import Decoded, build_sample
from collector.mapped_json import MISSING, find, matches, timestamp_ms
from shopfloor.contract import ContractError, StationKey, json_topic_filter
from shopfloor.plant import JsonValue, Plant

TEXT_FIELDS = frozenset({"state", "reason"})  # fields whose bare value may be unquoted text


class JsonValues:
    """Decodes messages on the plant file's `[[json_value]]` templates into samples."""

    def __init__(self, plant: Plant, clock: Callable[[], float] = time.time):
        self._plant = plant.plant
        self._clock = clock
        self._stations = {(line.id, station.id) for line in plant.lines for station in line.stations}
        # (topic levels with {line} and {station}, template number, template, sample field)
        self._patterns = [(topic.split("/"), number, template, name)
                          for number, template in enumerate(plant.json_value)
                          for name, topic in template.field_topics.items()]
        self._held: dict[tuple[int, StationKey], dict[str, object]] = {}

    @property
    def subscriptions(self) -> list[str]:
        """One filter per mapped field (`factory/+/+/good`): the station's other tags are not fetched."""
        return sorted({json_topic_filter("/".join(pattern)) for pattern, *_ in self._patterns})

    def handles(self, topic: str) -> bool:
        levels = topic.split("/")
        return any(matches(pattern, levels) for pattern, *_ in self._patterns)

    def decode(self, topic: str, payload: bytes) -> Decoded:
        levels = topic.split("/")
        for pattern, number, template, name in self._patterns:
            if not matches(pattern, levels):
                continue
            line, station = levels[pattern.index("{line}")], levels[pattern.index("{station}")]
            if (line, station) not in self._stations:
                continue
            try:
                return self._value(number, template, name, StationKey(self._plant, line, station), payload)
            except ContractError as error:
                return Decoded([], f"{template.field_topics[name]}: {error}")
        templates = ", ".join(sorted({"/".join(p[0]) for p in self._patterns}))
        return Decoded([], f"topic {topic!r} names no line and station of plant {self._plant} through "
                           f"any template ({templates})")

    def _value(self, number: int, template: JsonValue, name: str, key: StationKey, payload: bytes) -> Decoded:
        value, ts = self._read(template, name, payload)
        held = self._held.get((number, key), {})
        values = {**held, name: value}
        names = template.fields  # errors name the field's topic level: "'good' -> count: ..."
        if values.get("count") is None or values.get("queue") is None:
            # no sample yet: check the value alone (a placeholder for what has not arrived), then hold it
            build_sample(key, ts, {"count": 0, "queue": 0, **values}, template, names)
            self._held[(number, key)] = values
            return Decoded([], None)
        line, warning = build_sample(key, ts, values, template, names)
        self._held[(number, key)] = values
        return Decoded([line], None, [warning] if warning else [])

    def _read(self, template: JsonValue, name: str, payload: bytes) -> tuple[object, int]:
        """(value, ts in ms) of one message: the bare payload at arrival time, or from a JSON object."""
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            if template.value is None and name in TEXT_FIELDS:
                try:
                    text = payload.decode().strip()
                except UnicodeDecodeError:
                    raise ContractError("payload is neither JSON nor UTF-8 text") from None
                if text and text.isprintable():
                    return text, self._arrival()
            raise ContractError(f"payload {payload[:40]!r} is not a JSON value") from None
        if template.value is None:
            if isinstance(document, dict | list):
                raise ContractError("payload is a JSON object or list, not a bare value (map its path with "
                                    "`value`)")
            return document, self._arrival()
        if (value := find(document, template.value)) is MISSING:
            raise ContractError(f"no value at path {template.value!r}")
        if isinstance(value, dict | list):
            raise ContractError(f"the value at path {template.value!r} is a JSON object or list")
        if template.ts is None:
            return value, self._arrival()
        if (raw_ts := find(document, template.ts)) is MISSING:
            raise ContractError(f"no timestamp at path {template.ts!r}")
        return value, timestamp_ms(raw_ts, template.ts_unit)

    def _arrival(self) -> int:
        return int(self._clock() * 1000)
