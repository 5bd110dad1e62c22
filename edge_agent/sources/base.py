"""What every source gives the agent: readings of one station, or a SourceError saying why not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shopfloor.contract import STATES
from shopfloor.errors import ShopfloorError


class SourceError(ShopfloorError):
    """A source that cannot be read now (PLC away, node missing, bad line); the agent retries it."""


@dataclass(frozen=True, slots=True)
class Reading:
    """Raw values of one station; counters still as the PLC holds them (they may wrap or reset)."""

    count: int
    queue: int
    scrap: int | None = None
    state: str | None = None
    ts_ms: int | None = None  # the station's own time of this reading (file lines); None: read time
    clock_ms: int | None = None  # the source's clock when read (PLC, OPC UA server), for the skew check
    problem: str | None = None  # what was wrong with this reading though it is still worth a sample
    reason: str | None = None  # why the station stops (a contract reason), if the source says


class Source(Protocol):
    """A station's data source. `read` may block up to the source's timeout; it never runs concurrently."""

    def read(self) -> list[Reading]:
        """Readings since the last call: one for a polled PLC, zero or more for a file."""
        ...

    def close(self) -> None:
        ...


def map_state(raw: object, table: dict[str, str], where: str) -> tuple[str | None, str | None]:
    """(state, problem): a PLC value through the station's state table, or a contract state name as it
    stands. An unknown value costs the sample its state, not the sample: count and queue still count."""
    key = str(int(raw)) if isinstance(raw, int | float) and not isinstance(raw, bool) else str(raw)
    if key in table:
        return table[key], None
    if key in STATES:
        return key, None
    known = ", ".join(sorted(table)) or "none"
    return None, (f"{where}: state value {key!r} is not in the state table (known: {known}); "
                  f"sent without state")


def whole(value: object, where: str) -> int:
    """A counter or queue value as a non-negative int; anything else is the source's error."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 0:
        raise SourceError(f"{where}: {value!r} is not a whole number >= 0")
    return int(value)
