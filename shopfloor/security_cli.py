"""`shopfloor security init | up | token`: broker credentials and ACLs from plant files, a secured stack.

Secrets are written to files of mode 0600 and never printed: the commands print where they are.
"""

from __future__ import annotations

from pathlib import Path

import typer

from shopfloor import security
from shopfloor.plant import load_plant
from shopfloor.settings import mqtt_endpoint
from shopfloor.stack import DEFAULT_STATE_DIR, Stack, free_port

app = typer.Typer(help="Broker credentials and topic ACLs from the plant file; API tokens.",
                  no_args_is_help=True)

AuthDir = typer.Option(..., "--out", "--auth", help="Folder for passwd, acl, credentials.toml (0600), "
                       "mosquitto-auth.conf and the TLS files.")


@app.command("init")
def init(
    plant: list[Path] = typer.Option(..., "--plant", help="plant.toml (repeat for several plants on one "
                                     "broker)."),
    out: Path = AuthDir,
    broker_url: str = typer.Option("mqtt://127.0.0.1:1883", "--broker-url",
                                   help="Where clients reach the broker; goes into each mqtt_url."),
    tls: bool = typer.Option(False, "--tls", help="Also make a private CA and server certificate (openssl) "
                             "and a TLS listener in mosquitto-auth.conf."),
    hostname: list[str] = typer.Option(["localhost"], "--hostname", help="Broker host names for the TLS "
                                       "certificate (repeatable)."),
    rotate: bool = typer.Option(False, "--rotate", help="New passwords, group and token for everyone; "
                                "default keeps those already in the folder."),
    bridge: bool = typer.Option(False, "--bridge", help="Also a bridge credential per plant on the central "
                                "broker (--broker-url) and bridge-PLANT.conf (0600), the bridge section "
                                "for that plant's broker, over TLS (implies --tls)."),
    bridge_cafile: str = typer.Option("", "--bridge-cafile", help="Where ca.crt will be on the plant "
                                      "brokers' hosts (bridge_cafile); default its path in --out."),
) -> None:
    """Credentials: one per agent (its stations' telemetry and status only), collector, analysis, monitor."""
    mqtt_endpoint(broker_url)  # a malformed URL fails before anything is written
    plants = [load_plant(path) for path in plant]
    credentials = security.init(plants, out, broker_url, tls=tls, hostnames=hostname, rotate=rotate,
                                source=", ".join(str(path) for path in plant), bridges=bridge,
                                bridge_cafile=bridge_cafile or None)
    agents = sum(1 for user in credentials.users if user.role == "agent")
    bridges = [user.plant for user in credentials.users if user.role == "bridge"]
    typer.echo(f"{agents} agent credentials + collector, analysis, monitor"
               f"{f' + {len(bridges)} plant bridges' if bridges else ''} -> {out}/")
    typer.echo(f"  broker:  {out / security.PASSWORD_FILE} (mosquitto_passwd), {out / security.ACL_FILE}, "
               f"{out / security.BROKER_SNIPPET}{' + TLS files' if tls or bridge else ''}")
    for plant_id in bridges:
        typer.echo(f"  plant {plant_id}'s broker: {out / security.BRIDGE_FILE.format(plant=plant_id)} "
                   f"(mode 0600: add it to that broker's config, with ca.crt where its bridge_cafile says)")
    typer.echo(f"  secrets: {out / security.CREDENTIALS_FILE} (mode 0600): each agent's mqtt_url, the "
               f"collectors' group, the API token")


@app.command("up")
def up(
    auth: Path = AuthDir,
    state_dir: Path = typer.Option(DEFAULT_STATE_DIR, "--dir", envvar="SHOPFLOOR_STACK_DIR",
                                   help="The stack's state folder (as for `shopfloor stack`)."),
    tls: bool = typer.Option(False, "--tls", help="Add a TLS listener on a free loopback port (needs init "
                             "--tls)."),
) -> None:
    """Start the local stack with anonymous access off and the generated password file and ACL."""
    security.load_credentials(auth)  # fails with a one-line hint when init has not run
    if tls and not (auth / "server.crt").exists():
        raise security.SecurityError(f"{auth} has no server.crt: run `shopfloor security init --tls` first")
    tls_port = free_port() if tls else None
    stack = Stack(state_dir, broker_auth=security.broker_config(auth, tls_port, anonymous_line=False))
    stack.up()
    typer.echo(f"mosquitto  {stack.mosquitto.url}  (pid {stack.mosquitto.pid}), anonymous access off")
    if tls_port:
        typer.echo(f"           mqtts://localhost:{tls_port}  (trust {auth / 'ca.crt'})")
    typer.echo(f"influxdb   {stack.influxdb.url}  (pid {stack.influxdb.pid})")
    typer.echo(f"credentials: {auth / security.CREDENTIALS_FILE}; stop with `shopfloor stack down --dir "
               f"{state_dir}`")


@app.command("token")
def token() -> None:
    """Print a new random API token (set it as SHOPFLOOR_API_TOKEN on the analysis service)."""
    typer.echo(security.new_token())
