"""The InfluxQL behind every board panel and the built-in huddle page, written once.

Queries are Grafana query text: `$timeFilter`, `$__interval`, `${__from}`/`${__to}` and the board
variables (`$plant`, `$line`, `$timezone`, `$bucket_offset`). Grafana expands them for the boards;
`dashboards.macros.expand` does the same for the tests and the huddle page, so a number on the wall
screen and the same number in Grafana come from the same text.

InfluxQL rules these queries follow (docs/DESIGN.md §3):
- output is GOOD units leaving the line, as analysis.indicators counts it: the last station's
  count - scrap, a missing scrap counting as 0. Per hour and line, `last("count")` and
  `-1 * last("scrap")` come from two subqueries in one FROM, both aliased "good", and their sum is
  the hour's good counter; `non_negative_difference` over those hours is the output. Why not simpler:
  InfluxQL refuses a binary expression inside non_negative_difference, and `last("count") -
  last("scrap")` is null wherever `scrap` is absent, which would drop the hour; in the union a
  station (or an hour) without scrap adds no negative row, so it counts as 0 scrap. A counter reset
  makes one negative difference, which is dropped instead of subtracting a whole shift;
- the difference needs the bucket before the range, so hour queries start one hour early
  (`${__from}ms - 1h`); that baseline bucket yields no difference, so the first returned bucket is the
  first hour of the range (the indicators' baseline is likewise the sample before the range);
- `GROUP BY time()` aligns to the epoch: `tz('$timezone')` and the `$bucket_offset` put hour and day
  buckets on the plant's local clock and on shift starts that are not on the hour;
- one selector per statement (several selectors return time 0);
- an outer query over the hourly differences has no time filter shorter than its subquery's:
  InfluxDB 1.x pushes an outer WHERE time range down into the subquery, which would cut off the
  baseline hour; the hour query repeats the subqueries' own range, which is harmless, and the queries
  over it need none, as the first bucket yields no difference anyway.
"""

from __future__ import annotations

from collections.abc import Iterable

from shopfloor.contract import STATION_MEASUREMENT
from shopfloor.plant import Line
from shopfloor.store import quote_ident, quote_string

STATION = quote_ident(STATION_MEASUREMENT)
LINE_FILTER = '"plant" =~ /^$plant$/ AND "line" =~ /^$line$/'
HOUR_RANGE = "time >= ${__from}ms - 1h AND time <= ${__to}ms"
DAY_RANGE = "time >= ${__from}ms - 1d AND time <= ${__to}ms"
HOURS = "time(1h, $bucket_offset)"
LOCAL_CLOCK = "tz('$timezone')"

PLANTS = f'SHOW TAG VALUES FROM {STATION} WITH KEY = "plant"'
LINES = f'SHOW TAG VALUES FROM {STATION} WITH KEY = "line" WHERE "plant" =~ /^$plant$/'


def exit_filter(lines: Iterable[Line]) -> str:
    """Each line's last station, whose counter is the line's output (flow order from plant.toml)."""
    pairs = [f"(\"line\" = {quote_string(line.id)} AND \"station\" = {quote_string(line.station_ids[-1])})"
             for line in lines]
    return "(" + " OR ".join(pairs) + ")"


def _last(field: str, exits: str, *, sign: str = "") -> str:
    """Per hour and line, the exits' last reading of one counter, aliased "good" for the union."""
    return (f'SELECT {sign}last({quote_ident(field)}) AS "good" FROM {STATION} WHERE {LINE_FILTER} AND '
            f'{exits} AND {HOUR_RANGE} GROUP BY {HOURS}, "line" fill(none) {LOCAL_CLOCK}')


def _hourly(exits: str) -> str:
    """Good units per hour and line: the rise of count - scrap since the hour before."""
    good = (f'SELECT sum("good") AS "good" FROM ({_last("count", exits)}), '
            f'({_last("scrap", exits, sign="-1 * ")}) WHERE {HOUR_RANGE} '
            f'GROUP BY {HOURS}, "line" fill(none) {LOCAL_CLOCK}')
    return f'SELECT non_negative_difference("good") AS "actual" FROM ({good}) GROUP BY "line"'


def hourly_output(exits: str) -> str:
    """Good units the line finished in each hour of the range (the huddle's 'actual' column)."""
    return _hourly(exits)


def range_output(exits: str) -> str:
    """Good units the line finished over the whole range: the sum of the hourly differences."""
    return f'SELECT sum("actual") AS "actual" FROM ({_hourly(exits)}) GROUP BY "line"'


def daily_output(exits: str) -> str:
    """Good units each line finished per local day (the executive rollup's daily bars), summed from hours."""
    return (f'SELECT sum("actual") AS "actual" FROM ({_hourly(exits)}) WHERE {HOUR_RANGE} '
            f'GROUP BY time(1d), "line" fill(none) {LOCAL_CLOCK}')


def period_output(exits: str, *, by_line: bool = True) -> str:
    """Good units finished since the panel's range start (month or quarter to date), per line or plant-wide.

    Summed from hours, not days: a counter reset then loses at most the hour it happened in.
    """
    group = ' GROUP BY "line"' if by_line else ""
    return f'SELECT sum("actual") AS "actual" FROM ({_hourly(exits)}){group}'


def demonstrated_rate(exits: str) -> str:
    """The line's demonstrated good units per hour: the 90th percentile of its hours in the range.

    The line's output is capped by its constraint, so a good hour shows the constraint's capacity;
    the percentile keeps one freak hour (a counter glitch) from setting it.
    """
    return f'SELECT percentile("actual", 90) AS "rate" FROM ({_hourly(exits)}) GROUP BY "line"'


def station_output() -> str:
    """Units each station finished over the range: where the line's flow thins out."""
    inner = (f'SELECT non_negative_difference(last("count")) AS "units" FROM {STATION} '
             f'WHERE {LINE_FILTER} AND {HOUR_RANGE} GROUP BY {HOURS}, "station" fill(none) {LOCAL_CLOCK}')
    return f'SELECT sum("units") AS "units" FROM ({inner}) GROUP BY "station"'


STATE_TIMELINE = (f'SELECT last("state") AS "state" FROM {STATION} WHERE {LINE_FILTER} AND $timeFilter '
                  f'GROUP BY time($__interval), "station" fill(previous)')
BUFFER_LEVELS = (f'SELECT mean("queue") AS "queue" FROM {STATION} WHERE {LINE_FILTER} AND $timeFilter '
                 f'GROUP BY time($__interval), "station" fill(null)')
BUFFERS_NOW = (f'SELECT last("queue") AS "queue" FROM {STATION} WHERE {LINE_FILTER} AND $timeFilter '
               f'GROUP BY "station"')
STATES_NOW = (f'SELECT last("state") AS "state" FROM {STATION} WHERE {LINE_FILTER} AND $timeFilter '
              f'GROUP BY "station"')
