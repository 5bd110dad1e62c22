"""Load: 1,000 stations at 1 Hz through the real pipeline, memory and backlog sampled every 10 s.

    python bench/load.py [--minutes 10] [--stations 1000] [--agents 10] [--every 10]

Real processes only: `shopfloor agent run` (simulated sources, one poller per station), the real
Mosquitto and InfluxDB of a fresh stack in a temporary folder, `shopfloor collector run`. Every
`--every` seconds it prints the resident memory (RSS from /proc) of the broker, the collector,
InfluxDB and the agents, and the backlog = samples produced - samples stored (count in InfluxDB), where
produced = samples that reached the broker (a plain QoS 1 subscriber counts them) + samples waiting in
the agents' outboxes (each agent's retained status reports its backlog, at most 60 s old). After the
run the agents stop and their outboxes give the exact number produced (`station_state.next_seq`).
Verdict, as ratios against the first sample after a warm-up minute (the reference measured in the
same run): memory growth per process, and the backlog at the end against its median, plus the absolute
numbers. Bounded: the run stops at `--minutes`, then the agents are stopped and the pipeline gets at
most 60 s to store what was produced.

The helpers here (stack, collector and agent processes, RSS, outbox counts) are shared by chaos.py.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from shopfloor.mqtt import make_client
from shopfloor.settings import mqtt_endpoint
from shopfloor.stack import Stack
from shopfloor.store import Store, quote_string


@dataclass
class Child:
    """A child process of the benchmark (agent or collector) with its log file."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen | None = None
    log_offset: int = 0  # where this start's lines begin in a log file shared with earlier starts

    def start(self) -> Child:
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would."""
        if self.running():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout_s: float = 60) -> None:
        """SIGTERM and wait (SIGKILL after `timeout_s`)."""
        if self.running():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        """What this start of the process has logged."""
        with open(self.log_path, "rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def wait_for_log(self, text: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log():
            if not self.running() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not log {text!r}: {self.log_path.read_text()[-1500:]}")
            time.sleep(0.05)


def rss_mb(pid: int | None) -> float:
    """Resident memory of a process in MB (0 when it is not running)."""
    if not pid:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return 0.0
    return 0.0


def shopfloor(*args: str) -> list[str]:
    return [sys.executable, "-m", "shopfloor", *args]


def collector(stack: Stack, database: str, folder: Path, client_id: str = "bench-collector",
              session_expiry_s: int | None = None) -> Child:
    argv = shopfloor("collector", "run", "--mqtt-url", stack.mosquitto.url,
                     "--influx-url", stack.influxdb.url, "--influx-db", database,
                     "--client-id", client_id, "--group", "bench")
    if session_expiry_s is not None:
        argv += ["--session-expiry", str(session_expiry_s)]
    return Child(client_id, argv, folder / f"{client_id}.log")


def agent_config(folder: Path, agent: str, plant: str, line: str, stations: list[str], interval_s: float,
                 mqtt_url: str, outbox: Path | None = None, extra: str = "") -> Path:
    """An agent.toml with simulated stations; the outbox lives beside it unless given."""
    path = folder / f"{agent}.toml"
    source = '{{ kind = "simulated", cycle_s = 30.0, seed = {} }}'
    body = "".join(f'[[station]]\nid = "{sid}"\nsource = {source.format(n)}\n'
                   for n, sid in enumerate(stations))
    outbox = outbox or folder / f"{agent}.sqlite"
    path.write_text(f'agent = "{agent}"\nplant = "{plant}"\nline = "{line}"\ninterval_s = {interval_s}\n'
                    f'outbox = "{outbox}"\n{extra}\n[mqtt]\nurl = "{mqtt_url}"\nreconnect_max_s = 2.0\n\n'
                    f'{body}')
    return path


def agent(config: Path) -> Child:
    return Child(config.stem, shopfloor("agent", "run", "--config", str(config)),
                 config.with_suffix(".log"))


class Monitor:
    """A plain QoS 1 subscriber of a plant's telemetry and agent status: samples that reached the broker,
    and each agent's last reported outbox backlog."""

    def __init__(self, mqtt_url: str, plant: str):
        endpoint = mqtt_endpoint(mqtt_url)
        self.received = 0
        self.backlogs: dict[str, int] = {}
        self.client = make_client(f"bench-monitor-{plant}", endpoint)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda client, *_: client.subscribe(
            [(f"shopfloor/v1/{plant}/+/+/telemetry", 1), (f"shopfloor/v1/{plant}/+/agent/+/status", 1)])
        self.client.connect(endpoint.host, endpoint.port)
        self.client.loop_start()

    def _on_message(self, client: object, userdata: object, message: object) -> None:
        document = orjson.loads(message.payload)  # type: ignore[attr-defined]
        if message.topic.endswith("/status"):  # type: ignore[attr-defined]
            self.backlogs[message.topic] = document.get("backlog", 0)  # type: ignore[attr-defined]
        else:
            self.received += len(document["samples"]) if "samples" in document else 1

    @property
    def waiting_in_agents(self) -> int:
        return sum(self.backlogs.values())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def outbox_counts(path: Path) -> tuple[int, int]:
    """(samples produced, samples waiting) of a stopped agent's outbox (a running agent locks it)."""
    if not path.exists():
        return 0, 0
    for _ in range(20):
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
                produced = db.execute("SELECT coalesce(sum(next_seq), 0) FROM station_state").fetchone()[0]
                waiting = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
                return produced, waiting
        except sqlite3.OperationalError:
            time.sleep(0.05)
    raise RuntimeError(f"cannot read the outbox {path}")


def outbox_seqs(path: Path) -> dict[str, int]:
    """Each station's next seq in one agent's outbox: the samples it produced are 0 .. next_seq - 1."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        return dict(db.execute("SELECT station, next_seq FROM station_state").fetchall())


def stored_total(store: Store, plant: str) -> int:
    result = store.query(f"SELECT count(seq) FROM station WHERE plant = {quote_string(plant)}")
    return result.series[0].values[0][1] if result.series else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples of memory")
    options = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="shopfloor-load-"))
    stack = Stack(folder / "stack")
    stack.up()
    store = Store(stack.influxdb.url, "load")
    store.create_database()
    plant = "load"
    per_agent = -(-options.stations // options.agents)
    collector_child = collector(stack, store.database, folder).start()
    collector_child.wait_for_log("subscribed to")
    monitor = Monitor(stack.mosquitto.url, plant)
    agents: list[Child] = []
    outboxes: list[Path] = []
    for n in range(options.agents):
        stations = [f"s{n * per_agent + i}" for i in range(per_agent) if n * per_agent + i < options.stations]
        config = agent_config(folder, f"a{n}", plant, f"l{n}", stations, 1.0, stack.mosquitto.url)
        agents.append(agent(config).start())
        outboxes.append(folder / f"a{n}.sqlite")
    print(f"{options.stations} stations on {options.agents} agents at 1 Hz for {options.minutes:g} min; "
          f"folder {folder}", flush=True)
    print(f"{'t_s':>5} {'mosquitto':>9} {'collector':>9} {'influxd':>8} {'agents':>7} {'agent_max':>9} "
          f"{'produced':>9} {'stored':>9} {'backlog':>7} {'outboxes':>8}   (RSS in MB)", flush=True)
    rows = []
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < options.minutes * 60:
            time.sleep(min(options.every, max(0.0, options.minutes * 60 - elapsed)))
            stored = stored_total(store, plant)
            waiting = monitor.waiting_in_agents
            produced = monitor.received + waiting
            agent_rss = [rss_mb(child.pid) for child in agents]
            row = {"t": time.monotonic() - started, "mosquitto": rss_mb(stack.mosquitto.pid),
                   "collector": rss_mb(collector_child.pid), "influxd": rss_mb(stack.influxdb.pid),
                   "agents": sum(agent_rss), "agent_max": max(agent_rss), "produced": produced,
                   "stored": stored, "backlog": produced - stored, "outboxes": waiting}
            rows.append(row)
            print(f"{row['t']:5.0f} {row['mosquitto']:9.1f} {row['collector']:9.1f} {row['influxd']:8.1f} "
                  f"{row['agents']:7.1f} {row['agent_max']:9.1f} {produced:9d} {stored:9d} "
                  f"{row['backlog']:7d} {waiting:8d}", flush=True)
            if not collector_child.running() or not all(child.running() for child in agents):
                raise RuntimeError("a pipeline process died: see the logs in " + str(folder))
    finally:
        for child in agents:
            child.stop()
        produced = sum(outbox_counts(path)[0] for path in outboxes)
        deadline = time.monotonic() + 60
        while stored_total(store, plant) < produced and time.monotonic() < deadline:
            time.sleep(1)
        final_stored = stored_total(store, plant)
        monitor.close()
        collector_child.stop()
        stack.down()
    report(rows, produced, final_stored, options)


def report(rows: list[dict], produced: int, stored: int, options: argparse.Namespace) -> None:
    warm = [row for row in rows if row["t"] >= 60] or rows
    if not warm:
        return
    first, last = warm[0], warm[-1]
    print(f"\nafter {last['t']:.0f} s ({len(rows)} samples of memory), reference = first sample after 60 s:")
    half = len(warm) // 2 or 1
    for name in ("mosquitto", "collector", "influxd", "agents"):
        growth = last[name] / first[name] if first[name] else float("nan")
        early, late = max(row[name] for row in warm[:half]), max(row[name] for row in warm[half:] or warm)
        print(f"  {name:9} RSS {first[name]:7.1f} MB -> {last[name]:7.1f} MB = {growth:.2f}x; peak of the "
              f"second half / first half {late:.1f} / {early:.1f} MB = {late / early:.2f}x")
    backlogs = [row["backlog"] for row in warm]
    print(f"  backlog (produced - stored): median {statistics.median(backlogs):.0f}, max {max(backlogs)}, "
          f"last {backlogs[-1]} = {backlogs[-1] / max(statistics.median(backlogs), 1):.2f}x the median "
          f"(1 Hz x {options.stations} stations = {options.stations} samples/s)")
    rate = (last["stored"] - first["stored"]) / max(last["t"] - first["t"], 1)
    print(f"  stored {rate:.0f} samples/s = {rate / options.stations:.3f}x the produced rate")
    print(f"  after the agents stopped: produced {produced}, stored {stored}, missing {produced - stored}")


if __name__ == "__main__":
    main()
