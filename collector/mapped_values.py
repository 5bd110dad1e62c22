"""The plant's own topics of one value each (docs/DESIGN.md §6 `[[json_value]]`), combined per station.

Node-RED flows, Kepware's IoT gateway and many UNS trees publish one tag per topic
(`factory/l1/s1/good` -> `1234`). A sample needs count and queue together, so the values of one station
and template are held as they arrive, and **every value message makes a sample** at its own time with
the latest held values of the other fields, the way a Sparkplug report-by-exception DDATA does in
collector/sparkplug.py. Why not let the count drive the samples: a stopped station's count does not
change, so a `down` state would never be stored until it ran again.

Held values live in memory, so a (re)started collector begins each station's from its newest point in
InfluxDB (read once per station, on its first message): otherwise, after a crash, the messages the
broker delivers again would each lack the others' values and make no sample. Until a station has a
count and a queue (never stored yet, or InfluxDB unreadable then), its messages are held and
acknowledged without a point (a sample without either breaks the contract); values the plant publishes
retained come back from the broker too. A value of the wrong type is rejected, and never held. Runs in
the collector's gather thread, one message at a time in arrival order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson

from collector.mapped import Decoded, build_sample
from collector.mapped_json import MISSING, find, matches, timestamp_ms
from shopfloor.contract import STATION_MEASUREMENT, ContractError, StationKey, json_topic_filter
from shopfloor.plant import JsonValue, Plant
from shopfloor.store import Store, StoreError, quote_string

TEXT_FIELDS = frozenset({"state", "reason"})  # fields whose bare value may be unquoted text
Newest = Callable[[StationKey], dict | None]  # a station's newest stored point, field -> value
log = logging.getLogger("shopfloor.collector")


def newest_point(store: Store, key: StationKey) -> dict | None:
    """The station's newest point in STATION_MEASUREMENT, or None if it has none."""
    rows = store.query(f'SELECT * FROM "{STATION_MEASUREMENT}" WHERE plant = {quote_string(key.plant)} AND '
                       f"line = {quote_string(key.line)} AND station = {quote_string(key.station)} "
                       f"ORDER BY time DESC LIMIT 1").rows()
    return rows[0] if rows else None


class JsonValues:
    """Decodes messages on the plant file's `[[json_value]]` templates into samples."""

    def __init__(self, plant: Plant, clock: Callable[[], float] = time.time, newest: Newest | None = None):
        self._plant = plant.plant
        self._clock = clock
        self._newest = newest
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
        if (number, key) not in self._held:
            self._held[(number, key)] = self._seed(key, template)
        held = self._held[(number, key)]
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

    def _seed(self, key: StationKey, template: JsonValue) -> dict[str, object]:
        """Held values to begin a station with: its newest stored count, queue and scrap as they stand,
        its state as a source value that the `states` table turns into it again, its reason as a name."""
        if self._newest is None:
            return {}
        try:
            point = self._newest(key) or {}
        except StoreError as error:  # not once per station: each try could wait for the store's timeout
            log.warning("cannot read the newest stored points (%s); mapped values start empty", error)
            self._newest = None
            return {}
        held: dict[str, object] = {name: point[name] for name in ("count", "queue", "scrap")
                                   if name in template.fields and point.get(name) is not None}
        if "state" in template.fields and (state := point.get("state")) is not None:
            raw = next((text for text, mapped in template.states.items() if mapped == state), None)
            if raw is not None:
                held["state"] = raw
        if "reason" in template.fields and point.get("reason") is not None:
            held["reason"] = point["reason"]  # an identifier: the reason rule keeps it as a name
        return held

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
