"""What one huddle page refresh costs at the end of a full shift, against reading the shift's samples.

A shift (8 h) of the demo line (docker/scenario.toml, 5 stations, 1 Hz) from the real simulator goes
into a real InfluxDB on loopback with its hour targets; then `/api/huddle/l1`'s snapshot is timed cold
(the bottleneck detector runs on the shift's samples) and warm (the detector's answer from the cache,
as every screen but the first gets it within a minute). The reference, measured in the same run, is
one InfluxQL query that reads the same raw samples of the line's last station.

    python bench/bench_huddle.py [--hours 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from analysis.targets import decompose, target_lines
from dashboards.huddle_api import ConstraintCache, HuddleReader
from shopfloor.contract import read_records, sample_line
from shopfloor.plan import load_plan
from shopfloor.plant import load_plant
from shopfloor.stack import Stack
from shopfloor.store import Store

DOCKER = Path(__file__).parents[1] / "docker"
SHIFT_START = datetime(2026, 9, 21, 4, 0, tzinfo=UTC)  # 06:00 in Berlin: shift A of the demo plan


def best(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        stack = Stack(Path(folder) / "stack")
        stack.up()
        try:
            telemetry = Path(folder) / "shift.jsonl"
            subprocess.run([sys.executable, "-m", "shopfloor", "sim", "run", str(DOCKER / "scenario.toml"),
                            "--hours", str(args.hours), "--seed", "3", "--start", SHIFT_START.isoformat(),
                            "--out", str(telemetry)], check=True, capture_output=True)
            plant, plan = load_plant(DOCKER / "plant.toml"), load_plan(DOCKER / "plan.toml")
            store = Store(stack.influxdb.url, "bench_huddle")
            store.create_database()
            points = [sample_line(key, sample) for key, sample in read_records(telemetry)]
            for first in range(0, len(points), 5000):
                store.write(points[first:first + 5000])
            store.write(target_lines(decompose(plan, "l1", SHIFT_START.year), plant.plant, grains=("hour",)))
            now = int(SHIFT_START.timestamp() * 1000 + args.hours * 3_600_000) - 1000
            start = int(SHIFT_START.timestamp() * 1000)
            reference = best(lambda: store.query(
                f"SELECT \"count\", \"queue\", \"state\" FROM \"station\" WHERE \"line\" = 'l1' AND "
                f"\"station\" = 's5' AND time >= {start}ms AND time < {now}ms"), args.repeat)
            cold = best(lambda: HuddleReader(store, plant, plan).snapshot("l1", now_ms=now), args.repeat)
            cache = ConstraintCache()
            cached = HuddleReader(store, plant, plan, cache)
            cached.snapshot("l1", now_ms=now)
            warm = best(lambda: cached.snapshot("l1", now_ms=now), args.repeat)
        finally:
            stack.down()
    print(f"samples in the shift: {len(points):,} ({len(plant.lines[0].stations)} stations)")
    print(f"reference, reading one station's shift of samples: {reference * 1000:.0f} ms")
    print(f"snapshot cold (detector runs):  {cold * 1000:.0f} ms = {cold / reference:.1f}x the reference")
    print(f"snapshot warm (detector cached): {warm * 1000:.0f} ms = {warm / reference:.1f}x the reference")


if __name__ == "__main__":
    main()
