"""Boards, provisioning files, Grafana's macros and date math, and the push (no servers needed).

The push is checked against a tiny HTTP server on 127.0.0.1 that records what grafana-client sends,
because Grafana itself is not installable here.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from typer.testing import CliRunner

from dashboards import executive, line_huddle
from dashboards import queries as q
from dashboards.boards import all_boards
from dashboards.config import load_config
from dashboards.grafana import DATASOURCE_UID, iter_queries
from dashboards.macros import QueryContext, expand, grafana_interval, resolve_time
from dashboards.provisioning import BOARDS_DIR, DATASOURCE_FILE, PROVIDER_FILE, build, to_yaml
from dashboards.push import PushError, push
from shopfloor.cli import _mount_subcommands, app

PLANT = """
plant = "p1"
timezone = "Europe/Berlin"

[[line]]
id = "l1"
name = "Final assembly"
[[line.station]]
id = "s1"
buffer = 8
ideal_cycle_s = 30.0
[[line.station]]
id = "s2"
buffer = 6
ideal_cycle_s = 32.0

[[line]]
id = "l2"
[[line.station]]
id = "a"
buffer = 4
ideal_cycle_s = 20.0
[[line.station]]
id = "b"
buffer = 4
ideal_cycle_s = 20.0
"""

PLAN = """
[[objective]]
line = "l1"
year = 2027
units = 1200000

[calendar]
timezone = "Europe/Berlin"
workdays = ["mon", "tue", "wed", "thu", "fri"]
shifts = [{ name = "A", start = "05:30", end = "13:30" }, { name = "B", start = "13:30", end = "21:30" }]
"""


@pytest.fixture
def plant_files(tmp_path: Path) -> tuple[Path, Path]:
    plant, plan = tmp_path / "plant.toml", tmp_path / "plan.toml"
    plant.write_text(PLANT)
    plan.write_text(PLAN)
    return plant, plan


@pytest.fixture
def config(plant_files):
    return load_config(*plant_files)


# --- the boards ---------------------------------------------------------------------------------


def test_huddle_board_has_the_huddle_content(config):
    board = line_huddle.board(config)
    titles = [panel["title"] for panel in board["panels"]]
    for wanted in ("Hour by hour: actual vs target", "Constraint now", "Constraint share of the range",
                   "Station states", "Buffer levels", "Leading indicators vs targets"):
        assert wanted in titles
    assert [v["name"] for v in board["templating"]["list"]][:2] == ["plant", "line"]
    assert board["annotations"]["list"][0]["name"] == "Alerts"
    assert board["timezone"] == "Europe/Berlin"
    # shift links start where the plan's shifts start (05:30 = 330 minutes after midnight)
    links = {link["title"]: link["url"] for link in board["links"]}
    assert links["Shift A today"] == "?from=now/d+330m&to=now/d+810m"
    assert links["Shift B yesterday"] == "?from=now-1d/d+810m&to=now-1d/d+1290m"
    # hour buckets follow the 30-minute shift offset
    constants = {v["name"]: v["query"] for v in board["templating"]["list"] if v["type"] == "constant"}
    assert constants == {"timezone": "Europe/Berlin", "bucket_offset": "30m"}


def test_panels_fit_the_grid_without_overlap(config):
    for board in all_boards(config).values():
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            mine = {(grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])}
            assert not cells & mine, f"{panel['title']} overlaps another panel"
            cells |= mine


def test_huddle_is_readable_from_three_metres(config):
    """Large type: every stat's value is at least 40 px, and the layout fits one 1080p screen."""
    board = line_huddle.board(config)
    for panel in board["panels"]:
        if panel["type"] == "stat":
            assert panel["options"]["text"]["valueSize"] >= 40, panel["title"]
    assert max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"]) <= 30


def test_executive_rollup_has_at_most_seven_kpis_with_fixed_periods(config):
    board = executive.board(config)
    assert len(board["panels"]) <= executive.MAX_KPIS
    assert {panel.get("timeFrom") for panel in board["panels"]} == {"now/M", "now/fQ"}
    # the profit KPIs of issue 14 beside the to-date panels
    assert [panel["title"] for panel in board["panels"]][2:] == [
        "Throughput vs plan, money (month)", "Month forecast vs month target",
        "Constraint hours lost (month)", "Top loss cause (month)", "Constraint OEE (month)"]
    # per line and for the plant
    to_date = board["panels"][0]
    assert [t["alias"] for t in to_date["targets"]] == ["$tag_line actual", "$tag_line target",
                                                        "plant actual", "plant target"]


def test_output_is_the_last_station_good_units_by_the_counter_rule(config):
    """Good units: shopfloor.counters' subqueries for count and (negated) scrap, summed per hour."""
    from shopfloor.counters import influxql_good_units

    board = line_huddle.board(config)
    hourly = next(p for p in board["panels"] if p["title"].startswith("Hour by hour"))["targets"][0]["query"]
    assert hourly.startswith('SELECT sum("n") AS "actual" FROM (SELECT 1 * non_negative_difference("count")')
    assert 'SELECT -1 * non_negative_difference("scrap")' in hourly and 'moving_average("scrap", 2)' in hourly
    where = f"{q.LINE_FILTER} AND {q.exit_filter(config.plant.lines)}"
    assert influxql_good_units(q.STATION, where, "${__from}ms", "${__to}ms", tags='"line"') in hourly
    assert """("line" = 'l1' AND "station" = 's2') OR ("line" = 'l2' AND "station" = 'b')""" in hourly
    assert "GROUP BY time(1h, $bucket_offset)" in hourly and "tz('$timezone')" in hourly


def test_every_query_uses_the_datasource_and_no_unknown_variable(config):
    for board in all_boards(config).values():
        names = {v["name"] for v in board["templating"]["list"]}
        variables = {name: "x" for name in names}
        context = QueryContext(0, 3_600_000, variables)
        for where, query in iter_queries(board):
            expand(query, context)  # raises on a variable the board does not define
            assert where
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == DATASOURCE_UID


# --- Grafana's side: date math, interval, macros ------------------------------------------------


BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2027, 5, 19, 10, 42, 17, tzinfo=BERLIN)


@pytest.mark.parametrize(("expression", "round_up", "expected"), [
    ("now", False, datetime(2027, 5, 19, 10, 42, 17)),
    ("now-8h", False, datetime(2027, 5, 19, 2, 42, 17)),
    ("now/d", False, datetime(2027, 5, 19)),
    ("now/d", True, datetime(2027, 5, 19, 23, 59, 59, 999000)),
    ("now/d+330m", False, datetime(2027, 5, 19, 5, 30)),
    ("now-1d/d+810m", False, datetime(2027, 5, 18, 13, 30)),
    ("now/M", False, datetime(2027, 5, 1)),
    ("now/fQ", False, datetime(2027, 4, 1)),
    ("now/y", False, datetime(2027, 1, 1)),
    ("now/w", False, datetime(2027, 5, 17)),
])
def test_grafana_date_math(expression, round_up, expected):
    assert resolve_time(expression, NOW, round_up=round_up) == expected.replace(tzinfo=BERLIN)


def test_date_math_across_a_clock_change():
    """now/d+6h on the spring-forward day is 06:00 local, which is 5 real hours after midnight."""
    day = datetime(2027, 3, 28, 12, 0, tzinfo=BERLIN)
    start = resolve_time("now/d+6h", day)
    assert start.hour == 7  # 6 real hours after a midnight at +01:00 is 07:00 at +02:00, as in Grafana


def test_bad_date_math_is_one_line():
    with pytest.raises(ValueError, match="now-8h"):
        resolve_time("now-8x", NOW)


def test_interval_and_macros():
    assert grafana_interval(8 * 3_600_000, 1000) == "30s"
    assert grafana_interval(60_000, 1000) == "10s"  # never under the data source's 10 s
    context = QueryContext(1000, 2000, {"line": "l1", "lines": ["a", "b"]}, "1m")
    assert expand("$timeFilter", context) == "time >= 1000ms and time <= 2000ms"
    assert expand("time >= ${__from}ms - 1h AND $__interval $__interval_ms", context) == \
        "time >= 1000ms - 1h AND 1m 60000"
    assert expand('"line" =~ /^$line$/ AND "x" =~ /^[[lines]]$/', context) == \
        '"line" =~ /^l1$/ AND "x" =~ /^(a|b)$/'
    with pytest.raises(ValueError, match=r"\$nope"):
        expand("$nope", context)


# --- provisioning files -------------------------------------------------------------------------


def test_build_writes_provisioning_that_parses(tmp_path, config):
    written = build(tmp_path / "out", config)
    out = tmp_path / "out"
    assert set(written) == {out / DATASOURCE_FILE, out / PROVIDER_FILE,
                            out / BOARDS_DIR / line_huddle.FILE_NAME, out / BOARDS_DIR / executive.FILE_NAME}
    source = yaml.safe_load((out / DATASOURCE_FILE).read_text())["datasources"][0]
    assert source["type"] == "influxdb" and source["uid"] == DATASOURCE_UID
    assert source["jsonData"]["version"] == "InfluxQL" and source["jsonData"]["dbName"] == "shopfloor"
    assert source["url"] == "http://influxdb:8086"
    provider = yaml.safe_load((out / PROVIDER_FILE).read_text())["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"].endswith("dashboards/shopfloor")
    for name, board in all_boards(config).items():
        assert json.loads((out / BOARDS_DIR / name).read_text()) == board


def test_yaml_emitter_round_trips_awkward_strings():
    document = {"a": [{"b": "yes", "c": "1.0", "d": "x: y # z", "e": []}, "on", 3, None, True], "f": {}}
    assert yaml.safe_load(to_yaml(document)) == document


def test_cli_build_and_its_one_line_errors(tmp_path, plant_files):
    _mount_subcommands()
    runner = CliRunner()
    plant, plan = plant_files
    result = runner.invoke(app, ["dashboards", "build", "--plant", str(plant), "--plan", str(plan),
                                 "--out", str(tmp_path / "p"), "--influx-url", "http://db:8086"])
    assert result.exit_code == 0, result.output
    assert "line-huddle.json" in result.output
    assert "http://db:8086" in (tmp_path / "p" / DATASOURCE_FILE).read_text()
    missing = runner.invoke(app, ["dashboards", "build", "--plant", str(tmp_path / "none.toml")])
    assert missing.exit_code != 0
    assert "none.toml does not exist" in str(missing.exception)


# --- push through grafana-client to a recording HTTP server ---------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Answers like Grafana's HTTP API for the calls a push makes, and records each request."""

    requests: list[tuple[str, str, dict | None, str]]
    existing: set[str]
    status_override: int | None = None

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append((method, self.path, body, self.headers.get("Authorization", "")))
        if self.status_override:
            self._answer(self.status_override, {"message": "invalid API key"})
        elif method == "GET":
            found = self.path in self.existing
            self._answer(200 if found else 404, {"uid": "x"} if found else {"message": "not found"})
        else:
            created = {"/api/folders": "/api/folders/shopfloor",
                       "/api/datasources": f"/api/datasources/uid/{DATASOURCE_UID}"}
            self.existing.add(created.get(self.path, ""))
            self._answer(200, {"status": "success", "id": 1, "uid": "x"})

    def do_GET(self) -> None:  # noqa: N802 (the http.server naming)
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def log_message(self, *args) -> None:
        return None


@pytest.fixture
def grafana_double():
    handler = type("Handler", (_Recorder,), {"requests": [], "existing": set(), "status_override": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_push_sends_what_build_writes(tmp_path, config, grafana_double):
    handler, url = grafana_double
    build(tmp_path / "out", config)
    result = push(url, "glsa_token", config)
    assert result.boards == [line_huddle.UID, executive.UID]
    calls = [(method, path) for method, path, _, _ in handler.requests]
    assert calls == [("GET", "/api/folders/shopfloor"), ("POST", "/api/folders"),
                     ("GET", f"/api/datasources/uid/{DATASOURCE_UID}"), ("POST", "/api/datasources"),
                     ("POST", "/api/dashboards/db"), ("POST", "/api/dashboards/db")]
    assert all(auth == "Bearer glsa_token" for *_, auth in handler.requests)
    source = yaml.safe_load((tmp_path / "out" / DATASOURCE_FILE).read_text())["datasources"][0]
    del source["orgId"]
    assert handler.requests[3][2] == source
    sent = [body for method, path, body, _ in handler.requests if path == "/api/dashboards/db"]
    for body, name in zip(sent, (line_huddle.FILE_NAME, executive.FILE_NAME), strict=True):
        assert body["dashboard"] == json.loads((tmp_path / "out" / BOARDS_DIR / name).read_text())
        assert body["folderUid"] == "shopfloor" and body["overwrite"] is True
    # a second push updates instead of creating
    handler.requests.clear()
    push(url, "glsa_token", config)
    assert [(m, p) for m, p, _, _ in handler.requests][:4] == [
        ("GET", "/api/folders/shopfloor"), ("GET", f"/api/datasources/uid/{DATASOURCE_UID}"),
        ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}"), ("POST", "/api/dashboards/db")]


def test_push_errors_are_one_line(config, grafana_double):
    handler, url = grafana_double
    handler.status_override = 401
    with pytest.raises(PushError, match="check --token"):
        push(url, "wrong", config)
    handler.status_override = None
    with pytest.raises(PushError, match="is it running"):
        push("http://127.0.0.1:9", "", config)


# --- the huddle page's range: the current shift ---------------------------------------------------


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_huddle_range_is_the_shift_that_holds_now(config, plant_files):
    from dashboards.huddle_api import current_range
    from shopfloor.plan import load_plan

    plan = load_plan(plant_files[1])
    during_b = current_range(config.plant, plan, _ms(datetime(2027, 5, 19, 15, 0, tzinfo=BERLIN)))
    assert (during_b.start_ms, during_b.end_ms) == (_ms(datetime(2027, 5, 19, 13, 30, tzinfo=BERLIN)),
                                                    _ms(datetime(2027, 5, 19, 21, 30, tzinfo=BERLIN)))
    assert during_b.label == "Shift B 13:30-21:30"
    # after the last shift the huddle still looks at it; before the first, at yesterday's last
    late = current_range(config.plant, plan, _ms(datetime(2027, 5, 19, 23, 0, tzinfo=BERLIN)))
    assert late.label.startswith("Shift B") and late.start_ms == during_b.start_ms
    early = current_range(config.plant, plan, _ms(datetime(2027, 5, 20, 4, 0, tzinfo=BERLIN)))
    assert early.start_ms == during_b.start_ms
    # without a plan: today in the plant's timezone
    today = current_range(config.plant, None, _ms(datetime(2027, 5, 19, 15, 0, tzinfo=BERLIN)))
    assert today.start_ms == _ms(datetime(2027, 5, 19, tzinfo=BERLIN))
    assert today.end_ms - today.start_ms == 24 * 3_600_000
    # a huddle at a shift's start looks back: the shift before, and the one before that
    previous = current_range(config.plant, plan, _ms(datetime(2027, 5, 19, 14, 0, tzinfo=BERLIN)), back=1)
    assert previous.start_ms == _ms(datetime(2027, 5, 19, 5, 30, tzinfo=BERLIN))
    assert previous.label == "Shift A 05:30-13:30 of Wed 19 May"
    two_back = current_range(config.plant, plan, _ms(datetime(2027, 5, 19, 14, 0, tzinfo=BERLIN)), back=2)
    assert two_back.start_ms == _ms(datetime(2027, 5, 18, 13, 30, tzinfo=BERLIN))
    # the plan's calendar: the weekend (no shifts on 15 and 16 May) is skipped, nine shifts back is Thursday
    far = current_range(config.plant, plan, _ms(datetime(2027, 5, 19, 14, 0, tzinfo=BERLIN)), back=9)
    assert far.start_ms == _ms(datetime(2027, 5, 13, 5, 30, tzinfo=BERLIN))
    monday = current_range(config.plant, plan, _ms(datetime(2027, 5, 17, 4, 0, tzinfo=BERLIN)))
    assert monday.label == "Shift B 13:30-21:30 of Fri 14 May"


def test_constraint_cache_computes_once_per_line_and_shift_within_its_lifetime():
    from dashboards.huddle_api import ConstraintCache

    calls = []
    cache = ConstraintCache(ttl_s=60)

    def compute(name):
        calls.append(name)
        return {"station": name}

    threads = [threading.Thread(target=cache.get, args=(("db", "l1", 0), lambda: compute("s3")))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert calls == ["s3"]
    assert cache.get(("db", "l2", 0), lambda: compute("s9")) == {"station": "s9"}
    assert calls == ["s3", "s9"]
    expired = ConstraintCache(ttl_s=0)
    expired.get(("db", "l1", 0), lambda: compute("a"))
    expired.get(("db", "l1", 0), lambda: compute("b"))
    assert calls[-2:] == ["a", "b"]


def test_huddle_api_answers_503_in_one_line_when_influxdb_is_away(config, plant_files):
    import asyncio

    import httpx
    from fastapi import FastAPI

    from dashboards.huddle_api import huddle_router
    from shopfloor.store import Store

    api = FastAPI()
    api.include_router(huddle_router(config.plant, lambda: Store("http://127.0.0.1:9", "x", timeout_s=2)))

    async def get_all(*paths: str) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://huddle") as client:
            return [await client.get(path) for path in paths]

    away, unknown, page = asyncio.run(get_all("/api/huddle/l1", "/api/huddle/l9", "/huddle"))
    assert away.status_code == 503
    assert "not reachable" in away.json()["detail"] and "\n" not in away.json()["detail"]
    assert unknown.status_code == 404
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
