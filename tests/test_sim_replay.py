"""Replay through the real pipeline: `sim replay` -> Mosquitto -> `collector run` -> InfluxDB.

The simulator's file and the stored points must agree sample by sample: same number of points per
station, and the same count, queue, state and seq at the same timestamps (`--keep-time`).
"""

from __future__ import annotations

import re
import subprocess
import sys

import orjson
import pytest
from conftest import wait_until
from support import stored_total

from shopfloor.contract import read_records, status_topic, write_records
from shopfloor.mqtt import make_client
from shopfloor.settings import mqtt_endpoint
from shopfloor.store import quote_string
from simulators.replay import agent_id
from simulators.scenario import Scenario
from simulators.telemetry import simulate_telemetry

pytestmark = pytest.mark.servers


def small_line(plant: str) -> Scenario:
    specs = [{"id": f"s{j}", "cycle_s": 30.0 if j != 2 else 36.0, "cv": 0.3, "buffer": 2,
              "mtbf_min": 20, "mttr_min": 2} for j in range(4)]
    return Scenario.model_validate({"plant": plant, "line": "l1", "station": specs, "hours": 0.25,
                                    "warmup_min": 5})


def sim(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shopfloor", "sim", *args], capture_output=True, text=True,
                          timeout=timeout)


def stored(store, plant: str) -> dict[str, list[tuple]]:
    result = store.query(f"SELECT count, queue, state, seq FROM station WHERE plant = {quote_string(plant)} "
                         "GROUP BY station")
    return {s.tags["station"]: [(r["time"], r["count"], r["queue"], r["state"], r["seq"]) for r in s.rows()]
            for s in result.series}


def retained_status(url: str, plant: str, station: str) -> dict:
    """The retained status message of a station's virtual agent, as a new subscriber sees it."""
    import queue

    endpoint = mqtt_endpoint(url)
    client = make_client(f"status-reader-{plant}", endpoint)
    got: queue.Queue = queue.Queue()
    client.on_message = lambda c, u, message: got.put(message.payload)
    client.connect(endpoint.host, endpoint.port)
    client.subscribe(status_topic(plant, "l1", agent_id(station)), qos=1)
    client.loop_start()
    try:
        return orjson.loads(got.get(timeout=10))
    finally:
        client.disconnect()
        client.loop_stop()


def test_replayed_file_lands_in_influxdb_point_for_point(stack, store, plant_id, collector_process, tmp_path):
    scenario = small_line(plant_id)
    telemetry = simulate_telemetry(scenario, seed=4)
    path = tmp_path / "line.jsonl"
    written = write_records(path, telemetry.records(plant_id, "l1"))
    assert written == 4 * 900
    collector_process(stack, store.database)
    done = sim("replay", str(path), "--speed", "300", "--keep-time", "--quiet", "--max-pending", "50",
               "--mqtt-url", stack.mosquitto.url)
    assert done.returncode == 0, done.stderr
    assert f"published {written} samples of 4 stations" in done.stdout
    wait_until(lambda: stored_total(store, plant_id) >= written, 60, f"{written} points")
    expected: dict[str, list[tuple]] = {}
    for key, sample in read_records(path):
        expected.setdefault(key.station, []).append((sample["ts"], sample["count"], sample["queue"],
                                                     sample["state"], sample["seq"]))
    got = stored(store, plant_id)
    assert {station: len(points) for station, points in got.items()} == {f"s{j}": 900 for j in range(4)}
    for station, points in got.items():
        assert points == expected[station], f"{station}: stored points differ from the file"
    assert retained_status(stack.mosquitto.url, plant_id, "s2")["online"] is False


def test_live_feed_publishes_the_requested_hours(stack, store, plant_id, collector_process, tmp_path):
    scenario_path = tmp_path / "live.toml"
    scenario_path.write_text(f'plant = "{plant_id}"\nline = "l1"\nhours = 0.01\nwarmup_min = 1\n'
                             '[[station]]\nid = "a"\ncycle_s = 20.0\ndistribution = "deterministic"\n'
                             '[[station]]\nid = "b"\ncycle_s = 25.0\ncv = 0.2\n')
    collector_process(stack, store.database)
    done = sim("replay", "--live", str(scenario_path), "--hours", "0.05", "--speed", "200", "--quiet",
               "--mqtt-url", stack.mosquitto.url)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: stored_total(store, plant_id) >= 360, 60, "360 points")
    got = stored(store, plant_id)
    assert {station: len(points) for station, points in got.items()} == {"a": 180, "b": 180}
    counts = [p[1] for p in got["b"]]
    assert counts == sorted(counts) and counts[-1] > 0, "a counter only grows"
    assert [p[4] for p in got["a"]] == list(range(180))


def test_replay_without_a_broker_is_one_clear_line(tmp_path):
    path = tmp_path / "one.jsonl"
    write_records(path, simulate_telemetry(small_line("p1"), hours=0.01).records("p1", "l1"))
    done = sim("replay", str(path), "--quiet", "--mqtt-url", "mqtt://127.0.0.1:9")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "cannot reach the MQTT broker" in done.stderr


def test_a_file_in_station_order_replays_every_sample_on_one_clock(stack, store, plant_id, collector_process,
                                                           tmp_path):
    telemetry = simulate_telemetry(small_line(plant_id), hours=0.02, seed=1)
    records = sorted(telemetry.records(plant_id, "l1"), key=lambda r: (r[0].station, r[1]["ts"]))
    path = tmp_path / "by_station.jsonl"
    write_records(path, records)
    collector_process(stack, store.database)
    done = sim("replay", str(path), "--speed", "100", "--quiet", "--max-rate", "20",
               "--mqtt-url", stack.mosquitto.url)
    assert done.returncode == 0, done.stderr
    messages, seconds = re.search(r"in (\d+) messages .* in ([\d.]+) s", done.stdout).groups()
    # Within the rate, plus one message per station from the round in flight and the final flush.
    assert int(messages) <= 20 * (float(seconds) + 1) + 2 * 4, "the rate stays bounded: batches instead"
    wait_until(lambda: stored_total(store, plant_id) >= len(records), 60, f"{len(records)} points")
    got = stored(store, plant_id)
    assert {station: len(points) for station, points in got.items()} == {f"s{j}": 72 for j in range(4)}
    first = [points[0][0] for points in got.values()]
    assert max(first) - min(first) == 0, "shifted to now together: every station starts at the same time"


def test_a_bad_line_stops_the_replay_before_anything_is_published(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"plant":"p1","line":"l1","station":"s1","ts":1,"seq":0,"count":1,"queue":0}\n'
                    '{"plant":"p1","line":"l1","station":"s1","ts":2,"seq":1,"count":"x","queue":0}\n')
    done = sim("replay", str(path), "--quiet", "--mqtt-url", "mqtt://127.0.0.1:9")
    assert done.returncode == 2 and f"{path}:2: count" in done.stderr


def test_ctrl_c_stops_a_live_feed_cleanly(stack, plant_id, tmp_path):
    import signal
    import time

    feed = subprocess.Popen([sys.executable, "-m", "shopfloor", "sim", "replay", "--live",
                             _write_live(tmp_path, plant_id),
                             "--speed", "20", "--quiet", "--mqtt-url", stack.mosquitto.url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        assert feed.poll() is None, feed.stderr.read() if feed.stderr else ""
        feed.send_signal(signal.SIGINT)
        out, err = feed.communicate(timeout=30)
    finally:
        if feed.poll() is None:
            feed.kill()
    assert feed.returncode == 0, err
    assert "every one acknowledged (stopped)" in out


def _write_live(tmp_path, plant: str) -> str:
    path = tmp_path / "feed.toml"
    path.write_text(f'plant = "{plant}"\n'
                    '[[station]]\nid = "a"\ncycle_s = 20.0\ncv = 0.2\n'
                    '[[station]]\nid = "b"\ncycle_s = 25.0\ncv = 0.2\n')
    return str(path)
