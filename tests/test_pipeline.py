"""The telemetry pipeline on the real servers: publisher -> Mosquitto -> collector -> InfluxDB.

Each test runs its own stack (Mosquitto + InfluxDB child processes) so that faults injected into one
server never touch another test. Storage is compared sample by sample as (time, seq) pairs, with
times drawn apart from seq (support.Stamps), so a loss, a duplicate or a wrong time all show.
"""

from __future__ import annotations

import subprocess
import time

import orjson
import pytest
from conftest import wait_until
from support import (
    STAMPS,
    Publisher,
    RejectWatcher,
    publish_in_background,
    stored_points,
    stored_seqs,
    stored_total,
)

from shopfloor.contract import StationKey, telemetry_topic
from shopfloor.settings import mqtt_endpoint

pytestmark = pytest.mark.servers


def expect_all(own_store, plant: str, expected: dict[str, list[int]], timeout_s: float = 60) -> None:
    """Every published sample stored once: the same seq at the same time it was published with."""
    total = sum(len(seqs) for seqs in expected.values())
    wait_until(lambda: stored_total(own_store, plant) >= total, timeout_s, f"{total} points")
    assert stored_points(own_store, plant) == {
        station: STAMPS.of(StationKey(plant, "l1", station), seqs) for station, seqs in expected.items()}
    assert stored_total(own_store, plant) == total


def test_every_sample_is_stored_exactly_once(own_stack, own_store, plant_id, collector_process):
    collector_process(own_stack, own_store.database)
    publisher = Publisher(own_stack.mosquitto.url, "pub")
    keys = [StationKey(plant_id, "l1", f"s{i}") for i in range(3)]
    publisher.publish(keys[0], range(400))  # single-sample messages
    publisher.publish(keys[1], range(1000), batch=100)  # batch messages
    publisher.publish(keys[2], range(300), batch=7)
    publisher.publish(keys[2], range(0, 50))  # the same samples again: at-least-once, stored once
    publisher.close()
    expect_all(own_store, plant_id, {"s0": list(range(400)), "s1": list(range(1000)),
                                     "s2": list(range(300))})


def test_collector_killed_mid_stream_loses_and_duplicates_nothing(own_stack, own_store, plant_id,
                                                                  collector_process):
    collector = collector_process(own_stack, own_store.database, client_id="c1")
    publisher = Publisher(own_stack.mosquitto.url, "pub")
    key = StationKey(plant_id, "l1", "s1")
    stream = publish_in_background(publisher, key, range(6000), pace_s=0.0005)
    time.sleep(1.0)
    collector.kill()
    time.sleep(1.0)
    collector_process(own_stack, own_store.database, client_id="c1")  # resumes the session
    stream.join(60)
    publisher.close()
    expect_all(own_store, plant_id, {"s1": list(range(6000))})


def test_influxdb_down_for_30_s_loses_nothing(own_stack, own_store, plant_id, collector_process):
    collector = collector_process(own_stack, own_store.database, client_id="c1")
    publisher = Publisher(own_stack.mosquitto.url, "pub")
    key = StationKey(plant_id, "l1", "s1")
    publisher.publish(key, range(0, 100))
    wait_until(lambda: stored_total(own_store, plant_id) == 100, 20, "the first 100 points")
    own_stack.influxdb.stop()
    stream = publish_in_background(publisher, key, range(100, 3100), pace_s=0.005)
    time.sleep(30)
    assert collector.running(), "the collector must ride out the outage"
    own_stack.influxdb.start()
    stream.join(60)
    publisher.close()
    expect_all(own_store, plant_id, {"s1": list(range(3100))}, timeout_s=90)
    assert "retrying in" in collector.log()


def test_broker_restart_loses_nothing(own_stack, own_store, plant_id, collector_process):
    collector = collector_process(own_stack, own_store.database, client_id="c1")
    key = StationKey(plant_id, "l1", "s1")
    publisher = Publisher(own_stack.mosquitto.url, "pub")
    publisher.publish(key, range(0, 500))
    publisher.close()
    collector.stop()  # queued for the collector's persistent session from here on
    publisher = Publisher(own_stack.mosquitto.url, "pub")
    publisher.publish(key, range(500, 2500), batch=50)
    publisher.close()
    own_stack.mosquitto.stop()
    own_stack.mosquitto.start()
    collector_process(own_stack, own_store.database, client_id="c1")
    publisher = Publisher(own_stack.mosquitto.url, "pub")
    publisher.publish(key, range(2500, 3000))
    publisher.close()
    expect_all(own_store, plant_id, {"s1": list(range(3000))})


def test_a_plain_mosquitto_pub_sample_is_stored(stack, store, plant_id, collector_process):
    collector_process(stack, store.database, group=f"g{plant_id}", session_expiry=0)
    endpoint = mqtt_endpoint(stack.mosquitto.url)
    payload = b'{"v":1,"ts":1790000000000,"seq":7,"count":41,"queue":3,"scrap":1,"state":"blocked"}'
    subprocess.run(["mosquitto_pub", "-h", endpoint.host, "-p", str(endpoint.port), "-q", "1",
                    "-t", telemetry_topic(StationKey(plant_id, "l1", "s9")), "-m", payload], check=True)
    wait_until(lambda: stored_total(store, plant_id) == 1, 20, "the mosquitto_pub sample")
    row = store.query(f"SELECT * FROM station WHERE plant = '{plant_id}'").rows()[0]
    assert row == {"time": 1790000000000, "count": 41, "line": "l1", "plant": plant_id, "queue": 3,
                   "scrap": 1, "seq": 7, "state": "blocked", "station": "s9"}


MALFORMED = {
    "bad JSON": (b'{"v":1,"ts":', "not UTF-8 JSON"),
    "not an object": (b"[1,2,3]", "JSON object"),
    "wrong type": (b'{"v":1,"ts":"now","seq":1,"count":1,"queue":0}', "ts"),
    "float count": (b'{"v":1,"ts":1790000000000,"seq":1,"count":1.5,"queue":0}', "count"),
    "bool queue": (b'{"v":1,"ts":1790000000000,"seq":1,"count":1,"queue":true}', "queue"),
    "negative count": (b'{"v":1,"ts":1790000000000,"seq":1,"count":-3,"queue":0}', "count"),
    "unknown state": (b'{"v":1,"ts":1790000000000,"seq":1,"count":1,"queue":0,"state":"coffee"}', "state"),
    "missing queue": (b'{"v":1,"ts":1790000000000,"seq":1,"count":1}', "queue"),
    "unknown key": (b'{"v":1,"ts":1790000000000,"seq":1,"count":1,"queue":0,"x":1}', "x"),
    "wrong version": (b'{"v":2,"ts":1790000000000,"seq":1,"count":1,"queue":0}', "v"),
    "oversized batch": (orjson.dumps({"v": 1, "samples": [
        {"ts": 1790000000000 + i, "seq": i, "count": i, "queue": 0} for i in range(1001)]}), "samples"),
    "empty batch": (b'{"v":1,"samples":[]}', "samples"),
    "bad sample in batch": (b'{"v":1,"samples":[{"ts":1790000000000,"seq":1,"count":1,"queue":0},'
                            b'{"ts":1790000000001,"seq":2,"count":1,"queue":-1}]}', "samples.1.queue"),
    "not UTF-8": (b'{"v":1,"state":"\xff"}', "UTF-8"),
}
# A newline in a topic never reaches the collector: Mosquitto disconnects a client that sends a control
# character in a topic (MQTT requires valid UTF-8 without them), so it is not in this list.
SPOOFED_STATIONS = ["s,1", "s 1", "s=1", "s\"1", "s\\1", "ü"]


def test_malformed_payloads_are_rejected_with_a_reason_and_never_stored(stack, store, plant_id,
                                                                        collector_process):
    collector = collector_process(stack, store.database, group=f"g{plant_id}", session_expiry=0)
    watcher = RejectWatcher(stack.mosquitto.url, f"w{plant_id}")
    rejected = watcher.rejected
    publisher = Publisher(stack.mosquitto.url, f"p{plant_id}")
    topic = telemetry_topic(StationKey(plant_id, "l1", "s1"))
    for payload, _ in MALFORMED.values():
        publisher.client.publish(topic, payload, qos=1).wait_for_publish(10)
    for station in SPOOFED_STATIONS:
        spoofed = f"shopfloor/v1/{plant_id}/l1/{station}/telemetry"
        publisher.client.publish(spoofed, b'{"v":1,"ts":1790000000000,"seq":1,"count":1,"queue":0}',
                                 qos=1).wait_for_publish(10)
    publisher.publish(StationKey(plant_id, "l1", "s1"), range(5))  # valid ones still flow afterwards
    publisher.close()
    mine = lambda: [r for r in rejected if plant_id in r["topic"]]  # noqa: E731
    wait_until(lambda: len(mine()) == len(MALFORMED) + len(SPOOFED_STATIONS), 20, "every reject")
    wait_until(lambda: stored_total(store, plant_id) == 5, 20, "the valid samples")
    watcher.close()
    reasons = [r["reason"] for r in mine()]
    for (name, (_, expected)), reason in zip(MALFORMED.items(), reasons, strict=False):
        assert expected in reason, f"{name}: {reason}"
    for reason in reasons[len(MALFORMED):]:
        assert "is not an identifier" in reason
    assert all(r["bytes"] > 0 and r["payload"] for r in mine())
    assert stored_seqs(store, plant_id) == {"s1": [0, 1, 2, 3, 4]}
    assert collector.running()
