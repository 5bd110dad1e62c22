"""The random line family is what the issue asks for, and the detector holds a floor on a `test` sample.

The floor test scores the first 12 lines of the `test` set exactly as bench/bench_bottleneck_accuracy.py
does (strict: the one station whose speed-up raises output most) and fails below FLOORS, which sit a
few points under the figures measured on that sample when the floors were set, so a regression fails.
Their truths are stored (tests/data/family_test_sample.json, written by the benchmark's
`--set test --lines 12 --write-sample`): computing them takes about a minute. Each carries its line's
fingerprint, so a change of the family makes the stored sample fail until it is written again.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import orjson
import pytest

from analysis.bottleneck import ANALYZE_DEFAULT_METHOD, DEFAULT_METHOD
from analysis.yardstick import Tally, score_line
from simulators.family import SETS, _merge, fingerprint, random_line, seeds, set_of
from simulators.scenario import Scenario

SAMPLE = Path(__file__).parent / "data" / "family_test_sample.json"
# (method, input, regime) -> lowest acceptable strict agreement on the sample (49 clear / 116 hard
# windows). Measured when set: combined 69.4 % / 41.4 % with states, 71.4 % / 38.8 % from queues; crn
# (each station on its own regimes, fitted up to 1 h ahead within them, issue 11) 83.7 % / 44.0 % with
# states, 83.7 % / 41.4 % from queues (up to the window's end: 75.5 % / 44.0 % and 77.6 % / 38.8 %; one
# line-wide regime: 63.3 % / 37.9 % and 63.3 % / 39.7 %). Each floor is about three windows under.
FLOORS = {("combined", "states", "clear"): 0.63, ("combined", "queues", "clear"): 0.65,
          ("combined", "states", "hard"): 0.38, ("combined", "queues", "hard"): 0.36,
          ("crn", "states", "clear"): 0.77, ("crn", "queues", "clear"): 0.77,
          ("crn", "states", "hard"): 0.41, ("crn", "queues", "hard"): 0.38}

# crn's firm calls (every replication agrees) on the sample: 76.8 % right with states (69 windows),
# 76.2 % from queues (63); close calls 33.3 % both. The floor sits about four windows under.
FIRM_FLOOR = 0.70


def _lines(count: int = 40) -> list[Scenario]:
    return [random_line(seed) for seed in seeds("tune", count // 2) + seeds("test", count // 2)]


def test_seed_sets_are_disjoint_and_each_seed_belongs_to_one():
    tune, test = (set(SETS[name]) for name in ("tune", "test"))
    assert not tune & test
    assert set_of(seeds("tune", 3)[-1]) == "tune" and set_of(seeds("test", 1)[0]) == "test"
    with pytest.raises(ValueError):
        set_of(max(SETS["test"]) + 1)


def test_the_same_seed_gives_the_same_line_and_another_seed_another():
    assert fingerprint(random_line(7)) == fingerprint(random_line(7))
    assert len({fingerprint(random_line(seed)) for seed in range(20)}) == 20


def test_lines_span_the_family_the_issue_asks_for():
    lines = _lines()
    sizes = [len(s.stations) for s in lines]
    assert min(sizes) >= 3 and max(sizes) <= 12 and len(set(sizes)) > 5
    stations = [spec for s in lines for spec in s.stations]
    assert {spec.distribution for spec in stations} == {"deterministic", "gamma", "lognormal"}
    cvs = [spec.cv for spec in stations if spec.distribution != "deterministic"]
    assert min(cvs) >= 0.1 and max(cvs) <= 1.2
    assert all(1 <= spec.buffer <= 20 for spec in stations)
    assert any(spec.mtbf_min is None for spec in stations) and any(spec.mtbf_min for spec in stations)
    assert len({spec.mtbf_min for spec in stations if spec.mtbf_min}) > 20, "varied MTBF"
    assert any(spec.setup_every for spec in stations) and any(spec.machines > 1 for spec in stations)
    for scenario in lines:
        periods = scenario.periods()
        assert 2 <= len(periods) <= 5
        assert all(1.0 <= p.end_h - p.start_h <= 4.0 for p in periods)
        for before, after in itertools.pairwise(periods):
            moved = sum(a != b or c != d for a, b, c, d in zip(before.slow, after.slow, before.mttr,
                                                                after.mttr, strict=True))
            assert 1 <= moved <= 2, "one or two stations change per regime"
        laws = [spec.model_dump(exclude={"id"}) for spec in scenario.stations]
        assert all(a != b for a, b in itertools.combinations(laws, 2)), "never identical stations"
    designs = [d for s in lines for d in s.description.split("designed ")[1].split(",")]
    assert 0.1 < designs.count("clear") / len(designs) < 0.5


def test_replications_that_disagree_are_marked():
    def period(best: str, gains: dict[str, float], regime: str = "clear") -> dict:
        return {"start": 0, "end": 1, "bottleneck": best, "regime": regime, "gains": gains, "replications": 8}

    agree = _merge(period("s1", {"s1": 0.04, "s2": 0.01}), period("s1", {"s1": 0.05, "s2": 0.0}))
    assert agree["agree"] and agree["bottleneck"] == "s1" and agree["regime"] == "clear"
    assert agree["gains"]["s1"] == pytest.approx(0.045)
    split = _merge(period("s1", {"s1": 0.02, "s2": 0.018}, "balanced"),
                   period("s2", {"s1": 0.017, "s2": 0.02}, "balanced"))
    assert not split["agree"] and split["bottlenecks"] == ["s1", "s2"]


def test_default_methods_hold_their_floors_on_a_test_sample():
    tally = Tally()
    for truth in orjson.loads(SAMPLE.read_bytes()):
        seed = truth["seed"]
        assert truth["set"] == "test" and truth["fingerprint"] == fingerprint(random_line(seed)), (
            f"line {seed} changed: write the stored sample again (see the module docstring)")
        score_line(seed, tally, methods=(DEFAULT_METHOD, ANALYZE_DEFAULT_METHOD), truth=truth)
    for (method, source, regime), floor in FLOORS.items():
        rate = tally.rate(method, source, regime)
        assert not np.isnan(rate), f"the sample has no {regime} windows"
        assert rate >= floor, f"{method} from {source}, {regime}: {rate:.1%} < floor {floor:.0%}"
    for source in ("states", "queues"):  # the kinds of call (analysis/calls.py) keep their meaning
        firm, _, windows = tally.call_rates("crn", source, "firm")
        close, _, _ = tally.call_rates("crn", source, "close")
        assert windows >= 40, f"only {windows} firm calls from {source}"
        assert firm >= FIRM_FLOOR, f"firm calls from {source} right {firm:.1%} < floor {FIRM_FLOOR:.0%}"
        assert firm - close >= 0.2, f"from {source}: firm calls {firm:.1%}, close calls {close:.1%}"


def test_sim_family_writes_a_line_its_plant_and_the_stored_truth(tmp_path):
    import subprocess
    import sys

    from shopfloor.contract import read_records
    from shopfloor.plant import load_plant

    seed = 1_000_003  # 3 stations: its truth takes about a second
    out, truth, plant = tmp_path / "t.jsonl", tmp_path / "truth.json", tmp_path / "plant.toml"
    done = subprocess.run([sys.executable, "-m", "shopfloor", "sim", "family", str(seed), "--out", str(out),
                           "--truth", str(truth), "--plant", str(plant)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    scenario = random_line(seed)
    assert load_plant(plant).get_line(scenario.line_id).station_ids == scenario.station_ids
    assert sum(1 for _ in read_records(out)) == round(scenario.hours * 3600) * len(scenario.stations)
    stored = {t["seed"]: t for t in orjson.loads(SAMPLE.read_bytes())}[seed]
    assert orjson.loads(truth.read_bytes()) == stored, "the stored sample is what the code computes"
    bad = subprocess.run([sys.executable, "-m", "shopfloor", "sim", "family", "500000", "--out",
                          str(out)], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "in no set" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
