"""The analysis settings file: the sample is valid and complete, a wrong key is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from analysis.config import AnalysisSettings, load_settings

SAMPLE = Path(__file__).resolve().parents[1] / "analysis" / "analysis.sample.toml"


def test_the_sample_settings_file_holds_every_default():
    assert load_settings(SAMPLE) == AnalysisSettings()
    live = load_settings(SAMPLE).live_config(interval_s=2.0)
    assert live.interval_s == 2.0 and live.rules.down_min == 5.0


def test_a_wrong_settings_file_is_one_line(tmp_path):
    plant = tmp_path / "plant.toml"
    plant.write_text('plant = "p1"\n[[line]]\nid = "l1"\n[[line.station]]\nid = "s1"\nbuffer = 2\n'
                     "ideal_cycle_s = 10.0\n")
    settings = tmp_path / "analysis.toml"
    settings.write_text("[alerts]\ndown_min = -3\n")
    done = subprocess.run([sys.executable, "-m", "shopfloor", "analysis", "serve", "--plant", str(plant),
                           "--config", str(settings)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "alerts.down_min" in done.stderr


def test_shares_per_shift_use_the_plan_calendar_or_fixed_shifts():
    """The service's shifts are analysis.targets' calendar: the plan's, else the settings' rolling one."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from analysis.targets import rolling_calendar, shifts_between
    from shopfloor.plan import load_plan

    berlin = ZoneInfo("Europe/Berlin")

    def ms(*args) -> int:
        return int(dt.datetime(*args, tzinfo=berlin).timestamp() * 1000)

    def spans(calendar, start, end):
        return [(run.name, run.start_ms, run.end_ms) for run in shifts_between(calendar, start, end)]

    rolling = rolling_calendar("Europe/Berlin", "06:00", 8.0)
    fixed = spans(rolling, ms(2027, 3, 1, 0), ms(2027, 3, 2, 0))
    expected = [("3", ms(2027, 2, 28, 22)), ("1", ms(2027, 3, 1, 6)), ("2", ms(2027, 3, 1, 14)),
                ("3", ms(2027, 3, 1, 22))]
    assert [(name, start) for name, start, _ in fixed] == expected
    # The night the clocks go forward (28 March 2027, 02:00 -> 03:00) the 22:00 shift lasts 7 hours.
    night = spans(rolling, ms(2027, 3, 27, 23), ms(2027, 3, 28, 1))
    assert night[0][2] - night[0][1] == 7 * 3_600_000
    # 9-hour shifts: two fit in a day (three would overlap), from 06:00 on
    assert [shift.label() for shift in rolling_calendar("UTC", "06:00", 9).shifts] == ["1 06:00-15:00",
                                                                                      "2 15:00-00:00"]
    plan = load_plan(Path(__file__).resolve().parents[1] / "examples" / "plan.toml")
    weekend = spans(plan.calendar, ms(2027, 3, 6, 0), ms(2027, 3, 8, 0))
    assert weekend == [], "no shifts start on a Saturday or Sunday in the example plan"
    monday = spans(plan.calendar, ms(2027, 3, 8, 0), ms(2027, 3, 9, 0))
    assert [name for name, _, _ in monday] == [shift.name for shift in plan.calendar.shifts]
