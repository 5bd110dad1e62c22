"""Where the crn detector's accuracy is lost: a ladder of detectors, each given more than the real one.

Run: `python bench/bench_bottleneck_bounds.py [--set tune] [--lines 10] [--first 0] [--window 1800]
      [--rungs detector,true-line,...,steady-24h] [--draws 1] [--effort 8x8] [--no-truth-cache]`

Every rung answers the same 30-minute windows of the random line family (simulators/family.py) and is
scored by the same strict rule (analysis/yardstick.py's Tally; regimes whose two truths disagree left
out), so the differences between rungs say where the accuracy goes:

- `detector`: `crn` itself (analysis/constraint.py), as bench_bottleneck_accuracy.py scores it.
- `true-line`: each window answered by simulating the TRUE regime (the family's scenario with the
  regime's slow/mttr factors) at the detector's effort (8 replications of 8 h, or `--effort`; its own
  draws per window): what simulation noise alone loses. `true-line-truth-effort`: the same at the
  truth's effort (simulators/truth.py's adaptive 8-64 replications of 16 h) on a third set of draws,
  per regime: the ladder's top, about 100 % unless a regime is a coin flip.
- `true-cuts`: the detector's own fit and simulation (analysis/constraint.by_simulation) given the
  TRUE change points instead of its estimated ones (every station's pace and failures cut at the
  line's true changes): the regime from the truth's start, fitted as the detector fits it (up to 1 h
  past the window within the regime, analysis/constraint.py AHEAD_S). `own-changes`: each station
  fitted on the data since ITS OWN last true change (the family's Change list), then the same
  simulation: what pooling an unchanged station's evidence gives at best.
- `true-multi`, `true-single`, `true-failures`: the detector as it is (its own change points, fit
  and simulation, no reuse between windows), but before the simulation some stations get their TRUE
  laws in the window's regime (analysis/yardstick.with_true_laws): `true-multi` the stations of 2-3
  parallel machines (their machines, time law, failures and setups), `true-single` all one-machine
  stations, `true-failures` the one-machine stations' failures and repairs only. Which of the fitted
  laws costs what.
- `steady-8h`, `steady-24h` (any `steady-<H>h`): the regime's telemetry simulated as one steady run of
  H hours after the warm-up, every station fitted on it, the same simulation: how accuracy grows with
  data. `--draws N` gives each regime N independent runs, its windows answered by them in turn.
- model mismatch: `steady-24h` (fitted on a day of steady data, so estimation noise is small) against
  `true-line` (the true parameters through the same simulation effort): what the fitted model's shape
  loses (one machine per station, gamma times, exponential failures).

Fits and the detector run with reported states and from queues alone (inferred states) where the
rung reads telemetry. Truths come from bench_bottleneck_accuracy.py's cache (`cached_truth`). Nothing
here is tuned: no constant of this script was chosen on any score.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from bench_bottleneck_accuracy import DEFAULT_CACHE, cached_truth  # noqa: E402

from analysis.bottleneck import Window, analyze  # noqa: E402
from analysis.changepoints import StationCuts  # noqa: E402
from analysis.constraint import CHUNK_S, EFFORT, by_simulation  # noqa: E402
from analysis.crn_gain import Effort as SimEffort  # noqa: E402
from analysis.crn_gain import scenario_of, station_gains  # noqa: E402
from analysis.fit import FitTable, fit_line  # noqa: E402
from analysis.states import spans  # noqa: E402
from analysis.yardstick import (  # noqa: E402
    START_MS,
    Tally,
    line_telemetry,
    own_starts_ms,
    steady_scenario,
    true_gains,
    windows_of,
    with_true_laws,
)
from simulators.family import random_line, seeds  # noqa: E402
from simulators.telemetry import simulate_telemetry  # noqa: E402
from simulators.truth import Effort  # noqa: E402

RUNGS = ("detector", "true-line", "true-line-truth-effort", "true-cuts", "own-changes", "true-multi",
         "true-single", "true-failures", "steady-8h", "steady-24h")
# Which stations a `true-...` rung gives their true laws, and which of their laws (None: all).
TRUE_LAWS = {"true-multi": (lambda s: s.machines > 1, None),
             "true-single": (lambda s: s.machines == 1, None),
             "true-failures": (lambda s: s.machines == 1, ("mtbf_min", "mttr_min", "mttr_cv"))}
TRUE_LINE = ("true-line", "true-line-truth-effort")  # no telemetry: one row, no input
THIRD_DRAWS = 303  # the truth used 101 and 202 (simulators/family.TRUTH_SEEDS)
COIN = 0.1  # a truth margin below this: the two best stations are a coin flip for finite data
LABELS = {
    "detector": "crn as it is (estimated change points, regime so far)",
    "true-line": "true line, {effort} (own draws per window)",
    "true-line-truth-effort": "true line, truth's effort (8-64 x 16 h, third draws)",
    "true-cuts": "true change points, fitted stations (regime so far)",
    "own-changes": "true change points, each station since its own last change",
    "true-multi": "crn, the 2-3 machine stations' true laws",
    "true-single": "crn, the one-machine stations' true laws",
    "true-failures": "crn, the one-machine stations' true failures and repairs",
}


def steady_hours(rung: str) -> float:
    """The hours of a `steady-<H>h` rung."""
    return float(rung.removeprefix("steady-").removesuffix("h"))


def label(rung: str, effort: SimEffort = EFFORT) -> str:
    """The rung's row title, with the simulation effort it ran at where that is not the detector's."""
    at = "" if effort == EFFORT else f", simulated {effort.reps} x {effort.hours:g} h"
    if rung.startswith("steady-"):
        return f"regime's steady telemetry, {steady_hours(rung):g} h, fitted{at}"
    if rung == "true-line":
        return LABELS[rung].format(effort=f"{effort.reps} x {effort.hours:g} h"
                                   + (" (the detector's effort)" if effort == EFFORT else ""))
    return LABELS[rung] + (at if rung in ("true-cuts", "own-changes", *TRUE_LAWS) else "")


MARGIN_BINS = ((COIN, "< 0.1"), (0.25, "0.1-0.25"), (0.5, "0.25-0.5"))
AGE_BINS = ((1, "0.5 h"), (2, "1 h"), (4, "1.5-2 h"), (16, "2.5-4 h"))  # in half hours of regime so far


def margin_bin(margin: float) -> str:
    """The hard regime's truth-margin class (the lead's share of the best gain)."""
    return next((name for top, name in MARGIN_BINS if margin < top), MARGIN_BINS[-1][1])


def age_bin(age_ms: int) -> str:
    """How much of its regime a window's end has seen (the data a detector can pool)."""
    halves = round(age_ms / 1_800_000)
    return next((name for top, name in AGE_BINS if halves <= top), AGE_BINS[-1][1])


def _cell(tally: Tally, rung: str, source: str, key: str) -> str:
    n = tally.windows(rung, source, key)
    return f"{tally.rate(rung, source, key):.0%} ({n})" if n else "-"


def in_truth_terms(effort: SimEffort) -> Effort:
    """A fitted-line effort in simulators/truth.py's terms: one batch of its replications, same hours."""
    return Effort(batch=effort.reps, max_reps=effort.reps, measure_h=effort.hours, warmup_h=effort.warmup_h)


def parse_effort(text: str) -> SimEffort:
    """`REPSxHOURS`, e.g. 64x16, at the detector's warm-up and seed."""
    try:
        reps, hours = text.lower().split("x")
        effort = SimEffort(reps=int(reps), hours=float(hours), warmup_h=EFFORT.warmup_h, seed=EFFORT.seed)
    except ValueError:
        raise argparse.ArgumentTypeError(f"effort {text!r} is not REPSxHOURS, e.g. 64x16") from None
    if effort.reps < 2 or effort.hours <= 0:
        raise argparse.ArgumentTypeError(f"effort {text!r}: at least 2 replications of more than 0 h")
    return effort


def _simulated(windows: list[list[tuple[int, int]]], state_spans, data, effort: SimEffort,
               **options) -> list[list[str | None]]:
    """Per regime, the answers of analysis/constraint.by_simulation to its windows, given `options`
    (the true change points, or a `simulate` that knows part of the true line)."""
    flat = [Window(start, end, None, {}, []) for rows in windows for start, end in rows]
    by_simulation(flat, state_spans, data, effort, **options)
    picks = iter(w.bottleneck for w in flat)
    return [[next(picks) for _ in rows] for rows in windows]


def _pick_gains(fits: list, effort: SimEffort) -> str:
    gains = station_gains(fits, effort)
    return gains.stations[gains.best]


def score_ladder(seed: int, truth: dict, rungs: tuple[str, ...], tally: Tally, seconds: dict[str, float],
                 margins: dict[tuple[str, str], list[float]], window_s: float, draws: int = 1,
                 effort: SimEffort = EFFORT) -> None:
    """Every rung's answer to every scored window of line `seed`, added to `tally`; time per rung."""
    scenario = random_line(seed)
    periods = scenario.periods()
    designed = scenario.description.split("designed ")[1].split(",")
    data = line_telemetry(scenario, simulate_telemetry(scenario, seed=seed, start_ms=START_MS))
    cuts = [p["start"] for p in truth["periods"][1:]]
    sources = {name: spans(data, use_states=name == "states") for name in ("states", "queues")}
    begin_ms = min(s.begin_ms for s in sources.values())
    end_ms = max(s.end_ms for s in sources.values())
    windows = windows_of(begin_ms, end_ms, window_s, truth["periods"])

    def add(rung: str, source: str, k: int, picks: list[str | None]) -> None:
        period = truth["periods"][k]
        regime = "clear" if period["regime"] == "clear" else "hard"
        for pick, (_, end) in zip(picks, windows[k], strict=True):
            hit, top2 = pick == period["bottleneck"], pick in (period["bottleneck"], period["runner_up"])
            tally.add((rung, source, regime), hit, top2)
            if regime == "hard":
                tally.add((rung, source, margin_bin(period["margin"])), hit, top2)
            tally.add((rung, source, f"{regime} {age_bin(end - period['start'])}"), hit, top2)

    for k, period in enumerate(truth["periods"]):
        if period["agree"]:
            kind = "clear" if period["regime"] == "clear" else "hard"
            for _ in windows[k]:
                margins[("truth", kind)].append(period["margin"])
                margins[("designed", designed[k])].append(period["margin"])

    for source, state_spans in sources.items():
        table = None
        for rung in rungs:
            if rung in TRUE_LINE and source == "queues":
                continue
            began = time.perf_counter()
            if rung == "detector":
                timeline = analyze(state_spans, data.stations, data.line.id, window_s, "crn", telemetry=data)
                answer = {w.start: w.bottleneck for w in timeline.windows}
                for k, rows in enumerate(windows):
                    add(rung, source, k, [answer.get(start) for start, _ in rows])
            elif rung == "true-cuts":
                # every station cut at the line's true changes, for its pace and its failures alike
                true_cuts = [StationCuts(pace=cuts, failures=cuts) for _ in data.stations]
                for k, picks in enumerate(_simulated(windows, state_spans, data, effort, cuts=true_cuts)):
                    add(rung, source, k, picks)
            elif rung in TRUE_LAWS:
                chosen, fields = TRUE_LAWS[rung]
                known = {j for j, s in enumerate(scenario.station) if chosen(s)}
                regime_of = {start: k for k, rows in enumerate(windows) for start, _ in rows}

                def simulate(window: Window, fits: list, sim_effort: SimEffort, known=known, fields=fields,
                             regime_of=regime_of):
                    line = with_true_laws(scenario_of(fits), scenario, periods[regime_of[window.start]],
                                          known, fields)
                    return station_gains(fits, sim_effort, scenario=line)

                for k, picks in enumerate(_simulated(windows, state_spans, data, effort, simulate=simulate)):
                    add(rung, source, k, picks)
            elif rung == "own-changes":
                chunk = CHUNK_S * 1000
                table = table or FitTable.of(state_spans, data, state_spans.begin_ms // chunk * chunk,
                                             state_spans.end_ms, chunk)
                for k, rows in enumerate(windows):
                    starts = own_starts_ms(scenario, periods[k].start_h, START_MS)
                    picks = []
                    for _, end in rows:
                        by_start = {a: table.fit(a, end) for a in set(starts)}
                        picks.append(_pick_gains([by_start[a][j] for j, a in enumerate(starts)], effort))
                    add(rung, source, k, picks)
            elif rung.startswith("steady-"):
                hours = steady_hours(rung)
                for k, rows in enumerate(windows):
                    steady = steady_scenario(scenario, periods[k], hours)
                    picks = []
                    for d in range(min(draws, len(rows))):
                        run = line_telemetry(steady, simulate_telemetry(
                            steady, seed=seed * 10 + k + 1 + 1_000_000 * d, start_ms=START_MS))
                        run_spans = spans(run, use_states=source == "states")
                        fits = fit_line(run_spans, run, run_spans.begin_ms, run_spans.end_ms)
                        picks.append(_pick_gains(fits, effort))
                    add(rung, source, k, [picks[i % len(picks)] for i in range(len(rows))])
            else:
                for k, rows in enumerate(windows):
                    if not rows:
                        continue
                    if rung == "true-line":
                        picks = [true_gains(scenario, periods[k], effort=in_truth_terms(effort), seed=1 + i,
                                            stream=1_000 * (k + 1)) for i in range(len(rows))]
                    else:
                        picks = [true_gains(scenario, periods[k], seed=THIRD_DRAWS,
                                            stream=10_000 * (k + 1))] * len(rows)
                    add(rung, "true line", k, picks)
            seconds[rung] += time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="tune", choices=("tune", "test"))
    parser.add_argument("--lines", type=int, default=10)
    parser.add_argument("--first", type=int, default=0, help="skip this many lines of the set")
    parser.add_argument("--window", type=float, default=1800.0, help="window length, seconds")
    parser.add_argument("--rungs", default=",".join(RUNGS), help=f"any of {', '.join(RUNGS)} "
                        "(steady-<H>h for any H)")
    parser.add_argument("--draws", type=int, default=1, help="independent steady runs per regime (its "
                        "windows share them in turn)")
    parser.add_argument("--effort", type=parse_effort, default=EFFORT, help="replications x hours of the "
                        "simulation of every rung but `detector` and the truth's (default: the detector's "
                        f"{EFFORT.reps}x{EFFORT.hours:g})")
    parser.add_argument("--truth-cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--no-truth-cache", action="store_true", help="compute every truth afresh")
    args = parser.parse_args()
    rungs = tuple(args.rungs.split(","))
    unknown = sorted(r for r in rungs if r not in RUNGS and not re.fullmatch(r"steady-\d+(\.\d+)?h", r))
    if unknown:
        parser.error(f"unknown rung(s) {', '.join(unknown)}: use any of {', '.join(RUNGS)}")
    if args.draws < 1:
        parser.error("--draws must be at least 1")
    cache = None if args.no_truth_cache else args.truth_cache
    tally = Tally()
    seconds: dict[str, float] = defaultdict(float)
    margins: dict[tuple[str, str], list[float]] = defaultdict(list)
    began = time.perf_counter()
    for seed in seeds(args.set, args.first + args.lines)[args.first:]:
        truth = cached_truth(seed, cache)
        score_ladder(seed, truth, rungs, tally, seconds, margins, args.window, args.draws, args.effort)
        print(f"# line {seed}: {time.perf_counter() - began:.0f} s so far", flush=True)
    lines = f"lines {args.first}-{args.first + args.lines - 1}"
    print(f"\n`{args.set}` {lines}; windows of {args.window:g} s; simulation of the fitted or true line "
          f"{args.effort.reps} x {args.effort.hours:g} h; steady draws per regime {args.draws}; "
          f"{time.perf_counter() - began:.0f} s in all\n")
    print("| rung | input | clear strict | hard strict | clear top-2 | hard top-2 | windows clear / hard "
          "| s |")
    print("|---|---|---|---|---|---|---|---|")
    for rung in rungs:
        for source in ("true line",) if rung in TRUE_LINE else ("states", "queues"):
            rates = [tally.rate(rung, source, regime, kind) for kind in ("strict", "top2")
                     for regime in ("clear", "hard")]
            counts = [tally.windows(rung, source, regime) for regime in ("clear", "hard")]
            cells = ["-" if np.isnan(r) else f"{r:.1%}" for r in rates]
            print(f"| {label(rung, args.effort)} | {source} | " + " | ".join(cells)
                  + f" | {counts[0]} / {counts[1]} | {seconds[rung]:.0f} |")
    groups = (("Hard windows, strict, by their regime's truth margin:", [name for _, name in MARGIN_BINS]),
              ("Strict, by how much of its regime the window's end has seen:",
               [f"{regime} {name}" for regime in ("clear", "hard") for _, name in AGE_BINS]))
    for title, keys in groups:
        print(f"\n{title}\n")
        print("| rung | input | " + " | ".join(keys) + " |")
        print("|---|---|" + "---|" * len(keys))
        for rung in rungs:
            for source in ("true line",) if rung in TRUE_LINE else ("states", "queues"):
                cells = [_cell(tally, rung, source, key) for key in keys]
                print(f"| {rung} | {source} | " + " | ".join(cells) + " |")
    print(f"\nScored windows whose regime's truth margin is below {COIN} (a coin flip between two stations "
          "for any detector with finite data):\n")
    print("| regimes by | kind | windows | margin < 0.1 | 0.1-0.25 | 0.25-0.5 | median margin |")
    print("|---|---|---|---|---|---|---|")
    for (by, kind), values in sorted(margins.items()):
        v = np.array(values)
        shares = [np.mean(v < COIN), np.mean((v >= COIN) & (v < 0.25)), np.mean((v >= 0.25) & (v < 0.5))]
        print(f"| {by} | {kind} | {len(v)} | " + " | ".join(f"{s:.1%}" for s in shares)
              + f" | {np.median(v):.3f} |")


if __name__ == "__main__":
    main()
