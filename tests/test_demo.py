"""`shopfloor demo` end to end: every part starts, data flows to InfluxDB and the huddle API, all stops."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
from conftest import wait_until

from shopfloor.demo import Demo, DemoError
from shopfloor.stack import Stack, free_port
from shopfloor.store import Store, StoreError

pytestmark = pytest.mark.servers


def test_demo_runs_the_whole_system_and_stops_it(tmp_path):
    """Also: before the service answers, the current shift so far (at least the last hour) is stored
    through the real broker and collector and the detector has been ticked over it, so the first
    screen has output, a constraint from the live detector and a timeline of the past."""
    port = free_port()
    began = int(time.time() * 1000)
    demo = subprocess.Popen([sys.executable, "-m", "shopfloor", "demo", "--dir", str(tmp_path),
                             "--port", str(port), "--seconds", "25"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: (tmp_path / "stack" / "stack.json").exists(), 60, "the demo's stack")
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/docs"), 60, "the analysis service")
        store = Store(Stack(tmp_path / "stack").influxdb.url, "shopfloor")
        stations = wait_until(lambda: _stations_with_samples(store), 30, "samples of every station")
        assert stations == {"s1", "s2", "s3", "s4", "s5"}
        huddle = httpx.get(f"http://127.0.0.1:{port}/api/huddle/l1", timeout=10).json()
        assert huddle["line"] == "l1" and huddle["hours"], huddle
        hour_ago = began - 3_600_000
        exits = store.query(f"SELECT count(seq) FROM station WHERE station = 's5' AND time >= {hour_ago}ms "
                            f"AND time < {began}ms").series[0].values[0][1]
        assert exits >= 3590, exits  # a sample a second of the past hour, already stored
        assert huddle["constraint"]["source"] == "live detector", huddle["constraint"]
        assert sum(huddle["constraint"]["shares"].values()) <= 1.0 + 1e-3
        windows = store.query(f"SELECT count(\"share\") FROM bottleneck WHERE station = 's1' "
                              f"AND time < {began - 1_800_000}ms").series
        assert windows and windows[0].values[0][1] >= 25  # the timeline of the past, not only of now
        assert "<html" in httpx.get(f"http://127.0.0.1:{port}/huddle", timeout=10).text.lower()
        output, _ = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, output
    assert f"huddle page      http://127.0.0.1:{port}/huddle" in output
    status = Stack(tmp_path / "stack").status()
    assert not status["mosquitto"]["running"] and not status["influxdb"]["running"]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _stations_with_samples(store: Store) -> set[str]:
    try:
        result = store.query("SELECT count(seq) FROM station GROUP BY station")
    except StoreError:  # the database appears with the first write
        return set()
    stations = {series.tags["station"] for series in result.series}
    return stations if len(stations) == 5 else set()


def test_a_demo_run_starts_from_an_empty_stack_and_never_wipes_a_running_one(tmp_path):
    """A kept database made the second run count its counters' restart as output (134 units for 86)."""
    demo = Demo(tmp_path, free_port())
    stale = demo.stack.state_dir / "influxdb" / "data" / "shopfloor"
    stale.mkdir(parents=True)
    demo.stack._save()  # a stopped run's stack.json: no live PID
    demo.fresh_stack()
    assert not stale.exists() and not demo.stack.state_file.exists()

    demo.stack.influxdb.pid = os.getpid()  # a live process holds the folder: another demo still runs
    demo.stack._save()
    with pytest.raises(DemoError, match=r"a demo already runs from .* \(PID \d+\): stop it with Ctrl-C"):
        Demo(tmp_path, free_port()).fresh_stack()
    assert demo.stack.state_file.exists()  # nothing of the running one removed
