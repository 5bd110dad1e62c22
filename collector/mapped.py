"""What the plant's own MQTT sources (Sparkplug B, mapped JSON topics) share: a mapped message becomes
contract samples or a reason, and a sample is checked by the wire contract like any agent's.

Why one place: the Sparkplug host and the JSON mapping must reject the same things the contract
rejects (a float count, an unknown state), so both build their samples here and validate them with
`shopfloor.contract.validate_sample` before `sample_line` turns them into points.
"""

from __future__ import annotations

from dataclasses import dataclass

from shopfloor.contract import (
    SOURCE_MEASUREMENT,
    ContractError,
    StationKey,
    line_protocol,
    sample_line,
    validate_sample,
)

REQUIRED = ("count", "queue")


@dataclass(slots=True)
class Decoded:
    """A mapped message's points (may be none) and, if part or all of it was refused, why."""

    lines: list[str]
    reason: str | None


def state_key(value: object) -> str:
    """A source value as the text a `states` table is keyed by (TOML keys are strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def build_sample(key: StationKey, ts: int, values: dict[str, object], states: dict[str, str],
                 names: dict[str, str]) -> str:
    """The point of one mapped sample: `values` by sample field, `names` the source's name of each field.

    `seq`, unless mapped, is the sample's ts in ms: mapped sources have no agent sample number, and ts
    increases per station and is the same when a message is delivered again, so the point stays the same.
    """
    sample: dict[str, object] = {"ts": ts, "seq": ts}  # a mapped `seq` in `values` replaces it
    for name in REQUIRED:
        if values.get(name) is None:
            raise ContractError(f"no value for {names[name]!r} ({name})")
    for name, value in values.items():
        if value is None:
            continue
        if name == "state":
            text = state_key(value)
            if text not in states:
                raise ContractError(f"{names[name]!r} value {text!r} is not in the states table "
                                    f"({', '.join(sorted(states)) or 'empty'})")
            value = states[text]
        sample[name] = value
    try:
        return sample_line(key, validate_sample(sample))
    except ContractError as error:
        field = str(error).split(":")[0]
        raise ContractError(f"{names[field]!r} -> {error}" if field in names else str(error)) from None


def source_line(key: StationKey, source: str, online: bool, event: str, ts: int) -> str:
    """A point of SOURCE_MEASUREMENT: the mapped source of a station was born or died at `ts`."""
    return line_protocol(SOURCE_MEASUREMENT, {"plant": key.plant, "line": key.line, "station": key.station},
                         {"online": online, "source": source, "event": event}, ts)
