"""A family of random serial lines: the yardstick of the bottleneck detector, with its own truth.

Why: a detector tuned on four hand-made scenarios (one of them eight identical stations, which has no
real answer) says nothing about lines it has never seen. This family draws a fresh line per seed:
3-12 stations; deterministic, gamma (cv 0.1-1.2) and lognormal process times; operation-dependent
failures with varied MTBF/MTTR (some stations never fail); setups; buffers 1-20; parallel machines;
2-5 regimes of 1-4 h, each begun by one or two stations changing (degrading, being repaired, a product
change). A quarter of the regimes are designed clear (one station's effective time per unit 15-45 %
above every other's), the rest near-balanced (the two slowest within 2 % of each other, never equal);
variability decides many near-balanced designs, so the truth finds clear and hard regimes about
equally often (bench/README.md has the count):
no two stations are identical by design.

Truth per regime comes from simulators/truth.py (common random numbers, 5 % speed-up), computed twice
on independent draws; a regime whose two truths name different bottlenecks or regimes is marked
`agree = false` and left out of scoring. Seeds split into two disjoint ranges: `tune` (every constant
and method choice of the detector is made there) and `test` (reported only). Both the line and its
truth are pure functions of the seed.
"""

from __future__ import annotations

import hashlib

import numpy as np

from simulators.scenario import Change, Scenario, StationSpec
from simulators.truth import CLEAR_MARGIN, SPEEDUP, Effort, ground_truth

SETS = {"tune": range(0, 100_000), "test": range(1_000_000, 1_100_000)}
TRUTH_SEEDS = (101, 202)  # the two independent truth replications (truth draws, not the line's)
CLEAR_FACTOR = (1.15, 1.45)  # a clear regime's constraint: this much slower than every other station
TRUTH_EFFORT = Effort()  # truth.py's own: 8-64 replications of 16 h after 1 h
BALANCED_SPREAD = 0.02  # a near-balanced regime: the two slowest within this share of each other
# Designed clear this often: variability (cv, failures, buffers) makes about 60 % of the near-balanced
# designs clear in truth (measured on the first 14 `tune` lines), so clear designs are the minority.
CLEAR_SHARE = 0.25


def seeds(name: str, count: int) -> list[int]:
    """The first `count` seeds of set `name` ('tune' or 'test')."""
    if name not in SETS:
        raise ValueError(f"unknown seed set {name!r}: use one of {', '.join(SETS)}")
    if not 0 < count <= len(SETS[name]):
        raise ValueError(f"count must be 1..{len(SETS[name])}")
    return list(SETS[name][:count])


def set_of(seed: int) -> str:
    """Which seed set a seed belongs to."""
    for name, span in SETS.items():
        if seed in span:
            return name
    spans = ", ".join(f"{n}: {s.start}..{s.stop - 1}" for n, s in SETS.items())
    raise ValueError(f"seed {seed} is in no set ({spans})")


def _station(rng: np.random.Generator, index: int) -> StationSpec:
    """A station's own nature; its pace is set later, per regime, by `_effective_s`."""
    dist = str(rng.choice(["deterministic", "gamma", "lognormal"], p=[0.2, 0.5, 0.3]))
    cv = 0.0 if dist == "deterministic" else round(float(rng.uniform(0.1, 1.2)), 3)
    machines = int(rng.choice([1, 2, 3], p=[0.8, 0.14, 0.06]))
    fails = rng.random() < 0.65
    mtbf = round(float(np.exp(rng.uniform(np.log(8), np.log(480)))), 2) if fails else None
    # Availability about 87-99.5 %: repairs of a few seconds up to 20 minutes, in proportion to the MTBF.
    mttr = round(float(min(mtbf * rng.uniform(0.005, 0.15), 20.0)), 3) if mtbf else 0.0
    setups = rng.random() < 0.3
    every = int(rng.integers(20, 200)) if setups else 0
    return StationSpec(id=f"s{index + 1}", cycle_s=1.0, distribution=dist, cv=cv,
                       buffer=int(rng.integers(1, 21)), machines=machines, mtbf_min=mtbf,
                       mttr_min=mttr if mtbf else 0.0, mttr_cv=round(float(rng.uniform(0.3, 1.5)), 3),
                       setup_every=every, setup_min=1.0 if setups else 0.0)


def _loss(s: StationSpec, mttr_factor: float = 1.0) -> float:
    """Active time per unit of work time lost to repairs (failures counted on busy time)."""
    return s.mttr_min * mttr_factor / s.mtbf_min if s.mtbf_min else 0.0


def _effective_s(s: StationSpec, slow: float = 1.0, mttr_factor: float = 1.0) -> float:
    """Mean seconds per unit the station needs on average: work, repairs and setups, over its machines."""
    setup = s.setup_min * 60 / s.setup_every if s.setup_every else 0.0
    return (s.cycle_s * slow * (1 + _loss(s, mttr_factor)) + setup) / s.machines


def _with_pace(rng: np.random.Generator, s: StationSpec, effective: float) -> StationSpec:
    """The station with its cycle (and setup length: 3-10 % of its time) set to reach `effective` s/unit."""
    setup_share = float(rng.uniform(0.03, 0.10)) if s.setup_every else 0.0
    setup_min = round(effective * s.machines * setup_share * s.setup_every / 60, 3) if s.setup_every else 0.0
    work = effective * s.machines * (1 - setup_share) / (1 + _loss(s))
    return s.model_copy(update={"cycle_s": round(work, 3), "setup_min": setup_min})


def _pace_target(rng: np.random.Generator, others_max: float, clear: bool) -> float:
    if clear:
        return others_max * float(rng.uniform(*CLEAR_FACTOR))
    return others_max * (1 + float(rng.uniform(-BALANCED_SPREAD, BALANCED_SPREAD)))


def random_line(seed: int) -> Scenario:
    """The line of `seed` (see the module docstring); the same seed gives the same scenario."""
    rng = np.random.default_rng([seed, 11])
    m = int(rng.integers(3, 13))
    base = float(rng.uniform(20.0, 90.0))  # s/unit of the line's pace
    stations = [_station(rng, j) for j in range(m)]
    # Base paces: every station 55-90 % of the line's pace, then the first regime's constraint.
    paces = rng.uniform(0.55, 0.90, m) * base
    lead = int(rng.integers(m))
    clear = bool(rng.random() < CLEAR_SHARE)
    others = np.delete(paces, lead)
    paces[lead] = _pace_target(rng, float(others.max()), clear)
    stations = [_with_pace(rng, s, float(p)) for s, p in zip(stations, paces, strict=True)]
    slow = np.ones(m)
    mttr = np.ones(m)
    changes: list[Change] = []
    regimes = int(rng.integers(2, 6))
    lengths = rng.integers(2, 9, regimes) / 2  # 1-4 h in half hours (30-minute windows fit)
    at = 0.0
    designed = [clear]
    for length in lengths[:-1]:
        at += float(length)
        more, clear = _regime_change(rng, stations, slow, mttr, at)
        changes += more
        designed.append(clear)
    plan = ",".join("clear" if c else "near-balanced" for c in designed)
    return Scenario(name=f"random line {seed}", description=f"simulators.family seed {seed}; designed {plan}",
                    plant="p1", line=f"r{seed}", hours=float(lengths.sum()), warmup_min=60.0,
                    station=stations, change=changes)


def _regime_change(rng: np.random.Generator, stations: list[StationSpec], slow: np.ndarray,
                   mttr: np.ndarray, at: float) -> tuple[list[Change], bool]:
    """One or two stations change at hour `at` so that the new regime is clear or near-balanced.

    `slow` and `mttr` (the factors in force, relative to base) are updated in place; returns the
    changes and whether the regime was designed clear.
    """
    m = len(stations)
    current = np.array([_effective_s(s, slow[j], mttr[j]) for j, s in enumerate(stations)])
    changes: list[Change] = []
    changed = set()
    old = int(np.argmax(current))
    if (slow[old] != 1 or mttr[old] != 1) and rng.random() < 0.6:
        # The old constraint is repaired / its product change undone: back to its base.
        slow[old], mttr[old] = 1.0, 1.0
        current[old] = _effective_s(stations[old])
        changes.append(Change(at_hour=at, station=stations[old].id, slow_by_pct=0.0, mttr_factor=1.0))
        changed.add(old)
    clear = bool(rng.random() < CLEAR_SHARE)
    candidates = [j for j in range(m) if j not in changed and j != int(np.argmax(current))]
    k = int(rng.choice(candidates)) if candidates else int(np.argmax(current))
    target = _pace_target(rng, float(np.delete(current, k).max()), clear)
    s = stations[k]
    by_repairs = s.mtbf_min is not None and rng.random() < 0.4
    if by_repairs:
        # Degrade by longer repairs: solve the MTTR factor that reaches the target, if one does.
        setup = s.setup_min * 60 / s.setup_every if s.setup_every else 0.0
        work = s.cycle_s * slow[k]
        needed = (target * s.machines - setup) / work - 1
        factor = needed * s.mtbf_min / s.mttr_min if s.mttr_min else 0.0
        if 0.05 < factor <= 1000:
            mttr[k] = factor
            changes.append(Change(at_hour=at, station=s.id, mttr_factor=round(factor, 4)))
            return changes, clear
    setup = s.setup_min * 60 / s.setup_every if s.setup_every else 0.0
    factor = (target * s.machines - setup) / (s.cycle_s * (1 + _loss(s, mttr[k])))
    factor = float(np.clip(factor, 0.2, 10.0))
    slow[k] = 1 + round((factor - 1) * 100, 3) / 100
    changes.append(Change(at_hour=at, station=s.id, slow_by_pct=round((factor - 1) * 100, 3)))
    return changes, clear


def fingerprint(scenario: Scenario) -> str:
    """A short digest of the scenario, so a stored truth can prove it belongs to this very line."""
    return hashlib.sha256(scenario.model_dump_json().encode()).hexdigest()[:16]


def _merge(a: dict, b: dict) -> dict:
    """One truth period from two independent ones: mean gains, re-ranked; `agree` when both name the
    same bottleneck and the same regime (if they do, the mean names it too)."""
    gains = {s: (a["gains"][s] + b["gains"][s]) / 2 for s in a["gains"]}
    order = sorted(gains, key=gains.__getitem__, reverse=True)
    best = gains[order[0]]
    runner = gains[order[1]] if len(order) > 1 else 0.0
    margin = (best - runner) / best if best > 0 else 0.0
    return {"start": a["start"], "end": a["end"], "bottleneck": order[0],
            "runner_up": order[1] if len(order) > 1 else order[0], "margin": round(margin, 4),
            "regime": "clear" if margin >= CLEAR_MARGIN else "balanced",
            "gains": {s: round(g, 5) for s, g in gains.items()},
            "agree": a["bottleneck"] == b["bottleneck"] and a["regime"] == b["regime"],
            "replications": [a["replications"], b["replications"]],
            "bottlenecks": [a["bottleneck"], b["bottleneck"]]}


def family_truth(seed: int, *, start_ms: int | None = None, effort: Effort = TRUTH_EFFORT) -> dict:
    """The truth document of line `seed` (simulators/README.md), from two independent replications."""
    scenario = random_line(seed)
    first, second = (ground_truth(scenario, start_ms=start_ms, seed=s, effort=effort) for s in TRUTH_SEEDS)
    periods = [_merge(a, b) for a, b in zip(first["periods"], second["periods"], strict=True)]
    return {"line": scenario.line_id, "plant": scenario.plant_id, "seed": seed, "set": set_of(seed),
            "fingerprint": fingerprint(scenario), "speedup": SPEEDUP, "clear_margin": CLEAR_MARGIN,
            "periods": periods}
