"""Accuracy of the bottleneck detector over the simulator's scenario library, against its ground truth.

Run: `python bench/bench_bottleneck_accuracy.py [--seeds 10] [--hours 8] [--window 1800]
      [--accept strict|lenient] [--settle 0] [--methods apm,turning-point,combined]`

For every scenario in simulators/scenarios and every seed, the simulator's telemetry (the contract's
records, 1 Hz) goes through the detector twice: with the reported states, and from queue counts alone
(states dropped, inferred from queues and buffers). Each window that lies inside one truth period is
scored: it agrees when the detector names a station the truth accepts. A clear period accepts its
bottleneck only. A balanced period accepts, `strict`, the truth's bottleneck or runner-up; `lenient`,
every station whose gain is at least (1 - clear_margin) of the best gain: in the truth's own terms
the stations that share the constraint ("a detector may name any of them"). Each truth period is
also scored as one report (the station with the most bottleneck time in it). The reference figure in
the same run is the chance level: a uniformly random station's agreement over the same windows. The
truth is computed once per scenario (seed 0): it describes the scenario, not one sample path.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.bottleneck import METHODS, analyze  # noqa: E402
from analysis.states import spans  # noqa: E402
from analysis.telemetry import LineTelemetry, gather  # noqa: E402
from simulators.scenario import Scenario, load_scenario  # noqa: E402
from simulators.telemetry import simulate_telemetry  # noqa: E402
from simulators.truth import ground_truth  # noqa: E402

SCENARIOS = Path(__file__).resolve().parents[1] / "simulators" / "scenarios"


def accepted(period: dict, clear_margin: float, rule: str) -> set[str]:
    """Stations a detector may name in this truth period (see the module docstring)."""
    best = period["gains"][period["bottleneck"]]
    if period["regime"] == "clear" or best <= 0:
        return {period["bottleneck"]}
    if rule == "strict":
        return {period["bottleneck"], period["runner_up"]}
    return {s for s, gain in period["gains"].items() if gain >= (1 - clear_margin) * best}


def line_telemetry(scenario: Scenario, hours: float, seed: int) -> LineTelemetry:
    telemetry = simulate_telemetry(scenario, hours, seed)
    pairs = ((key.station, sample) for key, sample in telemetry.records(scenario.plant_id, scenario.line_id))
    return gather(scenario.plant, scenario.line_id, pairs, f"scenario {scenario.name}")


def score(data: LineTelemetry, truth: dict, window_s: float, method: str, use_states: bool,
          memory_s: float | None, rule: str, settle_s: float = 0.0):
    """(regime -> [agreeing windows, windows, chance-level agreements]) for one run."""
    timeline = analyze(spans(data, use_states=use_states), data.stations, data.line.id, window_s, method,
                       memory_s)
    tally: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for number, period in enumerate(truth["periods"]):
        ok = accepted(period, truth["clear_margin"], rule)
        # After a change the line needs time to reach the steady state the truth describes (the first
        # period is already settled by the simulator's warm-up).
        begin = period["start"] + (settle_s * 1000 if number else 0)
        inside = [w for w in timeline.windows if w.start >= begin and w.end <= period["end"]]
        for window in inside:
            entry = tally[period["regime"]]
            entry[0] += window.bottleneck in ok
            entry[1] += 1
            entry[2] += len(ok) / len(data.stations)
        # The whole period as one report (a shift's shares): the station with the most bottleneck time.
        time_as_bottleneck = {s: sum(w.shares[s] * w.observed_ms for w in inside) for s in data.stations}
        entry = tally[f"{period['regime']} (whole period)"]
        entry[0] += max(time_as_bottleneck, key=time_as_bottleneck.__getitem__) in ok
        entry[1] += 1
        entry[2] += len(ok) / len(data.stations)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--window", type=float, default=1800.0, help="window length, seconds")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--memory", type=float, default=None, help="trailing seconds the answer is "
                        "judged on (default: the detector's)")
    parser.add_argument("--settle", type=float, default=0.0, help="seconds after a truth period's start "
                        "(a change of the line) left out of the score")
    parser.add_argument("--accept", choices=("strict", "lenient"), default="strict",
                        help="balanced periods: strict = truth bottleneck or runner-up; lenient = every "
                        "station with at least (1 - clear_margin) of the best gain")
    args = parser.parse_args()
    methods = args.methods.split(",")
    totals: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    per_scenario: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    began = time.perf_counter()
    for path in sorted(SCENARIOS.glob("*.toml")):
        scenario = load_scenario(path)
        truth = ground_truth(scenario, args.hours, seed=0)
        regimes = ",".join(sorted({p["regime"] for p in truth["periods"]}))
        for seed in range(1, args.seeds + 1):
            data = line_telemetry(scenario, args.hours, seed)
            for method in methods:
                for source, use_states in (("states", True), ("queues", False)):
                    for regime, (hit, n, chance) in score(data, truth, args.window, method, use_states,
                                                                   args.memory, args.accept,
                                                                   args.settle).items():
                        keys = [(totals, (method, source, regime))]
                        if "whole" not in regime:
                            keys.append((per_scenario, (path.stem, method, source)))
                        for table, key in keys:
                            table[key][0] += hit
                            table[key][1] += n
                            table[key][2] += chance
        print(f"# {path.stem}: {len(truth['periods'])} truth period(s), {regimes}", flush=True)
    print(f"\n{args.seeds} seeds x {args.hours:g} h per scenario, windows of {args.window:g} s, "
          f"balanced accepted: {args.accept}, settle {args.settle:g} s after a change, "
          f"{time.perf_counter() - began:.0f} s in all\n")
    print("| method | input | regime | agreement | windows (periods) | chance level |")
    print("|---|---|---|---|---|---|")
    for (method, source, regime), (hit, n, chance) in sorted(totals.items()):
        print(f"| {method} | {source} | {regime} | {hit / n:.1%} | {n} | {chance / n:.1%} |")
    print("\n| scenario | method | input | agreement | windows |")
    print("|---|---|---|---|---|")
    for (name, method, source), (hit, n, _) in sorted(per_scenario.items()):
        print(f"| {name} | {method} | {source} | {hit / n:.1%} | {n} |")


if __name__ == "__main__":
    main()
