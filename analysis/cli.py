"""`shopfloor analyze bottleneck ...` (offline, docs/DESIGN.md §7) and `shopfloor analysis serve`.

The commands only load files or connect, call analysis.bottleneck and print; anything a user can
fix (a bad plant file, a missing telemetry file, an empty time range) is a ShopfloorError, which the
entry point prints as one line.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import typer

from analysis.bottleneck import ANALYZE_DEFAULT_METHOD, METHODS, Timeline, Window, analyze
from analysis.calls import describe
from analysis.states import DEFAULT_MAX_GAP_MS, spans
from analysis.telemetry import TelemetryError, from_file, from_store, parse_time
from shopfloor.errors import ConfigError
from shopfloor.plant import load_plant

analyze_app = typer.Typer(help="Offline analysis of a telemetry file or a stored time range.",
                          no_args_is_help=True)
analysis_app = typer.Typer(help="The analysis service: live bottleneck, alerts, HTTP API.",
                           no_args_is_help=True)

# Routers of higher layers the service includes, by "module:factory" name; the entry point (the
# composition root, shopfloor/cli.py) adds them, so analysis never imports a higher folder.

PlantFile = typer.Option(..., "--plant", help="The plant file (plant.toml): lines, stations, buffers.")
LineId = typer.Option(..., "--line", help="The line to analyse.")


def _print_table(timeline: Timeline) -> None:
    for window in timeline.windows:
        start = dt.datetime.fromtimestamp(window.start / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        top = sorted(window.shares.items(), key=lambda item: -item[1])[:3]
        shares = "  ".join(f"{station} {share:.0%}" for station, share in top)
        note = "  no clear constraint (gains within noise)" if window.within_noise else ""
        typer.echo(f"{start}Z  {window.bottleneck or '-':>10}  {shares}{note}{_call_note(window)}")


def _call_note(window: Window) -> str:
    """How often a call like this one was right on lines with a known answer (analysis/calls.py)."""
    call = window.call
    return f"  {describe(call, window.bottleneck, window.runner_up)}" if call and window.bottleneck else ""


@analyze_app.command("bottleneck")
def bottleneck(
    plant: Path = PlantFile,
    line: str = LineId,
    telemetry: Path = typer.Option(None, "--telemetry", help="A telemetry file (JSON Lines, the "
                                   "offline form); or use --from/--to to read InfluxDB."),
    window: float = typer.Option(3600.0, "--window", help="Window length in seconds (epoch-aligned)."),
    json: bool = typer.Option(False, "--json", help="Print the timeline as one JSON object."),
    method: str = typer.Option(ANALYZE_DEFAULT_METHOD, "--method", help=f"One of {', '.join(METHODS)}."),
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
    timeline = analyze(state_spans, data.stations, line, window, method, telemetry=data)
    if json:
        typer.echo(orjson.dumps(timeline.contract()).decode())
    else:
        _print_table(timeline)


@analysis_app.command("rollup")
def rollup(
    plant: Path = PlantFile,
    line: list[str] = typer.Option([], "--line", help="A line to roll up (repeatable; default: every line)."),
    time_from: str = typer.Option(..., "--from", help="Start (ISO 8601 or ms); moved back to its hour."),
    time_to: str = typer.Option(..., "--to", help="End (ISO 8601 or ms), exclusive."),
    influx_url: str = typer.Option(None, "--influx-url", envvar="SHOPFLOOR_INFLUX_URL"),
    influx_db: str = typer.Option(None, "--influx-db", envvar="SHOPFLOOR_INFLUX_DB"),
) -> None:
    """(Re)write the hourly output rollup (measurement output_hour) over a range: the history the
    executive panels read, for data stored before the analysis service ran (its live loop backfills
    only the last 24 hours). Rewriting an hour replaces its points."""
    import time

    from analysis.output_hours import HISTORY_CHUNK_HOURS, write_hours
    from shopfloor.store import Store

    plant_model = load_plant(plant)
    start, end = parse_time(time_from, "--from"), parse_time(time_to, "--to")
    if start >= end:
        raise ConfigError(f"--from ({time_from}) must be before --to ({time_to})")
    lines = line or [item.id for item in plant_model.lines]
    for line_id in lines:
        plant_model.get_line(line_id)
    with Store(influx_url, influx_db, timeout_s=600) as store:  # a day of a big line per query
        for line_id in lines:
            written = write_hours(store, plant_model, line_id, start, end, int(time.time() * 1000),
                                  chunk_hours=HISTORY_CHUNK_HOURS)
            typer.echo(f"{line_id}: {written} station hours written")


@analysis_app.command("serve")
def serve(
    ctx: typer.Context,
    plant: Path = PlantFile,
    config: Path = typer.Option(None, "--config", help="Settings file (see analysis/analysis.sample.toml)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8080, "--port"),
    plan: Path = typer.Option(None, "--plan", help="The plan file, for pages that show targets."),
    influx_url: str = typer.Option(None, "--influx-url", envvar="SHOPFLOOR_INFLUX_URL"),
    influx_db: str = typer.Option(None, "--influx-db", envvar="SHOPFLOOR_INFLUX_DB"),
    mqtt_url: str = typer.Option(None, "--mqtt-url", envvar="SHOPFLOOR_MQTT_URL",
                                 help="Broker the alerts are published to."),
    webhook: list[str] = typer.Option([], "--webhook", help="POST every alert to this URL (repeatable; "
                                      "added to the settings file's)."),
    interval: float = typer.Option(None, "--interval", help="Seconds between live detector ticks "
                                   "(overrides the settings file)."),
    window: float = typer.Option(None, "--window", help="Timeline window of the live detector, seconds "
                                 "(overrides the settings file)."),
    no_live: bool = typer.Option(False, "--no-live", help="Only serve the API; run no detector loop "
                                 "(another instance owns the lines)."),
    no_alerts: bool = typer.Option(False, "--no-alerts", help="Run the detector but send no alerts."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log every alert and tick problem."),
) -> None:
    """Run the analysis service: the live detector of every line and its HTTP API (docs at /docs)."""
    import logging

    import uvicorn

    from analysis.config import load_settings
    from analysis.service import ANALYSIS_ROUTERS, create_app
    from shopfloor.settings import influx_db as resolve_db
    from shopfloor.settings import influx_url as resolve_url
    from shopfloor.settings import mqtt_endpoint, without_userinfo
    from shopfloor.store import Store

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = load_settings(config)
    plant_model = load_plant(plant)
    plan_model = None
    if plan is not None:
        from shopfloor.plan import load_plan

        plan_model = load_plan(plan)
    url, database = resolve_url(influx_url), resolve_db(influx_db)
    if not no_alerts and not no_live:
        mqtt_endpoint(mqtt_url)  # a malformed URL is a one-line error now, not in the loop
    for interval_or_window, flag in ((interval, "--interval"), (window, "--window")):
        if interval_or_window is not None and interval_or_window <= 0:
            raise ConfigError(f"{flag} must be a positive number of seconds")
    live = None if no_live else settings.live_config(interval, window)
    composition = ctx.obj if isinstance(ctx.obj, dict) else {}
    routers = (*ANALYSIS_ROUTERS, *composition.get("service_routers", ()))
    app = create_app(plant_model, lambda: Store(url, database), live=live, mqtt_url=mqtt_url,
                     webhooks=(*settings.alerts.webhooks, *webhook), alerts=not no_alerts, plan=plan_model,
                     first_shift=settings.shifts.first_start, shift_hours=settings.shifts.hours,
                     routers=routers)
    shown = without_userinfo(url)  # a password in the URL's userinfo is never printed
    typer.echo(f"analysis service on http://{host}:{port} (API docs at /docs), InfluxDB {shown} "
               f"db {database}")
    uvicorn.run(app, host=host, port=port, log_level="info" if verbose else "warning")
