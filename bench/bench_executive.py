"""What the executive's month and quarter panels cost, from raw samples (before) and from the hourly
output rollup (after, analysis/output_hours.py), on the same data.

Run: `python bench/bench_executive.py [--days 31] [--repeat 3]`

Real InfluxDB on loopback (shopfloor.stack, in a temporary directory). One line's exit station at
1 Hz for --days days from a month's start (count and scrap, a PLC reset every 10 days), then the
rollup is written as `shopfloor analysis rollup` writes history (`write_hours`, a day per query) and, best
of --repeat, each panel query over the whole range: the to-date sum (the "Month/Quarter to date"
bars, the forecast's and the goal load's actual) and the daily bars, before (the raw-sample queries
the panels ran until now: `range_output`, and per-day sums of `_hourly`) and after (`period_output`,
`daily_output`). The run exits 1 unless before and after give the same numbers. Last, one live
loop's rollup round (the running hour and the two before it) on a line of --round-stations stations.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import best_of  # bench/timing.py: run as `python bench/<name>.py`

from analysis.output_hours import HISTORY_CHUNK_HOURS, write_hours  # noqa: E402
from dashboards import queries as q  # noqa: E402
from dashboards.macros import QueryContext, expand  # noqa: E402
from shopfloor.plant import Plant  # noqa: E402
from shopfloor.stack import Stack  # noqa: E402
from shopfloor.store import Store  # noqa: E402

START_MS = 1_790_812_800_000  # 2026-10-01 00:00 UTC: a month's and a quarter's start
BATCH = 20_000


def sample(i: int) -> str:
    """Second i: a unit every 2 s, a scrap every 50 s, the PLC counter reset every 10 days."""
    since_reset = i % 864_000
    return (f"station,plant=p,line=l,station=s count={since_reset // 2}i,queue=0i,scrap={since_reset // 50}i "
            f"{START_MS + i * 1000}")


def run(store: Store, text: str, context: QueryContext) -> list[dict]:
    return store.query(expand(text, context)).rows()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--round-stations", type=int, default=20, help="stations of the live round timed")
    args = parser.parse_args()
    seconds = args.days * 86_400
    plant = Plant.model_validate({"plant": "p", "timezone": "UTC", "line": [
        {"id": "l", "station": [{"id": "s", "buffer": 4, "ideal_cycle_s": 2.0}]}]})
    with tempfile.TemporaryDirectory() as state:
        stack = Stack(Path(state))
        stack.up()
        try:
            store = Store(stack.influxdb.url, "bench_executive", timeout_s=600)
            store.create_database()
            for first in range(0, seconds, BATCH):
                store.write([sample(i) for i in range(first, min(seconds, first + BATCH))])
            end = START_MS + seconds * 1000 - 1
            backfill, written = best_of(1, lambda: write_hours(store, plant, "l", START_MS, end + 1, end + 1,
                                                               chunk_hours=HISTORY_CHUNK_HOURS))
            context = QueryContext(START_MS, end, {"plant": "p", "line": "l", "timezone": "UTC",
                                                   "bucket_offset": "0s"})
            exits = q.exit_filter(plant.lines)
            old_daily = (f'SELECT sum("actual") AS "actual" FROM ({q._hourly(exits)}) WHERE {q.HOUR_RANGE} '
                         f'GROUP BY time(1d), "line" fill(none) {q.LOCAL_CLOCK}')
            failed = False
            print(f"{seconds:,} samples ({args.days} days); "
                  f"rollup backfill: {written:,} hours in {backfill:.1f} s")
            for name, before, after in (("to date", q.range_output(exits), q.period_output(exits)),
                                        ("daily bars", old_daily, q.daily_output(exits))):
                slow, old_rows = best_of(args.repeat, lambda text=before: run(store, text, context))
                fast, new_rows = best_of(args.repeat, lambda text=after: run(store, text, context))
                old = {row["time"]: row["actual"] for row in old_rows if row["actual"]}
                new = {row["time"]: row["actual"] for row in new_rows if row["actual"]}
                same = sorted(old.values()) == sorted(new.values()) if name == "to date" else old == new
                failed |= not same
                print(f"{name}: raw samples {slow:.2f} s, rollup {fast:.3f} s ({slow / fast:.0f}x); "
                      f"{'same numbers' if same else f'DIFFERENT: {old} vs {new}'} "
                      f"(total {sum(new.values()):,.0f})")
            failed |= not live_round(store, args.round_stations, args.repeat)
        finally:
            stack.down()
    sys.exit(1 if failed else 0)


def live_round(store: Store, stations: int, repeat: int) -> bool:
    """One live-loop rollup round (the running hour and the two before it) on a line of `stations`
    stations at 1 Hz, timed; True when its hours hold the units the samples make."""
    ids = [f"r{k}" for k in range(stations)]
    plant = Plant.model_validate({"plant": "p", "timezone": "UTC", "line": [
        {"id": "round", "station": [{"id": sid, "buffer": 4, "ideal_cycle_s": 2.0} for sid in ids]}]})
    seconds = 4 * 3600
    for sid in ids:
        for first in range(0, seconds, BATCH):
            store.write([f"station,plant=p,line=round,station={sid} count={i // 2}i,queue=0i,scrap=0i "
                         f"{START_MS + i * 1000}" for i in range(first, min(seconds, first + BATCH))])
    now = START_MS + seconds * 1000 - 1
    took, written = best_of(repeat, lambda: write_hours(store, plant, "round", now - 2 * 3_600_000 - 1,
                                                        now + 1, now))
    rows = store.query("SELECT sum(\"good\") FROM output_hour WHERE \"line\" = 'round'").rows()
    good = rows[0]["sum"] if rows else 0
    expected = stations * 3 * 1800  # hours 1-3 of the 4: a unit every 2 s
    print(f"live round, {stations} stations at 1 Hz: {written} station hours in {took:.2f} s "
          f"({good:,} good units, expected {expected:,})")
    return good == expected


if __name__ == "__main__":
    main()
