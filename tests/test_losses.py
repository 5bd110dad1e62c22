"""Losses at the constraint (analysis/losses.py) scored on a line with stops injected at known times.

The truth: the injected stops of the constraint s3 (their lengths and reasons), the seconds the line
simulation (tests/stopped_line.py) had s3 starved and blocked, all caused by one injected stop each
(s1 upstream, s4 downstream), and a slow stretch of s3 (48 s instead of 40 s a unit for 30 minutes,
so 30 x (1 - 40/48) = 5 minutes lost). A one-minute stop of s2 is covered by the buffer in front of
s3 and must cost nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stopped_line import START_MS, Event, simulate

from analysis.bottleneck import analyze
from analysis.losses import UNASSIGNED, ConstraintWindow, ReasonMark, find_stop, losses
from analysis.states import spans as state_spans
from analysis.telemetry import gather
from simulators.scenario import load_scenario
from simulators.telemetry import REASON_NAMES, simulate_telemetry

HOUR_S = 3600
EVENTS = [Event("s3", "down", 1800, 600, "jam"), Event("s3", "setup", 4000, 360, "changeover"),
          Event("s3", "down", 6000, 240), Event("s1", "down", 7200, 1200, "breakdown"),
          Event("s2", "down", 9600, 60, "jam"), Event("s4", "down", 10800, 1200, "material_shortage"),
          Event("s3", "slow", 12600, 1800, cycle_s=48)]
END_MS = START_MS + 4 * HOUR_S * 1000
PER_UNIT = 50.0


@pytest.fixture(scope="module")
def line():
    return simulate(4 * HOUR_S, EVENTS)


def _run(line, *, states: bool = True, corrections=()):
    telemetry = gather(line.plant(), "l1", line.samples, "test")
    if not states:
        telemetry = telemetry.without_states()
    spans = state_spans(telemetry)
    timeline = analyze(spans, telemetry.stations, "l1", 4 * HOUR_S)
    windows = [ConstraintWindow(w.start, w.end, w.bottleneck) for w in timeline.windows]
    marks = [ReasonMark(station, s["ts"], s["reason"]) for station, s in line.samples if "reason" in s]
    return losses(telemetry, spans, windows, START_MS, END_MS, reported=marks, corrections=corrections,
                  target_units=400, throughput_per_unit=PER_UNIT, currency="EUR")


def _minutes(result) -> dict[str, float]:
    return {cause.label: cause.ms / 60_000 for cause in result.causes}


def test_lost_minutes_per_cause_match_the_injected_truth(line):
    result = _run(line)
    assert result.constraint_ms == {"s3": 4 * HOUR_S * 1000}
    truth = {"s3 down: jam": 10.0, "s3 setup: changeover": 6.0, f"s3 down: {UNASSIGNED}": 4.0,
             "s3 starved by s1": line.seconds_in("s3", "starved") / 60,
             "s3 blocked by s4": line.seconds_in("s3", "blocked") / 60,
             "s3 slow running": 30 * (1 - 40 / 48)}
    assert truth["s3 starved by s1"] > 10 and truth["s3 blocked by s4"] > 10  # the stops did reach s3
    measured = _minutes(result)
    assert set(measured) == set(truth), measured
    for label, minutes in truth.items():
        assert measured[label] == pytest.approx(minutes, rel=0.02), label
    # no cause names s2: its one-minute stop did not starve the constraint
    assert all("s2" not in label for label in measured)
    assert [c.label for c in result.causes] == sorted(measured, key=lambda label: -measured[label])


def test_units_and_money_follow_the_demonstrated_rate(line):
    result = _run(line)
    assert result.rates["s3"] == pytest.approx(90.0)  # one unit per 40 s of work
    report = result.to_json()
    assert report["constraint_hour_value"] == pytest.approx(90 * PER_UNIT)
    gap = report["target_units"] - report["output_units"]
    assert report["gap_units"] == gap > 0
    for row in report["causes"]:
        units = row["minutes"] / 60 * 90
        assert row["units"] == pytest.approx(units, abs=0.1)
        assert row["money"] == pytest.approx(units * PER_UNIT, abs=0.5 * PER_UNIT / 10)
        assert row["share_of_gap"] == pytest.approx(units / gap, abs=1e-3)
    jam = next(row for row in report["causes"] if row["label"] == "s3 down: jam")
    assert jam["money"] == 750.0  # 10 min x 1.5 units/min x 50
    assert report["lost_money"] == pytest.approx(sum(row["money"] for row in report["causes"]), abs=0.01)
    assert [s["start"] for s in report["unassigned_stops"]] == [START_MS + 6000 * 1000]


def test_a_correction_reassigns_the_stop_it_falls_in(line):
    stop_ms = START_MS + 6000 * 1000
    fix = ReasonMark("s3", stop_ms + 90_000, "material_shortage", corrected_at=END_MS, by="supervisor")
    result = _run(line, corrections=[fix])
    measured = _minutes(result)
    assert f"s3 down: {UNASSIGNED}" not in measured
    assert measured["s3 down: material_shortage"] == pytest.approx(4.0, rel=0.02)
    corrected = result.to_json()["corrections"]
    assert corrected == [{"station": "s3", "kind": "down", "start": stop_ms, "end": stop_ms + 240_000,
                          "minutes": 4.0, "reason": "material_shortage", "reported": None,
                          "corrected": True}]
    assert find_stop(result.stops, "s3", stop_ms - 1) is None
    assert find_stop(result.stops, "s3", stop_ms + 239_999) is not None


def test_inferred_states_name_the_same_culprits(line):
    """Without reported states the starve and the block are still charged to s1 and s4 (within 2 %)."""
    result = _run(line, states=False)
    measured = _minutes(result)
    assert measured["s3 starved by s1"] == pytest.approx(line.seconds_in("s3", "starved") / 60, rel=0.02)
    assert measured["s3 blocked by s4"] == pytest.approx(line.seconds_in("s3", "blocked") / 60, rel=0.02)
    assert measured["s3 down: jam"] == pytest.approx(10.0, rel=0.1)
    assert result.notes and "inferred" in result.notes[0]


def test_the_simulator_gives_its_failures_reasons():
    scenario = load_scenario(Path(__file__).parent.parent / "simulators" / "scenarios"
                             / "moving_constraint.toml")
    samples = [s for _, s in simulate_telemetry(scenario, hours=1, seed=3).records("p1", "l1")]
    down = [s for s in samples if s["state"] == "down"]
    assert down and all(s.get("reason") in REASON_NAMES for s in down)
    assert all("reason" not in s for s in samples if s["state"] not in ("down", "setup"))


def test_the_plan_gives_money_per_line(tmp_path):
    from shopfloor.errors import ConfigError
    from shopfloor.plan import load_plan

    example = load_plan(Path(__file__).parent.parent / "examples" / "plan.toml")
    money = example.money_for("l1")
    assert money is not None and money.throughput_per_unit == 42.5 and money.currency == "EUR"
    assert example.money_for("l9") is None
    text = (Path(__file__).parent.parent / "examples" / "plan.toml").read_text()
    twice = tmp_path / "twice.toml"
    again = '[[line]]\nid = "l1"\nthroughput_per_unit = 1.0\n\n[calendar]'
    twice.write_text(text.replace("[calendar]", again, 1))
    with pytest.raises(ConfigError, match=r"line l1 has two \[\[line\]\] tables"):
        load_plan(twice)
    path = tmp_path / "negative.toml"
    path.write_text(text.replace("throughput_per_unit = 42.50", "throughput_per_unit = -1"))
    with pytest.raises(ConfigError, match="throughput_per_unit"):
        load_plan(path)


def test_on_the_simulator_every_non_working_constraint_minute_has_one_cause():
    """The project's simulator (random failures, each with a drawn reason): the causes other than slow
    running add up to the time the constraint of the moment did not work, and no failure is unassigned."""
    from analysis.live import LiveConfig
    from analysis.losses import WORKING, constraint_index, state_grid
    from simulators.telemetry import FAILURE_REASONS

    scenario = load_scenario(Path(__file__).parent.parent / "simulators" / "scenarios"
                             / "moving_constraint.toml")
    line_id = scenario.line_id
    # 4 h: the constraint moves from s3 to s7 at hour 3 (with 2 h the truth is s3 throughout)
    records = list(simulate_telemetry(scenario, hours=4, seed=5).records("p1", line_id))
    telemetry = gather(scenario.plant, line_id, [(key.station, s) for key, s in records], "sim")
    spans = state_spans(telemetry)
    config = LiveConfig()
    timeline = analyze(spans, telemetry.stations, line_id, config.window_s, config.method, config.memory_s,
                       telemetry=telemetry)
    windows = [ConstraintWindow(w.start, w.end, w.bottleneck) for w in timeline.windows]
    marks = [ReasonMark(key.station, s["ts"], s["reason"]) for key, s in records if "reason" in s]
    start, end = telemetry.begin_ms, telemetry.end_ms + 1000
    result = losses(telemetry, spans, windows, start, end, reported=marks)
    grid = np.arange(start, end, 1000, dtype=np.int64)
    codes, who = state_grid(spans, grid), constraint_index(windows, telemetry.stations, grid)
    covered = who >= 0
    idle_ms = int((codes[np.maximum(who, 0), np.arange(len(grid))][covered] != WORKING).sum()) * 1000
    assert sum(c.ms for c in result.causes if c.kind != "slow") == idle_ms
    downs = [c for c in result.causes if c.kind == "down"]
    assert downs and all(c.detail in FAILURE_REASONS for c in downs)
    assert len({c.station for c in result.causes}) >= 2  # the constraint moved, and each is charged its own
