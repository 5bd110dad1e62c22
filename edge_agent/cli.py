"""`shopfloor agent run | check | install`: the edge agent's commands."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import typer

from edge_agent.config import load_config
from shopfloor.errors import ShopfloorError

app = typer.Typer(help="The edge agent: station counters -> disk outbox -> MQTT.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

ConfigOption = typer.Option(..., "--config", "-c", help="agent.toml (see edge_agent/agent.example.toml).")


@app.command("run")
def run(config: Path = ConfigOption,
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Log connects and source changes."),
        ) -> None:
    """Run the agent until SIGTERM or Ctrl-C; unsent samples stay in the outbox for the next start."""
    from edge_agent.agent import Agent

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent = Agent(load_config(config))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: agent.stop())
    typer.echo(f"agent {agent.config.agent}: {len(agent.pollers)} stations -> {agent.link.endpoint.display} "
               f"(outbox {agent.config.outbox}, {agent.outbox.backlog} samples waiting)", err=True)
    agent.run()


@app.command("check")
def check(config: Path = ConfigOption,
          timeout_s: float = typer.Option(5.0, "--timeout", help="Seconds to wait for each server.")) -> None:
    """Validate the config, the outbox path, the broker and every station's source: one line per problem."""
    from edge_agent.check import check_agent

    problems = 0
    for ok, line in check_agent(config, timeout_s):
        if ok:
            typer.echo(f"ok       {line}")
        else:
            problems += 1
            typer.secho(f"problem  {line}", fg="red")
    if problems:
        typer.echo(f"{problems} problem(s)", err=True)
        raise typer.Exit(2)


@app.command("install")
def install(config: Path = ConfigOption,
            systemd: bool = typer.Option(False, "--systemd", help="Write a systemd unit file."),
            unit_dir: Path = typer.Option(Path("/etc/systemd/system"), "--unit-dir",
                                          help="Where the unit file goes."),
            user: str = typer.Option(None, "--user", help="Run as this user (default: the current one)."),
            ) -> None:
    """Install the agent as a service that starts at boot and restarts after a crash."""
    from edge_agent.systemd import write_unit

    if not systemd:
        raise ShopfloorError("say how to install: --systemd (on Windows see edge_agent/README.md)")
    load_config(config)  # never install a unit for a config that cannot start
    path = write_unit(config, unit_dir, user)
    typer.echo(f"wrote {path}")
    typer.echo(f"start it:  sudo systemctl daemon-reload && sudo systemctl enable --now {path.name}")
