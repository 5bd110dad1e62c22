"""The lean MQTT 5 properties decode every PUBLISH as paho's own class does, and are in use."""

from __future__ import annotations

import threading

import paho.mqtt._packet as paho_packet
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from shopfloor.mqtt import make_client
from shopfloor.paho_properties import LeanProperties, use_lean_publish_properties
from shopfloor.settings import mqtt_endpoint


def _publish_properties(cls: type[Properties], **values: object) -> Properties:
    properties = cls(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(properties, name, value)
    return properties


CASES = [
    {},
    {"MessageExpiryInterval": 3600},
    {"ContentType": "application/json", "PayloadFormatIndicator": 1},
    {"ResponseTopic": "a/b", "CorrelationData": b"\x00\x01"},
    {"UserProperty": [("plant", "p1"), ("line", "l1")], "TopicAlias": 3},
    {"SubscriptionIdentifier": [7, 300]},
]


@pytest.mark.parametrize("values", CASES, ids=lambda values: ",".join(values) or "empty")
def test_lean_properties_decode_as_paho_does(values):
    wire = _publish_properties(Properties, **values).pack() + b"payload"
    stock, stock_length = Properties(PacketTypes.PUBLISH).unpack(wire)
    lean, lean_length = LeanProperties(PacketTypes.PUBLISH).unpack(wire)
    assert lean_length == stock_length
    assert lean.json() == stock.json() and str(lean) == str(stock)
    assert lean.isEmpty() == stock.isEmpty() == (not values)
    assert lean.pack() == stock.pack()


def test_lean_properties_keep_paho_checks_and_share_no_values():
    first = _publish_properties(LeanProperties, UserProperty=("a", "1"))
    second = LeanProperties(PacketTypes.PUBLISH)
    assert second.isEmpty() and not hasattr(second, "UserProperty")
    assert first.UserProperty == [("a", "1")]
    with pytest.raises(Exception, match="does not apply"):
        second.ReceiveMaximum = 10  # a CONNECT property: paho refuses it on a PUBLISH, so does the lean one
    first.clear()
    assert first.isEmpty() and first.packetType == PacketTypes.PUBLISH


def test_paho_decodes_publish_properties_into_the_lean_class():
    assert use_lean_publish_properties(), "paho moved its PUBLISH decoder: see shopfloor/paho_properties.py"
    assert paho_packet.Properties is LeanProperties
    packet = b"\x00\x03a/b\x00\x07" + _publish_properties(Properties, ContentType="text/plain").pack() + b"x"
    decoded = paho_packet.decode_publish(0x32, packet, 5)
    assert isinstance(decoded.properties, LeanProperties)
    assert (decoded.topic, decoded.mid, decoded.payload) == (b"a/b", 7, b"x")
    assert decoded.properties.ContentType == "text/plain"


def test_properties_cross_the_real_broker(stack):
    """Through Mosquitto: a PUBLISH without properties and one with them arrive as sent."""
    endpoint = mqtt_endpoint(stack.mosquitto.url)
    got: list = []
    arrived = threading.Event()

    def on_message(client, userdata, message) -> None:
        got.append(message)
        if len(got) == 2:
            arrived.set()

    subscribed = threading.Event()
    receiver = make_client("lean-props-rx", endpoint)
    receiver.on_message = on_message
    receiver.on_subscribe = lambda *args: subscribed.set()
    receiver.connect(endpoint.host, endpoint.port)
    receiver.loop_start()
    sender = make_client("lean-props-tx", endpoint)
    sender.connect(endpoint.host, endpoint.port)
    sender.loop_start()
    try:
        receiver.subscribe("lean-props/#", qos=1)
        assert subscribed.wait(10)
        sender.publish("lean-props/plain", b"one", qos=1).wait_for_publish(10)
        tagged = _publish_properties(Properties, UserProperty=("line", "l1"))
        sender.publish("lean-props/tagged", b"two", qos=1, properties=tagged).wait_for_publish(10)
        assert arrived.wait(10)
    finally:
        for client in (sender, receiver):
            client.disconnect()
            client.loop_stop()
    plain, tagged = sorted(got, key=lambda message: message.topic)
    assert (plain.payload, tagged.payload) == (b"one", b"two")
    assert isinstance(plain.properties, LeanProperties) and plain.properties.isEmpty()
    assert tagged.properties.UserProperty == [("line", "l1")]
