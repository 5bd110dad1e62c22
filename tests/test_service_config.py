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
