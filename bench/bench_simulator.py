"""The line simulator against the same line in SimPy: same draws, same departures, how much faster.

Run: `python bench/bench_simulator.py [--stations 20] [--hours 24] [--reps 50] [--repeat 3]`

Both models run one replication of a line with variable process times, failures, setups, buffers
and a rate change in mid-run, on the same random draws; the benchmark first checks that every start
and departure time is equal, then times both (best of --repeat). The engine's time includes making
the draws; SimPy's does not (it reuses the engine's). A second figure runs --reps replications at once
(the way truth and what-if use it) against SimPy's single run times --reps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import best_of  # bench/timing.py: run as `python bench/<name>.py`

from simulators.draws import US  # noqa: E402
from simulators.engine import LineModel, simulate  # noqa: E402
from simulators.reference import simulate_reference  # noqa: E402
from simulators.scenario import Scenario  # noqa: E402


def line(stations: int, hours: float) -> Scenario:
    specs = [{"id": f"s{j}", "cycle_s": 30.0 if j != stations // 2 else 33.0, "cv": 0.3,
              "buffer": 2 + j % 4, "mtbf_min": 90, "mttr_min": 4,
              **({"setup_every": 50, "setup_min": 2} if j % 5 == 0 else {})} for j in range(stations)]
    changes = [{"at_hour": hours / 2, "station": "s1", "slow_by_pct": 20}]
    return Scenario.model_validate({"station": specs, "hours": hours, "change": changes})



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scenario = line(args.stations, args.hours)
    model = LineModel.of(scenario)
    end_us = model.warmup_us + int(args.hours * 3600 * US)

    engine_s, run = best_of(args.repeat, lambda: simulate(model, end_us, seed=1, record=True))
    simpy_s, reference = best_of(args.repeat, lambda: simulate_reference(run))
    same = (np.array_equal(reference.depart, run.depart[:, 0])
            and np.array_equal(reference.start, run.start[:, 0]))
    units = run.units
    print(f"line: {args.stations} stations, {args.hours:g} h (+{scenario.warmup_min:g} min warm-up), "
          f"{units} units simulated, {units * args.stations:,} unit-station steps")
    print(f"same start and departure times as SimPy: {'yes' if same else 'NO'}")
    print(f"one replication:  engine {engine_s * 1000:8.1f} ms   SimPy {simpy_s * 1000:8.1f} ms   "
          f"ratio {simpy_s / engine_s:6.1f}x")
    many_s, _ = best_of(args.repeat, lambda: simulate(model, end_us, seed=2, reps=args.reps))
    print(f"{args.reps} replications: engine {many_s * 1000:8.1f} ms   SimPy x{args.reps} "
          f"{simpy_s * args.reps * 1000:8.1f} ms   ratio {simpy_s * args.reps / many_s:6.1f}x")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
