"""The collector's workers against faults no store error names, on the real Mosquitto and InfluxDB.

An exception other than the store's two errors used to end a writer thread: its batch was never
stored nor acked, and every later ack waited behind it. These tests inject such an exception into the
write path (the servers stay real) and check that the batch is retried, stored and acked, and that
`health()` names a stuck write.
"""

from __future__ import annotations

import httpx
import pytest
from conftest import wait_until
from support import Publisher, stored_seqs, stored_total

from collector.collector import Collector
from collector.config import load_config
from shopfloor.contract import StationKey

pytestmark = pytest.mark.servers


def _collector(stack, store, plant_id: str, **options) -> Collector:
    config = load_config(None, mqtt_url=stack.mosquitto.url, influx_url=stack.influxdb.url,
                         influx_db=store.database, client_id=f"c{plant_id}", group=f"g{plant_id}",
                         session_expiry_s=0, batch_wait_s=0.05, retry_first_s=0.1, retry_max_s=0.2, **options)
    return Collector(config)


def _failing(write, failures: list[int]):
    """store.write that raises an unforeseen error while `failures[0]` > 0 (then the real write)."""
    def write_or_fail(lines):
        if failures[0] > 0:
            failures[0] -= 1
            raise KeyError("injected: not a store error")
        return write(lines)
    return write_or_fail


def test_an_unforeseen_write_error_is_retried_and_later_acks_do_not_stall(stack, store, plant_id):
    collector = _collector(stack, store, plant_id)
    failures = [3]
    collector.store.write = _failing(collector.store.write, failures)
    collector.start()
    try:
        assert collector.wait_subscribed(10)
        publisher = Publisher(stack.mosquitto.url, f"p{plant_id}")
        key = StationKey(plant_id, "l1", "s1")
        publisher.publish(key, range(200))
        publisher.publish(key, range(200, 1200), batch=100)
        publisher.close()
        wait_until(lambda: stored_total(store, plant_id) >= 1200, 30, "every sample stored")
        assert stored_seqs(store, plant_id) == {"s1": list(range(1200))}
        wait_until(lambda: collector.stats.messages_written == 210, 10, "every message acked in order")
        assert collector._acked == collector._handed  # nothing waits behind a dead batch
        assert collector.stats.write_errors == 3 and failures == [0]
        assert all(thread.is_alive() for thread in collector._threads)
        assert collector.health() == []
    finally:
        collector.stop()


def test_health_and_metrics_name_a_write_that_is_stuck(stack, store, plant_id):
    collector = _collector(stack, store, plant_id, http_port=0, stuck_after_s=0.5)
    failures = [10**9]
    collector.store.write = _failing(collector.store.write, failures)
    collector.start()
    web = httpx.Client(base_url=f"http://127.0.0.1:{collector.http.port}", timeout=5)
    try:
        assert collector.wait_subscribed(10)
        assert collector.health() == []
        assert web.get("/healthz").json() == {"ok": True, "problems": []}
        publisher = Publisher(stack.mosquitto.url, f"p{plant_id}")
        publisher.publish(StationKey(plant_id, "l1", "s1"), range(5))
        publisher.close()
        wait_until(lambda: collector.stats.write_errors >= 2, 10, "retried writes")
        problems = wait_until(lambda: collector.health(), 10, "an unhealthy collector")
        assert len(problems) == 1
        assert problems[0].startswith("a batch has waited ")
        assert "KeyError: 'injected: not a store error'" in problems[0]
        answer = web.get("/healthz")
        assert answer.status_code == 503 and answer.json()["problems"][0].startswith("a batch has waited")
        metrics = _metrics(web.get("/metrics").text)
        assert metrics["shopfloor_collector_received_total"] == 5
        assert metrics["shopfloor_collector_unacked"] == 5
        assert metrics["shopfloor_collector_write_errors_total"] >= 2
        assert metrics["shopfloor_collector_healthy"] == 0
        failures[0] = 0  # the fault goes away: the batch is stored and health is back
        wait_until(lambda: stored_total(store, plant_id) == 5, 10, "the held samples")
        wait_until(lambda: collector.health() == [], 10, "a healthy collector")
        metrics = _metrics(web.get("/metrics").text)
        assert metrics["shopfloor_collector_samples_written_total"] == 5
        assert metrics["shopfloor_collector_unacked"] == 0 and metrics["shopfloor_collector_healthy"] == 1
        assert web.get("/healthz").status_code == 200
    finally:
        web.close()
        collector.stop()


def _metrics(text: str) -> dict[str, float]:
    """Prometheus text as {name: value}; every non-comment line must be `name value`."""
    values = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            name, value = line.split(" ")
            values[name] = float(value)
    return values
