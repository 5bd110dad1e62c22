"""`shopfloor targets ...`: the decomposed goal, the leading indicators and the feasibility check.

Each command is thin: it loads files, calls the pure functions in analysis.targets, .indicators and
.feasibility, and prints either JSON (for scripts and tests) or a rich table (for people).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.table import Table

from analysis.targets import GRAINS, PlanError, decompose
from shopfloor.plan import load_plan

app = typer.Typer(help="Targets from the annual goal, leading indicators and goal feasibility.",
                  no_args_is_help=True)

PlanFile = typer.Option(..., "--plan", help="The plan file (plan.toml).", exists=False, dir_okay=False)
LineId = typer.Option(..., "--line", help="The line id of the objective.")
Year = typer.Option(None, "--year", help="The objective's year (needed when the plan has several).")
AsOf = typer.Option(None, "--as-of", help="Re-plan at this local date or date-time (with --delivered).")
Delivered = typer.Option(None, "--delivered", min=0, help="Units delivered before --as-of (a re-plan).")


def _parse_as_of(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise PlanError(f"--as-of {value!r} is not a date or date-time: use YYYY-MM-DD[THH:MM]") from None


@app.command("show")
def show(plan: Path = PlanFile, line: str = LineId,
         grain: str = typer.Option("day", "--grain", help=f"One of {', '.join(GRAINS)}."),
         year: int | None = Year, as_of: str | None = AsOf, delivered: int | None = Delivered,
         json: bool = typer.Option(False, "--json", help="Print the DESIGN.md §7 JSON object.")) -> None:
    """Print every period of the year at one grain with its target units (0-unit periods included)."""
    if grain not in GRAINS:
        raise PlanError(f"unknown grain {grain!r}: use one of {', '.join(GRAINS)}")
    decomposition = decompose(load_plan(plan), line, year, as_of=_parse_as_of(as_of), delivered=delivered)
    periods = decomposition.periods(grain)
    if json:
        document = {"line": line, "grain": grain, "targets": [period.to_json() for period in periods]}
        typer.echo(orjson.dumps(document).decode())
        return
    zone = decomposition.calendar.timezone
    table = Table(title=f"line {line} {decomposition.year}: {decomposition.total_units:,} units over "
                        f"{decomposition.production_hours:,.1f} planned hours ({zone})")
    for column, justify in (("period", "left"), ("start", "left"), ("end", "left"), ("hours", "right"),
                            ("units", "right")):
        table.add_column(column, justify=justify)
    for period in periods:
        table.add_row(period.label, period.start.strftime("%Y-%m-%d %H:%M %z"),
                      period.end.strftime("%Y-%m-%d %H:%M %z"), f"{period.production_hours:g}",
                      f"{period.units:,}", style=None if period.units else "dim")
    Console().print(table)


PlantFile = typer.Option(..., "--plant", help="The plant file (plant.toml): stations, buffers, cycles.")
TelemetryFile = typer.Option(None, "--telemetry", help="A telemetry file (JSON Lines); default: InfluxDB "
                             "(SHOPFLOOR_INFLUX_URL, SHOPFLOOR_INFLUX_DB).")
Day = typer.Option(None, "--day", help="The local plant day YYYY-MM-DD (default: the file's span, or today).")
Constraint = typer.Option(None, "--constraint", help="The constraint station (default: the most active one).")
InfluxUrl = typer.Option(None, "--influx-url", help="InfluxDB URL (default SHOPFLOOR_INFLUX_URL).")
InfluxDb = typer.Option(None, "--db", help="InfluxDB database (default SHOPFLOOR_INFLUX_DB).")


def _parse_day(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise PlanError(f"--day {value!r} is not a date: use YYYY-MM-DD") from None


def _window_and_telemetry(plan, plant, line: str, telemetry_file: Path | None, day: dt.date | None,
                          store_factory):
    """The [start, end) to judge and the line's telemetry in it, from the file or the store."""
    from analysis.indicators import by_station
    from analysis.rollup import day_window
    from analysis.telemetry import from_file, from_store

    if telemetry_file is not None:
        recorded = from_file(plant, line, telemetry_file)
        start, end = day_window(plan, day) if day else (recorded.begin_ms, recorded.end_ms + 1)
        return start, end, by_station(recorded), None
    zone = plan.calendar.zone
    start, end = day_window(plan, day or dt.datetime.now(zone).date())
    store = store_factory()
    end = min(end, int(dt.datetime.now(dt.UTC).timestamp() * 1000))
    return start, end, by_station(from_store(store, plant, line, start, end)), store


@app.command("write")
def write(plan: Path = PlanFile, line: str = LineId,
          plant: Path = typer.Option(..., "--plant", help="The plant file: its id tags the points."),
          grain: list[str] = typer.Option(list(GRAINS), "--grain", help="Grains to write (repeatable)."),
          year: int | None = Year, as_of: str | None = AsOf, delivered: int | None = Delivered,
          influx_url: str | None = InfluxUrl, db: str | None = InfluxDb) -> None:
    """Write the decomposed targets to InfluxDB (measurement `target`) for the boards."""
    from analysis.targets import target_lines
    from shopfloor.plant import load_plant
    from shopfloor.store import Store

    unknown = [g for g in grain if g not in GRAINS]
    if unknown:
        raise PlanError(f"unknown grain {unknown[0]!r}: use one of {', '.join(GRAINS)}")
    plant_id = load_plant(plant).plant
    decomposition = decompose(load_plan(plan), line, year, as_of=_parse_as_of(as_of), delivered=delivered)
    points = target_lines(decomposition, plant_id, tuple(grain))
    with Store(influx_url, db) as store:
        store.create_database()
        for first in range(0, len(points), 5000):
            store.write(points[first:first + 5000])
        typer.echo(f"wrote {len(points)} target points of line {line} {decomposition.year} "
                   f"({', '.join(grain)}) to {store.url} database {store.database}")


@app.command("indicators")
def indicators_command(plant: Path = PlantFile, plan: Path = PlanFile, line: str = LineId,
                       telemetry: Path | None = TelemetryFile, day: str | None = Day,
                       constraint: str | None = Constraint,
                       json: bool = typer.Option(False, "--json", help="Print one JSON object."),
                       write_points: bool = typer.Option(False, "--write", help="Also write measurement "
                                                         "`indicator` to InfluxDB."),
                       influx_url: str | None = InfluxUrl, db: str | None = InfluxDb) -> None:
    """The day's seven leading indicators, hour by hour output, month and quarter to date."""
    from analysis.rollup import day_report, store_actuals
    from shopfloor.plant import load_plant
    from shopfloor.store import Store

    plant_model, plan_model = load_plant(plant), load_plan(plan)
    line_model = plant_model.get_line(line)
    store = None
    try:
        start, end, series, store = _window_and_telemetry(plan_model, plant_model, line, telemetry,
                                                          _parse_day(day), lambda: Store(influx_url, db))
        actuals = (store_actuals(store, plant_model.plant, plan_model, line_model, end - 1) if store
                   else (None, None))
        report = day_report(plan_model, line_model, series, start, end, constraint=constraint,
                            month_actual=actuals[0], quarter_actual=actuals[1])
        if write_points:
            store = store or Store(influx_url, db)
            store.write(report.lines(plant_model.plant))
    finally:
        if store is not None:
            store.close()
    if json:
        typer.echo(orjson.dumps(report.to_json()).decode())
        return
    _print_report(report, plan_model.calendar.zone)


def _print_report(report, zone) -> None:
    from analysis.targets import to_local

    console = Console()
    result = report.indicators
    head = Table(title=f"line {report.line}: {to_local(result.start_ms, zone):%Y-%m-%d %H:%M} to "
                       f"{to_local(result.end_ms, zone):%Y-%m-%d %H:%M}, constraint {result.constraint}")
    head.add_column("indicator")
    head.add_column("value", justify="right")
    head.add_row("output / target", f"{result.output:,} / {result.target:,.0f}")
    for name, value in result.executive().items():
        head.add_row(name.replace("_", " "), "-" if value is None else f"{value:.1%}")
    for rollup in (report.month, report.quarter):
        forecast = "-" if rollup.forecast is None else f"{rollup.forecast:,.0f}"
        head.add_row(f"{rollup.grain} to date / due / target / forecast",
                     f"{rollup.actual:,} / {rollup.due:,.0f} / {rollup.target:,} / {forecast}")
    console.print(head)
    hours = Table(title="hour by hour")
    for column in ("hour", "output", "target", "gap"):
        hours.add_column(column, justify="right")
    for hour in report.hours:
        if hour["output"] or hour["target"]:
            hours.add_row(f"{to_local(hour['start'], zone):%H:%M}", str(hour["output"]),
                          f"{hour['target']:.0f}", f"{hour['output'] - hour['target']:+.0f}")
    console.print(hours)


@app.command("feasibility")
def feasibility_command(plant: Path = PlantFile, plan: Path = PlanFile, line: str = LineId,
                        telemetry: Path | None = TelemetryFile, day: str | None = Day,
                        constraint: str | None = Constraint,
                        needed: float | None = typer.Option(None, "--needed-per-hour", min=0,
                                                            help="Judge this rate instead of the plan's."),
                        json: bool = typer.Option(False, "--json", help="Print one JSON object."),
                        influx_url: str | None = InfluxUrl, db: str | None = InfluxDb) -> None:
    """Can the constraint's demonstrated capacity carry the rest of the plan? Names the station to elevate."""
    from analysis.rollup import feasibility
    from shopfloor.plant import load_plant
    from shopfloor.store import Store

    plant_model, plan_model = load_plant(plant), load_plan(plan)
    line_model = plant_model.get_line(line)
    store = None
    try:
        start, end, series, store = _window_and_telemetry(plan_model, plant_model, line, telemetry,
                                                          _parse_day(day), lambda: Store(influx_url, db))
    finally:
        if store is not None:
            store.close()
    result = feasibility(plan_model, line_model, series, start, end, constraint=constraint,
                         needed_per_hour=needed)
    if json:
        typer.echo(orjson.dumps(result.to_json()).decode())
    else:
        typer.echo(f"line {line}: {result.message}")
