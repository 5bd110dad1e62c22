"""The bounds study's ladder (bench/bench_bottleneck_bounds.py) stands on helpers that must be right.

Its top rung (the true line simulated at the truth's effort on a third set of draws) must agree with
the stored truth on regimes that are not a coin flip, else every rung below it measures a broken
yardstick; the helpers that give the other rungs their regime (a station's own last change, a steady
run of a regime, the scored windows) are checked against the family's own Change lists.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from analysis.yardstick import (
    START_MS,
    own_starts_ms,
    steady_scenario,
    true_gains,
    windows_of,
    with_true_laws,
)
from simulators.family import fingerprint, random_line

SAMPLE = Path(__file__).parent / "data" / "family_test_sample.json"
THIRD_DRAWS = 303  # neither of the truth's own (simulators/family.TRUTH_SEEDS)


def _stored(seed: int) -> dict:
    truth = {t["seed"]: t for t in orjson.loads(SAMPLE.read_bytes())}[seed]
    assert truth["fingerprint"] == fingerprint(random_line(seed)), "stored sample is stale"
    return truth


def test_the_ladders_top_names_the_stored_truth_on_every_window_of_regimes_with_a_margin():
    checked = 0
    for seed in (1_000_003, 1_000_011):  # 3 and 4 stations: their truths take about a second each
        scenario, truth = random_line(seed), _stored(seed)
        end_ms = START_MS + round(scenario.hours * 3_600_000)
        windows = windows_of(START_MS, end_ms, 1800.0, truth["periods"])
        for k, (period, stored) in enumerate(zip(scenario.periods(), truth["periods"], strict=True)):
            if not stored["agree"] or stored["margin"] < 0.3:
                continue
            pick = true_gains(scenario, period, seed=THIRD_DRAWS, stream=10_000 * (k + 1))
            assert pick == stored["bottleneck"], f"line {seed} regime {k}: {pick} != {stored['bottleneck']}"
            checked += len(windows[k])
    assert checked >= 15, "too few windows to guard the ladder"


def test_windows_of_keeps_only_whole_windows_inside_scored_regimes():
    hour = 3_600_000
    periods = [{"start": 0, "end": 90 * 60_000, "agree": True},
               {"start": 90 * 60_000, "end": 2 * hour, "agree": False},
               {"start": 2 * hour, "end": 3 * hour + 1, "agree": True}]
    windows = windows_of(0, 3 * hour + 1, 1800.0, periods)
    assert windows[0] == [(0, 1_800_000), (1_800_000, 3_600_000), (3_600_000, 5_400_000)]
    assert windows[1] == []
    assert windows[2] == [(2 * hour, 2 * hour + 1_800_000), (2 * hour + 1_800_000, 3 * hour)]


def test_each_station_starts_at_its_own_last_change():
    scenario = random_line(1_000_011)  # changes: 2.5 h s4, 3.5 h s2, 4.5 h s1, 7.5 h s4 and s1
    hour = 3_600_000
    assert own_starts_ms(scenario, 4.5, START_MS) == [START_MS + 4.5 * hour, START_MS + 3.5 * hour, START_MS,
                                                       START_MS + 2.5 * hour]
    assert own_starts_ms(scenario, 7.5, START_MS)[0] == START_MS + 7.5 * hour
    assert own_starts_ms(scenario, 0.0, START_MS) == [START_MS] * 4


def test_a_steady_run_holds_the_regimes_factors_all_the_way():
    scenario = random_line(1_000_011)
    for period in scenario.periods():
        steady = steady_scenario(scenario, period, 24.0)
        (only,) = steady.periods()
        assert (only.start_h, only.end_h) == (0.0, 24.0)
        assert only.slow == pytest.approx(period.slow) and only.mttr == pytest.approx(period.mttr)


def test_true_laws_replace_only_the_chosen_stations_in_the_regimes_factors():
    from analysis.crn_gain import scenario_of
    from analysis.fit import StationFit

    line = random_line(1_000_011)  # last period: s1 0.99x slower, 5.7x repairs; s2 1.42x slower
    period = line.periods()[-1]
    fits = [StationFit(id=s.id, buffer=s.buffer, observed_s=3600.0, units=100, working_s=3000.0, down_s=60.0,
                       setup_s=0.0, failures=2, setups=0, cv=0.4, mttr_cv=1.0) for s in line.station]
    fitted = scenario_of(fits)
    whole = with_true_laws(fitted, line, period, {0})
    j = 0
    true = line.station[j]
    assert whole.station[j].cycle_s == pytest.approx(true.cycle_s * period.slow[j])
    assert whole.station[j].mttr_min == pytest.approx(true.mttr_min * period.mttr[j])
    assert (whole.station[j].machines, whole.station[j].distribution) == (true.machines, true.distribution)
    assert whole.station[1:] == fitted.station[1:]
    only = with_true_laws(fitted, line, period, {0, 3}, ("mtbf_min", "mttr_min"))
    for k in (0, 3):
        assert only.station[k].cycle_s == fitted.station[k].cycle_s  # the fitted pace stays
        assert only.station[k].mtbf_min == line.station[k].mtbf_min
        assert only.station[k].mttr_min == pytest.approx(line.station[k].mttr_min * period.mttr[k])


def test_the_telemetry_rungs_answer_every_scored_window_of_a_stored_line():
    # The rungs that fit the telemetry call the detector's own parts (analysis/constraint.py); a change
    # of their signature must fail here, not in the next bounds run.
    import sys
    from collections import defaultdict

    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    from bench_bottleneck_bounds import score_ladder

    from analysis.yardstick import Tally

    seed = 1_000_003
    tally, seconds, margins = Tally(), defaultdict(float), defaultdict(list)
    rungs = ("detector", "true-cuts", "own-changes", "true-multi", "true-single", "true-failures")
    score_ladder(seed, _stored(seed), rungs, tally, seconds, margins, 1800.0)
    for rung in rungs:
        for source in ("states", "queues"):
            windows = sum(tally.windows(rung, source, regime) for regime in ("clear", "hard"))
            assert windows >= 4, (rung, source, windows)
