"""The InfluxQL of measurement `station`, written once: every board panel, the built-in huddle page
and analysis/'s reads (raw samples, to-date good units, where the data begins).

Queries are Grafana query text: `$timeFilter`, `$__interval`, `${__from}`/`${__to}` and the board
variables (`$plant`, `$line`, `$timezone`, `$bucket_offset`). Grafana expands them for the boards;
`dashboards.macros.expand` does the same for the tests and the huddle page, so a number on the wall
screen and the same number in Grafana come from the same text.

InfluxQL rules these queries follow (docs/DESIGN.md §3):
- output is GOOD units leaving the line, counted by shopfloor.counters, the one owner of the rule
  the indicators also use (reset, 16/32-bit wrap, the first sample of a series as its baseline so
  the first hour with data counts, scrap counted on its own so a unit scrapped a sample after it was
  counted is +1 then -1, a sample without scrap carrying none). InfluxQL has no conditional, so
  `influxql_good_units` gives one subquery per case of the rule, all aliased "n" in one FROM; their
  sum per hour is the hour's output. Every board number of output is a sum of these rows;
- the series are read from an hour before the range (the baseline) and that hour's rows are
  subtracted again by the same subqueries over [from - 1h, from), because an outer time filter would
  be pushed down into the subqueries by InfluxDB 1.x and take the baseline with it. So an hour query
  returns one extra bucket of 0 just before the range; Grafana does not draw it;
- `GROUP BY time()` aligns to the epoch: `tz('$timezone')` and the `$bucket_offset` put hour and day
  buckets on the plant's local clock and on shift starts that are not on the hour;
- one selector per statement (several selectors return time 0).
Cost: the per-sample subqueries read every sample of the exit station (about 1 s per day of 1 Hz
samples for a good-units query, bench/README.md), so the executive's month and quarter panels read
the hourly rollup `output_hour` instead (analysis/output_hours.py writes it with `station_hours`,
this module's hourly shape): 2-11 ms instead of 32-252 s (bench/README.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from shopfloor.contract import OUTPUT_HOUR_MEASUREMENT, STATION_MEASUREMENT
from shopfloor.counters import influxql_good_units, influxql_units
from shopfloor.plant import Line
from shopfloor.store import quote_ident, quote_string

STATION = quote_ident(STATION_MEASUREMENT)
OUTPUT_HOUR = quote_ident(OUTPUT_HOUR_MEASUREMENT)
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


def _good_units(exits: str) -> str:
    # one plant, one exit station per line: "line" tells the series apart (one tag is 3-5x faster)
    return influxql_good_units(STATION, f"{LINE_FILTER} AND {exits}", "${__from}ms", "${__to}ms",
                               tags='"line"')


def _hourly(exits: str) -> str:
    """Good units per hour and line, by shopfloor.counters' rule (module docstring)."""
    return (f'SELECT sum("n") AS "actual" FROM {_good_units(exits)} WHERE {HOUR_RANGE} '
            f'GROUP BY {HOURS}, "line" fill(none) {LOCAL_CLOCK}')


def hourly_output(exits: str) -> str:
    """Good units the line finished in each hour of the range (the huddle's 'actual' column)."""
    return _hourly(exits)


def range_output(exits: str) -> str:
    """Good units the line finished over the whole range."""
    return f'SELECT sum("n") AS "actual" FROM {_good_units(exits)} WHERE {HOUR_RANGE} GROUP BY "line"'


def _rollup_hours(exits: str) -> str:
    return f"{OUTPUT_HOUR} WHERE {LINE_FILTER} AND {exits} AND $timeFilter"


def daily_output(exits: str) -> str:
    """Good units each line finished per local day (the executive rollup's daily bars), from the hourly
    rollup (see `period_output`)."""
    return (f'SELECT sum("good") AS "actual" FROM {_rollup_hours(exits)} '
            f'GROUP BY time(1d), "line" fill(none) {LOCAL_CLOCK}')


def period_output(exits: str, *, by_line: bool = True) -> str:
    """Good units finished since the panel's range start (month or quarter to date), per line or plant.

    Why not `range_output`: that reads every raw sample of the period (about 25 s a month, over a
    minute a quarter, bench/README.md); this sums the hourly rollup, one point per station and hour
    (analysis/output_hours.py), whose running hour the live loop rewrites from the raw samples every
    rollup round (5 minutes, the board's refresh), so the figure is at most a round behind them.
    The running hour is not read from raw samples here: InfluxQL keeps the series of two measurements
    apart (a sum over subqueries of `output_hour` and `station` returns two numbers), and a Grafana
    expression joining two queries drops a line that has no current-hour series (no samples at night).
    """
    group = ' GROUP BY "line"' if by_line else ""
    return f'SELECT sum("good") AS "actual" FROM {_rollup_hours(exits)}{group}'


def demonstrated_rate(exits: str) -> str:
    """The line's demonstrated good units per hour: the 90th percentile of its producing hours.

    The line's output is capped by its constraint, so a good hour shows the constraint's capacity;
    the percentile keeps one freak hour from setting it, and hours without output (nights) are not
    hours of demonstrated capacity. From the hourly rollup's ended hours (a year of raw samples would
    take minutes to read; a running hour is not a whole hour of capacity).
    """
    return (f'SELECT percentile("good", 90) AS "rate" FROM {OUTPUT_HOUR} WHERE {LINE_FILTER} AND {exits} '
            f'AND "good" > 0 AND "final" = true AND $timeFilter GROUP BY "line"')


def station_hours(plant: str, line: str, start_ms: int, end_ms: int, timezone: str) -> str:
    """Good units of every station of a line per clock hour of the plant in [start, end), by the
    boards' hourly shape (column "good"): what analysis/output_hours.py writes into the rollup.
    `start_ms` must be an hour's start; the bucket before it (the baseline hour) comes back as 0."""
    start, end = f"{int(start_ms)}ms", f"{int(end_ms) - 1}ms"
    where = f'"plant" = {quote_string(plant)} AND "line" = {quote_string(line)}'
    units = influxql_good_units(STATION, where, start, end, tags='"station"')
    return (f'SELECT sum("n") AS "good" FROM {units} WHERE time >= {start} - 60m AND time <= {end} '
            f'GROUP BY time(1h), "station" fill(none) tz({quote_string(timezone)})')


def station_output() -> str:
    """Units each station finished over the range: where the line's flow thins out."""
    units = ", ".join(influxql_units("count", STATION, LINE_FILTER, "${__from}ms", "${__to}ms",
                                     tags='"station"'))  # the huddle's one line: stations tell series apart
    return f'SELECT sum("n") AS "units" FROM {units} WHERE {HOUR_RANGE} GROUP BY "station"'


# --- the same measurement for analysis/: concrete times and one station instead of Grafana's macros ---


def _station_where(plant: str, line: str, station: str) -> str:
    return (f'"plant" = {quote_string(plant)} AND "line" = {quote_string(line)} AND '
            f'"station" = {quote_string(station)}')


def samples(plant: str, line: str, station: str, start_ms: int, stop_ms: int) -> str:
    """One station's raw samples in [start, stop) (analysis.telemetry.from_store)."""
    where = _station_where(plant, line, station)
    return (f'SELECT "count", "queue", "scrap", "state" FROM {STATION} WHERE {where} '
            f"AND time >= {int(start_ms)}ms AND time < {int(stop_ms)}ms")


def good_units(plant: str, line: str, station: str, start_ms: int, end_ms: int) -> str:
    """Good units of one station in [start, end), by the boards' very query shape: column "good"."""
    start, end = f"{int(start_ms)}ms", f"{int(end_ms) - 1}ms"
    units = influxql_good_units(STATION, _station_where(plant, line, station), start, end, tags='"station"')
    return f'SELECT sum("n") AS "good" FROM {units} WHERE time >= {start} - 60m AND time <= {end}'


def first_sample(plant: str, line: str, station: str, start_ms: int, end_ms: int) -> str:
    """The station's first sample in [start, end): when its evidence begins (its time)."""
    return (f'SELECT first("count") FROM {STATION} WHERE {_station_where(plant, line, station)} AND '
            f"time >= {int(start_ms)}ms AND time < {int(end_ms)}ms")


STATE_TIMELINE = (f'SELECT last("state") AS "state" FROM {STATION} WHERE {LINE_FILTER} AND $timeFilter '
                  f'GROUP BY time($__interval), "station" fill(previous)')
BUFFER_LEVELS = (f'SELECT mean("queue") AS "queue" FROM {STATION} WHERE {LINE_FILTER} AND $timeFilter '
                 f'GROUP BY time($__interval), "station" fill(null)')
BUFFERS_NOW = (f'SELECT last("queue") AS "queue" FROM {STATION} WHERE {LINE_FILTER} AND $timeFilter '
               f'GROUP BY "station"')
STATES_NOW = (f'SELECT last("state") AS "state" FROM {STATION} WHERE {LINE_FILTER} AND $timeFilter '
              f'GROUP BY "station"')
