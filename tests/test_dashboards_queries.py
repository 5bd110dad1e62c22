"""Every board query, expanded as Grafana would, runs against the real InfluxDB filled with simulator data.

The simulator's JSON Lines file goes in through contract.read_records + sample_line + store.write (the
point shape the collector writes); targets, indicators and alerts go in through analysis's own point
writers, as the analysis service writes them. The file gets scrap first (tests/scrap_records.py: the
simulator writes none), so output panels are checked against good units computed in Python from the
file one sample at a time (shopfloor.counters.step) and against analysis.indicators.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from scrap_records import add_scrap
from typer.testing import CliRunner

from analysis.alerts import alert_line, make_alert
from analysis.indicators import by_station, hour_by_hour
from analysis.live import LiveConfig, LiveDetector
from analysis.losses_live import LossesWatch
from analysis.losses_store import period_losses
from analysis.targets import decompose, target_lines
from analysis.telemetry import from_file
from dashboards import analysis_queries as aq
from dashboards import executive, line_huddle
from dashboards.boards import all_boards
from dashboards.config import load_config
from dashboards.grafana import Json
from dashboards.macros import QueryContext, evaluate_math, expand, resolve_time
from shopfloor.cli import _mount_subcommands, app
from shopfloor.contract import read_records, sample_line
from shopfloor.counters import step
from shopfloor.plan import load_plan
from shopfloor.store import Store

pytestmark = pytest.mark.servers

DOCKER = Path(__file__).parents[1] / "docker"
HOURS = 3
HOUR_MS = 3_600_000
START = "2026-09-21T06:00:00Z"  # a Monday, 08:00 in Berlin: inside shift A of the demo plan


@pytest.fixture(scope="module")
def config():
    return load_config(DOCKER / "plant.toml", DOCKER / "plan.toml")


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory, config) -> Path:
    """A 3-hour run of the demo line from the real simulator, as its JSON Lines file, with scrap."""
    out = tmp_path_factory.mktemp("sim") / "line.jsonl"
    subprocess.run([sys.executable, "-m", "shopfloor", "sim", "run", str(DOCKER / "scenario.toml"),
                    "--hours", str(HOURS), "--seed", "11", "--start", START, "--out", str(out)],
                   check=True, timeout=60, capture_output=True)
    add_scrap(out, config.plant.lines[0])
    return out


@pytest.fixture(scope="module")
def board_store(stack):
    """One fresh database for this module: the tests only read it."""
    store = Store(stack.influxdb.url, f"test_boards_{uuid.uuid4().hex[:10]}")
    store.create_database()
    yield store
    store.close()


@pytest.fixture(scope="module")
def filled(board_store, telemetry, config):
    """A fresh database holding the file's samples, the line's targets, its indicators and one alert."""
    store = board_store
    records = list(read_records(telemetry))
    lines = [sample_line(key, sample) for key, sample in records]
    for start in range(0, len(lines), 5000):
        store.write(lines[start:start + 5000])
    plant, line = config.plant, config.plant.lines[0]
    plan = load_plan(DOCKER / "plan.toml")
    store.write(target_lines(decompose(plan, line.id, 2026), plant.plant,
                             grains=("year", "quarter", "month", "day", "hour")))
    _mount_subcommands()
    written = CliRunner().invoke(app, [
        "targets", "indicators", "--plant", str(DOCKER / "plant.toml"), "--plan", str(DOCKER / "plan.toml"),
        "--line", line.id, "--telemetry", str(telemetry), "--write", "--influx-url", store.url,
        "--influx-db", store.database])
    assert written.exit_code == 0, written.output
    first = min(sample["ts"] for _, sample in records)
    last = max(sample["ts"] for _, sample in records)
    detector = LiveDetector(store, plant, line.id, LiveConfig(lookback_s=3600, rewrite_s=3600))
    for now in range(first + HOUR_MS, last + 1, HOUR_MS):  # the service's live ticks, one an hour
        assert detector.tick(now) is not None
    # the service's losses round (measurement `losses`) at the end of the data, as its live loop runs it
    assert LossesWatch(store, plant, plan, line.id).tick(last + 1)
    detector.rollup.maybe_write(store, last + 1)  # the hourly rollup's round at the data's end
    middle = records[len(records) // 2][1]["ts"]
    store.write([alert_line(plant.plant, line.id, make_alert(middle, "constraint_down", "critical", "s3",
                                                             "Line l1: constraint s3 is down"), 12.5)])
    return store, records


def _span(records) -> tuple[int, int]:
    first = min(sample["ts"] for _, sample in records)
    last = max(sample["ts"] for _, sample in records)
    return (first // HOUR_MS + 1) * HOUR_MS, last  # from a whole hour with a baseline before it


def _context(config, board: Json, start_ms: int, end_ms: int, *, multi: bool = False) -> QueryContext:
    line = config.plant.lines[0].id
    variables = {"plant": config.plant.plant, "line": [line] if multi else line, "timezone": config.timezone,
                 "bucket_offset": config.bucket_offset}
    return QueryContext(start_ms, end_ms, variables)


def _panel_context(config, board: Json, panel: Json, start_ms: int, end_ms: int) -> QueryContext:
    """A panel with its own period (`timeFrom` now/M) sees that period up to `now` = end_ms."""
    if "timeFrom" in panel:
        now = datetime.fromtimestamp(end_ms / 1000, ZoneInfo(config.timezone))
        start_ms = int(resolve_time(panel["timeFrom"], now).timestamp() * 1000)
    return _context(config, board, start_ms, end_ms, multi=board["uid"] == executive.UID)


def _run_panel(store, config, board: Json, panel: Json, start_ms: int, end_ms: int) -> dict[str, list]:
    """Each target's rows; math expressions evaluated per line as Grafana joins them on labels."""
    context = _panel_context(config, board, panel, start_ms, end_ms)
    results: dict[str, list] = {}
    for target in panel["targets"]:
        if "query" in target:
            query = expand(target["query"], context).replace("now()", f"{end_ms}ms")
            results[target["refId"]] = store.query(query).rows()
    for target in panel["targets"]:  # reduce: the last non-null value of each series, a number per line
        if target.get("type") == "reduce":
            numbers: dict[str, float] = {}
            for row in results[target["expression"]]:
                value = next(v for k, v in row.items() if k not in ("time", "line", "station"))
                if value is not None:
                    numbers[row.get("line", "")] = value
            results[target["refId"]] = [{"line": line, "value": value} for line, value in numbers.items()]
    for target in panel["targets"]:  # math: joined on labels (the line)
        if target.get("type") == "math":
            by_line: dict[str, dict[str, float]] = defaultdict(dict)
            for ref in re.findall(r"\$(\w+)", target["expression"]):
                for row in results[ref]:
                    by_line[row["line"]][ref] = row["value"]
            results[target["refId"]] = [{"line": line, "value": evaluate_math(target["expression"], values)}
                                        for line, values in by_line.items() if line]
    return results


def test_every_panel_query_runs_and_returns_data_of_the_expected_shape(filled, config):
    store, records = filled
    start, end = _span(records)
    stations = set(config.plant.lines[0].station_ids)
    checked = 0
    for name, board in all_boards(config).items():
        for panel in board["panels"]:
            results = _run_panel(store, config, board, panel, start, end)
            assert any(results.values()), f"{name} {panel['title']!r} returned nothing"
            for ref, rows in results.items():
                where = f"{name} {panel['title']!r} {ref}"
                assert rows, f"{where} returned nothing"
                checked += 1
                values = {key for key in rows[0] if key not in ("time", "line", "station", "since", "cause")}
                if panel["type"] != "table":  # a table (the loss Pareto) shows several columns a row
                    assert len(values) == 1, f"{where}: one value column, not {values}"
                assert all(rows[0][value] is not None for value in values), where
                if 'GROUP BY "station"' in str(panel["targets"]) or '"station" fill' in str(panel["targets"]):
                    assert {row["station"] for row in rows} == stations, where
                elif board["uid"] == executive.UID and "plant" not in ref:
                    assert {row.get("line") for row in rows} <= {"l1", None}, where
    assert checked >= 30


def test_variables_and_annotations_run(filled, config):
    store, records = filled
    start, end = _span(records)
    for board in all_boards(config).values():
        context = _context(config, board, start, end)
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                values = {row["value"] for row in store.query(expand(variable["query"], context)).rows()}
                assert values & {"p1", "l1"}, variable["name"]
        for annotation in board["annotations"]["list"]:
            rows = store.query(expand(annotation["query"], context)).rows()
            assert rows and rows[0]["message"] == "Line l1: constraint s3 is down"
            assert rows[0]["kind"] == "constraint_down" and rows[0]["severity"] == "critical"


def _expected_hourly(records, station: str, start: int, end: int, *, good: bool = True) -> dict[int, int]:
    """Python's own answer, one sample at a time with shopfloor.counters.step: each field's units
    between consecutive samples that carry it (from an hour before `start`, the baseline), in the
    clock hour of the later sample, for samples in [start, end]."""
    hours: dict[int, int] = defaultdict(int)
    samples = sorted((s for k, s in records if k.station == station and start - HOUR_MS <= s["ts"] <= end),
                     key=lambda s: s["ts"])
    for field, sign in (("count", 1), ("scrap", -1)) if good else (("count", 1),):
        last = None
        for sample in samples:
            if field not in sample:
                continue
            units, _ = step(last, sample[field])
            last = sample[field]
            if sample["ts"] >= start:
                hours[sample["ts"] // HOUR_MS * HOUR_MS] += sign * units
    return dict(hours)


def _in_range(rows, key: str, start: int, end: int) -> dict[int, int]:
    """The rows of [start, end]; the one bucket before the range (the baseline hour) holds 0."""
    assert all(row[key] == 0 for row in rows if row["time"] < start)
    return {row["time"]: row[key] for row in rows if start <= row["time"] <= end}


def _panel(board: Json, title: str) -> Json:
    return next(panel for panel in board["panels"] if panel["title"] == title)


def test_hour_by_hour_output_and_target_match_the_file_and_the_plan(filled, config):
    store, records = filled
    start, end = _span(records)
    board = line_huddle.board(config)
    results = _run_panel(store, config, board, _panel(board, "Hour by hour: actual vs target"), start, end)
    got = _in_range(results["A"], "actual", start, end)
    assert got == _expected_hourly(records, config.plant.lines[0].station_ids[-1], start, end)
    assert sum(got.values()) > 0
    goal = decompose(load_plan(DOCKER / "plan.toml"), "l1", 2026)
    targets = {row["time"]: row["target"] for row in results["B"]}
    assert targets == {hour: round(goal.due_between(hour, hour + HOUR_MS))
                       for hour in range(start, end, HOUR_MS)}
    total = _run_panel(store, config, board, _panel(board, "Output vs target"), start, end)
    assert total["A"][0]["actual"] == sum(got.values())
    assert total["B"][0]["target"] == sum(targets.values())


def test_boards_count_good_units_hour_by_hour_as_the_indicators_do(filled, config, telemetry):
    """The huddle's hourly bars, its total and the executive's month equal analysis.indicators'
    hour-by-hour output on a file whose exit station reports scrap only from its second hour on."""
    store, records = filled
    start, end = _span(records)
    line = config.plant.lines[0]
    exit_samples = [sample for key, sample in records if key.station == line.station_ids[-1]]
    assert any("scrap" in s for s in exit_samples) and any("scrap" not in s for s in exit_samples)
    board = line_huddle.board(config)
    hourly = _run_panel(store, config, board, _panel(board, "Hour by hour: actual vs target"), start, end)
    got = _in_range(hourly["A"], "actual", start, end)
    goal = decompose(load_plan(DOCKER / "plan.toml"), line.id, 2026)
    samples = by_station(from_file(config.plant, line.id, telemetry))
    rows = hour_by_hour(samples, line, goal, start, end + 1)  # [start, end): end + 1 keeps the last sample
    indicated = {row["start"]: row["output"] for row in rows}
    assert set(indicated) == set(got) and len(got) >= 2
    assert got == indicated
    every_unit = _expected_hourly(records, line.station_ids[-1], start, end, good=False)
    scrapped = sum(every_unit[hour] - indicated[hour] for hour in indicated)
    assert scrapped > 0, "the data set must scrap units in the compared hours"
    total = _run_panel(store, config, board, _panel(board, "Output vs target"), start, end)["A"][0]["actual"]
    executive_board = executive.board(config)
    month = _run_panel(store, config, executive_board, _panel(executive_board, "Month to date vs target"),
                       start, end)
    assert total == sum(got.values())
    # the month holds the data's first hour too: every unit from the first sample on
    first = min(sample["ts"] for _, sample in records)
    whole = _expected_hourly(records, line.station_ids[-1], first, end)
    assert month["A"][0]["actual"] == sum(whole.values())
    assert month["A"][0]["actual"] > total
    assert sum(got.values()) < sum(every_unit.values())


def test_state_timeline_uses_only_real_states(filled, config):
    store, records = filled
    start, end = _span(records)
    board = line_huddle.board(config)
    rows = _run_panel(store, config, board, _panel(board, "Station states"), start, end)["A"]
    states = {row["state"] for row in rows} - {None}
    assert states <= {"working", "setup", "down", "starved", "blocked", "idle"}
    assert "working" in states
    per_station = defaultdict(int)
    for row in rows:
        per_station[row["station"]] += 1
    assert len(set(per_station.values())) == 1, "every station gets the same buckets"


def test_executive_kpis_from_the_file_and_the_plan(filled, config, telemetry):
    store, records = filled
    start, end = _span(records)
    board = executive.board(config)
    first = min(sample["ts"] for _, sample in records)
    expected = _expected_hourly(records, config.plant.lines[0].station_ids[-1], first, end)
    month = _run_panel(store, config, board, _panel(board, "Month to date vs target"), start, end)
    assert month["A"][0]["actual"] == sum(expected.values())
    assert month["C"][0]["actual"] == sum(expected.values())  # one line: the plant total is the line
    forecast = _run_panel(store, config, board, _panel(board, "Month forecast vs month target"), start, end)
    actual, due, whole = month["A"][0]["actual"], month["B"][0]["target"], forecast["C"][0]["units"]
    assert forecast["F"][0]["value"] == pytest.approx(actual / due * whole)

    # the profit KPIs (issue 14) equal Python's figures: analysis.losses_store.period_losses of the shift
    # the data lies in, and the day's constraint OEE of `targets indicators` (analysis.indicators)
    plan = load_plan(DOCKER / "plan.toml")
    line = config.plant.lines[0]
    losses = period_losses(store, config.plant, plan, line.id, "shift", max(s["ts"] for _, s in records) + 1)
    figures = losses.to_json()
    per_unit = plan.money_for(line.id).throughput_per_unit
    money_panel = _panel(board, "Throughput vs plan, money (month)")
    assert money_panel["fieldConfig"]["defaults"]["unit"] == "suffix: EUR"  # the plan's currency
    money = _run_panel(store, config, board, money_panel, start, end)
    assert money["A"][0]["output_money"] == pytest.approx(figures["output_units"] * per_unit)
    assert money["B"][0]["target_money"] == pytest.approx(figures["target_units"] * per_unit)
    assert money["C"][0]["output_money"] == money["A"][0]["output_money"]  # one line: the plant is the line
    hours = _run_panel(store, config, board, _panel(board, "Constraint hours lost (month)"), start, end)
    assert hours["A"][0]["hours"] == pytest.approx(figures["lost_minutes"] / 60, abs=1e-6)
    assert figures["lost_minutes"] > 0
    top = _run_panel(store, config, board, _panel(board, "Top loss cause (month)"), start, end)["A"]
    assert [(row["cause"], row["minutes"]) for row in top] == [
        (figures["causes"][0]["label"], figures["causes"][0]["minutes"])]
    oee = _run_panel(store, config, board, _panel(board, "Constraint OEE (month)"), start, end)["A"]
    shown = CliRunner().invoke(app, [
        "targets", "indicators", "--plant", str(DOCKER / "plant.toml"), "--plan", str(DOCKER / "plan.toml"),
        "--line", line.id, "--telemetry", str(telemetry), "--json"])
    assert shown.exit_code == 0, shown.output
    assert oee[0]["constraint_oee"] == pytest.approx(json.loads(shown.output)["indicators"]["executive"][
        "constraint_oee"])


def test_huddle_loss_pareto_is_the_losses_api(filled, config):
    """The huddle board's Pareto table: the shift's causes largest first with the minutes, units and money
    of analysis.losses_store.period_losses (what GET /api/lines/{line}/losses answers)."""
    store, records = filled
    start, end = _span(records)
    plan = load_plan(DOCKER / "plan.toml")
    figures = period_losses(store, config.plant, plan, config.plant.lines[0].id, "shift", end + 1).to_json()
    shift_start = figures["start"]
    board = line_huddle.board(config)
    rows = _run_panel(store, config, board, _panel(board, "Losses at the constraint (Pareto)"),
                      shift_start, end)["A"]
    expected = figures["causes"][:aq.PARETO_CAUSES]
    assert len(expected) >= 3
    assert [(r["cause"], r["minutes"], r["units"], r["money"]) for r in rows] == [
        (c["label"], c["minutes"], c["units"], c["money"]) for c in expected]
    assert [r["minutes"] for r in rows] == sorted((r["minutes"] for r in rows), reverse=True)


def test_huddle_constraint_panels_show_the_live_detector(filled, config):
    store, records = filled
    start, end = _span(records)
    board = line_huddle.board(config)
    now = _run_panel(store, config, board, _panel(board, "Constraint now"), start, end)["A"]
    assert now[0]["constraint"] in config.plant.lines[0].station_ids and now[0]["since"] <= end
    shares = _run_panel(store, config, board, _panel(board, "Constraint share of the range"), start, end)["A"]
    assert {row["station"] for row in shares} == set(config.plant.lines[0].station_ids)
    assert all(0 <= row["share"] <= 1 for row in shares)


def test_board_constraint_shares_are_analysis_shares_split(filled, config):
    """The huddle's share panel and the executive's places panel show analysis.shares' split (sole +
    half the shifting time) of the real timeline, never mean(share), and sum to at most 100 %."""
    from analysis.shares import period_shares, stored_windows

    store, records = filled
    start, end = _span(records)
    line = config.plant.lines[0]
    board = line_huddle.board(config)
    context = _context(config, board, start, end)
    rows = store.query(expand(aq.CONSTRAINT_WINDOWS, context))
    windows = stored_windows([(series.tags["station"], series.rows()) for series in rows.series],
                             line.station_ids)
    assert any(sum(share.values()) > sum(sole.values()) for share, sole, _ in windows)  # shifting time
    expected = period_shares(windows, line.station_ids)
    panel = _run_panel(store, config, board, _panel(board, "Constraint share of the range"), start, end)["A"]
    shown = {row["station"]: row["share"] for row in panel}
    assert shown == pytest.approx({s: expected[s].share for s in shown}, abs=1e-9)
    assert sum(shown.values()) <= 1 + 1e-9
    places = store.query(expand(aq.CONSTRAINT_PLACES, _context(config, executive.board(config), start, end,
                                                               multi=True)))
    by_place = {series.tags["station"]: series.rows()[0]["share"] for series in places.series}
    assert by_place == pytest.approx(shown, abs=1e-9)


def test_hour_targets_follow_a_half_hour_shift_start(stack, tmp_path):
    """A 05:30-13:30 shift: the huddle's hour buckets start at :30 and each one's target is the plan's
    units due in that very hour (the `shift_hour` grain), not the clock hour's that lands in it."""
    text = (DOCKER / "plan.toml").read_text()
    text = re.sub(r"shifts = \[.*?\]\n", 'shifts = [{ name = "A", start = "05:30", end = "13:30" }]\n', text,
                  flags=re.S)
    (tmp_path / "plan.toml").write_text(text)
    config = load_config(DOCKER / "plant.toml", tmp_path / "plan.toml")
    assert config.bucket_offset == "30m"
    plan = load_plan(tmp_path / "plan.toml")
    goal = decompose(plan, "l1", 2026)
    store = Store(stack.influxdb.url, f"test_shift_hour_{uuid.uuid4().hex[:10]}")
    store.create_database()
    try:
        store.write(target_lines(goal, config.plant.plant, grains=("hour", "shift_hour")))
        start = int(datetime(2026, 9, 21, 5, 30, tzinfo=ZoneInfo(config.timezone)).timestamp() * 1000)
        end = start + 8 * HOUR_MS
        board = line_huddle.board(config)
        rows = _run_panel(store, config, board, _panel(board, "Hour by hour: actual vs target"), start,
                          end - 1)["B"]
        targets = {row["time"]: row["target"] for row in rows}
        assert targets == {hour: round(goal.due_between(hour, hour + HOUR_MS))
                           for hour in range(start, end, HOUR_MS)}
        assert min(targets.values()) > 200  # a whole shift hour each, the last one too
    finally:
        store.close()
