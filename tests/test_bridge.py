"""A plant broker bridged to a central broker (Mosquitto's own bridge): agents on the plant side,
collectors on the central side, receipts back over the bridge; the link cut: nothing lost, none twice.

On the real Mosquitto (two of them, started by shopfloor.stack with `bridge_config`), the real InfluxDB
and `shopfloor collector run` processes. The link is cut by stopping the central broker (the bridge
then retries every second, the plant broker queues for it and acknowledges the agents) or by
SIGKILLing the plant broker with that queue in memory (the agents' receipts make it whole).
"""

from __future__ import annotations

import shutil
import subprocess
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


@pytest.fixture
def bridged(stack: Stack, tmp_path: Path) -> Iterator[Bridged]:
    central = Server("mosquitto", tmp_path / "central", free_port())
    central.start()
    plant = Server("mosquitto", tmp_path / "plant", free_port(),
                   bridge=bridge_config(central.port, f"bridge-{tmp_path.name[-20:]}"))
    plant.start()
    yield Bridged(plant, central, stack.influxdb)
    plant.stop()
    central.stop()


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


def _agent(tmp_path: Path, plant_id: str, url: str, stations: int = 3) -> RunningAgent:
    return RunningAgent(write_config(tmp_path / "agent.toml", plant=plant_id, mqtt_url=url,
                                     stations=stations, delete_on="receipt",
                                     extra="receipt_timeout_s = 2.0\nreceipt_max_s = 2.0"))


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
