"""Who may do what: broker credentials and topic ACLs made from the plant file, and the small checks
the services share (API tokens, URLs that never show a secret in a log line).

Why generated, not written by hand: the plant file already says which agent publishes which station
(`agent = "pc-3"` per station, default an agent per station named after it), so the ACL follows it
and cannot drift. One credential per agent (per line: an agent process serves one line):

- agent `PLANT.LINE.AGENT`: publish its own stations' telemetry and its own retained status (which is
  also its MQTT will), nothing else; it reads only its own stations' receipts (`…/STATION/stored`).
- `collector`: read all telemetry, publish rejects to `shopfloor/v1/_rejected` and receipts.
- `analysis`: publish the alerts of the plants' lines.
- `monitor`: read everything under `shopfloor/v1/` (operators, `mosquitto_sub`, boards that listen).
- `bridge.PLANT` (with `--bridge`): a plant broker's Mosquitto bridge logging in to the central broker:
  publish that plant's share of `shopfloor.stack.BRIDGE_TOPICS` going out (telemetry, status), read its
  share coming in (receipts, alerts); no other plant's. `bridge-PLANT.conf` (0600) is the bridge section
  for that plant's broker: these credentials, a secret client id and TLS trusting the generated CA.
  The bridge needs no credential on the plant broker: Mosquitto 2.0.11 does not apply its acl_file to
  its own bridge (tests/test_bridge_security.py runs the plant broker with the generated ACL).

Passwords are hashed by Mosquitto's own `mosquitto_passwd` (PBKDF2-SHA512), never here, and the
plain passwords go only to one file of mode 0600 (`credentials.toml`) for distribution.

Measured on Mosquitto 2.0.11 (tests/test_security.py keeps it checked): the `acl_file` is applied
when a client publishes and when a message is delivered, but NOT when it subscribes: any
credential may join any shared subscription group (`$share/GROUP/...`), and the messages the broker
hands to a member without read access are dropped, not passed to another member. An agent that
joined the collectors' group would silently eat a share of the telemetry. Nor is a client id bound
to a user: any credential that connects with the collector's client id takes over its persistent
session, and the queued telemetry, which it may not read, is dropped. So the collectors' group name
and client id are generated here as secrets, handed out with the collector credential only (binding
client ids to users needs Mosquitto's dynamic-security plugin or a broker such as EMQX or HiveMQ).
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import shutil
import subprocess
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import orjson

from shopfloor.contract import (
    RECEIPT_FILTER,
    REJECTED_TOPIC,
    TELEMETRY_FILTER,
    TOPIC_ROOT,
    StationKey,
    alerts_topic,
    json_topic_filter,
    receipt_topic,
    sparkplug_command_topic,
    sparkplug_filter,
    sparkplug_state_topic,
    status_topic,
    telemetry_topic,
)
from shopfloor.errors import ConfigError, ShopfloorError
from shopfloor.plant import Plant
from shopfloor.stack import bridge_config, bridge_topics

API_TOKEN_ENV = "SHOPFLOOR_API_TOKEN"
PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
CREDENTIALS_FILE = "credentials.toml"
BROKER_SNIPPET = "mosquitto-auth.conf"
TLS_FILES = ("ca.crt", "ca.key", "server.crt", "server.key")
SERVICE_USERS = ("collector", "analysis", "monitor")
BRIDGE_FILE = "bridge-{plant}.conf"


class SecurityError(ShopfloorError):
    """A credential set that cannot be generated or used; the message says how to fix it."""


# --- who may do what ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """One broker credential and the topics it may publish (`write`) and receive (`read`)."""

    username: str
    role: str  # agent | collector | analysis | monitor | bridge
    write: tuple[str, ...] = ()
    read: tuple[str, ...] = ()
    plant: str = ""
    line: str = ""
    agent: str = ""
    stations: tuple[str, ...] = ()


def agent_username(plant: str, line: str, agent: str) -> str:
    """An agent's broker user name; identifiers never hold a dot, so names of different lines never clash."""
    return f"{plant}.{line}.{agent}"


def bridge_username(plant: str) -> str:
    """A plant bridge's user name on the central broker; it cannot clash with `PLANT.LINE.AGENT`."""
    return f"bridge.{plant}"


def bridge_principal(plant: str) -> Principal:
    """The plant's share of BRIDGE_TOPICS: what goes out it may publish, what comes in it may read."""
    topics = bridge_topics(plant)
    return Principal(bridge_username(plant), "bridge", plant=plant,
                     write=tuple(pattern for pattern, direction in topics if direction == "out"),
                     read=tuple(pattern for pattern, direction in topics if direction == "in"))


def principals(plants: Iterable[Plant], bridges: bool = False) -> list[Principal]:
    """Every credential the plants need: one per agent of each line, the three services, then (with
    `bridges`) one per plant for its broker's bridge to the central broker."""
    plants = list(plants)
    found: list[Principal] = []
    alert_topics: list[str] = []
    for plant in plants:
        for line in plant.lines:
            by_agent: dict[str, list[str]] = {}
            for station in line.stations:
                by_agent.setdefault(station.agent_id, []).append(station.id)
            for agent, stations in by_agent.items():
                keys = [StationKey(plant.plant, line.id, s) for s in stations]
                found.append(Principal(
                    agent_username(plant.plant, line.id, agent), "agent",
                    write=(*map(telemetry_topic, keys), status_topic(plant.plant, line.id, agent)),
                    read=tuple(map(receipt_topic, keys)),
                    plant=plant.plant, line=line.id, agent=agent, stations=tuple(stations)))
            alert_topics.append(alerts_topic(plant.plant, line.id))
    names = [p.username for p in found]
    if len(set(names)) != len(names):
        raise SecurityError(f"a plant id is given twice: agent credentials {sorted(names)} repeat")
    # the plant's own MQTT network (issue 15): the collector reads the mapped Sparkplug groups and JSON
    # topics, asks edge nodes for rebirths and publishes its Sparkplug host STATE
    mapped_read, mapped_write = set(), set()
    for plant in plants:
        mapped_read |= {json_topic_filter(template.topic) for template in plant.json_topic}
        mapped_read |= {json_topic_filter(topic) for template in plant.json_value
                        for topic in template.field_topics.values()}
        for source in (s.sparkplug for line in plant.lines for s in line.stations if s.sparkplug):
            mapped_read.add(sparkplug_filter(source.group))
            mapped_write |= {sparkplug_command_topic(source.group, source.node), sparkplug_state_topic("#")}
    found.append(Principal("collector", "collector",
                           write=(REJECTED_TOPIC, RECEIPT_FILTER, *sorted(mapped_write)),
                           read=(TELEMETRY_FILTER, *sorted(mapped_read))))
    found.append(Principal("analysis", "analysis", write=tuple(alert_topics)))
    found.append(Principal("monitor", "monitor", read=(f"{TOPIC_ROOT}/#",)))
    if bridges:
        found += [bridge_principal(plant.plant) for plant in plants]
    return found


def acl_text(users: Iterable[Principal], source: str = "the plant file") -> str:
    """The Mosquitto acl_file: one `user` block per credential; nothing at all for anonymous clients."""
    lines = [f"# Generated by `shopfloor security init` from {source}: regenerate, do not edit.",
             "# Mosquitto checks these when a client publishes and when a message is delivered to it.",
             ""]
    for user in users:
        lines.append(f"user {user.username}")
        lines += [f"topic write {topic}" for topic in user.write]
        lines += [f"topic read {topic}" for topic in user.read]
        lines.append("")
    return "\n".join(lines)


# --- the files for the broker and for distribution --------------------------------------------------


@dataclass
class Credentials:
    """What `init` wrote: user -> password, the collectors' secret group, the API token, the broker URL."""

    passwords: dict[str, str]
    group: str
    api_token: str
    broker_url: str
    users: list[Principal] = field(default_factory=list)
    collector_client_id: str = field(default_factory=lambda: f"collector-{secrets.token_hex(8)}")
    # plant -> its bridge's client id on the central broker: secret, as the collectors' (module docstring)
    bridge_client_ids: dict[str, str] = field(default_factory=dict)

    def bridge_client_id(self, plant: str) -> str:
        """The plant bridge's client id, made once (a re-run keeps it, so the central session stays)."""
        return self.bridge_client_ids.setdefault(plant, f"bridge-{plant}-{secrets.token_hex(8)}")

    def url(self, username: str, broker_url: str | None = None) -> str:
        """`mqtt://user:password@host:port` for one credential (a secret: never log it)."""
        parts = urlsplit(broker_url or self.broker_url)
        host = parts.netloc.rsplit("@", 1)[-1]
        secret = quote(self.passwords[username], safe="")
        return f"{parts.scheme}://{quote(username, safe='')}:{secret}@{host}"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (mode 0600 from the moment it exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT


def hash_password_file(path: Path, passwords: dict[str, str]) -> None:
    """The broker's password file, hashed by `mosquitto_passwd -U` (the plain text never leaves 0600)."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise SecurityError("mosquitto_passwd is not installed: run `sudo apt-get install mosquitto`")
    write_private(path, "".join(f"{user}:{password}\n" for user, password in passwords.items()))
    done = subprocess.run([tool, "-U", str(path)], capture_output=True, text=True, check=False)
    hashed = path.read_text().splitlines()
    if done.returncode != 0 or len(hashed) != len(passwords) or not all("$7$" in h for h in hashed):
        path.unlink(missing_ok=True)
        raise SecurityError(f"mosquitto_passwd could not hash {path}: {done.stderr.strip() or 'no output'}")


def _toml_string(value: str) -> str:
    return orjson.dumps(value).decode()  # a JSON string is a valid TOML basic string


def credentials_text(credentials: Credentials) -> str:
    lines = ["# Broker credentials and the analysis API token, generated by `shopfloor security init`.",
             "# SECRET (mode 0600): hand each agent only its own mqtt_url, e.g. as [mqtt] url in agent.toml.",
             f"broker_url = {_toml_string(credentials.broker_url)}",
             f"api_token = {_toml_string(credentials.api_token)}  # the analysis SHOPFLOOR_API_TOKEN",
             f"collector_group = {_toml_string(credentials.group)}  # the collectors' --group: secret",
             f"collector_client_id = {_toml_string(credentials.collector_client_id)}  # --client-id (add "
             f"-2, -3 for more collectors): secret",
             ""]
    for user in credentials.users:
        lines.append("[[credential]]")
        lines.append(f"username = {_toml_string(user.username)}")
        lines.append(f"role = {_toml_string(user.role)}")
        if user.role == "agent":
            lines.append(f"plant = {_toml_string(user.plant)}")
            lines.append(f"line = {_toml_string(user.line)}")
            lines.append(f"agent = {_toml_string(user.agent)}")
            lines.append(f"stations = {orjson.dumps(list(user.stations)).decode()}")
        if user.role == "bridge":
            lines.append(f"plant = {_toml_string(user.plant)}")
            lines.append(f"client_id = {_toml_string(credentials.bridge_client_id(user.plant))}")
        lines.append(f"password = {_toml_string(credentials.passwords[user.username])}")
        lines.append(f"mqtt_url = {_toml_string(credentials.url(user.username))}")
        lines.append("")
    return "\n".join(lines)


def load_credentials(folder: str | Path) -> Credentials:
    """Read `credentials.toml` back (to reuse passwords on a re-run, or to hand them to a test)."""
    path = Path(folder) / CREDENTIALS_FILE
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SecurityError(f"{path} does not exist: run `shopfloor security init` first") from None
    except tomllib.TOMLDecodeError as error:
        raise SecurityError(f"{path} is not valid TOML ({error}): delete it and run init again") from None
    try:
        credentials = Credentials({c["username"]: c["password"] for c in document.get("credential", [])},
                                  document["collector_group"], document["api_token"], document["broker_url"])
        if "collector_client_id" in document:
            credentials.collector_client_id = document["collector_client_id"]
        credentials.bridge_client_ids = {c["plant"]: c["client_id"] for c in document.get("credential", [])
                                         if c.get("role") == "bridge"}
        return credentials
    except KeyError as error:
        raise SecurityError(f"{path} lacks {error}: delete it and run init again") from None


def broker_config(folder: str | Path, tls_port: int | None = None, bind: str = "127.0.0.1",
                  anonymous_line: bool = True) -> str:
    """Mosquitto lines that switch authentication on: password file, ACL, and optionally a TLS listener.

    Mosquitto applies password_file and acl_file to every listener (per_listener_settings is off).
    `anonymous_line=False` leaves out `allow_anonymous false` for a config that sets it already.
    """
    folder = Path(folder).resolve()
    lines = ["# Generated by `shopfloor security init`: no anonymous clients, one credential each."]
    if anonymous_line:
        lines.append("allow_anonymous false")
    lines += [f"password_file {folder / PASSWORD_FILE}", f"acl_file {folder / ACL_FILE}"]
    if tls_port:
        lines += ["", "# TLS listener (mqtts://); clients trust ca.crt (agent.toml [mqtt] ca_file).",
                  f"listener {tls_port} {bind}",
                  f"cafile {folder / 'ca.crt'}",
                  f"certfile {folder / 'server.crt'}",
                  f"keyfile {folder / 'server.key'}",
                  "tls_version tlsv1.2"]
    return "\n".join(lines) + "\n"


def make_dev_ca(folder: Path, hostnames: Iterable[str] = ("localhost",)) -> None:
    """A private CA and a server certificate signed by it (openssl), for a TLS listener without a PKI.

    Production brokers use certificates from the plant's own CA: put them in the same file names.
    """
    tool = shutil.which("openssl")
    if tool is None:
        raise SecurityError("openssl is not installed: run `sudo apt-get install openssl`")
    names = [f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hostnames]
    san = ",".join(dict.fromkeys([*names, "IP:127.0.0.1"]))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        [tool, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "825",
         "-subj", "/CN=shopfloor private CA"],
        [tool, "req", *ec, "-keyout", "server.key", "-out", "server.csr",
         "-subj", f"/CN={next(iter(hostnames))}", "-addext", f"subjectAltName={san}"],
        [tool, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.crt", "-days", "825", "-copy_extensions", "copy"],
    ]
    old_umask = os.umask(0o077)
    try:
        for argv in steps:
            done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SecurityError(f"openssl failed making the TLS files in {folder}: "
                                    f"{done.stderr.strip().splitlines()[-1:]}")
    finally:
        os.umask(old_umask)
    for leftover in ("server.csr", "ca.srl"):
        (folder / leftover).unlink(missing_ok=True)
    os.chmod(folder / "ca.crt", 0o644)


def plant_bridge_config(credentials: Credentials, folder: str | Path, plant: str, remote_host: str,
                        remote_port: int, cafile: str | Path | None = None) -> str:
    """The bridge section for `plant`'s broker: to the central broker's TLS listener at
    `remote_host:remote_port`, as `bridge.PLANT`, trusting the CA in `folder` (made by `init`);
    `cafile` is where that ca.crt will be on the plant broker's host, if not at the same path."""
    username = bridge_username(plant)
    if username not in credentials.passwords:
        raise SecurityError(f"no bridge credential for plant {plant!r}: run `shopfloor security init "
                            f"--bridge` with its plant file")
    return bridge_config(remote_port, credentials.bridge_client_id(plant), remote_host, plant=plant,
                         username=username, password=credentials.passwords[username],
                         cafile=cafile or Path(folder).resolve() / "ca.crt") + "\n"


def init(plants: list[Plant], folder: str | Path, broker_url: str = "mqtt://127.0.0.1:1883", *,
         tls: bool = False, hostnames: Iterable[str] = ("localhost",), rotate: bool = False,
         source: str = "the plant file", bridges: bool = False,
         bridge_cafile: str | Path | None = None) -> Credentials:
    """Write passwd, acl, credentials.toml (0600) and mosquitto-auth.conf into `folder`.

    `broker_url` is the central broker. `bridges=True` (implies `tls`) also writes one bridge
    credential per plant and `bridge-PLANT.conf` (0600), the section for that plant's broker: its
    bridge dials the TLS listener on `broker_url`'s host (port from an mqtts:// URL, else 8883) and
    trusts the `ca.crt` at `bridge_cafile` (default: its path in `folder`).
    A re-run keeps the passwords, group, client ids and token already in `folder` (adding a station
    must not re-key every line PC); `rotate=True` makes all of them new.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    tls = tls or bridges
    users = principals(plants, bridges=bridges)
    old = load_credentials(folder) if (folder / CREDENTIALS_FILE).exists() and not rotate else None
    passwords = {u.username: (old.passwords.get(u.username) if old else None) or secrets.token_urlsafe(24)
                 for u in users}
    credentials = Credentials(passwords, old.group if old else f"collectors-{secrets.token_hex(8)}",
                              old.api_token if old else new_token(), broker_url, users)
    if old:
        credentials.collector_client_id = old.collector_client_id
        credentials.bridge_client_ids = dict(old.bridge_client_ids)
    hash_password_file(folder / PASSWORD_FILE, passwords)
    (folder / ACL_FILE).write_text(acl_text(users, source))
    os.chmod(folder / ACL_FILE, 0o600)
    write_private(folder / CREDENTIALS_FILE, credentials_text(credentials))
    parts = urlsplit(broker_url)
    if bridges and parts.hostname:  # the bridges check the certificate against the address they dial
        hostnames = list(dict.fromkeys([*hostnames, parts.hostname]))
    if tls and (rotate or not (folder / "server.crt").exists()):
        make_dev_ca(folder, hostnames)
    tls_port = (parts.port if parts.scheme == "mqtts" and parts.port else 8883) if tls else None
    (folder / BROKER_SNIPPET).write_text(broker_config(folder, tls_port, bind="0.0.0.0"))
    bridged = {BRIDGE_FILE.format(plant=plant.plant) for plant in plants} if bridges else set()
    for stale in folder.glob(BRIDGE_FILE.format(plant="*")):  # its credential is gone from passwd now
        if stale.name not in bridged:
            stale.unlink()
    if bridges:
        assert tls_port is not None
        for plant in plants:
            write_private(folder / BRIDGE_FILE.format(plant=plant.plant),
                          plant_bridge_config(credentials, folder, plant.plant, parts.hostname or "localhost",
                                              tls_port, bridge_cafile))
    return credentials


# --- checks the services share ----------------------------------------------------------------------


def new_token() -> str:
    """A random API token: 32 bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def api_token(explicit: str | None = None) -> str | None:
    """The analysis API's token: the given one, else SHOPFLOOR_API_TOKEN, else None."""
    return explicit or os.environ.get(API_TOKEN_ENV) or None


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison, so the time taken tells nothing about how much of a guess was right."""
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def redact_url(url: str) -> str:
    """A URL safe for a log line: scheme, host and port only (paths of webhooks often hold the secret)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    rest = "/…" if parts.path.strip("/") or parts.query or parts.fragment else ""
    user = "***@" if parts.username or parts.password else ""
    return f"{parts.scheme}://{user}{host}{port}{rest}"


def check_webhook_url(url: str) -> str:
    """Return `url` if it is an absolute http(s) URL with a host; else ConfigError without the secret."""
    if not isinstance(url, str) or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ConfigError("a webhook URL holds whitespace or control characters: give one http(s) URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"webhook URL {redact_url(url)} has a bad port: use a number 1-65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"webhook URL {redact_url(url)} is not http(s)://host/...: only http and https "
                          f"webhooks are sent")
    return url


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.IGNORECASE)


class RedactUrls(logging.Filter):
    """Rewrites every URL in a log record to `redact_url`'s form (no password, no path, no query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _URL.sub(lambda match: redact_url(match.group(0)), message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_http_logs() -> None:
    """httpx logs every request's full URL at INFO, with a webhook's password and secret path: not here."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactUrls) for f in logger.filters):
            logger.addFilter(RedactUrls())


# Any process that can send to a webhook imports this module (analysis.alerts): its HTTP logs are safe.
redact_http_logs()
