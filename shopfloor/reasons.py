"""Stop reasons from field values (docs/DESIGN.md §4): the one rule for a code or name a source gives.

Why one owner: our agent's sources (Modbus, OPC UA, files) and the collector's mappings of the plant's
own MQTT network (Sparkplug B, JSON topics) read the same kinds of PLC values. If they named codes
differently, the same stop would carry a different reason depending on which way its data came in.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import Field

from shopfloor.contract import IDENTIFIER, IDENTIFIER_PATTERN, STOP_STATES

# A source's reason code, written as text (TOML keys are strings: 3 -> "3"), to a contract reason.
ReasonTable = dict[str, Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]]
R = TypeVar("R")


def map_reason(raw: object, table: dict[str, str], where: str) -> tuple[str | None, str | None]:
    """(reason, problem): a PLC reason code through the station's reason table.

    An unknown code is kept as `unknown-<code>` with a problem (the agent reports it in its status, the
    collector logs it), so the stop keeps a trace a supervisor can correct instead of turning into
    "unassigned"; 0 or an empty value means "no reason given"; a name (not digits) that is an identifier
    is a reason as it stands. A code that cannot be an identifier even so is reported and left out.
    """
    if raw is None or raw == "" or (isinstance(raw, int | float) and not isinstance(raw, bool) and raw == 0):
        return None, None
    key = str(int(raw)) if isinstance(raw, int | float) and not isinstance(raw, bool) else str(raw)
    if key in table:
        return table[key], None
    if isinstance(raw, str) and not key.isdigit() and IDENTIFIER.fullmatch(key):
        return key, None  # a reason given by name (a file column, a string node)
    known = ", ".join(sorted(table)) or "none"
    unknown = f"unknown-{key}"
    if not IDENTIFIER.fullmatch(unknown):
        return None, f"{where}: reason code {key!r} is no identifier; sent without reason"
    return unknown, (f"{where}: reason code {key!r} is not in the reason table (known: {known}); "
                     f"sent as {unknown}")


def while_stopped(reason: R, state: str | None) -> R | None:
    """The reason if the station stops (down, setup, idle), else None.

    PLCs latch the last stop code: a reason read while the station works, is starved or blocked, or
    without any state, is stale rather than news, and the contract would refuse the sample for it.
    """
    return reason if state in STOP_STATES else None


def stop_reason(raw: object, table: dict[str, str], state: str | None,
                where: str) -> tuple[str | None, str | None]:
    """(reason, problem) of a sample in `state`: `map_reason` while the station stops, else nothing.

    A latched code while the station works is dropped without a problem: it is not sent, so a warning
    that it was sent as `unknown-<code>` would be false.
    """
    if while_stopped(raw, state) is None:
        return None, None
    return map_reason(raw, table, where)
