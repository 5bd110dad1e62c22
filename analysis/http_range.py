"""Time ranges and times given to the HTTP API: parsed, checked, and refused with 422 in one line.

Why a module of its own: the analysis API, the targets API and the huddle page all take times from a
URL; a range InfluxDB cannot hold (before 1677 or after 2262 in its nanosecond clock), a reversed one
or one longer than the endpoint's documented cap must be the caller's error (422, one line, naming
the query parameter), never a 503 from a query InfluxDB refused, nor a 500 from a date overflow.
The messages name query parameters (`from`, `to`), never command-line flags.
"""

from __future__ import annotations

import datetime as dt

from fastapi import HTTPException

DAY_MS = 86_400_000
# InfluxDB 1.x stores int64 nanoseconds: 1677-09-21T00:12:43Z .. 2262-04-11T23:47:16Z.
INFLUX_MIN_MS = -9_223_372_036_854
INFLUX_MAX_MS = 9_223_372_036_854
MAX_RANGE_DAYS = 31  # timeline, shares and alerts (docs/DESIGN.md §9)
HUDDLE_MAX_RANGE_DAYS = 7  # the huddle page's chosen range


def moment_ms(value: str | int, name: str) -> int:
    """Milliseconds since the epoch from ms or ISO 8601 (UTC unless it has an offset), in InfluxDB's range."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        ms = int(text)
    else:
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise HTTPException(422, f"{name}={value!r} is neither ms since the epoch nor an ISO 8601 time"
                                ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        ms = int(moment.timestamp() * 1000)
    if not INFLUX_MIN_MS <= ms <= INFLUX_MAX_MS:
        raise HTTPException(422, f"{name}={value!r} is outside the times InfluxDB can hold "
                                 f"(1677-09-21 to 2262-04-11)")
    return ms


def time_range(start: str | int | None, end: str | int | None, *, default_ms: int, now_ms: int,
               max_days: float = MAX_RANGE_DAYS) -> tuple[int, int]:
    """[from, to) in ms: `to` defaults to now, `from` to `default_ms` before `to`; 422 when it is
    reversed, empty or longer than `max_days`."""
    to_ms = now_ms if end is None else moment_ms(end, "to")
    from_ms = max(INFLUX_MIN_MS, to_ms - default_ms) if start is None else moment_ms(start, "from")
    return checked_range(from_ms, to_ms, max_days)


def checked_range(from_ms: int, to_ms: int, max_days: float, names: tuple[str, str] = ("from", "to")
                  ) -> tuple[int, int]:
    """(from_ms, to_ms) as given; 422 naming the query parameters when reversed, empty or over `max_days`."""
    if from_ms >= to_ms:
        raise HTTPException(422, f"the range is empty or reversed: {names[0]} ({from_ms} ms) must be before "
                                 f"{names[1]} ({to_ms} ms)")
    if to_ms - from_ms > max_days * DAY_MS:
        raise HTTPException(422, f"the range is {(to_ms - from_ms) / DAY_MS:.1f} days: at most "
                                 f"{max_days:g} days per request")
    return from_ms, to_ms
