"""The recursion against an independent SimPy model on the same draws, and the telemetry's invariants.

SimPy follows every machine event by event; the engine solves the departure recursion with a prefix
maximum. Equal start and departure times for every unit and station, and equal states at every 1 Hz
sample, mean both tell the same story, including ties (deterministic times), blocking with zero
buffers, parallel machines, setups, failures and rate changes in mid-run.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.draws import US
from simulators.engine import LineModel, Variant, simulate
from simulators.reference import reference_states, simulate_reference
from simulators.scenario import Scenario
from simulators.telemetry import STATE_NAMES, sample, simulate_telemetry


def line(seed: int, stations: int, hours: float = 2.0) -> Scenario:
    """A random line: every mechanism the engine has, in a mix the seed picks."""
    rng = np.random.default_rng(seed)
    specs = []
    for j in range(stations):
        dist = str(rng.choice(["deterministic", "gamma", "lognormal"]))
        spec = {"id": f"s{j + 1}", "cycle_s": float(rng.choice([20.0, 30.0, 30.0, 40.0])),
                "distribution": dist, "cv": 0.0 if dist == "deterministic" else float(rng.uniform(0.1, 0.8)),
                "buffer": int(rng.integers(0, 4)), "machines": int(rng.choice([1, 1, 1, 2, 3]))}
        if rng.random() < 0.6:
            spec.update(mtbf_min=float(rng.uniform(10, 60)), mttr_min=float(rng.uniform(0.5, 4)),
                        mttr_cv=float(rng.choice([0.0, 1.0])))
        if rng.random() < 0.3:
            spec.update(setup_every=int(rng.integers(3, 20)), setup_min=float(rng.uniform(0.2, 2)))
        specs.append(spec)
    changes = [{"at_hour": float(rng.uniform(0.1, hours)),
                "station": f"s{int(rng.integers(1, stations + 1))}",
                "slow_by_pct": float(rng.uniform(-40, 80)), "mttr_factor": float(rng.uniform(0.5, 4))}
               for _ in range(int(rng.integers(0, 4)))]
    return Scenario.model_validate({"station": specs, "change": changes, "hours": hours, "warmup_min": 10})


def deterministic_line() -> Scenario:
    """Every time a whole number of seconds: events coincide with each other and with the samples."""
    specs = [{"id": f"s{j}", "cycle_s": c, "distribution": "deterministic", "buffer": b, "machines": k}
             for j, (c, b, k) in enumerate([(30, 2, 1), (20, 0, 1), (60, 1, 2), (30, 0, 1), (25, 3, 1)])]
    return Scenario.model_validate({"station": specs, "hours": 1.0, "warmup_min": 0,
                                    "change": [{"at_hour": 0.5, "station": "s0", "slow_by_pct": 100}]})


CASES = [pytest.param(line(seed, stations), id=f"random-{seed}-{stations}")
         for seed, stations in [(1, 4), (2, 6), (3, 8), (4, 5), (5, 10)]]
CASES.append(pytest.param(deterministic_line(), id="deterministic-ties"))


@pytest.mark.parametrize("scenario", CASES)
def test_departures_and_states_equal_simpy_on_the_same_draws(scenario: Scenario):
    model = LineModel.of(scenario)
    samples = int(scenario.hours * 3600)
    end_us = model.warmup_us + samples * US
    rng = np.random.default_rng(7)
    other = Variant(scale=tuple(rng.uniform(0.7, 1.2, model.size)),
                    machines=tuple(int(c) + int(rng.integers(0, 2)) for c in model.machines))
    run = simulate(model, end_us, reps=2, seed=11, variants=[Variant(), other], record=True)
    times = model.warmup_us + np.arange(samples, dtype=np.int64) * US
    for row in range(4):
        reference = simulate_reference(run, row=row)
        assert np.array_equal(reference.start, run.start[:, row]), f"row {row}: start times differ"
        assert np.array_equal(reference.depart, run.depart[:, row]), f"row {row}: departure times differ"
        telemetry = sample(run, model.warmup_us, samples, 0, row=row)
        expected = reference_states(reference, times)
        for j in range(model.size):
            got = [STATE_NAMES[c] for c in telemetry.state[j]]
            assert got == expected[j], f"row {row} station {j}: states differ from SimPy"


def test_rate_changes_reach_the_recursion():
    scenario = deterministic_line()
    model = LineModel.of(scenario)
    run = simulate(model, model.warmup_us + 3600 * US, record=True)
    cycle = np.diff(run.start[:, 0, 0]) / US
    assert set(cycle[:50]) == {30.0}
    assert 60.0 in set(cycle), "s0 runs at twice its time after hour 0.5"


@pytest.mark.parametrize("scenario", CASES)
def test_telemetry_invariants(scenario: Scenario):
    telemetry = simulate_telemetry(scenario, seed=3)
    buffers = np.array([s.buffer for s in scenario.stations])
    machines = np.array([s.machines for s in scenario.stations])
    assert (telemetry.queue >= 0).all()
    assert (telemetry.queue <= buffers[:, None]).all(), "a queue exceeds its buffer"
    assert (np.diff(telemetry.count, axis=1) >= 0).all(), "a counter went backwards"
    # Conservation: what left station j-1 and has not left station j waits in j's buffer or is held
    # on one of its machines (in process or finished and blocked).
    in_between = telemetry.count[:-1] - telemetry.count[1:]
    held = in_between - telemetry.queue[1:]
    assert (held >= 0).all() and (held <= machines[1:, None]).all()
    one_machine = machines[1:] == 1
    holding = np.isin(telemetry.state[1:], [STATE_NAMES.index(s) for s in ("working", "setup", "down",
                                                                               "blocked")])
    assert np.array_equal(held[one_machine], holding[one_machine].astype(int)), \
        "a single-machine station holds a unit exactly when it is working, setting up, down or blocked"
    starved = telemetry.state == STATE_NAMES.index("starved")
    assert (telemetry.queue[1:][starved[1:]] == 0).all(), "a starved station has an empty queue"
    assert np.array_equal(np.diff(telemetry.ts_ms), np.full(len(telemetry.ts_ms) - 1, 1000))


def test_saturated_first_station_is_never_starved():
    scenario = line(4, 5)
    telemetry = simulate_telemetry(scenario, seed=1)
    assert not (telemetry.state[0] == STATE_NAMES.index("starved")).any()


def test_same_seed_same_telemetry_other_seed_other_telemetry():
    scenario = line(2, 6)
    first, again, other = (simulate_telemetry(scenario, seed=s) for s in (5, 5, 6))
    assert np.array_equal(first.count, again.count) and np.array_equal(first.state, again.state)
    assert not np.array_equal(first.count, other.count)


def test_a_day_of_a_20_station_line_simulates_in_well_under_a_second():
    specs = [{"id": f"s{j}", "cycle_s": 30.0, "cv": 0.3, "mtbf_min": 120, "mttr_min": 5} for j in range(20)]
    scenario = Scenario.model_validate({"station": specs, "hours": 24})
    model = LineModel.of(scenario)
    import time

    began = time.perf_counter()
    run = simulate(model, model.warmup_us + 24 * 3600 * US)
    elapsed = time.perf_counter() - began
    assert run.output(model.warmup_us, model.warmup_us + 24 * 3600 * US)[0, 0] > 2000
    assert elapsed < 0.5, f"a day of 20 stations took {elapsed:.2f} s"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), stations=st.integers(1, 5))
def test_any_small_line_matches_simpy(seed: int, stations: int):
    scenario = line(seed, stations, hours=0.5)
    model = LineModel.of(scenario)
    run = simulate(model, model.warmup_us + 1800 * US, seed=seed, record=True)
    reference = simulate_reference(run)
    assert np.array_equal(reference.depart, run.depart[:, 0])
    times = model.warmup_us + np.arange(1800, dtype=np.int64) * US
    telemetry = sample(run, model.warmup_us, 1800, 0)
    expected = reference_states(reference, times)
    assert all([STATE_NAMES[c] for c in telemetry.state[j]] == expected[j] for j in range(model.size))
