"""Small typed helpers that build Grafana dashboard JSON as plain dicts.

Why not the grafana-foundation-sdk: the boards need a dozen panel shapes, and plain dicts keep the
JSON that Grafana stores visible in the code that makes it. Every query goes through `influx_target`,
so the tests can walk a board and run each query against the real InfluxDB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DATASOURCE_UID = "shopfloor-influxdb"
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
SCHEMA_VERSION = 39  # Grafana 10.4 / 11.x dashboard JSON

# Colours of the station states, the same on the boards and the built-in huddle page.
STATE_COLOURS = {
    "working": "green",
    "setup": "blue",
    "down": "red",
    "starved": "yellow",
    "blocked": "orange",
    "idle": "text",
}

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Grid:
    """A panel's place on Grafana's 24-column grid; one row unit is 30 px."""

    x: int
    y: int
    w: int
    h: int

    def as_json(self) -> Json:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


def influx_target(query: str, ref: str = "A", *, alias: str = "", table: bool = False,
                  hide: bool = False) -> Json:
    """One raw InfluxQL query of a panel (Grafana expands $timeFilter, $__interval and variables).

    `hide` keeps a query that only feeds a math expression out of the panel.
    """
    target: Json = {"refId": ref, "datasource": DATASOURCE, "rawQuery": True, "query": query,
                    "resultFormat": "table" if table else "time_series"}
    if alias:
        target["alias"] = alias
    if hide:
        target["hide"] = True
    return target


EXPRESSION_DATASOURCE = {"type": "__expr__", "uid": "__expr__", "name": "Expression"}


def math_target(expression: str, ref: str) -> Json:
    """A Grafana server-side math expression over other refs of the panel (`$rA / $rB`)."""
    return {"refId": ref, "datasource": EXPRESSION_DATASOURCE, "type": "math", "expression": expression}


def reduce_target(source: str, ref: str) -> Json:
    """A Grafana reduce expression: the last non-null value of each series of `source`, as a number."""
    return {"refId": ref, "datasource": EXPRESSION_DATASOURCE, "type": "reduce", "expression": source,
            "reducer": "last", "settings": {"mode": "dropNN"}}


def computed(inputs: dict[str, str], expression: str, ref: str, *, shown: tuple[str, ...] = (),
             aliases: dict[str, str] | None = None) -> list[Json]:
    """Targets computing `expression` (over `$A`-style names of `inputs`) per label set, in Grafana.

    Each input query is reduced to a number per series first (math between two time series would
    join on timestamps, and these one-row results carry different ones); numbers join on their labels
    (the InfluxQL tags, e.g. line), so per-line inputs give a per-line result. Inputs not in `shown`
    are hidden: they only feed the expression.
    """
    targets = [influx_target(query, name, hide=name not in shown, alias=(aliases or {}).get(name, ""))
               for name, query in inputs.items()]
    targets += [reduce_target(name, f"r{name}") for name in inputs]
    targets.append(math_target(re.sub(r"\$(\w+)", r"$r\1", expression), ref))
    return targets


def panel(kind: str, title: str, grid: Grid, targets: list[Json], *, description: str = "",
          unit: str | None = None, decimals: int | None = None, options: Json | None = None,
          defaults: Json | None = None, overrides: list[Json] | None = None,
          mappings: list[Json] | None = None,
          thresholds: list[Json] | None = None, time_from: str | None = None,
          transformations: list[Json] | None = None) -> Json:
    """A panel of any visualisation `kind` (stat, timeseries, barchart, state-timeline, bargauge, table)."""
    field_defaults: Json = dict(defaults or {})
    if unit:
        field_defaults["unit"] = unit
    if decimals is not None:
        field_defaults["decimals"] = decimals
    if mappings:
        field_defaults["mappings"] = mappings
    if thresholds:
        field_defaults["thresholds"] = {"mode": "absolute", "steps": thresholds}
    result: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": grid.as_json(),
        "targets": targets,
        "fieldConfig": {"defaults": field_defaults, "overrides": overrides or []},
        "options": options or {},
    }
    if time_from:
        result["timeFrom"] = time_from
        result["hideTimeOverride"] = False
    if transformations:
        result["transformations"] = transformations
    return result


def text_panel(title: str, grid: Grid, markdown: str) -> Json:
    return {"type": "text", "title": title, "gridPos": grid.as_json(),
            "options": {"mode": "markdown", "content": markdown}}


def big_stat_options(*, text_size: int = 64, colour_mode: str = "value", graph: bool = False) -> Json:
    """Stat options sized for a wall screen read from 3 m: one value, large type, no sparkline clutter."""
    return {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "textMode": "value_and_name" if text_size < 64 else "value",
        "colorMode": colour_mode,
        "graphMode": "area" if graph else "none",
        "justifyMode": "center",
        "orientation": "auto",
        "text": {"valueSize": text_size, "titleSize": max(16, text_size // 3)},
    }


def threshold(colour: str, value: float | None = None) -> Json:
    return {"color": colour, "value": value}


def state_mappings() -> list[Json]:
    """Value mappings that colour each station state the same way everywhere."""
    return [{"type": "value", "options": {state: {"text": state, "color": colour, "index": index}
                                          for index, (state, colour) in enumerate(STATE_COLOURS.items())}}]


def query_variable(name: str, label: str, query: str, *, sort: int = 1, hide: int = 0,
                   multi: bool = False, include_all: bool = False, regex: str = "") -> Json:
    """A variable filled by an InfluxQL SHOW query; `sort` 1 = alphabetical, 8 = natural descending."""
    return {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "query": query, "definition": query, "refresh": 1, "sort": sort, "hide": hide,
        "multi": multi, "includeAll": include_all, "regex": regex,
        "current": {}, "options": [],
    }


def constant_variable(name: str, value: str, *, label: str = "") -> Json:
    """A hidden variable holding a value fixed at build time (time zone, bucket offset)."""
    return {"name": name, "label": label or name, "type": "constant", "query": value, "hide": 2,
            "current": {"text": value, "value": value, "selected": True},
            "options": [{"text": value, "value": value, "selected": True}]}


def annotation(name: str, query: str, *, colour: str = "red", text_column: str = "message",
               tags_columns: str = "") -> Json:
    """Annotations from an InfluxQL query: each row becomes a marker at its time."""
    return {"name": name, "datasource": DATASOURCE, "enable": True, "hide": False, "iconColor": colour,
            "query": query, "textColumn": text_column, "tagsColumn": tags_columns, "titleColumn": "",
            "target": {"refId": "Anno", "rawQuery": True, "query": query}}


def dashboard(uid: str, title: str, panels: list[Json], *, variables: list[Json], annotations: list[Json],
              time_from: str, time_to: str, timezone: str, refresh: str, links: list[Json] | None = None,
              description: str = "", tags: list[str] | None = None) -> Json:
    """The dashboard JSON that provisioning loads and the push uploads; panel ids are assigned here."""
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": tags or ["shopfloor"],
        "timezone": timezone,
        "editable": True,
        "graphTooltip": 1,
        "refresh": refresh,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": time_from, "to": time_to},
        "timepicker": {"refresh_intervals": ["10s", "30s", "1m", "5m", "15m"]},
        "templating": {"list": variables},
        "annotations": {"list": annotations},
        "links": links or [],
        "panels": panels,
    }


def range_link(title: str, time_from: str, time_to: str) -> Json:
    """A dashboard link that keeps the variables and sets the time range (e.g. one shift of today)."""
    return {"title": title, "type": "link", "url": f"?from={time_from}&to={time_to}",
            "keepTime": False, "includeVars": True, "targetBlank": False, "icon": "dashboard",
            "tooltip": f"{time_from} to {time_to}", "asDropdown": False, "tags": []}


def iter_queries(board: Json) -> list[tuple[str, str]]:
    """(where, InfluxQL) of every panel target, variable and annotation: what the tests run."""
    found: list[tuple[str, str]] = []
    for item in board["panels"]:
        for target in item.get("targets", []):
            if "query" in target:
                found.append((f"panel {item['title']!r} {target['refId']}", target["query"]))
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            found.append((f"variable ${variable['name']}", variable["query"]))
    for item in board["annotations"]["list"]:
        if "query" in item:
            found.append((f"annotation {item['name']!r}", item["query"]))
    return found
