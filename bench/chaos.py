"""Chaos: agents publish through every fault we could stage; then every sample is counted, one by one.

    python bench/chaos.py [--outage 60] [--offline-samples 3600] [--delete-on receipt|puback]
    python bench/chaos.py --run bridge [--cut 60]      # a bridged plant broker, the link cut
    python bench/chaos.py --run shared                 # three shared collectors, one SIGKILLed

Real processes only (a fresh stack in a temporary folder, `shopfloor agent run` x 3, `shopfloor
collector run`), while the agents publish:
1. the collector is SIGKILLed three times (restarted 2 s later; its persistent session resumes);
2. agent a2 is SIGKILLed, then runs cut off from the network (a dead broker port) until it has produced
   `--offline-samples` samples per station (3,600: a simulated hour at 1 Hz, produced at 100 Hz), is
   SIGKILLed again and restarted online, and drains its outbox;
3. the broker restarts (SIGTERM, 3 s, start: it saves and reloads its persistent sessions);
4. InfluxDB is stopped for `--outage` seconds (60) and started again;
5. twice: the collector stops (its session queues, the broker acknowledges the agents), 6 s later the
   broker is SIGKILLed and started again, then the collector (issue 13: this lost 486 of 1,674);
6. the collector, reconnected with a 5 s session expiry, stays away 12 s: the broker drops its session
   and the queue with it;
then 40 s for the agents' resends (receipt timeout 5 s here, 30 s by default) to land.
`--delete-on puback` runs the same faults with the agents deleting on the broker's PUBACK, as before
receipts: the loss that receipts remove, measured in the same kind of run.
Then the agents stop, and each station's stored `seq` values are compared with what its agent produced
(0 .. next_seq - 1 from the agent's outbox): lost = produced but not stored, duplicated = a seq stored
twice. The reference measured in the same run is the number produced: the verdict is stored/produced
(1.000) with 0 lost and 0 duplicated. Bounded: every wait has a deadline; the run takes about 4 minutes.

`--run bridge` (issue 13 item 4): the three agents publish to a plant broker bridged to the central
broker of the stack (Mosquitto's own bridge, `shopfloor.stack.bridge_config`: QoS 1, persistent on both
ends), two collectors of one shared subscription on the central side, receipts back over the bridge.
The link is cut for `--cut` seconds (60) by stopping the central broker (SIGTERM; the plant broker keeps
acknowledging the agents and queues for the bridge), then cut again for 10 s during which the plant
broker is SIGKILLed with that queue in memory and started again. `--run shared`: three collectors of
one shared subscription (sessions expiring after 5 s, docs/DESIGN.md §3: a member gone for good must
expire, or its share waits in its queue), one SIGKILLed at 10 s and never restarted; each collector's
samples written (its stats at stop) show the two left took its share. Both then wait for the agents'
resends and count sample by sample as above, about 2.5 minutes each.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from load import Child, agent, agent_config, collector, outbox_seqs, stored_total

from shopfloor.stack import Server, Stack, bridge_config, free_port
from shopfloor.store import Store, quote_string

PLANT = "chaos"
RECEIPTS = "receipt_timeout_s = 5.0\nreceipt_max_s = 20.0"  # resends within the run's minutes


def stored_seqs(store: Store) -> dict[str, list[int]]:
    result = store.query(f"SELECT seq FROM station WHERE plant = {quote_string(PLANT)} GROUP BY station")
    return {series.tags["station"]: series.column("seq") for series in result.series}


class Run:
    """The stack, the collector and three agents of one chaos run, with a log of what happened when."""

    def __init__(self, folder: Path, receipts: str):
        self.folder = folder
        self.started = time.monotonic()
        self.stack = Stack(folder / "stack")
        self.stack.up()
        self.store = Store(self.stack.influxdb.url, "chaos")
        self.store.create_database()
        self.collector = self.start_collector()
        url = self.stack.mosquitto.url
        self.configs = {
            "a0": agent_config(folder, "a0", PLANT, "l1", ["s0", "s1"], 0.05, url, extra=receipts),
            "a1": agent_config(folder, "a1", PLANT, "l1", ["s2", "s3"], 0.05, url, extra=receipts),
            "a2": agent_config(folder, "a2", PLANT, "l2", ["s4", "s5"], 0.01, url, extra=receipts),
        }
        offline = folder / "offline"
        offline.mkdir()
        # the same outbox file, a broker port where nothing listens: the line PC's network is cut
        self.offline_config = agent_config(offline, "a2", PLANT, "l2", ["s4", "s5"], 0.01,
                                           f"mqtt://127.0.0.1:{free_port()}", outbox=folder / "a2.sqlite",
                                           extra=receipts)
        self.agents = {name: agent(config).start() for name, config in self.configs.items()}

    def note(self, what: str) -> None:
        print(f"{time.monotonic() - self.started:6.1f} s  {what}", flush=True)

    def start_collector(self, session_expiry_s: int | None = None) -> Child:
        child = collector(self.stack, self.store.database, self.folder, client_id="chaos-collector",
                          session_expiry_s=session_expiry_s).start()
        child.wait_for_log("subscribed to", timeout_s=60)
        return child

    def kill_collector(self, n: int) -> None:
        self.collector.kill()
        self.note(f"collector SIGKILLed ({n} of 3)")
        time.sleep(2)
        self.collector = self.start_collector()
        self.note("collector restarted")

    def wait(self, until_s: float) -> None:
        time.sleep(max(0.0, until_s - (time.monotonic() - self.started)))


def count(store: Store, produced: dict[str, int], started: float) -> tuple[int, int]:
    """Compare each station's stored seqs with 0 .. next_seq - 1, print per station; (lost, duplicated)."""
    total = sum(produced.values())
    deadline = time.monotonic() + 180
    while stored_total(store, PLANT) < total and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(2)
    stored = stored_seqs(store)
    lost = duplicated = 0
    for station, next_seq in sorted(produced.items()):
        seqs = stored.get(station, [])
        missing = set(range(next_seq)) - set(seqs)
        extra = set(seqs) - set(range(next_seq))
        doubled = len(seqs) - len(set(seqs))
        lost += len(missing)
        duplicated += doubled + len(extra)
        print(f"  {station}: produced {next_seq:6d}  stored {len(seqs):6d}  lost {len(missing)}  "
              f"duplicated {doubled}  unexpected {len(extra)}")
    stored_count = sum(len(s) for s in stored.values())
    print(f"produced {total}, stored {stored_count} = {stored_count / total:.4f}x the produced; "
          f"lost {lost}, duplicated {duplicated}; run took {time.monotonic() - started:.0f} s")
    return lost, duplicated


def _last_figure(log: str, name: str) -> int:
    """The last `name=N` of a collector's stats lines."""
    values = [int(part.split("=")[1]) for part in log.split() if part.startswith(f"{name}=")]
    return values[-1] if values else 0


class Fleet:
    """A fresh stack, collectors of one shared group on its broker, and three agents on `agent_url`."""

    def __init__(self, folder: Path, receipts: str, collectors: int, session_expiry_s: int | None = None):
        self.folder = folder
        self.started = time.monotonic()
        self.stack = Stack(folder / "stack")
        self.stack.up()
        self.store = Store(self.stack.influxdb.url, "chaos")
        self.store.create_database()
        self.receipts = receipts
        self.collectors = [collector(self.stack, self.store.database, folder, client_id=f"chaos-c{n}",
                                     session_expiry_s=session_expiry_s).start() for n in range(collectors)]
        for child in self.collectors:
            child.wait_for_log("subscribed to", timeout_s=60)
        self.agents: dict[str, Child] = {}

    def start_agents(self, url: str) -> None:
        for name, line, stations, interval_s in (("a0", "l1", ["s0", "s1"], 0.05),
                                                 ("a1", "l1", ["s2", "s3"], 0.05),
                                                 ("a2", "l2", ["s4", "s5"], 0.01)):
            config = agent_config(self.folder, name, PLANT, line, stations, interval_s, url,
                                  extra=self.receipts)
            self.agents[name] = agent(config).start()

    def note(self, what: str) -> None:
        print(f"{time.monotonic() - self.started:6.1f} s  {what}", flush=True)

    def finish(self) -> tuple[int, int]:
        """Stop the agents, count sample by sample; then stop the collectors (their stats at stop)."""
        for child in self.agents.values():
            child.stop()
        self.note("agents stopped (SIGTERM); counting")
        produced: dict[str, int] = {}
        for name in self.agents:
            produced.update(outbox_seqs(self.folder / f"{name}.sqlite"))
        result = count(self.store, produced, self.started)
        written = 0
        for child in self.collectors:
            killed = not child.running()
            child.stop()
            log = child.log()  # a SIGKILLed collector's last stats line is from its last stats interval
            written += _last_figure(log, "samples_written")
            note = " (SIGKILLed: as of its last periodic stats line)" if killed else ""
            print(f"  {child.name}: samples written {_last_figure(log, 'samples_written')}, receipts "
                  f"{_last_figure(log, 'receipts')}{note}")
        print(f"samples written by the collectors {written} = {written / sum(produced.values()):.2f}x the "
              "produced (resends and redeliveries land on the same points)")
        return result

    def close(self) -> None:
        for child in [*self.agents.values(), *self.collectors]:
            child.kill()
        self.stack.down()


def run_bridge(folder: Path, receipts: str, cut_s: float) -> tuple[int, int]:
    """Agents on a plant broker bridged to the stack's (central) broker; the link cut twice."""
    fleet = Fleet(folder, receipts, collectors=2)
    central = fleet.stack.mosquitto
    plant = Server("mosquitto", folder / "plant", free_port(),
                   bridge=bridge_config(central.port, "chaos-bridge"))
    plant.start()
    try:
        fleet.start_agents(plant.url)
        fleet.note(f"plant broker {plant.url} bridged to central {central.url}; agents on the plant side, "
                   "two shared collectors on the central side")
        time.sleep(10)
        central.stop()
        fleet.note(f"link cut: central broker stopped (SIGTERM) for {cut_s:.0f} s")
        time.sleep(cut_s)
        central.start()
        fleet.note("central broker started again: the bridge reconnects")
        time.sleep(20)
        central.stop()
        fleet.note("link cut again: central broker stopped")
        time.sleep(5)
        plant.kill()
        fleet.note("plant broker SIGKILLed with what it queued for the bridge in memory")
        plant.start()
        fleet.note("plant broker started again")
        time.sleep(5)
        central.start()
        fleet.note("central broker started again")
        time.sleep(40)
        return fleet.finish()
    finally:
        fleet.close()
        plant.stop()


def run_shared(folder: Path, receipts: str) -> tuple[int, int]:
    """Three collectors of one shared subscription, one SIGKILLed and never back."""
    fleet = Fleet(folder, receipts, collectors=3, session_expiry_s=5)
    try:
        fleet.start_agents(fleet.stack.mosquitto.url)
        fleet.note("three collectors of one shared subscription (session expiry 5 s), three agents")
        time.sleep(10)
        fleet.collectors[0].kill()
        fleet.note("collector chaos-c0 SIGKILLed, not restarted")
        time.sleep(50)
        return fleet.finish()
    finally:
        fleet.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outage", type=float, default=60.0, help="seconds InfluxDB is down")
    parser.add_argument("--offline-samples", type=int, default=3600, help="per station, while cut off")
    parser.add_argument("--delete-on", choices=("receipt", "puback"), default="receipt",
                        help="when the agents delete a sample (puback: as before receipts)")
    parser.add_argument("--run", choices=("single", "bridge", "shared"), default="single",
                        help="single: the faults above on one broker; bridge: a bridged plant broker, the "
                             "link cut; shared: three shared collectors, one SIGKILLed")
    parser.add_argument("--cut", type=float, default=60.0,
                        help="seconds the bridge link is cut (--run bridge)")
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="shopfloor-chaos-"))
    receipts = f'{RECEIPTS}\ndelete_on = "{options.delete_on}"'
    if options.run != "single":
        print(f"agents delete on {options.delete_on}; folder {folder}", flush=True)
        if options.run == "bridge":
            lost, duplicated = run_bridge(folder, receipts, options.cut)
        else:
            lost, duplicated = run_shared(folder, receipts)
        sys.exit(0 if lost == duplicated == 0 else 1)
    run = Run(folder, receipts)
    run.note(f"agents delete on {options.delete_on}")
    run.note(f"stack, collector and agents a0, a1 (20 Hz), a2 (100 Hz) running; folder {folder}")
    try:
        run.wait(5)
        run.kill_collector(1)
        run.wait(12)
        run.agents["a2"].kill()
        before = outbox_seqs(folder / "a2.sqlite")
        run.note("agent a2 SIGKILLed; restarted cut off from the network")
        offline = agent(run.offline_config).start()
        offline.wait_for_log("agent a2:")  # its clock starts once it runs
        offline_since = time.monotonic()
        run.wait(16)
        run.kill_collector(2)
        run.wait(26)
        run.kill_collector(3)
        run.wait(34)
        run.stack.mosquitto.stop()
        run.note("broker stopped (SIGTERM)")
        time.sleep(3)
        run.stack.mosquitto.start()
        run.note("broker started again")
        # 100 Hz polls run a little slow on a busy machine: 10 % more time so the hour is complete
        time.sleep(max(0.0, options.offline_samples * 0.011 - (time.monotonic() - offline_since)))
        offline.kill()
        after = outbox_seqs(folder / "a2.sqlite")
        cut_off = {station: after[station] - before.get(station, 0) for station in after}
        run.note(f"agent a2 SIGKILLed after {time.monotonic() - offline_since:.0f} s cut off, having "
                 f"produced {cut_off} samples meanwhile (an hour at 1 Hz is 3,600); restarted online")
        run.agents["a2"] = agent(run.configs["a2"]).start()
        time.sleep(5)
        run.stack.influxdb.stop()
        run.note(f"InfluxDB stopped for {options.outage:.0f} s")
        time.sleep(options.outage)
        run.stack.influxdb.start()
        run.note("InfluxDB started again")
        time.sleep(15)
        for n in (1, 2):
            run.collector.stop()
            run.note(f"collector stopped (SIGTERM): its session queues ({n} of 2)")
            time.sleep(6)
            run.stack.mosquitto.kill()
            run.note("broker SIGKILLed with what it acknowledged in memory")
            run.stack.mosquitto.start()
            run.note("broker started again")
            run.collector = run.start_collector()
            run.note("collector back")
            time.sleep(5)
        run.collector.stop()
        run.collector = run.start_collector(session_expiry_s=5)
        run.collector.stop()
        run.note("collector (session expiry 5 s) stopped: away 12 s, longer than its session")
        time.sleep(12)
        run.collector = run.start_collector()
        run.note("collector back with a new session")
        time.sleep(40)
        for child in run.agents.values():
            child.stop()
        run.note("agents stopped (SIGTERM); counting")
        produced = {}
        for name in run.configs:
            produced.update(outbox_seqs(folder / f"{name}.sqlite"))
        run.note(f"stored {stored_total(run.store, PLANT)} of {sum(produced.values())} so far")
        lost, duplicated = count(run.store, produced, run.started)
        collector_log = run.collector.log_path.read_text(errors="replace")  # every start's lines
        print(f"collector write retries while InfluxDB was down: {collector_log.count('retrying in')}")
    finally:
        for child in [*run.agents.values(), run.collector]:
            child.kill()
        run.stack.down()
    sys.exit(0 if lost == duplicated == 0 else 1)


if __name__ == "__main__":
    main()
