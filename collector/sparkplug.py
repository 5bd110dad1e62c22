"""A Sparkplug B host application inside the collector: edge nodes' births, data and deaths to samples.

Why it holds state: Sparkplug data messages may carry aliases only and only the metrics that changed,
so a sample needs the metric names, types and last values that the node's and device's births gave.
That state is rebuilt from births, never persisted: after a collector restart, a gap in `seq` or data
from a node this host has not seen born, it asks the node for a rebirth (NCMD `Node Control/Rebirth`)
and rejects what it cannot read instead of guessing. Payloads are decoded by `tahutils` (Eclipse Tahu's
compiled sparkplug_b.proto on the `protobuf` runtime); collector/README.md says why that library.

Runs in the collector's gather thread, one message at a time in arrival order, which Sparkplug's
`seq` tracking needs: the Sparkplug subscription is therefore a plain (not shared) one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from google.protobuf.message import DecodeError
from tahutils.parse import parse_metric_value, payload_from_string
from tahutils.tahu.sparkplug_b import MetricDataType
from tahutils.tahu.sparkplug_b_pb2 import Payload

from collector.mapped import Decoded, build_sample, source_line
from shopfloor.contract import (
    SPARKPLUG_NAMESPACE,
    ContractError,
    StationKey,
    sparkplug_command_topic,
    sparkplug_filter,
    sparkplug_state_topic,
)
from shopfloor.plant import Plant, SparkplugSource

NAMESPACE = SPARKPLUG_NAMESPACE
REBIRTH_METRIC = "Node Control/Rebirth"
BD_SEQ = "bdSeq"
REBIRTH_EVERY_S = 5.0  # ask a node again after this long if its rebirth has not come
Publish = Callable[[str, bytes, int, bool], None]


@dataclass(slots=True)
class _Metrics:
    """An edge node's or device's metrics as its birth declared them, with their last values."""

    aliases: dict[int, str] = field(default_factory=dict)
    types: dict[str, int] = field(default_factory=dict)
    live: dict[str, object] = field(default_factory=dict)
    history: dict[str, object] | None = None  # values as of the newest historical metric seen


@dataclass(frozen=True, slots=True)
class _Station:
    """A mapped station: sample field -> metric name, and the metric names to read."""

    key: StationKey
    source: SparkplugSource
    fields: dict[str, str]
    wanted: frozenset[str]


@dataclass(slots=True)
class _Node:
    bd_seq: int | None = None
    seq: int | None = None  # the last seq; None: not born, or a gap left it awaiting a rebirth
    devices: dict[str | None, _Metrics] = field(default_factory=dict)  # None: the node's own metrics
    rebirth_asked: float = -1e9


class SparkplugHost:
    """Decodes the Sparkplug messages of the groups the plant file maps, per docs/DESIGN.md §6."""

    def __init__(self, plant: Plant, host_id: str, publish: Publish):
        self._publish = publish
        self.host_id = host_id
        self._stations: dict[tuple[str, str, str | None], _Station] = {}
        for line in plant.lines:
            for station in line.stations:
                if (src := station.sparkplug) is not None:
                    fields = _fields(src)
                    self._stations[(src.group, src.node, src.device)] = _Station(
                        StationKey(plant.plant, line.id, station.id), src, fields, frozenset(fields.values()))
        self._mapped_nodes = {(group, node) for group, node, _ in self._stations}
        self._nodes: dict[tuple[str, str], _Node] = {}
        self._online_since = int(time.time() * 1000)
        self.rebirths_requested = 0

    # --- what the collector subscribes and announces ----------------------------------------------

    @property
    def subscriptions(self) -> list[str]:
        return sorted({sparkplug_filter(group) for group, _ in self._mapped_nodes})

    @property
    def state_topic(self) -> str:
        return sparkplug_state_topic(self.host_id)

    def state_payload(self, online: bool) -> bytes:
        """Sparkplug 3.0 primary host STATE: the will and the birth carry the same timestamp."""
        return orjson.dumps({"online": online, "timestamp": self._online_since})

    def handles(self, topic: str) -> bool:
        return topic.startswith(NAMESPACE + "/")

    # --- messages ------------------------------------------------------------------------------------

    def decode(self, topic: str, payload: bytes) -> Decoded:
        parts = topic.split("/")
        if len(parts) not in (4, 5) or parts[1] == "STATE":
            return Decoded([], None)  # STATE of hosts, or not a Sparkplug message topic
        group, kind, node_id = parts[1], parts[2], parts[3]
        device = parts[4] if len(parts) == 5 else None
        if kind in ("NCMD", "DCMD") or (group, node_id) not in self._mapped_nodes:
            return Decoded([], None)  # commands, and nodes no station maps: not ours to store
        try:
            message = payload_from_string(payload)
        except DecodeError as error:
            return Decoded([], f"not a Sparkplug B payload: {error}")
        node = self._nodes.setdefault((group, node_id), _Node())
        if kind == "NBIRTH":
            return self._nbirth(group, node_id, node, message)
        if kind == "NDEATH":
            return self._ndeath(group, node_id, node, message)
        if kind not in ("DBIRTH", "DDEATH", "NDATA", "DDATA"):
            return Decoded([], f"unknown Sparkplug message type {kind!r}")
        if (kind[0] == "D") != (device is not None):
            return Decoded([], f"{kind} on a topic {'without' if device is None else 'with'} a device id")
        if (problem := self._sequence(node, message)) is not None:
            return Decoded([], f"{problem}; {self._ask_rebirth(group, node_id, node)}")
        if kind == "DBIRTH":
            node.devices[device] = _Metrics()
            return self._data(group, node_id, device, node, message, birth=True, event=kind)
        if kind == "DDEATH":
            node.devices.pop(device, None)
            return self._death(group, node_id, [device], message, kind)
        if device not in node.devices:
            if (group, node_id, device) not in self._stations:
                return Decoded([], None)  # a device no station maps: its seq counted, nothing to store
            return Decoded([], f"{kind} from {group}/{node_id}/{device} before its DBIRTH; "
                               f"{self._ask_rebirth(group, node_id, node)}")
        return self._data(group, node_id, device, node, message, birth=False, event=kind)

    def _sequence(self, node: _Node, message: Payload) -> str | None:
        """None if the message's seq follows the last one (0-255, wrapping), else what is wrong."""
        if node.seq is None:
            return "data before the node's NBIRTH (or after a seq gap)"
        if not message.HasField("seq"):
            return "message has no seq"
        expected = (node.seq + 1) % 256
        if message.seq != expected:
            node.seq = None
            return f"seq gap: expected {expected}, got {message.seq}"
        node.seq = message.seq
        return None

    def _ask_rebirth(self, group: str, node_id: str, node: _Node) -> str:
        """Send NCMD Node Control/Rebirth unless one went out within REBIRTH_EVERY_S; says which."""
        if time.monotonic() - node.rebirth_asked < REBIRTH_EVERY_S:
            return f"rebirth of {group}/{node_id} already requested"
        node.rebirth_asked = time.monotonic()
        command = Payload(timestamp=int(time.time() * 1000))
        metric = command.metrics.add()
        metric.name, metric.datatype, metric.boolean_value = REBIRTH_METRIC, MetricDataType.Boolean, True
        self._publish(sparkplug_command_topic(group, node_id), command.SerializeToString(), 0, False)
        self.rebirths_requested += 1
        return f"rebirth requested from {group}/{node_id}"

    def _nbirth(self, group: str, node_id: str, node: _Node, message: Payload) -> Decoded:
        bd_seq = next((m for m in message.metrics if m.name == BD_SEQ), None)
        if bd_seq is None or not message.HasField("seq"):
            asked = self._ask_rebirth(group, node_id, node)
            return Decoded([], f"NBIRTH without a bdSeq metric or a seq; {asked}")
        try:
            bd_seq_value = _value(bd_seq)
        except ValueError as error:
            return Decoded([], f"NBIRTH bdSeq {error}")
        if isinstance(bd_seq_value, bool) or not isinstance(bd_seq_value, int):
            return Decoded([], f"NBIRTH bdSeq {bd_seq_value!r} is not an integer")
        node.bd_seq, node.seq = bd_seq_value, message.seq
        node.devices = {None: _Metrics()}  # a node birth voids its devices' births too
        node.rebirth_asked = -1e9  # the next problem deserves a request of its own
        return self._data(group, node_id, None, node, message, birth=True, event="NBIRTH")

    def _ndeath(self, group: str, node_id: str, node: _Node, message: Payload) -> Decoded:
        bd_seq = next((m for m in message.metrics if m.name == BD_SEQ), None)
        if bd_seq is not None and node.bd_seq is not None:
            try:
                value = _value(bd_seq)
            except ValueError as error:
                return Decoded([], f"NDEATH bdSeq {error}")
            if value != node.bd_seq:  # the will of an older connection: this birth still stands
                return Decoded([], f"stale NDEATH: bdSeq {value}, the node was born with {node.bd_seq}")
        devices = [d for (g, n, d) in self._stations if (g, n) == (group, node_id)]
        node.seq, node.devices = None, {}
        return self._death(group, node_id, devices, message, "NDEATH")

    def _death(self, group: str, node_id: str, devices: list[str | None], message: Payload,
               event: str) -> Decoded:
        """Mark the stations of the dead node or device unknown from the death's time (no state invented)."""
        ts = message.timestamp if message.HasField("timestamp") else int(time.time() * 1000)
        lines = []
        for device in devices:
            if (mapped := self._stations.get((group, node_id, device))) is not None:
                lines.append(source_line(mapped.key, f"sparkplug:{mapped.source.label}", False, event, ts))
        return Decoded(lines, None)

    def _data(self, group: str, node_id: str, device: str | None, node: _Node, message: Payload,
              birth: bool, event: str) -> Decoded:
        metrics = node.devices[device]
        mapped = self._stations.get((group, node_id, device))
        wanted = mapped.wanted if mapped else frozenset()
        groups: dict[tuple[int, bool], dict[str, object]] = {}
        problems: list[str] = []
        for metric in message.metrics:
            if birth:
                if metric.HasField("alias"):
                    metrics.aliases[metric.alias] = metric.name
                metrics.types[metric.name] = metric.datatype
            name = metric.name if metric.name else metrics.aliases.get(metric.alias)
            if name is None:
                problems.append(f"alias {metric.alias} is not in the birth")
                continue
            if name not in wanted:
                continue
            if not metric.datatype:  # data messages may leave the type to the birth
                metric.datatype = metrics.types.get(name, 0)
            # a birth is the state at its own time; data metrics carry the time they changed
            ts = (message.timestamp if birth and not metric.is_historical
                  else metric.timestamp if metric.HasField("timestamp") else message.timestamp)
            if not ts:
                problems.append(f"metric {name!r} has no timestamp")
                continue
            try:
                value = None if metric.is_null else _value(metric)
            except ValueError as error:
                problems.append(f"metric {name!r} {error}")
                continue
            groups.setdefault((ts, metric.is_historical), {})[name] = value
        lines: list[str] = []
        warnings: list[str] = []
        if mapped is not None:
            key, source, fields = mapped.key, mapped.source, mapped.fields
            if birth:
                lines.append(source_line(key, f"sparkplug:{source.label}", True, event, message.timestamp))
            for (ts, historical), values in sorted(groups.items(), key=lambda item: item[0][0]):
                if historical:
                    metrics.history = {**(metrics.history or metrics.live), **values}
                    known = metrics.history
                else:
                    metrics.live.update(values)
                    known = metrics.live
                try:
                    line, warning = build_sample(key, ts, {field_: known.get(name) for field_, name in
                                                           fields.items()}, source, fields)
                except ContractError as error:
                    problems.append(f"sample at {ts}: {error}")
                    continue
                lines.append(line)
                if warning:
                    warnings.append(warning)
        return Decoded(lines, "; ".join(problems) or None, warnings)


# The value field each Sparkplug type travels in (sparkplug_b.proto): a data message may leave out the
# type, so the birth's type decides, and a value in another field is refused rather than read as 0.
_CARRIERS = {**dict.fromkeys((1, 2, 3, 5, 6, 7), "int_value"), **dict.fromkeys((4, 8, 13), "long_value"),
             9: "float_value", 10: "double_value", 11: "boolean_value",
             **dict.fromkeys((12, 14, 15), "string_value")}
_SIGNED_BITS = {1: 32, 2: 32, 3: 32, 4: 64}  # signed ints travel as unsigned two's complement


def _value(metric: object) -> object:
    """The metric's value by tahutils, checked against its (birth's) type; ValueError says what is wrong."""
    carrier, carried = _CARRIERS.get(metric.datatype), metric.WhichOneof("value")
    if carrier is None:
        raise ValueError(f"has Sparkplug type {metric.datatype}: not a number, boolean or text")
    if carried != carrier:
        raise ValueError(f"carries {carried} but its type {metric.datatype} travels in {carrier}")
    value = parse_metric_value(metric)
    bits = _SIGNED_BITS.get(metric.datatype)
    return value - (1 << bits) if bits and value >= 1 << (bits - 1) else value


def _fields(source: SparkplugSource) -> dict[str, str]:
    """Sample field -> metric name, for the fields this station maps."""
    return {name: metric for name in ("count", "queue", "scrap", "state", "reason")
            if (metric := getattr(source, name)) is not None}

