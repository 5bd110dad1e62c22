"""The executive rollup: at most seven numbers an ops director reads per line and for the plant.

Month and quarter to date against the decomposed goal, the forecast, whether the goal is feasible
with the constraint's measured capacity, where the constraints sat and the output lost there. Each
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


def feasibility_panel(exits: str, reserve: float, grid: Grid) -> Json:
    """Needed rate for the rest of the year over the constraint's demonstrated rate after the reserve."""
    return panel(
        "stat", "Goal load on the constraint (year)", grid,
        computed({"Y": aq.period_total("year"), "A": q.period_output(exits),
                  "H": aq.period_total("year", "hours"), "E": aq.ELAPSED_HOURS,
                  "K": q.demonstrated_rate(exits)},
                 f"(($Y - $A) / ($H - $E)) / ($K * {1 - reserve:.4f})", "L"),
        description="Units per planned hour the rest of the year needs, over the line's demonstrated "
                    f"rate (90th percentile hour this year) less the plan's reserve ({reserve:.0%}). "
                    "Above 100 % the goal is not feasible at the constraint's capacity.",
        unit="percentunit", decimals=0, time_from=YEAR, options=_kpi_options(),
        thresholds=[threshold("green"), threshold("orange", 0.9), threshold("red", 1.0)])


def lost_output_panel(exits: str, grid: Grid) -> Json:
    """Units lost while the constraint was down, starved or blocked, at the line's demonstrated rate."""
    return panel(
        "stat", "Output lost at the constraint (month)", grid,
        computed({"U": aq.mean_indicator("constraint_uptime"),
                  "S": aq.mean_indicator("constraint_active_share"),
                  "E": aq.ELAPSED_HOURS, "K": q.demonstrated_rate(exits)},
                 "((1 - $U) + (1 - $S)) * $E * $K", "X"),
        description="Planned hours this month x the constraint's down share (1 - uptime) plus its "
                    "starved and blocked share (1 - active share) x the line's demonstrated rate.",
        decimals=0, time_from=MONTH, options={**_kpi_options(), "colorMode": "value"},
        defaults={"color": {"mode": "fixed", "fixedColor": "red"}})


def constraint_places_panel(grid: Grid) -> Json:
    return panel(
        "piechart", "Where the constraint sat (quarter)", grid,
        [influx_target(aq.CONSTRAINT_PLACES, "A", alias="$tag_line $tag_station")],
        description="Each station's share of the quarter as its line's (sole or shifting) bottleneck, "
                    "from the live detector's timeline.",
        unit="percentunit", decimals=0, time_from=QUARTER,
        options={"reduceOptions": {"calcs": ["lastNotNull"], "values": False}, "pieType": "donut",
                 "legend": {"displayMode": "table", "placement": "right", "values": ["value", "percent"]},
                 "displayLabels": ["name"]})


def board(config: BoardConfig) -> Json:
    exits = q.exit_filter(config.plant.lines)
    panels = [
        to_date_panel("Month to date vs target", MONTH, exits, Grid(0, 0, 12, 8)),
        to_date_panel("Quarter to date vs target", QUARTER, exits, Grid(12, 0, 12, 8)),
        forecast_panel(exits, Grid(0, 8, 8, 7)),
        feasibility_panel(exits, config.reserve, Grid(8, 8, 8, 7)),
        lost_output_panel(exits, Grid(16, 8, 8, 7)),
        constraint_places_panel(Grid(0, 15, 10, 9)),
        panel("timeseries", "Daily output vs target (month)", Grid(10, 15, 14, 9),
              [influx_target(q.daily_output(exits), "A", alias="$tag_line"),
               influx_target(aq.daily_target(), "B", alias="$tag_line target")],
              description="Good units per local day per line, with the day's target as a step line.",
              decimals=0, time_from=MONTH,
              defaults={"custom": {"drawStyle": "bars", "fillOpacity": 70, "showPoints": "never"}},
              overrides=[{"matcher": {"id": "byFrameRefID", "options": "B"},
                          "properties": [{"id": "custom.drawStyle", "value": "line"},
                                         {"id": "custom.lineInterpolation", "value": "stepAfter"},
                                         {"id": "custom.lineWidth", "value": 3}]}]),
    ]
    if len(panels) > MAX_KPIS:
        raise AssertionError(f"the executive rollup shows at most {MAX_KPIS} KPIs, not {len(panels)}")
    return dashboard(
        UID, "Executive rollup", panels, variables=variables(config), annotations=[],
        time_from=QUARTER, time_to="now", timezone=config.timezone, refresh="5m",
        description="Month and quarter to date against the goal, forecast, feasibility, the constraints.",
        tags=["shopfloor", "executive"])
