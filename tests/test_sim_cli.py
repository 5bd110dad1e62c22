"""`shopfloor sim run | plant | whatif` as a user runs them: documented file formats, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from shopfloor.contract import read_records
from shopfloor.plant import load_plant
from simulators.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "simulators" / "scenarios"


def sim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shopfloor", "sim", *args], capture_output=True, text=True,
                          timeout=120)


def test_run_writes_telemetry_and_truth_on_the_same_clock(tmp_path):
    out, truth = tmp_path / "t.jsonl", tmp_path / "truth.json"
    done = sim("run", str(SCENARIOS / "moving_constraint.toml"), "--hours", "8", "--seed", "3",
               "--out", str(out), "--truth", str(truth), "--start", "2027-03-01T06:00:00+01:00")
    assert done.returncode == 0, done.stderr
    records = list(read_records(out))
    assert len(records) == 8 * 3600 * 10
    first_ms = 1_803_877_200_000  # 2027-03-01T05:00:00Z
    assert records[0][1]["ts"] == first_ms and records[-1][1]["ts"] == first_ms + (8 * 3600 - 1) * 1000
    assert {key.station for key, _ in records} == {f"s{j}" for j in range(1, 11)}
    assert {(key.plant, key.line) for key, _ in records} == {("p1", "l3")}
    document = orjson.loads(truth.read_bytes())
    assert (document["line"], document["plant"]) == ("l3", "p1")
    periods = document["periods"]
    assert [p["start"] for p in periods] == [first_ms, first_ms + 3 * 3_600_000, first_ms + 6 * 3_600_000]
    assert periods[-1]["end"] == first_ms + 8 * 3_600_000
    for period in periods:
        assert set(period) >= {"start", "end", "bottleneck", "runner_up", "margin", "regime", "gains"}
        assert period["regime"] in ("clear", "balanced") and set(period["gains"]) == set(f"s{j}" for j in
                                                                                          range(1, 11))
        best, second = sorted(period["gains"].values(), reverse=True)[:2]
        assert abs(period["margin"] - (best - second) / best) < 1e-3


def test_same_seed_writes_the_same_file(tmp_path):
    for name in ("a", "b"):
        assert sim("run", str(SCENARIOS / "qc_gap.toml"), "--hours", "0.2", "--seed", "9",
                   "--out", str(tmp_path / f"{name}.jsonl")).returncode == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_plant_file_matches_the_scenario(tmp_path):
    out = tmp_path / "plant.toml"
    assert sim("plant", str(SCENARIOS / "qc_gap.toml"), "--out", str(out)).returncode == 0
    plant = load_plant(out)
    assert plant == load_scenario(SCENARIOS / "qc_gap.toml").plant
    line = plant.get_line("l4")
    assert line.station_ids == ["a1", "a2", "a3", "qc", "a4", "pack"]
    assert [s.ideal_cycle_s for s in line.stations][3] == 37.5 and line.stations[0].buffer == 6


def test_whatif_prints_the_gain_against_the_target():
    done = sim("whatif", str(SCENARIOS / "qc_gap.toml"), "--station", "qc", "--add-machine", "--reps", "5",
               "--hours-per-day", "16")
    assert done.returncode == 0, done.stderr
    assert "qc +1 machine" in done.stdout and "units per 16 h day" in done.stdout
    assert "before -20" in done.stdout or "before -19" in done.stdout or "before -21" in done.stdout
    result = orjson.loads(sim("whatif", str(SCENARIOS / "qc_gap.toml"), "--station", "qc", "--speedup", "0.1",
                              "--reps", "5", "--json").stdout)
    assert result["gain"] > 0 and result["replications"] == 5


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[station]]\nid = "s1"\ncycle_s = -3\n')
    cases = [
        (("run", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "x.jsonl")), "does not exist"),
        (("run", str(bad), "--out", str(tmp_path / "x.jsonl")), "cycle_s"),
        (("run", str(SCENARIOS / "qc_gap.toml"), "--out", str(tmp_path / "x.jsonl"), "--start", "noon"),
         "ISO 8601"),
        (("whatif", str(SCENARIOS / "qc_gap.toml"), "--station", "zz", "--speedup", "0.1"),
         "no station 'zz'"),
        (("whatif", str(SCENARIOS / "qc_gap.toml"), "--station", "qc"), "--speedup"),
    ]
    for args, message in cases:
        done = sim(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_scenario_errors_name_the_field(tmp_path):
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[[station]]\nid = "s1"\ncycle_s = 30.0\ncv = 0.2\n[[change]]\nat_hour = 1\n'
                       'station = "s9"\nslow_by_pct = 10\n')
    done = sim("plant", str(unknown), "--out", str(tmp_path / "p.toml"))
    assert done.returncode == 2 and "names station 's9'" in done.stderr


def test_every_shipped_scenario_and_the_example_load():
    paths = [*sorted(SCENARIOS.glob("*.toml")), SCENARIOS.parent / "scenario.example.toml"]
    assert len(paths) == 5
    for path in paths:
        scenario = load_scenario(path)
        assert scenario.plant.get_line(scenario.line_id).station_ids == scenario.station_ids
        assert scenario.periods()[-1].end_h == scenario.hours
