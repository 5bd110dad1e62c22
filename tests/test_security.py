"""Broker credentials and topic ACLs from the plant file, checked against the real Mosquitto 2.0.11.

The unit tests read the generated files; the server tests start a Mosquitto with anonymous access off
and the generated password file and ACL (and a TLS listener), then try what each credential may and
may not do. A refused QoS 1 publish comes back as a PUBACK with reason "Not authorized" (MQTT 5), and a
subscriber with read access proves the message never went out.
"""

from __future__ import annotations

import ssl
import stat
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from conftest import wait_until
from paho.mqtt.subscribeoptions import SubscribeOptions
from support import stored_seqs
from typer.testing import CliRunner

from shopfloor import security
from shopfloor.contract import REJECTED_TOPIC, StationKey, alerts_topic, encode_sample, status_topic
from shopfloor.contract import telemetry_topic as topic_of
from shopfloor.errors import ConfigError
from shopfloor.mqtt import connect_properties, make_client
from shopfloor.plant import Plant, load_plant
from shopfloor.settings import mqtt_endpoint
from shopfloor.stack import Server, Stack, free_port

EXAMPLE_PLANT = Path(__file__).parent.parent / "examples" / "plant.toml"


def plant_of(plant_id: str) -> Plant:
    """Line l1: s1 and s2 on one line PC (pc-1), s3 its own agent; line l2 reuses the station id s1."""
    return Plant.model_validate({"plant": plant_id, "line": [
        {"id": "l1", "station": [{"id": "s1", "buffer": 4, "ideal_cycle_s": 1.0, "agent": "pc-1"},
                                 {"id": "s2", "buffer": 4, "ideal_cycle_s": 1.0, "agent": "pc-1"},
                                 {"id": "s3", "buffer": 4, "ideal_cycle_s": 1.0}]},
        {"id": "l2", "station": [{"id": "s1", "buffer": 4, "ideal_cycle_s": 1.0}]}]})


def sample_payload(seq: int = 1) -> bytes:
    return encode_sample({"ts": 1_790_000_000_000 + seq, "seq": seq, "count": seq, "queue": 0})


# --- generated files (no servers) --------------------------------------------------------------------


def test_one_credential_per_agent_with_only_its_own_topics():
    users = {u.username: u for u in security.principals([plant_of("p1")])}
    assert list(users) == ["p1.l1.pc-1", "p1.l1.s3", "p1.l2.s1", "collector", "analysis", "monitor"]
    assert users["p1.l1.pc-1"].write == ("shopfloor/v1/p1/l1/s1/telemetry", "shopfloor/v1/p1/l1/s2/telemetry",
                                         "shopfloor/v1/p1/l1/agent/pc-1/status")
    assert users["p1.l1.pc-1"].read == ("shopfloor/v1/p1/l1/s1/stored", "shopfloor/v1/p1/l1/s2/stored")
    assert users["p1.l2.s1"].write == ("shopfloor/v1/p1/l2/s1/telemetry",
                                       "shopfloor/v1/p1/l2/agent/s1/status")
    assert users["collector"].read == ("shopfloor/v1/+/+/+/telemetry",)
    assert users["collector"].write == (REJECTED_TOPIC, "shopfloor/v1/+/+/+/stored")
    assert users["analysis"].write == ("shopfloor/v1/p1/l1/alerts", "shopfloor/v1/p1/l2/alerts")
    assert users["analysis"].read == ()
    acl = security.acl_text(users.values())
    assert "user p1.l1.pc-1\ntopic write shopfloor/v1/p1/l1/s1/telemetry\n" in acl
    assert acl.count("user ") == 6 and "#" not in acl.replace("# ", "").replace("v1/#", "")


def test_the_plant_file_may_name_agents_and_checks_them(tmp_path):
    plant = load_plant(EXAMPLE_PLANT)
    assert [s.agent_id for s in plant.get_line("l1").stations] == ["pc-1", "pc-1", "s3", "s4"]
    bad = tmp_path / "plant.toml"
    bad.write_text('plant = "p1"\n[[line]]\nid = "l1"\n[[line.station]]\nid = "s1"\nbuffer = 1\n'
                   'ideal_cycle_s = 1.0\nagent = "pc 3"\n')
    with pytest.raises(ConfigError, match="agent"):
        load_plant(bad)


def test_init_writes_hashed_passwords_and_secrets_only_in_0600_files(tmp_path):
    out = tmp_path / "auth"
    credentials = security.init([plant_of("p1")], out, "mqtt://127.0.0.1:1883")
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in (security.CREDENTIALS_FILE, security.PASSWORD_FILE, security.ACL_FILE):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    passwd = (out / security.PASSWORD_FILE).read_text().splitlines()
    assert [line.split(":")[0] for line in passwd] == list(credentials.passwords)
    assert all(line.split(":", 1)[1].startswith("$7$") for line in passwd)  # mosquitto_passwd's PBKDF2
    public = "".join((out / name).read_text() for name in (security.PASSWORD_FILE, security.ACL_FILE,
                                                            security.BROKER_SNIPPET))
    assert not any(secret in public for secret in [*credentials.passwords.values(), credentials.api_token])
    endpoint = mqtt_endpoint(credentials.url("p1.l1.pc-1"))
    assert (endpoint.username, endpoint.password) == ("p1.l1.pc-1", credentials.passwords["p1.l1.pc-1"])
    assert credentials.passwords["p1.l1.pc-1"] not in endpoint.display
    assert credentials.group.startswith("collectors-") and len(credentials.group) > 20

    assert credentials.collector_client_id not in public and credentials.collector_client_id != "collector-1"
    again = security.init([plant_of("p1")], out)  # a re-run keeps every secret
    assert (again.passwords, again.group, again.api_token, again.collector_client_id) == (
        credentials.passwords, credentials.group, credentials.api_token, credentials.collector_client_id)
    rotated = security.init([plant_of("p1")], out, rotate=True)
    assert not set(rotated.passwords.values()) & set(credentials.passwords.values())


def test_cli_init_prints_where_the_secrets_are_never_the_secrets(tmp_path):
    from shopfloor.cli import _mount_subcommands, app

    _mount_subcommands()
    out = tmp_path / "auth"
    result = CliRunner().invoke(app, ["security", "init", "--plant", str(EXAMPLE_PLANT), "--out", str(out)])
    assert result.exit_code == 0, result.output
    credentials = security.load_credentials(out)
    assert "3 agent credentials" in result.output and "credentials.toml (mode 0600)" in result.output
    assert not any(secret in result.output for secret in credentials.passwords.values())
    missing = CliRunner().invoke(app, ["security", "up", "--auth", str(tmp_path / "none")])
    assert missing.exit_code != 0 and "security init" in str(missing.exception)


def test_redacted_urls_and_webhook_checks():
    assert security.redact_url("https://user:pw@hooks.example.com:8443/services/T0/B0/XYZ?token=abc") == \
        "https://***@hooks.example.com:8443/…"
    assert security.redact_url("http://127.0.0.1:9000") == "http://127.0.0.1:9000"
    assert security.check_webhook_url("https://hooks.example.com/x") == "https://hooks.example.com/x"
    for bad in ("ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "hooks.example.com/x",
                "http://", "https://a.example.com:99999/x", "https://a.example.com/x y", "http://h/\nx"):
        with pytest.raises(ConfigError) as caught:
            security.check_webhook_url(bad)
        assert "secret" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        security.check_webhook_url("gopher://user:secretpw@example.com/hook")
    assert "secretpw" not in str(caught.value)


def test_token_comparison():
    token = security.new_token()
    assert len(token) >= 40 and security.token_matches(token, token)
    assert not security.token_matches(None, token)
    assert not security.token_matches(token[:-1], token)
    assert not security.token_matches("", token)


# --- the real broker ----------------------------------------------------------------------------------


class Client:
    """A paho MQTT 5 client that records connect, suback, puback reason codes and received messages."""

    def __init__(self, port: int, username: str | None, password: str | None, *, tls_ca: str | None = None):
        scheme = "mqtts" if tls_ca else "mqtt"
        user = f"{username}:{password}@" if username else ""
        endpoint = mqtt_endpoint(f"{scheme}://{user}localhost:{port}")
        self.client = make_client(f"t-{uuid.uuid4().hex[:8]}", endpoint, ca_file=tls_ca)
        self.connected = threading.Event()
        self.connect_reason = ""
        self.acks: dict[int, str] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.client.on_connect = self._on_connect
        self.client.on_publish = lambda c, u, mid, reason, p: self.acks.__setitem__(
            mid, str(reason) if reason.is_failure else "Success")  # also "No matching subscribers"
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.connect(endpoint.host, endpoint.port)
        self.client.loop_start()
        wait_until(lambda: self.connect_reason, 10, "the CONNACK")

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        self.connect_reason = str(reason)
        if not reason.is_failure:
            self.connected.set()

    def publish(self, topic: str, payload: bytes = b"{}", retain: bool = False) -> str:
        """Publish QoS 1 and return the PUBACK's reason: "Success" (any success code) or the failure."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        wait_until(lambda: info.mid in self.acks, 10, f"the PUBACK on {topic}", every_s=0.01)
        return self.acks[info.mid]

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, options=SubscribeOptions(qos=1))
        time.sleep(0.2)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A Mosquitto with the generated password file, ACL and a TLS listener; anonymous access off."""
    folder = tmp_path_factory.mktemp("secured")
    plant_id = f"p{uuid.uuid4().hex[:8]}"
    credentials = security.init([plant_of(plant_id)], folder / "auth", tls=True)
    tls_port = free_port()
    broker = Server("mosquitto", folder / "mosquitto", free_port(),
                    broker_auth=security.broker_config(folder / "auth", tls_port, anonymous_line=False))
    broker.start()
    yield SimpleNamespace(broker=broker, credentials=credentials, plant=plant_id, tls_port=tls_port,
                          ca=str(folder / "auth" / "ca.crt"))
    broker.stop()


def login(secured, username: str, tls_ca: str | None = None) -> Client:
    port = secured.tls_port if tls_ca else secured.broker.port
    return Client(port, username, secured.credentials.passwords[username], tls_ca=tls_ca)


@pytest.mark.servers
def test_no_anonymous_or_wrong_password_clients(secured):
    assert "allow_anonymous false" in (secured.broker.data_dir / "mosquitto.conf").read_text()
    assert Client(secured.broker.port, None, None).connect_reason == "Not authorized"
    assert Client(secured.broker.port, "p1.l1.pc-1", "guess").connect_reason in ("Not authorized",
                                                                                  "Bad user name or password")
    assert Client(secured.broker.port, "collector", secured.credentials.passwords["monitor"]
                  ).connect_reason != "Success"


@pytest.mark.servers
def test_an_agent_may_publish_only_its_own_stations_and_status(secured):
    plant = secured.plant
    monitor = login(secured, "monitor")
    monitor.subscribe("shopfloor/v1/#")
    agent = login(secured, f"{plant}.l1.pc-1")
    own = [topic_of(StationKey(plant, "l1", "s1")), topic_of(StationKey(plant, "l1", "s2"))]
    foreign = [topic_of(StationKey(plant, "l1", "s3")),  # another agent's station on the same line
               topic_of(StationKey(plant, "l2", "s1")),  # a station of the same id on another line
               topic_of(StationKey("pother", "l1", "s1")),  # another plant
               status_topic(plant, "l1", "s3"),  # another agent's status
               alerts_topic(plant, "l1"), REJECTED_TOPIC, "shopfloor/v1/x"]
    for topic in own:
        assert agent.publish(topic, sample_payload()) == "Success", topic
    status = b'{"v":1,"online":true}'
    assert agent.publish(status_topic(plant, "l1", "pc-1"), status, retain=True) == "Success"
    for topic in foreign:  # a fresh connection each: Mosquitto 2.0.11 drops one that was refused
        assert login(secured, f"{plant}.l1.pc-1").publish(topic, sample_payload()) == "Not authorized", topic
    wait_until(lambda: len(monitor.messages) >= 3, 10, "the allowed messages at the monitor")
    time.sleep(0.3)
    assert sorted(topic for topic, _ in monitor.messages) == sorted([*own, status_topic(plant, "l1", "pc-1")])
    agent.subscribe("shopfloor/v1/#")  # granted by Mosquitto 2.0.11, but nothing is delivered: no read
    login(secured, f"{plant}.l1.s3").publish(topic_of(StationKey(plant, "l1", "s3")), sample_payload())
    time.sleep(0.5)
    assert agent.messages == []
    for client in (monitor, agent):
        client.close()


@pytest.mark.servers
def test_services_may_do_only_their_job(secured):
    plant = secured.plant
    collector = login(secured, "collector")
    collector.subscribe(f"$share/{secured.credentials.group}/shopfloor/v1/+/+/+/telemetry")
    station = topic_of(StationKey(plant, "l1", "s1"))
    assert login(secured, "collector").publish(REJECTED_TOPIC, b"{}") == "Success"
    assert login(secured, "analysis").publish(alerts_topic(plant, "l2"), b"{}") == "Success"
    refused = [("collector", station), ("collector", alerts_topic(plant, "l1")),  # no forged telemetry
               ("analysis", station), ("analysis", status_topic(plant, "l1", "pc-1")),
               ("monitor", station), ("monitor", REJECTED_TOPIC)]
    for user, topic in refused:
        assert login(secured, user).publish(topic, sample_payload()) == "Not authorized", (user, topic)
    assert login(secured, f"{plant}.l1.pc-1").publish(station, sample_payload(7)) == "Success"
    wait_until(lambda: collector.messages, 10, "the telemetry at the collector")
    assert collector.messages == [(station, sample_payload(7))]
    collector.close()


@pytest.mark.servers
def test_an_agent_reads_only_its_own_stations_receipts_and_only_the_collector_sends_them(secured):
    from shopfloor.contract import encode_receipt, receipt_topic

    plant = secured.plant
    pc1 = login(secured, f"{plant}.l1.pc-1")
    pc1.subscribe("shopfloor/v1/#")  # asks for everything; Mosquitto delivers only what it may read
    receipts = {station: receipt_topic(StationKey(plant, line, station))
                for line, station in (("l1", "s1"), ("l1", "s2"), ("l1", "s3"))}
    other_line = receipt_topic(StationKey(plant, "l2", "s1"))
    collector = login(secured, "collector")
    for topic in [*receipts.values(), other_line]:
        assert collector.publish(topic, encode_receipt([(0, 9)])) == "Success", topic
    wait_until(lambda: len(pc1.messages) >= 2, 10, "pc-1's own receipts")
    time.sleep(0.5)
    assert sorted(topic for topic, _ in pc1.messages) == [receipts["s1"], receipts["s2"]]
    for user in (f"{plant}.l1.s3", f"{plant}.l1.pc-1", "analysis", "monitor"):  # no forged receipts
        forged = login(secured, user).publish(receipts["s1"], encode_receipt([(0, 99)]))
        assert forged == "Not authorized", user
    for client in (pc1, collector):
        client.close()


@pytest.mark.servers
def test_mosquitto_2_0_11_closes_the_connection_after_a_refused_publish(secured):
    """What a misconfigured agent meets: PUBACK "Not authorized", then the broker drops the connection
    (paho reconnects; the agent keeps the refused samples on disk and its own stations keep flowing)."""
    agent = login(secured, f"{secured.plant}.l1.pc-1")
    dropped = threading.Event()
    agent.client.on_disconnect = lambda client, userdata, flags, reason, properties: dropped.set()
    foreign = topic_of(StationKey(secured.plant, "l1", "s3"))
    assert agent.publish(foreign, sample_payload()) == "Not authorized"
    assert dropped.wait(5)
    agent.close()


@pytest.mark.servers
def test_mosquitto_2_0_11_lets_any_credential_join_a_shared_group_and_drops_its_share(secured):
    """Why the collectors' group name is a secret: the acl_file is not checked on SUBSCRIBE, and what the
    broker hands to a group member without read access is dropped, not passed to another member."""
    plant = secured.plant
    telemetry = "shopfloor/v1/+/+/+/telemetry"
    publisher = login(secured, f"{plant}.l1.s3")
    station = topic_of(StationKey(plant, "l1", "s3"))

    def collector_share(group: str, with_intruder: bool) -> int:
        collector = login(secured, "collector")
        collector.subscribe(f"$share/{group}/{telemetry}")
        intruder = login(secured, f"{plant}.l1.pc-1")
        if with_intruder:
            intruder.subscribe(f"$share/{group}/{telemetry}")
        for seq in range(100):
            assert publisher.publish(station, sample_payload(seq)) == "Success"
        time.sleep(0.5)
        for client in (collector, intruder):
            client.close()
        assert intruder.messages == []  # it reads nothing...
        return len(collector.messages)  # ...but its share is gone

    assert collector_share("collectors", with_intruder=True) < 100
    assert collector_share(secured.credentials.group, with_intruder=False) == 100


@pytest.mark.servers
def test_any_credential_can_take_over_a_known_client_id_so_the_collectors_is_secret(secured):
    """Mosquitto 2.0.11 binds no client id to a user: whoever connects as the collector's client id gets
    its persistent session, and the queued telemetry it may not read is dropped."""
    plant = secured.plant
    station = topic_of(StationKey(plant, "l1", "s3"))
    endpoint = lambda user: mqtt_endpoint(secured.credentials.url(user, secured.broker.url))  # noqa: E731

    def session(user: str, client_id: str, group: str | None = None) -> list[bytes]:
        received: list[bytes] = []
        client = make_client(client_id, endpoint(user))
        client.on_message = lambda c, userdata, message: received.append(message.payload)
        client.connect(endpoint(user).host, endpoint(user).port, clean_start=False,
                       properties=connect_properties(3600))
        client.loop_start()
        if group:
            client.subscribe(f"$share/{group}/shopfloor/v1/+/+/+/telemetry", options=SubscribeOptions(qos=1))
        time.sleep(0.5)
        client.disconnect()
        client.loop_stop()
        return received

    def queued_then_taken_over(collector_id: str, guessed_id: str, group: str) -> list[bytes]:
        session("collector", collector_id, group)
        publisher = login(secured, f"{plant}.l1.s3")
        for seq in range(5):
            assert publisher.publish(station, sample_payload(seq)) == "Success"
        publisher.close()
        assert session(f"{plant}.l1.pc-1", guessed_id) == []  # the intruder reads nothing...
        return session("collector", collector_id)  # ...and the collector finds what is left

    group = secured.credentials.group
    assert queued_then_taken_over("collector-1", "collector-1", f"{group}-a") == []  # guessable: gone
    secret_id = secured.credentials.collector_client_id
    assert queued_then_taken_over(secret_id, "collector-1", group) == [sample_payload(n) for n in range(5)]


@pytest.mark.servers
def test_tls_listener_with_the_generated_ca(secured):
    plant = secured.plant
    agent = login(secured, f"{plant}.l1.pc-1", tls_ca=secured.ca)
    agent.client.reconnect_delay_set(1, 1)
    assert agent.client._ssl  # the connection really is TLS
    assert agent.publish(topic_of(StationKey(plant, "l1", "s1")), sample_payload()) == "Success"
    assert agent.publish(topic_of(StationKey(plant, "l1", "s3")), sample_payload()) == "Not authorized"
    agent.close()
    untrusting = make_client("t-untrusting", mqtt_endpoint(f"mqtts://localhost:{secured.tls_port}"))
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusting.connect("localhost", secured.tls_port)


@pytest.mark.servers
def test_pipeline_with_credentials_stores_only_what_each_agent_may_send(tmp_path, plant_id,
                                                                        collector_process):
    """A real edge agent whose config claims a station of another agent: the broker refuses those
    samples (they wait in its outbox), the collector stores only the agent's own, no secret is logged."""
    auth = tmp_path / "auth"
    credentials = security.init([plant_of(plant_id)], auth)
    stack = Stack(tmp_path / "stack", broker_auth=security.broker_config(auth, anonymous_line=False))
    stack.up()
    try:
        from shopfloor.store import Store

        store = Store(stack.influxdb.url, f"test_{uuid.uuid4().hex[:12]}")
        store.create_database()
        url = f"mqtt://127.0.0.1:{stack.mosquitto.port}"
        as_collector = SimpleNamespace(mosquitto=SimpleNamespace(url=credentials.url("collector", url)),
                                       influxdb=stack.influxdb)
        collector = collector_process(as_collector, store.database, group=credentials.group)
        config = tmp_path / "agent.toml"
        config.write_text(
            f'agent = "pc-1"\nplant = "{plant_id}"\nline = "l1"\ninterval_s = 0.05\noutbox = "o.sqlite"\n'
            f'[mqtt]\nurl = "{credentials.url(f"{plant_id}.l1.pc-1", url)}"\nreconnect_max_s = 0.5\n'
            + "".join(f'[[station]]\nid = "{sid}"\nsource = {{ kind = "simulated", cycle_s = 0.2 }}\n'
                      for sid in ("s1", "s3")))
        from test_agent_support import AgentProcess

        agent = AgentProcess(config, tmp_path / "agent.log")
        wait_until(lambda: len(stored_seqs(store, plant_id).get("s1", [])) >= 20, 30, "20 samples of s1")
        agent.terminate()
        time.sleep(0.5)
        stored = stored_seqs(store, plant_id)
        assert list(stored) == ["s1"] and stored["s1"] == list(range(len(stored["s1"])))
        assert collector.running()
        logs = collector.log() + agent.log() + (stack.mosquitto.data_dir / "mosquitto.log").read_text()
        assert not any(secret in logs for secret in credentials.passwords.values())
        assert "the broker refused telemetry (Not authorized)" in agent.log()
        store.close()
    finally:
        stack.down()


def test_rejected_payload_echo_never_holds_more_than_the_head():
    """A reject carries only the first bytes of a payload: a secret pasted into one does not travel whole."""
    from shopfloor.contract import REJECT_PAYLOAD_BYTES, rejection

    document = orjson.loads(rejection("t", "bad", b"x" * 10_000))
    assert len(document["payload"]) == REJECT_PAYLOAD_BYTES and document["bytes"] == 10_000
