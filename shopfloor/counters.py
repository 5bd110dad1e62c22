"""Units from cumulative counters: the one rule for wrap, reset, baseline and late scrap (docs/DESIGN.md §4).

Why one module: the edge agent turns raw PLC values into the published count, the indicators count
units in numpy, and the boards (and the to-date sums) count them inside InfluxDB. If each had its own
rule, the same samples would give three outputs. This module holds the rule once, in three forms
that are tested against each other on the real InfluxDB: `step` (one reading, for the agent),
`increments` (numpy, for analysis) and `influxql_units` (the query text, for the boards and the store).

The rule, between two consecutive values `old` -> `new` of one counter of one station:

- `new >= old`: `new - old` units;
- `new < old` and, for a width w of 16 or 32 bits, `old < 2**w` and `new + 2**w - old <= MAX_STEP`:
  a **wrap**, `new + 2**w - old` units (a PLC counter published raw, or the agent's own raw reads);
- `new < old` otherwise: a **reset**, `new` units (counted from 0 again).

Consequences:

- **The first value of a series is its baseline**: it adds nothing, the units after it count, so a
  line that starts mid-hour has every later unit in its hour. A window's baseline is the last value
  at most `BASELINE_MS` (an hour) before the window; an older one cannot place its units in time.
- **Good units = count units - scrap units, each counter on its own.** A unit counted in one sample
  and scrapped the next is +1 then -1, not a drop of `count - scrap` read as a reset.
- **A sample without `scrap` carries no scrap value** (the previous one holds); it is never read as 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy only where analysis uses it: the edge agent imports this module without it
    import numpy as np

WIDTHS = (16, 32)
MAX_STEP = 1000  # the agent's default `max_step`: a wrap is at most this many units since the last read
BASELINE_MS = 3_600_000

UP, WRAP, RESET = "up", "wrap", "reset"


def step(old: int | None, new: int, *, widths: tuple[int, ...] = WIDTHS, max_step: int = MAX_STEP
         ) -> tuple[int, str]:
    """Units between two readings of a counter and what happened (`up`, `wrap` or `reset`)."""
    if old is None or new >= old:
        return (0 if old is None else new - old), UP
    for width in widths:
        if old < 1 << width and new + (1 << width) - old <= max_step:
            return new + (1 << width) - old, WRAP
    return new, RESET


def increments(values: np.ndarray, *, max_step: int = MAX_STEP) -> np.ndarray:
    """Units between each pair of consecutive values (len - 1 of them), by `step`'s rule."""
    import numpy as np

    values = np.asarray(values, dtype=np.int64)
    old, new = values[:-1], values[1:]
    diff = new - old
    units = np.where(diff >= 0, diff, new)
    for width in WIDTHS:
        wrapped = (diff < 0) & (old < 1 << width) & (diff + (1 << width) <= max_step)
        units = np.where(wrapped, diff + (1 << width), units)
    return units


def cumulative(values: np.ndarray, *, max_step: int = MAX_STEP) -> np.ndarray:
    """The counter with its wraps and resets undone: the first value, then that plus the units so far
    (same length as `values`). Why: the state inference compares counts of neighbouring stations
    sample by sample, and must count the units the indicators count."""
    import numpy as np

    values = np.asarray(values, dtype=np.int64)
    if len(values) < 2:
        return values
    return np.concatenate([values[:1], values[0] + np.cumsum(increments(values, max_step=max_step))])


_EXACT = 1 << 52  # floats are exact integers below 2**53: the indicator below is exact for |y| < 2**52


def _at_least_zero(y: str) -> str:
    """1 where the integer-valued expression `y` is >= 0, else 0, without a conditional (InfluxQL has
    none, and no abs() in InfluxDB 1.6): with a = y + 2**52, (a - a % 2**52) / 2**52 is 1 or 0."""
    shifted = f"({y} + {_EXACT})"
    return f"(({shifted} - {shifted} % {_EXACT}) / {_EXACT})"


def influxql_units(field: str, measurement: str, where: str, start: str, end: str, *, sign: int = 1,
                   tags: str = '"line", "station"', max_step: int = MAX_STEP) -> list[str]:
    """Subqueries whose rows `n` (one per sample) sum to `sign` x the units of `field` in [start, end].

    `start` and `end` are InfluxQL time expressions (`1790000000000ms`, Grafana's `${__from}ms`);
    `tags` must tell the series of `where` apart (one plant: line and station). Put the subqueries
    in one FROM and `sum("n")` them, grouped as wanted. Why this shape: a rise is
    `non_negative_difference`; a drop is one more subquery over the difference `d` and `m`, the mean
    of the two values (moving_average over 2), from which `new = m + d / 2` and `old = m - d / 2`:
    `new + wrap16 x (2**16 - old) + wrap32 x (2**32 - old)`, each wrap a product of 0/1 indicators
    built from `%` (InfluxQL has no conditional). The series are read from an hour before `start`
    so each one has its baseline, and the same subqueries over [start - 1h, start) are subtracted:
    an outer time filter cannot drop that hour, because InfluxDB 1.x pushes it down into the
    subqueries and the baseline would go with it. Cost: bench/README.md ("Good units inside InfluxDB").
    """
    early = f"{start} - {BASELINE_MS // 60_000}m"
    old, new = '("m" - "d" / 2)', '("m" + "d" / 2)'
    drop = new
    for width in WIDTHS:
        top = 1 << width
        fits, short = _at_least_zero(f"{top - 1} - {old}"), _at_least_zero(f'{max_step - top} - "d"')
        wrapped = f"{fits} * {short}"  # old < 2**w and new + 2**w - old <= max_step
        drop += f" + {wrapped} * ({top} - {old})"
    parts = []
    for factor, low, high, high_op in ((sign, early, end, "<="), (-sign, early, start, "<")):
        scan = f"{where} AND time >= {low} AND time {high_op} {high}"
        inner = (f'SELECT difference("{field}") AS "d", moving_average("{field}", 2) AS "m" '
                 f"FROM {measurement} WHERE {scan} GROUP BY {tags}")
        parts.append(f'SELECT {factor} * non_negative_difference("{field}") AS "n" FROM {measurement} '
                     f"WHERE {scan} GROUP BY {tags}")
        parts.append(f'SELECT {factor} * ({drop}) AS "n" FROM ({inner}) WHERE "d" < 0')
    return [f"({part})" for part in parts]


def influxql_good_units(measurement: str, where: str, start: str, end: str,
                        tags: str = '"line", "station"') -> str:
    """The FROM list whose rows `n` sum to the good units (count - scrap) in [start, end]."""
    return ", ".join(influxql_units("count", measurement, where, start, end, tags=tags)
                     + influxql_units("scrap", measurement, where, start, end, sign=-1, tags=tags))
