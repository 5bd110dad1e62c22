"""The plant-to-central bridge under the ACLs of `shopfloor security init --bridge`.

The unit tests read what init writes: one bridge credential per plant, scoped to that plant's share of
`shopfloor.stack.BRIDGE_TOPICS`, and the bridge section for the plant broker (credentials, TLS with the
generated CA). The server tests start two real Mosquittos from shopfloor.stack, both with the generated
password file and ACL (anonymous access off): the central one with the TLS listener, the plant one with
the generated `bridge-PLANT.conf` as it is written. An agent on the plant side, a collector on the
central side, receipts back over the TLS bridge; and the bridge's credential tried against the central
broker for another plant's topics.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import wait_until
from test_bridge import _agent
from test_receipts import _expect_stored_once
from test_security import Client, sample_payload
from typer.testing import CliRunner

from shopfloor import security
from shopfloor.contract import (
    REJECTED_TOPIC,
    StationKey,
    alerts_topic,
    encode_receipt,
    receipt_topic,
    status_topic,
    telemetry_topic,
)
from shopfloor.plant import Plant
from shopfloor.stack import BRIDGE_TOPICS, Server, Stack, bridge_topics, free_port

STATIONS = ("s0", "s1", "s2")


def plant_of(plant_id: str, stations: tuple[str, ...] = STATIONS) -> Plant:
    """Line l1: `stations` served by agent a1 (what tests/test_bridge.py's agent runs), s9 by agent a2."""
    return Plant.model_validate({"plant": plant_id, "line": [
        {"id": "l1", "station": [*({"id": s, "buffer": 4, "ideal_cycle_s": 1.0, "agent": "a1"}
                                   for s in stations),
                                 {"id": "s9", "buffer": 4, "ideal_cycle_s": 1.0, "agent": "a2"}]}]})


def _init(folder: Path, plants: list[str], tls_port: int = 8883, **options) -> security.Credentials:
    return security.init([plant_of(p) for p in plants], folder, f"mqtts://127.0.0.1:{tls_port}",
                         bridges=True, **options)


def _section(folder: Path, plant: str) -> dict[str, list[str]]:
    """The generated bridge section as {option: [values...]} (topic lines collected in order)."""
    found: dict[str, list[str]] = {}
    for line in (folder / security.BRIDGE_FILE.format(plant=plant)).read_text().splitlines():
        option, _, value = line.partition(" ")
        found.setdefault(option, []).append(value)
    return found


# --- what init writes (no servers) -------------------------------------------------------------------


def test_a_plants_share_of_the_bridge_topics_is_derived_from_bridge_topics():
    assert bridge_topics() == list(BRIDGE_TOPICS)
    assert bridge_topics("pa") == [("shopfloor/v1/pa/+/+/telemetry", "out"),
                                   ("shopfloor/v1/pa/+/agent/+/status", "out"),
                                   ("shopfloor/v1/pa/+/+/stored", "in"),
                                   ("shopfloor/v1/pa/+/alerts", "in")]  # `_rejected` holds every plant's


def test_init_bridge_writes_one_scoped_credential_and_a_tls_bridge_section_per_plant(tmp_path):
    auth = tmp_path / "auth"
    credentials = _init(auth, ["pa", "pb"])
    bridge = {u.username: u for u in credentials.users if u.role == "bridge"}
    assert list(bridge) == ["bridge.pa", "bridge.pb"]
    assert bridge["bridge.pa"].write == ("shopfloor/v1/pa/+/+/telemetry", "shopfloor/v1/pa/+/agent/+/status")
    assert bridge["bridge.pa"].read == ("shopfloor/v1/pa/+/+/stored", "shopfloor/v1/pa/+/alerts")
    acl = (auth / security.ACL_FILE).read_text()
    assert "user bridge.pb\ntopic write shopfloor/v1/pb/+/+/telemetry\n" in acl
    section = _section(auth, "pa")
    assert section["address"] == ["127.0.0.1:8883"]
    assert section["remote_username"] == ["bridge.pa"]
    assert section["remote_password"] == [credentials.passwords["bridge.pa"]]
    assert section["bridge_cafile"] == [str((auth / "ca.crt").resolve())]
    assert section["remote_clientid"] == [credentials.bridge_client_ids["pa"]]
    assert section["connection"] == section["remote_clientid"]
    assert [tuple(t.split()[:2]) for t in section["topic"]] == bridge_topics("pa")
    assert {"cleansession": ["false"], "local_cleansession": ["false"]}.items() <= section.items()
    for name in (security.BRIDGE_FILE.format(plant="pa"), security.CREDENTIALS_FILE):
        assert stat.S_IMODE((auth / name).stat().st_mode) == 0o600, name
    assert (auth / "server.crt").exists()  # --bridge implies --tls: the link is TLS
    again = _init(auth, ["pa", "pb"])
    assert again.bridge_client_ids == credentials.bridge_client_ids
    assert again.passwords["bridge.pa"] == credentials.passwords["bridge.pa"]
    rotated = _init(auth, ["pa", "pb"], rotate=True, bridge_cafile="/etc/mosquitto/certs/ca.crt")
    assert rotated.bridge_client_ids["pa"] != credentials.bridge_client_ids["pa"]
    assert _section(auth, "pa")["bridge_cafile"] == ["/etc/mosquitto/certs/ca.crt"]
    _init(auth, ["pa"])  # plant pb is no longer bridged: its section, with a dead password, goes
    assert sorted(path.name for path in auth.glob("bridge-*")) == ["bridge-pa.conf"]
    security.init([plant_of("pa")], auth)
    assert not list(auth.glob("bridge-*"))


def test_without_bridge_no_bridge_credential_and_an_unknown_plant_is_a_clear_error(tmp_path):
    credentials = security.init([plant_of("pa")], tmp_path / "auth")
    assert [u.role for u in credentials.users if u.role == "bridge"] == []
    assert not list((tmp_path / "auth").glob("bridge-*"))
    with pytest.raises(security.SecurityError, match="run `shopfloor security init --bridge`"):
        security.plant_bridge_config(credentials, tmp_path / "auth", "pa", "127.0.0.1", 8883)


def test_cli_init_bridge_names_the_files_never_the_secrets(tmp_path):
    from shopfloor.cli import _mount_subcommands, app

    _mount_subcommands()
    plant_file = tmp_path / "plant.toml"
    plant_file.write_text('plant = "pa"\n[[line]]\nid = "l1"\n'
                          '[[line.station]]\nid = "s0"\nbuffer = 4\nideal_cycle_s = 1.0\n')
    result = CliRunner().invoke(app, ["security", "init", "--plant", str(plant_file), "--out",
                                      str(tmp_path / "auth"), "--broker-url", "mqtts://127.0.0.1:8883",
                                      "--bridge"])
    assert result.exit_code == 0, result.output
    assert "1 plant bridges" in result.output and "bridge-pa.conf" in result.output
    credentials = security.load_credentials(tmp_path / "auth")
    assert not any(secret in result.output for secret in credentials.passwords.values())
    assert credentials.bridge_client_ids["pa"] not in result.output


# --- two real brokers with the generated files ---------------------------------------------------------


@pytest.fixture
def secured_pair(stack: Stack, tmp_path: Path, plant_id: str) -> Iterator[SimpleNamespace]:
    """Central broker (TLS listener) and plant_id's broker bridged to it, both with init's passwd and acl."""
    auth = tmp_path / "auth"
    other = f"{plant_id}x"
    tls_port = free_port()
    credentials = _init(auth, [plant_id, other], tls_port)
    central = Server("mosquitto", tmp_path / "central", free_port(),
                     broker_auth=security.broker_config(auth, tls_port, anonymous_line=False))
    central.start()
    plant = Server("mosquitto", tmp_path / "plant", free_port(),
                   broker_auth=security.broker_config(auth, anonymous_line=False),
                   bridge=(auth / security.BRIDGE_FILE.format(plant=plant_id)).read_text())
    plant.start()
    yield SimpleNamespace(central=central, plant=plant, influxdb=stack.influxdb, credentials=credentials,
                          auth=auth, tls_port=tls_port, other=other)
    plant.stop()
    central.stop()


def _bridge_logged_in(pair: SimpleNamespace, plant: str) -> bool:
    log = (pair.central.data_dir / "mosquitto.log").read_text(errors="replace")
    return f"u'{security.bridge_username(plant)}'" in log and "New bridge connected" in log


@pytest.mark.servers
def test_receipts_come_back_over_the_tls_bridge_with_generated_credentials(
        secured_pair, store, plant_id, tmp_path, collector_process):
    pair, credentials = secured_pair, secured_pair.credentials
    # the bridge dials the central broker's TLS listener, which takes nothing but TLS
    assert _section(pair.auth, plant_id)["address"] == [f"127.0.0.1:{pair.tls_port}"]
    wait_until(lambda: _bridge_logged_in(pair, plant_id), 15, "the bridge logged in to the central broker")
    collector_url = credentials.url("collector", pair.central.url)
    as_collector = SimpleNamespace(mosquitto=SimpleNamespace(url=collector_url), influxdb=pair.influxdb)
    collector = collector_process(as_collector, store.database, group=credentials.group,
                                  client_id=credentials.collector_client_id)
    # on the plant broker the ACL still holds for what the bridge brings in: a2 reads none of a1's receipts
    a2 = Client(pair.plant.port, f"{plant_id}.l1.a2", credentials.passwords[f"{plant_id}.l1.a2"])
    a2.subscribe("shopfloor/v1/#")
    monitor = Client(pair.plant.port, "monitor", credentials.passwords["monitor"])
    monitor.subscribe(f"shopfloor/v1/{plant_id}/l1/+/stored")
    running = _agent(tmp_path, plant_id, credentials.url(f"{plant_id}.l1.a1", pair.plant.url))
    agent = running.agent
    wait_until(lambda: agent.receipted > 150, 30, "receipts over the TLS bridge")
    running.stop()
    assert monitor.messages and a2.messages == []
    for client in (a2, monitor):
        client.close()
    collector.stop()
    assert _expect_stored_once(store, plant_id, tmp_path / "outbox.sqlite", list(STATIONS)) > 150
    logs = "".join([collector.log(), *((server.data_dir / "mosquitto.log").read_text()
                                        for server in (pair.plant, pair.central))])
    assert not any(secret in logs for secret in credentials.passwords.values())


@pytest.mark.servers
def test_a_plants_bridge_credential_cannot_touch_another_plants_topics(secured_pair, plant_id):
    pair, credentials = secured_pair, secured_pair.credentials
    ca = str(pair.auth / "ca.crt")

    def as_bridge(plant: str = plant_id) -> Client:
        username = security.bridge_username(plant)
        return Client(pair.tls_port, username, credentials.passwords[username], tls_ca=ca)

    own, foreign = StationKey(plant_id, "l1", "s0"), StationKey(pair.other, "l1", "s0")
    monitor = Client(pair.central.port, "monitor", credentials.passwords["monitor"])
    monitor.subscribe("shopfloor/v1/#")
    assert as_bridge().publish(telemetry_topic(own), sample_payload()) == "Success"
    assert as_bridge().publish(status_topic(plant_id, "l1", "a1"), b'{"v":1}') == "Success"
    refused = [telemetry_topic(foreign), status_topic(pair.other, "l1", "a1"),
               receipt_topic(own),  # no forged receipts: only the collector sends them
               alerts_topic(plant_id, "l1"), REJECTED_TOPIC]
    for topic in refused:  # a fresh connection each: Mosquitto 2.0.11 drops one that was refused
        assert as_bridge().publish(topic, sample_payload()) == "Not authorized", topic
    wait_until(lambda: len(monitor.messages) >= 2, 10, "the allowed messages at the monitor")

    reader = as_bridge()
    reader.subscribe("shopfloor/v1/#")  # granted by Mosquitto 2.0.11; delivered only what it may read
    collector = Client(pair.central.port, "collector", credentials.passwords["collector"])
    analysis = Client(pair.central.port, "analysis", credentials.passwords["analysis"])
    for key in (own, foreign):
        assert collector.publish(receipt_topic(key), encode_receipt([(0, 9)])) == "Success"
        assert analysis.publish(alerts_topic(key.plant, "l1"), b'{"v":1}') == "Success"
    assert collector.publish(REJECTED_TOPIC, b'{"v":1}') == "Success"
    wait_until(lambda: len(reader.messages) >= 2, 10, "the bridge's own plant's receipt and alert")
    time.sleep(0.5)
    assert sorted(topic for topic, _ in reader.messages) == sorted([receipt_topic(own),
                                                                    alerts_topic(plant_id, "l1")])
    other_bridge = as_bridge(pair.other)  # the other plant's credential reads its own, not ours
    other_bridge.subscribe("shopfloor/v1/#")
    assert collector.publish(receipt_topic(own), encode_receipt([(10, 19)])) == "Success"
    assert collector.publish(receipt_topic(foreign), encode_receipt([(10, 19)])) == "Success"
    wait_until(lambda: other_bridge.messages, 10, "the other plant's receipt")
    time.sleep(0.5)
    assert [topic for topic, _ in other_bridge.messages] == [receipt_topic(foreign)]
    for client in (monitor, reader, collector, analysis, other_bridge):
        client.close()


@pytest.mark.servers
def test_the_secured_bridge_cut_by_the_central_broker_stopping_loses_nothing(
        secured_pair, store, plant_id, tmp_path, collector_process):
    """The bridge logs in again with its secret client id and finds its persistent session (the
    receipts queued for it) on the central broker: nothing lost, nothing stored twice."""
    pair, credentials = secured_pair, secured_pair.credentials
    collector_url = credentials.url("collector", pair.central.url)
    as_collector = SimpleNamespace(mosquitto=SimpleNamespace(url=collector_url), influxdb=pair.influxdb)
    collector_process(as_collector, store.database, group=credentials.group,
                      client_id=credentials.collector_client_id)
    running = _agent(tmp_path, plant_id, credentials.url(f"{plant_id}.l1.a1", pair.plant.url))
    agent = running.agent
    wait_until(lambda: agent.receipted > 50, 30, "receipts over the TLS bridge")
    pair.central.stop()
    cut_at, receipted = agent.acked, agent.receipted
    time.sleep(3.0)
    assert agent.acked > cut_at + 50  # the plant broker kept acknowledging: it queues for the bridge
    assert agent.receipted <= receipted + 10  # only what was on its way back when the link went
    pair.central.start()
    wait_until(lambda: agent.receipted > receipted + 200, 30, "receipts after the link came back")
    running.stop()
    assert _expect_stored_once(store, plant_id, tmp_path / "outbox.sqlite", list(STATIONS)) > 300
    log = (pair.central.data_dir / "mosquitto.log").read_text(errors="replace")
    assert log.count(f"u'{security.bridge_username(plant_id)}'") >= 2  # logged in again after the cut


@pytest.mark.servers
def test_a_bridge_that_does_not_trust_the_central_certificate_never_connects(stack, tmp_path, plant_id):
    """The link is really TLS with verification: a bridge given another CA is refused the handshake
    and carries nothing, though its credentials are right."""
    auth = tmp_path / "auth"
    credentials = _init(auth, [plant_id], tls_port := free_port())
    stranger = tmp_path / "stranger"
    security.init([plant_of(plant_id)], stranger, tls=True)  # a CA of its own
    section = security.plant_bridge_config(credentials, auth, plant_id, "127.0.0.1", tls_port,
                                           cafile=(stranger / "ca.crt").resolve())
    central = Server("mosquitto", tmp_path / "central", free_port(),
                     broker_auth=security.broker_config(auth, tls_port, anonymous_line=False))
    central.start()
    plant = Server("mosquitto", tmp_path / "plant", free_port(),
                   broker_auth=security.broker_config(auth, anonymous_line=False), bridge=section)
    plant.start()
    try:
        time.sleep(3.0)  # the bridge retries every second
        central_log = (central.data_dir / "mosquitto.log").read_text(errors="replace")
        plant_log = (plant.data_dir / "mosquitto.log").read_text(errors="replace")
        assert "New bridge connected" not in central_log
        assert "certificate verify failed" in plant_log, plant_log
    finally:
        plant.stop()
        central.stop()
