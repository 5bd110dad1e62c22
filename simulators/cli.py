"""`shopfloor sim ...`: simulate a scenario to a telemetry file, its plant file, truth, what-if, replay."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from shopfloor.contract import write_records
from shopfloor.errors import ConfigError
from simulators.scenario import load_scenario
from simulators.telemetry import DEFAULT_START, parse_start, simulate_telemetry

app = typer.Typer(help="Line simulator: telemetry with known bottlenecks, what-if, MQTT replay.",
                  no_args_is_help=True)

ScenarioPath = typer.Argument(..., help="Scenario TOML (see simulators/scenarios/).")


@app.command("run")
def run(
    scenario_path: Path = ScenarioPath,
    hours: float = typer.Option(None, "--hours", help="Hours to sample after the warm-up; default: the "
                                "scenario's `hours`."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same file."),
    out: Path = typer.Option(..., "--out", help="Telemetry file to write (JSON Lines, DESIGN.md §4)."),
    truth: Path = typer.Option(None, "--truth", help="Also write the true bottleneck of each period."),
    start: str = typer.Option(DEFAULT_START, "--start", help="Time of the first sample (ISO 8601 or now)."),
) -> None:
    """Simulate the line and write every station's 1 Hz samples in the offline file form."""
    scenario = load_scenario(scenario_path)
    if hours is not None and hours <= 0:
        raise ConfigError("--hours must be above 0")
    start_ms = parse_start(start)
    began = time.perf_counter()
    telemetry = simulate_telemetry(scenario, hours, seed, start_ms)
    simulated = time.perf_counter() - began
    written = write_records(out, telemetry.records(scenario.plant_id, scenario.line_id))
    writing = time.perf_counter() - began - simulated
    typer.echo(f"{out}: {written} samples of {len(telemetry.ids)} stations "
               f"(simulated in {simulated:.2f} s, written in {writing:.2f} s)")
    if truth is not None:
        from simulators.truth import ground_truth, write_truth

        write_truth(truth, ground_truth(scenario, hours, start_ms=start_ms, seed=seed))
        typer.echo(f"{truth}: true bottleneck per period")


@app.command("plant")
def plant(
    scenario_path: Path = ScenarioPath,
    out: Path = typer.Option(..., "--out", help="Plant file to write (DESIGN.md §6)."),
) -> None:
    """Write the plant file of the scenario's line, for `analyze bottleneck --plant`."""
    from simulators.plantfile import plant_toml

    out.write_text(plant_toml(load_scenario(scenario_path).plant))
    typer.echo(f"{out}: plant of {scenario_path}")


@app.command("whatif")
def whatif_command(
    scenario_path: Path = ScenarioPath,
    station: str = typer.Option(..., "--station", help="The station to elevate."),
    speedup: float = typer.Option(0.0, "--speedup", help="0.1: 10 % more units per hour of its active time."),
    add_machine: int = typer.Option(0, "--add-machine", count=True,
                                    help="Put one more identical machine beside it (repeat for more)."),
    hours: float = typer.Option(None, "--hours", help="Hours simulated; default: the scenario's."),
    reps: int = typer.Option(20, "--reps", help="Replications on common random numbers."),
    seed: int = typer.Option(0, "--seed"),
    hours_per_day: float = typer.Option(24.0, "--hours-per-day", help="Production hours in a day."),
    json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
) -> None:
    """Output before and after elevating one station, with 95 % confidence intervals."""
    import orjson

    from simulators.whatif import describe, whatif

    if not speedup and not add_machine:
        raise ConfigError("say what to change: --speedup 0.1 and/or --add-machine")
    result = whatif(load_scenario(scenario_path), station, speedup=speedup, add_machines=add_machine,
                    hours=hours, reps=reps, seed=seed)
    if json:
        typer.echo(orjson.dumps(result.as_dict()).decode())
        return
    for line in describe(result, hours_per_day):
        typer.echo(line)
