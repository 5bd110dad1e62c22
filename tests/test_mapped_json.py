"""The plant's own JSON topics through the collector, on the real Mosquitto and InfluxDB.

Three templates (ms, s and ISO 8601 timestamps, JSON paths into nested objects and lists, a state
table); every good message stored once (a redelivered one too), every bad one rejected with its reason.
Then a mapped `reason` (the agent's rules, shopfloor/reasons.py) and one value per topic
(`[[json_value]]`: bare values stamped on arrival, and small JSON objects with their own time).
"""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from conftest import wait_until
from support import BASE_TS, Publisher, RejectWatcher

from collector.mapped import Decoded
from shopfloor.stack import free_port
from shopfloor.store import quote_string

pytestmark = pytest.mark.servers

T0 = BASE_TS


def plant_file(tmp_path, plant: str, root: str) -> str:
    path = tmp_path / "plant.toml"
    path.write_text(f'''plant = "{plant}"
[[line]]
id = "l1"
[[line.station]]
id = "s1"
buffer = 4
ideal_cycle_s = 1.0
[[line.station]]
id = "s2"
buffer = 4
ideal_cycle_s = 1.0

[[json_topic]]
topic = "{root}/factory/{{line}}/{{station}}/metrics"
ts = "time"
count = "counters.good"
queue = "buffer.in"
scrap = "counters.scrap"
state = "status"
seq = "n"
states = {{ RUN = "working", STOP = "down" }}

[[json_topic]]
topic = "{root}/legacy/{{station}}/{{line}}/data"
ts = "t"
ts_unit = "s"
count = "c"
queue = "q.0"

[[json_topic]]
topic = "{root}/uns/{{line}}/{{station}}/state"
ts = "at"
ts_unit = "iso"
count = "good"
queue = "wip"
''')
    return str(path)


GOOD = [  # (topic under the root, payload, expected stored time, count)
    ("factory/l1/s1/metrics", {"time": T0, "n": 7, "counters": {"good": 10, "scrap": 1}, "buffer": {"in": 3},
                               "status": "RUN"}, T0, 10),
    ("legacy/s1/l1/data", {"t": (T0 + 1000) / 1000, "c": 11, "q": [2, 9]}, T0 + 1000, 11),
    ("legacy/s2/l1/data", {"t": (T0 + 1500) // 1000 + 0.5, "c": 4, "q": [0]}, T0 + 1500, 4),
    ("uns/l1/s1/state", {"at": "2026-09-21T14:13:22+00:00", "good": 12, "wip": 1}, 1_790_000_002_000, 12),
]
BAD = [  # (topic under the root, payload, a piece of the reason)
    ("factory/l1/s9/metrics", {"time": T0, "counters": {"good": 1}, "buffer": {"in": 0}},
     "names no line and station"),
    ("factory/l2/s1/metrics", {"time": T0, "counters": {"good": 1}, "buffer": {"in": 0}},
     "names no line and station"),
    ("factory/l1/s1/metrics", {"time": T0 + 5, "counters": {"good": "12"}, "buffer": {"in": 0}},
     "'counters.good' -> count"),
    ("factory/l1/s1/metrics", {"time": T0 + 6, "counters": {"good": 1.5}, "buffer": {"in": 0}},
     "'counters.good' -> count"),
    ("factory/l1/s1/metrics", {"time": T0 + 7, "counters": {"good": 1}, "buffer": {"in": -1}},
     "'buffer.in' -> queue"),
    ("factory/l1/s1/metrics", {"time": T0 + 8, "counters": {"good": 1}, "buffer": {"in": 0},
                               "status": "COFFEE"},
     "'status' value 'COFFEE' is not in the states table"),
    ("factory/l1/s1/metrics", {"time": T0 + 9, "counters": {"good": 1}}, "no value at path 'buffer.in'"),
    ("factory/l1/s1/metrics", {"time": "now", "counters": {"good": 1}, "buffer": {"in": 0}},
     "timestamp 'now' is not a number of ms"),
    ("uns/l1/s1/state", {"at": "2026-09-21T14:13:22", "good": 1, "wip": 0}, "has no UTC offset"),
    ("legacy/s1/l1/data", {"t": 1, "c": 1, "q": []}, "no value at path 'q.0'"),
    ("factory/l1/s1/metrics", b"{not json", "not UTF-8 JSON"),
    ("factory/l1/s1/metrics", {"time": T0 + 10, "n": -1, "counters": {"good": 1}, "buffer": {"in": 0}},
     "'n' -> seq"),
]


def test_mapped_json_topics_are_stored_once_and_bad_ones_rejected(stack, store, plant_id, tmp_path,
                                                                 collector_process):
    root = f"r{plant_id}"
    collector = collector_process(stack, store.database, group=f"g{plant_id}", session_expiry=0,
                                  plant=plant_file(tmp_path, plant_id, root))
    watcher = RejectWatcher(stack.mosquitto.url, f"w{plant_id}")
    publisher = Publisher(stack.mosquitto.url, f"p{plant_id}")
    for topic, payload, *_ in [*GOOD, GOOD[0], *BAD]:  # the first one twice: delivered again, stored once
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        publisher.client.publish(f"{root}/{topic}", body, qos=1).wait_for_publish(10)
    publisher.close()
    mine = lambda: [r for r in watcher.rejected if r["topic"].startswith(root)]  # noqa: E731
    wait_until(lambda: len(mine()) == len(BAD), 20, "every reject")
    query = lambda: store.query(f"SELECT * FROM station WHERE plant = {quote_string(plant_id)}").rows()  # noqa: E731
    wait_until(lambda: len(query()) >= len(GOOD), 20, "the good samples")
    rows = query()
    watcher.close()
    assert sorted((r["station"], r["time"], r["count"]) for r in rows) == sorted(
        (topic.split("/")[1 if topic.startswith("legacy") else 2], ts, count) for topic, _, ts, count in GOOD)
    first = next(r for r in rows if r["time"] == T0)
    assert first == {"time": T0, "plant": plant_id, "line": "l1", "station": "s1", "count": 10, "queue": 3,
                     "scrap": 1, "seq": 7, "state": "working"}
    assert next(r for r in rows if r["time"] == T0 + 1000)["seq"] == T0 + 1000  # no seq path: seq = ts
    for (topic, _, expected), rejected in zip(BAD, mine(), strict=True):
        assert rejected["topic"] == f"{root}/{topic}"
        assert expected in rejected["reason"], (topic, rejected["reason"])
    assert collector.running()


VALUE_FILTERS = ("plant1/+/+/buffer/in", "plant1/+/+/counter/good", "plant1/+/+/state", "plant1/+/+/stopcode")


def test_the_commented_example_plant_maps_every_kind_of_source():
    from collector.ingest import Ingest
    from shopfloor.plant import load_plant

    plant = load_plant("examples/plant-mqtt.toml")
    ingest = Ingest(plant, "shopfloor", lambda *args: None)
    assert ingest.subscriptions == ["spBv1.0/Plant1/#", "factory/+/+/metrics", *VALUE_FILTERS]
    assert ingest.will() == ("spBv1.0/STATE/shopfloor", ingest.sparkplug.state_payload(False))
    assert orjson.loads(ingest.will()[1])["online"] is False
    decoded = ingest.decode("factory/l1/labeler/metrics", orjson.dumps(
        {"timestamp": "2026-09-21T16:13:20+02:00", "counters": {"total": 5}, "buffer": {"in": 1},
         "status": "FAULT"}))
    assert decoded.reason is None
    assert decoded.lines == ["station,line=l1,plant=p1,station=labeler count=5i,queue=1i,seq=1790000000000i,"
                             'state="down" 1790000000000']
    assert ingest.decode("shopfloor/v1/p1/l1/s1/telemetry", b"{}") is None  # the contract's own path
    ingest.values._clock = lambda: 1_790_000_000.0  # bare values are stamped on arrival
    for topic, payload in [("state", b"2"), ("stopcode", b"7"), ("counter/good", b"40")]:
        assert ingest.decode(f"plant1/l1/palletizer/{topic}", payload) == Decoded([], None)  # held
    assert ingest.decode("plant1/l1/palletizer/buffer/in", b"3").lines == [
        "station,line=l1,plant=p1,station=palletizer count=40i,queue=3i,seq=1790000000000i,state=\"down\","
        "reason=\"changeover\" 1790000000000"]


def test_the_collector_credential_may_read_the_mapped_topics_and_ask_rebirths():
    from shopfloor import security
    from shopfloor.plant import load_plant

    users = {u.username: u for u in security.principals([load_plant("examples/plant-mqtt.toml")])}
    assert users["collector"].read == ("shopfloor/v1/+/+/+/telemetry", "factory/+/+/metrics", *VALUE_FILTERS,
                                       "spBv1.0/Plant1/#")
    assert users["collector"].write == ("shopfloor/v1/_rejected", "shopfloor/v1/+/+/+/stored",
                                        "spBv1.0/Plant1/NCMD/LineA-Edge", "spBv1.0/STATE/#")


def test_a_json_reason_path_follows_the_agents_rules(stack, store, plant_id, tmp_path, collector_process):
    root = f"r{plant_id}"
    path = tmp_path / "plant.toml"
    path.write_text(f'''plant = "{plant_id}"
[[line]]
id = "l1"
[[line.station]]
id = "s1"
buffer = 4
ideal_cycle_s = 1.0
[[json_topic]]
topic = "{root}/cell/{{line}}/{{station}}/status"
ts = "ts"
count = "good"
queue = "wip"
state = "mode"
reason = "stop.code"
states = {{ RUN = "working", STOP = "down", SETUP = "setup" }}
reasons = {{ 3 = "jam", 7 = "changeover" }}
''')
    http_port = free_port()
    collector = collector_process(stack, store.database, group=f"g{plant_id}", session_expiry=0,
                                  plant=str(path), http_port=http_port)
    watcher = RejectWatcher(stack.mosquitto.url, f"w{plant_id}")
    publisher = Publisher(stack.mosquitto.url, f"p{plant_id}")
    sent = [  # (mode, stop.code, stored reason; "reject" for a refused message)
        ("RUN", 3, None),  # a latched code while working: dropped
        ("STOP", 3, "jam"), ("STOP", 42, "unknown-42"), ("SETUP", 7.0, "changeover"),
        ("STOP", "material_shortage", "material_shortage"), ("STOP", "no good", None), ("STOP", 0, None),
        ("STOP", None, None), ("STOP", {"x": 1}, "reject"), ("STOP", True, "reject"), ("STOP", 2.5, "reject"),
    ]
    for n, (mode, code, _) in enumerate(sent):
        body = {"ts": T0 + n * 1000, "good": n, "wip": 1, "mode": mode, "stop": {"code": code}}
        publisher.client.publish(f"{root}/cell/l1/s1/status", orjson.dumps(body), qos=1).wait_for_publish(10)
    publisher.close()
    kept = [(n * 1000, reason) for n, (_, _, reason) in enumerate(sent) if reason != "reject"]
    query = lambda: store.query(f"SELECT * FROM station WHERE plant = {quote_string(plant_id)}").rows()  # noqa: E731
    wait_until(lambda: len(query()) == len(kept), 20, "the stored samples")
    assert [(r["time"] - T0, r.get("reason")) for r in query()] == kept
    mine = lambda: [r for r in watcher.rejected if r["topic"].startswith(root)]  # noqa: E731
    wait_until(lambda: len(mine()) == 3, 20, "the three rejects")
    assert all("'stop.code' value" in r["reason"] and "neither a reason code" in r["reason"] for r in mine())
    log = collector.log()
    assert ("l1/s1 'stop.code': reason code '42' is not in the reason table (known: 3, 7); "
            "sent as unknown-42") in log
    assert "reason code 'no good' is no identifier; sent without reason" in log
    metrics = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=5).text.splitlines()
    assert "shopfloor_collector_mapping_warnings_total 2" in metrics  # unknown-42 and 'no good'
    watcher.close()


def values_plant(tmp_path, plant: str, root: str) -> str:
    path = tmp_path / "plant.toml"
    path.write_text(f'''plant = "{plant}"
[[line]]
id = "l1"
[[line.station]]
id = "s1"
buffer = 4
ideal_cycle_s = 1.0
[[line.station]]
id = "s2"
buffer = 4
ideal_cycle_s = 1.0

[[json_value]]                      # bare values, stamped on arrival
topic = "{root}/tags/{{line}}/{{station}}/{{field}}"
count = "good"
queue = "wip"
state = "mode"
reason = "stop/code"
states = {{ RUN = "working", STOP = "down" }}
reasons = {{ 3 = "jam" }}

[[json_value]]                      # a value and its time in a small JSON object
topic = "{root}/uns/{{line}}/{{station}}/_historian/{{field}}"
value = "value"
ts = "timestamp_ms"
count = "count"
queue = "queue"
state = "state"
states = {{ 1 = "working", 2 = "down" }}
''')
    return str(path)


def test_one_value_per_topic_combines_into_samples_per_station(stack, store, plant_id, tmp_path,
                                                               collector_process):
    """Every value message makes a sample with the station's latest other values, once count and queue
    have arrived; wrong types and unknown stations rejected; bare values stamped on arrival."""
    root = f"r{plant_id}"
    collector = collector_process(stack, store.database, group=f"g{plant_id}", session_expiry=0,
                                  plant=values_plant(tmp_path, plant_id, root))
    watcher = RejectWatcher(stack.mosquitto.url, f"w{plant_id}")
    publisher = Publisher(stack.mosquitto.url, f"p{plant_id}")
    rows = lambda station: store.query(  # noqa: E731
        f"SELECT * FROM station WHERE plant = {quote_string(plant_id)} AND station = {quote_string(station)}"
    ).rows()
    mine = lambda: [r for r in watcher.rejected if r["topic"].startswith(root)]  # noqa: E731

    def send(topic: str, body: bytes, expect: str) -> None:
        """Publish and wait for its outcome, so arrival times differ from one sample to the next."""
        before = len(rows("s1")), len(mine())
        publisher.client.publish(f"{root}/{topic}", body, qos=1).wait_for_publish(10)
        if expect == "row":
            wait_until(lambda: len(rows("s1")) == before[0] + 1, 20, f"the sample of {topic}")
        elif expect == "reject":
            wait_until(lambda: len(mine()) == before[1] + 1, 20, f"the reject of {topic}")
        else:
            time.sleep(0.1)
            assert (len(rows("s1")), len(mine())) == before, f"{topic} was not only held"

    start = int(time.time() * 1000)
    send("tags/l1/s1/mode", b"STOP", "held")  # unquoted text for a state
    send("tags/l1/s1/stop/code", b"3", "held")
    send("tags/l1/s1/good", b"10", "held")  # no queue yet: no sample
    send("tags/l1/s1/wip", b"2", "row")  # count, queue, state and reason: the first sample
    send("tags/l1/s1/good", b'"12"', "reject")  # a string count
    send("tags/l1/s1/good", b"11", "row")
    send("tags/l1/s1/mode", b'"RUN"', "row")  # working: the latched code 3 is dropped
    send("tags/l1/s1/mode", b"COFFEE", "reject")
    send("tags/l1/s1/stop/code", b"42", "row")  # still working: no reason, no warning
    send("tags/l1/s1/mode", b"STOP", "row")  # down: unknown-42
    send("tags/l1/s1/good", b'{"v": 12}', "reject")  # an object where a bare value belongs
    send("tags/l1/s9/good", b"1", "reject")  # no station s9
    send("tags/l2/s1/good", b"1", "reject")  # no line l2
    end = int(time.time() * 1000)

    uns = [("state", {"value": 1, "timestamp_ms": T0}), ("count", {"value": 5, "timestamp_ms": T0 + 1000}),
           ("queue", {"value": 0, "timestamp_ms": T0 + 1000}),
           ("count", {"value": 6, "timestamp_ms": T0 + 2000}),
           ("count", {"value": 6, "timestamp_ms": T0 + 2000}),  # delivered again: the same point
           ("count", {"value": 7}),  # no timestamp: rejected
           ("state", {"value": 2, "timestamp_ms": T0 + 3000}),
           ("queue", {"value": -1, "timestamp_ms": T0 + 4000})]  # negative: rejected
    for field, body in uns:
        publisher.client.publish(f"{root}/uns/l1/s2/_historian/{field}", orjson.dumps(body),
                                 qos=1).wait_for_publish(10)
    publisher.close()
    wait_until(lambda: len(mine()) == 7, 20, "every reject")
    wait_until(lambda: len(rows("s2")) == 3, 20, "the uns samples")

    s1 = rows("s1")
    assert [(r["count"], r["queue"], r["state"], r.get("reason")) for r in s1] == [
        (10, 2, "down", "jam"), (11, 2, "down", "jam"), (11, 2, "working", None), (11, 2, "working", None),
        (11, 2, "down", "unknown-42")]
    times = [r["time"] for r in s1]
    assert start <= times[0] and times == sorted(set(times)) and times[-1] <= end  # the collector's clock
    assert all(r["seq"] == r["time"] for r in s1)
    s2 = [(r["time"], r["count"], r["queue"], r["state"]) for r in rows("s2")]
    assert s2 == [(T0 + 1000, 5, 0, "working"), (T0 + 2000, 6, 0, "working"), (T0 + 3000, 6, 0, "down")]
    reasons = [(r["topic"].removeprefix(root + "/"), r["reason"]) for r in mine()]
    assert reasons[0] == ("tags/l1/s1/good", f"{root}/tags/{{line}}/{{station}}/good: 'good' -> count: "
                                              "Input should be a valid integer")
    assert "'mode' value 'COFFEE' is not in the states table" in reasons[1][1]
    assert "not a bare value" in reasons[2][1]
    assert all("names no line and station" in r for _, r in reasons[3:5])
    assert "no timestamp at path 'timestamp_ms'" in reasons[5][1]
    assert "'queue' -> queue: Input should be greater than or equal to 0" in reasons[6][1]
    assert "reason code '42' is not in the reason table (known: 3); sent as unknown-42" in collector.log()
    assert collector.running()
    watcher.close()


@pytest.mark.parametrize("retain", [True, False], ids=["retained", "not-retained"])
def test_a_restarted_collector_has_its_held_values_again(stack, store, plant_id, tmp_path, collector_process,
                                                         retain):
    """Held values live in memory: a collector (re)started after the values were published begins with
    the station's newest stored point, and gets retained values from the broker; the next change is a
    full sample either way."""
    root = f"r{plant_id}"
    flags = {"group": f"g{plant_id}", "session_expiry": 0, "plant": values_plant(tmp_path, plant_id, root)}
    publisher = Publisher(stack.mosquitto.url, f"p{plant_id}")
    collector = None if retain else collector_process(stack, store.database, **flags)
    sent = [("good", b"20"), ("wip", b"1"), ("mode", b"STOP"), ("stop/code", b"3")]
    for topic, body in sent:
        publisher.client.publish(f"{root}/tags/l1/s1/{topic}", body, qos=1,
                                 retain=retain).wait_for_publish(10)
    query = lambda: store.query(  # noqa: E731
        f"SELECT * FROM station WHERE plant = {quote_string(plant_id)}").rows()
    last = lambda: (lambda r: (r["count"], r["queue"], r["state"], r.get("reason")))(query()[-1])  # noqa: E731
    collector = collector or collector_process(stack, store.database, **flags)
    wait_until(lambda: query() and last() == (20, 1, "down", "jam"), 20, "a sample of the values")
    collector.kill()  # a crash: whatever it held is gone
    collector = collector_process(stack, store.database, **flags)
    time.sleep(0.5)  # retained deliveries come first
    publisher.client.publish(f"{root}/tags/l1/s1/mode", b"RUN", qos=1).wait_for_publish(10)
    wait_until(lambda: last() == (20, 1, "working", None), 20, "the change after the restart")
    collector.stop()
    if retain:  # cleared, so no later subscriber of the session broker gets them
        for topic, _ in sent:
            publisher.client.publish(f"{root}/tags/l1/s1/{topic}", b"", qos=1,
                                     retain=True).wait_for_publish(10)
    publisher.close()
