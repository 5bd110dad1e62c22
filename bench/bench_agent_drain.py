"""How fast the edge agent drains a one-week backlog after a reconnect, against raw paho QoS 1.

A week of 1 Hz samples for each station is written into an agent's outbox (as a week cut off from the
broker would leave it); then `shopfloor agent run` starts against the real Mosquitto and a paho
subscriber counts the samples that arrive. References measured in the same run on the same broker:
a raw paho QoS 1 publisher sending one sample per message, and the same publisher sending the same
1,000-sample batches the agent sends (what the agent costs on top: SQLite reads, deletes, bookkeeping).

    python bench/bench_agent_drain.py [--stations 10] [--days 7] [--reference-messages 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from edge_agent.outbox import Outbox, StationState
from shopfloor.contract import StationKey, decode_telemetry, encode_batch, encode_sample, telemetry_topic
from shopfloor.mqtt import make_client
from shopfloor.settings import mqtt_endpoint
from shopfloor.stack import Server, free_port

WINDOW = 100
WEEK_START_MS = 1_790_000_000_000


class Counter:
    """A paho subscriber that counts telemetry samples of one plant."""

    def __init__(self, url: str, plant: str):
        endpoint = mqtt_endpoint(url)
        self.samples = 0
        self.first: float | None = None
        self.last = 0.0
        self._ready = threading.Event()
        self.client = make_client(f"count-{plant}", endpoint)
        self.client.on_connect = lambda c, *_: c.subscribe(f"shopfloor/v1/{plant}/+/+/telemetry", qos=1)
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect(endpoint.host, endpoint.port)
        self.client.loop_start()
        self._ready.wait(10)

    def _on_message(self, client, userdata, message) -> None:
        now = time.perf_counter()
        self.first = self.first or now
        self.last = now
        self.samples += len(decode_telemetry(message.payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def raw_paho_rate(url: str, plant: str, messages: int, batch: int) -> float:
    """Samples/s of a plain paho QoS 1 publisher with the agent's window, until the last PUBACK."""
    endpoint = mqtt_endpoint(url)
    client = make_client(f"raw-{plant}-{batch}", endpoint)
    client.max_inflight_messages_set(WINDOW)
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    topic = telemetry_topic(StationKey(plant, "l1", "raw"))
    samples = [{"ts": WEEK_START_MS + n * 1000, "seq": n, "count": n, "queue": 1, "state": "working"}
               for n in range(batch)]
    payload = encode_sample(samples[0]) if batch == 1 else encode_batch(samples)
    started = time.perf_counter()
    infos = []
    for _ in range(messages):
        infos.append(client.publish(topic, payload, qos=1))
        if len(infos) >= 5 * WINDOW:  # paho refuses more than 65,535 pending: bound it like the agent
            for info in infos:
                info.wait_for_publish(60)
            infos.clear()
    for info in infos:
        info.wait_for_publish(60)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return messages * batch / elapsed


def fill_outbox(path: Path, stations: int, days: float) -> int:
    """A week cut off from the broker: every station's 1 Hz samples, interleaved as the agent writes them."""
    outbox = Outbox(path)
    seconds = int(days * 86_400)
    chunk = 20_000 // stations
    for start in range(0, seconds, chunk):
        rows = [(f"s{st}", {"ts": WEEK_START_MS + second * 1000, "seq": second, "count": second // 30,
                            "queue": second % 7, "scrap": second // 3000, "state": "working"})
                for second in range(start, min(seconds, start + chunk)) for st in range(stations)]
        outbox.append(rows, {})
    last_ms = WEEK_START_MS + seconds * 1000
    outbox.append([], {f"s{st}": StationState(seconds, last_ms) for st in range(stations)})
    backlog = outbox.backlog
    outbox.close()
    return backlog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=10)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--reference-messages", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-agent-drain-") as folder:
        work = Path(folder)
        broker = Server("mosquitto", work / "mosquitto", free_port())
        broker.start()
        try:
            started = time.perf_counter()
            backlog = fill_outbox(work / "outbox.sqlite", args.stations, args.days)
            print(f"backlog: {backlog:,} samples ({args.stations} stations x {args.days:g} days at 1 Hz), "
                  f"written in {time.perf_counter() - started:.1f} s, outbox "
                  f"{(work / 'outbox.sqlite').stat().st_size / 1e6:.0f} MB")

            single = raw_paho_rate(broker.url, "ref", args.reference_messages, 1)
            batched = raw_paho_rate(broker.url, "ref", max(50, args.reference_messages // 200), 1000)

            stations = "\n".join(f'[[station]]\nid = "s{st}"\nsource = {{ kind = "simulated" }}\n'
                                 for st in range(args.stations))
            config = work / "agent.toml"
            config.write_text(f'agent = "bench"\nplant = "bench"\nline = "l1"\ninterval_s = 1.0\n'
                              f'outbox = "outbox.sqlite"\n[mqtt]\nurl = "{broker.url}"\nwindow = {WINDOW}\n'
                              f"\n{stations}")
            counter = Counter(broker.url, "bench")
            argv = [sys.executable, "-m", "shopfloor", "agent", "run", "--config", str(config)]
            agent = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 3600
            while counter.samples < backlog and time.monotonic() < deadline and agent.poll() is None:
                time.sleep(0.2)
            agent.terminate()
            agent.wait(30)
            counter.close()
            if counter.samples < backlog or counter.first is None:
                raise SystemExit(f"only {counter.samples:,} of {backlog:,} samples arrived")
            drain_s = counter.last - counter.first
            rate = backlog / drain_s
        finally:
            broker.stop()

    print(f"raw paho QoS 1, 1 sample/message:        {single:>12,.0f} samples/s")
    print(f"raw paho QoS 1, 1,000 samples/message:   {batched:>12,.0f} samples/s")
    print(f"agent drain from its outbox:             {rate:>12,.0f} samples/s "
          f"({backlog:,} in {drain_s:.1f} s)")
    print(f"ratio agent / raw paho single-sample:    {rate / single:>12.1f}x")
    print(f"ratio agent / raw paho same batches:     {rate / batched:>12.2f}x")


if __name__ == "__main__":
    main()
