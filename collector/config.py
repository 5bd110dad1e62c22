"""The collector's settings: defaults, then `collector.toml`, then flags and the environment.

Every option is described in collector/collector.example.toml with its default and why you would
change it; this module only turns them into one typed, validated object.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shopfloor import settings
from shopfloor.contract import IDENTIFIER_PATTERN, TELEMETRY_FILTER
from shopfloor.errors import ConfigError
from shopfloor.mqtt import DEFAULT_SESSION_EXPIRY_S
from shopfloor.plant import read_toml, validation_message


class CollectorConfig(BaseModel):
    """What collector.toml may hold; an unknown key is an error, not a silently ignored typo."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mqtt_url: str | None = None
    influx_url: str | None = None
    influx_db: str | None = None
    client_id: str = Field("collector-1", pattern=IDENTIFIER_PATTERN)
    group: str = Field("collectors", pattern=IDENTIFIER_PATTERN)
    batch_samples: int = Field(10_000, ge=1, le=100_000)
    batch_wait_s: float = Field(0.2, gt=0, le=60)
    writers: int = Field(2, ge=1, le=8)
    retry_first_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(30.0, gt=0)
    session_expiry_s: int = Field(DEFAULT_SESSION_EXPIRY_S, ge=0)  # owned by shopfloor.mqtt
    receive_maximum: int = Field(65535, ge=1, le=65535)
    stats_interval_s: float = Field(10.0, gt=0)
    stuck_after_s: float = Field(60.0, gt=0)
    http_host: str = "127.0.0.1"
    http_port: int | None = Field(None, ge=0, le=65535)
    # The plant's existing MQTT network (collector/ingest.py): a plant file whose stations map Sparkplug B
    # sources or whose [[json_topic]] templates map JSON topics; `host_id` names the Sparkplug host.
    plant: str | None = None
    host_id: str = Field("shopfloor", pattern=IDENTIFIER_PATTERN)

    @property
    def subscription(self) -> str:
        """The shared subscription: several collectors of one group split the telemetry."""
        return f"$share/{self.group}/{TELEMETRY_FILTER}"


def load_config(path: str | Path | None = None, **overrides: object) -> CollectorConfig:
    """The file's values, overridden by non-None flags; URLs fall back to the environment, then defaults."""
    values = read_toml(path, "collector config") if path else {}
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        config = CollectorConfig.model_validate(values)
    except ValidationError as error:
        raise ConfigError(validation_message(path or "collector settings", error)) from None
    mqtt_url = settings.mqtt_url(config.mqtt_url)
    settings.mqtt_endpoint(mqtt_url)  # a malformed URL fails here, before anything starts
    return config.model_copy(update={
        "mqtt_url": mqtt_url,
        "influx_url": settings.influx_url(config.influx_url),
        "influx_db": settings.influx_db(config.influx_db),
    })
