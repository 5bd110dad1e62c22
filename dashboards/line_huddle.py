"""The line huddle board: what a supervisor and the crew read from 3 m at the start of a shift.

Top row: output against target and the current constraint, in large type. Then hour by hour actual
against the hour's target, the station state timeline (who starved or blocked the constraint), the
buffer levels, the leading indicators, and the shift's loss Pareto at the constraint (issue 14).
Alerts appear as annotations on every time panel.
"""

from __future__ import annotations

from dashboards import analysis_queries as aq
from dashboards import queries as q
from dashboards.config import BoardConfig
from dashboards.grafana import (
    Grid,
    Json,
    annotation,
    big_stat_options,
    constant_variable,
    dashboard,
    influx_target,
    panel,
    query_variable,
    range_link,
    state_mappings,
    threshold,
)

UID = "shopfloor-line-huddle"
FILE_NAME = "line-huddle.json"


def variables(config: BoardConfig) -> list[Json]:
    plant = query_variable("plant", "Plant", q.PLANTS)
    plant["current"] = {"text": config.plant.plant, "value": config.plant.plant}
    line = query_variable("line", "Line", q.LINES)
    first = config.plant.lines[0].id
    line["current"] = {"text": first, "value": first}
    return [plant, line, constant_variable("timezone", config.timezone),
            constant_variable("bucket_offset", config.bucket_offset)]


def shift_links(config: BoardConfig) -> list[Json]:
    """One link per shift of today and yesterday: the huddle's time range starts where a shift starts."""
    links = [range_link("Today", "now/d", "now/d")]
    for shift in config.shifts:
        links.append(range_link(f"Shift {shift.name} today", f"now/d+{shift.start}m",
                                f"now/d+{shift.start + shift.minutes}m"))
    for shift in config.shifts:
        links.append(range_link(f"Shift {shift.name} yesterday", f"now-1d/d+{shift.start}m",
                                f"now-1d/d+{shift.start + shift.minutes}m"))
    return links


def output_panels(exits: str, bucket_offset: str = "0m") -> list[Json]:
    """Output against target, whole range and hour by hour. Hour buckets that start at a shift's minute
    (`bucket_offset` not 0m, a 05:30 shift) read the `shift_hour` targets: clock-hour targets would sit
    half an hour off their bars."""
    grain = "hour" if bucket_offset in ("0m", "0") else "shift_hour"
    actual = influx_target(q.range_output(exits), "A", alias="Actual")
    target = influx_target(aq.range_target(), "B", alias="Target")
    hourly = [influx_target(q.hourly_output(exits), "A", alias="Actual"),
              influx_target(aq.hourly_target(grain), "B", alias="Target")]
    bars = {"drawStyle": "bars", "fillOpacity": 80, "barAlignment": 1, "lineWidth": 1, "showPoints": "never"}
    return [
        panel("stat", "Output vs target", Grid(0, 0, 8, 6), [actual, target],
              description="Good units (count - scrap) off the line's last station in the range, "
                          "against the range's target.",
              decimals=0, options={**big_stat_options(text_size=56), "textMode": "value_and_name"}),
        panel("timeseries", "Hour by hour: actual vs target", Grid(0, 6, 14, 9), hourly,
              description="Each bar is one hour of good units, on the plant's clock and aligned to shift "
                          "starts.",
              decimals=0, defaults={"custom": bars, "color": {"mode": "fixed", "fixedColor": "blue"}},
              overrides=[{"matcher": {"id": "byFrameRefID", "options": "B"},
                          "properties": [{"id": "custom.drawStyle", "value": "line"},
                                         {"id": "custom.lineInterpolation", "value": "stepAfter"},
                                         {"id": "custom.lineWidth", "value": 4},
                                         {"id": "color",
                                          "value": {"mode": "fixed", "fixedColor": "orange"}}]}],
              options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                       "tooltip": {"mode": "multi"}}),
    ]


def constraint_panels() -> list[Json]:
    return [
        panel("stat", "Constraint now", Grid(8, 0, 8, 6),
              [influx_target(aq.CURRENT_CONSTRAINT, "A", table=True)],
              description="The station that limits the line now: the live detector's answer, which moves "
                          "only after a challenger held for minutes.",
              options={**big_stat_options(text_size=72),
                       "reduceOptions": {"calcs": ["lastNotNull"], "fields": "/^constraint$/",
                                         "values": False}},
              defaults={"color": {"mode": "fixed", "fixedColor": "purple"}}),
        panel("stat", "Constraint share of the range", Grid(16, 0, 8, 6),
              [influx_target(aq.CONSTRAINT_SHARES, "A", alias="$tag_station")],
              description="Share of the range each station was the (sole or shifting) constraint.",
              unit="percentunit", decimals=0,
              options={**big_stat_options(text_size=40), "textMode": "value_and_name",
                       "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
              thresholds=[threshold("green"), threshold("orange", 0.3), threshold("red", 0.6)]),
    ]


def flow_panels() -> list[Json]:
    return [
        panel("state-timeline", "Station states", Grid(0, 15, 15, 7),
              [influx_target(q.STATE_TIMELINE, "A", alias="$tag_station")],
              description="Working, setup, down (active) and starved, blocked (waiting) per station.",
              mappings=state_mappings(),
              options={"showValue": "never", "rowHeight": 0.85, "mergeValues": True, "alignValue": "center",
                       "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
              defaults={"color": {"mode": "thresholds"}, "custom": {"fillOpacity": 90, "lineWidth": 0}}),
        panel("timeseries", "Buffer levels", Grid(0, 22, 9, 7),
              [influx_target(q.BUFFER_LEVELS, "A", alias="$tag_station")],
              description="Units waiting in front of each station: empty buffers starve, full ones block.",
              decimals=0, defaults={"custom": {"lineWidth": 3, "fillOpacity": 10, "showPoints": "never"}},
              options={"legend": {"displayMode": "list", "placement": "right", "showLegend": True},
                       "tooltip": {"mode": "multi"}}),
        panel("bargauge", "Output per station", Grid(9, 22, 7, 7),
              [influx_target(q.station_output(), "A", alias="$tag_station")],
              description="Units each station finished in the range: the flow thins at the constraint.",
              decimals=0, options={"orientation": "vertical", "displayMode": "basic", "showUnfilled": True,
                                   "reduceOptions": {"calcs": ["lastNotNull"], "values": False},
                                   "text": {"titleSize": 22, "valueSize": 28}}),
    ]


def starved_blocked_panel() -> Json:
    """What starved or blocked each station over the range: the huddle's 'why' next to the 'where'."""
    return panel(
        "bargauge", "Starved and blocked share", Grid(16, 22, 8, 7),
        [influx_target(aq.window_share("starved"), "A", alias="$tag_station starved"),
         influx_target(aq.window_share("blocked"), "B", alias="$tag_station blocked")],
        description="Share of the range each station waited with an empty input buffer (starved) or a "
                    "full output buffer (blocked), from the live detector's timeline.",
        unit="percentunit", decimals=0,
        options={"orientation": "horizontal", "displayMode": "basic", "showUnfilled": True,
                 "reduceOptions": {"calcs": ["lastNotNull"], "values": False},
                 "text": {"titleSize": 18, "valueSize": 22}},
        overrides=[{"matcher": {"id": "byFrameRefID", "options": ref},
                    "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}]}
                   for ref, colour in (("A", "yellow"), ("B", "orange"))])


def loss_pareto_panel() -> Json:
    """The range's losses at the constraint, largest first: the same causes, minutes, units and money as
    the huddle page and `GET /api/lines/{line}/losses` (measurement `losses`, written by the service)."""
    return panel(
        "table", "Losses at the constraint (Pareto)", Grid(15, 15, 9, 7),
        [influx_target(aq.loss_pareto(), "A", table=True)],
        description="Why the constraint did not produce in the shifts that started in the range: its own "
                    "stops by reason, starved or blocked by the named station, slow running; lost units at "
                    "its demonstrated rate, money at the plan's throughput per unit. Largest first.",
        decimals=1,
        options={"showHeader": True, "cellHeight": "lg", "footer": {"show": False}},
        overrides=[*({"matcher": {"id": "byName", "options": name},
                      "properties": [{"id": "custom.hidden", "value": True}]} for name in ("time", "line")),
                   {"matcher": {"id": "byName", "options": "minutes"},
                    "properties": [{"id": "custom.cellOptions", "value": {"type": "gauge", "mode": "basic"}},
                                   {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}]}])


def indicator_panel(config: BoardConfig) -> Json:
    """The seven leading indicators of the shift; pace and constraint uptime against the plan's floors."""
    floors = {"pace": 1 - config.pace_tolerance, "constraint_uptime": config.constraint_uptime}
    overrides = [{"matcher": {"id": "byFrameRefID", "options": chr(65 + index)},
                  "properties": [{"id": "thresholds", "value": {"mode": "absolute", "steps": [
                      threshold("red"), threshold("green", floors[name])]}},
                                 {"id": "color", "value": {"mode": "thresholds"}}]}
                 for index, name in enumerate(aq.INDICATORS) if name in floors]
    return panel(
        "stat", "Leading indicators vs targets", Grid(14, 6, 10, 9),
        [influx_target(aq.indicator(name), chr(65 + index), alias=name.replace("_", " "))
         for index, name in enumerate(aq.INDICATORS)],
        description=f"The shift's (or day's) leading indicators. Targets from the plan: pace at least "
                    f"{floors['pace']:.0%}, constraint uptime at least {floors['constraint_uptime']:.0%}.",
        unit="percentunit", decimals=0,
        defaults={"color": {"mode": "fixed", "fixedColor": "text"}}, overrides=overrides,
        options={**big_stat_options(text_size=40), "textMode": "value_and_name", "colorMode": "value",
                 "text": {"valueSize": 40, "titleSize": 18}})


def board(config: BoardConfig) -> Json:
    exits = q.exit_filter(config.plant.lines)
    panels = [*output_panels(exits, config.bucket_offset), *constraint_panels(), indicator_panel(config),
              *flow_panels(), starved_blocked_panel(), loss_pareto_panel()]
    return dashboard(
        UID, "Line huddle", panels, variables=variables(config),
        annotations=[annotation("Alerts", aq.ALERT_ANNOTATIONS, colour="red", tags_columns="kind,severity")],
        time_from="now/d", time_to="now/d", timezone=config.timezone, refresh=config.refresh,
        links=shift_links(config),
        description="Shift huddle: hour-by-hour output against target, the constraint, states, buffers.",
        tags=["shopfloor", "huddle"])
