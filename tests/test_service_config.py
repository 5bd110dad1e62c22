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
    import datetime as dt
    from zoneinfo import ZoneInfo

    from analysis.service import shift_spans
    from shopfloor.plan import load_plan

    berlin = ZoneInfo("Europe/Berlin")

    def ms(*args) -> int:
        return int(dt.datetime(*args, tzinfo=berlin).timestamp() * 1000)

    fixed = shift_spans(berlin, ms(2027, 3, 1, 0), ms(2027, 3, 2, 0), "06:00", 8.0)
    expected = [("3", ms(2027, 2, 28, 22)), ("1", ms(2027, 3, 1, 6)), ("2", ms(2027, 3, 1, 14)),
                ("3", ms(2027, 3, 1, 22))]
    assert [(name, start) for name, start, _ in fixed] == expected
    # The night the clocks go forward (28 March 2027, 02:00 -> 03:00) the 22:00 shift lasts 7 hours.
    night = shift_spans(berlin, ms(2027, 3, 27, 23), ms(2027, 3, 28, 1), "06:00", 8.0)
    assert night[0][2] - night[0][1] == 7 * 3_600_000
    plan = load_plan(Path(__file__).resolve().parents[1] / "examples" / "plan.toml")
    weekend = shift_spans(berlin, ms(2027, 3, 6, 0), ms(2027, 3, 8, 0), "06:00", 8.0, plan)
    assert weekend == [], "no shifts start on a Saturday or Sunday in the example plan"
    monday = shift_spans(berlin, ms(2027, 3, 8, 0), ms(2027, 3, 9, 0), "06:00", 8.0, plan)
    assert [name for name, _, _ in monday] == [shift.name for shift in plan.calendar.shifts]
