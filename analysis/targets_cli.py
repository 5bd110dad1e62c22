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
