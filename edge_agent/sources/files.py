"""A file that station software appends to: JSON Lines or CSV, one reading a line.

Each line holds `ts` (ms since the epoch, seconds since the epoch, or ISO 8601), `count`, `queue` and
optionally `scrap`, `state` (a contract state, or a value of the station's state table) and `reason`
(a contract reason, or a code of the station's reason table). The
source reads only complete lines, from where it stopped; a file that got shorter was rotated or
truncated, and is read again from its start. After an agent restart the file is read from the
start too: lines not newer than the station's last sample are duplicates and the agent drops them,
so nothing is sent twice and nothing written while the agent was away is missed.

Lines end in LF or CRLF (station PCs running Windows): the offset counts every byte of a line with
its ending, so the next read starts at the next line, never mid-line. A malformed line is skipped
with one logged warning naming file, line and reason; the good lines of the same read are kept and
the next read starts after it (raising instead would discard the read and re-read the line forever).
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import UTC, datetime

import orjson

from edge_agent.config import FileSource
from edge_agent.sources.base import Reading, SourceError, map_state, whole
from shopfloor.reasons import stop_reason

log = logging.getLogger("shopfloor.agent")

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
        self.station = station
        self._offset = 0
        self._line_number = 0
        self._header: list[str] | None = None
        self.skipped = 0  # malformed lines skipped since the start, each logged once with its reason

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
        # split on LF only: `splitlines()` also drops the CR of CRLF (and splits on VT, FF, ...), so
        # offsets counted from its pieces fall one byte short per line
        for raw in chunk[:end].split(b"\n")[:-1]:
            self._offset += len(raw) + 1
            self._line_number += 1
            line = raw.removesuffix(b"\r")
            if not line.strip():
                continue
            try:
                reading = self._parse(line)
            except SourceError as error:
                self._skip(str(error))
                continue
            except (ValueError, TypeError, OverflowError) as error:  # a value no parser foresaw
                self._skip(f"{self.spec.path}:{self._line_number}: {error.__class__.__name__}: {error}")
                continue
            if reading is not None:
                readings.append(reading)
        return readings

    def _skip(self, reason: str) -> None:
        self.skipped += 1
        log.warning("station %s: skipped a malformed line: %s", self.station, reason)

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
        reason, reason_problem = stop_reason(row.get("reason"), self.spec.reasons, state, where)
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
