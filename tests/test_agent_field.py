"""Field sources against the libraries' own servers: pymodbus's TCP server and asyncua's OPC UA server.

Values go through the real pipeline (agent -> Mosquitto -> collector -> InfluxDB); the PLC's 16-bit
counter wraps and is reset while the agent runs, and the stored count must still be every unit made.
A PLC that dies and comes back must not stop the agent, lose the outbox, or break `seq`.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import orjson
import pytest
from conftest import wait_until
from support import stored_total
from test_agent_support import (
    ModbusPlc,
    OpcUaPlc,
    RunningAgent,
    Subscriber,
    contiguous,
    run_agent_for,
    wait_for,
    write_config,
)

from shopfloor.stack import free_port
from shopfloor.store import quote_string

pytestmark = pytest.mark.servers

STATES = '{ 0 = "idle", 1 = "working", 2 = "down" }'


def stored_rows(store, plant: str, station: str) -> list[dict]:
    result = store.query(f"SELECT * FROM station WHERE plant = {quote_string(plant)} "
                         f"AND station = {quote_string(station)}")
    return result.rows()


class CountingPlc(threading.Thread):
    """Makes `step` units per tick on a uint16 counter starting at `start`: it wraps, then is reset once.

    It moves on only once the agent has read the current value (`seen`): units made between two reads
    and then wiped by a reset are invisible to any poller, so only this makes the expected total exact.
    """

    def __init__(self, write, seen, start: int, step: int, reset_after_ticks: int, ticks: int):
        super().__init__(daemon=True)
        self.write, self.seen, self.raw, self.step = write, seen, start, step
        self.reset_after_ticks, self.ticks = reset_after_ticks, ticks
        self.made = 0

    def run(self) -> None:
        for tick in range(self.ticks):
            time.sleep(0.03)
            if tick == self.reset_after_ticks:
                self.raw = 0  # an operator resets the counter: no units made by that
            else:
                self.raw = (self.raw + self.step) % 65536
                self.made += self.step
            self.write(self.raw)
            wait_for(lambda: self.seen() == self.raw, 5, f"the agent to read {self.raw}", every_s=0.005)


def test_modbus_values_flow_to_influxdb_across_counter_wrap_and_reset(stack, store, plant_id, tmp_path,
                                                                       collector_process):
    collector_process(stack, store.database, group=f"g{plant_id}", session_expiry=0, client_id=f"c{plant_id}")
    plc = ModbusPlc(free_port()).start()
    start = 65_400
    plc.set(0, start)  # count, uint16
    plc.set(1, 4)  # queue
    plc.set(2, 70_000, registers=2)  # scrap, uint32
    plc.set(4, 1)  # state: working
    plc.set(5, int(time.time()) - 120, registers=2)  # the PLC's clock, two minutes behind
    source = (f'{{ kind = "modbus", host = "127.0.0.1", port = {plc.port}, unit = 1, timeout_s = 0.5, '
              f'count = {{ address = 0 }}, queue = {{ address = 1 }}, '
              f'scrap = {{ address = 2, type = "uint32" }}, state = {{ address = 4, states = {STATES} }}, '
              f'clock = {{ address = 5, type = "uint32" }} }}')
    config = write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url=stack.mosquitto.url,
                          stations={"m1": source}, extra="max_step = 1000")
    running = RunningAgent(config)
    wait_for(lambda: running.agent.produced > 3, 10, "first samples")
    counting = CountingPlc(lambda raw: plc.set(0, raw), lambda: running.agent.tracks["m1"].count.last_raw,
                           start, step=37, reset_after_ticks=25, ticks=40)
    counting.start()
    counting.join(20)
    plc.set(4, 2)  # down
    time.sleep(0.3)
    problems = running.agent.problem_list()
    agent = running.stop()
    plc.close()

    wait_until(lambda: stored_total(store, plant_id) >= agent.produced, 30, "every sample stored")
    rows = stored_rows(store, plant_id, "m1")
    counts = [row["count"] for row in rows]
    assert [row["seq"] for row in rows] == list(range(agent.produced))
    assert counts == sorted(counts), "the stored count must only grow across wrap and reset"
    assert counts[-1] == start + counting.made  # every unit made, none lost to the wrap or the reset
    assert agent.tracks["m1"].count.wraps == 1 and agent.tracks["m1"].count.resets == 1
    assert {row["queue"] for row in rows} == {4} and rows[-1]["scrap"] == 70_000
    assert rows[0]["state"] == "working" and rows[-1]["state"] == "down"
    assert any("clock differs" in problem and "by -12" in problem for problem in problems), problems


def test_opcua_values_flow_to_influxdb_and_the_counter_wraps(stack, store, plant_id, tmp_path,
                                                             collector_process):
    collector_process(stack, store.database, group=f"g{plant_id}", session_expiry=0, client_id=f"c{plant_id}")
    plc = OpcUaPlc(free_port())
    try:
        plc.set("Count", 65_500)
        plc.set("Queue", 2)
        plc.set("Scrap", 9)
        plc.set("State", 1)
        source = (f'{{ kind = "opcua", url = "{plc.url}", timeout_s = 1.0, '
                  f'count = {{ node = "{plc.node_id("Count")}", width = 16 }}, '
                  f'queue = {{ node = "{plc.node_id("Queue")}" }}, '
                  f'scrap = {{ node = "{plc.node_id("Scrap")}" }}, '
                  f'state = {{ node = "{plc.node_id("State")}", states = {STATES} }} }}')
        config = write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url=stack.mosquitto.url,
                              stations={"u1": source})
        running = RunningAgent(config)
        wait_for(lambda: running.agent.produced > 3, 10, "first samples")
        counting = CountingPlc(lambda raw: plc.set("Count", raw),
                               lambda: running.agent.tracks["u1"].count.last_raw, 65_500, step=11,
                               reset_after_ticks=-1,
                               ticks=20)
        counting.start()
        counting.join(20)
        time.sleep(0.2)
        problems = running.agent.problem_list()
        agent = running.stop()
    finally:
        plc.close()
    wait_until(lambda: stored_total(store, plant_id) >= agent.produced, 30, "every sample stored")
    rows = stored_rows(store, plant_id, "u1")
    assert [row["seq"] for row in rows] == list(range(agent.produced))
    assert rows[-1]["count"] == 65_500 + counting.made > 65_535  # wrapped on the PLC, not in the store
    assert rows[-1]["scrap"] == 9 and rows[-1]["queue"] == 2 and rows[-1]["state"] == "working"
    assert problems == []  # the server's clock is this machine's: no skew reported


def test_a_dead_plc_does_not_crash_the_agent_or_lose_the_outbox(stack, plant_id, tmp_path):
    plc = ModbusPlc(free_port()).start()
    plc.set(0, 100)
    plc.set(1, 1)
    modbus = (f'{{ kind = "modbus", host = "127.0.0.1", port = {plc.port}, timeout_s = 0.3, '
              f'count = {{ address = 0 }}, queue = {{ address = 1 }} }}')
    never_port = free_port()
    never = f'{{ kind = "modbus", host = "127.0.0.1", port = {never_port}, timeout_s = 0.3, ' \
            f'count = {{ address = 0 }}, queue = {{ address = 1 }} }}'
    watcher = Subscriber(stack.mosquitto.url, plant_id)
    running = RunningAgent(write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url=stack.mosquitto.url,
                                        stations={"m1": modbus, "gone": never,
                                                  "sim": '{ kind = "simulated" }'}))
    wait_for(lambda: watcher.seqs().get("m1", [])[-1:] >= [5], 10, "samples of m1")
    plc.stop()  # the PLC dies
    wait_for(lambda: any("station m1" in problem for problem in running.agent.problem_list()),
             10, "the dead PLC reported")
    dead_status = wait_for(lambda: [s for s, _ in watcher.status
                                    if any("station m1" in p for p in s["problems"])],
                           10, "the problem in the retained status")
    sim_before = len(watcher.seqs()["sim"])
    time.sleep(0.5)
    assert len(watcher.seqs()["sim"]) > sim_before + 5  # the other stations go on
    plc.set(0, 150)
    plc.start()  # and comes back
    wait_for(lambda: watcher.seqs()["m1"] and running.agent.tracks["m1"].count.last_raw == 150, 15,
             "m1 read again after the PLC came back")
    agent = running.stop()
    wait_for(lambda: watcher.received() >= agent.produced, 10, "every sample at the subscriber")
    seqs = watcher.seqs()
    watcher.close()
    plc.close()
    assert contiguous(seqs) and "gone" not in seqs
    assert sum(map(len, seqs.values())) == agent.produced
    reported = dead_status[0]["problems"]
    assert any(p.startswith(f"station m1: modbus 127.0.0.1:{plc.port}") for p in reported), reported
    gone = (f"station gone: modbus 127.0.0.1:{never_port} unit 1: no connection "
            "(is the PLC on and the port right?)")
    assert gone in reported
    assert running.agent.problem_list() == [gone]  # m1's problem cleared once it was read again


def test_file_lines_arrive_once_across_restart_and_truncation(stack, plant_id, tmp_path):
    lines = tmp_path / "station.jsonl"
    base = 1_790_000_000_000

    def append(first: int, last: int) -> None:
        with open(lines, "ab") as out:
            for n in range(first, last):
                out.write(orjson.dumps({"ts": base + n * 1000, "count": n * 3, "queue": n % 4,
                                        "state": "working"}) + b"\n")

    csv_file = tmp_path / "station.csv"
    csv_file.write_text("ts,count,queue,scrap,state\n2026-09-21T12:00:00Z,5,1,0,1\n2026-09-21T12:00:01Z,6,0,0,2\n")
    stations = {"f1": f'{{ kind = "file", path = "{lines}" }}',
                "c1": f'{{ kind = "file", path = "{csv_file}", format = "csv", states = {STATES} }}'}
    config = write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url=stack.mosquitto.url,
                          stations=stations)
    watcher = Subscriber(stack.mosquitto.url, plant_id)
    append(0, 5)
    with open(lines, "ab") as out:
        out.write(b'{"ts": 1790000005000, "count": 15')  # half a line: the station is still writing
    run_agent_for(config, 0.5)
    with open(lines, "ab") as out:
        out.write(b', "queue": 1}\n')
    append(6, 9)
    run_agent_for(config, 0.5)  # restarted: reads the file from the start, sends only what is new
    lines.write_bytes(b"")  # the station software rotates its file
    append(9, 11)
    run_agent_for(config, 0.5)
    wait_for(lambda: watcher.received() >= 13, 10, "13 samples")
    time.sleep(0.2)
    samples = {station: [s for st, batch in watcher.telemetry if st == station for s in batch]
               for station in ("f1", "c1")}
    watcher.close()
    assert [s["ts"] for s in samples["f1"]] == [base + n * 1000 for n in range(11)]
    assert [s["seq"] for s in samples["f1"]] == list(range(11))
    assert samples["f1"][5] == {"ts": base + 5000, "seq": 5, "count": 15, "queue": 1}
    assert [(s["count"], s["state"]) for s in samples["c1"]] == [(5, "working"), (6, "down")]
    noon = int(datetime(2026, 9, 21, 12, tzinfo=UTC).timestamp() * 1000)
    assert [s["ts"] for s in samples["c1"]] == [noon, noon + 1000]
