"""The same line and hour give the same numbers everywhere (issue 12): the huddle page's JSON
(dashboards/huddle_api.py), the indicators API, `shopfloor targets indicators --json` and the boards'
panel queries (line huddle and executive, expanded as Grafana would), on the real InfluxDB.

Output and due: test_counting's hand-made exit station (starts at 08:20, a 16-bit wrap, a reset,
late scrap, samples without scrap): 15 good units in hour 08, 6 in hour 09, 21 in all, worked out
by hand there. Shares: the live detector on a simulated balanced line (shares spread over several
stations), then the page, both boards' share queries and the service's /shares over the same,
settled, windows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_counting import H8, HOUR_MS, HOURS, PLAN, indicators_command, plant, records
from test_shares_stored import balanced_line

from analysis.live import LiveConfig, LiveDetector
from analysis.output_hours import HourRollup
from analysis.service import create_app
from analysis.targets import decompose, target_lines
from dashboards import analysis_queries as aq
from dashboards import executive, line_huddle
from dashboards.config import BoardConfig
from dashboards.huddle_api import HuddleReader
from dashboards.macros import QueryContext, expand
from shopfloor.contract import read_records, sample_line
from shopfloor.plant import load_plant
from shopfloor.store import Store

pytestmark = pytest.mark.servers

DOCKER = Path(__file__).parents[1] / "docker"
NOW = H8 + 2 * HOUR_MS  # 10:00 UTC, inside shift A (06:00-14:00)
SHIFT = H8 - 2 * HOUR_MS
MONTH = int(datetime(2027, 3, 1, tzinfo=UTC).timestamp() * 1000)


def board_panel(store, board: dict, title: str, start_ms: int, end_ms: int, plant_id: str) -> dict[str, list]:
    """Each query target of a board's panel, expanded for [start, end] as Grafana would run it."""
    found = next(p for p in board["panels"] if p["title"] == title)
    line = ["l1"] if board["uid"] == executive.UID else "l1"
    context = QueryContext(start_ms, end_ms, {"plant": plant_id, "line": line, "timezone": "UTC",
                                              "bucket_offset": "0m"})
    return {t["refId"]: store.query(expand(t["query"], context)).rows()
            for t in found["targets"] if "query" in t}


@pytest.fixture
def filled(store, plant_id):
    model = plant(plant_id)
    store.write([sample_line(key, sample) for key, sample in records(plant_id)])
    store.write(target_lines(decompose(PLAN, "l1", 2027), plant_id, grains=("month", "day", "hour")))
    HourRollup(model, "l1").maybe_write(store, NOW)  # the live loop's rollup round at 10:00
    return store, model


def test_page_api_command_and_boards_give_the_same_output_and_due(filled, plant_id, tmp_path) -> None:
    store, model = filled
    config = BoardConfig(plant=model, shifts=tuple(PLAN.calendar.shifts))
    # the page's JSON: the current shift at 10:00
    page = HuddleReader(store, model, PLAN).snapshot("l1", now_ms=NOW)
    assert page["range"]["start"] == SHIFT
    page_hours = {h["start"]: h for h in page["hours"] if h["start"] < NOW}
    # the indicators API, and the command, for the day up to 10:00
    client = TestClient(create_app(model, lambda: Store(store.url, store.database), plan=PLAN))
    api = client.get("/api/lines/l1/indicators", params={"now": "2027-03-02T10:00:00+00:00"}).json()
    cli = indicators_command(store, plant_id, tmp_path)
    # the boards, over the shift so far (Grafana's range ends at now, inclusive: the last ms before 10:00)
    huddle = line_huddle.board(config)
    bars = board_panel(store, huddle, "Hour by hour: actual vs target", SHIFT, NOW - 1, plant_id)
    total = board_panel(store, huddle, "Output vs target", SHIFT, NOW - 1, plant_id)
    month = board_panel(store, executive.board(config), "Month to date vs target", MONTH, NOW - 1, plant_id)

    # output per hour: 15 and 6 by hand, in every consumer
    for hours in (api["hours"], cli["hours"]):
        assert {h["start"]: h["output"] for h in hours if h["output"]} == HOURS
    assert {start: h["actual"] for start, h in page_hours.items() if h["actual"]} == HOURS
    assert {row["time"]: row["actual"] for row in bars["A"] if row["actual"]} == HOURS
    # target per hour of the shift so far (06-09): the plan's decomposition everywhere
    targets = {row["time"]: row["target"] for row in bars["B"] if row["time"] >= SHIFT}
    assert len(targets) == 4 and {start: h["target"] for start, h in page_hours.items()} == targets
    for hours in (api["hours"], cli["hours"]):
        assert {h["start"]: h["target"] for h in hours if h["start"] >= SHIFT} == targets
    # the shift so far: 21 made, the hour targets since 06:00 due
    due = sum(targets.values())
    assert page["total"]["actual"] == total["A"][0]["actual"] == 21
    assert page["total"]["target_due"] == total["B"][0]["target"] == due
    for answer in (api, cli):
        shift = next(s for s in answer["shifts"] if s["start"] == SHIFT)
        assert shift["output"] == 21 and shift["target"] == due
        assert answer["indicators"]["output"] == 21  # the day: nothing before 08:20
    # month to date: the executive's bars (the hourly rollup) against the API's and the command's
    for answer in (api, cli):
        assert answer["month_to_date"]["actual"] == month["A"][0]["actual"] == 21
        assert answer["month_to_date"]["due"] == month["B"][0]["target"]
    assert month["C"][0]["actual"] == 21  # one line: the plant is the line


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> tuple[Path, Path]:
    """Two hours of the balanced line (its shares spread over several stations) and its plant file."""
    return balanced_line(tmp_path_factory.mktemp("sim"), seed=3)


def test_page_boards_and_shares_api_give_the_same_shares(store, simulated) -> None:
    path, plant_file = simulated
    plant_model = load_plant(plant_file)
    line = plant_model.lines[0]
    assert plant_model.timezone == "UTC"
    records_ = list(read_records(path))
    store.write([sample_line(key, sample) for key, sample in records_])
    first = min(sample["ts"] for _, sample in records_)
    last = max(sample["ts"] for _, sample in records_)
    detector = LiveDetector(store, plant_model, line.id, LiveConfig(method="combined", window_s=300.0))
    ticks = [*range(first + 10 * 60_000, last, 10 * 60_000), last + 31 * 60_000]  # the last settles it all
    for now in ticks:
        assert detector.tick(now) is not None
    now = ticks[-1]
    # the service's default calendar (no plan): shifts from 06:00 UTC, 8 hours; the data is 06:00-08:00
    shift_start, shift_end = first, first + 8 * HOUR_MS
    snapshot = HuddleReader(store, plant_model).snapshot(line.id, now_ms=now, start_ms=shift_start,
                                                         end_ms=shift_end)
    page = snapshot["constraint"]
    assert page["source"] == "live detector" and page["tail"] is None and not page["provisional"]
    assert sum(1 for share in page["shares"].values() if share > 0.05) >= 2  # not one station's 100 %
    context = QueryContext(shift_start, now, {"plant": plant_model.plant, "line": line.id,
                                              "timezone": "UTC", "bucket_offset": "0m"})
    board = {row["station"]: row["share"]
             for row in store.query(expand(aq.CONSTRAINT_SHARES, context)).rows()}
    places = store.query(expand(aq.CONSTRAINT_PLACES, QueryContext(
        shift_start, now, {**context.variables, "line": [line.id]}))).rows()
    client = TestClient(create_app(plant_model, lambda: Store(store.url, store.database)))
    shifts = client.get(f"/api/lines/{line.id}/shares",
                        params={"from": shift_start, "to": now}).json()["shifts"]
    api = next(s for s in shifts if s["start"] == shift_start)["shares"]
    assert sum(page["shares"].values()) <= 1 + 0.00005 * len(line.station_ids)  # rounded to 4 places
    assert board == pytest.approx(page["shares"], abs=1e-4)
    assert {row["station"]: row["share"] for row in places} == pytest.approx(page["shares"], abs=1e-4)
    assert api == pytest.approx(page["shares"], abs=1e-4)
