"""Feasibility at the constraint on a synthetic line whose capacity is known by construction, and the
`targets indicators|feasibility` commands on the same data as a telemetry file."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from analysis.feasibility import Feasibility, NotMeasurable, assess, needed_rate
from analysis.indicators import by_station
from analysis.rollup import feasibility
from analysis.targets import decompose
from analysis.telemetry import gather
from shopfloor.contract import StationKey, write_records
from shopfloor.plan import Plan
from shopfloor.plant import Plant

PLANT = Plant.model_validate({"plant": "p1", "timezone": "UTC", "line": [{"id": "l1", "station": [
    {"id": "a", "buffer": 4, "ideal_cycle_s": 5.0},
    {"id": "b", "buffer": 4, "ideal_cycle_s": 10.0},
    {"id": "c", "buffer": 4, "ideal_cycle_s": 4.0},
]}]})
LINE = PLANT.line[0]
START = int(dt.datetime(2027, 3, 2, 6, tzinfo=dt.UTC).timestamp() * 1000)
STEP = 10_000  # a sample every 10 s


def synthetic_samples(hours: int = 2) -> list[tuple[str, dict]]:
    """b works one unit per 10 s sample, except down for the first 6 minutes of every hour: 324 units
    an active hour. a is blocked and c starved whenever b is down; c scraps every 10th unit."""
    n = hours * 360
    t = START + np.arange(n + 1) * STEP
    down = ((np.arange(n + 1) % 360) < 36)
    made = np.concatenate([[0], np.cumsum(~down[1:])])
    b_state = np.where(down, "down", "working")
    samples = []
    for i in range(n + 1):
        ts, done = int(t[i]), int(made[i])
        samples.append(("a", {"ts": ts, "seq": i, "count": done + 4, "queue": 5,
                              "state": "blocked" if down[i] else "working"}))
        samples.append(("b", {"ts": ts, "seq": i, "count": done, "queue": 4 if down[i] else 2,
                              "state": str(b_state[i])}))
        samples.append(("c", {"ts": ts, "seq": i, "count": done, "scrap": done // 10, "queue": 0,
                              "state": "starved" if down[i] else "working"}))
    return samples


def plan(units: int) -> Plan:
    return Plan.model_validate({
        "objective": [{"line": "l1", "year": 2027, "units": units}],
        "calendar": {"timezone": "UTC", "shifts": [{"name": "A", "start": "06:00", "end": "14:00"}],
                     "reserve": 0.1},
    })


def test_the_shortfall_is_measured_at_the_constraint() -> None:
    telemetry = by_station(gather(PLANT, "l1", synthetic_samples(), "synthetic"))
    end = START + 2 * 3_600_000
    result = assess(telemetry, LINE, START, end, needed_per_hour=350.0, reserve=0.1)
    assert result.constraint == "b"
    # 2 x 324 good units over 2 active hours, 90 % of them pass c, 10 % reserve: 262.4/h of 350/h
    assert result.delivered_per_hour == pytest.approx(324 * 0.9, rel=0.01)
    assert result.available_per_hour == pytest.approx(324 * 0.9 * 0.9, rel=0.01)
    assert result.shortfall == pytest.approx(1 - 324 * 0.81 / 350, abs=0.01)
    assert not result.feasible
    assert result.message == ("needs 350/h, the constraint (b) delivers 292/h when active (over 2.0 active "
                              "h), 263/h after the 10% reserve: 25% short: elevate b")
    assert result.to_json()["evidence_hours"] == pytest.approx(2.0, abs=0.01)
    assert result.to_json()["shortfall"] == pytest.approx(0.25, abs=0.01)


def test_a_reachable_goal_reports_its_headroom_and_a_what_if_is_only_asked_when_short() -> None:
    telemetry = by_station(gather(PLANT, "l1", synthetic_samples(), "synthetic"))
    asked = []
    result = assess(telemetry, LINE, START, START + 2 * 3_600_000, needed_per_hour=200.0, reserve=0.1,
                    whatif=lambda station: asked.append(station) or 0.3)
    assert result.feasible and result.message.endswith("31% headroom: feasible") and asked == []
    short = assess(telemetry, LINE, START, START + 2 * 3_600_000, needed_per_hour=400.0,
                   whatif=lambda station: asked.append(station) or 0.3)
    assert asked == ["b"] and short.whatif_gain == 0.3
    assert short.message.endswith("elevate b (the simulator gives +30% line output with it elevated)")


def test_elevating_the_constraint_is_worth_its_gain_over_the_months_hours_in_money() -> None:
    """March 2027 has 23 workdays of one 8-hour shift: 184 h; b delivers 324 x 0.9 = 291.6/h; a +30 %
    what-if at 42.50 EUR a unit is worth 0.3 x 291.6 x 184 x 42.5 = 684,093.60 EUR a month."""
    priced = Plan.model_validate({
        "objective": [{"line": "l1", "year": 2027, "units": 900_000}],
        "calendar": {"timezone": "UTC", "shifts": [{"name": "A", "start": "06:00", "end": "14:00"}],
                     "reserve": 0.1},
        "line": [{"id": "l1", "throughput_per_unit": 42.5, "currency": "EUR"}]})
    telemetry = by_station(gather(PLANT, "l1", synthetic_samples(), "synthetic"))
    result = feasibility(priced, LINE, telemetry, START, START + 2 * 3_600_000, whatif=lambda station: 0.3)
    assert not result.feasible and result.month_hours == 184
    assert result.elevation_value_per_month == pytest.approx(684_093.6, rel=0.01)
    assert result.to_json()["elevation_value_per_month"] == pytest.approx(684_093.6, rel=0.01)
    assert result.to_json()["currency"] == "EUR"
    assert "with it elevated, worth about 68" in result.message and " EUR a month)" in result.message
    unpriced = feasibility(plan(900_000), LINE, telemetry, START, START + 2 * 3_600_000,
                           whatif=lambda station: 0.3)
    assert unpriced.elevation_value_per_month is None and "worth" not in unpriced.message


def test_the_needed_rate_is_what_is_still_due_over_the_hours_left() -> None:
    targets = decompose(plan(522_000), "l1")  # 261 workdays x 8 h = 2088 h: 250/h
    assert targets.production_hours == 2088
    assert needed_rate(targets) == pytest.approx(250)
    replanned = decompose(plan(522_000), "l1", as_of=dt.date(2027, 7, 1), delivered=200_000)
    july = int(dt.datetime(2027, 7, 1, tzinfo=dt.UTC).timestamp() * 1000)
    hours_left = targets.production_ms_between(july, targets.year_end_ms) / 3_600_000
    assert needed_rate(replanned, july) == pytest.approx(322_000 / hours_left)
    telemetry = by_station(gather(PLANT, "l1", synthetic_samples(), "synthetic"))
    result = feasibility(plan(522_000), LINE, telemetry, START, START + 2 * 3_600_000)
    assert isinstance(result, Feasibility) and result.needed_per_hour == pytest.approx(250, rel=0.01)
    assert result.feasible and result.reserve == 0.1


def test_a_constraint_that_never_ran_cannot_be_measured() -> None:
    samples = [(s, {**sample, "state": "starved"}) for s, sample in synthetic_samples(1)]
    telemetry = by_station(gather(PLANT, "l1", samples, "synthetic"))
    with pytest.raises(NotMeasurable, match="not enough data yet: the constraint a of line l1 was active 0"):
        assess(telemetry, LINE, START, START + 3_600_000, needed_per_hour=1.0)


def test_ten_minutes_of_a_line_give_no_verdict() -> None:
    """The issue's "46 % short after 10 minutes": below MIN_ACTIVE_HOURS there is no verdict at all."""
    telemetry = by_station(gather(PLANT, "l1", synthetic_samples(), "synthetic"))
    with pytest.raises(NotMeasurable, match=r"was active 0\.2 h in the window; a capacity verdict needs 1 h"):
        assess(telemetry, LINE, START, START + 600_000, needed_per_hour=350.0)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from shopfloor.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    telemetry = tmp_path / "line.jsonl"
    write_records(telemetry, [(StationKey("p1", "l1", station), sample)
                              for station, sample in synthetic_samples()])
    plant_file = tmp_path / "plant.toml"
    plant_file.write_text('plant = "p1"\n[[line]]\nid = "l1"\n' + "".join(
        f'[[line.station]]\nid = "{s.id}"\nbuffer = {s.buffer}\nideal_cycle_s = {s.ideal_cycle_s}\n'
        for s in LINE.stations))
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text('[[objective]]\nline = "l1"\nyear = 2027\nunits = 730800\n[calendar]\n'
                         'shifts = [{ name = "A", start = "06:00", end = "14:00" }]\nreserve = 0.1\n')
    return telemetry, plant_file, plan_file


def test_the_commands_judge_a_telemetry_file(files: tuple[Path, Path, Path]) -> None:
    telemetry, plant_file, plan_file = files
    common = ["--plant", str(plant_file), "--plan", str(plan_file), "--line", "l1",
              "--telemetry", str(telemetry)]
    done = run_cli("targets", "feasibility", *common, "--json")
    assert done.returncode == 0, done.stderr
    verdict = orjson.loads(done.stdout)
    assert verdict["constraint"] == "b" and verdict["needed_per_hour"] == pytest.approx(350, rel=0.01)
    assert verdict["shortfall"] == pytest.approx(0.25, abs=0.01) and verdict["feasible"] is False
    human = run_cli("targets", "feasibility", *common)
    assert human.returncode == 0 and "25% short: elevate b" in human.stdout
    done = run_cli("targets", "indicators", *common, "--json")
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    executive = report["indicators"]["executive"]
    assert len(executive) == 7 and report["indicators"]["constraint"] == "b"
    assert executive["constraint_uptime"] == pytest.approx(0.9, abs=0.01)
    assert executive["constraint_active_share"] == pytest.approx(1.0)
    assert report["indicators"]["output"] == 648 - 64
    # two whole hours and the moment of the last sample (08:00:00.000), an hour just begun
    assert [hour["output"] for hour in report["hours"]] == [292, 292, 0]
    assert report["hours"][-1]["end"] - report["hours"][-1]["start"] == 1
    assert report["month_to_date"]["actual"] == 648 - 64
    assert [(shift["shift"], shift["output"]) for shift in report["shifts"]] == [("2027-03-02 A", 584)]
    table = run_cli("targets", "indicators", *common)
    assert table.returncode == 0 and "constraint uptime" in table.stdout
    bad = run_cli("targets", "indicators", *common[:-1], str(telemetry.with_name("missing.jsonl")))
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
