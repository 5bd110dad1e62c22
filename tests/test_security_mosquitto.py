"""Mosquitto 2.0.11 forgets shared subscriptions over a restart: found by bench/chaos.py, kept checked here.

The broker restores a persistent session's queued messages and its plain subscriptions from its
persistence file, but not its shared subscriptions (`$share/GROUP/...`, which the collectors use)
until the client subscribes again. What agents publish between the broker's start and the
collector's return matches no subscriber: the broker answers PUBACK 0x10 "No matching subscribers"
and drops it. The agent therefore keeps such samples on disk and sends them again
(edge_agent/link.py), so the chaos run's broker restart loses nothing.
"""

from __future__ import annotations

import time

import pytest
from conftest import wait_until
from paho.mqtt.subscribeoptions import SubscribeOptions
from support import stored_seqs
from test_agent_support import AgentProcess

from shopfloor.mqtt import connect_properties, make_client
from shopfloor.settings import mqtt_endpoint

pytestmark = pytest.mark.servers


def reconnecting_subscriber(url: str, client_id: str, topic: str | None) -> tuple[object, list[bytes]]:
    """A persistent-session client; subscribes to `topic` if given (else relies on its old session)."""
    endpoint = mqtt_endpoint(url)
    received: list[bytes] = []
    client = make_client(client_id, endpoint)
    client.on_message = lambda c, userdata, message: received.append(message.payload)
    client.connect(endpoint.host, endpoint.port, clean_start=False, properties=connect_properties(3600))
    client.loop_start()
    if topic:
        client.subscribe(topic, options=SubscribeOptions(qos=1))
    time.sleep(0.5)
    return client, received


def publish_after_restart(url: str) -> list[str]:
    endpoint = mqtt_endpoint(url)
    reasons: list[str] = []
    publisher = make_client("restart-publisher", endpoint)
    publisher.on_publish = lambda c, userdata, mid, reason, properties: reasons.append(str(reason))
    publisher.connect(endpoint.host, endpoint.port)
    publisher.loop_start()
    for n in range(3):
        publisher.publish("chaos/x", str(n).encode(), qos=1).wait_for_publish(5)
    wait_until(lambda: len(reasons) == 3, 5, "three PUBACKs")
    publisher.disconnect()
    publisher.loop_stop()
    return reasons


def test_a_shared_subscription_is_not_restored_by_a_broker_restart_a_plain_one_is(own_stack):
    url = own_stack.mosquitto.url
    for topic, client_id in (("$share/g/chaos/#", "shared"), ("chaos/#", "plain")):
        client, _ = reconnecting_subscriber(url, client_id, topic)
        client.disconnect()
        client.loop_stop()
    own_stack.mosquitto.stop()
    own_stack.mosquitto.start()
    assert publish_after_restart(url) == ["Success"] * 3  # the plain subscription took them
    shared, shared_got = reconnecting_subscriber(url, "shared", None)
    plain, plain_got = reconnecting_subscriber(url, "plain", None)
    assert plain_got == [b"0", b"1", b"2"]
    assert shared_got == []  # the shared one's session is back, its subscription is not
    for client in (shared, plain):
        client.disconnect()
        client.loop_stop()


def test_agents_resend_what_no_collector_took_across_a_broker_restart(own_stack, own_store, plant_id,
                                                                      tmp_path, collector_process):
    collector = collector_process(own_stack, own_store.database, client_id="c1")  # shared subscription
    config = tmp_path / "agent.toml"
    config.write_text(f'agent = "a1"\nplant = "{plant_id}"\nline = "l1"\ninterval_s = 0.05\n'
                      f'outbox = "outbox.sqlite"\n[mqtt]\nurl = "{own_stack.mosquitto.url}"\n'
                      f'reconnect_max_s = 0.5\n[[station]]\nid = "s1"\n'
                      f'source = {{ kind = "simulated", cycle_s = 0.2 }}\n')
    agent = AgentProcess(config, tmp_path / "agent.log")
    agent.wait_connected()
    time.sleep(1.0)
    collector.kill()  # the collector is away while the broker restarts...
    own_stack.mosquitto.stop()
    own_stack.mosquitto.start()
    time.sleep(3.0)  # ...and the agent publishes into a broker that forgot the shared subscription
    collector = collector_process(own_stack, own_store.database, client_id="c1")
    time.sleep(6.0)  # the agent resends what came back "No matching subscribers" (after 5 s)
    assert agent.terminate() == 0
    import sqlite3

    next_seq = sqlite3.connect(tmp_path / "outbox.sqlite").execute(
        "SELECT next_seq FROM station_state WHERE station = 's1'").fetchone()[0]
    wait_until(lambda: len(stored_seqs(own_store, plant_id).get("s1", [])) >= next_seq, 30,
               f"{next_seq} samples")
    assert stored_seqs(own_store, plant_id) == {"s1": list(range(next_seq))}
    assert collector.running()
