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
