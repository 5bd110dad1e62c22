"""Scoring bottleneck methods against the random line family's truth (simulators/family.py), strictly.

Why: the detector's promise is to name the station whose speed-up raises the line's output most, on
lines it has never seen. A window agrees only when it names exactly the truth's bottleneck of the
regime it lies in (strict, clear and near-balanced alike); `top2` also credits the truth's runner-up.
Regimes whose two truth replications disagree are left out. The benchmark
(bench/bench_bottleneck_accuracy.py) and the suite's floor test (tests/test_bottleneck_accuracy.py)
both score through here, so they cannot drift apart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from analysis.apm import Periods
from analysis.bottleneck import METHODS, analyze, per_window, window_edges
from analysis.calls import Call
from analysis.states import StateSpans, spans
from analysis.telemetry import STATE_CODE, LineTelemetry, StationSeries
from simulators.family import family_truth, random_line
from simulators.scenario import Change, Period, Scenario
from simulators.telemetry import STATE_NAMES, Telemetry, parse_start, simulate_telemetry
from simulators.truth import Effort, period_gains

REFERENCE = "reference-apm"  # the PyPI `active-period-method`, windows formed the same way
START_MS = parse_start("2026-09-21T06:00:00Z")
TRUTH_EFFORT = Effort()
_CODE = np.array([STATE_CODE[name] for name in STATE_NAMES], dtype=np.int8)


def line_telemetry(scenario: Scenario, telemetry: Telemetry) -> LineTelemetry:
    """The simulator's arrays as the detector's input, without the detour through JSON records."""
    zeros = np.zeros(len(telemetry.ts_ms), dtype=np.int64)
    series = [StationSeries(telemetry.ts_ms, telemetry.count[j], telemetry.queue[j], zeros,
                            _CODE[telemetry.state[j]]) for j in range(len(telemetry.ids))]
    return LineTelemetry(scenario.plant_id, scenario.plant.get_line(scenario.line_id), series)


def reference_answers(state_spans: StateSpans, stations: list[str], window_s: float) -> list[str | None]:
    """Per window: the station with the most (sole + shifting) bottleneck time by the reference package."""
    from analysis.reference import reference_momentary

    sole, shifting = reference_momentary(state_spans.active(), stations, state_spans.begin_ms,
                                         state_spans.end_ms)
    pieces = sorted(sole | shifting)
    both = Periods.of([p[0] for p in pieces], [p[1] for p in pieces], [p[2] for p in pieces])
    edges = window_edges(state_spans.begin_ms, state_spans.end_ms, window_s)
    time_ms = per_window(both, len(stations), edges)
    return [stations[int(np.argmax(col))] if col.max() > 0 else None for col in time_ms.T]


def _count(entry: list[int], first: int, second: int, windows: int = 1) -> None:
    """Add to a tally's entry: [hits, second hits (top-2 or pair), windows]."""
    entry[0] += first
    entry[1] += second
    entry[2] += windows


@dataclass
class Tally:
    """Windows scored per (method, input, regime): strict hits, top-2 hits, windows."""

    counts: dict[tuple[str, str, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    regimes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # per (method, input, kind of call: analysis/calls.py): strict hits, pair hits (the truth's constraint
    # is the named station or its runner-up), windows; clear and hard regimes together
    calls: dict[tuple[str, str, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0]))

    def add(self, key: tuple[str, str, str], strict: bool, top2: bool) -> None:
        _count(self.counts[key], strict, top2)

    def merge(self, other: Tally) -> None:
        """Add another tally's counts (one line's, scored apart) to this one."""
        for mine, theirs in ((self.counts, other.counts), (self.calls, other.calls)):
            for key, (a, b, c) in theirs.items():
                _count(mine[key], a, b, c)
        for key, n in other.regimes.items():
            self.regimes[key] += n

    def add_call(self, key: tuple[str, str, str], strict: bool, pair: bool) -> None:
        _count(self.calls[key], strict, pair)

    def call_rates(self, method: str, source: str, kind: str) -> tuple[float, float, int]:
        """(hit rate, pair rate, windows) of one kind of call."""
        hit, pair, n = self.calls.get((method, source, kind), (0, 0, 0))
        return (hit / n, pair / n, n) if n else (float("nan"), float("nan"), 0)

    def rate(self, method: str, source: str, regime: str, kind: str = "strict") -> float:
        hit, top2, n = self.counts.get((method, source, regime), (0, 0, 0))
        return (hit if kind == "strict" else top2) / n if n else float("nan")

    def windows(self, method: str, source: str, regime: str) -> int:
        return self.counts.get((method, source, regime), (0, 0, 0))[2]


Answers = Callable[[StateSpans, list[str], float], list[str | None]]


def score_line(seed: int, tally: Tally, *, methods: tuple[str, ...] = METHODS, window_s: float = 1800.0,
               effort: Effort = TRUTH_EFFORT, truth: dict | None = None,
               extra: dict[str, Answers] | None = None, ahead_s: float | None = None) -> dict:
    """Score every method on line `seed`, with states and from queues alone; returns the truth used.
    `ahead_s`: how far past a window's end crn's fit may reach (analysis/constraint.py; 0: as live)."""
    scenario = random_line(seed)
    truth = truth if truth is not None else family_truth(seed, start_ms=START_MS, effort=effort)
    data = line_telemetry(scenario, simulate_telemetry(scenario, seed=seed, start_ms=START_MS))
    for period in truth["periods"]:
        tally.regimes["scored" if period["agree"] else "left out (replications disagree)"] += 1
        if period["agree"]:
            tally.regimes[period["regime"]] += 1
    for source, use_states in (("states", True), ("queues", False)):
        state_spans = spans(data, use_states=use_states)
        answers: dict[str, list[tuple[int, int, str | None, str | None, Call | None]]] = {}
        for method in methods:
            timeline = analyze(state_spans, data.stations, data.line.id, window_s, method, telemetry=data,
                               ahead_s=ahead_s)
            answers[method] = [(w.start, w.end, w.bottleneck, w.runner_up, w.call) for w in timeline.windows]
        edges = window_edges(state_spans.begin_ms, state_spans.end_ms, window_s)
        for name, answer in (extra or {}).items():
            picks = answer(state_spans, data.stations, window_s)
            answers[name] = [(int(edges[i]), int(edges[i + 1]), p, None, None) for i, p in enumerate(picks)]
        for period in truth["periods"]:
            if not period["agree"]:
                continue
            regime = "clear" if period["regime"] == "clear" else "hard"
            for name, rows in answers.items():
                for start, end, pick, runner_up, call in rows:
                    if start >= period["start"] and end <= period["end"]:
                        tally.add((name, source, regime), pick == period["bottleneck"],
                                  pick in (period["bottleneck"], period["runner_up"]))
                        if call is not None:
                            tally.add_call((name, source, call.kind), pick == period["bottleneck"],
                                           period["bottleneck"] in (pick, runner_up))
    return truth


# Helpers of the bounds study (bench/bench_bottleneck_bounds.py): detectors given more than the real one.


def windows_of(begin_ms: int, end_ms: int, window_s: float,
               periods: list[dict]) -> list[list[tuple[int, int]]]:
    """Per truth period, the (start, end) of the windows `score_line` scores in it (none if left out)."""
    edges = window_edges(begin_ms, end_ms, window_s).tolist()
    return [[(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)
             if a >= p["start"] and b <= p["end"]] if p["agree"] else [] for p in periods]


def own_starts_ms(scenario: Scenario, at_h: float, start_ms: int) -> list[int]:
    """Per station, when its own last change at or before hour `at_h` happened (ms; the run's start if
    it never changed): since then its laws are the same, whatever the other stations did."""
    last = {s.id: 0.0 for s in scenario.stations}
    for change in scenario.change:
        if change.at_hour <= at_h:
            last[change.station] = max(last[change.station], change.at_hour)
    return [start_ms + round(last[s.id] * 3_600_000) for s in scenario.stations]


def steady_scenario(scenario: Scenario, period: Period, hours: float) -> Scenario:
    """The line held in `period`'s factors for `hours` (after its warm-up): a long steady regime."""
    changes = [Change(at_hour=0.0, station=s.id, slow_by_pct=(slow - 1.0) * 100.0, mttr_factor=mttr)
               for s, slow, mttr in zip(scenario.stations, period.slow, period.mttr, strict=True)
               if slow != 1.0 or mttr != 1.0]
    return scenario.model_copy(update={"change": changes, "hours": hours})


def true_gains(scenario: Scenario, period: Period, *, effort: Effort = TRUTH_EFFORT, seed: int = 0,
               stream: int = 0) -> str:
    """The station whose 5 % speed-up gains most on `scenario` in `period`'s steady state, simulated
    with simulators/truth.py's own CRN routine at `effort` on draws `seed`/`stream`."""
    mean, _, _ = period_gains(scenario, period, seed=seed, stream=stream, effort=effort)
    return scenario.station_ids[int(np.argmax(mean))]


def with_true_laws(fitted: Scenario, line: Scenario, period: Period, stations: set[int],
                   fields: tuple[str, ...] | None = None) -> Scenario:
    """The fitted line with the chosen `stations` (indexes in flow order) given their TRUE laws in
    `period`'s factors: the whole spec (machines, time law, failures, setups) when `fields` is None,
    else only those StationSpec fields. What knowing part of the line exactly would give the detector."""
    specs = []
    for j, (spec, true) in enumerate(zip(fitted.station, line.station, strict=True)):
        if j not in stations:
            specs.append(spec)
            continue
        true = true.model_copy(update={"cycle_s": true.cycle_s * period.slow[j],
                                       "mttr_min": true.mttr_min * period.mttr[j]})
        law = true if fields is None else spec.model_copy(update={f: getattr(true, f) for f in fields})
        specs.append(law.model_copy(update={"id": spec.id, "buffer": spec.buffer}))
    return fitted.model_copy(update={"station": specs})
