"""A file that station software appends to: JSON Lines or CSV, one reading a line.

Each line holds `ts` (ms since the epoch, seconds since the epoch, or ISO 8601), `count`, `queue` and
optionally `scrap`, `state` (a contract state, or a value of the station's state table) and `reason`
(a contract reason, or a code of the station's reason table). The
source reads only complete lines, from where it stopped; a file that got shorter was rotated or
truncated, and is read again from its start. After an agent restart the file is read from the
start too: lines not newer than the station's last sample are duplicates and the agent drops them,
so nothing is sent twice and nothing written while the agent was away is missed.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import orjson

from edge_agent.config import FileSource
from edge_agent.sources.base import Reading, SourceError, map_reason, map_state, whole

_MS_THRESHOLD = 100_000_000_000  # a number above this is milliseconds, below it seconds


def _timestamp(value: object, where: str) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value if value > _MS_THRESHOLD else value * 1000)
    if isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            try:
                return _timestamp(float(value), where)
            except ValueError:
                raise SourceError(f"{where}: ts {value!r} is neither a number nor ISO 8601") from None
        return int((stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp() * 1000)
    raise SourceError(f"{where}: ts is missing or not a time")


def _number(value: object, where: str) -> int:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise SourceError(f"{where}: {value!r} is not a number") from None
    return whole(value, where)


class FileStation:
    def __init__(self, spec: FileSource, station: str):
        self.spec = spec
        self._offset = 0
        self._line_number = 0
        self._header: list[str] | None = None

    def read(self) -> list[Reading]:
        try:
            with open(self.spec.path, "rb") as file:
                size = file.seek(0, io.SEEK_END)
                if size < self._offset:  # rotated or truncated: start again
                    self._offset, self._line_number, self._header = 0, 0, None
                file.seek(self._offset)
                chunk = file.read()
        except OSError as error:
            raise SourceError(f"file {self.spec.path}: {error.strerror or error}") from None
        end = chunk.rfind(b"\n") + 1  # only complete lines; a half-written last line waits
        readings = []
        for line in chunk[:end].splitlines():
            self._offset += len(line) + 1
            self._line_number += 1
            if not line.strip():
                continue
            reading = self._parse(line)
            if reading is not None:
                readings.append(reading)
        return readings

    def _parse(self, line: bytes) -> Reading | None:
        where = f"{self.spec.path}:{self._line_number}"
        if self.spec.format == "jsonl":
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                raise SourceError(f"{where}: not JSON ({error})") from None
            if not isinstance(row, dict):
                raise SourceError(f"{where}: a line must be a JSON object")
        else:
            cells = next(csv.reader([line.decode("utf-8", errors="replace")]))
            if self._header is None:
                self._header = [cell.strip() for cell in cells]
                return None
            row = dict(zip(self._header, cells, strict=False))
        missing = [key for key in ("ts", "count", "queue") if row.get(key) in (None, "")]
        if missing:
            raise SourceError(f"{where}: {', '.join(missing)} missing")
        state, problem = (None, None) if row.get("state") in (None, "") else \
            map_state(row["state"], self.spec.states, where)
        reason, reason_problem = map_reason(row.get("reason"), self.spec.reasons, where)
        return Reading(
            count=_number(row["count"], f"{where} count"),
            queue=_number(row["queue"], f"{where} queue"),
            scrap=None if row.get("scrap") in (None, "") else _number(row["scrap"], f"{where} scrap"),
            state=state,
            ts_ms=_timestamp(row["ts"], where),
            problem=problem or reason_problem,
            reason=reason,
        )

    def close(self) -> None:
        """Nothing held open between reads: the station software owns the file."""
