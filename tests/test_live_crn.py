"""The live detector with method crn on the real InfluxDB: it follows the moving constraint of
simulators/scenarios/moving_constraint.toml (s3, then s7 at hour 3, then s5 at hour 6) within one
regime, and feasibility and the huddle name the station of its stored answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.feasibility import assess
from analysis.indicators import by_station
from analysis.live import LiveConfig, LiveDetector, history, live_constraint
from analysis.rollup import stored_constraint
from analysis.telemetry import from_store
from dashboards.huddle_api import HuddleRange, HuddleReader
from shopfloor.contract import sample_line
from simulators.scenario import Scenario, load_scenario
from simulators.telemetry import simulate_telemetry

pytestmark = pytest.mark.servers
SCENARIO = Path(__file__).resolve().parents[1] / "simulators" / "scenarios" / "moving_constraint.toml"
MIN = 60_000
CONFIG = LiveConfig(window_s=300, confirm_s=600, method="crn")


def test_live_crn_follows_the_moving_constraint_and_every_consumer_reads_its_answer(store, plant_id):
    spec = load_scenario(SCENARIO).model_dump(by_alias=True)
    scenario = Scenario.model_validate({**spec, "plant": plant_id})
    t0 = 1_790_000_100_000
    telemetry = simulate_telemetry(scenario, 7.5, 1, t0)
    keep = (t0 + 90 * MIN, t0 + 450 * MIN)  # the lookback of the first tick on
    store.write([sample_line(key, sample) for key, sample in telemetry.records(plant_id, scenario.line_id)
                 if keep[0] <= sample["ts"] < keep[1]])
    detector = LiveDetector(store, scenario.plant, scenario.line_id, CONFIG)
    answers = {minute: detector.tick(t0 + minute * MIN).current
               for minute in [*range(150, 180, 10), *range(190, 300, 10), *range(370, 450, 10)]}
    assert answers[170] == "s3"
    moved = [minute for minute in range(190, 300, 10) if answers[minute] == "s7"]
    assert moved and moved[0] <= 270 and answers[290] == "s7", answers  # within the 3 h regime
    assert answers[440] == "s5", answers
    changes = history(store, plant_id, scenario.line_id, t0)
    assert [station for _, station in changes] == ["s3", "s7", "s5"]
    windows = store.query(f"SELECT bottleneck, method FROM bottleneck WHERE plant = '{plant_id}' "
                          f"AND bottleneck =~ /./").rows()
    assert windows and {row["method"] for row in windows} == {"crn"}
    # Every consumer takes the constraint from the stored answer.
    end = t0 + 440 * MIN + 1
    start = end - 120 * MIN
    assert live_constraint(store, plant_id, scenario.line_id, start, end) == "s5"
    assert stored_constraint(store, plant_id, scenario.line_id, start, end) == "s5"
    line = scenario.plant.get_line(scenario.line_id)
    samples = by_station(from_store(store, scenario.plant, line.id, start, end))
    verdict = assess(samples, line, start, end, needed_per_hour=100,
                     constraint=stored_constraint(store, plant_id, line.id, start, end))
    assert verdict.constraint == "s5"
    huddle = HuddleReader(store, scenario.plant).constraint(line, HuddleRange(start, end, "test"), end)
    assert huddle["source"] == "live detector" and huddle["station"] == "s5"
