"""The collector as a Sparkplug B host on the real Mosquitto and InfluxDB, fed by an independent edge node.

The edge node (tests/sparkplug_edge.py) encodes with pysparkplug; the collector decodes with tahutils.
Every sample is checked by its timestamp: one stored point per mapped sample, and every refused
message on the reject topic with its reason.
"""

from __future__ import annotations

import time

import orjson
import pytest
from conftest import wait_until
from sparkplug_edge import TYPES, EdgeNode
from support import BASE_TS, RejectWatcher

from shopfloor.mqtt import make_client
from shopfloor.settings import mqtt_endpoint
from shopfloor.store import quote_string

pytestmark = pytest.mark.servers

T0 = BASE_TS


def plant_file(tmp_path, plant: str, group: str) -> str:
    path = tmp_path / "plant.toml"
    path.write_text(f'''plant = "{plant}"
[[line]]
id = "l1"
[[line.station]]
id = "s1"
buffer = 4
ideal_cycle_s = 1.0
[line.station.sparkplug]
group = "{group}"
node = "edge1"
device = "filler"
count = "Counters/Good"
queue = "Buffer/In"
scrap = "Counters/Scrap"
state = "Status"
states = {{ "1" = "working", "2" = "down", "3" = "starved" }}
[[line.station]]
id = "s2"
buffer = 4
ideal_cycle_s = 1.0
[line.station.sparkplug]
group = "{group}"
node = "edge1"
device = "capper"
count = "Good"
queue = "Queue"
''')
    return str(path)


def stored(store, plant: str, station: str) -> list[dict]:
    return store.query(f"SELECT * FROM station WHERE plant = {quote_string(plant)} AND "
                       f"station = {quote_string(station)}").rows()


def retained_state(mqtt_url: str, topic: str) -> dict:
    got: list[bytes] = []
    endpoint = mqtt_endpoint(mqtt_url)
    client = make_client(f"state-{time.monotonic_ns()}", endpoint)
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect(endpoint.host, endpoint.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    wait_until(lambda: got, 10, f"the retained {topic}")
    client.disconnect()
    client.loop_stop()
    return orjson.loads(got[-1])


def test_sparkplug_edge_node_births_data_gap_death_and_history(stack, store, plant_id, tmp_path,
                                                               collector_process):
    group, host = f"g{plant_id}", f"h{plant_id}"
    collector = collector_process(stack, store.database, group=group, session_expiry=0,
                                  plant=plant_file(tmp_path, plant_id, group), host_id=host)
    state = retained_state(stack.mosquitto.url, f"spBv1.0/STATE/{host}")
    assert state["online"] is True and isinstance(state["timestamp"], int)
    watcher = RejectWatcher(stack.mosquitto.url, f"w{plant_id}")
    mine = lambda: [r for r in watcher.rejected if group in r["topic"]]  # noqa: E731
    edge = EdgeNode(stack.mosquitto.url, group, "edge1", bd_seq=0).connect()
    values = {"Counters/Good": 0, "Buffer/In": 2, "Counters/Scrap": 0, "Status": 1, "Temperature": 21.5}

    # data before any birth: refused, and the node is asked for a rebirth
    edge.aliases[("filler", "Counters/Good")] = (1, TYPES[int])
    edge.seq = 4
    edge.ddata("filler", T0, {"Counters/Good": 5})
    assert edge.wait_rebirth_request(), "no rebirth request for data before a birth"

    # births, then alias-only data (report by exception: only what changed)
    edge.aliases.clear()
    edge.nbirth(T0)
    edge.dbirth("filler", T0 + 1000, values)
    edge.dbirth("capper", T0 + 1000, {"Good": 0, "Queue": 1})
    edge.ddata("filler", T0 + 2000, {"Counters/Good": 1})
    edge.ddata("filler", T0 + 3000, {"Counters/Good": 2, "Buffer/In": 3})
    edge.ddata("filler", T0 + 4000, {"Status": 2})
    edge.ddata("filler", T0 + 4500, {"Temperature": 22.0})  # unmapped metric: no sample
    edge.ddata("capper", T0 + 5000, {"Good": 1})
    edge.ddata("filler", T0 + 6000, {"Status": 7})  # not in the states table: refused
    edge.ddata("capper", T0 + 6500, {"Good": 2.5})  # a Double where the birth said UInt32: refused
    # a seq gap: refused, rebirth requested, and nothing is stored until the node is born again
    edge.ddata("filler", T0 + 7000, {"Counters/Good": 3}, skip_seq=1)
    assert edge.wait_rebirth_request(), "no rebirth request after a seq gap"
    edge.ddata("filler", T0 + 8000, {"Counters/Good": 4})
    edge.nbirth(T0 + 9000)
    edge.dbirth("filler", T0 + 9000, {**values, "Counters/Good": 4, "Status": 1})
    edge.ddata("filler", T0 + 10_000, {"Counters/Good": 5})
    # a device death, then the node's connection lost: its will (NDEATH) marks its stations unknown
    edge.ddeath("capper", T0 + 11_000)
    edge.drop()
    # back after the outage, with a new bdSeq; its store-and-forward sends what it kept, as historical
    edge = EdgeNode(stack.mosquitto.url, group, "edge1", bd_seq=1).connect()
    edge.nbirth(T0 + 20_000)
    edge.dbirth("filler", T0 + 20_000, {**values, "Counters/Good": 9, "Status": 1})
    for n in range(3):
        edge.ddata("filler", T0 + 12_000 + n * 1000, {"Counters/Good": 6 + n, "Buffer/In": n},
                   historical=True)
    edge.ddata("filler", T0 + 21_000, {"Counters/Good": 10})
    edge.close()

    expected_s1 = [T0 + 1000, T0 + 2000, T0 + 3000, T0 + 4000, T0 + 9000, T0 + 10_000,
                   T0 + 12_000, T0 + 13_000, T0 + 14_000, T0 + 20_000, T0 + 21_000]
    wait_until(lambda: [r["time"] for r in stored(store, plant_id, "s1")] == expected_s1, 20,
               "the filler's samples")
    rows = {r["time"]: r for r in stored(store, plant_id, "s1")}
    assert [rows[t]["count"] for t in expected_s1] == [0, 1, 2, 2, 4, 5, 6, 7, 8, 9, 10]
    assert rows[T0 + 4000]["state"] == "down" and rows[T0 + 3000]["queue"] == 3
    assert [rows[T0 + t]["queue"] for t in (12_000, 13_000, 14_000)] == [0, 1, 2]  # at their own times
    assert rows[T0 + 21_000]["queue"] == 2 and rows[T0 + 21_000]["state"] == "working"  # live, not history
    assert all(r["seq"] == r["time"] for r in rows.values())
    capper = [(r["time"], r["count"]) for r in stored(store, plant_id, "s2")]
    assert capper == [(T0 + 1000, 0), (T0 + 5000, 1)]

    sources = store.query(f"SELECT * FROM source WHERE plant = {quote_string(plant_id)}").rows()
    events = [(r["station"], r["event"], r["online"]) for r in sources]
    assert ("s2", "DDEATH", False) in events and ("s1", "NDEATH", False) in events
    assert events.count(("s1", "DBIRTH", True)) == 3
    death = next(r for r in sources if r["event"] == "DDEATH")
    assert death["time"] == T0 + 11_000 and death["source"] == f"sparkplug:{group}/edge1/capper"

    wait_until(lambda: len(mine()) >= 5, 20, "the rejects")
    reasons = [r["reason"] for r in mine()]
    assert "before the node's NBIRTH" in reasons[0]
    assert any("'Status' value '7' is not in the states table" in r for r in reasons)
    assert any("'Good' carries double_value" in r for r in reasons)
    assert any("seq gap" in r and "rebirth requested" in r for r in reasons)
    assert any("after a seq gap" in r for r in reasons)  # the data between the gap and the rebirth
    assert len(reasons) == 5, reasons
    assert collector.running()
    watcher.close()



def test_a_restarted_collector_asks_for_a_rebirth_and_its_will_says_offline(stack, store, plant_id, tmp_path,
                                                                           collector_process):
    group, host = f"g{plant_id}", f"h{plant_id}"
    plant = plant_file(tmp_path, plant_id, group)
    flags = {"group": group, "session_expiry": 0, "plant": plant, "host_id": host,
             "client_id": f"c{plant_id}"}
    collector = collector_process(stack, store.database, **flags)
    edge = EdgeNode(stack.mosquitto.url, group, "edge1").connect()
    edge.nbirth(T0)
    edge.dbirth("capper", T0, {"Good": 0, "Queue": 1})
    edge.ddata("capper", T0 + 1000, {"Good": 1})
    wait_until(lambda: len(stored(store, plant_id, "s2")) == 2, 20, "the first samples")
    collector.kill()  # a crash: the broker publishes the host's will, so edge nodes store and forward
    state = lambda: retained_state(stack.mosquitto.url, f"spBv1.0/STATE/{host}")["online"]  # noqa: E731
    wait_until(lambda: state() is False, 10, "the STATE will")
    collector = collector_process(stack, store.database, **flags)
    wait_until(lambda: state() is True, 10, "the STATE birth")
    edge.ddata("capper", T0 + 2000, {"Good": 2})  # the new host has no alias map: it must not guess
    assert edge.wait_rebirth_request(), "the restarted collector did not ask for a rebirth"
    edge.nbirth(T0 + 3000)
    edge.dbirth("capper", T0 + 3000, {"Good": 2, "Queue": 1})
    edge.ddata("capper", T0 + 4000, {"Good": 3})
    edge.close()
    wait_until(lambda: len(stored(store, plant_id, "s2")) == 4, 20, "the samples after the rebirth")
    assert [(r["time"], r["count"]) for r in stored(store, plant_id, "s2")] == [
        (T0, 0), (T0 + 1000, 1), (T0 + 3000, 2), (T0 + 4000, 3)]
    collector.stop()  # a clean stop says offline itself (a clean disconnect sends no will)
    wait_until(lambda: state() is False, 10, "the STATE death of a clean stop")


def reasons_plant(tmp_path, plant: str, group: str) -> str:
    path = tmp_path / "plant.toml"
    devices = {"s1": ("press", "StopCode"), "s2": ("oven", "StopText"), "s3": ("saw", "StopCode")}
    stations = "".join(f'''[[line.station]]
id = "{station}"
buffer = 4
ideal_cycle_s = 1.0
[line.station.sparkplug]
group = "{group}"
node = "edge1"
device = "{device}"
count = "Good"
queue = "Queue"
state = "Status"
reason = "{metric}"
states = {{ "1" = "working", "2" = "down", "3" = "setup" }}
reasons = {{ "3" = "jam", "7" = "changeover" }}
''' for station, (device, metric) in devices.items())
    path.write_text(f'plant = "{plant}"\n[[line]]\nid = "l1"\n{stations}')
    return str(path)


def test_sparkplug_reason_metrics_follow_the_agents_rules(stack, store, plant_id, tmp_path,
                                                          collector_process):
    """A reason code through the table, an unknown one kept as unknown-<code> with a warning, a latched
    code while working dropped, a name as it stands, a non-identifier name left out, a Double refused."""
    group = f"g{plant_id}"
    collector = collector_process(stack, store.database, group=group, session_expiry=0,
                                  plant=reasons_plant(tmp_path, plant_id, group), host_id=f"h{plant_id}")
    watcher = RejectWatcher(stack.mosquitto.url, f"w{plant_id}")
    edge = EdgeNode(stack.mosquitto.url, group, "edge1").connect()
    edge.nbirth(T0)
    edge.dbirth("press", T0, {"Good": 0, "Queue": 1, "Status": 1, "StopCode": 3})  # 3 latched: working
    edge.ddata("press", T0 + 1000, {"Status": 2})  # down: the held code 3 is jam
    edge.ddata("press", T0 + 2000, {"StopCode": 42})  # not in the table
    edge.ddata("press", T0 + 2500, {"Queue": 2})  # still down with 42: the same warning, not logged again
    edge.ddata("press", T0 + 3000, {"Status": 3, "StopCode": 7})
    edge.ddata("press", T0 + 4000, {"Status": 1, "Good": 1})  # working again: 7 is latched, dropped
    edge.ddata("press", T0 + 5000, {"Status": 2, "StopCode": 0})  # 0: no reason given
    edge.dbirth("oven", T0, {"Good": 0, "Queue": 0, "Status": 2, "StopText": "material_shortage"})
    edge.ddata("oven", T0 + 1000, {"StopText": "no good"})  # no identifier: stored without reason
    edge.dbirth("saw", T0, {"Good": 0, "Queue": 0, "Status": 2, "StopCode": 3.5})  # a Double: refused
    edge.close()

    wait_until(lambda: len(stored(store, plant_id, "s1")) == 7 and len(stored(store, plant_id, "s2")) == 2,
               20, "the press's and the oven's samples")
    press = [(r["time"] - T0, r["state"], r.get("reason")) for r in stored(store, plant_id, "s1")]
    assert press == [(0, "working", None), (1000, "down", "jam"), (2000, "down", "unknown-42"),
                     (2500, "down", "unknown-42"), (3000, "setup", "changeover"), (4000, "working", None),
                     (5000, "down", None)]
    oven = [(r["time"] - T0, r.get("reason")) for r in stored(store, plant_id, "s2")]
    assert oven == [(0, "material_shortage"), (1000, None)]
    wait_until(lambda: [r for r in watcher.rejected if group in r["topic"]], 20, "the saw's reject")
    rejected = [r for r in watcher.rejected if group in r["topic"]]
    assert len(rejected) == 1 and "'StopCode' value 3.5 is neither a reason code" in rejected[0]["reason"]
    assert stored(store, plant_id, "s3") == []
    log = collector.log()
    assert ("l1/s1 'StopCode': reason code '42' is not in the reason table (known: 3, 7); "
            "sent as unknown-42") in log
    assert log.count("reason code '42'") == 1  # once, though the next sample while down repeats it
    assert "l1/s2 'StopText': reason code 'no good' is no identifier; sent without reason" in log
    assert collector.running()
    watcher.close()
