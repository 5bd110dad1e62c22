"""The agent's MQTT connection: paho-mqtt 2.x, QoS 1, a retained status message and its will.

paho's network thread only turns callbacks into events (`Connection`, `Ack`) for the agent's main
thread, which owns the outbox. paho keeps unacknowledged QoS 1 messages in memory and resends them
after a reconnect, in order; the agent bounds how many it hands over (the window), far below paho's
limit of 65,535 pending messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson
import paho.mqtt.client as mqtt

from edge_agent import __version__
from edge_agent.config import AgentConfig
from edge_agent.poller import now_ms
from shopfloor.contract import (
    VERSION,
    ContractError,
    StationKey,
    decode_receipt,
    parse_receipt_topic,
    receipt_topic,
    status_topic,
)
from shopfloor.mqtt import make_client
from shopfloor.settings import mqtt_endpoint

log = logging.getLogger("shopfloor.agent")
NO_MATCHING_SUBSCRIBERS = 16  # MQTT 5 PUBACK reason code 0x10


UNREACHABLE = "unreachable"  # paho gives no reason for a failed TCP/TLS connect; `agent check` does


@dataclass(frozen=True, slots=True)
class Connection:
    up: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Receipt:
    """A collector's word that these seqs of a station are in InfluxDB (or refused there for good)."""

    station: str
    ranges: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Ack:
    mid: int
    refused: str | None  # the broker's reason when the PUBACK carries a failure code


def _path(value: object) -> str | None:
    return None if value is None else str(value)


class Link:
    def __init__(self, config: AgentConfig, emit: Callable[[object], None],
                 also_receipted: Iterable[str] = ()):
        """`also_receipted`: stations no longer in the config whose rows still wait in the outbox; their
        receipts are read too, or those rows would be resent forever."""
        self.config = config
        self.endpoint = mqtt_endpoint(config.mqtt_url)
        self.topic = status_topic(config.plant, config.line, config.agent)
        self._emit = emit
        tls = config.mqtt
        self.client = make_client(config.client_id, self.endpoint, ca_file=_path(tls.ca_file),
                                  cert_file=_path(tls.cert_file), key_file=_path(tls.key_file))
        self.client.reconnect_delay_set(min_delay=min(1.0, config.mqtt.reconnect_max_s),
                                        max_delay=config.mqtt.reconnect_max_s)
        self.client.max_inflight_messages_set(config.mqtt.window)
        self.client.will_set(self.topic, self.status(online=False), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_message = self._on_message
        stations = [*config.station_ids, *(s for s in also_receipted if s not in config.station_ids)]
        self.receipt_topics = [receipt_topic(StationKey(config.plant, config.line, station))
                               for station in stations] if config.delete_on == "receipt" else []

    def status(self, online: bool, backlog: int | None = None, problems: list[str] | None = None,
               figures: dict[str, object] | None = None) -> bytes:
        """The status payload (docs/DESIGN.md §4), plus the backlog, the agent's current problems and
        its figures (unreceipted backlog and its age, counters)."""
        document: dict[str, object] = {"v": VERSION, "online": online, "ts": now_ms(), "version": __version__,
                                       "stations": self.config.station_ids}
        if backlog is not None:
            document["backlog"] = backlog
        if figures:
            document.update(figures)
        if problems is not None:
            document["problems"] = problems
        return orjson.dumps(document)

    def start(self) -> None:
        """Connect in the background; paho retries with backoff until the broker answers."""
        self.client.connect_async(self.endpoint.host, self.endpoint.port,
                                  keepalive=self.config.mqtt.keepalive_s, clean_start=True)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1, retain=retain)

    def publish_status(self, online: bool, backlog: int, problems: list[str],
                       figures: dict[str, object] | None = None) -> mqtt.MQTTMessageInfo:
        return self.publish(self.topic, self.status(online, backlog, problems, figures), retain=True)

    def stop(self, backlog: int, problems: list[str], timeout_s: float = 2.0,
             figures: dict[str, object] | None = None) -> None:
        """Say offline (a clean disconnect sends no will), then disconnect."""
        if self.client.is_connected():
            info = self.publish_status(False, backlog, problems, figures)
            try:
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError) as error:
                log.warning("offline status not confirmed: %s", error)
        self.client.disconnect()
        self.client.loop_stop()

    # paho's network thread -----------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._emit(Connection(False, f"broker refused the connection: {reason_code}"))
        else:
            if self.receipt_topics:  # clean start: subscribe on every connect
                client.subscribe([(topic, 1) for topic in self.receipt_topics])
            self._emit(Connection(True))

    def _on_connect_fail(self, client, userdata) -> None:
        self._emit(Connection(False, UNREACHABLE))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._emit(Connection(False, str(reason_code)))

    def _on_message(self, client, userdata, message) -> None:
        try:
            station = parse_receipt_topic(message.topic).station
            stored, rejected = decode_receipt(message.payload)
        except ContractError as error:  # not ours to fix; the sample is resent and receipted again
            log.warning("ignored a receipt on %s: %s", message.topic, error)
            return
        self._emit(Receipt(station, stored + rejected))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # 16 "No matching subscribers": no collector session took the message. Mosquitto 2.0.11 does not
        # restore shared subscriptions after a restart until the collector subscribes again (bench/chaos.py
        # lost those seconds): keep the samples on disk and resend them, as for a refusal.
        if reason_code.value == NO_MATCHING_SUBSCRIBERS:
            self._emit(Ack(mid, "No matching subscribers: no collector has subscribed (yet)"))
        else:
            self._emit(Ack(mid, str(reason_code) if reason_code.is_failure else None))
