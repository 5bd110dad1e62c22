"""Ground truth: which station is the line's constraint in each stationary period, and how clearly.

The definition is the operational one: the constraint is the station whose small speed-up (5 % more
units per hour of its active time: setup, work and repairs alike) raises the line's output the most.
For each period the line is simulated in that period's steady state (its rates held for a long run
after a warm-up), once as it is and once per station with that station sped up, all on the same
random draws (common random numbers). Batches of replications are added until the lead of the best
station over the runner-up is known to within 5 % of the best gain, or a cap is reached.

`margin` = (best gain - runner-up gain) / best gain. A period is `clear` when margin >= 0.5, i.e. the
best station gains at least twice what any other does; otherwise `balanced`: several stations share the
constraint and a detector may name any of them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import orjson

from simulators.draws import US
from simulators.engine import LineModel, Variant, simulate
from simulators.scenario import Period, Scenario
from simulators.telemetry import DEFAULT_START, parse_start

SPEEDUP = 0.05
CLEAR_MARGIN = 0.5


@dataclass(frozen=True, slots=True)
class Effort:
    """How hard to look: replications per batch, their cap, the run length, and the precision sought."""

    batch: int = 8
    max_reps: int = 64
    measure_h: float = 16.0
    warmup_h: float = 1.0
    precision: float = 0.05


@dataclass(frozen=True, slots=True)
class PeriodTruth:
    start: int
    end: int
    bottleneck: str
    runner_up: str
    margin: float
    regime: str
    gains: dict[str, float]
    replications: int
    lead_stderr: float  # standard error of (best gain - runner-up gain)


def period_gains(scenario: Scenario, period: Period, *, seed: int = 0, stream: int = 0,
                 speedup: float = SPEEDUP, effort: Effort = Effort()) -> tuple[np.ndarray, float, int]:
    """Mean relative output gain of a `speedup` per station, the lead's standard error, replications."""
    steady = Period(0.0, effort.measure_h, period.slow, period.mttr)
    model = LineModel.of(scenario, periods=[steady], warmup_min=effort.warmup_h * 60)
    m = model.size
    faster = 1.0 / (1.0 + speedup)
    variants = [Variant()] + [Variant(scale=tuple(faster if k == j else 1.0 for k in range(m)))
                              for j in range(m)]
    window = (model.warmup_us, model.warmup_us + int(effort.measure_h * 3600 * US))
    gains = np.zeros((m, 0))
    while True:
        run = simulate(model, window[1], reps=effort.batch, seed=seed, stream=stream + gains.shape[1],
                       variants=variants)
        output = run.output(*window).astype(float)
        gains = np.concatenate([gains, (output[1:] - output[0]) / np.maximum(output[0], 1.0)], axis=1)
        mean = gains.mean(axis=1)
        best, runner = np.argsort(-mean)[:2] if m > 1 else (0, 0)
        lead = gains[best] - gains[runner]
        stderr = float(np.std(lead, ddof=1) / math.sqrt(len(lead))) if len(lead) > 1 else math.inf
        if stderr <= effort.precision * max(mean[best], 1e-9) or gains.shape[1] >= effort.max_reps:
            return mean, stderr, gains.shape[1]


def ground_truth(scenario: Scenario, hours: float | None = None, *, start_ms: int | None = None,
                 seed: int = 0, speedup: float = SPEEDUP, effort: Effort = Effort()) -> dict:
    """The truth document (see simulators/README.md) for a run of `hours` starting at `start_ms`."""
    start_ms = parse_start(DEFAULT_START) if start_ms is None else start_ms
    ids = scenario.station_ids
    periods = []
    for index, period in enumerate(scenario.periods(hours)):
        mean, stderr, reps = period_gains(scenario, period, seed=seed, stream=10_000 * (index + 1),
                                          speedup=speedup, effort=effort)
        order = np.argsort(-mean)
        best = mean[order[0]]
        runner = mean[order[1]] if len(ids) > 1 else 0.0
        margin = float((best - runner) / best) if best > 0 else 0.0
        periods.append(PeriodTruth(
            start=start_ms + round(period.start_h * 3_600_000),
            end=start_ms + round(period.end_h * 3_600_000),
            bottleneck=ids[order[0]],
            runner_up=ids[order[1]] if len(ids) > 1 else ids[order[0]],
            margin=round(margin, 4),
            regime="clear" if margin >= CLEAR_MARGIN else "balanced",
            gains={sid: round(float(g), 5) for sid, g in zip(ids, mean, strict=True)},
            replications=reps,
            lead_stderr=round(stderr, 5),
        ))
    return {"line": scenario.line_id, "plant": scenario.plant_id, "speedup": speedup,
            "clear_margin": CLEAR_MARGIN, "periods": [asdict(p) for p in periods]}


def write_truth(path: str | Path, truth: dict) -> None:
    Path(path).write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2) + b"\n")
