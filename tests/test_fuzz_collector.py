"""10,000 fuzzed telemetry messages through the real broker and the real collector process.

A seeded generator builds valid samples and batches, and payloads broken in every way we could think of
(random bytes, truncated JSON, wrong types, out-of-range numbers, unknown keys, bad batches, huge or
deeply nested documents, invalid UTF-8, spoofed station ids in the topic). The generator labels each
message itself, independently of the decoder; the test then checks that the collector is still alive,
that InfluxDB holds exactly the valid samples (no malformed point, none missing), and that every broken
message came back on `shopfloor/v1/_rejected` with a reason.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field

import orjson
import pytest
from conftest import wait_until
from support import RejectWatcher

from shopfloor.contract import MAX_TS_MS, STATES, ContractError, decode_telemetry
from shopfloor.mqtt import make_client
from shopfloor.settings import mqtt_endpoint
from shopfloor.store import quote_string

pytestmark = pytest.mark.servers

MESSAGES = 10_000
BASE_TS = 1_790_000_000_000
BROKEN_TS = BASE_TS + 100_000_000  # a broken message's timestamps: a stored one would show at once
STATIONS = [f"s{i}" for i in range(8)]
SPOOFED = ["s,1", "s 1", "s=1", 's"1', "s\\1", "ü", "x" * 65, "", "s.1"]


@dataclass
class Fuzzer:
    """Seeded generator of (topic, payload, samples it should store) triples."""

    plant: str
    rng: random.Random = field(default_factory=lambda: random.Random(20261126))
    next_ts: int = BASE_TS
    expected: dict[tuple[str, int], dict] = field(default_factory=dict)

    def topic(self, station: str) -> str:
        return f"shopfloor/v1/{self.plant}/l1/{station}/telemetry"

    def sample(self, station: str, ts: int | None = None) -> dict:
        if ts is None:
            ts, self.next_ts = self.next_ts, self.next_ts + 1
        sample = {"ts": ts, "seq": ts - BASE_TS, "count": self.rng.randrange(2**63),
                  "queue": self.rng.choice([0, 1, 7, 2**63 - 1])}
        if self.rng.random() < 0.5:
            sample["scrap"] = self.rng.randrange(1000)
        if self.rng.random() < 0.7:
            sample["state"] = self.rng.choice(STATES)
        return sample

    def valid(self) -> tuple[str, bytes, list[dict]]:
        station = self.rng.choice(STATIONS)
        if self.rng.random() < 0.5:
            sample = self.sample(station)
            return self.topic(station), orjson.dumps({"v": 1, **sample}), [(station, sample)]
        samples = [self.sample(station) for _ in range(self.rng.randint(1, 30))]
        payload = orjson.dumps({"v": 1, "samples": samples})
        return self.topic(station), payload, [(station, s) for s in samples]

    def broken_sample(self) -> dict:
        """A sample that breaks the contract in one chosen way (never by chance still valid)."""
        sample = self.sample("x", ts=BROKEN_TS + self.rng.randrange(10**6))
        key = self.rng.choice(["ts", "seq", "count", "queue", "scrap", "state"])
        how = self.rng.choice(["drop", "type", "negative", "range", "unknown"])
        if how == "drop" and key in ("ts", "seq", "count", "queue"):
            del sample[key]
        elif how == "type" or key == "state":
            sample[key] = self.rng.choice(["1", 1.5, True, None, [], {}, "x" * 300, "wörking", "∞"])
            if key == "state" and sample[key] in STATES:
                sample[key] = "coffee"
        elif how == "negative":
            sample[key] = -self.rng.randint(1, 2**63)
        elif how == "range":
            sample[key] = MAX_TS_MS + 1 if key == "ts" else 2**63 + self.rng.randrange(2**10)
        else:
            sample[self.rng.choice(["x", "V", "samples", "ts ", "", "count\u0000"])] = 1
        return sample

    def broken(self) -> tuple[str, bytes]:
        station = self.rng.choice(STATIONS)
        topic = self.topic(station)
        kind = self.rng.randrange(14)
        if kind == 0:
            payload = self.rng.randbytes(self.rng.randint(0, 200))
        elif kind == 1:
            whole = orjson.dumps({"v": 1, **self.sample(station, ts=BROKEN_TS)})
            payload = whole[:self.rng.randint(0, len(whole) - 1)]
        elif kind == 2:
            payload = json.dumps(self.rng.choice([[1, 2], 3, "sample", None, True, [{"v": 1}]])).encode()
        elif kind in (3, 4, 5):
            payload = json.dumps({"v": 1, **self.broken_sample()}).encode()
        elif kind == 6:
            good = [self.sample(station, ts=BROKEN_TS + i) for i in range(self.rng.randint(0, 5))]
            good.insert(self.rng.randint(0, len(good)), self.broken_sample())
            payload = json.dumps({"v": 1, "samples": good}).encode()
        elif kind == 7:
            version = self.rng.choice([2, 0, "1", True, None, 1.0])
            payload = json.dumps({"v": version, **self.sample(station, ts=BROKEN_TS)}).encode()
        elif kind == 8:
            sample = self.sample(station, ts=BROKEN_TS)
            payload = json.dumps(self.rng.choice([sample, {"samples": [sample]}])).encode()  # no "v"
        elif kind == 9:
            samples = self.rng.choice([[], [{"v": 1, **self.sample(station, ts=BROKEN_TS)}],
                                       [self.sample(station, ts=BROKEN_TS + i) for i in range(1001)]])
            payload = orjson.dumps({"v": 1, "samples": samples})
        elif kind == 10:
            depth = self.rng.choice([10, 600, 5000])
            payload = b'{"v":1,"ts":' + b"[" * depth + b"]" * depth + b',"seq":1,"count":1,"queue":0}'
        elif kind == 11:
            payload = b'{"v":1,"ts":1790000000000,"seq":1,"count":1,"queue":0,"state":"\xff\xfe' + \
                self.rng.randbytes(4) + b'"}'
        elif kind == 12:  # now and then a document of 20,000 samples (700 kB), else a text that is no JSON
            many = 20_000 if self.rng.random() < 0.02 else 0
            one = b'{"ts":1,"seq":1,"count":1,"queue":0}'
            text = "ставка 🙂".encode()
            payload = b'{"v":1,"samples":[' + b",".join([one] * many) + b"]}" if many else text
        else:
            topic = self.topic(self.rng.choice(SPOOFED))
            payload = orjson.dumps({"v": 1, **self.sample(station, ts=BROKEN_TS)})
        return topic, payload

    def messages(self, count: int) -> list[tuple[str, bytes, list]]:
        out = []
        for _ in range(count):
            if self.rng.random() < 0.2:
                topic, payload, samples = self.valid()
                for station, sample in samples:
                    self.expected[(station, sample["ts"])] = sample
                out.append((topic, payload, samples))
            else:
                out.append((*self.broken(), []))
        return out


def test_the_generator_labels_agree_with_the_decoder(plant_id):
    for topic, payload, samples in Fuzzer(plant_id).messages(2000):
        station = topic.split("/")[4]
        try:
            decoded = decode_telemetry(payload)
            valid_topic = station in STATIONS
        except ContractError:
            decoded, valid_topic = [], True
        assert (decoded if valid_topic else []) == [s for _, s in samples], payload[:200]


def test_ten_thousand_fuzzed_messages_crash_nothing_and_store_only_valid_samples(stack, store, plant_id,
                                                                                  collector_process):
    collector = collector_process(stack, store.database, group=f"g{plant_id}", session_expiry=0,
                                  client_id=f"c{plant_id}")
    endpoint = mqtt_endpoint(stack.mosquitto.url)
    watcher = RejectWatcher(stack.mosquitto.url, f"w{plant_id}")
    rejected = watcher.rejected

    fuzzer = Fuzzer(plant_id)
    messages = fuzzer.messages(MESSAGES)
    broken = sum(1 for _, _, samples in messages if not samples)
    publisher = make_client(f"p{plant_id}", endpoint)
    publisher.connect(endpoint.host, endpoint.port)
    publisher.loop_start()
    started = time.monotonic()
    pending = []
    for topic, payload, _ in messages:
        pending.append(publisher.publish(topic, payload, qos=1))
        if len(pending) >= 1000:
            for info in pending:
                info.wait_for_publish(30)
                assert info.is_published()
            pending.clear()
    for info in pending:
        info.wait_for_publish(30)
    publisher.disconnect()
    publisher.loop_stop()

    mine = lambda: [r for r in rejected if f"/{plant_id}/" in r["topic"]]  # noqa: E731
    wait_until(lambda: len(mine()) >= broken, 90, f"{broken} rejects")
    wait_until(lambda: stored_count(store, plant_id) >= len(fuzzer.expected), 60,
               f"{len(fuzzer.expected)} valid samples")
    time.sleep(1.0)  # anything wrongly stored would arrive with the rest
    elapsed = time.monotonic() - started
    watcher.close()

    assert collector.running(), collector.log()[-2000:]
    assert "Traceback" not in collector.log()
    assert stored_points(store, plant_id) == {(station, ts): sample
                                              for (station, ts), sample in fuzzer.expected.items()}
    assert all(r["reason"] and r["bytes"] >= 0 for r in mine())
    print(f"{MESSAGES} messages ({broken} broken, {len(fuzzer.expected)} valid samples) in {elapsed:.1f} s")


def stored_count(store, plant: str) -> int:
    result = store.query(f"SELECT count(seq) FROM station WHERE plant = {quote_string(plant)}")
    return result.series[0].values[0][1] if result.series else 0


def stored_points(store, plant: str) -> dict[tuple[str, int], dict]:
    """Every stored point of the plant as {(station, ts): sample}, with the sample's own key set and types."""
    result = store.query(f"SELECT * FROM station WHERE plant = {quote_string(plant)} GROUP BY station")
    points = {}
    for series in result.series:
        for row in series.rows():
            sample = {key: row[key] for key in ("seq", "count", "queue", "scrap", "state")
                      if row.get(key) is not None}
            assert all(type(value) is (str if key == "state" else int) for key, value in sample.items()), row
            points[(series.tags["station"], row["time"])] = {"ts": row["time"], **sample}
    return points
