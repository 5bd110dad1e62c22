"""`shopfloor demo`: the whole system on this machine, without Docker and without Grafana.

It starts the real stack (Mosquitto, InfluxDB), then each part as the same `shopfloor` command a
plant would run: a live simulated line (one virtual agent per station), the collector, the
analysis service with its huddle page, and the targets watcher; it writes the year's targets and
prints where to look. Ctrl-C (or `--seconds`) stops the children by PID and then the stack.
The demo's plant, plan and scenario are the docker-compose demo's (docker/), so both show the same line.

Why it backfills: a page that reads "0 / 0" for its first hour is switched off. The simulated line
starts at the current shift's start (at least an hour back, so the detector has its lookback): the
part up to now leaves at once, in batches, through the real broker and collector (`sim replay --live
--backfill-from`), then the feed runs live. Once that past is stored, the live detector is ticked
over it every `rewrite_s`, as it would have run (timeline, live answer, constraint alerts through
the real alert path), and only then does the analysis service start: the first screen is full.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shopfloor.contract import alerts_topic
from shopfloor.errors import ShopfloorError
from shopfloor.stack import Stack, free_port

DEMO_FILES = Path(__file__).resolve().parent.parent / "docker"
DEFAULT_DEMO_DIR = Path.home() / ".shopfloor" / "demo"
BACKFILL_MIN_MS = 3_600_000  # the live detector's lookback: a constraint from the first screen on
BACKFILL_MAX_MS = 8 * 3_600_000  # one shift of the demo plan


class DemoError(ShopfloorError):
    """A part of the demo that would not start."""


@dataclass
class Demo:
    """The demo's children and stack; `start` brings them up in data-path order, `stop` in reverse."""

    folder: Path
    port: int
    speed: float = 1.0
    children: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stack = Stack(self.folder / "stack")
        self.plant = DEMO_FILES / "plant.toml"
        self.plan = DEMO_FILES / "plan.toml"
        self.scenario = DEMO_FILES / "scenario.toml"
        for path in (self.plant, self.plan, self.scenario):
            if not path.exists():
                raise DemoError(f"{path} is missing: run the demo from a checkout of the project")

    def _shopfloor(self, name: str, *args: str) -> None:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it from here
        environment = {"SHOPFLOOR_MQTT_URL": self.stack.mosquitto.url,
                       "SHOPFLOOR_INFLUX_URL": self.stack.influxdb.url, "SHOPFLOOR_INFLUX_DB": "shopfloor"}
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "shopfloor", *args], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env={**os.environ, **environment}, start_new_session=True)
        log.close()

    def backfill_from(self, now_ms: int) -> int:
        """The current shift's start on the demo plan's calendar, at least an hour and at most a shift
        (8 h) before now, on the second."""
        from analysis.targets import shifts_between
        from shopfloor.plan import load_plan

        runs = shifts_between(load_plan(self.plan).calendar, now_ms - 1, now_ms + 1)
        start = runs[-1].start_ms if runs else now_ms
        return max(now_ms - BACKFILL_MAX_MS, min(start, now_ms - BACKFILL_MIN_MS)) // 1000 * 1000

    def fresh_stack(self) -> None:
        """Start each run from an empty broker and database: the demo's data is this run's simulated line.

        Why: a second run on a kept database restarts every counter and seq at the first run's values
        inside the first run's samples; the huddle counted that restart as output (134 units in an hour
        that made 86) and the broker delivered the first run's queued messages again.
        """
        status = self.stack.status()
        if status["mosquitto"]["running"] or status["influxdb"]["running"]:
            pids = ", ".join(str(status[kind]["pid"]) for kind in ("mosquitto", "influxdb")
                             if status[kind]["running"])
            raise DemoError(f"a demo already runs from {self.folder} (PID {pids}): stop it with Ctrl-C, "
                            "or give this one another folder with --dir")
        shutil.rmtree(self.stack.state_dir, ignore_errors=True)
        self.stack = Stack(self.stack.state_dir)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fresh_stack()
        self.stack.up()
        done = subprocess.run(
            [sys.executable, "-m", "shopfloor", "targets", "write", "--plan", str(self.plan), "--line", "l1",
             "--plant", str(self.plant), "--year", str(time.gmtime().tm_year),
             "--influx-url", self.stack.influxdb.url],
            capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise DemoError(f"writing the targets failed: {done.stderr.strip() or done.stdout.strip()}")
        self._shopfloor("collector", "collector", "run", "--client-id", "demo-collector")
        launched = int(time.time() * 1000) // 1000 * 1000
        first = self.backfill_from(launched)
        self._shopfloor("line", "sim", "replay", str(self.scenario), "--live", "--seed", "7", "--quiet",
                        "--speed", str(self.speed), "--backfill-from",
                        dt.datetime.fromtimestamp(first / 1000, dt.UTC).isoformat())
        self._wait_for_backfill(first, launched)
        self._tick_over_the_past(first, int(time.time() * 1000))
        self._shopfloor("analysis", "analysis", "serve", "--plant", str(self.plant), "--plan", str(self.plan),
                        "--port", str(self.port))
        self._shopfloor("targets", "targets", "watch", "--plant", str(self.plant), "--plan", str(self.plan),
                        "--every", "60")
        self._wait_for_service()

    def _store(self):
        from shopfloor.store import Store

        return Store(self.stack.influxdb.url, "shopfloor")

    def _wait_for_backfill(self, first_ms: int, launched_ms: int, timeout_s: float = 180) -> None:
        """Until the line's last station has every second from `first_ms` to `launched_ms` stored."""
        from shopfloor.plant import load_plant
        from shopfloor.store import StoreError, quote_string

        last = load_plant(self.plant).lines[0].station_ids[-1]
        expected = (launched_ms - first_ms) // 1000
        deadline = time.monotonic() + timeout_s
        stored = 0
        with self._store() as store:
            while time.monotonic() < deadline:
                if gone := self.exited():
                    raise DemoError(f"{', '.join(gone)} exited during the backfill: see {self.folder}")
                with contextlib.suppress(StoreError):  # the database appears with the first write
                    result = store.query(f"SELECT count(seq) FROM station WHERE station = "
                                         f"{quote_string(last)} AND time >= {first_ms}ms "
                                         f"AND time < {launched_ms}ms")
                    stored = result.series[0].values[0][1] if result.series else 0
                if stored >= expected:
                    return
                time.sleep(0.5)
        raise DemoError(f"the backfill stored {stored} of {expected} samples of {last} in {timeout_s:.0f} s: "
                        f"see {self.folder / 'collector.log'}")

    def _tick_over_the_past(self, first_ms: int, now_ms: int) -> None:
        """The live detector over the backfilled past, every `rewrite_s`, oldest first, with the alert
        path the service uses (so a constraint move in the past is a stored, published alert)."""
        from analysis.alerts import AlertSink, MqttAlertPublisher
        from analysis.live import LiveConfig, LiveDetector
        from shopfloor.plant import load_plant

        plant, config = load_plant(self.plant), LiveConfig()
        step = int(config.rewrite_s * 1000)
        publisher = MqttAlertPublisher(self.stack.mosquitto.url, client_id="demo-backfill-alerts")
        try:
            with self._store() as store:
                for line in plant.lines:
                    sink = AlertSink(plant.plant, line.id, store, publisher)
                    detector = LiveDetector(store, plant, line.id, config, sink)
                    for moment in [*range(first_ms + step, now_ms, step), now_ms]:
                        detector.tick(moment)
        finally:
            publisher.close()

    def _wait_for_service(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, child in self.children.items():
                if child.poll() is not None:
                    raise DemoError(f"{name} exited at start: see {self.folder / (name + '.log')}")
            with contextlib.suppress(httpx.HTTPError):  # not listening yet
                if httpx.get(f"http://127.0.0.1:{self.port}/docs", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise DemoError(f"the analysis service did not answer in {timeout_s:.0f}s: see "
                        f"{self.folder / 'analysis.log'}")

    def exited(self) -> list[str]:
        return [name for name, child in self.children.items() if child.poll() is not None]

    def stop(self) -> None:
        for child in reversed(self.children.values()):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children.values():
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        self.stack.down()

    def where_to_look(self) -> str:
        huddle = f"http://127.0.0.1:{self.port}/huddle"
        return "\n".join([
            "shopfloor demo is running: a simulated line p1/l1 of five stations, live at 1 Hz.",
            f"  huddle page      {huddle}",
            f"  API docs         http://127.0.0.1:{self.port}/docs",
            f"  broker           {self.stack.mosquitto.url}   (mosquitto_sub -L "
            f"{self.stack.mosquitto.url}/{alerts_topic('p1', 'l1')} -v)",
            f"  InfluxDB         {self.stack.influxdb.url}   database shopfloor",
            "  stored samples:  curl -sG " + self.stack.influxdb.url + "/query --data-urlencode db=shopfloor "
            "--data-urlencode \"q=SELECT count(seq) FROM station GROUP BY station\"",
            f"  logs             {self.folder}/*.log",
            "  Grafana boards:  `docker compose up` (see dashboards/README.md)",
            "Ctrl-C stops everything.",
        ])


def run_demo(folder: Path = DEFAULT_DEMO_DIR, port: int | None = None, seconds: float | None = None,
             speed: float = 1.0, announce=print) -> None:
    """Run the demo until Ctrl-C, SIGTERM, `seconds` elapsed, or a part exiting on its own."""
    demo = Demo(folder, port or free_port(), speed)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        demo.start()
        announce(demo.where_to_look())
        deadline = time.monotonic() + seconds if seconds else None
        while not stopping.wait(1.0):
            if deadline and time.monotonic() > deadline:
                break
            if gone := demo.exited():
                raise DemoError(f"{', '.join(gone)} stopped: see the logs in {folder}")
    finally:
        demo.stop()
