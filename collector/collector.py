"""MQTT telemetry in, InfluxDB points out; a message is acknowledged only once its points are stored.

Why it loses nothing: the session is persistent (clean start off, session expiry set), so the
broker keeps every unacknowledged QoS 1 message across a collector crash or restart; the PUBACK of a
message is sent only after InfluxDB answered 2xx for the batch holding it; while InfluxDB is away
the batch is retried with backoff and nothing is acked, so the broker holds the backlog (its queue
is unbounded in our config). Why it stores nothing twice: a redelivered message maps to the same
points (measurement, tags, timestamp), which InfluxDB overwrites in place.

Threads: paho's network thread only appends deliveries to an inbox; a gather thread decodes them
into numbered batches; `writers` threads write batches side by side (InfluxDB ingests more from two
writers than from one) and a batch is acked only when it and every batch before it are written, so
acks leave in the order the messages arrived, as MQTT requires.

Why the edge may delete: after InfluxDB accepted a batch, the collector publishes per station a
receipt (QoS 1, `shopfloor/v1/PLANT/LINE/STATION/stored`, docs/DESIGN.md §4) naming the seq ranges it
stored, and those InfluxDB refused for good (rejected with a reason). The agent deletes a sample
only on its receipt, so what a broker held only in memory when it died is still in an outbox.

Why a worker never dies: a writer that died on an unforeseen exception would leave its batch
unacked and, since acks leave in order, every later ack waiting behind it. So any exception while
writing is logged, counted (`write_errors`) and the batch retried with the same backoff as an
InfluxDB outage; a payload that crashes the decoder is rejected with the reason. `health()` reports a
worker thread that died anyway or a batch that has waited for its write longer than `stuck_after_s`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from itertools import chain

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from collector.config import CollectorConfig
from collector.http import HealthServer
from collector.ingest import Ingest
from shopfloor.contract import (
    COLLECTOR_MEASUREMENT,
    REJECTED_TOPIC,
    ContractError,
    StationKey,
    encode_receipt,
    line_protocol,
    parse_telemetry_topic,
    receipt_topic,
    rejection,
    seq_ranges,
    telemetry_lines,
)
from shopfloor.mqtt import connect_properties, make_client
from shopfloor.settings import mqtt_endpoint
from shopfloor.store import Store, StoreRejected, StoreUnavailable

log = logging.getLogger("shopfloor.collector")


@dataclass(slots=True)
class Delivery:
    """One received MQTT message, with the connection it came on (acks are valid only on that one)."""

    mid: int
    connection: int
    topic: str
    payload: bytes
    lines: list[str] | None = None
    reject_reason: str | None = None
    key: StationKey | None = None
    seqs: list[int] | None = None  # the samples' seqs, for the receipt
    qos: int = 1  # a mapped source may publish QoS 0 (Sparkplug data does): nothing to acknowledge


@dataclass(slots=True)
class CollectorStats:
    """The collector's own counters; written to InfluxDB and logged every stats interval."""

    received: int = 0
    samples_written: int = 0
    messages_written: int = 0
    rejected: int = 0
    write_retries: int = 0
    batches: int = 0
    last_batch_ms: float = 0.0
    max_batch_ms: float = 0.0
    write_errors: int = 0  # unforeseen exceptions while writing or acking, each retried
    acked: int = 0  # messages done with (acked, or dropped with the connection they came on)
    receipts: int = 0  # receipts published (one per station per written batch)


class _Abandoned(Exception):
    """Shutting down while InfluxDB is away: leave the batch unacked for the broker to redeliver."""


class Collector:
    def __init__(self, config: CollectorConfig):
        self.config = config
        self.stats = CollectorStats()
        self.store = Store(config.influx_url, config.influx_db)
        self._endpoint = mqtt_endpoint(config.mqtt_url)
        self._inbox: deque[Delivery] = deque()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._connection = 0
        self._subscribed = threading.Event()
        self._batches: queue.Queue[tuple[int, list[Delivery]] | None] = queue.Queue(config.writers + 1)
        self._handed = 0  # batches numbered in arrival order...
        self._acked = 0  # ...and acked in that order, whichever writer finishes first
        self._written: dict[int, list[Delivery]] = {}
        self._writing: dict[int, float] = {}  # batch number -> monotonic time its write began
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._gather, name="collector-gather", daemon=True)] + [
            threading.Thread(target=self._write_batches, name=f"collector-write-{n}", daemon=True)
            for n in range(config.writers)]
        self._client = make_client(config.client_id, self._endpoint, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self.http: HealthServer | None = None
        if config.http_port is not None:
            self.http = HealthServer(self, config.http_host, config.http_port)
        # --- the plant's existing MQTT network (issue 15): extra topics, decoded by collector/ingest.py
        self._ingest = (Ingest.from_file(config.plant, config.host_id, self._publish, self.store)
                        if config.plant else None)
        if self._ingest and (will := self._ingest.will()):
            self._client.will_set(will[0], will[1], qos=1, retain=True)

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (retrying in the background until the broker answers) and start the worker."""
        self._client.connect_async(
            self._endpoint.host, self._endpoint.port, keepalive=30, clean_start=False,
            properties=connect_properties(self.config.session_expiry_s, self.config.receive_maximum),
        )
        self._client.loop_start()
        for thread in self._threads:
            thread.start()
        if self.http is not None:
            self.http.start()
            log.info("serving /healthz and /metrics on http://%s:%d", self.config.http_host, self.http.port)

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Wait until the broker confirmed the subscription (telemetry is queued for us from then on)."""
        return self._subscribed.wait(timeout_s)

    def stop(self) -> None:
        """Flush what is in hand (if InfluxDB answers), then disconnect; the session stays on the broker."""
        self._stopping.set()
        self._wakeup.set()
        for thread in self._threads:
            thread.join(timeout=self.config.retry_max_s + 10)
        if self._ingest and (info := self._ingest.announce(False)):
            info.wait_for_publish(2)
        self._client.disconnect()
        self._client.loop_stop()
        if self.http is not None:
            self.http.stop()
        self.store.close()
        self._log_stats()

    # --- paho callbacks (network thread: keep them short) ---------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: mqtt.ReasonCode, properties: object) -> None:
        if reason_code.is_failure:
            log.error("broker %s refused the connection: %s", self._endpoint.display, reason_code)
            return
        self._connection += 1
        mapped = self._ingest.subscriptions if self._ingest else []
        client.subscribe([(topic, SubscribeOptions(qos=1)) for topic in [self.config.subscription, *mapped]])
        log.info("connected to %s (session %s)", self._endpoint.display,
                 "resumed" if flags.session_present else "new")

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      reason_codes: list[mqtt.ReasonCode], properties: object) -> None:
        if any(code.is_failure for code in reason_codes):
            log.error("the broker refused the subscription %s: %s; check this collector's ACL",
                      self.config.subscription, ", ".join(str(code) for code in reason_codes))
            return
        if self._ingest:
            self._ingest.announce(True)  # Sparkplug: the host's STATE birth follows its subscription
        self._subscribed.set()  # from here the broker queues telemetry for this session
        log.info("subscribed to %s", self.config.subscription)

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        log.warning("cannot reach the broker at %s; retrying", self._endpoint.display)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object,
                       reason_code: mqtt.ReasonCode, properties: object) -> None:
        self._subscribed.clear()
        self._connection += 1  # acks for messages of the lost connection would hit reused ids
        if not self._stopping.is_set():
            log.warning("lost the broker (%s); reconnecting, unacked messages will come again", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.stats.received += 1
        self._inbox.append(Delivery(message.mid, self._connection, message.topic, message.payload,
                                    qos=message.qos))
        self._wakeup.set()

    # --- worker threads --------------------------------------------------------------------------

    def _gather(self) -> None:
        """Decode deliveries into batches; a batch is due at batch_samples or after batch_wait_s."""
        batch: list[Delivery] = []
        samples = 0
        opened = 0.0
        next_stats = time.monotonic() + self.config.stats_interval_s
        while True:
            if not self._inbox:
                if batch:  # a batch is open: gather for a few ms rather than wake for every message
                    remaining = self.config.batch_wait_s - (time.monotonic() - opened)
                    self._stopping.wait(min(max(remaining, 0.0), 0.01))
                else:
                    self._wakeup.wait(1.0)
                    self._wakeup.clear()
            while self._inbox and samples < self.config.batch_samples:
                delivery = self._inbox.popleft()
                samples += self._decode(delivery)
                if not batch:
                    opened = time.monotonic()
                batch.append(delivery)
            stopping = self._stopping.is_set()
            aged = time.monotonic() - opened >= self.config.batch_wait_s
            if batch and (samples >= self.config.batch_samples or aged or stopping):
                if not self._hand_over(batch):
                    return
                batch, samples = [], 0
            if stopping and not self._inbox:
                for _ in range(self.config.writers):
                    self._hand_over(None)
                return
            if time.monotonic() >= next_stats:
                self._log_stats(write=True)
                next_stats = time.monotonic() + self.config.stats_interval_s

    def _hand_over(self, batch: list[Delivery] | None) -> bool:
        """Queue a numbered batch for the writers, waiting while the queue is full; False once they quit."""
        item = None if batch is None else (self._handed, batch)
        while any(writer.is_alive() for writer in self._threads[1:]):
            try:
                self._batches.put(item, timeout=0.5)
                self._handed += batch is not None
                return True
            except queue.Full:
                continue
        return False

    def _write_batches(self) -> None:
        """Write batches as they come; `_acknowledge` then acks them in the order they were handed over."""
        while (item := self._batches.get()) is not None:
            number, batch = item
            with self._lock:
                self._writing[number] = time.monotonic()
            try:
                self._flush_until_done(batch)
            except _Abandoned:
                log.warning("stopping with messages unwritten; the broker will deliver them again")
                return
            self._send_receipts(batch)
            self._acknowledge(number, batch)

    def _send_receipts(self, batch: list[Delivery]) -> None:
        """One receipt per station of the batch: the seqs now in InfluxDB, and those refused for good."""
        by_station: dict[StationKey, tuple[list[int], list[int]]] = {}
        for delivery in batch:
            if delivery.key is None or not delivery.seqs:
                continue  # a message that broke the contract names no samples of an agent
            stored, rejected = by_station.setdefault(delivery.key, ([], []))
            (stored if delivery.lines else rejected).extend(delivery.seqs)
        for key, (stored, rejected) in by_station.items():
            payload = encode_receipt(seq_ranges(stored), seq_ranges(rejected))
            try:
                self._client.publish(receipt_topic(key), payload, qos=1)
            except Exception as error:  # no receipt: the agent resends after its timeout, stored once
                log.error("could not publish the receipt for %s: %s", key.station, error)
                continue
            with self._lock:
                self.stats.receipts += 1

    def _flush_until_done(self, batch: list[Delivery]) -> None:
        """`_flush`, retried with backoff after any unforeseen exception (a dead writer stalls all acks)."""
        delay = self.config.retry_first_s
        while True:
            try:
                self._flush(batch)
                return
            except _Abandoned:
                raise
            except Exception as error:
                self._count_error(error, "writing a batch", delay)
                if self._stopping.wait(delay):
                    raise _Abandoned from None
                delay = min(delay * 2, self.config.retry_max_s)

    def _count_error(self, error: Exception, doing: str, delay: float) -> None:
        text = f"{error.__class__.__name__}: {error}"
        with self._lock:
            self.stats.write_errors += 1
            self.last_error = text
        log.error("unexpected error %s (%s); retrying in %.1fs", doing, text, delay,
                  exc_info=self.stats.write_errors == 1)

    @property
    def mapping_warnings(self) -> int:
        """Distinct warnings of the mapped sources (Sparkplug, JSON) about samples stored anyway."""
        return self._ingest.warnings if self._ingest else 0

    @property
    def unacked(self) -> int:
        """Messages received and not yet acknowledged (in the inbox, a batch, or a write)."""
        return self.stats.received - self.stats.acked

    def health(self, stuck_after_s: float | None = None) -> list[str]:
        """What keeps this collector from storing and acking, one line each; empty when healthy."""
        problems = [f"thread {thread.name} is not running" for thread in self._threads
                    if not thread.is_alive() and not self._stopping.is_set()]
        limit = self.config.stuck_after_s if stuck_after_s is None else stuck_after_s
        with self._lock:
            started = min(self._writing.values(), default=None)
            last_error = self.last_error
        if started is not None and time.monotonic() - started > limit:
            problems.append(f"a batch has waited {time.monotonic() - started:.0f} s for its write "
                            f"(last error: {last_error or 'InfluxDB unavailable'})")
        if not self._subscribed.is_set():
            problems.append(f"not subscribed at the broker {self._endpoint.display}")
        return problems

    def _acknowledge(self, number: int, batch: list[Delivery]) -> None:
        """Ack every written batch whose predecessors are all written: MQTT wants acks in arrival order."""
        with self._lock:
            self._writing.pop(number, None)
            self._written[number] = batch
            while self._acked in self._written:
                for delivery in self._written.pop(self._acked):
                    if delivery.connection == self._connection:
                        try:
                            self._client.ack(delivery.mid, delivery.qos)
                        except Exception as error:  # unacked: the broker redelivers, stored once
                            self.stats.write_errors += 1
                            self.last_error = f"ack: {error.__class__.__name__}: {error}"
                            log.error("could not ack message %d: %s", delivery.mid, self.last_error)
                    self.stats.acked += 1
                self._acked += 1
            self.stats.samples_written += sum(len(d.lines) for d in batch if d.lines)
            self.stats.messages_written += sum(1 for d in batch if d.lines is not None)

    def _decode(self, delivery: Delivery) -> int:
        """Turn a delivery into its lines of line protocol, or a reject reason. Returns the sample count."""
        if self._ingest and (mapped := self._ingest.decode(delivery.topic, delivery.payload)) is not None:
            delivery.lines, delivery.reject_reason = mapped.lines, mapped.reason  # both: partly refused
            return len(mapped.lines)
        try:
            key = parse_telemetry_topic(delivery.topic)
            lines, seqs = telemetry_lines(key, delivery.payload)
            delivery.key, delivery.seqs, delivery.lines = key, seqs, lines
            return len(lines)
        except ContractError as error:
            delivery.reject_reason = str(error)
            return 0
        except Exception as error:  # a payload no check foresaw must not stop the gather thread
            delivery.lines = None
            delivery.reject_reason = f"could not decode ({error.__class__.__name__}: {error})"
            log.error("decoding a message on %s failed: %s", delivery.topic, delivery.reject_reason)
            return 0

    def _flush(self, batch: list[Delivery]) -> None:
        for delivery in batch:
            if delivery.reject_reason is not None:
                self._reject(delivery)
        lines = list(chain.from_iterable(d.lines for d in batch if d.lines))
        try:
            self._write(lines)
        except StoreRejected as error:
            log.warning("InfluxDB refused a batch (%s); writing its messages one by one", error)
            for delivery in batch:
                if delivery.lines:
                    try:
                        self._write(delivery.lines)
                    except StoreRejected as refused:
                        delivery.reject_reason, delivery.lines = str(refused), None
                        self._reject(delivery)

    def _write(self, lines: list[str]) -> None:
        """Write until InfluxDB accepts, backing off while it is away; StoreRejected passes through."""
        delay = self.config.retry_first_s
        while True:
            started = time.perf_counter()
            try:
                self.store.write(lines)
            except StoreUnavailable as error:
                with self._lock:
                    self.stats.write_retries += 1
                log.warning("%s; retrying in %.1fs with %d samples held", error, delay, len(lines))
                if self._stopping.wait(delay):
                    raise _Abandoned from None
                delay = min(delay * 2, self.config.retry_max_s)
                continue
            elapsed_ms = (time.perf_counter() - started) * 1000
            with self._lock:
                self.stats.batches += 1
                self.stats.last_batch_ms = elapsed_ms
                self.stats.max_batch_ms = max(self.stats.max_batch_ms, elapsed_ms)
            return

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> mqtt.MQTTMessageInfo:
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    def _reject(self, delivery: Delivery) -> None:
        self.stats.rejected += 1
        log.info("rejected a message on %s: %s", delivery.topic, delivery.reject_reason)
        self._client.publish(REJECTED_TOPIC, rejection(delivery.topic, delivery.reject_reason or "",
                                                       delivery.payload), qos=1)

    def _log_stats(self, write: bool = False) -> None:
        figures = asdict(self.stats)
        log.info("stats %s", " ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in figures.items()))
        if write:
            point = line_protocol(COLLECTOR_MEASUREMENT, {"collector": self.config.client_id}, figures,
                                  int(time.time() * 1000))
            try:
                self.store.write([point])
            except (StoreUnavailable, StoreRejected) as error:
                log.debug("could not store the collector's stats: %s", error)
