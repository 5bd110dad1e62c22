"""Constraint alerts, and the one path every alert travels: InfluxDB, MQTT, webhooks, each alert once.

Why it is built this way:
- Detection is pure (`constraint_alerts`): from the constraint's history and the state spans it
  returns alerts keyed by the moment their event began, so the same event always yields the same
  alert, however often the live loop re-reads the recent past.
- Delivery (`AlertSink.send`, or `send_alert` for a one-off) first looks the alert up among the
  stored alerts (measurement `contract.ALERT_MEASUREMENT`), then publishes it to
  `shopfloor/v1/{plant}/{line}/alerts` (QoS 1, waiting for the broker's PUBACK), then stores it, then
  POSTs it to each webhook (a refusing webhook is logged, not retried). The store is the memory: after
  a restart nothing is sent again, and a second analysis instance sharing the database does not repeat
  it either. Publishing before storing means a broker outage delays an alert (the next tick retries)
  instead of losing it; only a crash between PUBACK and the write can repeat one.
- Identity of an alert is (kind, station, ts); callers put the event's start (or checkpoint) in ts.
  Issue 5's pace and uptime escalations use the same sink through `send`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import orjson

from analysis.calls import describe
from analysis.states import StateSpans
from analysis.telemetry import BLOCKED, DOWN, STARVED
from shopfloor.contract import ALERT_MEASUREMENT, SEVERITIES, VERSION, alerts_topic, line_protocol
from shopfloor.errors import ShopfloorError
from shopfloor.plant import Line
from shopfloor.security import check_webhook_url, redact_url
from shopfloor.store import Store, quote_ident, quote_string

if TYPE_CHECKING:
    from analysis.bottleneck import Window

log = logging.getLogger(__name__)

KINDS = {
    "bottleneck_moved": "warning",
    "constraint_down": "critical",
    "constraint_starved": "warning",
    "constraint_blocked": "warning",
}
DEDUPE_LOOKBACK_MS = 7 * 24 * 3600 * 1000  # how far back stored alerts are read to avoid repeats

Alert = dict


class AlertError(ShopfloorError, ValueError):
    """An alert payload that breaks the contract (docs/DESIGN.md §4)."""


@dataclass(frozen=True, slots=True)
class AlertRules:
    """When a constraint event is worth telling the ops director (minutes)."""

    moved_dwell_min: float = 10.0  # the new bottleneck must have held this long
    down_min: float = 5.0  # the constraint down longer than this
    starved_min: float = 2.0  # the constraint starved (its input buffer ran dry) longer than this
    blocked_min: float = 2.0  # the constraint blocked (its output buffer full) longer than this


def make_alert(ts_ms: int, kind: str, severity: str, station: str, message: str) -> Alert:
    """An alert payload in the contract's form, checked."""
    if severity not in SEVERITIES:
        raise AlertError(f"alert severity {severity!r} is not one of {SEVERITIES}")
    if not kind or not message:
        raise AlertError("an alert needs a kind and a message")
    return {"v": VERSION, "ts": int(ts_ms), "kind": kind, "severity": severity, "station": station,
            "message": message}


def _clock(ts_ms: int, timezone: str) -> str:
    """The plant's wall clock with its zone's abbreviation ("22:38 CET"), as the huddle page shows it."""
    return dt.datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(timezone)).strftime("%H:%M %Z")


def _how_sure(newest: Window | None, station: str) -> str:
    """"; firm call: right at least 7 in 10" when the newest window names `station` with a graded call."""
    if newest is None or newest.bottleneck != station or newest.call is None:
        return ""
    return f"; {describe(newest.call, station, newest.runner_up)}"


def constraint_alerts(line: Line, constraint: list[tuple[int, str]], spans: StateSpans, now_ms: int,
                      rules: AlertRules = AlertRules(), timezone: str = "UTC",
                      newest: Window | None = None) -> list[tuple[Alert, float]]:
    """Alerts for the events of the constraint, with the output each cost (units), oldest first.

    `constraint` is the history of the live answer: (since ms, station) in time order. A run of the
    constraint's state that started while it was the constraint and has lasted past the rule's limit
    (up to `now_ms`) is one event, keyed by the run's start. Clock times in the messages are the
    plant's (`timezone`, the plant file's), as on the huddle page. `newest`: the timeline's newest
    window; when it names the station the constraint last moved to, the move's message says how sure
    that answer is (analysis/calls.py), as the huddle page does.
    """
    alerts: list[tuple[Alert, float]] = []
    stations = line.station_ids
    cycle = {s.id: s.ideal_cycle_s for s in line.stations}
    runs = {code: spans.periods((code,)) for code in (DOWN, STARVED, BLOCKED)}
    for i, (since, station) in enumerate(constraint):
        until = constraint[i + 1][0] if i + 1 < len(constraint) else now_ms
        before = constraint[i - 1][1] if i > 0 else None
        if before not in (None, station) and until - since >= rules.moved_dwell_min * 60_000:
            rate = 3600.0 / cycle[station]
            alerts.append((make_alert(since, "bottleneck_moved", KINDS["bottleneck_moved"], station,
                f"Line {line.id}: the bottleneck moved from {before} to {station} at "
                f"{_clock(since, timezone)}; "
                f"{station} now paces the line at most {rate:.0f} units/h"
                f"{_how_sure(newest, station) if i == len(constraint) - 1 else ''}"), 0.0))
        index = stations.index(station)
        for code, kind, limit, what in (
                (DOWN, "constraint_down", rules.down_min, "is down"),
                (STARVED, "constraint_starved", rules.starved_min,
                 "is starved: its input buffer is not protecting it"),
                (BLOCKED, "constraint_blocked", rules.blocked_min, "is blocked: its output buffer is full")):
            mine = runs[code].station == index
            starts, stops = runs[code].start[mine], runs[code].stop[mine]
            lasting = np.minimum(stops, now_ms) - starts
            hit = (starts >= since) & (starts < until) & (lasting >= limit * 60_000)
            for start, length in zip(starts[hit].tolist(), lasting[hit].tolist(), strict=True):
                lost = length / 1000 / cycle[station]
                alerts.append((make_alert(start, kind, KINDS[kind], station,
                    f"Line {line.id}: constraint {station} {what} since {_clock(start, timezone)} "
                    f"({length / 60_000:.0f} min so far), about {lost:.0f} units of line output lost"),
                    lost))
    alerts.sort(key=lambda item: item[0]["ts"])
    return alerts


def alert_line(plant: str, line: str, alert: Alert, lost_units: float | None = None) -> str:
    """The alert as its point: tags plant, line, station, kind; fields severity, message, lost_units."""
    fields: dict = {"severity": alert["severity"], "message": alert["message"]}
    if lost_units is not None:
        fields["lost_units"] = float(lost_units)
    return line_protocol(ALERT_MEASUREMENT, {"plant": plant, "line": line, "station": alert["station"],
                                             "kind": alert["kind"]}, fields, alert["ts"])


def stored_alerts(store: Store, plant: str, line: str, since_ms: int, until_ms: int | None = None
                  ) -> list[dict]:
    """Stored alerts of a line, oldest first, as dicts with ts, kind, station, severity, message."""
    until = f" AND time < {until_ms}ms" if until_ms is not None else ""
    result = store.query(
        f"SELECT severity, message, lost_units FROM {quote_ident(ALERT_MEASUREMENT)} "
        f"WHERE plant = {quote_string(plant)} AND line = {quote_string(line)} AND time >= {since_ms}ms"
        f"{until} GROUP BY station, kind")
    rows = [{"ts": row["time"], "kind": row["kind"], "station": row["station"],
             "severity": row["severity"], "message": row["message"], "lost_units": row["lost_units"]}
            for row in result.rows()]
    return sorted(rows, key=lambda row: row["ts"])


class MqttAlertPublisher:
    """A QoS 1 publisher of alert payloads that waits for the broker's acknowledgement."""

    def __init__(self, mqtt_url: str | None = None, client_id: str = "shopfloor-analysis-alerts"):
        from shopfloor.mqtt import make_client
        from shopfloor.settings import mqtt_endpoint

        endpoint = mqtt_endpoint(mqtt_url)
        self.client = make_client(client_id, endpoint)
        try:
            self.client.connect(endpoint.host, endpoint.port)
        except OSError as error:
            raise ShopfloorError(f"MQTT broker at {endpoint.display} is not reachable ({error}); start it "
                                 f"(`shopfloor stack up`) or set SHOPFLOOR_MQTT_URL") from None
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, timeout_s: float = 10.0) -> None:
        info = self.client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(timeout=timeout_s)
        except (RuntimeError, ValueError) as error:  # paho: not connected, or its queue is full
            raise ShopfloorError(f"the broker did not acknowledge the alert on {topic}: {error}") from None
        if not info.is_published():
            raise ShopfloorError(f"the broker did not acknowledge the alert on {topic} in {timeout_s} s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class AlertSink:
    """Where a line's alerts go. `send` delivers an alert once, judged by what the store holds."""

    plant: str
    line: str
    store: Store
    publisher: MqttAlertPublisher | None = None
    webhooks: list[str] = field(default_factory=list)
    webhook_timeout_s: float = 5.0
    _known: set[tuple[str, str, int]] | None = None

    def __post_init__(self) -> None:
        self.webhooks = [check_webhook_url(url) for url in self.webhooks]  # http(s) only, or ConfigError

    def _seen(self, alert: Alert) -> bool:
        if self._known is None:
            since = alert["ts"] - DEDUPE_LOOKBACK_MS
            self._known = {(row["kind"], row["station"], row["ts"])
                           for row in stored_alerts(self.store, self.plant, self.line, since)}
        return (alert["kind"], alert["station"], alert["ts"]) in self._known

    def send(self, alert: Alert, lost_units: float | None = None) -> bool:
        """Deliver one alert unless it was delivered before; True if it went out now."""
        alert = make_alert(alert["ts"], alert["kind"], alert["severity"], alert["station"], alert["message"])
        if self._seen(alert):
            return False
        payload = orjson.dumps(alert)
        if self.publisher is not None:  # raises if the broker does not acknowledge: retried next tick
            self.publisher.publish(alerts_topic(self.plant, self.line), payload)
        self.store.write([alert_line(self.plant, self.line, alert, lost_units)])
        assert self._known is not None
        self._known.add((alert["kind"], alert["station"], alert["ts"]))
        for url in self.webhooks:
            try:
                httpx.post(url, content=payload, headers={"content-type": "application/json"},
                           timeout=self.webhook_timeout_s).raise_for_status()
            except httpx.HTTPError as error:
                failure = getattr(getattr(error, "response", None), "status_code", type(error).__name__)
                log.warning("webhook %s refused alert %s: %s", redact_url(url), alert["kind"], failure)
        log.info("alert %s %s: %s", alert["kind"], alert["station"], alert["message"])
        return True

    def send_all(self, alerts: Iterable[tuple[Alert, float]]) -> list[Alert]:
        return [alert for alert, lost in alerts if self.send(alert, lost)]


def send_alert(store: Store, plant: str, line: str, alert: Alert, *, mqtt_url: str | None = None,
               webhooks: Iterable[str] = (), lost_units: float | None = None) -> bool:
    """Deliver one alert once (store, MQTT, webhooks) without keeping a sink; True if sent now."""
    publisher = MqttAlertPublisher(mqtt_url, client_id=f"shopfloor-alert-{plant}-{line}-{time.time_ns()}")
    try:
        sink = AlertSink(plant, line, store, publisher, list(webhooks))
        return sink.send(alert, lost_units)
    finally:
        publisher.close()
