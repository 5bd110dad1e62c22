"""The agent's pure logic without servers: counters, time order, config errors, outbox, file source,
the `check` and `install` commands."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from test_agent_support import write_config

from edge_agent.config import config_problems, load_config
from edge_agent.counters import Counter, StationTrack
from edge_agent.outbox import Outbox, OutboxError, StationState, id_ranges
from edge_agent.sources import SourceError, open_source
from edge_agent.sources.base import Reading
from edge_agent.systemd import unit_text
from shopfloor.contract import STATES
from shopfloor.errors import ConfigError
from shopfloor.stack import free_port

# --- counters -------------------------------------------------------------------------------------


def test_a_16_bit_counter_wraps_into_a_growing_count():
    counter = Counter(width=16, max_step=100)
    assert [counter.update(raw) for raw in (65_530, 65_535, 4, 60)] == [65_530, 65_535, 65_540, 65_596]
    assert counter.wraps == 1 and counter.resets == 0


def test_a_32_bit_counter_wraps_too():
    counter = Counter(width=32, max_step=1000)
    assert counter.update(2**32 - 10) == 2**32 - 10
    assert counter.update(5) == 2**32 + 5


def test_a_drop_that_is_no_plausible_wrap_is_a_reset_and_keeps_the_units_before_it():
    counter = Counter(width=16, max_step=100)
    assert [counter.update(raw) for raw in (500, 520, 0, 7)] == [500, 520, 520, 527]
    assert counter.resets == 1 and counter.wraps == 0
    unwrapped = Counter(width=0, max_step=100)  # a counter that never wraps can only be reset
    assert [unwrapped.update(raw) for raw in (65_535, 3)] == [65_535, 65_538]


def test_repeated_reads_of_the_same_value_change_nothing():
    counter = Counter(width=16, max_step=100)
    assert [counter.update(raw) for raw in (10, 10, 10, 11)] == [10, 10, 10, 11]


def test_counter_state_survives_a_restart():
    counter = Counter(width=16, max_step=100)
    for raw in (65_500, 20):
        counter.update(raw)
    again = Counter.restored(16, 100, counter.saved())
    assert again.update(30) == 65_536 + 30


def test_a_value_outside_the_counter_width_is_refused():
    with pytest.raises(ValueError, match="outside 0..65535"):
        Counter(width=16, max_step=100).update(70_000)


def test_duplicate_source_readings_are_dropped_and_a_clock_step_back_keeps_time_order():
    track = StationTrack("s1", StationState(), count_width=0, scrap_width=0, max_step=100)
    first = track.sample(Reading(count=1, queue=0, ts_ms=1000), read_ms=5000)
    assert first == {"ts": 1000, "seq": 0, "count": 1, "queue": 0}
    assert track.sample(Reading(count=1, queue=0, ts_ms=1000), read_ms=5001) is None  # read twice
    assert track.duplicates == 1
    polled = track.sample(Reading(count=2, queue=1, state="working"), read_ms=6000)
    back = track.sample(Reading(count=3, queue=1), read_ms=4000)  # the agent's clock stepped back
    assert polled["ts"] == 6000 and back["ts"] == 6001 and back["seq"] == 2
    saved = track.state()
    assert (saved.next_seq, saved.last_ts) == (3, 6001)


# --- config -----------------------------------------------------------------------------------------


def test_every_config_problem_is_one_line_naming_the_option(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('agent = "a 1"\nplant = "p"\nline = "l"\nintervall_s = 1\n[[station]]\nid = "s1"\n'
                    'source = { kind = "modbus", host = "h", count = { address = 0 }, '
                    'queue = { address = 1 }, state = { address = 2, states = { 1 = "running" } } }\n')
    config, problems = config_problems(path)
    assert config is None and len(problems) == 3
    assert all("\n" not in line and line.startswith(str(path)) for line in problems)
    text = " | ".join(problems)
    assert "agent:" in text and "intervall_s" in text and "'running'" in text and "working" in text
    with pytest.raises(ConfigError, match=r"\(\+2 more: run `shopfloor agent check"):
        load_config(path)


def test_a_missing_config_file_and_a_bad_mqtt_url_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    path = write_config(tmp_path / "agent.toml", plant="p", mqtt_url="http://broker:1883")
    with pytest.raises(ConfigError, match="mqtt.url: MQTT URL 'http://broker:1883' is not mqtt://"):
        load_config(path)


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    config = load_config(write_config(tmp_path / "agent.toml", plant="p", mqtt_url="mqtt://127.0.0.1:1",
                                      stations={"f": '{ kind = "file", path = "lines.jsonl" }'}))
    assert config.outbox == tmp_path / "outbox.sqlite"
    assert config.stations[0].source.path == tmp_path / "lines.jsonl"


# --- outbox -----------------------------------------------------------------------------------------


def test_outbox_keeps_samples_and_station_state_across_reopen(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    samples = [("s1", {"ts": n, "seq": n, "count": n, "queue": 0, "state": "working"}) for n in range(5)]
    outbox.append(samples, {"s1": StationState(5, 4, {"count": {"last_raw": 4, "offset": 0}})})
    rows = outbox.after(0, 10)
    outbox.delete([rows[0].id, rows[1].id])
    outbox.close()
    again = Outbox(tmp_path / "o.sqlite")
    assert again.backlog == 3
    assert [row.sample["seq"] for row in again.after(0, 10)] == [2, 3, 4]
    assert again.station_state("s1") == StationState(5, 4, {"count": {"last_raw": 4, "offset": 0}})
    again.append([("s1", {"ts": 9, "seq": 5, "count": 5, "queue": 0})], {})
    assert again.after(rows[-1].id, 10)[0].sample["seq"] == 5  # ids are never reused after a delete


def test_acknowledged_ids_are_deleted_in_runs():
    assert id_ranges([7, 3, 4, 5, 9, 8, 12, 4]) == [(3, 5), (7, 9), (12, 12)]
    assert id_ranges([]) == []


def test_a_full_disk_is_one_clear_outbox_error(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite")
    outbox._db.execute("PRAGMA max_page_count = 8")  # what a full disk looks like to SQLite
    sample = {"ts": 1, "seq": 1, "count": 1, "queue": 1, "state": "working"}
    with pytest.raises(OutboxError) as caught:
        for _ in range(200):
            outbox.append([("s1", sample)] * 100, {})
    message = str(caught.value)
    assert message.startswith(f"outbox {tmp_path / 'o.sqlite'}: database or disk is full: free disk space")
    assert "\n" not in message


def test_an_outbox_in_a_read_only_place_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutboxError, match="cannot create its folder.*writable path"):
        Outbox(blocker / "sub" / "o.sqlite")


def test_one_outbox_one_agent(tmp_path):
    first = Outbox(tmp_path / "o.sqlite")
    with pytest.raises(OutboxError, match="database is locked: another agent process uses this outbox"):
        Outbox(tmp_path / "o.sqlite")
    first.close()
    Outbox(tmp_path / "o.sqlite").close()


def test_a_drained_outbox_gives_its_space_back_to_the_disk(tmp_path, monkeypatch):
    monkeypatch.setattr("edge_agent.outbox.RETURN_SPACE_PAGES", 100)  # 400 KB instead of 10 MB
    outbox = Outbox(tmp_path / "o.sqlite")
    outbox.append([("s1", {"ts": n, "seq": n, "count": n, "queue": 0}) for n in range(30_000)], {})
    full = (tmp_path / "o.sqlite").stat().st_size + (tmp_path / "o.sqlite-wal").stat().st_size
    outbox.delete(row.id for row in outbox.after(0, 30_000))
    assert outbox.backlog == 0
    assert (tmp_path / "o.sqlite").stat().st_size < full / 20
    outbox.append([("s1", {"ts": 1, "seq": 1, "count": 1, "queue": 0})], {})
    assert outbox.after(0, 10)[0].id == 30_001  # ids still never come back
    outbox.close()


def test_an_outbox_of_another_layout_fails_at_start_in_one_line(tmp_path):
    old = sqlite3.connect(tmp_path / "o.sqlite")
    old.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, station TEXT, ts INTEGER)")
    old.commit()
    old.close()
    with pytest.raises(OutboxError, match="has layout 0, this agent writes layout 2: let the old agent"):
        Outbox(tmp_path / "o.sqlite")


def test_a_layout_1_outbox_is_upgraded_in_place_and_keeps_its_samples(tmp_path):
    old = sqlite3.connect(tmp_path / "o.sqlite")  # what agents before receipts wrote
    old.executescript("CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, station TEXT NOT NULL, "
                      "body BLOB NOT NULL); CREATE TABLE station_state (station TEXT PRIMARY KEY, next_seq "
                      "INTEGER NOT NULL, last_ts INTEGER NOT NULL, counters BLOB NOT NULL); "
                      "PRAGMA user_version=1;")
    old.executemany("INSERT INTO outbox (station, body) VALUES (?, ?)",
                    [("s1", b'{"ts":%d,"seq":%d,"count":0,"queue":0}' % (n, n)) for n in range(40, 45)])
    old.commit()
    old.close()
    outbox = Outbox(tmp_path / "o.sqlite")
    assert outbox.backlog == 5
    assert outbox.receipt([("s1", [(40, 41)])]) == 2  # the seq column was filled from the bodies
    assert [row.sample["seq"] for row in outbox.after(0, 10)] == [42, 43, 44]
    outbox.close()


def test_the_outbox_is_in_wal_mode(tmp_path):
    Outbox(tmp_path / "o.sqlite").close()
    assert sqlite3.connect(tmp_path / "o.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- sources ----------------------------------------------------------------------------------------


def _station(tmp_path, source: str):
    return load_config(write_config(tmp_path / "agent.toml", plant="p", mqtt_url="mqtt://127.0.0.1:1",
                                    stations={"s1": source})).stations[0]


def test_file_source_reads_whole_lines_only_and_starts_again_after_truncation(tmp_path):
    lines = tmp_path / "s1.jsonl"
    lines.write_bytes(b'{"ts": 1790000000, "count": 1, "queue": 0}\n{"ts": "2026-09-21T12:00:01+00:00", ')
    source = open_source(_station(tmp_path, f'{{ kind = "file", path = "{lines}" }}'))
    assert [r.ts_ms for r in source.read()] == [1_790_000_000_000]  # seconds became ms
    with open(lines, "ab") as out:
        out.write(b'"count": 2, "queue": 1, "state": "setup"}\n')
    noon = int(datetime(2026, 9, 21, 12, 0, 1, tzinfo=UTC).timestamp() * 1000)
    assert source.read() == [Reading(count=2, queue=1, state="setup", ts_ms=noon)]
    assert source.read() == []
    lines.write_bytes(b'{"ts": 1790000009000, "count": 0, "queue": 0}\n')
    assert [r.count for r in source.read()] == [0]


def test_a_bad_line_is_skipped_with_its_reason_and_the_good_ones_are_kept(tmp_path, caplog):
    lines = tmp_path / "s1.csv"
    lines.write_text("ts,count,queue,state\n1790000000000,1,0,working\n1790000001000,x,0,working\n"
                     "1790000002000,3,1,down\n")
    source = open_source(_station(tmp_path, f'{{ kind = "file", path = "{lines}", format = "csv" }}'))
    with caplog.at_level("WARNING", logger="shopfloor.agent"):
        assert [(r.count, r.state) for r in source.read()] == [(1, "working"), (3, "down")]
    assert "station s1: skipped a malformed line: " in caplog.text
    assert "s1.csv:3 count: 'x' is not a number" in caplog.text
    assert source.read() == []  # the bad line is behind the source now: no re-read, no stall
    with open(lines, "a") as out:
        out.write("1790000003000,4,0,working\n")
    assert [r.count for r in source.read()] == [4]


def test_a_bad_json_line_is_skipped_too(tmp_path, caplog):
    lines = tmp_path / "s1.jsonl"
    lines.write_bytes(b'{"ts": 1790000000000, "count": 1, "queue": 0}\n{"ts": 1790000001000, "co\n[1]\n'
                      b'{"ts": 1790000002000, "count": 2, "queue": 0}\n')
    source = open_source(_station(tmp_path, f'{{ kind = "file", path = "{lines}" }}'))
    with caplog.at_level("WARNING", logger="shopfloor.agent"):
        assert [r.count for r in source.read()] == [1, 2]
    assert "s1.jsonl:2: not JSON" in caplog.text and "s1.jsonl:3: a line must be a JSON object" in caplog.text


def test_crlf_lines_are_read_whole_across_reads(tmp_path):
    lines = tmp_path / "s1.jsonl"
    lines.write_bytes(b"".join(b'{"ts": %d, "count": %d, "queue": 0}\r\n' % (1790000000000 + n, n)
                               for n in range(5)))
    source = open_source(_station(tmp_path, f'{{ kind = "file", path = "{lines}" }}'))
    assert [r.count for r in source.read()] == [0, 1, 2, 3, 4]
    with open(lines, "ab") as out:  # the next read starts exactly at the next line, not 5 bytes early
        out.write(b'{"ts": 1790000002000, "count": 5, "queue": 0}\r\n')
    assert [r.count for r in source.read()] == [5]
    csv_file = tmp_path / "s1.csv"
    csv_file.write_bytes(b"ts,count,queue\r\n1790000000000,1,0\r\n1790000000500,12,0\r\n")
    source = open_source(_station(tmp_path, f'{{ kind = "file", path = "{csv_file}", format = "csv" }}'))
    assert [(r.count, r.queue) for r in source.read()] == [(1, 0), (12, 0)]
    with open(csv_file, "ab") as out:
        out.write(b"1790000001000,2,5\r\n1790000002000,3,6\r\n")
    assert [(r.count, r.queue) for r in source.read()] == [(2, 5), (3, 6)]


def test_a_state_value_missing_from_the_table_costs_the_state_not_the_sample(tmp_path):
    lines = tmp_path / "s1.jsonl"
    lines.write_text('{"ts": 1790000000000, "count": 1, "queue": 0, "state": 7}\n')
    source = open_source(_station(tmp_path, f'{{ kind = "file", path = "{lines}", '
                                            f'states = {{ 1 = "down" }} }}'))
    (reading,) = source.read()
    assert (reading.count, reading.state) == (1, None)
    assert "state value '7' is not in the state table (known: 1); sent without state" in reading.problem


def test_simulated_source_is_plausible(tmp_path):
    source = open_source(_station(tmp_path, '{ kind = "simulated", cycle_s = 0.0005, buffer = 5 }'))
    readings = []
    for _ in range(300):
        time.sleep(0.001)
        readings.extend(source.read())
    counts = [r.count for r in readings]
    assert counts == sorted(counts) and counts[-1] > 0
    assert all(0 <= r.queue <= 5 and r.state in STATES and r.scrap <= r.count for r in readings)


def test_a_modbus_plc_that_is_not_there_is_a_source_error(tmp_path):
    station = _station(tmp_path, f'{{ kind = "modbus", host = "127.0.0.1", port = {free_port()}, '
                                 f'count = {{ address = 0 }}, queue = {{ address = 1 }} }}')
    with pytest.raises(SourceError, match="no connection"):
        open_source(station)


# --- check and install --------------------------------------------------------------------------------


def test_check_prints_one_line_per_problem(tmp_path):
    port = free_port()
    config = write_config(tmp_path / "agent.toml", plant="p", mqtt_url=f"mqtt://127.0.0.1:{port}",
                          stations={"sim": '{ kind = "simulated" }',
                                    "f1": f'{{ kind = "file", path = "{tmp_path / "missing.jsonl"}" }}'})
    done = subprocess.run([sys.executable, "-m", "shopfloor", "agent", "check", "--config", str(config),
                           "--timeout", "2"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stdout.strip().splitlines()
    problems = [line for line in lines if line.startswith("problem")]
    assert len(problems) == 2, done.stdout
    assert f"broker mqtt://127.0.0.1:{port}" in problems[0]
    assert "station f1 (file)" in problems[1] and "No such file" in problems[1]
    assert any(line.startswith("ok       station sim (simulated): count=") for line in lines)


def test_check_lists_each_config_problem(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('agent = "a"\nplant = "p"\n[[station]]\nid = "s"\nsource = { kind = "plc" }\n')
    done = subprocess.run([sys.executable, "-m", "shopfloor", "agent", "check", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    problems = done.stdout.strip().splitlines()
    assert len(problems) == 2 and all(line.startswith(f"problem  {path}") for line in problems)
    assert "line" in problems[0] and "'plc'" in problems[1]


def test_install_writes_a_systemd_unit_that_runs_this_config(tmp_path):
    config = write_config(tmp_path / "agent.toml", plant="p", mqtt_url="mqtt://127.0.0.1:1883", agent="line3")
    done = subprocess.run([sys.executable, "-m", "shopfloor", "agent", "install", "--systemd", "--config",
                           str(config), "--unit-dir", str(tmp_path), "--user", "shopfloor"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    unit = (tmp_path / "shopfloor-agent-line3.service").read_text()
    assert unit == unit_text(config, "shopfloor")
    assert f"ExecStart={sys.executable} -m edge_agent run --config {config}" in unit
    assert "User=shopfloor" in unit and "Restart=always" in unit and "WantedBy=multi-user.target" in unit


def test_the_example_config_is_valid_and_shows_every_option():
    from pathlib import Path

    from edge_agent.config import AgentConfig, ModbusSource, Mqtt, OpcUaSource

    example = Path(__file__).parent.parent / "edge_agent" / "agent.example.toml"
    config = load_config(example)
    assert [station.source.kind for station in config.stations] == ["simulated", "modbus", "opcua", "file"]
    text = example.read_text()
    for model in (AgentConfig, Mqtt, ModbusSource, OpcUaSource):
        for name in model.model_fields:
            assert f"{name} =" in text or f"{name}:" in text or f"{name}/" in text, f"{model.__name__}.{name}"


def test_a_timestamp_outside_what_influxdb_stores_is_refused_before_the_outbox():
    track = StationTrack("s1", StationState(), count_width=0, scrap_width=0, max_step=100)
    with pytest.raises(ValueError, match="outside 1970..2255"):
        track.sample(Reading(count=1, queue=0, ts_ms=10**16), read_ms=5000)
    assert track.next_seq == 0


def test_a_station_pc_whose_clock_runs_ahead_is_reported(tmp_path):
    from test_agent_support import run_agent_for

    lines = tmp_path / "s1.jsonl"
    now_ms = int(time.time() * 1000)
    lines.write_text(f'{{"ts": {now_ms - 3_600_000}, "count": 1, "queue": 0}}\n'  # an old line: no verdict
                     f'{{"ts": {now_ms + 90_000}, "count": 2, "queue": 0}}\n')  # 90 s in the future
    config = write_config(tmp_path / "agent.toml", plant="p", mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
                          stations={"s1": f'{{ kind = "file", path = "{lines}" }}'})
    agent = run_agent_for(config, 0.3)
    assert agent.produced == 2
    assert [p for p in agent.problem_list() if "clock" in p] == [
        "station s1: the source's clock differs from the agent's by +90 s (threshold 5 s): sync both by NTP"]


def test_the_default_outbox_is_in_the_state_folder_not_where_the_agent_starts(tmp_path, monkeypatch):
    (tmp_path / "agent.toml").write_text('agent = "pc1"\nplant = "p"\nline = "l1"\n[[station]]\nid = "s1"\n'
                                         'source = { kind = "simulated" }\n')
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert load_config(tmp_path / "agent.toml").outbox == tmp_path / "state/shopfloor/outbox-p-l1-pc1.sqlite"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_config(tmp_path / "agent.toml").outbox == \
        tmp_path / "home/.local/state/shopfloor/outbox-p-l1-pc1.sqlite"


def test_the_example_config_dials_only_this_pc_and_a_stray_outbox_is_ignored_by_git():
    from pathlib import Path
    from urllib.parse import urlsplit

    from edge_agent.config import state_folder

    root = Path(__file__).parent.parent
    config = load_config(root / "edge_agent" / "agent.example.toml")
    sources = {station.source.kind: station.source for station in config.stations}
    assert sources["modbus"].host == "127.0.0.1"
    assert urlsplit(sources["opcua"].url).hostname == "127.0.0.1"
    assert config.outbox.parent == state_folder()
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    for stray in ("outbox.sqlite", "outbox.sqlite-wal", "edge_agent/outbox-p1-l1-a1.sqlite-shm"):
        done = subprocess.run(["git", "check-ignore", "-q", stray], cwd=root)
        assert done.returncode == 0, f"{stray} is not ignored by .gitignore"
