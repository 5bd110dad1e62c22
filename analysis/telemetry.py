"""One line's telemetry as numpy arrays per station, from a JSON Lines file or from InfluxDB rows.

Why: every method in analysis/ works on whole columns (time, count, queue, state) of a station, so the
samples are gathered once, sorted by time, with duplicates of the same timestamp collapsed (at-least-
once delivery may repeat a sample; the store keeps the last, and so does this).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shopfloor.contract import STATES, ContractError, Sample, read_columns
from shopfloor.errors import ConfigError, ShopfloorError
from shopfloor.plant import Line, Plant

UNKNOWN = -1
STATE_CODE = {name: code for code, name in enumerate(STATES)}  # working 0 ... idle 5
WORKING, SETUP, DOWN, STARVED, BLOCKED, IDLE = (STATE_CODE[name] for name in STATES)
ACTIVE_CODES = (WORKING, SETUP, DOWN)


class TelemetryError(ShopfloorError, ValueError):
    """Telemetry that cannot be analysed for this line (none of it, or stations the plant lacks)."""


@dataclass(frozen=True, slots=True)
class StationSeries:
    """One station's samples in time order; `state` is UNKNOWN where the sample had none."""

    ts: np.ndarray
    count: np.ndarray
    queue: np.ndarray
    scrap: np.ndarray
    state: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def has_states(self) -> bool:
        return len(self.state) > 0 and bool((self.state != UNKNOWN).all())

    def without_states(self) -> StationSeries:
        return StationSeries(self.ts, self.count, self.queue, self.scrap,
                             np.full(len(self.ts), UNKNOWN, dtype=np.int8))


@dataclass(frozen=True, slots=True)
class LineTelemetry:
    """All stations of one line, in flow order (a station without samples has empty arrays)."""

    plant: str
    line: Line
    series: list[StationSeries]

    @property
    def stations(self) -> list[str]:
        return self.line.station_ids

    @property
    def begin_ms(self) -> int:
        return min(int(s.ts[0]) for s in self.series if len(s))

    @property
    def end_ms(self) -> int:
        return max(int(s.ts[-1]) for s in self.series if len(s))

    @property
    def has_states(self) -> bool:
        return all(s.has_states for s in self.series if len(s))

    def without_states(self) -> LineTelemetry:
        return LineTelemetry(self.plant, self.line, [s.without_states() for s in self.series])

    def between(self, from_ms: int, to_ms: int) -> LineTelemetry:
        """The samples in [from_ms, to_ms), as a live reader of the store would see them at `to_ms`."""
        def cut(s: StationSeries) -> StationSeries:
            first, last = np.searchsorted(s.ts, [from_ms, to_ms])
            return StationSeries(s.ts[first:last], s.count[first:last], s.queue[first:last],
                                 s.scrap[first:last], s.state[first:last])

        return LineTelemetry(self.plant, self.line, [cut(s) for s in self.series])


def _series(rows: list[tuple[int, int, int, int, int, int]]) -> StationSeries:
    table = np.asarray(rows, dtype=np.int64).reshape(-1, 6)
    return _columns_series(table[:, 0], table[:, 1], table[:, 2], table[:, 3], table[:, 4],
                           table[:, 5].astype(bool))


def _columns_series(ts: np.ndarray, count: np.ndarray, queue: np.ndarray, scrap: np.ndarray,
                    state: np.ndarray, has_scrap: np.ndarray) -> StationSeries:
    """One station's columns in file or store order: sorted by time, the last of each timestamp kept."""
    order = np.argsort(ts, kind="stable")
    if len(order):
        later = ts[order]
        order = order[np.append(later[1:] != later[:-1], True)]
    scrap = scrap[order]  # a copy: the hold writes into it
    _hold_scrap(scrap, has_scrap[order])
    return StationSeries(ts[order], count[order], queue[order], scrap, state[order].astype(np.int8))


def _hold_scrap(scrap: np.ndarray, reported: np.ndarray) -> None:
    """In place: a sample without `scrap` holds the last reported value (before the first report, the
    first report's), so a missing scrap is never read as 0 (shopfloor.counters: no units, no reset)."""
    if reported.all() or not reported.any():
        return
    last = np.maximum.accumulate(np.where(reported, np.arange(len(scrap)), -1))
    first = int(np.argmax(reported))
    scrap[:] = np.where(last >= 0, scrap[np.maximum(last, 0)], scrap[first])


def _row(sample: Sample | dict[str, Any]) -> tuple[int, int, int, int, int, int]:
    state = sample.get("state")
    scrap = sample.get("scrap")
    return (sample["ts"], sample["count"], sample["queue"], scrap or 0,
            STATE_CODE.get(state, UNKNOWN) if state is not None else UNKNOWN, scrap is not None)


def _unknown_station(source: str, station: str, line: Line) -> TelemetryError:
    return TelemetryError(f"{source} has station {station!r} on line {line.id}, which the plant "
                          f"file does not list ({line.station_ids}); add it or fix the station id")


def gather(plant: Plant, line_id: str, samples: Iterable[tuple[str, Sample | dict[str, Any]]],
           source: str) -> LineTelemetry:
    """Group (station, sample) pairs of one line into arrays; unknown stations are an error."""
    line = plant.get_line(line_id)
    rows: dict[str, list] = {station: [] for station in line.station_ids}
    for station, sample in samples:
        bucket = rows.get(station)
        if bucket is None:
            raise _unknown_station(source, station, line)
        bucket.append(_row(sample))
    if not any(rows.values()):
        raise TelemetryError(f"{source} has no samples of line {line_id} of plant {plant.plant}")
    return LineTelemetry(plant.plant, line, [_series(rows[s]) for s in line.station_ids])


def from_file(plant: Plant, line_id: str, path: str | Path) -> LineTelemetry:
    """Read one line's samples from a telemetry file (the offline file form, docs/DESIGN.md §4).

    The file is read as columns by the contract's bulk reader (`read_columns`: 4x the per-record path
    under load, bench/README.md), and split per station with numpy.
    """
    if not Path(path).is_file():
        raise TelemetryError(f"telemetry file {path} does not exist")
    source = f"telemetry file {path}"
    try:
        columns = read_columns(path)
    except ContractError as error:
        raise TelemetryError(str(error)) from None
    line = plant.get_line(line_id)
    mine = {key.station: code for code, key in enumerate(columns.keys)
            if key.plant == plant.plant and key.line == line_id}
    unknown = [station for station in mine if station not in line.station_ids]
    if unknown:  # keys come in the order the file meets them: the first one, as gather names it
        raise _unknown_station(source, unknown[0], line)
    if not mine:
        seen_plants = {key.plant for key in columns.keys}
        if seen_plants and plant.plant not in seen_plants:
            raise TelemetryError(f"{source} holds plant(s) {sorted(seen_plants)}, not "
                                 f"{plant.plant} of the plant file")
        raise TelemetryError(f"{source} has no samples of line {line_id} of plant {plant.plant}")
    order = np.argsort(columns.key, kind="stable")
    bounds = np.searchsorted(columns.key[order], np.arange(len(columns.keys) + 1))

    def station_series(station: str) -> StationSeries:
        code = mine.get(station)
        rows = order[bounds[code]:bounds[code + 1]] if code is not None else order[:0]
        return _columns_series(columns.ts[rows], columns.count[rows], columns.queue[rows],
                               columns.scrap[rows], columns.state[rows], columns.has_scrap[rows])

    return LineTelemetry(plant.plant, line, [station_series(s) for s in line.station_ids])


def from_store(store, plant: Plant, line_id: str, from_ms: int, to_ms: int,
               chunk_ms: int = 3_600_000) -> LineTelemetry:
    """Read one line's samples in `[from_ms, to_ms)` from InfluxDB (measurement `station`).

    Queried per station and per hour so no single answer grows past what InfluxDB returns in one piece.
    """
    from dashboards import queries  # the one module of measurement `station`'s InfluxQL

    line = plant.get_line(line_id)
    if to_ms <= from_ms:
        raise TelemetryError(f"the time range is empty: --from {from_ms} is not before --to {to_ms}")

    def samples():
        for station in line.station_ids:
            for start in range(from_ms, to_ms, chunk_ms):
                stop = min(start + chunk_ms, to_ms)
                result = store.query(queries.samples(plant.plant, line_id, station, start, stop))
                for row in result.rows():
                    if row["count"] is None or row["queue"] is None:
                        continue
                    yield station, {"ts": row["time"], "count": row["count"], "queue": row["queue"],
                                    "scrap": row["scrap"], "state": row["state"]}

    return gather(plant, line_id, samples(), f"InfluxDB {store.url} database {store.database}")


def parse_time(value: str, flag: str) -> int:
    """Milliseconds since the epoch from an integer or an ISO 8601 time (UTC unless it has an offset)."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag} {value!r} is neither ms since the epoch nor an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)
