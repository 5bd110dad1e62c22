"""Ground truth and what-if on the shipped scenario library: the planted constraints are found."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopfloor.errors import ConfigError
from simulators.scenario import load_scenario
from simulators.truth import CLEAR_MARGIN, ground_truth
from simulators.whatif import whatif

SCENARIOS = Path(__file__).resolve().parents[1] / "simulators" / "scenarios"
START_MS = 1_790_000_000_000


def test_clear_constraint_is_named_with_a_wide_margin():
    truth = ground_truth(load_scenario(SCENARIOS / "clear_constraint.toml"), start_ms=START_MS)
    (period,) = truth["periods"]
    assert (truth["line"], truth["plant"]) == ("l1", "p1")
    assert period["bottleneck"] == "s5" and period["regime"] == "clear"
    assert period["margin"] > 0.8
    assert period["gains"]["s5"] == pytest.approx(0.05, abs=0.01), "a 5 % faster constraint: ~5 % more"
    assert (period["start"], period["end"]) == (START_MS, START_MS + 8 * 3_600_000)


def test_constraint_that_moves_twice_a_shift():
    scenario = load_scenario(SCENARIOS / "moving_constraint.toml")
    truth = ground_truth(scenario, start_ms=START_MS)
    assert [p["bottleneck"] for p in truth["periods"]] == ["s3", "s7", "s5"]
    assert all(p["regime"] == "clear" for p in truth["periods"])
    assert [(p["start"] - START_MS) // 3_600_000 for p in truth["periods"]] == [0, 3, 6]
    assert truth["periods"][-1]["end"] == START_MS + 8 * 3_600_000


def test_balanced_line_has_no_clear_constraint():
    truth = ground_truth(load_scenario(SCENARIOS / "balanced_line.toml"), start_ms=START_MS)
    (period,) = truth["periods"]
    assert period["regime"] == "balanced" and period["margin"] < CLEAR_MARGIN
    gains = period["gains"].values()
    assert max(gains) < 0.02, "no single station's 5 % speed-up moves a balanced line much"


def test_truth_is_stable_across_seeds():
    scenario = load_scenario(SCENARIOS / "moving_constraint.toml")
    picks = {tuple(p["bottleneck"] for p in ground_truth(scenario, seed=seed)["periods"]) for seed in (1, 2)}
    assert picks == {("s3", "s7", "s5")}


def test_qc_station_misses_the_target_by_20_percent_and_a_second_qc_machine_closes_the_gap():
    scenario = load_scenario(SCENARIOS / "qc_gap.toml")
    (period,) = ground_truth(scenario)["periods"]
    assert period["bottleneck"] == "qc"
    result = whatif(scenario, "qc", add_machines=1, reps=10)
    target = scenario.target_per_hour
    assert result.before / target - 1 == pytest.approx(-0.20, abs=0.02)
    assert result.after - result.after_ci >= target, "with two QC machines the line meets its target"
    assert result.gain - result.gain_ci > 0.2 * target


def test_speeding_a_non_constraint_gains_nothing():
    scenario = load_scenario(SCENARIOS / "clear_constraint.toml")
    useless = whatif(scenario, "s2", speedup=0.1, reps=10)
    useful = whatif(scenario, "s5", speedup=0.1, reps=10)
    assert abs(useless.gain) <= useless.gain_ci + 0.5
    assert useful.gain - useful.gain_ci > 5, "10 % on the constraint: several units an hour"
    assert useful.per_day(16)[0] == pytest.approx(useful.gain * 16)


def test_whatif_refuses_what_cannot_be():
    scenario = load_scenario(SCENARIOS / "qc_gap.toml")
    with pytest.raises(ConfigError, match="no station 'nope'"):
        whatif(scenario, "nope", speedup=0.1)
    with pytest.raises(ConfigError, match="above -1"):
        whatif(scenario, "qc", speedup=-1)
    with pytest.raises(ConfigError, match="2 replications"):
        whatif(scenario, "qc", speedup=0.1, reps=1)


@pytest.mark.parametrize("planted", [0, 3, 6])
def test_truth_finds_a_planted_constraint_anywhere_on_the_line(planted: int):
    from simulators.scenario import Scenario

    specs = [{"id": f"st{j}", "cycle_s": 36.0 if j == planted else 30.0, "cv": 0.3, "buffer": 3,
              "mtbf_min": 120, "mttr_min": 3} for j in range(7)]
    truth = ground_truth(Scenario.model_validate({"station": specs}))
    (period,) = truth["periods"]
    assert period["bottleneck"] == f"st{planted}" and period["regime"] == "clear"
