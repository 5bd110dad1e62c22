"""`shopfloor collector check`: each station's mapped source and whether data arrived in the last minute,
read from the real InfluxDB."""

from __future__ import annotations

import subprocess
import sys
import time

import orjson
import pytest

from collector.mapped import source_line
from shopfloor.contract import StationKey, sample_line

pytestmark = pytest.mark.servers


def test_check_lists_sources_and_fresh_data(stack, store, plant_id, tmp_path):
    plant = tmp_path / "plant.toml"
    plant.write_text(f'''plant = "{plant_id}"
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
agent = "pc7"
[[line.station]]
id = "s3"
buffer = 4
ideal_cycle_s = 1.0
[line.station.sparkplug]
group = "G"
node = "N"
device = "D"
count = "Good"
queue = "Queue"
[[json_topic]]
topic = "factory/{{line}}/{{station}}/metrics"
ts = "t"
count = "c"
queue = "q"
''')
    now = int(time.time() * 1000)
    key = lambda station: StationKey(plant_id, "l1", station)  # noqa: E731
    store.write([sample_line(key("s1"), {"ts": now - 5000, "seq": 1, "count": 1, "queue": 0}),
                 sample_line(key("s2"), {"ts": now - 600_000, "seq": 1, "count": 1, "queue": 0}),
                 source_line(key("s3"), "sparkplug:G/N/D", True, "DBIRTH", now - 9000),
                 source_line(key("s3"), "sparkplug:G/N/D", False, "NDEATH", now - 8000)])
    done = subprocess.run([sys.executable, "-m", "shopfloor", "collector", "check", "--plant", str(plant),
                           "--influx-url", stack.influxdb.url, "--influx-db", store.database, "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr  # s2 and s3 sent nothing in the last minute
    checks = {c["station"]: c for c in orjson.loads(done.stdout)}
    assert checks["s1"]["fresh"] and checks["s1"]["last_sample_ms"] == now - 5000
    assert checks["s1"]["source"] == (f"json factory/l1/s1/metrics | agent s1: shopfloor/v1/{plant_id}/l1/s1/"
                                      f"telemetry")
    assert not checks["s2"]["fresh"] and "agent pc7" in checks["s2"]["source"]
    assert checks["s3"] == {"line": "l1", "station": "s3", "source": "sparkplug G/N/D (count='Good', "
                            "queue='Queue')", "last_sample_ms": None, "fresh": False,
                            "source_event": "NDEATH"}
    text = subprocess.run([sys.executable, "-m", "shopfloor", "collector", "check", "--plant", str(plant),
                           "--influx-url", stack.influxdb.url, "--influx-db", store.database],
                          capture_output=True, text=True, timeout=60).stdout
    assert text.splitlines()[0].startswith("ok  l1/s1: json factory/l1/s1/metrics")
    assert "OLD l1/s3: sparkplug G/N/D" in text and "no data, source NDEATH" in text
