"""The analysis service's own settings file (analysis/analysis.sample.toml documents every option).

Why a file: the alert rules and the live detector's timing are plant policy (how long a constraint may
be down before the ops director hears of it), reviewed like the plant file, not typed on a command
line. Every key is optional; a wrong one is a one-line ConfigError naming the file and the key.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from analysis.alerts import AlertRules
from analysis.bottleneck import METHODS
from analysis.live import LiveConfig
from shopfloor.errors import ConfigError
from shopfloor.plant import read_toml, validation_message
from shopfloor.security import check_webhook_url

_DEFAULT_LIVE = LiveConfig()
_DEFAULT_RULES = AlertRules()


class LiveSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interval_s: float = Field(_DEFAULT_LIVE.interval_s, gt=0)
    lookback_s: float = Field(_DEFAULT_LIVE.lookback_s, gt=0)
    rollup_every_s: float = Field(_DEFAULT_LIVE.rollup_every_s, gt=0)
    rewrite_s: float = Field(_DEFAULT_LIVE.rewrite_s, ge=0)
    window_s: float = Field(_DEFAULT_LIVE.window_s, gt=0)
    memory_s: float = Field(_DEFAULT_LIVE.memory_s, ge=0)
    confirm_s: float = Field(_DEFAULT_LIVE.confirm_s, ge=0)
    method: str = _DEFAULT_LIVE.method

    @field_validator("method")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in METHODS:
            raise ValueError(f"method {value!r} is not one the live loop runs: use one of "
                             f"{', '.join(METHODS)}")
        return value


class AlertSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    moved_dwell_min: float = Field(_DEFAULT_RULES.moved_dwell_min, ge=0)
    down_min: float = Field(_DEFAULT_RULES.down_min, ge=0)
    starved_min: float = Field(_DEFAULT_RULES.starved_min, ge=0)
    blocked_min: float = Field(_DEFAULT_RULES.blocked_min, ge=0)
    webhooks: list[str] = []

    @field_validator("webhooks")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        try:
            return [check_webhook_url(url) for url in value]  # http(s) only; errors never show the secret
        except ConfigError as error:
            raise ValueError(str(error)) from None


class ShiftSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first_start: str = Field("06:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    hours: float = Field(8.0, gt=0, le=24)


class AnalysisSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    live: LiveSection = LiveSection()
    alerts: AlertSection = AlertSection()
    shifts: ShiftSection = ShiftSection()

    def live_config(self, interval_s: float | None = None, window_s: float | None = None) -> LiveConfig:
        live = self.live.model_dump()
        if interval_s is not None:
            live["interval_s"] = interval_s
        if window_s is not None:
            live["window_s"] = window_s
        rules = AlertRules(**self.alerts.model_dump(exclude={"webhooks"}))
        return LiveConfig(**live, rules=rules)


def load_settings(path: str | Path | None) -> AnalysisSettings:
    if path is None:
        return AnalysisSettings()
    try:
        return AnalysisSettings.model_validate(read_toml(path, "analysis settings"))
    except ValidationError as error:
        raise ConfigError(validation_message(path, error)) from None
