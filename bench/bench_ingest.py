"""Ingest through the real broker and InfluxDB, against a raw paho subscriber measured in the same run.

    python bench/bench_ingest.py [--messages 60000] [--batches 400] [--latency-seconds 10] [--batch-only]

Targets (issue 13, with receipts): >= 0.6x the raw subscriber for single samples, >= 200,000
samples/s batched, p99 < 1 s.
1. Single-sample messages: the broker holds N queued QoS 1 messages for a persistent session; the
   time to drain them is measured for a raw paho QoS 1 subscriber that does nothing (the ceiling)
   and for the collector, until the last point is queryable in InfluxDB; alternating, best of
   --rounds each (the raw rate alone moves 10k-17k/s between runs here). Target: >= 0.6x the ceiling.
2. Batch messages of 1,000 samples (50 stations), drained the same way: samples/s, and the CPU the
   collector and influxd spent per sample. Target: >= 200,000/s. Its reference, measured in the same
   run alternating with the drain: InfluxDB's own write ceiling, the same points written straight by
   `Store.write` in the collector's body size from as many threads as it has writers (its defaults,
   collector/config.py), no broker and no decoding: the drain reads as a fraction of what InfluxDB
   alone takes on this machine at this moment. `--batch-only` runs just this part (--rounds pairs).
3. Sparkplug B against the collector's own JSON: a Sparkplug edge node's DDATA of 10 metrics (count,
   queue, scrap, state and 6 unmapped ones, alias only, encoded by pysparkplug; one sample each),
   queued and drained like 1., against the same number of single-sample JSON messages, alternating,
   best of --rounds each. Published at QoS 1 so that both wait in the same persistent-session queue
   (edge nodes publish data at QoS 0, which a broker does not queue for an offline host).
   Beside it, in-process: paho's PUBLISH decoder with the lean MQTT 5 properties the project's
   clients use (shopfloor/paho_properties.py) against paho's own class.
4. End-to-end latency at 5,000 samples/s (single-sample messages): publish time to the first InfluxDB
   poll (every 10 ms) that sees the point. Target: p99 < 1 s.
Each drain ends by deleting what only it needed: its persistent MQTT session (`forget_session`) and
its database (`drop_database`). Why: until 2026-12-02 every drain left a session subscribed to the
telemetry, so each later phase's messages were queued for 13 sessions nobody would read (the broker
held 484 MB by the latency phase, influxd 973 MB); the latency phase then measured a broker and a
database in a state no plant has, and gave p99 1.6-1.8 s where the same phase on a fresh stack gave
0.24-0.31 s. Every loop is bounded by a count and a deadline; only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from collector.config import CollectorConfig
from shopfloor.contract import (
    TELEMETRY_FILTER,
    StationKey,
    encode_batch,
    encode_sample,
    sample_line,
    telemetry_topic,
)
from shopfloor.mqtt import connect_properties, make_client
from shopfloor.settings import mqtt_endpoint
from shopfloor.stack import Stack
from shopfloor.store import Store, quote_ident, quote_string

KEY = StationKey("bench", "l1", "s1")
TS0 = 1_790_000_000_000


def sample(seq: int, ts0: int = TS0) -> dict:
    return {"ts": ts0 + seq, "seq": seq, "count": seq, "queue": seq % 7, "state": "working"}


def publish(url: str, payloads: list[bytes], pace_per_s: float = 0.0, stations: int = 1) -> list[float]:
    """Publish QoS 1 round-robin over `stations` stations and wait for every PUBACK.

    Returns each message's publish time.
    """
    topics = [telemetry_topic(StationKey(KEY.plant, KEY.line, f"s{n}")) for n in range(stations)]
    endpoint = mqtt_endpoint(url)
    client = make_client("bench-pub", endpoint)
    client.max_queued_messages_set(0)
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    infos, times = [], []
    started = time.perf_counter()
    for index, payload in enumerate(payloads):
        if pace_per_s:
            delay = started + index / pace_per_s - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        times.append(time.time())
        infos.append(client.publish(topics[index % stations], payload, qos=1))
        if len(infos) >= 20_000:
            for info in infos:
                info.wait_for_publish(60)
            infos.clear()
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()
    return times


def publish_to(url: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish (topic, payload) pairs QoS 1 in order and wait for every PUBACK."""
    endpoint = mqtt_endpoint(url)
    client = make_client("bench-spb", endpoint)
    client.max_queued_messages_set(0)
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    infos = []
    for topic, payload in messages:
        infos.append(client.publish(topic, payload, qos=1))
        if len(infos) >= 20_000:
            for info in infos:
                info.wait_for_publish(60)
            infos.clear()
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


SPB_PLANT = """plant = "bench"
[[line]]
id = "l1"
[[line.station]]
id = "s1"
buffer = 8
ideal_cycle_s = 1.0
[line.station.sparkplug]
group = "bench"
node = "edge"
device = "d1"
count = "Count"
queue = "Queue"
scrap = "Scrap"
state = "State"
states = { "1" = "working", "2" = "down" }
"""


def sparkplug_messages(messages: int) -> list[tuple[str, bytes]]:
    """NBIRTH, DBIRTH, then `messages` DDATA of 10 alias-only metrics, one reading each, by pysparkplug."""
    import pysparkplug as spb  # the test extra: an encoder other than the collector's decoder

    names = ["Count", "Queue", "Scrap", "State"] + [f"Sensor{n}" for n in range(6)]
    types = [spb.DataType.UINT32] * 4 + [spb.DataType.DOUBLE] * 6

    def metrics(seq: int, birth: bool) -> list:
        values = [seq, seq % 7, seq // 100, 1 + (seq % 50 == 0)] + [seq * 0.5 + n for n in range(6)]
        return [spb.Metric(timestamp=TS0 + seq, name=name if birth else None, datatype=datatype,
                           value=value, alias=alias)
                for alias, (name, datatype, value) in enumerate(zip(names, types, values, strict=True))]

    bd_seq = spb.Metric(timestamp=TS0, name="bdSeq", datatype=spb.DataType.INT64, value=0)
    out = [("spBv1.0/bench/NBIRTH/edge", spb.NBirth(timestamp=TS0, seq=0, metrics=[bd_seq]).encode()),
           ("spBv1.0/bench/DBIRTH/edge/d1",
            spb.DBirth(timestamp=TS0, seq=1, metrics=metrics(0, True)).encode())]
    for n in range(1, messages):
        payload = spb.DData(timestamp=TS0 + n, seq=(n + 1) % 256, metrics=metrics(n, False)).encode()
        out.append(("spBv1.0/bench/DDATA/edge/d1", payload))
    return out


def decode_cost(spb_messages: list[tuple[str, bytes]], json_messages: list[bytes]) -> tuple[float, float]:
    """Microseconds per message in-process (no broker, no InfluxDB): the Sparkplug host's decode and
    mapping against the contract's decode + line encoding, best of 3 passes each."""
    import tomllib

    from collector.ingest import Ingest
    from shopfloor.contract import decode_telemetry, parse_telemetry_topic, sample_line
    from shopfloor.plant import Plant

    topic = telemetry_topic(KEY)
    best_spb = best_json = float("inf")
    for _ in range(3):
        ingest = Ingest(Plant.model_validate(tomllib.loads(SPB_PLANT)), "bench", lambda *args: None)
        started = time.perf_counter()
        for spb_topic, payload in spb_messages:
            ingest.decode(spb_topic, payload)
        best_spb = min(best_spb, (time.perf_counter() - started) / len(spb_messages) * 1e6)
        started = time.perf_counter()
        for payload in json_messages:
            key = parse_telemetry_topic(topic)
            [sample_line(key, one) for one in decode_telemetry(payload)]
        best_json = min(best_json, (time.perf_counter() - started) / len(json_messages) * 1e6)
    return best_spb, best_json


def publish_read_cost(messages: int = 30_000) -> tuple[float, float]:
    """Microseconds per PUBLISH in paho's own decoder (`decode_publish`, MQTT 5, a single-sample
    telemetry message without properties), with paho's `Properties` and with the lean class that
    `make_client` installs (shopfloor/paho_properties.py), best of 3 passes each, alternating."""
    import paho.mqtt._packet as paho_packet
    from paho.mqtt.properties import Properties

    from shopfloor.paho_properties import LeanProperties

    topic = telemetry_topic(KEY).encode()
    packet = len(topic).to_bytes(2, "big") + topic + b"\x00\x01\x00" + encode_sample(sample(1))
    installed = paho_packet.Properties
    best = {Properties: float("inf"), LeanProperties: float("inf")}
    try:
        for _ in range(3):
            for cls in best:
                paho_packet.Properties = cls
                started = time.perf_counter()
                for _ in range(messages):
                    paho_packet.decode_publish(0x32, packet, 5)
                best[cls] = min(best[cls], (time.perf_counter() - started) / messages * 1e6)
    finally:
        paho_packet.Properties = installed
    return best[Properties], best[LeanProperties]


def raw_drain_rate(url: str, payloads: list[bytes]) -> float:
    """Messages/s a paho subscriber that does nothing drains from a persistent session's queue."""
    endpoint = mqtt_endpoint(url)
    got = threading.Event()
    received = [0]
    first = [0.0]

    def on_message(client, userdata, message) -> None:
        if received[0] == 0:
            first[0] = time.perf_counter()
        received[0] += 1
        if received[0] == len(payloads):
            got.set()

    def connect():
        client = make_client("bench-raw", endpoint)
        client.on_message = on_message
        client.connect(endpoint.host, endpoint.port, clean_start=False, properties=connect_properties(600))
        client.subscribe(f"$share/raw/{TELEMETRY_FILTER}", qos=1)
        client.loop_start()
        return client

    client = connect()
    time.sleep(0.5)
    client.disconnect()
    client.loop_stop()
    publish(url, payloads)
    started = time.perf_counter()
    client = connect()
    if not got.wait(120):
        raise SystemExit(f"raw subscriber got only {received[0]} of {len(payloads)} in 120 s")
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    forget_session(url, "bench-raw")
    return len(payloads) / elapsed


class CollectorRun:
    def __init__(self, stack: Stack, database: str, log: Path, plant: Path | None = None):
        self.client_id = f"bench-{database}"
        self.argv = [sys.executable, "-m", "shopfloor", "collector", "run", "-v", "--mqtt-url",
                     stack.mosquitto.url, "--influx-url", stack.influxdb.url, "--influx-db", database,
                     "--client-id", self.client_id, "--group", database]
        if plant:
            self.argv += ["--plant", str(plant), "--host-id", f"bench-{database}"]
        self.log = log

    def start(self) -> float:
        """Start the collector and return the moment it connected to the broker (the broker delivers a
        resumed session's queue from there on). Why the log is read only past what it held before: the
        same log serves a database's first start and its restart, and the first start's lines must not
        count as the restart's connection (they did until 2026-12-02: every drain then began before the
        restarted process had even imported, about 1 s of Python start-up on a drain of 2-8 s)."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        connected = None
        while True:
            text = self.log.read_bytes()[offset:]
            if connected is None and b"connected to" in text:
                connected = time.perf_counter()
            if b"subscribed to" in text:
                return connected if connected is not None else time.perf_counter()
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"collector did not connect: {text.decode(errors='replace')}")
            time.sleep(0.005)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


def forget_session(url: str, client_id: str) -> None:
    """Delete the broker's persistent session of `client_id` and what it queues: connect with a clean
    start and no session expiry, then leave (MQTT 5: the session ends with the connection)."""
    endpoint = mqtt_endpoint(url)
    client = make_client(client_id, endpoint)
    client.connect(endpoint.host, endpoint.port, clean_start=True)
    client.loop_start()
    try:
        deadline = time.monotonic() + 10
        while not client.is_connected():
            if time.monotonic() > deadline:
                raise SystemExit(f"could not reconnect as {client_id} to delete its session")
            time.sleep(0.01)
    finally:
        client.disconnect()
        client.loop_stop()


def drop_database(store: Store) -> None:
    """Drop a drain's database once its figure is taken, so later phases meet an influxd that holds
    only their own data."""
    store.query(f"DROP DATABASE {quote_ident(store.database)}", method="POST", database=None)
    store.close()


def count(store: Store) -> int:
    """All points stored (a full scan: run it once at the end, never in a polling loop)."""
    result = store.query("SELECT count(seq) FROM station")
    return result.series[0].values[0][1] if result.series else 0


def frontier(store: Store, since_ms: int, station: str | None = None) -> int:
    """The highest seq stored at or after `since_ms` (of one station if named): a cheap poll that reads
    only recent points. Why the station: the poll shares influxd's CPU with the drain it times, and the
    ceiling run has no poll; polling every 250 ms instead of 20 ms cut influxd's CPU per drained sample
    from 8.7-9.2 to 6.2-6.4 us in two of three A/B pairs (load average 3-7), so each poll reads one
    series instead of 50 (no difference showed at load average 6.7, within the scatter)."""
    where = f"time >= {since_ms}ms" + (f" AND station = {quote_string(station)}" if station else "")
    result = store.query(f"SELECT max(seq) FROM station WHERE {where}")
    return result.series[0].values[0][1] if result.series else -1


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc): a figure the other load on the
    cores disturbs far less than a rate does."""
    fields = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def collector_drain_rate(stack: Stack, workdir: Path, database: str, payloads: list[bytes],
                         samples: int, stations: int = 1, plant: Path | None = None,
                         sparkplug: list[tuple[str, bytes]] | None = None,
                         cpu: dict[str, float] | None = None) -> float:
    """Samples/s from the collector's (re)connect to the last point being queryable.

    With `sparkplug` (topic, payload) pairs those are queued instead, and the last sample's seq is its ts.
    `cpu`, if given, receives the CPU microseconds per sample the collector and influxd spent meanwhile.
    """
    store = Store(stack.influxdb.url, database)
    store.create_database()
    run = CollectorRun(stack, database, workdir / f"{database}.log", plant)
    run.start()
    run.stop()  # the session now exists and queues what follows
    if sparkplug:
        publish_to(stack.mosquitto.url, sparkplug)
    else:
        publish(stack.mosquitto.url, payloads, stations=stations)
    last_ts = sample(samples - 1)["ts"]
    last_seq = last_ts if sparkplug else samples - 1
    # the last message's station (publish goes round-robin); the drain ends when its last point and then
    # every point is queryable (two writers may finish batches out of order: the full count decides)
    last_station = f"s{(len(payloads) - 1) % stations}" if stations > 1 and not sparkplug else None
    started = run.start()
    assert stack.influxdb.pid is not None
    before = cpu_seconds(run.process.pid), cpu_seconds(stack.influxdb.pid)
    try:
        deadline = time.monotonic() + 300
        while frontier(store, last_ts, last_station) < last_seq or count(store) < samples:
            if time.monotonic() > deadline:
                raise SystemExit(f"collector did not store the last of {samples} samples in 300 s: "
                                 f"see {run.log}")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        if cpu is not None:
            cpu["collector"] = (cpu_seconds(run.process.pid) - before[0]) / samples * 1e6
            cpu["influxd"] = (cpu_seconds(stack.influxdb.pid) - before[1]) / samples * 1e6
    finally:
        run.stop()
        forget_session(stack.mosquitto.url, run.client_id)
    if (stored := count(store)) != samples:
        raise SystemExit(f"collector stored {stored} points for {samples} samples")
    drop_database(store)
    return samples / elapsed


def batch_points(batches: int, stations: int) -> list[bytes]:
    """The line protocol of the batch drain's points, 1,000 a message, the messages round-robin over
    `stations` as `publish` sends them: what the collector writes, encoded by the contract."""
    keys = [StationKey(KEY.plant, KEY.line, f"s{n}") for n in range(stations)]
    return [sample_line(keys[(seq // 1000) % stations], sample(seq)).encode()
            for seq in range(batches * 1000)]


def influx_ceiling(stack: Stack, database: str, points: list[bytes], body: int, writers: int) -> float:
    """Points/s InfluxDB takes when the same points come straight from `Store.write` in bodies of `body`
    points from `writers` threads sharing one Store, as the collector's writers do: no broker, no
    decoding, bodies joined beforehand. Checked: every point stored."""
    store = Store(stack.influxdb.url, database)
    store.create_database()
    bodies = [b"\n".join(points[start:start + body]) for start in range(0, len(points), body)]
    failures: list[BaseException] = []

    def write(part: list[bytes]) -> None:
        try:
            for one in part:
                store.write(one)
        except BaseException as error:  # reported after the join, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=write, args=(bodies[n::writers],)) for n in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"InfluxDB ceiling run failed: {failures[0]}")
    if (stored := count(store)) != len(points):
        raise SystemExit(f"InfluxDB stored {stored} of {len(points)} points in the ceiling run")
    drop_database(store)
    return len(points) / elapsed


def batch_figures(stack: Stack, workdir: Path, batches: int, rounds: int) -> str:
    """The batch drain against InfluxDB's own ceiling, alternating (who goes first alternates too);
    each round printed as it ends with the load average at its start. Returns the summary line."""
    defaults = CollectorConfig()
    payloads = [encode_batch([sample(b * 1000 + i) for i in range(1000)]) for b in range(batches)]
    points = batch_points(batches, 50)
    drains, ceilings, cpus = [], [], []
    for round_ in range(rounds):
        load = os.getloadavg()
        for step in ((0, 1) if round_ % 2 == 0 else (1, 0)):
            if step == 0:
                cpu: dict[str, float] = {}
                drains.append(collector_drain_rate(stack, workdir, f"bench_batch_{round_}", payloads,
                                                   batches * 1000, stations=50, cpu=cpu))
                cpus.append(cpu)
            else:
                ceilings.append(influx_ceiling(stack, f"bench_ceiling_{round_}", points,
                                               defaults.batch_samples, defaults.writers))
        print(f"  batch round {round_ + 1} (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}): "
              f"collector {drains[-1]:,.0f} samples/s (CPU per sample: collector "
              f"{cpus[-1]['collector']:.2f} us, influxd {cpus[-1]['influxd']:.2f} us), InfluxDB alone "
              f"{ceilings[-1]:,.0f} points/s", flush=True)
    best, ceiling = max(drains), max(ceilings)
    return (f"batch messages (1,000 samples, 50 stations): {best:,.0f} samples/s (target >= 200,000/s) = "
          f"{best / ceiling:.2f}x what InfluxDB alone takes here ({ceiling:,.0f} points/s by Store.write in "
          f"{defaults.batch_samples:,}-point bodies from {defaults.writers} threads, no broker), "
          f"{batches * 1000:,} samples, best of {rounds} rounds each")


def latency(stack: Stack, workdir: Path, rate: int, seconds: float) -> np.ndarray:
    """Per-sample delay from publish to the first 10 ms poll that sees it (one station, ts 1 ms apart)."""
    database = "bench_latency"
    store = Store(stack.influxdb.url, database)
    store.create_database()
    run = CollectorRun(stack, database, workdir / "latency.log")
    run.start()
    total = int(rate * seconds)
    ts0 = int(time.time() * 1000)
    seen: list[tuple[float, int]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            seen.append((time.time(), frontier(store, ts0 + max(seen[-1][1], 0) if seen else ts0)))
            time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        times = publish(stack.mosquitto.url, [encode_sample(sample(i, ts0)) for i in range(total)],
                        pace_per_s=rate)
        deadline = time.monotonic() + 60
        while (not seen or seen[-1][1] < total - 1) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        poller.join()
        run.stop()
    poll_times = np.array([t for t, _ in seen])
    frontiers = np.maximum.accumulate(np.array([f for _, f in seen]))
    # sample i is queryable at the first poll whose frontier reaches i (one collector keeps the order)
    first_poll = np.searchsorted(frontiers, np.arange(total), side="left")
    if first_poll.max() >= len(seen):
        raise SystemExit("not every sample became queryable within 60 s")
    return poll_times[first_poll] - np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--latency-rate", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="single-sample drains of each; best counts")
    parser.add_argument("--sparkplug-messages", type=int, default=30_000)
    parser.add_argument("--batch-only", action="store_true",
                        help="only the batch drain against InfluxDB's own ceiling (--rounds pairs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        stack = Stack(workdir / "stack")
        stack.up()
        try:
            if args.batch_only:
                print(batch_figures(stack, workdir, args.batches, args.rounds))
                return
            singles = [encode_sample(sample(i)) for i in range(args.messages)]
            ceilings, single_rates = [], []
            for round_ in range(args.rounds):  # alternate, so both see the same spells of other load
                ceilings.append(raw_drain_rate(stack.mosquitto.url, singles))
                single_rates.append(collector_drain_rate(stack, workdir, f"bench_single_{round_}", singles,
                                                         args.messages))
            ceiling, single_rate = max(ceilings), max(single_rates)
            plant = workdir / "plant.toml"
            plant.write_text(SPB_PLANT)
            spb_messages = sparkplug_messages(args.sparkplug_messages)
            json_messages = [encode_sample(sample(i)) for i in range(args.sparkplug_messages)]
            spb_us, json_us = decode_cost(spb_messages, json_messages)
            stock_us, lean_us = publish_read_cost()
            spb_rates, json_rates = [], []
            for round_ in range(args.rounds):
                json_rates.append(collector_drain_rate(stack, workdir, f"bench_json_{round_}", json_messages,
                                                       len(json_messages), plant=plant))
                spb_rates.append(collector_drain_rate(stack, workdir, f"bench_spb_{round_}", [],
                                                      len(spb_messages) - 1, plant=plant,
                                                      sparkplug=spb_messages))
            batch_line = batch_figures(stack, workdir, args.batches, args.rounds)
            delays = latency(stack, workdir, args.latency_rate, args.latency_seconds)
        finally:
            stack.down()
    p50, p99 = np.percentile(delays, [50, 99])
    print(f"single-sample messages: collector {single_rate:,.0f} samples/s vs raw paho QoS 1 subscriber "
          f"{ceiling:,.0f} msg/s = {single_rate / ceiling:.2f}x (target >= 0.6x), "
          f"{args.messages:,} messages, best of {args.rounds} rounds each")
    print(batch_line)
    spb_rate, json_rate = max(spb_rates), max(json_rates)
    print(f"Sparkplug B DDATA of 10 metrics (1 sample each): collector {spb_rate:,.0f} samples/s vs its "
          f"own single-sample JSON {json_rate:,.0f} samples/s = {spb_rate / json_rate:.2f}x, "
          f"{args.sparkplug_messages:,} messages, best of {args.rounds} rounds each "
          f"(rounds: {', '.join(f'{a:,.0f}/{b:,.0f}' for a, b in zip(spb_rates, json_rates, strict=True))})")
    print(f"in-process decode, per message: Sparkplug DDATA {spb_us:.1f} us vs JSON sample {json_us:.1f} us "
          f"= {spb_us / json_us:.1f}x")
    print(f"paho's PUBLISH decoder, per single-sample message: with the lean properties {lean_us:.1f} us vs "
          f"paho's own Properties {stock_us:.1f} us = {lean_us / stock_us:.2f}x")
    print(f"end-to-end latency at {args.latency_rate:,} samples/s, publish to queryable: "
          f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms (target p99 < 1,000 ms; poll every 10 ms), "
          f"{len(delays):,} samples")


if __name__ == "__main__":
    main()
