"""What the targets and indicators cost, against reading the data they work on.

Run: `python bench/bench_targets.py [--stations 20] [--hours 24] [--repeat 3]`

No servers. Two figures, each the best of --repeat:
1. Decomposition of a year (three shifts, holidays, downtime, DST) into all seven grains, against
   loading and validating the plan file (the reference every command pays anyway).
2. A day's report of a simulated line at 1 Hz (seven indicators, hour by hour, month and quarter to
   date), against reading the same telemetry file with analysis.telemetry.from_file.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import best_of  # bench/timing.py: run as `python bench/<name>.py`

from analysis.indicators import by_station  # noqa: E402
from analysis.rollup import day_report  # noqa: E402
from analysis.targets import GRAINS, decompose  # noqa: E402
from analysis.telemetry import from_file  # noqa: E402
from shopfloor.contract import write_records  # noqa: E402
from shopfloor.plan import Plan, load_plan  # noqa: E402
from simulators.scenario import Scenario  # noqa: E402
from simulators.telemetry import parse_start, simulate_telemetry  # noqa: E402

PLAN = """
[[objective]]
line = "l1"
year = 2026
units = 1500000
[calendar]
timezone = "Europe/Berlin"
workdays = ["mon", "tue", "wed", "thu", "fri", "sat"]
shifts = [{ name = "A", start = "06:00", end = "14:00" }, { name = "B", start = "14:00", end = "22:00" },
          { name = "N", start = "22:00", end = "06:00" }]
holidays = ["2026-01-01", "2026-05-01", "2026-12-24", "2026-12-25"]
downtime = [{ date = "2026-08-03", hours = 16 }]
reserve = 0.1
"""



def decompose_all(plan: Plan) -> int:
    targets = decompose(plan, "l1")
    return sum(len(targets.periods(grain)) for grain in GRAINS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        plan_path = Path(folder) / "plan.toml"
        plan_path.write_text(PLAN)
        load_s, plan = best_of(args.repeat, lambda: load_plan(plan_path))
        decompose_s, periods = best_of(args.repeat, lambda: decompose_all(plan))
        print(f"decomposition of a year into {periods:,} periods (7 grains): {decompose_s * 1000:.1f} ms, "
              f"{decompose_s / load_s:.1f}x loading the plan file ({load_s * 1000:.2f} ms)")

        specs = [{"id": f"s{j}", "cycle_s": 30.0 if j != args.stations // 2 else 33.0, "cv": 0.3,
                  "buffer": 2 + j % 4, "mtbf_min": 90, "mttr_min": 4} for j in range(args.stations)]
        scenario = Scenario.model_validate({"station": specs, "hours": args.hours, "warmup_min": 10})
        start_ms = parse_start("2026-09-21T06:00:00+02:00")  # a Monday of the plan year, shift A
        telemetry_path = Path(folder) / "line.jsonl"
        samples = write_records(telemetry_path, simulate_telemetry(scenario, args.hours, 0, start_ms).records(
            scenario.plant_id, scenario.line_id))
        plant = scenario.plant
        read_s, recorded = best_of(args.repeat, lambda: from_file(plant, scenario.line_id, telemetry_path))
        series = by_station(recorded)
        line = plant.line[0]
        end_ms = recorded.end_ms + 1
        report_s, report = best_of(args.repeat, lambda: day_report(plan, line, series, start_ms, end_ms))
        print(f"day report of {args.stations} stations x {args.hours:g} h at 1 Hz ({samples:,} samples): "
              f"{report_s * 1000:.0f} ms, {report_s / read_s:.2f}x reading the telemetry file "
              f"({read_s * 1000:.0f} ms); constraint {report.indicators.constraint}, "
              f"line OEE {report.indicators.line_oee.oee:.0%}")


if __name__ == "__main__":
    main()
