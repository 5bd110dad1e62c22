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

MAX_HOURS = 24 * 366
ScenarioPath = typer.Argument(..., help="Scenario TOML (see simulators/scenarios/).")


@app.command("run")
def run(
    scenario_path: Path = ScenarioPath,
    hours: float = typer.Option(None, "--hours", help="Hours to sample after the warm-up; default: the "
                                "scenario's `hours`."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same file."),
    out: Path = typer.Option(..., "--out", help="Telemetry file to write (JSON Lines, docs/DESIGN.md §4)."),
    truth: Path = typer.Option(None, "--truth", help="Also write the true bottleneck of each period."),
    start: str = typer.Option(DEFAULT_START, "--start", help="Time of the first sample (ISO 8601 or now)."),
) -> None:
    """Simulate the line and write every station's 1 Hz samples in the offline file form."""
    scenario = load_scenario(scenario_path)
    if hours is not None and not 0 < hours <= MAX_HOURS:
        raise ConfigError(f"--hours must be above 0 and at most {MAX_HOURS} (a 366-day year)")
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


@app.command("family")
def family(
    seed: int = typer.Argument(..., help="The line's seed: tune set 0-99999, test set 1000000-1099999."),
    out: Path = typer.Option(..., "--out", help="Telemetry file to write (JSON Lines, docs/DESIGN.md §4)."),
    truth: Path = typer.Option(None, "--truth", help="Also write its truth (two replications, agreement)."),
    plant_out: Path = typer.Option(None, "--plant", help="Also write its plant file."),
    scenario_out: Path = typer.Option(None, "--scenario", help="Also write the drawn line as JSON."),
) -> None:
    """One line of the random family (simulators/family.py), the detector's yardstick."""
    from simulators.family import family_truth, random_line, set_of
    from simulators.truth import write_truth

    try:
        which = set_of(seed)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    scenario = random_line(seed)
    start_ms = parse_start(DEFAULT_START)
    telemetry = simulate_telemetry(scenario, seed=seed, start_ms=start_ms)
    written = write_records(out, telemetry.records(scenario.plant_id, scenario.line_id))
    typer.echo(f"{out}: {written} samples of line {scenario.line_id} ({which} set, "
               f"{len(scenario.stations)} stations, {scenario.hours:g} h, {len(scenario.change)} change(s))")
    if plant_out is not None:
        from simulators.plantfile import plant_toml

        plant_out.write_text(plant_toml(scenario.plant))
        typer.echo(f"{plant_out}: plant file")
    if scenario_out is not None:
        scenario_out.write_text(scenario.model_dump_json(indent=2, by_alias=True) + "\n")
        typer.echo(f"{scenario_out}: the drawn line")
    if truth is not None:
        write_truth(truth, family_truth(seed, start_ms=start_ms))
        typer.echo(f"{truth}: true bottleneck per regime")


@app.command("plant")
def plant(
    scenario_path: Path = ScenarioPath,
    out: Path = typer.Option(..., "--out", help="Plant file to write (docs/DESIGN.md §6)."),
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


@app.command("replay")
def replay(
    source: Path = typer.Argument(..., help="Telemetry file (JSON Lines), or with --live a scenario TOML."),
    speed: float = typer.Option(1.0, "--speed", help="Times real time: 60 plays an hour in a minute."),
    keep_time: bool = typer.Option(False, "--keep-time", help="Keep the file's timestamps instead of "
                                   "shifting the first sample to now."),
    live: bool = typer.Option(False, "--live", help="SOURCE is a scenario: run it as an endless demo feed, "
                              "its changes repeating every shift, until --hours or Ctrl-C."),
    hours: float = typer.Option(None, "--hours", help="With --live: stop after this many simulated hours."),
    seed: int = typer.Option(0, "--seed", help="With --live: the first block's seed."),
    backfill_from: str = typer.Option(None, "--backfill-from", help="With --live: start the feed at this "
                                      "past moment (ISO 8601 with a zone); the samples up to now are "
                                      "published at once, in batches, then the feed runs live."),
    mqtt_url: str = typer.Option(None, "--mqtt-url", help="Broker URL; else SHOPFLOOR_MQTT_URL."),
    max_pending: int = typer.Option(1000, "--max-pending", help="Unacknowledged messages allowed per agent "
                                    "(below paho's 65,535)."),
    max_rate: float = typer.Option(5000.0, "--max-rate", help="Messages a second at most; beyond it "
                                   "samples leave as batches."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Publish telemetry over MQTT as one virtual agent per station, QoS 1, waiting for every ack."""
    import signal

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from shopfloor.settings import mqtt_endpoint
    from simulators.replay import file_ticks, live_ticks, now_ms, publish_ticks

    endpoint = mqtt_endpoint(mqtt_url)
    if live:
        scenario = load_scenario(source)
        if hours is not None and hours <= 0:
            raise ConfigError("--hours must be above 0 (or leave it out to run until Ctrl-C)")
        launch = now_ms() // 1000 * 1000
        first = launch if backfill_from is None else parse_start(backfill_from) // 1000 * 1000
        if first > launch:
            raise ConfigError(f"--backfill-from {backfill_from} is in the future: give a past moment")
        catch_up = None if backfill_from is None else launch
        ticks = live_ticks(scenario, seed, hours, first)
        total = None if hours is None else int(round(hours * 3600)) * len(scenario.stations)
        keep_time = True  # live samples are stamped from now on already
    else:
        if hours is not None or backfill_from is not None:
            raise ConfigError("--hours and --backfill-from go with --live; a file replays whole")
        catch_up = None
        ticks, total = file_ticks(str(source))
    stop = {"asked": False}

    def ask_stop(*_: object) -> None:
        stop["asked"] = True

    previous = signal.signal(signal.SIGINT, ask_stop)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[unacked]} unacked"), TimeElapsedColumn(), disable=quiet)
    try:
        with progress:
            task = progress.add_task(f"replay x{speed:g}", total=total, unacked=0)

            def report(published: int, unacked: int) -> None:
                progress.update(task, completed=published, unacked=unacked)

            stats = publish_ticks(ticks, endpoint, speed=speed, keep_time=keep_time, max_pending=max_pending,
                                  max_rate=max_rate, on_progress=report, should_stop=lambda: stop["asked"],
                                  catch_up_to_ms=catch_up)
            progress.update(task, completed=stats.samples, unacked=0)
    finally:
        signal.signal(signal.SIGINT, previous)
    typer.echo(f"published {stats.samples} samples of {len(stats.stations)} stations in {stats.messages} "
               f"messages ({stats.batches} batches) in {stats.seconds:.1f} s, every one acknowledged"
               + (" (stopped)" if stop["asked"] else ""))
