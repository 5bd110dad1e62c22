"""Speed of the vectorized active period method against the reference implementation, same data.

Run: `python bench/bench_bottleneck_speed.py [--stations 20] [--hours 24] [--seed 1]`

Also, end to end as `analyze bottleneck` runs (the telemetry file read included): reading the file
(samples/s, target >= 500,000/s), the whole offline analysis with each method (target <= 5 s), and one
live tick of the `crn` method (the last window's regime fitted and simulated, target <= 1 s).

A line of `stations` stations (gamma process times, failures, small buffers) is simulated for `hours`
at 1 Hz; both implementations get the same active periods (from the reported states). Printed: the
time of each (the reference timed on its own work, `ActivePeriodMethod(frame)` plus
`calculate_momentary_bottlenecks()`; the frame is built outside the clock), the ratio, and whether
their momentary bottlenecks are identical. The machine is shared (2 cores): figures are noisy.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import best_of  # bench/timing.py: run as `python bench/<name>.py`

from analysis.apm import momentary_bottlenecks  # noqa: E402
from analysis.bottleneck import analyze  # noqa: E402
from analysis.reference import status_changes  # noqa: E402
from analysis.states import reported, spans  # noqa: E402
from analysis.telemetry import from_file, gather  # noqa: E402
from shopfloor.contract import write_records  # noqa: E402
from simulators.scenario import Scenario  # noqa: E402
from simulators.telemetry import simulate_telemetry  # noqa: E402


def scenario(stations: int, balanced: bool) -> Scenario:
    slow = 0.0 if balanced else 6.0
    specs = [{"id": f"s{i + 1}", "cycle_s": 30.0 + (slow if i == stations // 2 else 0.0), "cv": 0.3,
              "buffer": 4, "mtbf_min": 90, "mttr_min": 3} for i in range(stations)]
    return Scenario.model_validate({"name": "speed", "station": specs})



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--balanced", action="store_true", help="all stations alike (the bottleneck "
                        "moves often: a longer chain) instead of one 20 %% slower station in the middle")
    args = parser.parse_args()
    line = scenario(args.stations, args.balanced)
    telemetry = simulate_telemetry(line, args.hours, args.seed)
    pairs = ((key.station, sample) for key, sample in telemetry.records(line.plant_id, line.line_id))
    data = gather(line.plant, line.line_id, pairs, "speed scenario")
    samples = sum(len(s) for s in data.series)
    spans = reported(data)
    active = spans.active()
    n = len(data.stations)

    mine_s, mine = best_of(3, lambda: momentary_bottlenecks(active, n))
    whole_s, _ = best_of(3, lambda: analyze(reported(data), data.stations, line.line_id, 3600))
    frame = status_changes(active, data.stations, spans.begin_ms, spans.end_ms)
    from active_period_method import ActivePeriodMethod

    def reference():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            method = ActivePeriodMethod(frame)
            return method.calculate_momentary_bottlenecks()

    reference_s, result = best_of(1, reference)
    starts = result["start"].to_numpy().astype("datetime64[ms]").astype("int64").tolist()
    stops = result["stop"].to_numpy().astype("datetime64[ms]").astype("int64").tolist()
    index = {name: i for i, name in enumerate(data.stations)}
    rows = list(zip(result["station"], starts, stops, result["bottleneck_type"], strict=True))
    theirs = {kind: {(index[s], a, b) for s, a, b, k in rows if k == kind} for kind in ("sole", "shifting")}
    same = theirs["sole"] == set(mine.sole.tuples()) and theirs["shifting"] == set(mine.shifting.tuples())
    kind = "balanced line" if args.balanced else "one slow station"
    print(f"{kind}, {n} stations x {args.hours:g} h at 1 Hz: {samples} samples, {len(active)} active "
          f"periods, {len(mine.raw)} bottleneck periods")
    print(f"reference active-period-method: {reference_s:8.3f} s")
    print(f"analysis.apm (vectorized):      {mine_s:8.3f} s   ratio {reference_s / mine_s:6.1f}x faster")
    print(f"whole timeline from samples (spans + APM + windows + turning point): {whole_s:.3f} s "
          f"(ratio {reference_s / whole_s:.1f}x)")
    print(f"momentary bottlenecks identical to the reference: {same}")
    end_to_end(line, telemetry, reference_s)
    if not same:
        sys.exit(1)


def end_to_end(line: Scenario, telemetry, reference_s: float) -> None:
    """The offline command's work from the file on, per method, and one live `crn` tick."""
    import tempfile
    import time

    from analysis.bottleneck import METHODS
    from shopfloor.contract import read_records

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "day.jsonl"
        write_records(path, telemetry.records(line.plant_id, line.line_id))
        cpu = time.process_time()
        read_s, data = best_of(3, lambda: from_file(line.plant, line.line_id, path))
        cpu_s = (time.process_time() - cpu) / 3
        # The reference in the same run: the per-record path (orjson + pydantic per line, as
        # from_file read before the bulk reader; every file it cannot vouch for still goes this way).
        per_record_s, _ = best_of(1, lambda: gather(line.plant, line.line_id, (
            (key.station, sample) for key, sample in read_records(path)), "per-record path"))
    samples = sum(len(s) for s in data.series)
    print(f"reading the telemetry file: {read_s:.2f} s = {samples / read_s:,.0f} samples/s "
          f"(target >= 500,000; {cpu_s:.2f} s CPU a read, both cores); per-record path {per_record_s:.2f} s "
          f"= {samples / per_record_s:,.0f} samples/s: {per_record_s / read_s:.1f}x")
    for method in METHODS:
        took, _ = best_of(2, lambda m=method: analyze(spans(data), data.stations, line.line_id, 1800, m,
                                                      telemetry=data))
        print(f"offline, --method {method:13s} --window 1800: {read_s + took:6.2f} s with the read "
              f"({took:.2f} s analysis; target <= 5 s; reference APM alone {reference_s:.2f} s)")
    from analysis.live import LiveConfig, conclude

    live = LiveConfig()  # the live loop's default (crn) on its lookback (the store's I/O aside)
    recent = data.between(data.end_ms - int(live.lookback_s * 1000), data.end_ms)
    # The first tick (nothing stored) judges every window of the rewritten range; a steady tick finds
    # the older windows' answers stored: here those of the first tick's timeline.
    first_s, (_, first, _, _) = best_of(1, lambda: conclude(recent, live, None))
    print(f"first live tick (no stored answers: the last {live.rewrite_s / 60:g} min of windows judged): "
          f"{first_s:.2f} s")
    stored = {w.start: (w.bottleneck, w.runner_up, float(w.margin)) for w in first.windows if w.bottleneck}
    tick_s, _ = best_of(3, lambda: conclude(recent, live, None, stored))
    print(f"one live crn tick (analysis.live.conclude on the last hour: spans, change points, fit of the "
          f"regime so far, simulation of the newest window): {tick_s:.2f} s "
          f"(target <= 1 s; {tick_s / reference_s:.2f}x the reference APM's day)")


if __name__ == "__main__":
    main()
