"""The agent's TOML file (see agent.example.toml) as one typed, validated object.

Why pydantic with `extra="forbid"`: a misspelt option on a line PC must fail loudly at start, not be
ignored for months. `config_problems` lists every problem (for `shopfloor agent check`, one line each);
`load_config` raises the first one as a ConfigError, which the CLI prints as one line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shopfloor import settings
from shopfloor.contract import IDENTIFIER_PATTERN, STATES
from shopfloor.errors import ConfigError
from shopfloor.plant import read_toml
from shopfloor.reasons import ReasonTable

Identifier = Field(pattern=IDENTIFIER_PATTERN)


def state_folder() -> Path:
    """Where an agent keeps its outbox by default: the user's state folder, never the folder it starts
    in (a checkout, a home directory). Linux/macOS: $XDG_STATE_HOME/shopfloor, else
    ~/.local/state/shopfloor; Windows: %LOCALAPPDATA%\\shopfloor."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "shopfloor"
    base = os.environ.get("XDG_STATE_HOME")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "state"
    return root / "shopfloor"

_STRICT = ConfigDict(extra="forbid", frozen=True)


def _check_states(table: dict[str, str]) -> dict[str, str]:
    for raw, state in table.items():
        if state not in STATES:
            raise ValueError(f"state table maps {raw!r} to {state!r}; use one of {', '.join(STATES)}")
    return table


class _StateTable(BaseModel):
    """A PLC value -> contract state table; keys are the raw values as text (TOML keys are strings)."""

    model_config = _STRICT
    states: dict[str, str] = Field(default_factory=dict)

    @field_validator("states")
    @classmethod
    def _known_states(cls, table: dict[str, str]) -> dict[str, str]:
        return _check_states(table)


class _ReasonTable(BaseModel):
    """A PLC reason code -> contract reason table (docs/DESIGN.md §4); keys are the codes as text."""

    model_config = _STRICT
    reasons: ReasonTable = Field(default_factory=dict)


# --- sources --------------------------------------------------------------------------------------


class SimulatedSource(BaseModel):
    """Plausible counts, queues and states from a seeded random process (demos and tests)."""

    model_config = _STRICT
    kind: Literal["simulated"]
    cycle_s: float = Field(30.0, gt=0)
    buffer: int = Field(8, ge=0)
    seed: int = 0
    count_width: Literal[0, 16, 32] = 0  # emulate a PLC counter that wraps at 2**width (0: never)


class ModbusRegister(_StateTable):
    address: int = Field(ge=0, le=65535)
    table: Literal["holding", "input"] = "holding"
    type: Literal["uint16", "uint32"] = "uint16"
    word_order: Literal["big", "little"] = "big"

    @property
    def width(self) -> int:
        return 16 if self.type == "uint16" else 32

    @property
    def registers(self) -> int:
        return 1 if self.type == "uint16" else 2


class ModbusReason(_ReasonTable):
    address: int = Field(ge=0, le=65535)
    table: Literal["holding", "input"] = "holding"
    type: Literal["uint16"] = "uint16"
    word_order: Literal["big"] = "big"

    @property
    def registers(self) -> int:
        return 1


class ModbusSource(BaseModel):
    model_config = _STRICT
    kind: Literal["modbus"]
    host: str
    port: int = Field(502, ge=1, le=65535)
    unit: int = Field(1, ge=0, le=255)
    timeout_s: float = Field(1.0, gt=0)
    count: ModbusRegister
    queue: ModbusRegister
    scrap: ModbusRegister | None = None
    state: ModbusRegister | None = None
    clock: ModbusRegister | None = None  # the PLC's clock as Unix seconds (uint32), for the skew check
    reason: ModbusReason | None = None  # the stop reason code, read while the state is down/setup/idle


class OpcUaNode(_StateTable):
    node: str = Field(min_length=1)
    width: Literal[0, 16, 32] = 0  # the PLC counter's width, if it wraps (0: never)


class OpcUaReason(_ReasonTable):
    node: str = Field(min_length=1)


class OpcUaSource(BaseModel):
    model_config = _STRICT
    kind: Literal["opcua"]
    url: str = Field(pattern=r"^opc\.tcp://")
    timeout_s: float = Field(2.0, gt=0)
    username: str | None = None
    password: str | None = None
    count: OpcUaNode
    queue: OpcUaNode
    scrap: OpcUaNode | None = None
    state: OpcUaNode | None = None
    reason: OpcUaReason | None = None  # the stop reason code, read while the state is down/setup/idle
    server_clock: bool = True  # compare the agent's clock with the server's CurrentTime


class FileSource(_StateTable, _ReasonTable):
    """A `reason` column/key holds a contract reason or a code of the `reasons` table."""

    kind: Literal["file"]
    path: Path
    format: Literal["jsonl", "csv"] = "jsonl"


Source = Annotated[SimulatedSource | ModbusSource | OpcUaSource | FileSource, Field(discriminator="kind")]


class Station(BaseModel):
    model_config = _STRICT
    id: str = Identifier
    source: Source


class Mqtt(BaseModel):
    model_config = _STRICT
    url: str | None = None  # else SHOPFLOOR_MQTT_URL, else mqtt://127.0.0.1:1883
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    client_id: str | None = Field(None, pattern=IDENTIFIER_PATTERN)
    window: int = Field(100, ge=1, le=10_000)
    keepalive_s: int = Field(30, ge=5, le=3600)
    reconnect_max_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _pairs(self) -> Mqtt:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (a client certificate needs its key)")
        return self


class AgentConfig(BaseModel):
    """What agent.toml may hold; an unknown key is an error."""

    model_config = _STRICT
    agent: str = Identifier
    plant: str = Identifier
    line: str = Identifier
    outbox: Path | None = None  # default: state_folder() / outbox-PLANT-LINE-AGENT.sqlite
    interval_s: float = Field(1.0, ge=0.01, le=3600)
    max_step: int = Field(1000, ge=1)
    clock_skew_s: float = Field(5.0, gt=0)
    source_retry_max_s: float = Field(60.0, gt=0)
    delete_on: Literal["receipt", "puback"] = "receipt"
    receipt_timeout_s: float = Field(30.0, gt=0)
    receipt_max_s: float = Field(600.0, gt=0)
    mqtt: Mqtt = Mqtt()
    station: list[Station] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_stations(self) -> AgentConfig:
        ids = [station.id for station in self.station]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a station id is listed twice: {ids}")
        return self

    @property
    def stations(self) -> list[Station]:
        return self.station

    @property
    def station_ids(self) -> list[str]:
        return [station.id for station in self.station]

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"agent-{self.plant}-{self.line}-{self.agent}"

    @property
    def mqtt_url(self) -> str:
        return settings.mqtt_url(self.mqtt.url)


def _problem(path: str | Path, error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"] if not str(part).startswith(("function-", "tagged")))
    message = error["msg"].removeprefix("Value error, ")
    return f"{path}: {where + ': ' if where else ''}{message}"


def _resolve(config: AgentConfig, base: Path) -> AgentConfig:
    """Relative paths in the file are relative to the file, so a unit file may start anywhere."""
    def absolute(path: Path | None) -> Path | None:
        return path if path is None or path.is_absolute() else base / path

    stations = [station.model_copy(update={"source": station.source.model_copy(
        update={"path": absolute(station.source.path)})}) if isinstance(station.source, FileSource)
        else station for station in config.station]
    mqtt = config.mqtt.model_copy(update={name: absolute(getattr(config.mqtt, name))
                                          for name in ("ca_file", "cert_file", "key_file")})
    outbox = absolute(config.outbox) if config.outbox is not None else \
        state_folder() / f"outbox-{config.plant}-{config.line}-{config.agent}.sqlite"
    return config.model_copy(update={"outbox": outbox, "station": stations, "mqtt": mqtt})


def parse_config(path: str | Path, document: dict) -> tuple[AgentConfig | None, list[str]]:
    """The config and no problems, or None and every problem found (one line each)."""
    try:
        config = AgentConfig.model_validate(document)
    except ValidationError as error:
        return None, [_problem(path, item) for item in error.errors(include_url=False)]
    try:
        settings.mqtt_endpoint(config.mqtt_url)
    except ConfigError as error:
        return None, [f"{path}: mqtt.url: {error}"]
    return _resolve(config, Path(path).resolve().parent), []


def config_problems(path: str | Path) -> tuple[AgentConfig | None, list[str]]:
    try:
        document = read_toml(path, "agent config")
    except ConfigError as error:
        return None, [str(error)]
    return parse_config(path, document)


def load_config(path: str | Path) -> AgentConfig:
    config, problems = config_problems(path)
    if config is None:
        more = f" (+{len(problems) - 1} more: run `shopfloor agent check --config {path}`)" \
            if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)
    return config
