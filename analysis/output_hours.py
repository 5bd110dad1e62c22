"""The hourly output rollup: good units per station and clock hour, written into InfluxDB once an hour
is known, so the executive's month and quarter panels sum hours instead of scanning raw samples.

Why this shape:
- The units are counted inside InfluxDB by the boards' own hourly query (dashboards.queries
  `station_hours`, shopfloor.counters' rule: reset, 16/32-bit wrap, late scrap, missing scrap, the
  first sample as baseline). An InfluxDB continuous query over `non_negative_difference` would lose
  the wrap, reset and scrap rules; this keeps the one owner of the rule, and so every hour in the
  rollup equals the huddle's hourly bar of the same hour.
- A point per (station, hour start) with the same tags and timestamp: writing an hour again replaces
  it (InfluxDB keeps one point per series and time), so the live loop may rewrite freely.
- The live loop (`HourRollup.maybe_write`, called by analysis.live's tick) rewrites the running hour
  and the `REWRITE_HOURS` before it every `every_s` (5 minutes, the executive board's refresh: a
  round costs about 4 s of InfluxDB per 20 stations at 1 Hz), so the just-ended hour is complete a
  round after it ends and samples that arrive late (an agent draining its outbox) still land in their
  hour; after a start it backfills, a few hours a round, up to `BACKFILL_HOURS` from the newest
  stored hour on (`shopfloor analysis rollup` writes older history).
- Hours are the plant's local clock hours (`tz()`), the buckets a month or quarter starts on.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from analysis.targets import to_local
from dashboards import queries as q
from shopfloor.contract import OUTPUT_HOUR_MEASUREMENT, line_protocol
from shopfloor.plant import Plant
from shopfloor.store import Store, quote_ident, quote_string

HOUR_MS = 3_600_000
REWRITE_HOURS = 2  # ended hours rewritten every round besides the running one (late samples)
BACKFILL_HOURS = 24  # the first round after a start fills this far back at most
CHUNK_HOURS = 3  # a live-loop query reads at most this many hours (the store's timeout is 10 s)
HISTORY_CHUNK_HOURS = 24  # `shopfloor analysis rollup` reads a day per query (3x cheaper than 3 h chunks)


def hour_start(ms: int, timezone: str) -> int:
    """The start (ms) of the plant's local clock hour that holds `ms`."""
    local = to_local(ms, ZoneInfo(timezone))
    return int(local.replace(minute=0, second=0, microsecond=0).timestamp() * 1000)


def hour_lines(plant: str, line: str, rows: list[dict], start_ms: int, now_ms: int) -> list[str]:
    """The rollup's points from `station_hours` rows (time, station, good) at or after `start_ms`."""
    out = []
    for row in rows:
        if row["time"] < start_ms or row["good"] is None:
            continue  # the baseline hour before the range
        final = row["time"] + HOUR_MS <= now_ms
        out.append(line_protocol(OUTPUT_HOUR_MEASUREMENT, {"plant": plant, "line": line,
                                                          "station": row["station"]},
                                 {"good": int(round(row["good"])), "final": final}, int(row["time"])))
    return out


def write_hours(store: Store, plant: Plant, line_id: str, start_ms: int, end_ms: int, now_ms: int, *,
                chunk_hours: int = CHUNK_HOURS) -> int:
    """Count and (re)write the rollup of every station of a line for the hours in [start, end),
    `chunk_hours` per query; `start_ms` is moved back to its hour's start. Returns points written."""
    start = hour_start(start_ms, plant.timezone)
    written = 0
    while start < end_ms:
        stop = min(end_ms, start + chunk_hours * HOUR_MS)
        rows = store.query(q.station_hours(plant.plant, line_id, start, stop, plant.timezone)).rows()
        lines = hour_lines(plant.plant, line_id, rows, start, now_ms)
        store.write(lines)
        written += len(lines)
        start = stop
    return written


def newest_hour(store: Store, plant: str, line: str) -> int | None:
    """The start of the newest hour stored in the rollup for a line, or None."""
    rows = store.query(f'SELECT last("good") FROM {quote_ident(OUTPUT_HOUR_MEASUREMENT)} WHERE '
                       f'"plant" = {quote_string(plant)} AND "line" = {quote_string(line)}').rows()
    return int(rows[0]["time"]) if rows else None


@dataclass(slots=True)
class HourRollup:
    """One line's rollup writer for the live loop: at most one round every `every_s`.

    A round rewrites the running hour and the REWRITE_HOURS before it; after a start it also walks
    back, CHUNK_HOURS a round, to the newest stored hour (at most BACKFILL_HOURS back), so no round
    reads more than a few hours of samples (a day of a 20-station line at 1 Hz would take longer
    than the store's timeout and hold up the live detector)."""

    plant: Plant
    line_id: str
    every_s: float = 300.0
    last_round_ms: int | None = None
    backfill_to_ms: int | None = None  # the backfill's goal: the newest stored hour, or 24 h back
    backfilled_ms: int | None = None  # the backfill has written [backfilled_ms, running - REWRITE)

    def maybe_write(self, store: Store, now_ms: int) -> int:
        """Rewrite the running hour and the ended ones before it when a round is due, and one chunk
        of the backfill while it lasts. Returns the points written."""
        if self.last_round_ms is not None and now_ms - self.last_round_ms < self.every_s * 1000:
            return 0
        running = hour_start(now_ms, self.plant.timezone)
        start = running - REWRITE_HOURS * HOUR_MS
        if self.backfill_to_ms is None:
            newest = newest_hour(store, self.plant.plant, self.line_id)
            self.backfill_to_ms = max(running - BACKFILL_HOURS * HOUR_MS, newest if newest is not None else 0)
            self.backfilled_ms = start
        written = write_hours(store, self.plant, self.line_id, start, now_ms + 1, now_ms)
        if self.backfilled_ms is not None and self.backfilled_ms > self.backfill_to_ms:
            chunk = max(self.backfill_to_ms, self.backfilled_ms - CHUNK_HOURS * HOUR_MS)
            written += write_hours(store, self.plant, self.line_id, chunk, self.backfilled_ms, now_ms)
            self.backfilled_ms = chunk
        self.last_round_ms = now_ms
        return written
