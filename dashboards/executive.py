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
         influx_target(aq.period_target(), "B", alias="$tag_line target"),
         influx_target(q.period_output(exits, by_line=False), "C", alias="plant actual"),
         influx_target(aq.period_target(by_line=False), "D", alias="plant target")],
        description="Units off each line's last station since the start of the period, and the target "
                    "due by now from the decomposed annual goal.",
        decimals=0, time_from=period,
        options={"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True,
                 "reduceOptions": {"calcs": ["lastNotNull"], "values": False},
                 "text": {"titleSize": 20, "valueSize": 32}})


def board(config: BoardConfig) -> Json:
    exits = q.exit_filter(config.plant.lines)
    panels = [
        to_date_panel("Month to date vs target", MONTH, exits, Grid(0, 0, 12, 8)),
        to_date_panel("Quarter to date vs target", QUARTER, exits, Grid(12, 0, 12, 8)),
        panel("stat", "Forecast for the year vs goal", Grid(0, 8, 8, 7),
              [influx_target(aq.FORECAST, "A", alias="$tag_line")],
              description="Year-end units at the pace measured so far, as a share of the annual goal.",
              unit="percentunit", decimals=0, time_from=QUARTER,
              options={"reduceOptions": {"calcs": ["lastNotNull"], "values": False},
                       "textMode": "value_and_name", "colorMode": "background", "graphMode": "none",
                       "text": {"valueSize": 40, "titleSize": 18}},
              thresholds=[threshold("red"), threshold("orange", 0.95), threshold("green", 1.0)]),
        panel("stat", "Goal feasible at the constraint's capacity", Grid(8, 8, 8, 7),
              [influx_target(aq.FEASIBILITY, "A", alias="$tag_line")],
              description="Remaining goal divided by what the constraint can still make in the planned "
                          "time (after the reserve): above 100 % the goal is not reachable.",
              unit="percentunit", decimals=0, time_from=QUARTER,
              options={"reduceOptions": {"calcs": ["lastNotNull"], "values": False},
                       "textMode": "value_and_name", "colorMode": "background", "graphMode": "none",
                       "text": {"valueSize": 40, "titleSize": 18}},
              thresholds=[threshold("green"), threshold("orange", 0.9), threshold("red", 1.0)]),
        panel("stat", "Output lost at the constraint (month)", Grid(16, 8, 8, 7),
              [influx_target(aq.LOST_AT_CONSTRAINT, "A", alias="$tag_line")],
              description="Units the line did not make while its constraint was down, starved or blocked.",
              decimals=0, time_from=MONTH,
              options={"reduceOptions": {"calcs": ["sum"], "values": False}, "textMode": "value_and_name",
                       "colorMode": "value", "graphMode": "none", "text": {"valueSize": 40, "titleSize": 18}},
              defaults={"color": {"mode": "fixed", "fixedColor": "red"}}),
        panel("piechart", "Where the constraint sat (quarter)", Grid(0, 15, 12, 9),
              [influx_target(aq.CONSTRAINT_PLACES, "A", alias="$tag_line $tag_station")],
              description="Share of the quarter each station was its line's constraint.",
              unit="percentunit", decimals=0, time_from=QUARTER,
              options={"reduceOptions": {"calcs": ["lastNotNull"], "values": False}, "pieType": "donut",
                       "legend": {"displayMode": "table", "placement": "right", "values": ["value"]},
                       "displayLabels": ["name"]}),
        panel("timeseries", "Daily output (month)", Grid(12, 15, 12, 9),
              [influx_target(q.daily_output(exits), "A", alias="$tag_line"),
               influx_target(aq.daily_target(), "B", alias="$tag_line target")],
              description="Units per local day per line, with the day's target as a step line.",
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
