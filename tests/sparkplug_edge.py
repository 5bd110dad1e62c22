"""An independent Sparkplug B edge node for the tests: payloads encoded by `pysparkplug`, not by the
collector's decoder (`tahutils`), so a mistake shared by our encoder and decoder cannot hide.

It speaks what an Ignition Edge or a Tahu edge node does: NDEATH as its MQTT will with the bdSeq of
the NBIRTH that follows, seq 0-255 wrapping over every message but NDEATH, DBIRTH per device with
aliases, alias-only DDATA, and it records the NCMD rebirth requests a host sends it.
"""

from __future__ import annotations

import threading
import time

import pysparkplug as spb
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from shopfloor.mqtt import make_client
from shopfloor.settings import mqtt_endpoint

TYPES = {int: spb.DataType.UINT32, float: spb.DataType.DOUBLE, str: spb.DataType.STRING,
         bool: spb.DataType.BOOLEAN}


class EdgeNode:
    def __init__(self, mqtt_url: str, group: str, node: str, bd_seq: int = 0):
        self.endpoint = mqtt_endpoint(mqtt_url)
        self.group, self.node, self.bd_seq = group, node, bd_seq
        self.seq = -1
        self.aliases: dict[tuple[str, str], tuple[int, spb.DataType]] = {}
        self.rebirth_requests = 0
        self._rebirth = threading.Event()
        self.client = None

    def topic(self, kind: str, device: str | None = None) -> str:
        return "/".join(x for x in ("spBv1.0", self.group, kind, self.node, device) if x)

    def connect(self) -> EdgeNode:
        self.client = make_client(f"edge-{self.group}-{self.node}-{self.bd_seq}", self.endpoint)
        death = spb.NDeath(timestamp=None, bd_seq_metric=spb.Metric(
            timestamp=None, name="bdSeq", datatype=spb.DataType.INT64, value=self.bd_seq))
        self.client.will_set(self.topic("NDEATH"), death.encode(), qos=1)
        self.client.on_message = self._on_command
        self.client.connect(self.endpoint.host, self.endpoint.port)
        self.client.subscribe(self.topic("NCMD"), qos=1)
        self.client.loop_start()
        time.sleep(0.2)
        return self

    def _on_command(self, client, userdata, message) -> None:
        command = spb.NCmd.decode(message.payload)
        if any(m.name == "Node Control/Rebirth" and m.value for m in command.metrics):
            self.rebirth_requests += 1
            self._rebirth.set()

    def wait_rebirth_request(self, timeout_s: float = 10) -> bool:
        got = self._rebirth.wait(timeout_s)
        self._rebirth.clear()
        return got

    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) % 256
        return self.seq

    def _send(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=0).wait_for_publish(10)  # Sparkplug data is QoS 0

    def nbirth(self, ts: int) -> None:
        self.seq = -1
        metrics = [spb.Metric(timestamp=ts, name="bdSeq", datatype=spb.DataType.INT64, value=self.bd_seq),
                   spb.Metric(timestamp=ts, name="Node Control/Rebirth", datatype=spb.DataType.BOOLEAN,
                              value=False)]
        birth = spb.NBirth(timestamp=ts, seq=self._next_seq(), metrics=metrics)
        self._send(self.topic("NBIRTH"), birth.encode())

    def dbirth(self, device: str, ts: int, values: dict[str, object]) -> None:
        metrics = []
        for name, value in values.items():
            alias, datatype = self.aliases.setdefault(
                (device, name), (len(self.aliases) + 1, TYPES[type(value)]))
            metrics.append(spb.Metric(timestamp=ts, name=name, datatype=datatype, value=value, alias=alias))
        self._send(self.topic("DBIRTH", device),
                   spb.DBirth(timestamp=ts, seq=self._next_seq(), metrics=metrics).encode())

    def ddata(self, device: str, ts: int, values: dict[str, object], historical: bool = False,
              skip_seq: int = 0) -> None:
        """Alias-only metrics (no names), each stamped `ts`, as report-by-exception edge nodes send."""
        self.ddata_rows(device, [(ts, values)], historical, skip_seq)

    def ddata_rows(self, device: str, rows: list[tuple[int, dict[str, object]]], historical: bool = False,
                   skip_seq: int = 0) -> None:
        """One DDATA holding several readings, each metric value with its own timestamp."""
        metrics = [spb.Metric(timestamp=ts, name=None, datatype=TYPES[type(value)], value=value,
                              alias=self.aliases[(device, name)][0], is_historical=historical)
                   for ts, values in rows for name, value in values.items()]
        self.seq = (self.seq + skip_seq) % 256
        data = spb.DData(timestamp=int(time.time() * 1000), seq=self._next_seq(), metrics=metrics)
        self._send(self.topic("DDATA", device), data.encode())

    def ddeath(self, device: str, ts: int) -> None:
        self._send(self.topic("DDEATH", device), spb.DDeath(timestamp=ts, seq=self._next_seq()).encode())

    def drop(self) -> None:
        """Lose the connection without a clean goodbye: the broker publishes the NDEATH will."""
        self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
        self.client.loop_stop()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
