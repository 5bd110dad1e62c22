"""The losses router and the reason corrections on the real InfluxDB (issue 14).

The injected-stop line of tests/stopped_line.py goes into InfluxDB as the collector writes it; the API
must give the figures analysis/losses.py gives on the same samples, a supervisor's correction must
show as such while the raw telemetry stays as it was, a write without the token gets 401, and a
correction for a moment without a stop a 422 with one line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from stopped_line import BUFFER, CYCLES_S, IDS, START_MS, simulate
from test_losses import EVENTS, HOUR_S

from analysis import auth
from analysis.bottleneck import analyze
from analysis.live import LiveConfig
from analysis.losses import ConstraintWindow, ReasonMark, losses
from analysis.losses_api import losses_router, losses_router_for
from analysis.losses_store import due_units
from analysis.states import spans as state_spans
from analysis.telemetry import gather
from shopfloor.contract import StationKey, sample_line
from shopfloor.plan import Plan
from shopfloor.store import Store, quote_string

pytestmark = pytest.mark.servers
TOKEN = "losses-test-token-0123456789"
NOW_MS = START_MS + 4 * HOUR_S * 1000


def _plan() -> Plan:
    return Plan.model_validate({
        "objective": [{"line": "l1", "year": 2026, "units": 500_000}],
        "calendar": {"timezone": "UTC", "workdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                     "shifts": [{"name": "A", "start": "06:00", "end": "22:00"}]},
        "line": [{"id": "l1", "throughput_per_unit": 50.0, "currency": "EUR"}]})


def _telemetry_in(store: Store, plant_id: str):
    line = simulate(4 * HOUR_S, EVENTS)
    store.write([sample_line(StationKey(plant_id, "l1", station), sample)
                 for station, sample in line.samples])
    return line


def _raw(store: Store, plant_id: str) -> list[dict]:
    return store.query(f"SELECT * FROM station WHERE plant = {quote_string(plant_id)}").rows()


PLAN_TOML = """
[[objective]]
line = "l1"
year = 2026
units = 500000

[[line]]
id = "l1"
throughput_per_unit = 50.0
currency = "EUR"

[calendar]
timezone = "UTC"
workdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
shifts = [{ name = "A", start = "06:00", end = "22:00" }]
"""


def _files(tmp_path, plant_id: str) -> tuple[str, str]:
    stations = "".join(f'\n[[line.station]]\nid = "{s}"\nbuffer = {BUFFER}\nideal_cycle_s = {float(c)}\n'
                       for s, c in zip(IDS, CYCLES_S, strict=True))
    plant = tmp_path / "plant.toml"
    plant.write_text(f'plant = "{plant_id}"\n\n[[line]]\nid = "l1"\n{stations}')
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN_TOML)
    return str(plant), str(plan)


def run_cli(stack, store, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHOPFLOOR_INFLUX_URL": stack.influxdb.url, "SHOPFLOOR_INFLUX_DB": store.database,
           "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-c", "from shopfloor.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_losses_over_http_and_corrections_beside_the_telemetry(stack, store, plant_id, tmp_path):
    line = _telemetry_in(store, plant_id)
    plant, plan = line.plant(plant_id), _plan()
    app = FastAPI()
    app.include_router(losses_router(plant, plan, lambda: Store(store.url, store.database)))
    auth.install(app, TOKEN)
    client = TestClient(app)
    now = dt.datetime.fromtimestamp(NOW_MS / 1000, dt.UTC).isoformat()

    answer = client.get("/api/lines/l1/losses", params={"period": "shift", "now": now})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    shift_start = int(dt.datetime(2026, 9, 21, 6, tzinfo=dt.UTC).timestamp() * 1000)
    assert report["period"]["start"] == "2026-09-21T06:00:00+00:00" and report["start"] == shift_start

    # the same figures as the pure analysis on the same samples with the live detector's settings
    telemetry = gather(plant, "l1", line.samples, "memory")
    spans = state_spans(telemetry)
    config = LiveConfig()
    timeline = analyze(spans, telemetry.stations, "l1", config.window_s, config.method, config.memory_s,
                       telemetry=telemetry)
    windows = [ConstraintWindow(w.start, w.end, w.bottleneck) for w in timeline.windows]
    marks = [ReasonMark(s, x["ts"], x["reason"]) for s, x in line.samples if "reason" in x]
    expected = losses(telemetry, spans, windows, shift_start, NOW_MS, reported=marks,
                      target_units=due_units(plan, "l1", shift_start, NOW_MS), throughput_per_unit=50.0,
                      currency="EUR").to_json()
    assert report["causes"] == expected["causes"]
    assert report["target_units"] == expected["target_units"] > 0 and report["currency"] == "EUR"
    stop_ms = START_MS + 6000 * 1000
    assert [s["start"] for s in report["unassigned_stops"]] == [stop_ms]
    before = _raw(store, plant_id)

    fix = {"ts": stop_ms + 90_000, "reason": "material_shortage", "by": "ana"}
    unauthenticated = client.post("/api/lines/l1/stations/s3/reasons", json=fix)
    assert unauthenticated.status_code == 401
    headers = {"Authorization": f"Bearer {TOKEN}"}
    no_stop = client.post("/api/lines/l1/stations/s3/reasons", headers=headers,
                          json={**fix, "ts": START_MS + 100_000})
    assert no_stop.status_code == 422
    assert "\n" not in no_stop.json()["detail"] and "was not down" in no_stop.json()["detail"]
    bad = client.post("/api/lines/l1/stations/s3/reasons", headers=headers, json={**fix, "reason": "a b"})
    assert bad.status_code == 422
    written = client.post("/api/lines/l1/stations/s3/reasons", headers=headers, json=fix)
    assert written.status_code == 201, written.text
    assert written.json()["stop"]["start"] == stop_ms and written.json()["stop"]["reported"] is None

    after = client.get("/api/lines/l1/losses", params={"period": "shift", "now": now}).json()
    assert after["unassigned_stops"] == []
    assert [(c["start"], c["reason"], c["reported"]) for c in after["corrections"]] == [
        (stop_ms, "material_shortage", None)]
    row = next(c for c in after["causes"] if c["label"] == "s3 down: material_shortage")
    assert row["corrected_minutes"] == pytest.approx(4.0, rel=0.02)
    assert _raw(store, plant_id) == before  # the telemetry is as the stations sent it
    stored = store.query(f"SELECT * FROM reason_correction WHERE plant = {quote_string(plant_id)}").rows()
    assert [(r["station"], r["reason"], r["by"], r["time"]) for r in stored] == [
        ("s3", "material_shortage", "ana", stop_ms + 90_000)]

    # the command line gives the same document as the API
    plant_file, plan_file = _files(tmp_path, plant_id)
    common = ("losses", "show", "--plant", plant_file, "--plan", plan_file, "--line", "l1", "--now", now)
    done = run_cli(stack, store, *common, "--shift", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == after
    table = run_cli(stack, store, *common)
    assert table.returncode == 0 and "s3 down: material_shortage (corrected)" in table.stdout, table.stdout
    both = run_cli(stack, store, *common, "--shift", "--day")
    assert both.returncode == 2 and "give one of --hour, --shift, --day, --month" in both.stderr


def test_without_a_plan_the_paths_say_how_to_give_one():
    line = simulate(60, [])
    app = FastAPI()
    app.include_router(losses_router_for(line.plant(), lambda: Store("http://127.0.0.1:9", "x"), None))
    answer = TestClient(app).get("/api/lines/l1/losses")
    assert answer.status_code == 404 and "--plan PLAN.toml" in answer.json()["detail"]
