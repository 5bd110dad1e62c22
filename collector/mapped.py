"""What the plant's own MQTT sources (Sparkplug B, mapped JSON topics) share: a mapped message becomes
contract samples or a reason, and a sample is checked by the wire contract like any agent's.

Why one place: the Sparkplug host and the JSON mapping must reject the same things the contract
rejects (a float count, an unknown state), so both build their samples here and validate them with
`shopfloor.contract.validate_sample` before `sample_line` turns them into points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from shopfloor.contract import (
    SOURCE_MEASUREMENT,
    ContractError,
    StationKey,
    line_protocol,
    sample_line,
    validate_sample,
)
from shopfloor.reasons import stop_reason

REQUIRED = ("count", "queue")


@dataclass(slots=True)
class Decoded:
    """A mapped message's points (may be none) and, if part or all of it was refused, why.

    `warnings` are about what was stored anyway (a reason code the table lacks, stored as
    `unknown-<code>`): logged by collector/ingest.py, not rejected, since nothing was refused.
    """

    lines: list[str]
    reason: str | None
    warnings: list[str] = field(default_factory=list)


class Tables(Protocol):
    """A mapping's value tables (shopfloor.plant.SparkplugSource, JsonTopic)."""

    states: dict[str, str]
    reasons: dict[str, str]


def state_key(value: object) -> str:
    """A source value as the text a `states` table is keyed by (TOML keys are strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def build_sample(key: StationKey, ts: int, values: dict[str, object], tables: Tables,
                 names: dict[str, str]) -> tuple[str, str | None]:
    """(point, warning) of one mapped sample: `values` by sample field, `names` the source's name of each.

    `seq`, unless mapped, is the sample's ts in ms: mapped sources have no agent sample number, and ts
    increases per station and is the same when a message is delivered again, so the point stays the same.
    `reason` follows the agent's rule (shopfloor/reasons.py): a code through the `reasons` table, an
    unknown one kept as `unknown-<code>` with the warning, only while the sample's state is a stop.
    """
    sample: dict[str, object] = {"ts": ts, "seq": ts}  # a mapped `seq` in `values` replaces it
    for name in REQUIRED:
        if values.get(name) is None:
            raise ContractError(f"no value for {names[name]!r} ({name})")
    for name, value in values.items():
        if value is None or name == "reason":
            continue
        if name == "state":
            text = state_key(value)
            if text not in tables.states:
                raise ContractError(f"{names[name]!r} value {text!r} is not in the states table "
                                    f"({', '.join(sorted(tables.states)) or 'empty'})")
            value = tables.states[text]
        sample[name] = value
    warning = None
    if (raw := values.get("reason")) is not None:
        if isinstance(raw, bool) or not (isinstance(raw, int | str) or (isinstance(raw, float)
                                                                        and raw.is_integer())):
            raise ContractError(f"{names['reason']!r} value {raw!r} is neither a reason code (a whole "
                                f"number) nor a reason name (text)")
        where = f"{key.line}/{key.station} {names['reason']!r}"
        reason, warning = stop_reason(raw, tables.reasons, sample.get("state"), where)  # type: ignore[arg-type]
        if reason is not None:
            sample["reason"] = reason
    try:
        return sample_line(key, validate_sample(sample)), warning
    except ContractError as error:
        field_ = str(error).split(":")[0]
        raise ContractError(f"{names[field_]!r} -> {error}" if field_ in names else str(error)) from None


def source_line(key: StationKey, source: str, online: bool, event: str, ts: int) -> str:
    """A point of SOURCE_MEASUREMENT: the mapped source of a station was born or died at `ts`."""
    return line_protocol(SOURCE_MEASUREMENT, {"plant": key.plant, "line": key.line, "station": key.station},
                         {"online": online, "source": source, "event": event}, ts)
