"""Replay: a telemetry file (or a scenario, live) published over MQTT as the line's agents would.

Each station becomes one virtual agent with its own MQTT connection, its retained status and a will
that says offline, exactly like a real edge agent, so the collector and the boards cannot tell the
difference. Samples go out at `speed` times real time; when the publisher falls behind (a high speed,
a slow broker) or reaches its message-rate bound, the samples that are due pile up per station and
leave as one batch message (up to the contract's 1,000 samples) instead of a flood of single messages.
Every message is QoS 1 and every PUBACK is awaited; each connection holds at most `max_pending`
unacknowledged messages, far below paho's hard limit of 65,535.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import orjson
import paho.mqtt.client as mqtt

from shopfloor import __version__
from shopfloor.contract import (
    MAX_BATCH,
    VERSION,
    Sample,
    StationKey,
    check_identifier,
    encode_batch,
    encode_sample,
    read_records,
    status_topic,
    telemetry_topic,
)
from shopfloor.errors import ShopfloorError
from shopfloor.mqtt import make_client
from shopfloor.settings import MqttEndpoint
from simulators.draws import US
from simulators.engine import LineModel, simulate
from simulators.scenario import Scenario
from simulators.telemetry import STATE_NAMES
from simulators.telemetry import sample as sample_run

LIVE_BLOCK_S = 7 * 24 * 3600  # one continuous simulation per week of a live feed
LIVE_WINDOW_S = 3600  # sampled an hour at a time, so memory stays small

DEFAULT_MAX_PENDING = 1000
DEFAULT_MAX_RATE = 5000.0  # messages a second; a collector takes about 20,000 QoS 1 messages a second
ACK_TIMEOUT_S = 60.0
Tick = tuple[int, list[tuple[StationKey, Sample]]]  # file time (ms) and the samples taken then


class ReplayError(ShopfloorError):
    """The broker cannot be reached or stops acknowledging."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def agent_id(station: str) -> str:
    return check_identifier("agent", f"sim-{station}"[:64])


class VirtualAgent:
    """One station's agent: a paho client, its retained status, and its window of pending messages."""

    def __init__(self, key: StationKey, endpoint: MqttEndpoint, max_pending: int):
        self.key = key
        self.topic = telemetry_topic(key)
        self.status_topic = status_topic(key.plant, key.line, agent_id(key.station))
        self.max_pending = max_pending
        self.pending: deque[mqtt.MQTTMessageInfo] = deque()
        self.waiting: list[Sample] = []
        self.client = make_client(f"sim-{key.plant}-{key.line}-{key.station}-{os.getpid()}"[:128], endpoint)
        self.client.max_inflight_messages_set(min(max_pending, 100))
        self.client.will_set(self.status_topic, self._status(False), qos=1, retain=True)
        try:
            self.client.connect(endpoint.host, endpoint.port, keepalive=30)
        except OSError as error:
            reason = error.strerror or error
            raise ReplayError(f"cannot reach the MQTT broker at {endpoint.display}: {reason}; "
                              "start one (`shopfloor stack up`) or fix --mqtt-url") from None
        self.client.loop_start()
        self._send(self.status_topic, self._status(True), retain=True)

    def _status(self, online: bool) -> bytes:
        return orjson.dumps({"v": VERSION, "online": online, "ts": now_ms(), "version": __version__,
                             "stations": [self.key.station]})

    def _send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        while len(self.pending) >= self.max_pending:
            self._wait(self.pending.popleft())
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            raise ReplayError(f"{self.key.station}: paho refused a message: {mqtt.error_string(info.rc)}")
        self.pending.append(info)

    @staticmethod
    def _wait(info: mqtt.MQTTMessageInfo) -> None:
        try:
            info.wait_for_publish(ACK_TIMEOUT_S)
        except (RuntimeError, ValueError) as error:
            raise ReplayError(f"a message was not published: {error}") from None
        if not info.is_published():
            raise ReplayError(f"the broker acknowledged nothing for {ACK_TIMEOUT_S:.0f} s: is it running?")

    def flush(self) -> int:
        """Publish what is waiting: one sample alone, several as batches. Returns messages sent."""
        messages = 0
        for first in range(0, len(self.waiting), MAX_BATCH):
            chunk = self.waiting[first:first + MAX_BATCH]
            self._send(self.topic, encode_sample(chunk[0]) if len(chunk) == 1 else encode_batch(chunk))
            messages += 1
        self.waiting.clear()
        return messages

    def acked(self) -> int:
        while self.pending and self.pending[0].is_published():
            self.pending.popleft()
        return len(self.pending)

    def drain(self) -> None:
        while self.pending:
            self._wait(self.pending.popleft())

    def close(self) -> None:
        """Say offline (a clean disconnect sends no will), wait for it, disconnect."""
        try:
            self._send(self.status_topic, self._status(False), retain=True)
            self.drain()
        finally:
            self.client.disconnect()
            self.client.loop_stop()


@dataclass
class ReplayStats:
    samples: int = 0
    messages: int = 0
    batches: int = 0
    seconds: float = 0.0
    stations: set[str] = field(default_factory=set)


def file_ticks(path: str) -> tuple[Iterator[Tick], int]:
    """A telemetry file as ticks in time order, and its number of samples.

    The file is read once up front, so a bad line stops the replay before anything is published. A
    time-ordered file (what `sim run` writes) then streams; any other order is sorted in memory.
    """
    total, ordered, latest = 0, True, -1
    for _, sample in read_records(path):
        total += 1
        ordered = ordered and sample["ts"] >= latest
        latest = max(latest, sample["ts"])
    if not total:
        raise ShopfloorError(f"{path} holds no samples")
    records = read_records(path) if ordered else iter(sorted(read_records(path), key=lambda r: r[1]["ts"]))
    return _by_time(records), total


def _by_time(records: Iterator[tuple[StationKey, Sample]]) -> Iterator[Tick]:
    ts, group = None, []
    for key, sample in records:
        if sample["ts"] != ts:
            if group:
                yield ts, group
            ts, group = sample["ts"], []
        group.append((key, sample))
    if group:
        yield ts, group


def publish_ticks(ticks: Iterable[Tick], endpoint: MqttEndpoint, *, speed: float, keep_time: bool = False,
                  max_pending: int = DEFAULT_MAX_PENDING, max_rate: float = DEFAULT_MAX_RATE,
                  on_progress: Callable[[int, int], None] | None = None,
                  should_stop: Callable[[], bool] = lambda: False,
                  catch_up_to_ms: int | None = None) -> ReplayStats:
    """Publish ticks at `speed` times real time; returns when all are acknowledged (or stop is asked).

    At most `max_rate` messages a second (with a one-second burst): beyond it samples wait and leave
    as batches, so the message rate stays bounded at any speed while no sample is dropped. Ticks
    before `catch_up_to_ms` (a backfill of the past) are due at once, so they leave as full batches;
    pacing starts at the first tick from then on.
    """
    if speed <= 0:
        raise ShopfloorError("--speed must be above 0 (1 = real time, 60 = an hour a minute)")
    if max_rate <= 0:
        raise ShopfloorError("--max-rate must be above 0 messages a second")
    if not 1 <= max_pending < 65_535:
        raise ShopfloorError("max pending messages must be 1 to 65,534 (paho's limit is 65,535)")
    agents: dict[StationKey, VirtualAgent] = {}
    stats = ReplayStats()
    began = started = time.monotonic()
    first_ts: int | None = None
    shift = 0
    try:
        for ts, samples in ticks:
            catching_up = catch_up_to_ms is not None and ts < catch_up_to_ms
            if first_ts is None and not catching_up:
                first_ts, began = ts, time.monotonic()
                shift = 0 if keep_time else now_ms() - ts
            due = began if first_ts is None else began + (ts - first_ts) / 1000.0 / speed
            if due > time.monotonic():
                if stats.messages < max_rate * (time.monotonic() - began + 1):
                    stats.messages += _flush(agents, stats)
                while not should_stop() and (wait := due - time.monotonic()) > 0:
                    time.sleep(min(wait, 0.2))
            if should_stop():
                break
            for key, sample in samples:
                agent = agents.get(key)
                if agent is None:
                    agent = agents[key] = VirtualAgent(key, endpoint, max_pending)
                    stats.stations.add(key.station)
                agent.waiting.append({**sample, "ts": sample["ts"] + shift})
                stats.samples += 1
                if len(agent.waiting) >= MAX_BATCH:
                    stats.messages += agent.flush()
                    stats.batches += 1
            if on_progress:
                on_progress(stats.samples, sum(a.acked() for a in agents.values()))
        stats.messages += _flush(agents, stats)
        for agent in agents.values():
            agent.drain()
    finally:
        for agent in agents.values():
            agent.close()
    stats.seconds = time.monotonic() - started
    return stats


def _flush(agents: dict[StationKey, VirtualAgent], stats: ReplayStats) -> int:
    sent = 0
    for agent in agents.values():
        if len(agent.waiting) > 1:
            stats.batches += 1
        sent += agent.flush()
    return sent


def live_ticks(scenario: Scenario, seed: int, hours: float | None, start_ms: int) -> Iterator[Tick]:
    """A scenario as an endless demo feed: its pattern of changes repeats every `scenario.hours` (a shift
    that starts over), one continuous simulation a week long at a time, sampled an hour at a time.

    Stops after `hours` (None: never). A new week is a new simulation with the next seed: counters and
    sequence numbers carry on, queues and states restart from its warm-up (one seam a week).
    """
    keys = [StationKey(scenario.plant_id, scenario.line_id, s) for s in scenario.station_ids]
    total = None if hours is None else int(round(hours * 3600))
    carried = [0] * len(keys)
    produced = 0
    block = 0
    while total is None or produced < total:
        block_samples = LIVE_BLOCK_S if total is None else min(LIVE_BLOCK_S, total - produced)
        model = LineModel.of(scenario, periods=scenario.repeated_periods(block_samples / 3600))
        run = simulate(model, model.warmup_us + block_samples * US, seed=seed + block, record=True)
        base: list[int] | None = None
        for first in range(0, block_samples, LIVE_WINDOW_S):
            window = sample_run(run, model.warmup_us + first * US, min(LIVE_WINDOW_S, block_samples - first),
                                start_ms + produced * 1000)
            count, queue, state = (a.T.tolist() for a in (window.count, window.queue, window.state))
            if base is None:  # the first week counts from its simulation's start, like `sim run`
                base = [carried[j] - count[0][j] for j in range(len(keys))] if block else [0] * len(keys)
            for i, ts in enumerate(window.ts_ms.tolist()):
                yield ts, [(key, {"ts": ts, "seq": produced, "count": base[j] + count[i][j],
                                  "queue": queue[i][j], "state": STATE_NAMES[state[i][j]]})
                           for j, key in enumerate(keys)]
                produced += 1
        carried = [base[j] + count[-1][j] for j in range(len(keys))]
        block += 1
