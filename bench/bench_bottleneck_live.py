"""The live detector's answer over time against the simulator's truth: agreement, flapping, delay.

Run: `python bench/bench_bottleneck_live.py [--seeds 3] [--hours 8] [--tick 60]`

Replays what the live loop does (analysis.live.conclude: read the last hour, analyse, hysteresis) at
every tick of a simulated run, on the data a store would hold at that moment, without the store (the
live loop's InfluxDB round trips are what tests/test_service.py covers). Per scenario: how often the
live answer equals the truth's bottleneck (clear periods only, the first hour after a change left
out), how many times the answer changed against how many times the truth did, and after each change
of the truth how long until the live answer followed. The reference figure in the same run is the
same replay without hysteresis and memory (each tick's latest 60 s window): what the live answer would
be without them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.live import LiveConfig, conclude  # noqa: E402
from analysis.yardstick import START_MS, line_telemetry  # noqa: E402
from simulators.scenario import load_scenario  # noqa: E402
from simulators.telemetry import simulate_telemetry  # noqa: E402
from simulators.truth import ground_truth  # noqa: E402

SETTLE_MS = 3_600_000
TICKS: list[float] = []  # seconds of each replayed tick (conclude only, no store)
SCENARIOS = Path(__file__).resolve().parents[1] / "simulators" / "scenarios"


def replay(data, truth: dict, config: LiveConfig, tick_s: float, begin_ms: int, end_ms: int):
    """(agreeing ticks, scored ticks, answer changes, delays after truth changes in s)."""
    previous = None
    answers: list[tuple[int, str | None]] = []
    stored: dict = {}  # crn: the window answers the live loop would have written (stored_answers)
    for now in range(begin_ms + 600_000, end_ms + 1, int(tick_s * 1000)):
        window = data.between(now - int(config.lookback_s * 1000), now)
        began = time.perf_counter()
        _, timeline, _, previous = conclude(window, config, previous, stored)
        TICKS.append(time.perf_counter() - began)
        rewritten = now - config.rewrite_s * 1000
        stored.update({w.start: (w.bottleneck, w.runner_up, float(w.margin), w.confidence)
                       for w in timeline.windows if w.bottleneck and w.start >= rewritten})
        answers.append((now, previous[1] if previous else None))
    agree = scored = 0
    for now, station in answers:
        for number, period in enumerate(truth["periods"]):
            settled = period["start"] + (SETTLE_MS if number else 0)
            if period["regime"] == "clear" and settled <= now < period["end"]:
                scored += 1
                agree += station == period["bottleneck"]
    changes = sum(1 for a, b in zip(answers, answers[1:], strict=False) if a[1] != b[1])
    delays = []
    for period in truth["periods"][1:]:
        followed = [now for now, station in answers
                    if now >= period["start"] and station == period["bottleneck"]]
        if followed:
            delays.append((followed[0] - period["start"]) / 1000)
    return agree, scored, changes, delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--tick", type=float, default=60.0, help="seconds between replayed ticks")
    parser.add_argument("--memory", type=float, default=LiveConfig().memory_s)
    parser.add_argument("--confirm", type=float, default=LiveConfig().confirm_s)
    parser.add_argument("--method", default=LiveConfig().method, help="the live loop's default unless given")
    args = parser.parse_args()
    live = LiveConfig(memory_s=args.memory, confirm_s=args.confirm, method=args.method)
    bare = LiveConfig(memory_s=0.0, confirm_s=0.0, method=args.method)
    began = time.perf_counter()
    print("| scenario | truth changes | live: agreement (clear, settled) | live: answer changes | "
          "live: delay after a change | without hysteresis: agreement | without: answer changes |")
    print("|---|---|---|---|---|---|---|")
    for path in sorted(SCENARIOS.glob("*.toml")):
        scenario = load_scenario(path)
        truth = ground_truth(scenario, args.hours, seed=0, start_ms=START_MS)
        totals = {"live": [0, 0, 0, []], "bare": [0, 0, 0, []]}
        for seed in range(1, args.seeds + 1):
            run = simulate_telemetry(scenario, args.hours, seed=seed, start_ms=START_MS)
            data = line_telemetry(scenario, run)
            for name, config in (("live", live), ("bare", bare)):
                agree, scored, changes, delays = replay(data, truth, config, args.tick, data.begin_ms,
                                                        data.end_ms)
                totals[name][0] += agree
                totals[name][1] += scored
                totals[name][2] += changes
                totals[name][3] += delays

        def share(entry) -> str:
            return f"{entry[0] / entry[1]:.1%}" if entry[1] else "no clear period"

        delays = totals["live"][3]
        delay = f"{min(delays) / 60:.0f}-{max(delays) / 60:.0f} min" if delays else "-"
        print(f"| {path.stem} | {(len(truth['periods']) - 1) * args.seeds} | {share(totals['live'])} | "
              f"{totals['live'][2]} | {delay} | {share(totals['bare'])} | {totals['bare'][2]} |", flush=True)
    print(f"\n{args.seeds} seeds x {args.hours:g} h per scenario, method {args.method}, a tick every "
          f"{args.tick:g} s, memory {args.memory:g} s, confirm {args.confirm:g} s, "
          f"{time.perf_counter() - began:.0f} s in all; one tick (conclude): median "
          f"{sorted(TICKS)[len(TICKS) // 2]:.3f} s, max {max(TICKS):.2f} s over {len(TICKS)} ticks")


if __name__ == "__main__":
    main()
