"""The local real stack: Mosquitto and InfluxDB from Debian's packages as child processes.

`shopfloor stack up` starts both on free loopback ports with the project's own configuration
(shopfloor/servers/*.conf) and keeps their PIDs, ports and data in one state folder; `down` stops
them by PID. The tests use the same `Server` class, so what CI starts is what a developer starts.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template

import httpx
import orjson

from shopfloor.contract import (
    ALERTS_FILTER,
    RECEIPT_FILTER,
    REJECTED_TOPIC,
    STATUS_FILTER,
    TELEMETRY_FILTER,
    TOPIC_ROOT,
)
from shopfloor.errors import ShopfloorError

CONFIG_DIR = Path(__file__).parent / "servers"
DEFAULT_STATE_DIR = Path(os.environ.get("SHOPFLOOR_STACK_DIR", Path.home() / ".shopfloor" / "stack"))
BINARIES = {"mosquitto": ("mosquitto", "mosquitto"), "influxdb": ("influxd", "influxdb")}


class StackError(ShopfloorError):
    """A server that is missing, will not start or will not stop."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def find_binary(server: str) -> str:
    name, package = BINARIES[server]
    for folder in (None, "/usr/sbin", "/usr/bin", "/usr/local/sbin"):
        found = shutil.which(name, path=folder)
        if found:
            return found
    raise StackError(f"{name} is not installed: run `sudo apt-get install {package}` (Debian/Ubuntu)")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


@dataclass
class Server:
    """One server process on a loopback port with its data in `data_dir`."""

    kind: str  # "mosquitto" or "influxdb"
    data_dir: Path
    port: int
    rpc_port: int = 0
    pid: int | None = None
    # Extra broker lines (password_file, acl_file, a TLS listener) from shopfloor.security; when set,
    # anonymous clients are refused. Empty: the open loopback broker of the local demo and the tests.
    broker_auth: str = ""
    # Extra broker lines that bridge this (plant) broker to a central one (`bridge_config`); else empty.
    bridge: str = ""

    @property
    def url(self) -> str:
        scheme = "mqtt" if self.kind == "mosquitto" else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        template = Template((CONFIG_DIR / f"{self.kind}.conf").read_text())
        config = self.data_dir / f"{self.kind}.conf"
        config.write_text(template.substitute(port=self.port, rpc_port=self.rpc_port or free_port(),
                                              data_dir=self.data_dir, user=getpass.getuser(),
                                              allow_anonymous="false" if self.broker_auth else "true",
                                              broker_auth=self.broker_auth, bridge=self.bridge))
        os.chmod(config, 0o600)  # a bridge's remote_password is in it
        return config

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the server and wait until it answers; raise StackError with its log if it does not."""
        if pid_alive(self.pid):
            return
        binary = find_binary(self.kind)
        config = self._write_config()
        argv = [binary, "-c", str(config)] if self.kind == "mosquitto" else [binary, "-config", str(config)]
        with open(self.data_dir / f"{self.kind}.out", "ab") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        self.pid = process.pid
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(f"{self.kind} exited at start (code {process.returncode}): "
                                 f"{self._log_tail()}")
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        raise StackError(f"{self.kind} did not answer on port {self.port} within {timeout_s:.0f}s: "
                         f"{self._log_tail()}")

    def ready(self) -> bool:
        if self.kind == "influxdb":
            try:
                return httpx.get(f"{self.url}/ping", timeout=1.0).status_code == 204
            except httpx.HTTPError:
                return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop by PID: SIGTERM (the broker saves its sessions), then SIGKILL if it lingers."""
        self._signal(signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self._signal(signal.SIGKILL, 5.0)

    def _signal(self, signum: int, timeout_s: float) -> None:
        if not pid_alive(self.pid):
            self.pid = None
            return
        assert self.pid is not None
        os.kill(self.pid, signum)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            _reap(self.pid)
            if not pid_alive(self.pid):
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
            while pid_alive(self.pid):
                _reap(self.pid)
                time.sleep(0.05)
        self.pid = None

    def _log_tail(self) -> str:
        try:
            lines = (self.data_dir / f"{self.kind}.out").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(lines[-3:]) or "no output"

    def as_dict(self) -> dict:
        state = {"kind": self.kind, "data_dir": str(self.data_dir), "port": self.port,
                 "rpc_port": self.rpc_port, "pid": self.pid}
        if self.broker_auth:
            state["broker_auth"] = self.broker_auth
        if self.bridge:
            state["bridge"] = self.bridge
        return state


# What crosses a plant-to-central bridge (docs/DESIGN.md §4 and §8): the agents' telemetry and status go
# to the central broker, where the collectors are; the collectors' receipts and rejections and the
# analysis alerts come back to the plant broker, where the agents are. Only our own topics: a plant's
# Sparkplug or mapped JSON topics stay on the plant broker unless its bridge names them too.
BRIDGE_TOPICS = ((TELEMETRY_FILTER, "out"), (STATUS_FILTER, "out"), (RECEIPT_FILTER, "in"),
                 (REJECTED_TOPIC, "in"), (ALERTS_FILTER, "in"))


def bridge_topics(plant: str | None = None) -> list[tuple[str, str]]:
    """BRIDGE_TOPICS, or only one plant's share of them: the plant level of each pattern set to `plant`.

    A plant's bridge carries its own plant's topics and nothing else (what `shopfloor security init`
    allows its bridge credential on the central broker). A topic with no plant level (the collectors'
    `_rejected`, which holds every plant's rejections) is left out of a plant's share.
    """
    if plant is None:
        return list(BRIDGE_TOPICS)
    root = TOPIC_ROOT.split("/")
    scoped = []
    for pattern, direction in BRIDGE_TOPICS:
        levels = pattern.split("/")
        if levels[:len(root)] == root and len(levels) > len(root) + 1 and levels[len(root)] == "+":
            scoped.append(("/".join([*root, plant, *levels[len(root) + 1:]]), direction))
    return scoped


def bridge_config(remote_port: int, name: str, remote_host: str = "127.0.0.1",
                  restart_s: int = 1, *, plant: str | None = None, username: str | None = None,
                  password: str | None = None, cafile: str | Path | None = None) -> str:
    """The Mosquitto lines that bridge a plant broker to the central broker at `remote_host:remote_port`.

    Mosquitto's own bridge, QoS 1 both ways, with persistent sessions on both ends (`cleansession
    false`, `local_cleansession false`): while the link is cut the plant broker queues the telemetry for
    the bridge and the central broker queues the receipts, and both go over once it is back. A broker
    crash can still lose what it held in memory: the agent's receipts, not the bridge, make that whole
    (it resends what no collector receipted). `restart_s` is the first retry of a cut link (it backs off
    from there); `try_private` stops a message from coming back the way it went.

    Secured (`shopfloor security init --bridge`): `plant` narrows the topics to that plant's
    (`bridge_topics`), `username`/`password` log in to the central broker and `cafile` makes the link
    TLS, trusting that CA (a path on the plant broker's host); `remote_host` must then be a name or
    address in the server certificate.
    """
    lines = [f"connection {name}", f"address {remote_host}:{remote_port}", f"remote_clientid {name}",
             f"local_clientid {name}-local", "bridge_protocol_version mqttv311", "cleansession false",
             "local_cleansession false", "try_private true", "notifications false",
             f"restart_timeout {restart_s} 30", "keepalive_interval 10"]
    if username is not None:
        lines.append(f"remote_username {username}")
    if password is not None:
        lines.append(f"remote_password {password}")
    if cafile is not None:
        lines += [f"bridge_cafile {cafile}", "bridge_tls_version tlsv1.2"]
    lines += [f"topic {pattern} {direction} 1" for pattern, direction in bridge_topics(plant)]
    return "\n".join(lines)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


class Stack:
    """The broker and the database of one state folder."""

    def __init__(self, state_dir: Path | str = DEFAULT_STATE_DIR, broker_auth: str | None = None):
        """`broker_auth`: Mosquitto lines from `shopfloor.security.broker_config` for a secured broker."""
        self.state_dir = Path(state_dir)
        self.state_file = self.state_dir / "stack.json"
        self.mosquitto, self.influxdb = self._load()
        if broker_auth is not None:
            self.mosquitto.broker_auth = broker_auth

    def _load(self) -> tuple[Server, Server]:
        if self.state_file.exists():
            try:
                state = orjson.loads(self.state_file.read_bytes())
                return (Server(**{**state["mosquitto"], "data_dir": Path(state["mosquitto"]["data_dir"])}),
                        Server(**{**state["influxdb"], "data_dir": Path(state["influxdb"]["data_dir"])}))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise StackError(f"{self.state_file} is damaged: stop any servers by hand and delete it"
                                 ) from None
        return (Server("mosquitto", self.state_dir / "mosquitto", free_port()),
                Server("influxdb", self.state_dir / "influxdb", free_port(), rpc_port=free_port()))

    def _save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = {"mosquitto": self.mosquitto.as_dict(), "influxdb": self.influxdb.as_dict()}
        self.state_file.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))

    def up(self) -> None:
        for server in (self.mosquitto, self.influxdb):
            find_binary(server.kind)
        try:
            for server in (self.mosquitto, self.influxdb):
                server.start()
        finally:
            self._save()

    def down(self) -> None:
        for server in (self.mosquitto, self.influxdb):
            server.stop()
        self._save()

    def status(self) -> dict:
        return {
            "mqtt_url": self.mosquitto.url,
            "influx_url": self.influxdb.url,
            "state_dir": str(self.state_dir),
            "mosquitto": {"pid": self.mosquitto.pid, "running": pid_alive(self.mosquitto.pid)},
            "influxdb": {"pid": self.influxdb.pid, "running": pid_alive(self.influxdb.pid)},
        }

    def env(self) -> str:
        return (f"export SHOPFLOOR_MQTT_URL={self.mosquitto.url}\n"
                f"export SHOPFLOOR_INFLUX_URL={self.influxdb.url}\n")
