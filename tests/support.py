"""Small helpers for the pipeline tests: a plain paho publisher of contract samples and a point counter."""

from __future__ import annotations

import random
import threading
import time

import orjson

from shopfloor.contract import REJECTED_TOPIC, StationKey, encode_batch, encode_sample, telemetry_topic
from shopfloor.mqtt import make_client
from shopfloor.settings import mqtt_endpoint
from shopfloor.store import Store, quote_string

BASE_TS = 1_790_000_000_000  # 2026-09-21, inside any retention policy's default shard


def sample(seq: int, ts: int | None = None) -> dict:
    return {"ts": ts if ts is not None else BASE_TS + seq * 1000, "seq": seq, "count": seq * 2,
            "queue": seq % 5, "state": "working"}


class Stamps:
    """Sample times drawn apart from `seq`: each new (topic, seq) gets the next time of a clock that
    advances by a random 1-1,999 ms, and a resend of the same sample gets the same time again (what a
    real redelivery carries). So a stored (time, seq) pair checks both: were `ts` a function of `seq`,
    a sample stored twice under a wrong time could not be told from one stored once."""

    def __init__(self, seed: int = 13):
        self._random = random.Random(seed)
        self._clock = BASE_TS
        self._given: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def ts(self, topic: str, seq: int) -> int:
        with self._lock:
            if (topic, seq) not in self._given:
                self._clock += self._random.randint(1, 1999)
                self._given[topic, seq] = self._clock
            return self._given[topic, seq]

    def of(self, key: StationKey, seqs: range | list[int]) -> list[tuple[int, int]]:
        """(ts, seq) of samples already published, in time order: what storage must hold."""
        topic = telemetry_topic(key)
        return sorted((self._given[topic, seq], seq) for seq in seqs)


STAMPS = Stamps()


class Publisher:
    """A paho QoS 1 publisher that waits for every PUBACK (a stand-in for any contract-speaking agent)."""

    def __init__(self, mqtt_url: str, client_id: str):
        endpoint = mqtt_endpoint(mqtt_url)
        self.client = make_client(client_id, endpoint)
        self.client.connect(endpoint.host, endpoint.port)
        self.client.loop_start()

    def publish(self, key: StationKey, seqs: range, batch: int = 1, pace_s: float = 0.0) -> None:
        infos = []
        seq_list = list(seqs)
        for start in range(0, len(seq_list), batch):
            chunk = [sample(seq, STAMPS.ts(telemetry_topic(key), seq))
                     for seq in seq_list[start:start + batch]]
            payload = encode_sample(chunk[0]) if batch == 1 else encode_batch(chunk)
            infos.append(self.client.publish(telemetry_topic(key), payload, qos=1))
            if pace_s:
                time.sleep(pace_s)
            if len(infos) >= 2000:
                self._wait(infos)
        self._wait(infos)

    @staticmethod
    def _wait(infos: list) -> None:
        for info in infos:
            info.wait_for_publish(timeout=60)
            assert info.is_published(), "the broker did not acknowledge a message within 60 s"
        infos.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_in_background(publisher: Publisher, key: StationKey, seqs: range,
                          pace_s: float) -> threading.Thread:
    thread = threading.Thread(target=publisher.publish, args=(key, seqs), kwargs={"pace_s": pace_s})
    thread.start()
    return thread


def stored_seqs(store: Store, plant: str) -> dict[str, list[int]]:
    """Every stored seq per station of one plant, in time order (duplicates would show as repeats)."""
    result = store.query(f"SELECT seq FROM station WHERE plant = {quote_string(plant)} GROUP BY station")
    return {series.tags["station"]: series.column("seq") for series in result.series}


def stored_points(store: Store, plant: str) -> dict[str, list[tuple[int, int]]]:
    """Every stored (time, seq) per station of one plant, in time order."""
    result = store.query(f"SELECT seq FROM station WHERE plant = {quote_string(plant)} GROUP BY station")
    return {series.tags["station"]: [(time_, seq) for time_, seq in series.values]
            for series in result.series}


def stored_total(store: Store, plant: str) -> int:
    result = store.query(f"SELECT count(seq) FROM station WHERE plant = {quote_string(plant)}")
    return result.series[0].values[0][1] if result.series else 0


class RejectWatcher:
    """Collects what the collector publishes to the reject topic (decoded), from subscription on."""

    def __init__(self, mqtt_url: str, client_id: str):
        endpoint = mqtt_endpoint(mqtt_url)
        self.rejected: list[dict] = []
        self.client = make_client(client_id, endpoint)
        self.client.on_message = lambda client, userdata, message: self.rejected.append(
            orjson.loads(message.payload))
        self.client.connect(endpoint.host, endpoint.port)
        self.client.subscribe(REJECTED_TOPIC, qos=1)
        self.client.loop_start()
        time.sleep(0.3)  # the SUBACK, before anything is rejected

    def close(self) -> None:
        self.client.loop_stop()
