"""One way to build a paho-mqtt 2.x client for this system: MQTT 5, credentials and TLS from the URL.

The agent, collector, replay and alert publisher all connect through `make_client`, so session and
security settings are decided once.
"""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from shopfloor.paho_properties import use_lean_publish_properties
from shopfloor.settings import MqttEndpoint

# A persistent session outlives a disconnect by this long; a collector gone for good releases its
# share of a shared subscription after it (docs/DESIGN.md §3).
DEFAULT_SESSION_EXPIRY_S = 24 * 3600


def make_client(client_id: str, endpoint: MqttEndpoint, *, manual_ack: bool = False,
                ca_file: str | None = None, cert_file: str | None = None,
                key_file: str | None = None) -> mqtt.Client:
    """A client for `endpoint`; for mqtts:// `ca_file` trusts a private CA (else the system's CAs) and
    `cert_file`/`key_file` present a client certificate (brokers that authenticate agents by TLS)."""
    use_lean_publish_properties()  # a third of paho's read of each PUBLISH: shopfloor/paho_properties.py
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file, cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def connect_properties(session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S,
                       receive_maximum: int | None = None) -> Properties:
    """CONNECT properties for a persistent session (use with `clean_start=False`)."""
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = session_expiry_s
    if receive_maximum:
        properties.ReceiveMaximum = receive_maximum
    return properties
