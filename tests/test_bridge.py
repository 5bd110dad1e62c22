"""A plant broker bridged to a central broker (Mosquitto's own bridge): agents on the plant side,
collectors on the central side, receipts back over the bridge; the link cut: nothing lost, none twice.

On the real Mosquitto (two of them, started by shopfloor.stack with `bridge_config`), the real InfluxDB
and `shopfloor collector run` processes. The link is cut three ways: the TCP link itself, with both
brokers and the collector running (the bridge dials the central broker through a loopback relay that
the test cuts: both brokers queue for the bridge's persistent sessions, so nothing needs resending);
the central broker stopped (the plant broker queues for the bridge and acknowledges the agents); and
the plant broker SIGKILLed with that queue in memory (the agents' receipts make it whole).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_agent_support import RunningAgent, wait_for, write_config
from test_receipts import _expect_stored_once

from shopfloor.contract import StationKey, encode_receipt, receipt_topic, telemetry_topic
from shopfloor.stack import BRIDGE_TOPICS, Server, Stack, bridge_config, free_port


@dataclass
class Bridged:
    """The plant broker, the central broker it is bridged to, and the session's InfluxDB."""

    plant: Server
    central: Server
    influxdb: Server

    @property
    def mosquitto(self) -> Server:
        """What a collector connects to (conftest's CollectorProcess reads `stack.mosquitto`)."""
        return self.central


class Relay:
    """A loopback TCP relay between the plant broker's bridge and the central broker: the network link,
    which `cut()` breaks (open connections closed, new ones refused) and `mend()` restores."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.mend()

    def mend(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        assert self._listener is not None
        with contextlib.suppress(OSError):  # wakes the accept() blocked in the relay's thread (Linux)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                inside, _ = listener.accept()
            except OSError:  # cut
                return
            try:
                outside = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                inside.close()
                continue
            with self._lock:
                self._connections += [inside, outside]
            for source, sink in ((inside, outside), (outside, inside)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)


def _bridged(stack: Stack, tmp_path: Path, relay: bool) -> tuple[Bridged, Relay | None]:
    central = Server("mosquitto", tmp_path / "central", free_port())
    central.start()
    link = Relay(central.port) if relay else None
    plant = Server("mosquitto", tmp_path / "plant", free_port(),
                   bridge=bridge_config(link.port if link else central.port, f"bridge-{tmp_path.name[-20:]}"))
    plant.start()
    return Bridged(plant, central, stack.influxdb), link


@pytest.fixture
def bridged(stack: Stack, tmp_path: Path) -> Iterator[Bridged]:
    pair, _ = _bridged(stack, tmp_path, relay=False)
    yield pair
    pair.plant.stop()
    pair.central.stop()


@pytest.fixture
def relayed(stack: Stack, tmp_path: Path) -> Iterator[tuple[Bridged, Relay]]:
    pair, link = _bridged(stack, tmp_path, relay=True)
    assert link is not None
    yield pair, link
    pair.plant.stop()
    pair.central.stop()
    link.cut()


def _bridge_up(bridged: Bridged) -> bool:
    return "New bridge connected" in (bridged.central.data_dir / "mosquitto.log").read_text(errors="replace")


def _client(name: str) -> str:
    """Mosquitto's command-line clients (Debian package mosquitto-clients)."""
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is needed: sudo apt-get install mosquitto-clients")
    return found


def _one_message(port: int, topic: str, timeout_s: float = 5.0) -> subprocess.Popen:
    """Mosquitto's own client, waiting for one message on `topic` (an observer independent of paho)."""
    return subprocess.Popen([_client("mosquitto_sub"),
                             "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", "1", "-C", "1",
                             "-W", str(int(timeout_s))], stdout=subprocess.PIPE, text=True)


def _publish(port: int, topic: str, payload: bytes) -> None:
    subprocess.run([_client("mosquitto_pub"), "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", "1",
                    "-s"], input=payload, check=True, timeout=10)


def test_the_bridge_carries_our_topics_each_way_the_contract_needs():
    lines = bridge_config(1883, "b1").splitlines()
    assert {"cleansession false", "local_cleansession false", "try_private true"} <= set(lines)
    topics = {line.split()[1]: line.split()[2:] for line in lines if line.startswith("topic ")}
    assert topics["shopfloor/v1/+/+/+/telemetry"] == ["out", "1"]
    assert topics["shopfloor/v1/+/+/agent/+/status"] == ["out", "1"]
    assert topics["shopfloor/v1/+/+/+/stored"] == ["in", "1"]
    assert topics["shopfloor/v1/_rejected"] == ["in", "1"]
    assert len(topics) == len(BRIDGE_TOPICS)


@pytest.mark.servers
def test_telemetry_goes_out_and_receipts_come_in_over_the_real_bridge(bridged, plant_id):
    key = StationKey(plant_id, "l1", "s1")
    wait_for(lambda: _bridge_up(bridged), 10, "the bridge to connect")
    at_central = _one_message(bridged.central.port, telemetry_topic(key))
    at_plant = _one_message(bridged.plant.port, receipt_topic(key))
    time.sleep(0.5)  # both subscribed
    _publish(bridged.plant.port, telemetry_topic(key), b'{"v":1,"ts":1,"seq":0,"count":0,"queue":0}')
    _publish(bridged.central.port, receipt_topic(key), encode_receipt([(0, 0)]))
    assert at_central.communicate(timeout=10)[0].strip() == '{"v":1,"ts":1,"seq":0,"count":0,"queue":0}'
    assert at_plant.communicate(timeout=10)[0].strip() == '{"v":1,"stored":[[0,0]],"rejected":[]}'


def _agent(tmp_path: Path, plant_id: str, url: str, stations: int = 3,
           timeout_s: float = 2.0) -> RunningAgent:
    return RunningAgent(write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url=url,
                                     stations=stations, delete_on="receipt",
                                     extra=f"receipt_timeout_s = {timeout_s}\nreceipt_max_s = {timeout_s}"))


@pytest.mark.servers
def test_the_bridge_link_cut_with_both_brokers_up_loses_nothing_and_needs_no_resend(
        relayed, store, plant_id, tmp_path, collector_process):
    """Both ends queue for the bridge's persistent sessions: telemetry waits on the plant broker, and
    receipts published while the link is down wait on the central one. To have receipts to publish
    then, the collector is away first (its session queues on the central broker) and comes back
    after the cut. The agents' receipt timeout (120 s) is longer than the test, so every sample was
    receipted over the bridge without a resend."""
    bridged, link = relayed
    collector = collector_process(bridged, store.database, client_id=f"c{plant_id}", group=f"g{plant_id}")
    running = _agent(tmp_path, plant_id, bridged.plant.url, timeout_s=120.0)
    agent = running.agent
    wait_for(lambda: agent.receipted > 50, 20, "receipts over the bridge")
    collector.stop()  # its session on the central broker queues what the bridge brings
    wait_for(lambda before=agent.acked: agent.acked > before + 100, 20, "telemetry queued for the collector")
    time.sleep(0.5)  # over the bridge into that queue
    link.cut()
    cut_at, receipted = agent.acked, agent.receipted
    collector = collector_process(bridged, store.database, client_id=f"c{plant_id}", group=f"g{plant_id}")
    time.sleep(3.0)  # it writes its queue and publishes the receipts while the link is down
    assert agent.acked > cut_at + 50  # the plant broker kept acknowledging: it queues for the bridge
    assert agent.receipted <= receipted + 10  # no receipt crossed the cut link
    link.mend()
    wait_for(lambda: agent.unreceipted()[0] < 20, 30, "every sample receipted but the newest")
    running.stop()
    collector.stop()
    assert agent.resent == 0
    assert _expect_stored_once(store, plant_id, tmp_path / "outbox.sqlite", ["s0", "s1", "s2"]) > 200


@pytest.mark.servers
def test_the_bridge_cut_by_the_central_broker_stopping_loses_nothing_and_stores_nothing_twice(
        bridged, store, plant_id, tmp_path, collector_process):
    collector_process(bridged, store.database, client_id=f"c{plant_id}", group=f"g{plant_id}")
    running = _agent(tmp_path, plant_id, bridged.plant.url)
    agent = running.agent
    wait_for(lambda: agent.receipted > 50, 20, "receipts over the bridge")
    bridged.central.stop()  # the link is cut; the collector is cut off too
    cut_at = agent.acked
    receipted = agent.receipted
    time.sleep(3.0)
    assert agent.acked > cut_at + 50  # the plant broker kept acknowledging: it queues for the bridge
    assert agent.receipted <= receipted + 10  # only what was on its way back when the link went
    bridged.central.start()
    wait_for(lambda: agent.receipted > receipted + 200, 30, "receipts after the link came back")
    running.stop()
    total = _expect_stored_once(store, plant_id, tmp_path / "outbox.sqlite", ["s0", "s1", "s2"])
    assert total > 300


@pytest.mark.servers
def test_the_plant_broker_sigkilled_while_the_link_is_cut_loses_nothing(
        bridged, store, plant_id, tmp_path, collector_process):
    """The plant broker dies with the queue it held for the bridge: receipts, not the bridge, save it."""
    collector = collector_process(bridged, store.database, client_id=f"c{plant_id}", group=f"g{plant_id}")
    running = _agent(tmp_path, plant_id, bridged.plant.url)
    agent = running.agent
    wait_for(lambda: agent.receipted > 50, 20, "receipts over the bridge")
    bridged.central.stop()
    wait_for(lambda before=agent.acked: agent.acked > before + 100, 20, "samples the plant broker queued")
    bridged.plant.kill()
    bridged.plant.start()
    bridged.central.start()
    wait_for(lambda: agent.connected, 20, "the agent back on the plant broker")
    wait_for(lambda: agent.unreceipted()[0] < 10 and agent.resent > 0, 30, "every sample receipted")
    running.stop()
    collector.stop()
    assert _expect_stored_once(store, plant_id, tmp_path / "outbox.sqlite", ["s0", "s1", "s2"]) > 150
