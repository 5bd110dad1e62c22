"""Every board query, expanded as Grafana would, runs against the real InfluxDB filled with simulator data.

The simulator's JSON Lines file goes in through contract.read_records + sample_line + store.write (the
point shape the collector writes). Output panels are checked against the same numbers computed in
Python from the file: last count per local hour, differences, resets dropped.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dashboards import executive, line_huddle
from dashboards.boards import all_boards
from dashboards.config import BoardConfig
from dashboards.grafana import iter_queries
from dashboards.macros import QueryContext, expand, resolve_time
from shopfloor.contract import StationKey, read_records, sample_line
from shopfloor.plant import Plant
from simulators.scenario import load_scenario

pytestmark = pytest.mark.servers

SCENARIO = Path(__file__).parents[1] / "docker" / "scenario.toml"
HOURS = 3
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory) -> Path:
    """A 3-hour run of the demo line from the real simulator, as its JSON Lines file."""
    out = tmp_path_factory.mktemp("sim") / "line.jsonl"
    subprocess.run([sys.executable, "-m", "shopfloor", "sim", "run", str(SCENARIO), "--hours", str(HOURS),
                    "--seed", "11", "--out", str(out)], check=True, timeout=60, capture_output=True)
    return out


@pytest.fixture
def filled(store, telemetry, plant_id):
    """The store holding the file's samples under a plant id of this test, and that plant's model."""
    scenario = load_scenario(SCENARIO).plant
    plant = Plant(plant=plant_id, timezone=scenario.timezone, line=scenario.line)
    records = [(StationKey(plant_id, key.line, key.station), sample)
               for key, sample in read_records(telemetry)]
    lines = [sample_line(key, sample) for key, sample in records]
    for start in range(0, len(lines), 5000):
        store.write(lines[start:start + 5000])
    return store, plant, records


def _context(plant: Plant, board: dict, start_ms: int, end_ms: int) -> QueryContext:
    variables = {"plant": plant.plant, "line": plant.lines[0].id, "timezone": plant.timezone,
                 "bucket_offset": "0m"}
    names = {v["name"] for v in board["templating"]["list"]}
    return QueryContext(start_ms, end_ms, {k: v for k, v in variables.items() if k in names})


def _expected_hourly(records, station: str, zone: ZoneInfo) -> dict[int, int]:
    """Python's own answer: last count per local clock hour, differences >= 0 between hours."""
    last: dict[int, int] = {}
    for key, sample in sorted(records, key=lambda item: item[1]["ts"]):
        if key.station == station:
            last[sample["ts"] // HOUR_MS * HOUR_MS] = sample["count"]
    hours = sorted(last)
    return {hour: last[hour] - last[before] for before, hour in zip(hours, hours[1:], strict=False)
            if last[hour] >= last[before]}


def test_every_query_runs_and_returns_the_expected_shape(filled):
    store, plant, records = filled
    config = BoardConfig(plant=plant)
    first = min(sample["ts"] for _, sample in records)
    last = max(sample["ts"] for _, sample in records)
    start = (first // HOUR_MS + 1) * HOUR_MS  # a whole hour after the first sample: a baseline exists
    end = last
    station_queries = 0
    for name, board in all_boards(config).items():
        context = _context(plant, board, start, end)
        for where, query in iter_queries(board):
            result = store.query(expand(query, context))  # an InfluxQL error fails here
            if '"station"' not in query.split("FROM", 1)[1].split(" ", 2)[1]:
                continue  # analysis measurements: checked in test_analysis_panels_*
            station_queries += 1
            rows = result.rows()
            assert rows, f"{name} {where} returned nothing:\n{expand(query, context)}"
            if "SHOW TAG VALUES" in query:
                assert {row["value"] for row in rows} & {plant.plant, plant.lines[0].id}
                continue
            columns = set(rows[0]) - {"time", "line", "station"}
            assert len(columns) == 1, f"{where}: one value column, not {columns}"
            if 'GROUP BY "station"' in query or '"station" fill' in query:
                assert {row["station"] for row in rows} == set(plant.lines[0].station_ids), where
    assert station_queries >= 10


def test_hour_by_hour_output_matches_the_file(filled):
    store, plant, records = filled
    board = line_huddle.board(BoardConfig(plant=plant))
    hourly = next(p for p in board["panels"] if p["title"].startswith("Hour by hour"))["targets"][0]["query"]
    first = min(sample["ts"] for _, sample in records)
    last = max(sample["ts"] for _, sample in records)
    start, end = (first // HOUR_MS + 1) * HOUR_MS, last
    rows = store.query(expand(hourly, _context(plant, board, start, end))).rows()
    got = {row["time"]: row["actual"] for row in rows}
    expected = _expected_hourly(records, plant.lines[0].station_ids[-1], ZoneInfo(plant.timezone))
    expected = {hour: units for hour, units in expected.items() if start <= hour <= end}
    assert got == expected
    assert sum(got.values()) > 0
    # the range total is the sum of the hours
    total = next(p for p in board["panels"] if p["title"] == "Output vs target")["targets"][0]["query"]
    assert store.query(expand(total, _context(plant, board, start, end))).rows()[0]["actual"] == \
        sum(got.values())


def test_state_timeline_uses_only_real_states(filled):
    store, plant, records = filled
    board = line_huddle.board(BoardConfig(plant=plant))
    timeline = next(p for p in board["panels"] if p["title"] == "Station states")["targets"][0]["query"]
    first = min(sample["ts"] for _, sample in records)
    last = max(sample["ts"] for _, sample in records)
    rows = store.query(expand(timeline, _context(plant, board, first, last))).rows()
    states = {row["state"] for row in rows} - {None}
    assert states <= {"working", "setup", "down", "starved", "blocked", "idle"}
    assert "working" in states
    per_station = defaultdict(int)
    for row in rows:
        per_station[row["station"]] += 1
    assert len(set(per_station.values())) == 1, "every station gets the same buckets"


def test_month_to_date_panels_cover_the_whole_run(filled):
    store, plant, records = filled
    board = executive.board(BoardConfig(plant=plant))
    last = max(sample["ts"] for _, sample in records)
    now = datetime.fromtimestamp(last / 1000, ZoneInfo(plant.timezone))
    panel = board["panels"][0]
    start = resolve_time(panel["timeFrom"], now)
    context = QueryContext(int(start.timestamp() * 1000), last,
                           {"plant": plant.plant, "line": [plant.lines[0].id], "timezone": plant.timezone,
                            "bucket_offset": "0m"})
    by_ref = {t["refId"]: store.query(expand(t["query"], context)).rows() for t in panel["targets"]}
    exit_station = plant.lines[0].station_ids[-1]
    expected = _expected_hourly(records, exit_station, ZoneInfo(plant.timezone))
    in_range = sum(units for hour, units in expected.items() if hour >= context.start_ms)
    assert by_ref["A"][0]["actual"] == in_range
    assert by_ref["C"][0]["actual"] == in_range  # one line: the plant total is the line
