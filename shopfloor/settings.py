"""Connection settings, read the same way by every command (docs/DESIGN.md §7).

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
INFLUX_USER_ENV = "SHOPFLOOR_INFLUX_USER"  # InfluxDB credentials (auth-enabled); or userinfo in the URL
INFLUX_PASSWORD_ENV = "SHOPFLOOR_INFLUX_PASSWORD"
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
        raise SettingsError(f"MQTT URL {hide_password(url)!r} is not mqtt://[user:password@]host:port "
                            f"(or mqtts:// for TLS)")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise SettingsError(f"MQTT URL {hide_password(url)!r} has a bad port: use a number from 1 to 65535"
                            ) from None
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
        raise SettingsError(f"InfluxDB URL {hide_password(url)!r} is not http://host:port (or https://)")
    return url.rstrip("/")


def influx_credentials(url: str | None = None) -> tuple[str | None, str | None]:
    """(user, password) for InfluxDB: the URL's userinfo, else SHOPFLOOR_INFLUX_USER/_PASSWORD, else none."""
    parts = urlsplit(influx_url(url))
    if parts.username:
        return unquote(parts.username), unquote(parts.password or "")
    return os.environ.get(INFLUX_USER_ENV) or None, os.environ.get(INFLUX_PASSWORD_ENV) or None


def hide_password(url: str) -> str:
    """The URL with any password in its userinfo replaced by ***, for error messages and logs."""
    head, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or "/" in userinfo or ":" not in userinfo:
        return url
    return f"{head}://{userinfo.split(':', 1)[0]}:***@{host}"


def without_userinfo(url: str) -> str:
    """The URL without `user:password@`, for logs and for the HTTP client (credentials go in a header)."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl() if "@" in parts.netloc else url


def influx_db(name: str | None = None) -> str:
    return name or os.environ.get(INFLUX_DB_ENV) or DEFAULT_INFLUX_DB
