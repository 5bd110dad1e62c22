"""InfluxQL over what analysis writes: targets, indicators, the bottleneck timeline and alerts.

The measurements and their fields are the ones documented beside their names in shopfloor/contract.py:
- `target`: tags plant, line, grain; fields units, hours (planned production hours), end; one point per
  period at its start (analysis/targets.py `target_lines`).
- `indicator`: tags plant, line, period (day|shift|hour); day/shift fields output, target, pace,
  constraint_uptime, constraint_active_share, buffer_health, constraint_oee, line_oee, scrap_rate,
  constraint (analysis/indicators.py `indicator_lines`).
- `bottleneck` (analysis/live.py, the live detector): per timeline window a point with tags plant,
  line, station and fields share, sole, blocked, starved; per tick a point with tags plant, line and
  fields current (the constraint, with hysteresis) and since (ms).
- `alert`: tags plant, line, station, kind; fields severity, message, lost_units (analysis/alerts.py).
- `losses` (analysis/losses_store.py `losses_lines`, the service's live loop): per plan shift at its start
  (tag grain=shift), a point per cause (tags cause, station, kind; fields minutes, corrected_minutes, units,
  money) and one per shift (fields lost_minutes, lost_units, lost_money, output_units, target_units,
  output_money, target_money, constraint_hour_value, through, top_cause).
This module is the only place the boards and the huddle page read them. Same Grafana query text and
InfluxQL rules as dashboards.queries; one selector per statement, so rows keep their real time.
"""

from __future__ import annotations

from dashboards.queries import DAY_RANGE, HOURS, LINE_FILTER, LOCAL_CLOCK
from shopfloor.contract import (
    ALERT_MEASUREMENT,
    BOTTLENECK_MEASUREMENT,
    INDICATOR_MEASUREMENT,
    LOSSES_MEASUREMENT,
    TARGET_MEASUREMENT,
)
from shopfloor.store import quote_ident, quote_string

TARGET = quote_ident(TARGET_MEASUREMENT)
BOTTLENECK = quote_ident(BOTTLENECK_MEASUREMENT)
INDICATOR = quote_ident(INDICATOR_MEASUREMENT)
ALERT = quote_ident(ALERT_MEASUREMENT)
LOSSES = quote_ident(LOSSES_MEASUREMENT)

# The leading indicators the huddle shows, with the unit Grafana formats them in, in reading order.
INDICATORS = ("pace", "constraint_uptime", "constraint_active_share", "buffer_health", "constraint_oee",
              "line_oee", "scrap_rate")


def _grain(grain: str) -> str:
    return f'"grain" = {quote_string(grain)}'


def hourly_target(grain: str = "hour") -> str:
    """The hour targets of the decomposition, bucketed like the actual output. Buckets that start at a
    shift's minute other than :00 (`$bucket_offset`) need `grain="shift_hour"` (analysis/targets.py):
    clock-hour points would land half an hour off."""
    return (f'SELECT sum("units") AS "target" FROM {TARGET} WHERE {LINE_FILTER} AND {_grain(grain)} '
            f'AND $timeFilter GROUP BY {HOURS}, "line" fill(none) {LOCAL_CLOCK}')


def range_target(*, by_line: bool = True) -> str:
    """Units due over the range: the hour targets that start in it (per line, or for the plant)."""
    group = ' GROUP BY "line"' if by_line else ""
    return f'SELECT sum("units") AS "target" FROM {TARGET} WHERE {LINE_FILTER} AND {_grain("hour")} ' \
           f'AND $timeFilter{group}'


def daily_target() -> str:
    return (f'SELECT sum("units") AS "target" FROM {TARGET} WHERE {LINE_FILTER} AND {_grain("day")} '
            f'AND $timeFilter GROUP BY time(1d), "line" fill(none) {LOCAL_CLOCK}')


def period_total(grain: str, field: str = "units") -> str:
    """The whole period's target (its point sits at the period's start, inside a to-date range)."""
    return (f'SELECT last({quote_ident(field)}) AS {quote_ident(field)} FROM {TARGET} WHERE {LINE_FILTER} '
            f'AND {_grain(grain)} AND $timeFilter GROUP BY "line"')


ELAPSED_HOURS = (f'SELECT sum("hours") AS "hours" FROM {TARGET} WHERE {LINE_FILTER} AND {_grain("hour")} '
                 f'AND $timeFilter AND time <= now() GROUP BY "line"')


# A day's (or shift's) indicator point sits at the period's start, often before a shift-long range:
# the latest point that started up to a day before the range is the one in force.
LATEST = f'"period" =~ /^(shift|day)$/ AND {DAY_RANGE}'


def indicator(name: str) -> str:
    """The latest shift (or day) value of one leading indicator."""
    return (f'SELECT last({quote_ident(name)}) AS {quote_ident(name)} FROM {INDICATOR} WHERE {LINE_FILTER} '
            f'AND {LATEST} GROUP BY "line"')


def mean_indicator(name: str) -> str:
    """The mean of one indicator over the day points in the range (a month's typical day)."""
    return (f'SELECT mean({quote_ident(name)}) AS {quote_ident(name)} FROM {INDICATOR} WHERE {LINE_FILTER} '
            f'AND "period" = \'day\' AND $timeFilter GROUP BY "line"')


CURRENT_CONSTRAINT = (f'SELECT "current" AS "constraint", "since" FROM {BOTTLENECK} WHERE {LINE_FILTER} '
                      f'AND "current" =~ /./ AND $timeFilter ORDER BY time DESC LIMIT 1')
# The newest window the live detector answered: its station, runner-up and the simulation's confidence,
# which analysis/calls.py grades into a kind of call (how often such an answer names the constraint).
NEWEST_ANSWER = (f'SELECT "bottleneck", "runner_up", "confidence" FROM {BOTTLENECK} WHERE {LINE_FILTER} '
                 f'AND "bottleneck" =~ /./ AND $timeFilter ORDER BY time DESC LIMIT 1')
# The live detector's latest "settled" mark: its windows that start before it are never rewritten.
SETTLED = (f'SELECT "settled" FROM {BOTTLENECK} WHERE {LINE_FILTER} AND "settled" > 0 AND $timeFilter '
           f'ORDER BY time DESC LIMIT 1')
# Per window and station, the timeline's share and sole share: analysis.shares splits the shifting time.
CONSTRAINT_WINDOWS = (f'SELECT "share", "sole" FROM {BOTTLENECK} WHERE {LINE_FILTER} '
                      f'AND "station" =~ /./ AND $timeFilter GROUP BY "station"')


def constraint_split(group: str = '"station"') -> str:
    """Each station's share of the range as the constraint by analysis.shares' split (its owner): the
    mean over the windows of the `split` the live detector stores per window and station (sole time
    plus its part of the shifting time; one window length, weight 1, as `stored_windows`). A window's
    splits sum to at most 1 (three stations shifting at once included), and every station has a
    point in every window, so the stations' means sum to at most 100 % by construction. Why not
    mean(`share`): shifting time is held by two or more stations at once and would count twice."""
    return (f'SELECT mean("split") AS "share" FROM {BOTTLENECK} WHERE {LINE_FILTER} '
            f'AND "station" =~ /./ AND $timeFilter GROUP BY {group}')


CONSTRAINT_SHARES = constraint_split()


def window_share(field: str) -> str:
    """The mean over the range of one per-station window share of the timeline (starved, blocked)."""
    return (f'SELECT mean({quote_ident(field)}) AS {quote_ident(field)} FROM {BOTTLENECK} '
            f'WHERE {LINE_FILTER} AND "station" =~ /./ AND $timeFilter GROUP BY "station"')


CONSTRAINT_PLACES = constraint_split('"line", "station"')
ALERT_ANNOTATIONS = f'SELECT "message", "kind", "severity" FROM {ALERT} WHERE {LINE_FILTER} AND $timeFilter'
# The huddle page's alert list: the annotations' columns plus the station the alert is about.
ALERT_LIST = (f'SELECT "message", "kind", "severity", "station" FROM {ALERT} WHERE {LINE_FILTER} '
              f'AND $timeFilter')


# --- losses at the constraint (issue 14) -------------------------------------------------------------
# A shift's points sit at the shift's start and carry its end (`end`, ms): a range shows the shifts that
# overlap it (a shift link of the huddle board, a huddle range begun mid-shift, a month), each whole as
# far as written, the causes summed over them. Shifts are at most a day long (shopfloor/plan.py).
SHIFT_LOSSES = (f'{LINE_FILTER} AND "grain" = \'shift\' AND time > ${{__from}}ms - 1d AND time < ${{__to}}ms '
                f'AND "end" > ${{__from}}')
PARETO_CAUSES = 10


def loss_pareto(limit: int = PARETO_CAUSES) -> str:
    """The range's causes at the constraint, largest first (minutes), with their units and money.

    `top(field, tag, N)` over the per-cause sums is InfluxQL's only ranking across series: it returns
    the N largest causes as rows in descending order, which a table shows as the Pareto."""
    inner = (f'SELECT sum("minutes") AS "minutes", sum("units") AS "units", sum("money") AS "money" '
             f'FROM {LOSSES} WHERE {SHIFT_LOSSES} GROUP BY "line", "cause"')
    return (f'SELECT top("minutes", "cause", {limit}) AS "minutes", "units", "money" FROM ({inner}) '
            f'GROUP BY "line"')


# The top cause of the range per line (most minutes, as the Pareto ranks), its minutes as the value.
TOP_LOSS_CAUSE = (f'SELECT top("minutes", "cause", 1) AS "minutes" FROM (SELECT sum("minutes") AS "minutes" '
                  f'FROM {LOSSES} WHERE {SHIFT_LOSSES} GROUP BY "line", "cause") GROUP BY "line"')
CONSTRAINT_HOURS_LOST = (f'SELECT sum("lost_minutes") / 60 AS "hours" FROM {LOSSES} WHERE {SHIFT_LOSSES} '
                         f'GROUP BY "line"')


def shift_money(field: str, *, by_line: bool = True) -> str:
    """A money figure of the shifts in the range, summed (output_money, target_money, lost_money)."""
    group = ' GROUP BY "line"' if by_line else ""
    name = quote_ident(field)
    return f'SELECT sum({name}) AS {name} FROM {LOSSES} WHERE {SHIFT_LOSSES}{group}'
