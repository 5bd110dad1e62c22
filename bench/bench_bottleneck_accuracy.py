"""Accuracy of the bottleneck methods on random lines they were never tuned on, strictly scored.

Run: `python bench/bench_bottleneck_accuracy.py [--set test] [--lines 60] [--window 1800]
      [--methods apm,turning-point,combined] [--no-reference] [--fit-to-end]`

Every line of the random family (simulators/family.py) in the chosen seed set is simulated, its truth
computed twice on independent draws (simulators/truth.py: common random numbers, 5 % speed-up), and
every method scored per 30-minute window with the reported states and from queue counts alone
(analysis/yardstick.py). Strict: the window names exactly the truth's bottleneck of its regime, in
clear and hard (near-balanced, margin < 0.5) regimes alike; top-2 also credits the runner-up. Regimes
whose two truths disagree are left out. The reference in the same run is the PyPI
`active-period-method` on the same active periods (the station with the most sole + shifting
bottleneck time per window), and the chance level (1 / stations).

What was tuned where: the family's own design constant (CLEAR_SHARE) on `tune` lines 0-29; the `crn`
method's simulation (replications and hours) and the choice of `crn` as the default of `analyze
bottleneck` on `tune` lines 0-19, its per-station regimes (change-point thresholds and intervals,
failures pooled in their own regime) on `tune` lines 0-79, and the kinds of call with the lower bounds
they carry (analysis/calls.py: `--set tune --lines 80 --methods crn --fit-to-end`, the bounds of its
last table) on `tune` lines 0-79 too; the APM methods' constants
(BALANCED_MARGIN, memory) predate the family and were chosen on the scenario library; nothing on `test`.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from analysis.bottleneck import ANALYZE_DEFAULT_METHOD, DEFAULT_METHOD, METHODS  # noqa: E402
from analysis.calls import CALLS  # noqa: E402
from analysis.yardstick import REFERENCE, START_MS, Tally, reference_answers, score_line  # noqa: E402
from simulators.family import family_truth, fingerprint, random_line, seeds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# A stored truth holds only while the line and the code that computes its truth are unchanged.
TRUTH_SOURCES = ("simulators/engine.py", "simulators/draws.py", "simulators/truth.py", "simulators/family.py",
                 "simulators/scenario.py")
DEFAULT_CACHE = Path.home() / ".cache" / "shopfloor" / "family-truth"


def cached_truth(seed: int, cache: Path | None) -> dict:
    """The truth of line `seed`, kept in `cache` under the line's fingerprint and the truth code's digest.

    Why: two truth replications of a line cost several seconds; every benchmark run on the same seeds
    would compute them again. A change of the family or of the truth's code makes a new key.
    """
    if cache is None:
        return family_truth(seed, start_ms=START_MS)
    code = hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in TRUTH_SOURCES)).hexdigest()[:12]
    path = cache / f"{seed}-{fingerprint(random_line(seed))}-{code}-{START_MS}.json"
    if path.exists():
        return orjson.loads(path.read_bytes())
    truth = family_truth(seed, start_ms=START_MS)
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(orjson.dumps(truth))
    partial.replace(path)
    return truth


BOOTSTRAP_DRAWS = 4000


def call_bounds(lines: list[Tally], method: str, kind: str) -> tuple[float, float]:
    """One-sided 95 % lower bounds of a kind of call's (hit, pair) rates, both inputs pooled, from
    BOOTSTRAP_DRAWS draws of whole lines (a line's windows are not independent of each other)."""
    counts = np.zeros((len(lines), 3))
    for row, line in zip(counts, lines, strict=True):
        for source in ("states", "queues"):
            row += line.calls.get((method, source, kind), (0, 0, 0))
    draws = np.random.default_rng(0).integers(0, len(lines), (BOOTSTRAP_DRAWS, len(lines)))
    totals = counts[draws].sum(axis=1)
    rates = totals[:, :2] / np.maximum(totals[:, 2:], 1)
    hit, pair = np.percentile(rates, 5, axis=0)
    return float(hit), float(pair)


def print_calls(tally: Tally, methods: tuple[str, ...], lines: list[Tally]) -> None:
    """Each kind of call (analysis/calls.py) as measured here against the lower bounds it carries: whether
    the huddle's "right at least N in 10" holds on these lines."""
    graded = [m for m in methods if any(key[0] == m for key in tally.calls)]
    if not graded:
        return
    print("\n| method | input | call | windows | named the truth (carried: at least) "
          "| truth named or runner-up (carried: at least) |")
    print("|---|---|---|---|---|---|")
    for method in graded:
        for source in ("states", "queues", "both"):
            for call in CALLS:
                sources = ("states", "queues") if source == "both" else (source,)
                hit = pair = n = 0
                for one in sources:
                    h, p, k = tally.call_rates(method, one, call.kind)
                    if k:
                        hit, pair, n = hit + h * k, pair + p * k, n + k
                if n:
                    print(f"| {method} | {source} | {call.kind} | {n} | {hit / n:.1%} "
                          f"({call.right_at_least:.1%}) | {pair / n:.1%} ({call.pair_right_at_least:.1%}) |")
    print("\nOne-sided 95 % lower bounds over these lines (both inputs, whole lines drawn again):")
    for method in graded:
        bounds = [(call.kind, *call_bounds(lines, method, call.kind)) for call in CALLS]
        print(f"- {method}: " + "; ".join(f"{kind}: named {hit:.3f}, with runner-up {pair:.3f}"
                                          for kind, hit, pair in bounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="test", choices=("tune", "test"))
    parser.add_argument("--lines", type=int, default=60)
    parser.add_argument("--window", type=float, default=1800.0, help="window length, seconds")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--no-reference", action="store_true", help="leave out the PyPI package")
    parser.add_argument("--write-sample", type=Path, default=None, help="write the truths of the first "
                        "--lines lines of the set to this file (the suite's stored sample) and stop")
    parser.add_argument("--truth-cache", type=Path, default=DEFAULT_CACHE,
                        help=f"folder of computed truths, reused while line and truth code are unchanged "
                        f"(default {DEFAULT_CACHE})")
    parser.add_argument("--no-truth-cache", action="store_true", help="compute every truth afresh")
    parser.add_argument("--first", type=int, default=0, help="skip this many lines of the set")
    parser.add_argument("--fit-to-end", action="store_true", help="crn fits each window only up to its "
                        "end, as the live detector's newest window (default: up to 1 h ahead in its regime)")
    args = parser.parse_args()
    cache = None if args.no_truth_cache else args.truth_cache
    if args.write_sample is not None:
        truths = [cached_truth(seed, cache) for seed in seeds(args.set, args.lines)]
        args.write_sample.write_bytes(orjson.dumps(truths) + b"\n")
        print(f"{args.write_sample}: truths of {len(truths)} `{args.set}` lines")
        return
    methods = tuple(args.methods.split(","))
    extra = {}
    if not args.no_reference:
        try:
            import active_period_method  # noqa: F401

            extra[REFERENCE] = reference_answers
        except ImportError:
            print("# active-period-method is not installed: no reference rows (pip install the test extra)")
    tally = Tally()
    lines: list[Tally] = []  # each line's own, for the bounds of the kinds of call
    chance = [0.0, 0]
    began = time.perf_counter()
    for seed in seeds(args.set, args.first + args.lines)[args.first:]:
        lines.append(Tally())
        truth = score_line(seed, lines[-1], methods=methods, window_s=args.window, extra=extra,
                           truth=cached_truth(seed, cache), ahead_s=0.0 if args.fit_to_end else None)
        tally.merge(lines[-1])
        stations = len(random_line(seed).stations)
        for period in truth["periods"]:
            if period["agree"]:
                chance[0] += 1 / stations
                chance[1] += 1
        print(f"# line {seed}: {stations} stations, regimes "
              + " ".join(f"{p['bottleneck']}/{p['regime'][0]}{'' if p['agree'] else '(left out)'}"
                         for p in truth["periods"]), flush=True)
    regimes = tally.regimes
    left_out = regimes["left out (replications disagree)"]
    print(f"\n`{args.set}` set, {args.lines} lines, {regimes['scored']} regimes scored "
          f"({regimes['clear']} clear, {regimes['balanced']} hard), {left_out} left out; windows of "
          f"{args.window:g} s; {time.perf_counter() - began:.0f} s in all; defaults: "
          f"{ANALYZE_DEFAULT_METHOD} (analyze bottleneck, live loop, losses), {DEFAULT_METHOD} (span-only "
          "callers: the huddle page's fallback)\n")
    print("| method | input | clear strict | hard strict | clear top-2 | hard top-2 | windows clear / hard |")
    print("|---|---|---|---|---|---|---|")
    for method in (*methods, *extra):
        for source in ("states", "queues"):
            rates = [tally.rate(method, source, regime, kind) for kind in ("strict", "top2")
                     for regime in ("clear", "hard")]
            counts = [tally.windows(method, source, regime) for regime in ("clear", "hard")]
            print(f"| {method} | {source} | " + " | ".join(f"{r:.1%}" for r in rates)
                  + f" | {counts[0]} / {counts[1]} |")
    print(f"| chance level (1 / stations, per regime) | | {chance[0] / max(chance[1], 1):.1%} | | | | |")
    print_calls(tally, methods, lines)
    print("\nTuned: the family's CLEAR_SHARE on `tune` lines 0-29; crn's simulation and the default on "
          "`tune` lines 0-19, its per-station regimes on `tune` lines 0-79, its kinds of call and their "
          "bounds on `tune` lines 0-79 (--fit-to-end); APM constants on the scenario library (before the "
          "family); nothing on `test`.")


if __name__ == "__main__":
    main()
