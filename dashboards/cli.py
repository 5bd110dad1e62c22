"""`shopfloor dashboards build` / `push`: the Grafana boards from code (docs/DESIGN.md §7)."""

from __future__ import annotations

from pathlib import Path

import typer

from dashboards.config import DEFAULT_INFLUX_URL_IN_GRAFANA, load_config

app = typer.Typer(help="Grafana boards: write the provisioning files, or push them to a Grafana.",
                  no_args_is_help=True)

PlantFile = typer.Option(..., "--plant", envvar="SHOPFLOOR_PLANT", exists=False,
                         help="plant.toml: the lines in flow order (each line's last station is its output).")
PlanFile = typer.Option(None, "--plan", envvar="SHOPFLOOR_PLAN",
                        help="plan.toml: its shifts give the huddle's shift links and hour alignment.")
InfluxUrl = typer.Option(DEFAULT_INFLUX_URL_IN_GRAFANA, "--influx-url",
                         help="InfluxDB as GRAFANA reaches it (in compose: the service name).")
Database = typer.Option("shopfloor", "--database", envvar="SHOPFLOOR_INFLUX_DB", help="InfluxDB database.")


@app.command("build")
def build_command(
    plant: Path = PlantFile,
    plan: Path | None = PlanFile,
    out: Path = typer.Option(Path("grafana-provisioning"), "--out",
                             help="Folder to mount as /etc/grafana/provisioning."),
    influx_url: str = InfluxUrl,
    database: str = Database,
    boards_path: str = typer.Option("/etc/grafana/provisioning/dashboards/shopfloor", "--boards-path",
                                    help="Where Grafana sees the boards' folder (the provider's path)."),
) -> None:
    """Write the data source, the dashboard provider and the boards' JSON into OUT."""
    from dashboards.provisioning import build

    config = load_config(plant, plan, influx_url=influx_url, database=database, boards_path=boards_path)
    for path in build(out, config):
        typer.echo(str(path))


@app.command("push")
def push_command(
    url: str = typer.Option(..., "--url", envvar="GRAFANA_URL", help="Grafana, e.g. http://127.0.0.1:3000"),
    token: str = typer.Option("", "--token", envvar="GRAFANA_TOKEN",
                              help="A service account token with the Editor role."),
    plant: Path = PlantFile,
    plan: Path | None = PlanFile,
    influx_url: str = InfluxUrl,
    database: str = Database,
) -> None:
    """Upload the data source and the boards (the same JSON `build` writes) through Grafana's HTTP API."""
    from dashboards.push import push

    config = load_config(plant, plan, influx_url=influx_url, database=database)
    result = push(url, token, config)
    typer.echo(f"pushed {', '.join(result.boards)} into folder {result.folder_uid} "
               f"with data source {result.datasource_uid}")
