"""`shopfloor losses show`: the constraint's loss Pareto of a shift, day or month, from InfluxDB.

Thin on purpose: analysis.losses_store.period_losses computes it, the same call the API makes, so the
command line and GET /api/lines/{line}/losses agree to the digit.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import typer
from rich.console import Console
from rich.table import Table

from analysis.losses_store import backfill_losses, period_losses, shifts_between
from analysis.targets_cli import parse_now
from analysis.telemetry import parse_time
from shopfloor.errors import ConfigError
from shopfloor.plan import load_plan
from shopfloor.plant import load_plant
from shopfloor.store import Store

app = typer.Typer(help="Losses at the constraint: why it stopped, what it cost.", no_args_is_help=True)


@app.command("show")
def show(plant: Path = typer.Option(..., "--plant", help="The plant file (plant.toml)."),
         plan: Path = typer.Option(..., "--plan", help="The plan file (plan.toml): periods, targets, money."),
         line: str = typer.Option(..., "--line", help="The line id."),
         hour: bool = typer.Option(False, "--hour", help="The current hour."),
         shift: bool = typer.Option(False, "--shift", help="The current (or last) shift (the default)."),
         day: bool = typer.Option(False, "--day", help="The current plant day."),
         month: bool = typer.Option(False, "--month", help="The current month."),
         now: str | None = typer.Option(None, "--now", help="Judge as if it were this moment (ISO 8601 "
                                                              "with offset); default: the clock."),
         influx_url: str | None = typer.Option(None, "--influx-url", help="Default SHOPFLOOR_INFLUX_URL."),
         influx_db: str | None = typer.Option(None, "--influx-db", help="Default SHOPFLOOR_INFLUX_DB."),
         json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """The constraint's lost minutes, units and money by cause, largest first."""
    flags = (("hour", hour), ("shift", shift), ("day", day), ("month", month))
    chosen = [name for name, flag in flags if flag]
    if len(chosen) > 1:
        given = " and ".join("--" + c for c in chosen)
        raise ConfigError(f"give one of --hour, --shift, --day, --month, not {given}")
    grain = chosen[0] if chosen else "shift"
    plant_model, plan_model = load_plant(plant), load_plan(plan)
    with Store(influx_url, influx_db) as store:
        result = period_losses(store, plant_model, plan_model, line, grain, parse_now(now))
    document = result.to_json()
    if json:
        typer.echo(orjson.dumps(document).decode())
        return
    currency = document["currency"] or ""
    value = document["constraint_hour_value"]
    money = document["lost_money"]
    title = (f"line {line}, {grain} {document['period']['label']}: {document['lost_minutes']:,.1f} "
             f"constraint minutes lost" + (f", {money:,.2f} {currency}" if money is not None else "")
             + (f"; a constraint hour is worth {value:,.2f} {currency}" if value is not None else ""))
    table = Table(title=title)
    for column in ("cause", "minutes", "units", "share of gap", "money"):
        table.add_column(column, justify="left" if column == "cause" else "right")
    for row in document["causes"]:
        table.add_row(row["label"] + (" (corrected)" if row["corrected_minutes"] else ""),
                      f"{row['minutes']:,.1f}", "-" if row["units"] is None else f"{row['units']:,.1f}",
                      "-" if row["share_of_gap"] is None else f"{row['share_of_gap']:.0%}",
                      "-" if row["money"] is None else f"{row['money']:,.2f} {currency}")
    console = Console()
    console.print(table)
    console.print(f"output {document['output_units']:,} units, target {document['target_units'] or 0:,}, "
                  f"{len(document['unassigned_stops'])} unassigned constraint stops")


@app.command("backfill")
def backfill(plant: Path = typer.Option(..., "--plant", help="The plant file (plant.toml)."),
             plan: Path = typer.Option(..., "--plan", help="The plan file (plan.toml): shifts, money."),
             line: list[str] = typer.Option([], "--line", help="A line (repeatable; default: every line "
                                            "the plan has an objective for)."),
             time_from: str = typer.Option(..., "--from", help="Start (ISO 8601 or ms): every shift that "
                                           "overlaps [--from, --to) is written whole."),
             time_to: str = typer.Option(..., "--to", help="End (ISO 8601 or ms), exclusive."),
             influx_url: str | None = typer.Option(None, "--influx-url",
                                                   help="Default SHOPFLOOR_INFLUX_URL."),
             influx_db: str | None = typer.Option(None, "--influx-db", help="Default SHOPFLOOR_INFLUX_DB."),
             ) -> None:
    """(Re)write the measurement `losses` for past shifts: the Pareto and profit panels of the boards read
    it, and only the analysis service with --plan writes it as shifts go by. Rewriting replaces."""
    import time

    from rich.progress import Progress

    plant_model, plan_model = load_plant(plant), load_plan(plan)
    start, end = parse_time(time_from, "--from"), parse_time(time_to, "--to")
    if start >= end:
        raise ConfigError(f"--from ({time_from}) must be before --to ({time_to})")
    lines = line or sorted({goal.line for goal in plan_model.objective})
    for line_id in lines:
        plant_model.get_line(line_id)
    shifts = {line_id: shifts_between(plan_model, line_id, start, end) for line_id in lines}
    now_ms = int(time.time() * 1000)
    written: dict[str, int] = {}
    with Store(influx_url, influx_db, timeout_s=600) as store, Progress(transient=True) as progress:
        for line_id in lines:
            task = progress.add_task(f"line {line_id}", total=len(shifts[line_id]))
            done = backfill_losses(store, plant_model, plan_model, line_id, shifts[line_id], now_ms,
                                   lambda task=task: progress.advance(task))
            written[line_id] = len(done)
    for line_id in lines:
        typer.echo(f"{line_id}: {written[line_id]} of {len(shifts[line_id])} shifts written "
                   "(the others had not begun or had no telemetry)")
