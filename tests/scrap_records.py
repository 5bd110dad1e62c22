"""Scrap for the simulator's telemetry files, which carry none, so the boards' tests see good units.

Why this pattern: it covers each way `scrap` shows up on the wire. The line's second station reports
scrap in every sample; its last station (the line's output) reports none for the first 90 minutes
and then a counter that starts at 0 (an agent whose scrap input was wired mid-run), so one hour
holds samples with and without it; the other stations never report it. A missing scrap is 0 scrap.
"""

from __future__ import annotations

from pathlib import Path

from shopfloor.contract import read_records, write_records
from shopfloor.plant import Line

SCRAP_FROM_MS = 90 * 60_000  # the last station reports scrap from this long after the file's start


def add_scrap(path: Path, line: Line) -> None:
    """Rewrite the file in time order with cumulative scrap on the line's second and last stations."""
    records = sorted(read_records(path), key=lambda item: item[1]["ts"])
    first = records[0][1]["ts"]
    middle, last = line.station_ids[1], line.station_ids[-1]
    wired_at: int | None = None
    for key, sample in records:
        if key.line != line.id:
            continue
        if key.station == middle:
            sample["scrap"] = sample["count"] // 9
        elif key.station == last and sample["ts"] >= first + SCRAP_FROM_MS:
            wired_at = sample["count"] if wired_at is None else wired_at
            sample["scrap"] = (sample["count"] - wired_at) // 7
    write_records(path, records)
