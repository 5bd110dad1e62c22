"""Targets, indicators and escalations against the real InfluxDB and Mosquitto (the `stack` fixture):
what the boards query must be what the commands computed, and escalations travel the alert path."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from analysis.alerts import stored_alerts
from analysis.indicators import by_station, read_line_output
from analysis.rollup import day_report
from analysis.telemetry import from_file
from shopfloor.contract import (
    INDICATOR_MEASUREMENT,
    TARGET_MEASUREMENT,
    StationKey,
    alerts_topic,
    sample_line,
    write_records,
)
from shopfloor.mqtt import make_client
from shopfloor.plan import load_plan
from shopfloor.plant import load_plant
from shopfloor.settings import mqtt_endpoint
from shopfloor.store import quote_string
from tests.test_feasibility import LINE, synthetic_samples

pytestmark = pytest.mark.servers
EXAMPLES = Path(__file__).parent.parent / "examples"


def run_cli(stack, store, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHOPFLOOR_INFLUX_URL": stack.influxdb.url, "SHOPFLOOR_INFLUX_DB": store.database,
           "SHOPFLOOR_MQTT_URL": stack.mosquitto.url}
    return subprocess.run([sys.executable, "-c", "from shopfloor.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=90, env=env)


def test_written_targets_are_what_show_prints(stack, store) -> None:
    plan = str(EXAMPLES / "plan.toml")
    done = run_cli(stack, store, "targets", "write", "--plan", plan, "--plant", str(EXAMPLES / "plant.toml"),
                   "--line", "l1")
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    totals = store.query(f'SELECT sum("units"), count("units") FROM {TARGET_MEASUREMENT} '
                         f"WHERE plant = 'p1' AND line = 'l1' GROUP BY grain").series
    by_grain = {s.tags["grain"]: s.values[0][1:] for s in totals}
    assert {grain: total for grain, (total, _) in by_grain.items()} == dict.fromkeys(
        ("year", "quarter", "month", "week", "day", "shift", "hour", "shift_hour"), 1_200_000)
    assert by_grain["day"][1] == 365 and by_grain["hour"][1] == 8760 and by_grain["week"][1] == 53
    shown = orjson.loads(run_cli(stack, store, "targets", "show", "--plan", plan, "--line", "l1", "--grain",
                                 "month", "--json").stdout)["targets"]
    stored = store.query(f"SELECT units, hours, \"end\" FROM {TARGET_MEASUREMENT} "
                         f"WHERE grain = 'month'").rows()
    assert [row["units"] for row in stored] == [period["units"] for period in shown]
    assert stored[0]["time"] == 1798758000000 and stored[0]["end"] == 1801436400000  # January, Berlin


def write_telemetry(store, plant: str) -> list[tuple[StationKey, dict]]:
    records = [(StationKey(plant, "l1", station), sample) for station, sample in synthetic_samples()]
    store.write([sample_line(key, sample) for key, sample in records])
    return records


@pytest.fixture
def line_files(tmp_path: Path, plant_id: str) -> tuple[Path, Path]:
    plant = tmp_path / "plant.toml"
    plant.write_text(f'plant = "{plant_id}"\n[[line]]\nid = "l1"\n' + "".join(
        f'[[line.station]]\nid = "{s.id}"\nbuffer = {s.buffer}\nideal_cycle_s = {s.ideal_cycle_s}\n'
        for s in LINE.stations))
    plan = tmp_path / "plan.toml"
    plan.write_text('[[objective]]\nline = "l1"\nyear = 2027\nunits = 730800\n[calendar]\n'
                    'shifts = [{ name = "A", start = "06:00", end = "14:00" }]\n[escalation]\n'
                    'checkpoints = ["07:00"]\npace_tolerance = 0.05\nconstraint_uptime = 0.95\n')
    return plant, plan


def test_stored_indicators_match_the_file_and_are_written_for_the_boards(stack, store, plant_id, line_files,
                                                                         tmp_path: Path) -> None:
    plant, plan = line_files
    records = write_telemetry(store, plant_id)
    write_records(tmp_path / "same.jsonl", records)
    plant_model = load_plant(plant)
    # the synthetic day is 2 March 2027, 06:00 to 08:00 UTC; judge it at 08:00
    done = run_cli(stack, store, "targets", "indicators", "--plant", str(plant), "--plan", str(plan),
                   "--line", "l1", "--day", "2027-03-02", "--now", "2027-03-02T08:00:10Z", "--json",
                   "--write")
    assert done.returncode == 0, done.stderr
    live = orjson.loads(done.stdout)
    same = by_station(from_file(plant_model, "l1", tmp_path / "same.jsonl"))
    offline = day_report(load_plan(plan), LINE, same, live["indicators"]["start"],
                         live["indicators"]["end"]).to_json()
    assert live["indicators"] == offline["indicators"] and live["hours"] == offline["hours"]
    assert live["month_to_date"]["actual"] == 584 == offline["month_to_date"]["actual"]
    start = live["indicators"]["start"]
    assert read_line_output(store, plant_id, LINE, start, start + 86_400_000) == 584
    points = store.query(f"SELECT * FROM {INDICATOR_MEASUREMENT} WHERE plant = {quote_string(plant_id)} "
                         f"GROUP BY period").series
    by_period = {s.tags["period"]: s.rows() for s in points}
    # midnight to 08:00:10: eight whole hours and the running one
    assert len(by_period["hour"]) == 9 and sum(row["output"] for row in by_period["hour"]) == 584
    day = by_period["day"][0]
    assert day["time"] == start and day["constraint"] == "b" and day["output"] == 584
    # shift A (06:00-14:00 UTC) so far: all of the day's output, due 700 by 08:00:10
    [shift] = by_period["shift"]
    assert shift["time"] == start + 6 * 3_600_000 and shift["output"] == 584
    assert shift["target"] == pytest.approx(700 + 350 * 10 / 3600) and shift["pace"] < 1
    assert live["shifts"][0]["shift"] == "2027-03-02 A"
    assert day["constraint_uptime"] == pytest.approx(live["indicators"]["executive"]["constraint_uptime"])


def test_check_sends_escalations_once_through_the_alert_path(stack, store, plant_id, line_files) -> None:
    plant, plan = line_files
    write_telemetry(store, plant_id)
    received: queue.Queue = queue.Queue()
    endpoint = mqtt_endpoint(stack.mosquitto.url)
    listener = make_client(f"listen-{plant_id}", endpoint)
    listener.on_message = lambda client, userdata, message: received.put(orjson.loads(message.payload))
    listener.connect(endpoint.host, endpoint.port)
    listener.subscribe(alerts_topic(plant_id, "l1"), qos=1)
    listener.loop_start()
    try:
        args = ["targets", "check", "--plant", str(plant), "--plan", str(plan), "--line", "l1",
                "--now", "2027-03-02T08:00:10Z"]
        done = run_cli(stack, store, *args)
        assert done.returncode == 0, done.stderr
        # 584 of 700 units due by 08:00 (17 % behind), constraint b up 90 % (target 95 %), and the
        # month's run rate (584 units in its first 10 planned hours) far below 350/h
        expected = ["constraint_uptime_low", "forecast_below_target", "pace_behind_target"]
        assert all(kind in done.stdout for kind in expected)
        assert sorted(received.get(timeout=10)["kind"] for _ in range(3)) == expected
        again = run_cli(stack, store, *args)
        assert again.returncode == 0 and "no new escalation" in again.stdout
    finally:
        listener.disconnect()
        listener.loop_stop()
    stored = stored_alerts(store, plant_id, "l1", 0)
    assert sorted(row["kind"] for row in stored) == expected
    assert received.empty()


def test_watch_keeps_every_planned_line_current(stack, store, plant_id, line_files) -> None:
    plant, plan = line_files
    write_telemetry(store, plant_id)
    args = ["targets", "watch", "--plant", str(plant), "--plan", str(plan), "--rounds", "2", "--every", "1",
            "--now", "2027-03-02T08:00:10Z"]
    done = run_cli(stack, store, *args)
    assert done.returncode == 0, done.stderr
    rounds = done.stdout.strip().splitlines()
    assert len(rounds) == 2
    assert rounds[0].endswith("line l1: 584 of 701 due, constraint b, 3 new alert(s)")
    assert rounds[1].endswith("line l1: 584 of 701 due, constraint b, 0 new alert(s)")
    days = store.query(f"SELECT output FROM {INDICATOR_MEASUREMENT} WHERE plant = {quote_string(plant_id)} "
                       f"AND period = 'day'").rows()
    assert [row["output"] for row in days] == [584]
    assert len(stored_alerts(store, plant_id, "l1", 0)) == 3


def test_feasibility_from_the_store_over_several_days(stack, store, plant_id, line_files) -> None:
    plant, plan = line_files
    write_telemetry(store, plant_id)  # 2 March only
    args = ["targets", "feasibility", "--plant", str(plant), "--plan", str(plan), "--line", "l1", "--json",
            "--day", "2027-03-03", "--now", "2027-03-03T12:00:00Z"]
    one_day = run_cli(stack, store, *args)
    assert one_day.returncode == 2 and "no samples of line l1" in one_day.stderr
    two_days = run_cli(stack, store, *args, "--days", "2")
    assert two_days.returncode == 0, two_days.stderr
    verdict = orjson.loads(two_days.stdout)
    assert verdict["constraint"] == "b" and verdict["shortfall"] == pytest.approx(0.17, abs=0.01)
