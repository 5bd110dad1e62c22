"""InfluxQL over what analysis writes: targets, the bottleneck timeline, indicators and alerts.

The measurement names and fields are the ones documented beside their constants in
shopfloor/contract.py; this module is the only place the boards and the huddle page read them.
Same Grafana query text and InfluxQL rules as dashboards.queries.
"""

from __future__ import annotations

from dashboards.queries import HOURS, LINE_FILTER, LOCAL_CLOCK
from shopfloor.contract import (
    ALERT_MEASUREMENT,
    BOTTLENECK_MEASUREMENT,
    INDICATOR_MEASUREMENT,
    TARGET_MEASUREMENT,
)
from shopfloor.store import quote_ident

TARGET = quote_ident(TARGET_MEASUREMENT)
BOTTLENECK = quote_ident(BOTTLENECK_MEASUREMENT)
INDICATOR = quote_ident(INDICATOR_MEASUREMENT)
ALERT = quote_ident(ALERT_MEASUREMENT)


def hourly_target() -> str:
    """The hour targets of the decomposition, bucketed like the actual output."""
    return (f'SELECT sum("units") AS "target" FROM {TARGET} WHERE {LINE_FILTER} AND "grain" = \'hour\' '
            f'AND $timeFilter GROUP BY {HOURS}, "line" fill(none) {LOCAL_CLOCK}')


def range_target() -> str:
    return (f'SELECT sum("units") AS "target" FROM {TARGET} WHERE {LINE_FILTER} AND "grain" = \'hour\' '
            f'AND $timeFilter GROUP BY "line"')


CURRENT_CONSTRAINT = (f'SELECT last("station") AS "constraint" FROM {BOTTLENECK} WHERE {LINE_FILTER} '
                      f'AND $timeFilter GROUP BY "line"')
CONSTRAINT_SHARES = (f'SELECT mean("share") AS "share" FROM {BOTTLENECK} WHERE {LINE_FILTER} AND $timeFilter '
                     f'GROUP BY "station"')
LINE_INDICATORS = (f'SELECT last("value") AS "value", last("target") AS "target" FROM {INDICATOR} '
                   f'WHERE {LINE_FILTER} AND $timeFilter GROUP BY "indicator"')
ALERT_ANNOTATIONS = (f'SELECT "message", "kind", "severity" FROM {ALERT} WHERE {LINE_FILTER} AND $timeFilter')


def daily_target() -> str:
    return (f'SELECT sum("units") AS "target" FROM {TARGET} WHERE {LINE_FILTER} '
            f'AND "grain" = \'day\' AND $timeFilter GROUP BY time(1d), "line" fill(none) {LOCAL_CLOCK}')


def period_target(*, by_line: bool = True) -> str:
    """The day targets due since the panel's range start, summed (per line, or for the plant)."""
    group = ' GROUP BY "line"' if by_line else ""
    return (f'SELECT sum("units") AS "target" FROM {TARGET} WHERE {LINE_FILTER} '
            f'AND "grain" = \'day\' AND $timeFilter{group}')


FORECAST = (f'SELECT last("forecast_share") AS "forecast" FROM {INDICATOR} WHERE "plant" =~ /^$plant$/ '
            f'AND "line" =~ /^$line$/ AND $timeFilter GROUP BY "line"')
FEASIBILITY = (f'SELECT last("load") AS "load" FROM {INDICATOR} WHERE "plant" =~ /^$plant$/ '
               f'AND "line" =~ /^$line$/ AND $timeFilter GROUP BY "line"')
LOST_AT_CONSTRAINT = (f'SELECT sum("lost_units") AS "lost" FROM {BOTTLENECK} WHERE "plant" =~ /^$plant$/ '
                      f'AND "line" =~ /^$line$/ AND $timeFilter GROUP BY "line"')
CONSTRAINT_PLACES = (f'SELECT mean("share") AS "share" FROM {BOTTLENECK} WHERE "plant" =~ /^$plant$/ '
                     f'AND "line" =~ /^$line$/ AND $timeFilter GROUP BY "line", "station"')
