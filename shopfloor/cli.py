"""The one entry point, `shopfloor` (docs/DESIGN.md §7): each folder brings its own sub-commands.

Errors a user can fix (`ShopfloorError`) print as one line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson
import typer

from shopfloor.demo import DEFAULT_DEMO_DIR, run_demo
from shopfloor.errors import ShopfloorError
from shopfloor.stack import DEFAULT_STATE_DIR, Stack

app = typer.Typer(help="Shop-floor constraint monitor.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
stack_app = typer.Typer(help="The local real broker and InfluxDB (child processes on loopback).",
                        no_args_is_help=True)
app.add_typer(stack_app, name="stack")

StateDir = typer.Option(DEFAULT_STATE_DIR, "--dir", envvar="SHOPFLOOR_STACK_DIR",
                        help="Folder holding the stack's PIDs, ports, configs and data.")


@stack_app.command("up")
def stack_up(state_dir: str = StateDir) -> None:
    """Start Mosquitto and InfluxDB and wait until both answer."""
    stack = Stack(state_dir)
    stack.up()
    typer.echo(f"mosquitto  {stack.mosquitto.url}  (pid {stack.mosquitto.pid})")
    typer.echo(f"influxdb   {stack.influxdb.url}  (pid {stack.influxdb.pid})")
    typer.echo(f'point every command at it:  eval "$(shopfloor stack env --dir {stack.state_dir})"')


@stack_app.command("down")
def stack_down(state_dir: str = StateDir) -> None:
    """Stop both servers by PID; their data stays in the state folder."""
    Stack(state_dir).down()
    typer.echo("stack stopped")


@stack_app.command("status")
def stack_status(state_dir: str = StateDir, json: bool = typer.Option(False, "--json")) -> None:
    """Show the endpoints and whether each server runs."""
    status = Stack(state_dir).status()
    if json:
        typer.echo(orjson.dumps(status).decode())
        return
    for name in ("mosquitto", "influxdb"):
        state = "running" if status[name]["running"] else "stopped"
        url = status["mqtt_url" if name == "mosquitto" else "influx_url"]
        typer.echo(f"{name:10} {url:28} {state} (pid {status[name]['pid']})")


@stack_app.command("env")
def stack_env(state_dir: str = StateDir) -> None:
    """Print `export` lines; `eval "$(shopfloor stack env)"` points later commands at the stack."""
    typer.echo(Stack(state_dir).env(), nl=False)


@app.command("demo")
def demo(
    state_dir: str = typer.Option(str(DEFAULT_DEMO_DIR), "--dir", help="Folder of the demo's stack, logs."),
    port: int = typer.Option(None, "--port", help="Port of the huddle page and API (default: a free one)."),
    seconds: float = typer.Option(None, "--seconds", help="Stop after this long (default: Ctrl-C)."),
    speed: float = typer.Option(1.0, "--speed", help="Times real time for the simulated line."),
) -> None:
    """The whole system on this machine: stack, a simulated line, collector, analysis, huddle page."""
    run_demo(Path(state_dir), port, seconds, speed, announce=typer.echo)


# Each folder of the data path owns its commands: name -> "module:typer app".
SUBCOMMANDS = {
    "agent": "edge_agent.cli:app",
    "collector": "collector.cli:app",
    "sim": "simulators.cli:app",
    "analysis": "analysis.cli:analysis_app",
    "analyze": "analysis.cli:analyze_app",
    "targets": "analysis.targets_cli:app",
    "losses": "analysis.losses_cli:app",
    "dashboards": "dashboards.cli:app",
    "security": "shopfloor.security_cli:app",
}


def _mount_subcommands(argv: Sequence[str] = ()) -> None:
    """Mount the sub-commands; only the one named in `argv` when it names one, else all.

    Why: importing every folder costs a line PC's agent numpy and FastAPI it never uses (about 20 MB
    and a second of start-up); `shopfloor --help` still mounts them all.
    """
    named = next((arg for arg in argv if not arg.startswith("-")), None)
    mounted = {group.name for group in app.registered_groups}
    for name, target in SUBCOMMANDS.items():
        if name in mounted or (named in SUBCOMMANDS and name != named):
            continue
        module, attribute = target.split(":")
        app.add_typer(getattr(importlib.import_module(module), attribute), name=name)


# The composition the entry point hands every sub-command (click's `ctx.obj`): the analysis service's
# routers from layers above analysis (the huddle page lives in dashboards/), named so that analysis
# never imports them.
COMPOSITION = {"service_routers": ("dashboards.huddle_api:huddle_router",)}


def run_cli(typer_app: typer.Typer, prog_name: str | None = None) -> None:
    """Run a typer app; an error the user can fix becomes one red line and exit code 2, no traceback.

    Click reports usage errors itself (exit 2); everything else comes back here.
    """
    try:
        typer_app(prog_name=prog_name, obj=COMPOSITION)
    except ShopfloorError as error:
        typer.secho(f"error: {error}", err=True, fg="red")
        sys.exit(2)
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        typer.secho(f"error: {error.strerror or error}{where}", err=True, fg="red")
        sys.exit(2)


def main() -> None:
    _mount_subcommands(sys.argv[1:])
    run_cli(app, "shopfloor")
