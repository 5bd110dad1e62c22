"""How often a `crn` answer like this one names the true constraint: the figure a supervisor can trust.

Why: a window's `confidence` is the share of the simulation's replications in which the named station
gains most. It measures the simulation's noise, not the fit's, and the fit is where the accuracy goes
(bench/README.md, the bounds study): of the `tune` windows whose 8 replications all agreed, about 80 %
named the truth's constraint, not 100 %. So an answer is graded into a kind of call by its confidence,
and each kind carries how often such calls were right on the random line family (simulators/family.py),
scored strictly as analysis/yardstick.py does (the truth's one best station):

- `firm`: every replication agrees;
- `likely`: 3 in 4 or more agree (6 or 7 of crn's 8);
- `close`: fewer; the named station and its runner-up are then the honest answer together.

`right_at_least`: such windows named the truth's constraint at least this often; `pair_right_at_least`:
the truth was the named station or its runner-up at least this often. Each is a one-sided 95 % lower
bound (4,000 bootstrap draws of whole lines, so that a line's windows count together) on `tune` lines
0-79, both inputs pooled, each window fitted only up to its end as the live detector's newest window is
(2,488 windows; `bench/bench_bottleneck_accuracy.py --set tune --lines 80 --methods crn --fit-to-end`
prints the bounds; measured: firm 79.7 % / 88.4 %, likely 58.5 % / 82.6 %, close 43.9 % / 72.7 %). With the
offline fit reaching ahead in the regime the same windows score higher (81.9, 61.6, 45.9 %), so the
bounds hold there too. The grading and the rule (the bound, said in whole tenths rounded down) were
fixed on `tune`. `test` lines 0-59, reported only (1,846 windows, fitted to the end / ahead): firm
71.7 / 76.1 %, likely 53.7 / 57.0 %, close pairs 72.9 / 74.5 %: each above the tenths said.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Call:
    kind: str
    right_at_least: float  # the named station was the truth's constraint
    pair_right_at_least: float  # the truth's constraint was the named station or its runner-up
    from_confidence: float  # the lowest confidence of this kind


# Measured on `tune` lines 0-79 (see the docstring), strongest first.
CALLS = (Call("firm", 0.740, 0.844, 1.0), Call("likely", 0.523, 0.777, 0.75),
         Call("close", 0.374, 0.663, 0.0))


def call_of(confidence: float | None) -> Call | None:
    """The kind of call of a window with this confidence; None for an answer without one (the APM
    methods, a window with no answer)."""
    if confidence is None:
        return None
    return next(call for call in CALLS if confidence >= call.from_confidence)


def call_fields(call: Call | None) -> dict:
    """The call's fields of a window in `analyze bottleneck --json` (docs/DESIGN.md §7); null without one."""
    if call is None:
        return {"call": None, "right_at_least": None, "pair_right_at_least": None}
    return {"call": call.kind, "right_at_least": call.right_at_least,
            "pair_right_at_least": call.pair_right_at_least}


def in_tenths(rate: float) -> int:
    """A rate as the whole tenths it reaches ("at least 7 in 10" for 0.74): never sharper than measured."""
    return math.floor(rate * 10 + 1e-9)


def describe(call: Call, station: str, runner_up: str | None) -> str:
    """The call in words, as the huddle page, the text output and the alerts say it: "firm call: right at
    least 7 in 10", or for a close call both stations, "close call: s3 or s5, one of them at least 6 in
    10"."""
    if call.kind == "close" and runner_up:
        return (f"close call: {station} or {runner_up}, one of them at least "
                f"{in_tenths(call.pair_right_at_least)} in 10")
    return f"{call.kind} call: right at least {in_tenths(call.right_at_least)} in 10"
