"""The executive rollup: at most seven numbers an ops director reads per line and for the plant.

The few that move profit (issue 14): month and quarter to date against the decomposed goal, throughput
against the plan in money, the month's forecast against its goal, the constraint hours lost, the top
loss cause and the constraint's OEE. Each
panel fixes its own period (`timeFrom` now/M, now/fQ), so the board needs no time picking.
"""

from __future__ import annotations

from dashboards import analysis_queries as aq
from dashboards import queries as q
from dashboards.config import BoardConfig
from dashboards.grafana import (
    Grid,
    Json,
    computed,
    constant_variable,
    dashboard,
    influx_target,
    panel,
    query_variable,
    threshold,
)

UID = "shopfloor-executive"
FILE_NAME = "executive-rollup.json"
MAX_KPIS = 7
MONTH = "now/M"
QUARTER = "now/fQ"  # with Grafana's default fiscal year start (January) this is the calendar quarter
YEAR = "now/y"


def variables(config: BoardConfig) -> list[Json]:
    plant = query_variable("plant", "Plant", q.PLANTS)
    plant["current"] = {"text": config.plant.plant, "value": config.plant.plant}
    lines = query_variable("line", "Lines", q.LINES, multi=True, include_all=True)
    lines["current"] = {"text": ["All"], "value": ["$__all"]}
    return [plant, lines, constant_variable("timezone", config.timezone),
            constant_variable("bucket_offset", config.bucket_offset)]


def to_date_panel(title: str, period: str, exits: str, grid: Grid) -> Json:
    """Actual against target per line since the period's start, and the same for the whole plant."""
    return panel(
        "bargauge", title, grid,
        [influx_target(q.period_output(exits), "A", alias="$tag_line actual"),
         influx_target(aq.range_target(), "B", alias="$tag_line target"),
         influx_target(q.period_output(exits, by_line=False), "C", alias="plant actual"),
         influx_target(aq.range_target(by_line=False), "D", alias="plant target")],
        description="Good units off each line's last station since the start of the period, and the units "
                    "due by now from the decomposed annual goal (hour targets).",
        decimals=0, time_from=period,
        options={"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True,
                 "reduceOptions": {"calcs": ["lastNotNull"], "values": False},
                 "text": {"titleSize": 20, "valueSize": 32}})


def _kpi_options(calcs: str = "lastNotNull") -> Json:
    return {"reduceOptions": {"calcs": [calcs], "values": False}, "textMode": "value_and_name",
            "colorMode": "background", "graphMode": "none", "text": {"valueSize": 40, "titleSize": 18}}


def forecast_panel(exits: str, grid: Grid) -> Json:
    """Month-end units at the month's pace so far: actual / due so far x the month's target."""
    return panel(
        "stat", "Month forecast vs month target", grid,
        computed({"A": q.period_output(exits), "B": aq.range_target(), "C": aq.period_total("month")},
                 "$A / $B * $C", "F", shown=("C",), aliases={"C": "$tag_line target"}),
        description="F: the month's target times the pace so far (actual over due), per line; "
                    "next to it the month's target.",
        decimals=0, time_from=MONTH, options=_kpi_options(),
        defaults={"color": {"mode": "fixed", "fixedColor": "blue"}})


def money_panel(grid: Grid, currency: str | None = None) -> Json:
    """Throughput (good units x the plan's throughput per unit) against the plan's, month to date."""
    return panel(
        "bargauge", "Throughput vs plan, money (month)", grid,
        [influx_target(aq.shift_money("output_money"), "A", alias="$tag_line throughput"),
         influx_target(aq.shift_money("target_money"), "B", alias="$tag_line plan"),
         influx_target(aq.shift_money("output_money", by_line=False), "C", alias="plant throughput"),
         influx_target(aq.shift_money("target_money", by_line=False), "D", alias="plant plan")],
        description="Good units of the month's shifts times the plan's throughput per unit (price minus "
                    "truly variable cost), against the units due in them at the same value; in the plan's "
                    "currency. From measurement `losses` (the analysis service with --plan).",
        unit=f"suffix: {currency}" if currency else None, decimals=0, time_from=MONTH,
        options={"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True,
                 "reduceOptions": {"calcs": ["lastNotNull"], "values": False},
                 "text": {"titleSize": 20, "valueSize": 32}})


def constraint_hours_lost_panel(grid: Grid) -> Json:
    """Hours the constraint did not produce this month, every cause (analysis/losses.py)."""
    return panel(
        "stat", "Constraint hours lost (month)", grid,
        [influx_target(aq.CONSTRAINT_HOURS_LOST, "A", alias="$tag_line")],
        description="Hours of the month's shifts the constraint of the moment was down, in setup, idle, "
                    "starved, blocked, without data, or running below its demonstrated rate: the line's "
                    "lost hours (a stop elsewhere costs only through these).",
        unit="h", decimals=1, time_from=MONTH, options={**_kpi_options(), "colorMode": "value"},
        defaults={"color": {"mode": "fixed", "fixedColor": "red"}})


def top_cause_panel(grid: Grid) -> Json:
    """The month's largest loss at the constraint, by name."""
    return panel(
        "stat", "Top loss cause (month)", grid,
        [influx_target(aq.TOP_LOSS_CAUSE, "A", table=True)],
        description="The cause with the most constraint minutes lost in the month's shifts (the first row "
                    "of the Pareto), and its minutes.",
        options={**_kpi_options(), "colorMode": "value", "textMode": "value_and_name",
                 "reduceOptions": {"calcs": ["lastNotNull"], "fields": "/^cause$/", "values": False}},
        time_from=MONTH, defaults={"color": {"mode": "fixed", "fixedColor": "orange"}})


def constraint_oee_panel(grid: Grid) -> Json:
    """The constraint's OEE over the month's days: its availability, speed and quality are the line's."""
    return panel(
        "stat", "Constraint OEE (month)", grid,
        [influx_target(aq.mean_indicator("constraint_oee"), "A", alias="$tag_line")],
        description="Mean of the days' constraint OEE (availability x performance x quality of the "
                    "station that was the constraint), from measurement `indicator`.",
        unit="percentunit", decimals=0, time_from=MONTH, options=_kpi_options(),
        thresholds=[threshold("red"), threshold("orange", 0.6), threshold("green", 0.85)])


def board(config: BoardConfig) -> Json:
    exits = q.exit_filter(config.plant.lines)
    panels = [
        to_date_panel("Month to date vs target", MONTH, exits, Grid(0, 0, 12, 8)),
        to_date_panel("Quarter to date vs target", QUARTER, exits, Grid(12, 0, 12, 8)),
        money_panel(Grid(0, 8, 12, 8), config.currency),
        forecast_panel(exits, Grid(12, 8, 12, 8)),
        constraint_hours_lost_panel(Grid(0, 16, 8, 7)),
        top_cause_panel(Grid(8, 16, 8, 7)),
        constraint_oee_panel(Grid(16, 16, 8, 7)),
    ]
    if len(panels) > MAX_KPIS:
        raise AssertionError(f"the executive rollup shows at most {MAX_KPIS} KPIs, not {len(panels)}")
    return dashboard(
        UID, "Executive rollup", panels, variables=variables(config), annotations=[],
        time_from=QUARTER, time_to="now", timezone=config.timezone, refresh="5m",
        description="Month and quarter to date against the goal, throughput vs plan in money, forecast, "
                    "constraint hours lost, the top loss cause, constraint OEE.",
        tags=["shopfloor", "executive"])
