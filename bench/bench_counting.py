"""What counting good units inside InfluxDB costs (shopfloor.counters' InfluxQL, the boards' output).

Run: `python bench/bench_counting.py [--days 1] [--repeat 3]`

Real InfluxDB on loopback (shopfloor.stack, in a temporary directory). One exit station at 1 Hz for
--days days (count and scrap), then, best of --repeat: the boards' hourly good-units query over the
range (shopfloor.counters.influxql_good_units grouped by hour), and the reference, one
non_negative_difference scan of the count per hour (the former to-date query, which lost a reset's
units and read a missing scrap as 0).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import best_of  # bench/timing.py: run as `python bench/<name>.py`

from shopfloor.counters import influxql_good_units  # noqa: E402
from shopfloor.stack import Stack  # noqa: E402
from shopfloor.store import Store  # noqa: E402

START_MS = 1_789_948_800_000  # 2026-09-21 00:00 UTC


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    seconds = args.days * 86_400
    with tempfile.TemporaryDirectory() as state:
        stack = Stack(Path(state))
        stack.up()
        try:
            store = Store(stack.influxdb.url, "bench_counting")
            store.create_database()
            lines = [f"station,plant=p,line=l,station=s count={i // 2}i,queue=0i,scrap={i // 50}i "
                     f"{START_MS + i * 1000}" for i in range(seconds)]
            for first in range(0, len(lines), 20_000):
                store.write(lines[first:first + 20_000])
            start, end = f"{START_MS + 3_600_000}ms", f"{START_MS + seconds * 1000 - 1}ms"
            where = "\"plant\" = 'p'"
            hourly = (f'SELECT sum("n") AS "good" FROM {influxql_good_units("station", where, start, end)} '
                      f"WHERE time >= {start} - 60m AND time <= {end} GROUP BY time(1h) fill(none)")
            raw = (f'SELECT sum("n") FROM (SELECT non_negative_difference("count") AS "n" FROM station '
                   f"WHERE {where} AND time >= {start} AND time <= {end}) GROUP BY time(1h) fill(none)")
            took, rows = best_of(args.repeat, lambda: store.query(hourly).rows())
            reference, _ = best_of(args.repeat, lambda: store.query(raw).rows())
            good = sum(row["good"] for row in rows)
            expected = (seconds - 1) // 2 - 1800 - ((seconds - 1) // 50 - 72)
            print(f"{seconds:,} samples: hourly good units {took:.2f} s ({good:.0f}, expected {expected}); "
                  f"one non_negative_difference scan {reference:.2f} s ({took / reference:.1f}x)")
        finally:
            stack.down()


if __name__ == "__main__":
    main()
