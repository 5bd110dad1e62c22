"""`shopfloor collector run`: the collector in the foreground until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import typer

from collector.collector import Collector
from collector.config import load_config
from shopfloor.settings import without_userinfo

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
                           batch_wait_s=batch_wait_s, session_expiry_s=session_expiry_s,
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
