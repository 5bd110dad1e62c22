"""End to end: a line whose stations only a Sparkplug B edge node publishes, through the collector into
InfluxDB. `shopfloor analyze bottleneck` on the stored range gives the same timeline as on the same
samples from a file, and the huddle page's snapshot is the same as for those samples written straight
to InfluxDB: the detector and the huddle are unchanged by where the samples came from."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
from conftest import wait_until
from sparkplug_edge import EdgeNode
from support import BASE_TS, stored_total

from dashboards.huddle_api import HuddleReader
from shopfloor.contract import StationKey, read_records, sample_line, write_records
from shopfloor.plant import load_plant
from shopfloor.store import Store

pytestmark = pytest.mark.servers

T0 = BASE_TS // 300_000 * 300_000  # window-aligned, so both runs see whole windows
SECONDS = 900
STATUS = {"working": 1, "blocked": 4}


def plant_text(plant: str, group: str) -> str:
    stations = ""
    for station, device in (("s1", "cutter"), ("s2", "welder")):
        stations += f'''[[line.station]]
id = "{station}"
buffer = 4
ideal_cycle_s = {1.0 if station == "s1" else 2.0}
[line.station.sparkplug]
group = "{group}"
node = "cell"
device = "{device}"
count = "Parts"
queue = "Infeed"
scrap = "Rejects"
state = "Mode"
states = {{ "1" = "working", "4" = "blocked" }}
'''
    return f'plant = "{plant}"\n[[line]]\nid = "l1"\n{stations}'


def readings(station: str) -> list[tuple[int, dict]]:
    """s1 is blocked half the time by s2, which works throughout: s2 is the constraint."""
    rows = []
    for t in range(SECONDS):
        if station == "s1":
            rows.append((T0 + t * 1000, {"Parts": t, "Infeed": 0, "Rejects": 0,
                                         "Mode": STATUS["blocked" if t % 6 < 3 else "working"]}))
        else:
            rows.append((T0 + t * 1000, {"Parts": t // 2, "Infeed": 4, "Rejects": t // 100,
                                         "Mode": STATUS["working"]}))
    return rows


def analyze(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "shopfloor", "analyze", "bottleneck", "--line", "l1",
                           "--window", "300", "--json", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


def test_detector_on_a_line_fed_by_sparkplug(stack, store, plant_id, tmp_path, collector_process):
    group = f"g{plant_id}"
    plant = tmp_path / "plant.toml"
    plant.write_text(plant_text(plant_id, group))
    collector_process(stack, store.database, group=group, session_expiry=0, plant=str(plant),
                      host_id=f"h{plant_id}")
    edge = EdgeNode(stack.mosquitto.url, group, "cell").connect()
    edge.nbirth(T0)
    series = {"cutter": readings("s1"), "welder": readings("s2")}
    for device, rows in series.items():
        edge.dbirth(device, rows[0][0], rows[0][1])
    for start in range(1, SECONDS, 60):  # a minute of readings a message, alias only
        for device, rows in series.items():
            edge.ddata_rows(device, rows[start:start + 60])
    edge.close()
    wait_until(lambda: stored_total(store, plant_id) == 2 * SECONDS, 30, "every reading")
    assert edge.rebirth_requests == 0

    telemetry = tmp_path / "t.jsonl"
    state_of = {code: name for name, code in STATUS.items()}
    write_records(telemetry, [(StationKey(plant_id, "l1", station), {
        "ts": ts, "seq": ts, "count": values["Parts"], "queue": values["Infeed"], "scrap": values["Rejects"],
        "state": state_of[values["Mode"]]})
        for station, device in (("s1", "cutter"), ("s2", "welder")) for ts, values in series[device]])
    from_file = analyze("--plant", str(plant), "--telemetry", str(telemetry))
    from_store = analyze("--plant", str(plant), "--influx-url", stack.influxdb.url, "--influx-db",
                         store.database, "--from", str(T0), "--to", str(T0 + SECONDS * 1000))
    assert from_store == from_file
    assert [w["bottleneck"] for w in from_store["windows"]] == ["s2", "s2", "s2"]

    direct = Store(stack.influxdb.url, f"{store.database}_direct")
    direct.create_database()
    direct.write([sample_line(key, sample) for key, sample in read_records(telemetry)])
    model = load_plant(plant)
    span = {"now_ms": T0 + SECONDS * 1000, "start_ms": T0, "end_ms": T0 + SECONDS * 1000}
    via_sparkplug = HuddleReader(store, model).snapshot("l1", **span)
    assert via_sparkplug == HuddleReader(direct, model).snapshot("l1", **span)
    assert via_sparkplug["constraint"]["station"] == "s2"
    assert [(row["station"], row["state"], row["queue"]) for row in via_sparkplug["stations"]] == [
        ("s1", "working", 0), ("s2", "working", 4)]
    direct.close()
