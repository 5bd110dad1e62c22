"""`shopfloor collector check --plant P`: for every station, where its data comes from and whether any
arrived in the last minute.

Why: with mapped sources a station's data no longer comes from an agent the plant installed for us, so a
typo in a metric name or a template shows only as a station that stays empty. This lists each station's
mapped source (Sparkplug B group/node/device and metrics, the JSON topic, or our agent's topic), its
newest stored sample and, for Sparkplug, its last birth or death, straight from InfluxDB.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from shopfloor.contract import SOURCE_MEASUREMENT, STATION_MEASUREMENT, StationKey, telemetry_topic
from shopfloor.plant import Plant, Station
from shopfloor.store import Store, quote_string

FRESH_MS = 60_000


@dataclass(slots=True)
class StationCheck:
    line: str
    station: str
    source: str
    last_sample_ms: int | None
    fresh: bool
    source_event: str | None  # the Sparkplug source's last birth or death, e.g. "NDEATH"


def describe_source(plant: Plant, line_id: str, station: Station) -> str:
    """The station's mapped source in one line."""
    if (src := station.sparkplug) is not None:
        fields = ", ".join(f"{name}={getattr(src, name)!r}" for name in ("count", "queue", "scrap", "state")
                           if getattr(src, name))
        return f"sparkplug {src.label} ({fields})"
    topics = [topic.replace("{line}", line_id).replace("{station}", station.id)
              for topic in [t.topic for t in plant.json_topic]
              + [f"{f}={topic}" for t in plant.json_value for f, topic in t.field_topics.items()]]
    agent = f"agent {station.agent_id}: {telemetry_topic(StationKey(plant.plant, line_id, station.id))}"
    return " | ".join([f"json {topic}" for topic in topics] + [agent])


def _latest(store: Store, measurement: str, field: str, plant: str) -> dict[tuple[str, str], dict]:
    result = store.query(f'SELECT last("{field}") AS value FROM "{measurement}" WHERE plant = '
                         f"{quote_string(plant)} GROUP BY line, station")
    return {(s.tags["line"], s.tags["station"]): s.rows()[0] for s in result.series if s.values}


def check(plant: Plant, store: Store, now_ms: int | None = None) -> list[StationCheck]:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    samples = _latest(store, STATION_MEASUREMENT, "seq", plant.plant)
    events = _latest(store, SOURCE_MEASUREMENT, "event", plant.plant)
    checks = []
    for line in plant.lines:
        for station in line.stations:
            last = samples.get((line.id, station.id), {}).get("time")
            event = events.get((line.id, station.id))
            checks.append(StationCheck(line.id, station.id, describe_source(plant, line.id, station), last,
                                       last is not None and now_ms - last <= FRESH_MS,
                                       event["value"] if event else None))
    return checks


def as_dicts(checks: list[StationCheck]) -> list[dict]:
    return [asdict(c) for c in checks]
