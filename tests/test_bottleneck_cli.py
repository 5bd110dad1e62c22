"""`shopfloor analyze bottleneck` as a user runs it: JSON per docs/DESIGN.md §7, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from shopfloor.contract import StationKey, read_records, sample_line, write_records

T0 = 1_790_000_000_000
PLANT = """plant = "p1"
[[line]]
id = "l1"
[[line.station]]
id = "s1"
buffer = 4
ideal_cycle_s = 1.0
[[line.station]]
id = "s2"
buffer = 4
ideal_cycle_s = 2.0
"""


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shopfloor", "analyze", "bottleneck", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def files(tmp_path):
    plant = tmp_path / "plant.toml"
    plant.write_text(PLANT)
    telemetry = tmp_path / "t.jsonl"
    records = []
    for t in range(900):
        s1_state = "blocked" if t % 6 < 3 else "working"
        records.append((StationKey("p1", "l1", "s1"), {"ts": T0 + t * 1000, "seq": t, "count": t,
                                                        "queue": 0, "state": s1_state}))
        records.append((StationKey("p1", "l1", "s2"), {"ts": T0 + t * 1000, "seq": t, "count": t // 2,
                                                        "queue": 4, "state": "working"}))
    write_records(telemetry, records)
    return plant, telemetry


def test_json_output_matches_the_contract(files):
    plant, telemetry = files
    done = run("--plant", str(plant), "--line", "l1", "--telemetry", str(telemetry), "--window", "300",
               "--json")
    assert done.returncode == 0, done.stderr
    document = orjson.loads(done.stdout)
    assert set(document) == {"line", "method", "windows"}
    assert document["line"] == "l1" and isinstance(document["method"], str)
    assert len(document["windows"]) == len(range(T0 // 300_000 * 300_000, T0 + 900_000, 300_000))
    for window in document["windows"]:
        assert set(window) == {"start", "end", "bottleneck", "shares", "shifting", "runner_up", "margin",
                               "confidence", "method", "call", "right_at_least",
                               "pair_right_at_least"}
        assert window["method"] == document["method"] and 0 <= window["margin"] <= 1
        assert window["call"] in ("firm", "likely", "close")
        assert 0 < window["right_at_least"] < window["pair_right_at_least"] < 1
        assert window["end"] - window["start"] == 300_000 and window["start"] % 300_000 == 0
        assert set(window["shares"]) == {"s1", "s2"}
        assert all(0 <= v <= 1 for v in window["shares"].values())
        assert window["bottleneck"] == "s2"
        assert isinstance(window["shifting"], list)


@pytest.mark.parametrize("plant_text, expected", [
    ("plant = \n", "not valid TOML"),
    ('plant = "p1"\n[[line]]\nid = "l1"\n[[line.station]]\nid = "s1"\nbuffer = -1\nideal_cycle_s = 1\n',
     "buffer"),
])
def test_a_bad_plant_file_is_one_line(files, tmp_path, plant_text, expected):
    _, telemetry = files
    bad = tmp_path / "bad.toml"
    bad.write_text(plant_text)
    done = run("--plant", str(bad), "--line", "l1", "--telemetry", str(telemetry), "--window", "60", "--json")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and expected in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("content, expected", [
    (None, "does not exist"),
    (b'{"plant":"p1","line":"l1","station":"s1","ts":1,"seq":0,"count":-1,"queue":0}\n', ":1: count"),
    (b"not json\n", ":1: not JSON"),
    (b'{"plant":"p1","line":"l1","station":"s9","ts":1,"seq":0,"count":1,"queue":0}\n', "'s9'"),
    (b'{"plant":"p1","line":"l2","station":"s1","ts":1,"seq":0,"count":1,"queue":0}\n', "no samples"),
])
def test_a_bad_telemetry_file_is_one_line(files, tmp_path, content, expected):
    plant, _ = files
    telemetry = tmp_path / "bad.jsonl"
    if content is not None:
        telemetry.write_bytes(content)
    done = run("--plant", str(plant), "--line", "l1", "--telemetry", str(telemetry), "--window", "60")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr


@pytest.mark.servers
def test_the_same_timeline_from_influxdb_for_a_time_range(files, stack, store):
    plant, telemetry = files
    store.write([sample_line(key, sample) for key, sample in read_records(telemetry)])
    from_file = run("--plant", str(plant), "--line", "l1", "--telemetry", str(telemetry), "--window", "300",
                    "--json")
    env_run = subprocess.run(
        [sys.executable, "-m", "shopfloor", "analyze", "bottleneck", "--plant", str(plant), "--line", "l1",
         "--from", str(T0), "--to", "2026-09-21T14:28:20Z", "--window", "300", "--json"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "SHOPFLOOR_INFLUX_URL": stack.influxdb.url,
             "SHOPFLOOR_INFLUX_DB": store.database})
    assert env_run.returncode == 0, env_run.stderr
    assert orjson.loads(env_run.stdout) == orjson.loads(from_file.stdout)
    empty = subprocess.run(
        [sys.executable, "-m", "shopfloor", "analyze", "bottleneck", "--plant", str(plant), "--line", "l1",
         "--from", "2020-01-01T00:00Z", "--to", "2020-01-01T01:00Z", "--window", "300",
         "--influx-url", stack.influxdb.url, "--influx-db", store.database],
        capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1 and "no samples" in empty.stderr
