"""`shopfloor targets ...`: the decomposed goal, the leading indicators and the feasibility check.

Each command is thin: it loads files, calls the pure functions in analysis.targets, .indicators and
.feasibility, and prints either JSON (for scripts and tests) or a rich table (for people).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.table import Table

from analysis.targets import GRAINS, PlanError, decompose
from shopfloor.plan import Plan, load_plan
from shopfloor.plant import Line, Plant, load_plant
from shopfloor.store import Store

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
         json: bool = typer.Option(False, "--json", help="Print the docs/DESIGN.md §7 JSON object.")) -> None:
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
Now = typer.Option(None, "--now", help="Judge as if it were this moment (ISO 8601 with offset, for replays); "
                   "default: the clock.")
Constraint = typer.Option(None, "--constraint", help="The constraint station (default: the most active one).")
InfluxUrl = typer.Option(None, "--influx-url", help="InfluxDB URL (default SHOPFLOOR_INFLUX_URL).")
InfluxDb = typer.Option(None, "--influx-db", help="InfluxDB database (default SHOPFLOOR_INFLUX_DB).")
Json = typer.Option(False, "--json", help="Print one JSON object.")
MqttUrl = typer.Option(None, "--mqtt-url", help="Broker for the alerts (default SHOPFLOOR_MQTT_URL).")
Webhook = typer.Option([], "--webhook", help="Also POST each alert here (repeatable).")


def _parse_day(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise PlanError(f"--day {value!r} is not a date: use YYYY-MM-DD") from None


def parse_now(value: str | None) -> int:
    """`--now` of the commands: an ISO 8601 time with an offset, or the current time."""
    if value is None:
        return int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise PlanError(f"--now {value!r} is not an ISO 8601 time with an offset, like "
                        f"2027-03-02T10:00:00+01:00")
    return int(moment.timestamp() * 1000)


@dataclass
class _Inputs:
    """What every judging command needs: the models, the window and the line's telemetry in it."""

    plant: Plant
    plan: Plan
    line: Line
    start_ms: int
    end_ms: int
    telemetry: dict
    store: Store | None


@contextmanager
def _inputs(plant: Path, plan: Path, line: str, telemetry_file: Path | None, day: str | None,
            now: str | None, influx_url: str | None, db: str | None, days: int = 1) -> Iterator[_Inputs]:
    """A file is judged over its span (or `--day`); the store over the day (and the `days` - 1 before
    it) up to now."""
    from analysis.indicators import by_station
    from analysis.rollup import day_window
    from analysis.targets import to_local
    from analysis.telemetry import from_file, from_store
    from shopfloor.counters import BASELINE_MS

    plant_model, plan_model = load_plant(plant), load_plan(plan)
    line_model = plant_model.get_line(line)
    chosen = _parse_day(day)
    if telemetry_file is not None:
        recorded = from_file(plant_model, line, telemetry_file)
        start, end = day_window(plan_model, chosen) if chosen else (recorded.begin_ms, recorded.end_ms + 1)
        yield _Inputs(plant_model, plan_model, line_model, start, end, by_station(recorded), None)
        return
    now_ms = parse_now(now)
    last_day = chosen or to_local(now_ms, plan_model.calendar.zone).date()
    start, _ = day_window(plan_model, last_day - dt.timedelta(days=days - 1))
    end = min(day_window(plan_model, last_day)[1], now_ms)
    with Store(influx_url, db) as store:
        telemetry = by_station(from_store(store, plant_model, line, start - BASELINE_MS, end))  # + baseline
        yield _Inputs(plant_model, plan_model, line_model, start, end, telemetry, store)


@app.command("write")
def write(plan: Path = PlanFile, line: str = LineId,
          plant: Path = typer.Option(..., "--plant", help="The plant file: its id tags the points."),
          grain: list[str] = typer.Option(list(GRAINS), "--grain", help="Grains to write (repeatable)."),
          year: int | None = Year, as_of: str | None = AsOf, delivered: int | None = Delivered,
          influx_url: str | None = InfluxUrl, db: str | None = InfluxDb) -> None:
    """Write the decomposed targets to InfluxDB (measurement `target`) for the boards."""
    from analysis.targets import target_lines

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
                       telemetry: Path | None = TelemetryFile, day: str | None = Day, now: str | None = Now,
                       constraint: str | None = Constraint, json: bool = Json,
                       write_points: bool = typer.Option(False, "--write", help="Also write measurement "
                                                         "`indicator` to InfluxDB."),
                       influx_url: str | None = InfluxUrl, db: str | None = InfluxDb) -> None:
    """The day's seven leading indicators, hour by hour output, month and quarter to date."""
    from analysis.rollup import day_report, store_actuals

    with _inputs(plant, plan, line, telemetry, day, now, influx_url, db) as inputs:
        actuals: tuple[int | None, int | None, int | None] = (None, None, None)
        if inputs.store is not None:
            actuals = store_actuals(inputs.store, inputs.plant.plant, inputs.plan, inputs.line,
                                    inputs.end_ms - 1)
        report = day_report(inputs.plan, inputs.line, inputs.telemetry, inputs.start_ms, inputs.end_ms,
                            constraint=constraint, month_actual=actuals[0], quarter_actual=actuals[1],
                            data_since_ms=actuals[2])
        if write_points:
            with Store(influx_url, db) as store:
                store.write(report.lines(inputs.plant.plant))
    if json:
        typer.echo(orjson.dumps(report.to_json()).decode())
        return
    _print_report(report, inputs.plan.calendar.zone)


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
        forecast = "not enough data yet" if rollup.forecast is None else f"{rollup.forecast:,.0f}"
        head.add_row(f"{rollup.grain} to date / due / target / forecast",
                     f"{rollup.actual:,} / {rollup.due:,.0f} / {rollup.target:,} / {forecast}")
    console.print(head)
    for oee in (result.constraint_oee, result.line_oee):
        if oee.problem:
            console.print(f"data problem: {oee.problem}")
    if report.shifts:
        shifts = Table(title="shifts")
        for column in ("shift", "output", "target", "constraint", "uptime", "OEE", "line OEE"):
            shifts.add_column(column, justify="left" if column in ("shift", "constraint") else "right",
                              no_wrap=True)
        for name, shift in report.shifts:
            shifts.add_row(name, f"{shift.output:,}", f"{shift.target:,.0f}", shift.constraint,
                           f"{shift.constraint_uptime:.0%}", f"{shift.constraint_oee.oee:.0%}",
                           f"{shift.line_oee.oee:.0%}")
        console.print(shifts)
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
                        telemetry: Path | None = TelemetryFile, day: str | None = Day, now: str | None = Now,
                        constraint: str | None = Constraint,
                        needed: float | None = typer.Option(None, "--needed-per-hour", min=0,
                                                            help="Judge this rate instead of the plan's."),
                        days: int = typer.Option(1, "--days", min=1, max=14, help="Measure the constraint "
                                                 "over this many days up to --day (InfluxDB only)."),
                        scenario: Path | None = typer.Option(None, "--scenario", help="The line's simulator "
                                                             "scenario: quantify elevating the constraint."),
                        speedup: float = typer.Option(0.0, "--speedup", help="What-if: 0.1 = the constraint "
                                                      "10 % faster (with --scenario)."),
                        add_machine: int = typer.Option(0, "--add-machine", count=True, help="What-if: one "
                                                        "more machine at the constraint (with --scenario)."),
                        json: bool = Json, influx_url: str | None = InfluxUrl,
                        db: str | None = InfluxDb) -> None:
    """Can the constraint's demonstrated capacity carry the rest of the plan? Names the station to elevate."""
    from analysis.feasibility import scenario_whatif
    from analysis.rollup import feasibility

    whatif = None
    if scenario is not None:
        whatif = scenario_whatif(scenario, speedup=speedup, add_machines=add_machine or (0 if speedup else 1))
    with _inputs(plant, plan, line, telemetry, day, now, influx_url, db, days) as inputs:
        result = feasibility(inputs.plan, inputs.line, inputs.telemetry, inputs.start_ms, inputs.end_ms,
                             constraint=constraint, needed_per_hour=needed, whatif=whatif)
    if json:
        typer.echo(orjson.dumps(result.to_json()).decode())
    else:
        typer.echo(f"line {line}: {result.message}")


@app.command("check")
def check_command(plant: Path = PlantFile, plan: Path = PlanFile, line: str = LineId, now: str | None = Now,
                  constraint: str | None = Constraint, mqtt_url: str | None = MqttUrl,
                  webhook: list[str] = Webhook, influx_url: str | None = InfluxUrl,
                  db: str | None = InfluxDb) -> None:
    """Run the escalation checks on today's stored data; send new alerts the way constraint alerts go."""
    from analysis.alerts import AlertSink, MqttAlertPublisher
    from analysis.rollup import day_report, escalate, store_actuals

    with _inputs(plant, plan, line, None, None, now, influx_url, db) as inputs:
        assert inputs.store is not None
        month, quarter, since = store_actuals(inputs.store, inputs.plant.plant, inputs.plan, inputs.line,
                                              inputs.end_ms - 1)
        report = day_report(inputs.plan, inputs.line, inputs.telemetry, inputs.start_ms, inputs.end_ms,
                            constraint=constraint, month_actual=month, quarter_actual=quarter,
                            data_since_ms=since)
        publisher = MqttAlertPublisher(mqtt_url, client_id=f"shopfloor-targets-{inputs.plant.plant}-{line}")
        try:
            sink = AlertSink(inputs.plant.plant, line, inputs.store, publisher, webhook)
            sent = escalate(inputs.plan, report, inputs.end_ms, sink.send)
        finally:
            publisher.close()
    for alert in sent:
        typer.echo(f"{alert['severity']:8} {alert['kind']}: {alert['message']}")
    if not sent:
        typer.echo(f"line {line}: no new escalation")


@app.command("watch")
def watch_command(plant: Path = PlantFile, plan: Path = PlanFile,
                  every: float = typer.Option(300.0, "--every", min=1.0, help="Seconds between rounds."),
                  rounds: int | None = typer.Option(None, "--rounds", min=1, help="Stop after this many "
                                                    "rounds (default: until Ctrl-C)."),
                  now: str | None = Now, no_alerts: bool = typer.Option(False, "--no-alerts", help="Only "
                                                                        "write the indicators."),
                  mqtt_url: str | None = MqttUrl, webhook: list[str] = Webhook,
                  influx_url: str | None = InfluxUrl, db: str | None = InfluxDb) -> None:
    """Keep every planned line's day current: write its indicator points and send new escalations each
    round. A round that fails (InfluxDB or the broker away) is reported and retried the next round."""
    import time

    from analysis.alerts import AlertSink, MqttAlertPublisher
    from analysis.rollup import watch_once

    plant_model, plan_model = load_plant(plant), load_plan(plan)
    publisher = None if no_alerts else MqttAlertPublisher(
        mqtt_url, client_id=f"shopfloor-targets-watch-{plant_model.plant}")
    done = 0
    try:
        with Store(influx_url, db) as store:
            sinks = None if publisher is None else {
                line.id: AlertSink(plant_model.plant, line.id, store, publisher, webhook).send
                for line in plant_model.lines}
            while rounds is None or done < rounds:
                began = time.monotonic()
                statuses = watch_once(store, plant_model, plan_model, parse_now(now), sinks)
                for line_id, status in statuses.items():
                    typer.echo(f"{dt.datetime.now(dt.UTC):%H:%M:%SZ} line {line_id}: {status}")
                done += 1
                if rounds is None or done < rounds:
                    time.sleep(max(0.0, every - (time.monotonic() - began)))
    finally:
        if publisher is not None:
            publisher.close()
