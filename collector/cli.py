"""`shopfloor collector run`: the collector in the foreground until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

import orjson
import typer

from collector.check import as_dicts, check
from collector.collector import Collector
from collector.config import load_config
from shopfloor.plant import load_plant
from shopfloor.settings import without_userinfo
from shopfloor.store import Store

app = typer.Typer(help="The collector: MQTT telemetry into InfluxDB, acked only after the write.",
                  no_args_is_help=True)


@app.command("run")
def run(
    config: Path = typer.Option(None, "--config", help="collector.toml (see collector.example.toml)."),
    mqtt_url: str = typer.Option(None, "--mqtt-url", help="Broker URL; else SHOPFLOOR_MQTT_URL."),
    influx_url: str = typer.Option(None, "--influx-url", help="InfluxDB URL; else SHOPFLOOR_INFLUX_URL."),
    influx_db: str = typer.Option(None, "--influx-db", help="Database; else SHOPFLOOR_INFLUX_DB."),
    client_id: str = typer.Option(None, "--client-id", help="Unique per collector: names its session."),
    group: str = typer.Option(None, "--group", help="Shared-subscription group that splits the load."),
    batch_samples: int = typer.Option(None, "--batch-samples", help="Write once this many samples wait."),
    batch_wait_s: float = typer.Option(None, "--batch-wait", help="Or once the oldest waited this long."),
    session_expiry_s: int = typer.Option(None, "--session-expiry",
                                         help="Seconds the broker keeps this collector's session."),
    http_port: int = typer.Option(None, "--http-port", help="Serve /healthz and /metrics on this port."),
    plant: Path = typer.Option(None, "--plant", help="Plant file mapping Sparkplug B and JSON topics "
                               "to stations (collector/README.md)."),
    host_id: str = typer.Option(None, "--host-id", help="Sparkplug primary host id (STATE topic)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every rejected message."),
) -> None:
    """Run the collector until SIGTERM or Ctrl-C; it flushes and acks what it holds before it exits."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("shopfloor.collector").setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = load_config(config, mqtt_url=mqtt_url, influx_url=influx_url, influx_db=influx_db,
                           client_id=client_id, group=group, batch_samples=batch_samples,
                           batch_wait_s=batch_wait_s, session_expiry_s=session_expiry_s, http_port=http_port,
                           plant=str(plant) if plant else None, host_id=host_id)
    collector = Collector(settings)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    collector.start()
    typer.echo(f"collector {settings.client_id}: {settings.subscription} -> "
               f"{without_userinfo(settings.influx_url or '')}/{settings.influx_db}", err=True)
    done.wait()
    collector.stop()


@app.command("check")
def check_command(
    plant: Path = typer.Option(..., "--plant", help="The plant file, with its mapped sources."),
    influx_url: str = typer.Option(None, "--influx-url", help="InfluxDB URL; else SHOPFLOOR_INFLUX_URL."),
    influx_db: str = typer.Option(None, "--influx-db", help="Database; else SHOPFLOOR_INFLUX_DB."),
    json: bool = typer.Option(False, "--json", help="Print one JSON list."),
) -> None:
    """Every station's mapped source and whether data arrived for it in the last minute (exit 1 if not)."""
    model = load_plant(plant)
    with Store(influx_url, influx_db) as store:
        checks = check(model, store)
    if json:
        typer.echo(orjson.dumps(as_dicts(checks)).decode())
    else:
        for c in checks:
            age = "no data" if c.last_sample_ms is None else (
                f"last sample {(time.time() * 1000 - c.last_sample_ms) / 1000:.0f} s ago")
            event = f", source {c.source_event}" if c.source_event else ""
            typer.echo(f"{'ok ' if c.fresh else 'OLD'} {c.line}/{c.station}: {c.source}; {age}{event}")
    if not all(c.fresh for c in checks):
        raise typer.Exit(1)
