"""The plant's existing MQTT network as a source: the one place the collector asks about mapped topics.

The collector (collector/collector.py) keeps one code path: every message, ours or the plant's, is
decoded in its gather thread, batched, written, and acknowledged only after InfluxDB accepted it; a
refused one goes to the reject topic with its reason. This module only says which extra topics to
subscribe, turns a mapped message into points or a reason, and speaks the Sparkplug host's STATE.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from collector.mapped import Decoded
from collector.mapped_json import JsonTopics
from collector.mapped_values import JsonValues, newest_point
from collector.sparkplug import SparkplugHost
from shopfloor.plant import Plant, load_plant
from shopfloor.store import Store

Publish = Callable[[str, bytes, int, bool], object]
log = logging.getLogger("shopfloor.collector")
WARNED_MAX = 10_000  # distinct warnings remembered; beyond it they are logged every time


class Ingest:
    """Sparkplug B, mapped JSON topics and one-value topics of one plant file, for one collector."""

    def __init__(self, plant: Plant, host_id: str, publish: Publish, store: Store | None = None):
        """`store`: where one-value topics' held values begin after a (re)start (mapped_values.py)."""
        self._publish = publish
        has_sparkplug = any(s.sparkplug for line in plant.lines for s in line.stations)
        self.sparkplug = SparkplugHost(plant, host_id, publish) if has_sparkplug else None
        self.json = JsonTopics(plant) if plant.json_topic else None
        newest = (lambda key: newest_point(store, key)) if store is not None else None
        self.values = JsonValues(plant, newest=newest) if plant.json_value else None
        self._warned: set[str] = set()
        self.warnings = 0  # distinct warnings logged (a reason code the table lacks, stored anyway)

    @classmethod
    def from_file(cls, path: str, host_id: str, publish: Publish, store: Store | None = None) -> Ingest:
        return cls(load_plant(path), host_id, publish, store)

    @property
    def subscriptions(self) -> list[str]:
        """Plain (not shared) subscriptions: Sparkplug's seq tracking needs every message of a node."""
        return [topic for source in (self.sparkplug, self.json, self.values) if source
                for topic in source.subscriptions]

    def will(self) -> tuple[str, bytes] | None:
        """The primary host's STATE will (retained, QoS 1), set before connecting."""
        return (self.sparkplug.state_topic, self.sparkplug.state_payload(False)) if self.sparkplug else None

    def announce(self, online: bool) -> object:
        """Publish the STATE birth after the subscription, or the STATE death before a clean disconnect."""
        if self.sparkplug:
            return self._publish(self.sparkplug.state_topic, self.sparkplug.state_payload(online), 1, True)
        return None

    def decode(self, topic: str, payload: bytes) -> Decoded | None:
        """Points or a reason for a mapped topic; None for a topic of the collector's own contract.

        A message that trips an error in the mapping itself is rejected with that error rather than
        stopping the gather thread, which would stall every station behind it.
        """
        try:
            if self.sparkplug and self.sparkplug.handles(topic):
                decoded = self.sparkplug.decode(topic, payload)
            elif self.json and self.json.handles(topic):
                decoded = self.json.decode(topic, payload)
            elif self.values and self.values.handles(topic):
                decoded = self.values.decode(topic, payload)
            else:
                return None
        except Exception as error:  # noqa: BLE001 - a reason for the reject topic, logged in full
            log.exception("mapping a message on %s failed", topic)
            return Decoded([], f"could not map the message: {error.__class__.__name__}: {error}")
        self._warn(decoded.warnings)
        return decoded

    def _warn(self, warnings: list[str]) -> None:
        """Log each distinct warning once (at most WARNED_MAX kept): a station that stays down with a
        code the table lacks would otherwise repeat the same line with every sample."""
        for warning in warnings:
            if warning not in self._warned:
                if len(self._warned) < WARNED_MAX:
                    self._warned.add(warning)
                log.warning("%s", warning)
                self.warnings += 1
