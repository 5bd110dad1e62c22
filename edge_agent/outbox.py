"""The agent's disk outbox: every sample is on disk before it is sent, and leaves only on its receipt.

One SQLite file in WAL mode with `synchronous=FULL`, because a line PC loses power: a sample whose
append returned is on disk. The same file keeps each station's state (next `seq`, last timestamp,
counter offsets), written in the same transaction as the samples, so after a restart `seq` goes on
increasing and a wrapped counter keeps its offset. Only the agent's main thread touches the
connection; inserts and deletes are batched, one transaction per call.

Each sample is kept as its contract JSON (`body`), encoded once when it is stored: a drain then moves
bytes, not Python objects, and acknowledged rows go in id ranges (one statement per range).

Receipts (docs/DESIGN.md §4): a row the broker acknowledged is only "sent" (`first_sent`, and `due`:
when to send it again unless a receipt came, backing off per attempt); the collector's receipt
names (station, seq) ranges, which is why `seq` has a column and an index. Layout 1 files (no such
columns) are upgraded in place when opened.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import orjson

from shopfloor.contract import Sample
from shopfloor.errors import ShopfloorError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the send cursor relies on it
    station TEXT NOT NULL,
    body BLOB NOT NULL,  -- the sample as contract JSON, without `v`
    seq INTEGER,  -- the sample's seq, for receipts
    first_sent INTEGER,  -- ms of the first PUBACK; NULL: never acknowledged by a broker
    due INTEGER,  -- ms after which it is sent again unless a receipt came; NULL: unsent or in flight
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS station_state (
    station TEXT PRIMARY KEY,
    next_seq INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    counters BLOB NOT NULL
);
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS outbox_seq ON outbox (station, seq);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (due) WHERE due IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (first_sent) WHERE first_sent IS NOT NULL;
"""
_UPGRADE_FROM_1 = """
ALTER TABLE outbox ADD COLUMN seq INTEGER;
ALTER TABLE outbox ADD COLUMN first_sent INTEGER;
ALTER TABLE outbox ADD COLUMN due INTEGER;
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
UPDATE outbox SET seq = json_extract(body, '$.seq');
"""


FORMAT = 2  # the outbox file's layout (PRAGMA user_version); a new layout gets a new number
RETURN_SPACE_PAGES = 2_500  # about 10 MB of free pages (4 KB each) before they go back to the disk


class OutboxError(ShopfloorError):
    """The outbox file cannot be opened or written (path, permissions, full disk)."""


@dataclass(slots=True)
class StationState:
    """What must survive a restart for one station."""

    next_seq: int = 0
    last_ts: int = -1
    counters: dict[str, dict[str, int]] = field(default_factory=dict)


class Row(NamedTuple):
    id: int
    station: str
    body: bytes  # the sample's JSON

    @property
    def sample(self) -> Sample:
        return orjson.loads(self.body)


def _fix(path: Path, error: sqlite3.Error) -> OutboxError:
    text = str(error)
    if "full" in text:
        hint = "free disk space on that drive or point `outbox` at a bigger one"
    elif "locked" in text:
        hint = "another agent process uses this outbox: stop it, or give each agent its own outbox"
    elif "readonly" in text or "unable to open" in text or "permission" in text.lower():
        hint = "make the folder writable by the agent's user or set `outbox` to a writable path"
    else:
        hint = "check the disk and the file; move a damaged file aside to start a new outbox"
    return OutboxError(f"outbox {path}: {text}: {hint}")


class Outbox:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutboxError(f"outbox {self.path}: cannot create its folder ({error.strerror}): "
                              f"set `outbox` to a writable path") from None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0.5)
            # a new file gives the space of a drained backlog back to the disk (see `delete`)
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # One process per outbox: two agents on one file would send each sample twice and
            # number them twice. The exclusive lock is taken now and held until close.
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            if self._check_format() == 1:
                self._db.executescript(f"BEGIN IMMEDIATE; {_UPGRADE_FROM_1} COMMIT;")
            self._db.executescript(_SCHEMA)
            self._db.executescript(_INDEXES)
            self._db.execute(f"PRAGMA user_version={FORMAT}")
            with self._transaction():
                self._backlog = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        except (sqlite3.Error, OutboxError) as error:
            if hasattr(self, "_db"):
                self._db.close()
            raise error if isinstance(error, OutboxError) else _fix(self.path, error) from None

    def _check_format(self) -> int | None:
        """The layout found (None: a new file); one this agent cannot read fails now, in one line."""
        tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        found = self._db.execute("PRAGMA user_version").fetchone()[0]
        if "outbox" not in tables:
            return None
        if found not in (1, FORMAT):
            raise OutboxError(f"outbox {self.path} has layout {found}, this agent writes layout {FORMAT}: "
                              f"let the old agent version drain it, or move the file aside")
        return found

    @property
    def backlog(self) -> int:
        """Samples on disk not yet acknowledged by the broker."""
        return self._backlog

    def close(self) -> None:
        self._db.close()

    def station_state(self, station: str) -> StationState:
        row = self._db.execute("SELECT next_seq, last_ts, counters FROM station_state WHERE station = ?",
                               (station,)).fetchone()
        if row is None:
            return StationState()
        return StationState(row[0], row[1], orjson.loads(row[2]))

    def append(self, samples: Sequence[tuple[str, Sample]], states: dict[str, StationState]) -> None:
        """Store samples and the stations' new states in one transaction (all or nothing)."""
        if not samples and not states:
            return
        rows = [(station, orjson.dumps(sample), sample["seq"]) for station, sample in samples]
        try:
            self._db.execute("PRAGMA synchronous=FULL")
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO outbox (station, body, seq) VALUES (?, ?, ?)", rows)
                self._db.executemany(
                    "INSERT OR REPLACE INTO station_state (station, next_seq, last_ts, counters) "
                    "VALUES (?, ?, ?, ?)",
                    [(name, st.next_seq, st.last_ts, orjson.dumps(st.counters))
                     for name, st in states.items()])
        except sqlite3.Error as error:
            raise _fix(self.path, error) from None
        self._backlog += len(rows)

    def after(self, cursor: int, limit: int) -> list[Row]:
        """Up to `limit` samples with an id above `cursor`, oldest first."""
        return list(map(Row._make, self._db.execute(
            "SELECT id, station, body FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (cursor, limit))))

    def rows(self, ids: Iterable[int]) -> list[Row]:
        """The rows with these ids that are still on disk, oldest first."""
        found: list[Row] = []
        for first, last in id_ranges(ids):
            found.extend(map(Row._make, self._db.execute(
                "SELECT id, station, body FROM outbox WHERE id BETWEEN ? AND ? ORDER BY id", (first, last))))
        return found

    def delete(self, ids: Iterable[int]) -> None:
        """Forget acknowledged samples (one transaction, one statement per run of consecutive ids)."""
        self._delete("DELETE FROM outbox WHERE id BETWEEN ? AND ?", id_ranges(ids))

    def mark_sent(self, ids: Iterable[int], now_ms: int, timeout_ms: int, max_ms: int) -> None:
        """The broker acknowledged these rows: keep them as sent, due again after the timeout, doubling
        per attempt up to `max_ms` (a long InfluxDB outage must not flood the broker with resends)."""
        self._update("UPDATE outbox SET first_sent = coalesce(first_sent, ?1), attempts = attempts + 1, "
                     "due = ?1 + min(?3, ?2 * (1 << min(attempts, 20))) WHERE id BETWEEN ?4 AND ?5",
                     [(now_ms, timeout_ms, max_ms, first, last) for first, last in id_ranges(ids)])

    def due(self, now_ms: int, limit: int, everything: bool = False) -> list[Row]:
        """Sent rows whose receipt is overdue (or, after a reconnect, every sent row), oldest first; they
        are taken off the due list until the broker acknowledges them again."""
        rows = list(map(Row._make, self._db.execute(
            "SELECT id, station, body FROM outbox WHERE due IS NOT NULL AND due <= ? ORDER BY id LIMIT ?",
            (2**62 if everything else now_ms, limit))))
        self._update("UPDATE outbox SET due = NULL WHERE id BETWEEN ? AND ?",
                     id_ranges(row.id for row in rows))
        return rows

    def receipt(self, receipts: Iterable[tuple[str, Iterable[tuple[int, int]]]]) -> int:
        """Delete what the collectors stored: (station, seq ranges) each; returns the rows deleted."""
        pairs = [(station, first, last) for station, ranges in receipts for first, last in ranges]
        return self._delete("DELETE FROM outbox WHERE station = ? AND seq BETWEEN ? AND ?", pairs)

    def _delete(self, statement: str, parameters: list[tuple]) -> int:
        """Rows deleted in one transaction; once the outbox is empty its free pages go back to the disk."""
        if not parameters:
            return 0
        try:
            # a delete lost to a power cut only means a duplicate send, which lands on the same point
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._transaction():
                deleted = self._db.executemany(statement, parameters).rowcount
        except sqlite3.Error as error:
            raise _fix(self.path, error) from None
        self._backlog -= deleted
        if self._backlog == 0:
            # a failure here (full disk) only postpones it to the next drain; the delete itself is done
            with contextlib.suppress(sqlite3.Error):
                self._give_back_space()
        return deleted

    def stations_waiting(self) -> dict[str, int]:
        """Rows on disk per station: a station taken out of the config may still have some."""
        return dict(self._db.execute("SELECT station, count(*) FROM outbox GROUP BY station"))

    def unreceipted(self, now_ms: int) -> tuple[int, float]:
        """(samples the broker acknowledged that no receipt confirmed yet, age in s of the oldest)."""
        count, oldest = self._db.execute(
            "SELECT count(*), min(first_sent) FROM outbox WHERE first_sent IS NOT NULL").fetchone()
        return count, 0.0 if oldest is None else max(0.0, (now_ms - oldest) / 1000)

    def _update(self, statement: str, parameters: list[tuple]) -> None:
        if not parameters:
            return
        try:
            self._db.execute("PRAGMA synchronous=NORMAL")  # bookkeeping: lost, a sample only goes twice
            with self._transaction():
                self._db.executemany(statement, parameters)
        except sqlite3.Error as error:
            raise _fix(self.path, error) from None

    def _give_back_space(self) -> None:
        """After a long outage drained, return the free pages to the disk (a week is 600 MB)."""
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        if free > RETURN_SPACE_PAGES:
            self._db.executescript("PRAGMA incremental_vacuum;")  # stepped to the end: every free page
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file shrinks at the checkpoint

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


def id_ranges(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ids as (first, last) runs: the acks of a drained backlog collapse into a few ranges."""
    ranges: list[tuple[int, int]] = []
    first = last = None
    for id_ in sorted(set(ids)):
        if last is not None and id_ == last + 1:
            last = id_
            continue
        if first is not None:
            ranges.append((first, last))
        first = last = id_
    if first is not None:
        ranges.append((first, last))
    return ranges


class _Transaction:
    """BEGIN ... COMMIT, or ROLLBACK on any error (the connection runs in autocommit mode otherwise)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:
            self._db.execute("ROLLBACK")
