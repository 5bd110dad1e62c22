"""Connection settings, read the same way by every command (DESIGN.md §7).

A flag wins over the environment (`SHOPFLOOR_MQTT_URL`, `SHOPFLOOR_INFLUX_URL`, `SHOPFLOOR_INFLUX_DB`),
which wins over the local defaults. A malformed URL is a `SettingsError` with a one-line fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from shopfloor.errors import ConfigError

MQTT_URL_ENV = "SHOPFLOOR_MQTT_URL"
INFLUX_URL_ENV = "SHOPFLOOR_INFLUX_URL"
INFLUX_DB_ENV = "SHOPFLOOR_INFLUX_DB"
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
DEFAULT_INFLUX_URL = "http://127.0.0.1:8086"
DEFAULT_INFLUX_DB = "shopfloor"


class SettingsError(ConfigError):
    """A setting that cannot work; `str()` says what is wrong and how to fix it."""


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @property
    def display(self) -> str:
        """The URL without its password, for logs."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def mqtt_url(url: str | None = None) -> str:
    """The MQTT URL to use: the given one, else the environment's, else the local default."""
    return url or os.environ.get(MQTT_URL_ENV) or DEFAULT_MQTT_URL


def mqtt_endpoint(url: str | None = None) -> MqttEndpoint:
    url = mqtt_url(url)
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise SettingsError(f"MQTT URL {url!r} is not mqtt://[user:password@]host:port (or mqtts:// for TLS)")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise SettingsError(f"MQTT URL {url!r} has a bad port: use a number from 1 to 65535") from None
    return MqttEndpoint(
        host=parts.hostname,
        port=port,
        tls=parts.scheme == "mqtts",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def influx_url(url: str | None = None) -> str:
    url = url or os.environ.get(INFLUX_URL_ENV) or DEFAULT_INFLUX_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"InfluxDB URL {url!r} is not http://host:port (or https://)")
    return url.rstrip("/")


def influx_db(name: str | None = None) -> str:
    return name or os.environ.get(INFLUX_DB_ENV) or DEFAULT_INFLUX_DB
