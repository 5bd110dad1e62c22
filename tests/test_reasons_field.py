"""Stop reasons from the field (issue 14): a PLC reason code through the agent's reason table.

Against pymodbus's own TCP server the values go the whole way (agent -> Mosquitto -> collector ->
InfluxDB); against asyncua's own OPC UA server the source is read as the agent reads it. A code the
table lacks arrives as `unknown-<code>` with a warning, never dropped; a code latched while the
station works again is stale and not sent.
"""

from __future__ import annotations

import time

import pytest
from conftest import wait_until
from support import stored_total
from test_agent_support import ModbusPlc, OpcUaPlc, RunningAgent, wait_for, write_config

from edge_agent.config import load_config
from edge_agent.counters import StationTrack
from edge_agent.outbox import StationState
from edge_agent.sources import open_source
from shopfloor.reasons import map_reason, stop_reason
from shopfloor.stack import free_port
from shopfloor.store import quote_string

STATES = '{ 0 = "idle", 1 = "working", 2 = "down", 3 = "setup" }'
REASONS = '{ 3 = "jam", 7 = "changeover", 9 = "material_shortage" }'


def test_map_reason_names_codes_and_keeps_unknown_ones():
    table = {"3": "jam"}
    assert map_reason(3, table, "plc") == ("jam", None)
    assert map_reason(0, table, "plc") == (None, None)  # 0: no reason given
    assert map_reason("", table, "file") == (None, None)
    assert map_reason("changeover", table, "file") == ("changeover", None)  # a name as it stands
    reason, problem = map_reason(42, table, "plc")
    assert reason == "unknown-42" and "reason code '42' is not in the reason table" in problem
    reason, problem = map_reason("no good", table, "file")
    assert reason is None and "no identifier" in problem


def test_a_latched_code_while_working_is_neither_sent_nor_warned_about():
    table = {"3": "jam"}
    assert stop_reason(42, table, "working", "plc") == (None, None)  # not sent, so no "sent as" warning
    assert stop_reason(42, table, None, "plc") == (None, None)
    reason, problem = stop_reason(42, table, "down", "plc")
    assert reason == "unknown-42" and "sent as unknown-42" in problem


@pytest.mark.servers
def test_modbus_reason_codes_reach_influxdb(stack, store, plant_id, tmp_path, collector_process, caplog):
    collector_process(stack, store.database, group=f"g{plant_id}", session_expiry=0, client_id=f"c{plant_id}")
    plc = ModbusPlc(free_port()).start()
    plc.set(0, 10)
    plc.set(1, 2)
    plc.set(4, 1)  # working
    plc.set(6, 3)  # a latched code from the last stop: stale while working
    source = (f'{{ kind = "modbus", host = "127.0.0.1", port = {plc.port}, timeout_s = 0.5, '
              f'count = {{ address = 0 }}, queue = {{ address = 1 }}, '
              f'state = {{ address = 4, states = {STATES} }}, '
              f'reason = {{ address = 6, reasons = {REASONS} }} }}')
    config = write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url=stack.mosquitto.url,
                          stations={"m1": source})
    running = RunningAgent(config)
    phases = [(1, 3), (2, 3), (3, 7), (2, 42), (2, 0)]  # (state, reason code) in turn
    for state, code in phases:
        plc.set(4, state)
        plc.set(6, code)
        seen = running.agent.produced
        wait_for(lambda seen=seen: running.agent.produced >= seen + 4, 10, "samples of the phase")
    problems = running.agent.problem_list()
    agent = running.stop()
    plc.close()
    wait_until(lambda: stored_total(store, plant_id) >= agent.produced, 30, "every sample stored")
    rows = store.query(f"SELECT * FROM station WHERE plant = {quote_string(plant_id)}").rows()
    pairs = {(row["state"], row["reason"]) for row in rows}
    assert pairs == {("working", None), ("down", "jam"), ("setup", "changeover"), ("down", "unknown-42"),
                     ("down", None)}, pairs
    assert len(rows) == agent.produced  # no sample dropped for its reason
    assert any("reason code '42' is not in the reason table" in record.getMessage()
               for record in caplog.records), "the unknown code is a warning"
    assert problems == []  # the last phase's code (0) is known again: the problem cleared


@pytest.mark.servers
def test_opcua_reason_node_maps_through_the_table(tmp_path):
    plc = OpcUaPlc(free_port())
    try:
        plc.set("Count", 5)
        plc.set("Queue", 1)
        plc.set("State", 2)
        plc.set("Reason", 9)
        config_path = tmp_path / "agent.toml"
        source = (f'{{ kind = "opcua", url = "{plc.url}", timeout_s = 1.0, server_clock = false, '
                  f'count = {{ node = "{plc.node_id("Count")}" }}, '
                  f'queue = {{ node = "{plc.node_id("Queue")}" }}, '
                  f'state = {{ node = "{plc.node_id("State")}", states = {STATES} }}, '
                  f'reason = {{ node = "{plc.node_id("Reason")}", reasons = {REASONS} }} }}')
        write_config(config_path, plant="p1", mqtt_url="mqtt://127.0.0.1:1", stations={"u1": source})
        station = load_config(config_path).station[0]
        reader = open_source(station)
        track = StationTrack("u1", StationState(0, -1, {}), count_width=0, scrap_width=0, max_step=1000)
        try:
            first = reader.read()[0]
            plc.set("Reason", 77)
            second = reader.read()[0]
            plc.set("State", 1)
            third = reader.read()[0]
        finally:
            reader.close()
    finally:
        plc.close()
    now = int(time.time() * 1000)
    samples = [track.sample(reading, now + i) for i, reading in enumerate((first, second, third))]
    assert [(s["state"], s.get("reason")) for s in samples] == [
        ("down", "material_shortage"), ("down", "unknown-77"), ("working", None)]
    assert second.problem is not None and "unknown-77" in second.problem


def test_file_source_reads_a_reason_column(tmp_path):
    lines = tmp_path / "station.csv"
    lines.write_text("ts,count,queue,state,reason\n1790000000000,1,0,down,changeover\n"
                     "1790000001000,1,0,down,3\n1790000002000,2,0,working,\n")
    config_path = write_config(tmp_path / "agent.toml", plant="p1", mqtt_url="mqtt://127.0.0.1:1",
                               stations={"f1": f'{{ kind = "file", path = "{lines}", format = "csv", '
                                               f'reasons = {REASONS} }}'})
    reader = open_source(load_config(config_path).station[0])
    readings = reader.read()
    assert [(r.state, r.reason) for r in readings] == [("down", "changeover"), ("down", "jam"),
                                                       ("working", None)]
