"""The edge agent's footprint on a line PC: RSS and CPU at 1 Hz with 10 stations (target < 50 MB, < 2%).

`python -m edge_agent run` (what the systemd unit starts) with 10 simulated stations at 1 s runs
against the real Mosquitto for the measured time, with a real collector and InfluxDB sending it
receipts (deletion on receipt, the default since issue 13; `--no-collector`: broker only, the agents
then deleting on PUBACK), and the same agent through the full `shopfloor agent
run` CLI (which also loads analysis and numpy). Beside them, in the same run, the reference: a bare
paho QoS 1 publisher process sending the same 10 samples a second with no outbox, no pollers and no
CLI (the least any agent must do). All are read from /proc (RSS now and peak, user+system CPU over the
window after a warm-up).

    python bench/bench_agent_footprint.py [--seconds 60] [--stations 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shopfloor.stack import Stack

REFERENCE = """
import sys, time
from shopfloor.contract import StationKey, encode_sample, telemetry_topic
from shopfloor.mqtt import make_client
from shopfloor.settings import mqtt_endpoint
endpoint = mqtt_endpoint(sys.argv[1])
client = make_client("reference", endpoint)
client.connect(endpoint.host, endpoint.port)
client.loop_start()
topics = [telemetry_topic(StationKey("ref", "l1", f"s{n}")) for n in range(int(sys.argv[2]))]
seq, tick = 0, time.monotonic()
while True:
    for topic in topics:
        client.publish(topic, encode_sample({"ts": time.time_ns() // 1_000_000, "seq": seq, "count": seq,
                                             "queue": 1, "state": "working"}), qos=1)
    seq += 1
    tick += 1.0
    time.sleep(max(0.0, tick - time.monotonic()))
"""

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS now, peak RSS) in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--stations", type=int, default=10)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--no-collector", action="store_true", help="broker only; agents delete on PUBACK")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-agent-footprint-") as folder:
        work = Path(folder)
        stack = Stack(work / "stack")
        stack.up()
        broker = stack.mosquitto
        delete_on = "puback" if args.no_collector else "receipt"
        collector = None if args.no_collector else subprocess.Popen(
            [sys.executable, "-m", "shopfloor", "collector", "run", "--mqtt-url", broker.url, "--influx-url",
             stack.influxdb.url, "--client-id", "bench-collector", "--session-expiry", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stations = "\n".join(f'[[station]]\nid = "s{n}"\nsource = {{ kind = "simulated", seed = {n} }}\n'
                             for n in range(args.stations))
        config = work / "agent.toml"
        config.write_text(f'agent = "bench"\nplant = "bench"\nline = "l1"\ninterval_s = 1.0\n'
                          f'outbox = "outbox.sqlite"\ndelete_on = "{delete_on}"\n'
                          f'[mqtt]\nurl = "{broker.url}"\n\n{stations}')
        other = work / "via-shopfloor.toml"  # the same agent started through the full `shopfloor` CLI
        other.write_text(config.read_text().replace('agent = "bench"', 'agent = "bench2"')
                         .replace("outbox.sqlite", "outbox2.sqlite"))
        processes = {
            "agent": subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config", str(config)]),
            "shopfloor agent": subprocess.Popen([sys.executable, "-m", "shopfloor", "agent", "run",
                                                 "--config", str(other)]),
            "reference": subprocess.Popen([sys.executable, "-c", REFERENCE, broker.url, str(args.stations)]),
        }
        try:
            time.sleep(args.warmup)
            start = {name: cpu_s(p.pid) for name, p in processes.items()}
            began = time.monotonic()
            time.sleep(args.seconds)
            wall = time.monotonic() - began
            cpu = {name: (cpu_s(p.pid) - start[name]) / wall * 100 for name, p in processes.items()}
            memory = {name: memory_mb(p.pid) for name, p in processes.items()}
        finally:
            for process in [*processes.values(), *([collector] if collector else [])]:
                process.terminate()
                process.wait(30)
            backlogs = {name: _backlog(work / file) for name, file in
                        (("agent", "outbox.sqlite"), ("shopfloor agent", "outbox2.sqlite"))}
            stack.down()
        print(f"{args.stations} stations at 1 Hz, measured over {wall:.0f} s "
              f"after {args.warmup:.0f} s warm-up")
        for name in processes:
            rss, peak = memory[name]
            print(f"{name:16} RSS {rss:6.1f} MB (peak {peak:6.1f} MB)   CPU {cpu[name]:5.2f} %")
        print(f"ratio agent / bare paho publisher: RSS {memory['agent'][0] / memory['reference'][0]:.2f}x, "
              f"CPU {cpu['agent'] / max(cpu['reference'], 0.01):.2f}x")
        print(f"deleting on {delete_on}; samples left in the outboxes at the end: {backlogs}")
        print(f"targets: RSS < 50 MB: {'met' if memory['agent'][1] < 50 else 'MISSED'}; "
              f"CPU < 2 %: {'met' if cpu['agent'] < 2 else 'MISSED'}")


def _backlog(path: Path) -> int:
    from edge_agent.outbox import Outbox

    outbox = Outbox(path)
    try:
        return outbox.backlog
    finally:
        outbox.close()


if __name__ == "__main__":
    main()
