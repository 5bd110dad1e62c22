"""`shopfloor analyze bottleneck ...` (offline, DESIGN.md §7) and `shopfloor analysis serve`.

The commands only load files or connect, call analysis.bottleneck and print; anything a user can
fix (a bad plant file, a missing telemetry file, an empty time range) is a ShopfloorError, which the
entry point prints as one line.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import typer

from analysis.bottleneck import DEFAULT_METHOD, METHODS, Timeline, analyze
from analysis.states import DEFAULT_MAX_GAP_MS, spans
from analysis.telemetry import TelemetryError, from_file, from_store
from shopfloor.errors import ConfigError
from shopfloor.plant import load_plant

analyze_app = typer.Typer(help="Offline analysis of a telemetry file or a stored time range.",
                          no_args_is_help=True)
analysis_app = typer.Typer(help="The analysis service: live bottleneck, alerts, HTTP API.",
                           no_args_is_help=True)

PlantFile = typer.Option(..., "--plant", help="The plant file (plant.toml): lines, stations, buffers.")
LineId = typer.Option(..., "--line", help="The line to analyse.")


def parse_time(value: str, flag: str) -> int:
    """Milliseconds since the epoch from an integer or an ISO 8601 time (UTC unless it has an offset)."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag} {value!r} is neither ms since the epoch nor an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _print_table(timeline: Timeline) -> None:
    for window in timeline.windows:
        start = dt.datetime.fromtimestamp(window.start / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        top = sorted(window.shares.items(), key=lambda item: -item[1])[:3]
        shares = "  ".join(f"{station} {share:.0%}" for station, share in top)
        typer.echo(f"{start}Z  {window.bottleneck or '-':>10}  {shares}")


@analyze_app.command("bottleneck")
def bottleneck(
    plant: Path = PlantFile,
    line: str = LineId,
    telemetry: Path = typer.Option(None, "--telemetry", help="A telemetry file (JSON Lines, the "
                                   "offline form); or use --from/--to to read InfluxDB."),
    window: float = typer.Option(3600.0, "--window", help="Window length in seconds (epoch-aligned)."),
    json: bool = typer.Option(False, "--json", help="Print the timeline as one JSON object."),
    method: str = typer.Option(DEFAULT_METHOD, "--method", help=f"One of {', '.join(METHODS)}."),
    infer: bool = typer.Option(False, "--infer-states", help="Ignore reported states; infer them from "
                               "queue counts and buffer capacities."),
    max_gap_s: float = typer.Option(DEFAULT_MAX_GAP_MS / 1000, "--max-gap", help="A sample's state "
                                    "holds at most this long when the next sample is late (seconds)."),
    time_from: str = typer.Option(None, "--from", help="Start of the stored range (ISO 8601 or ms)."),
    time_to: str = typer.Option(None, "--to", help="End of the stored range (ISO 8601 or ms)."),
    influx_url: str = typer.Option(None, "--influx-url", envvar="SHOPFLOOR_INFLUX_URL"),
    influx_db: str = typer.Option(None, "--influx-db", envvar="SHOPFLOOR_INFLUX_DB"),
) -> None:
    """The bottleneck timeline of one line: per window, each station's bottleneck share."""
    if method not in METHODS:
        raise ConfigError(f"--method {method!r} is unknown: use one of {', '.join(METHODS)}")
    if window <= 0:
        raise ConfigError(f"--window {window} must be a positive number of seconds")
    plant_model = load_plant(plant)
    plant_model.get_line(line)
    if telemetry is not None:
        data = from_file(plant_model, line, telemetry)
    elif time_from and time_to:
        from shopfloor.store import Store

        with Store(influx_url, influx_db) as store:
            data = from_store(store, plant_model, line, parse_time(time_from, "--from"),
                              parse_time(time_to, "--to"))
    else:
        raise ConfigError("give --telemetry FILE.jsonl, or --from and --to to read InfluxDB")
    if infer and not any(s.queue.size for s in data.series):
        raise TelemetryError("no queue counts to infer states from")
    state_spans = spans(data, use_states=False if infer else None, max_gap_ms=int(max_gap_s * 1000))
    timeline = analyze(state_spans, data.stations, line, window, method)
    if json:
        typer.echo(orjson.dumps(timeline.contract()).decode())
    else:
        _print_table(timeline)
