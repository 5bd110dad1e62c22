"""The edge agent: station pollers -> disk outbox -> MQTT QoS 1; a sample leaves the disk on its receipt.

Why nothing is lost: a reading becomes a sample only inside the outbox transaction that stores it
(with the station's next `seq` and counter offsets). The broker's PUBACK only marks rows "sent": a
broker holds what it acknowledged in memory for a while, and loses it if it dies. Rows are deleted
when a collector's receipt (`…/STATION/stored`, docs/DESIGN.md §4) says InfluxDB has them; a sent
row without a receipt after `receipt_timeout_s` (doubling per attempt) is sent again, and after a
reconnect every sent row goes again at once. After a restart everything still on disk is sent
again. Always oldest first, each station's samples in order, as batches of up to 1,000 samples.
A sample sent twice lands on the same InfluxDB point, so at-least-once is enough. With
`delete_on = "puback"` the PUBACK deletes (for consumers that send no receipts).

Threads: one poller per station (poller.py), paho's network thread (link.py), and this main
thread, which alone owns the outbox and decides what to publish; the others only send it events.

A full disk (or any outbox write that fails while running) does not end the agent: what is stored
stays stored and keeps draining, new samples wait in memory (up to HELD_MAX, the oldest dropped
beyond it and counted) with their stations' states, and go to disk in one transaction as soon as an
append succeeds again. The status names the problem meanwhile; the log says it once.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time

import orjson

from edge_agent.config import AgentConfig
from edge_agent.counters import StationTrack
from edge_agent.link import UNREACHABLE, Ack, Connection, Link, Receipt
from edge_agent.outbox import Outbox, OutboxError, Row, StationState
from edge_agent.poller import Health, Polled, StationPoller, now_ms
from edge_agent.sources import Reading, counter_widths
from shopfloor.contract import MAX_BATCH, Sample, StationKey, encode_batch, encode_sample, telemetry_topic

log = logging.getLogger("shopfloor.agent")

FETCH_ROWS = 10_000  # rows read from the outbox at a time; with the window, bounds paho's pending messages
STATUS_EVERY_S = 60.0  # a retained status heartbeat, so a stale `ts` shows a half-dead agent
REFUSED_RETRY_S = 5.0  # a message the broker refused (PUBACK failure code) is sent again from disk after this
HELD_MAX = 100_000  # samples kept in memory while the outbox cannot be written: 10 stations at 1 Hz for 2.7 h


class Agent:
    def __init__(self, config: AgentConfig):
        self.config = config
        self.outbox = Outbox(config.outbox)
        self.tracks: dict[str, StationTrack] = {}
        for station in config.stations:
            count_width, scrap_width = counter_widths(station)
            self.tracks[station.id] = StationTrack(station.id, self.outbox.station_state(station.id),
                                                   count_width=count_width, scrap_width=scrap_width,
                                                   max_step=config.max_step)
        self.events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.link = Link(config, self.events.put, also_receipted=self._removed_stations_waiting())
        self._stop = threading.Event()
        self.pollers = [StationPoller(station, config.interval_s, config.source_retry_max_s, self.events.put,
                                      self._stop) for station in config.stations]
        self._topics: dict[str, str] = {}
        self.inflight: dict[int, list[int]] = {}
        self.cursor = 0  # every outbox id up to here has been handed to paho
        self.connected = False
        self.problems: dict[str, str] = {}
        self._status_problems: list[str] | None = None
        self._status_at = 0.0
        self._refused: list[int] = []  # outbox ids of refused messages, sent again at `_refused_at`
        self._refused_at = 0.0
        self._refused_last = 0.0
        self._skews: dict[str, float] = {}
        self._warned_unreachable = False
        self._linger_s = min(0.02, config.interval_s / 5)
        self.produced = 0
        self.acked = 0
        self.held: list[tuple[str, Sample]] = []  # samples the outbox could not take yet (full disk)
        self._held_states: dict[str, StationState] = {}
        self.dropped = 0  # held samples given up beyond HELD_MAX
        self._undeleted: list[int] = []  # acknowledged ids whose delete failed; retried
        self.receipts = config.delete_on == "receipt"
        self._sweep = False  # after a reconnect: send every sent, unreceipted row again
        self.receipted = 0
        self.resent = 0  # samples sent again for want of a receipt

    # --- life cycle -------------------------------------------------------------------------------

    def run(self) -> None:
        """Run until `stop()`; on the way out, unsent samples stay in the outbox for the next start."""
        log.info("agent %s: %d stations -> %s, outbox %s (%d samples waiting)", self.config.agent,
                 len(self.pollers), self.link.endpoint.display, self.config.outbox, self.outbox.backlog)
        self.link.start()
        for poller in self.pollers:
            poller.start()
        try:
            while not self._stop.is_set():
                self.step(timeout_s=1.0)
        finally:
            self._shutdown()

    def stop(self) -> None:
        """Ask `run` to return (safe from a signal handler or another thread)."""
        self._stop.set()
        self.events.put(None)

    def _shutdown(self) -> None:
        self._stop.set()
        for poller in self.pollers:
            poller.join(timeout=5.0)
        self.step(timeout_s=0.0)  # store what the pollers handed over last
        if self.held:
            log.error("stopping with %d samples that the outbox could not store (%s)", len(self.held),
                      self.problems.get("outbox", "outbox not writable"))
        deadline = time.monotonic() + 2.0  # the last PUBACKs and receipts, if they come soon
        while (self.inflight or (self.receipts and self.outbox.backlog)) and self.connected \
                and time.monotonic() < deadline:
            self.step(timeout_s=0.1)
        self.link.stop(self.outbox.backlog, self.problem_list(), figures=self.figures())
        log.info("agent %s stopped: %d samples produced, %d acknowledged, %d receipted, %d wait in the "
                 "outbox", self.config.agent, self.produced, self.acked, self.receipted, self.outbox.backlog)
        self.outbox.close()

    # --- one turn of the main loop -----------------------------------------------------------------

    def step(self, timeout_s: float) -> None:
        """Take the events that arrived (waiting up to `timeout_s` for the first), store, ack, publish."""
        events = []
        with contextlib.suppress(queue.Empty):  # nothing arrived: drain nothing, store nothing
            events.append(self.events.get(timeout=timeout_s) if timeout_s > 0 else self.events.get_nowait())
            if self._linger_s and timeout_s > 0:
                time.sleep(self._linger_s)  # the other stations' readings of this tick arrive together
        while len(events) < 100_000:
            try:
                events.append(self.events.get_nowait())
            except queue.Empty:
                break
        samples: list[tuple[str, Sample]] = []
        touched: dict[str, StationState] = {}
        acked: list[int] = []
        receipts: list[tuple[str, list[tuple[int, int]]]] = []
        for event in events:
            if isinstance(event, Polled):
                for reading in event.readings:
                    sample = self._sample(event.station, reading, event.read_ms)
                    if sample is not None:
                        samples.append((event.station, sample))
                        touched[event.station] = self.tracks[event.station].state()
            elif isinstance(event, Ack):
                self._ack(event, acked)
            elif isinstance(event, Receipt):
                receipts.append((event.station, event.ranges))
            elif isinstance(event, Health):
                self._set_problem(f"source {event.station}", event.problem and
                                  f"station {event.station}: {event.problem}")
            elif isinstance(event, Connection):
                self._connection(event)
        self.produced += len(samples)
        if samples or self.held:
            self._store(samples, touched)
        if acked or self._undeleted:
            self._forget(acked)
        if receipts:
            self._receipt(receipts)
        self._send_status_if_due()
        self._fill_window()

    def _store(self, samples: list[tuple[str, Sample]], touched: dict[str, StationState]) -> None:
        """Append to the outbox; while that fails, hold the samples (and states) and try again next turn."""
        if self.held:
            self.held.extend(samples)
            self._held_states.update(touched)
            samples, touched = self.held, self._held_states
        try:
            self.outbox.append(samples, touched)
        except OutboxError as error:
            if not self.held:
                self.held, self._held_states = list(samples), dict(touched)
            if len(self.held) > HELD_MAX:
                over = len(self.held) - HELD_MAX
                del self.held[:over]
                self.dropped += over
                self._set_problem("held", f"{self.dropped} samples dropped: the outbox stayed unwritable "
                                          f"while {HELD_MAX} samples waited in memory")
            self._set_problem("outbox", f"{error}; new samples wait in memory until it can be written")
            return
        if self.held:
            log.warning("outbox writable again: %d held samples stored", len(self.held))
            self.held, self._held_states = [], {}
        self._set_problem("outbox", None)

    def _forget(self, acked: list[int]) -> None:
        """Acknowledged rows: marked sent (receipts) or deleted (puback); a failed write (full disk) is
        retried, at worst a sample goes twice."""
        ids = self._undeleted + acked
        try:
            if self.receipts:
                self.outbox.mark_sent(ids, now_ms(), int(self.config.receipt_timeout_s * 1000),
                                      int(self.config.receipt_max_s * 1000))
            else:
                self.outbox.delete(ids)
        except OutboxError as error:
            self._undeleted = ids
            self._set_problem("outbox", f"{error}; new samples wait in memory until it can be written")
            return
        self._undeleted = []
        self.acked += len(acked)

    def _receipt(self, receipts: list[tuple[str, list[tuple[int, int]]]]) -> None:
        try:
            self.receipted += self.outbox.receipt(receipts)
        except OutboxError as error:  # the rows stay and are resent; their next receipt deletes them
            self._set_problem("outbox", f"{error}; new samples wait in memory until it can be written")

    def _sample(self, station: str, reading: Reading, read_ms: int) -> Sample | None:
        if reading.clock_ms is not None:
            self._check_clock(station, (reading.clock_ms - read_ms) / 1000)
        elif reading.ts_ms is not None and reading.ts_ms > read_ms - 1000 * self.config.clock_skew_s:
            # a fresh file line tells the station PC's clock; an old one (a backlog) tells nothing
            self._check_clock(station, (reading.ts_ms - read_ms) / 1000)
        try:
            sample = self.tracks[station].sample(reading, read_ms)
        except ValueError as error:  # a value no sample may carry: reported, never stored
            self._set_problem(f"value {station}", f"station {station}: {error}")
            return None
        self._set_problem(f"value {station}", reading.problem and f"station {station}: {reading.problem}")
        return sample

    def _check_clock(self, station: str, skew_s: float) -> None:
        """Report a source clock off by more than the threshold; the report changes only when the skew
        moved by another threshold, so a drifting clock does not resend the status every second."""
        threshold = self.config.clock_skew_s
        if abs(skew_s) <= threshold:
            self._skews.pop(station, None)
            self._set_problem(f"clock {station}", None)
        elif abs(skew_s - self._skews.get(station, 0.0)) > threshold or station not in self._skews:
            self._skews[station] = skew_s
            self._set_problem(f"clock {station}", f"station {station}: the source's clock differs from the "
                              f"agent's by {skew_s:+.0f} s (threshold {threshold:g} s): sync both by NTP")

    def _ack(self, event: Ack, acked: list[int]) -> None:
        ids = self.inflight.pop(event.mid, None)
        if ids is None:  # a status message
            return
        if event.refused is None:
            acked.extend(ids)
            return
        # The rows stay on disk and go again later; the other stations are not held up meanwhile (a
        # station missing from the agent's ACL must not stop the line's data).
        hint = ("start a collector" if event.refused.startswith("No matching subscribers")
                else "check the agent's ACL")
        self._set_problem("refused", f"the broker refused telemetry ({event.refused}); {hint}; "
                          f"samples stay in the outbox and are resent")
        self._refused_last = time.monotonic()
        if not self._refused:
            self._refused_at = time.monotonic() + REFUSED_RETRY_S
        self._refused.extend(ids)

    def _connection(self, event: Connection) -> None:
        if event.up and not self.connected:
            self._warned_unreachable = False
            log.info("connected to %s; %d samples to send", self.link.endpoint.display, self.outbox.backlog)
            self._set_problem("broker", None)
            self.connected = True
            self._sweep = self.receipts  # what the broker acknowledged may have died with it
            self._send_status()
        elif not event.up:
            if self.connected:
                log.warning("lost %s (%s); samples wait in the outbox", self.link.endpoint.display,
                            event.reason)
            elif event.reason.startswith("broker refused"):
                self._set_problem("broker", f"{event.reason}; check the agent's user, password and ACL")
            elif event.reason == UNREACHABLE and not self._warned_unreachable:
                log.warning("cannot reach %s; retrying with backoff, samples wait in the outbox "
                            "(`shopfloor agent check` says why)", self.link.endpoint.display)
                self._warned_unreachable = True
            self.connected = False

    # --- status -----------------------------------------------------------------------------------

    def _set_problem(self, key: str, text: str | None) -> None:
        if text is None:
            self.problems.pop(key, None)
        elif self.problems.get(key) != text:
            if key.startswith(("clock", "value", "broker", "refused", "outbox", "held")):
                log.warning("%s", text)
            self.problems[key] = text

    def unreceipted(self) -> tuple[int, float] | None:
        """(samples acknowledged by the broker without a receipt yet, age of the oldest in s)."""
        return self.outbox.unreceipted(now_ms()) if self.receipts else None

    def figures(self) -> dict[str, object]:
        """What the status carries besides the problems: the unreceipted backlog and the counters."""
        document: dict[str, object] = {}
        if (unreceipted := self.unreceipted()) is not None:
            document["unreceipted"], document["unreceipted_age_s"] = unreceipted[0], round(unreceipted[1], 1)
        document["counters"] = {"produced": self.produced, "acked": self.acked, "receipted": self.receipted,
                                "resent": self.resent, "held": len(self.held), "dropped": self.dropped}
        return document

    def problem_list(self) -> list[str]:
        return [self.problems[key] for key in sorted(self.problems)]

    def _send_status(self) -> None:
        if not self.connected:
            return
        problems = self.problem_list()
        self.link.publish_status(True, self.outbox.backlog, problems, self.figures())
        self._status_problems, self._status_at = problems, time.monotonic()

    def _send_status_if_due(self) -> None:
        if "refused" in self.problems and time.monotonic() - self._refused_last > 4 * REFUSED_RETRY_S:
            self._set_problem("refused", None)  # the retried messages went through
        stale = time.monotonic() - self._status_at > STATUS_EVERY_S
        if stale or self.problem_list() != self._status_problems:
            self._send_status()

    def _removed_stations_waiting(self) -> list[str]:
        """Stations taken out of the config with samples still in the outbox: sent and receipted as
        ever (the collector stores them if the plant file still has the station, else receipts them as
        rejected), so the outbox drains instead of resending them forever."""
        removed = {station: rows for station, rows in self.outbox.stations_waiting().items()
                   if station not in self.config.station_ids}
        if removed:
            log.warning("the outbox holds samples of stations no longer in this agent's config (%s): they "
                        "are sent and leave on their receipt; with `security init` ACLs the agent's login "
                        "must still be allowed their receipts",
                        ", ".join(f"{station}: {rows}" for station, rows in removed.items()))
        return list(removed)

    # --- publishing from the outbox ---------------------------------------------------------------

    def _topic(self, station: str) -> str:
        topic = self._topics.get(station)
        if topic is None:  # also for a station no longer configured whose samples are still on disk
            topic = self._topics[station] = telemetry_topic(StationKey(self.config.plant, self.config.line,
                                                                        station))
        return topic

    def _fill_window(self) -> None:
        if not self.connected:
            return
        if self._refused and time.monotonic() >= self._refused_at:
            refused, self._refused = self._refused, []
            self._publish(self.outbox.rows(refused))
        while self.receipts and len(self.inflight) < self.config.mqtt.window:
            rows = self.outbox.due(now_ms(), FETCH_ROWS // 10, everything=self._sweep)
            if not rows:
                self._sweep = False
                break
            log.info("resending %d samples without a receipt (oldest first)", len(rows))
            self.resent += len(rows)
            self._publish(rows)
        while len(self.inflight) < self.config.mqtt.window:
            rows = self.outbox.after(self.cursor, FETCH_ROWS)
            if not rows:
                return
            self.cursor = rows[-1].id
            self._publish(rows)

    def _publish(self, rows: list[Row]) -> None:
        """Rows as messages: each station's rows in order, up to MAX_BATCH samples a message."""
        by_station: dict[str, list[Row]] = {}
        for row in rows:
            by_station.setdefault(row.station, []).append(row)
        for station, group in by_station.items():
            for start in range(0, len(group), MAX_BATCH):
                chunk = group[start:start + MAX_BATCH]
                # stored bodies go into the batch as they are (orjson fragments), not decoded again
                payload = (encode_sample(chunk[0].sample) if len(chunk) == 1
                           else encode_batch([orjson.Fragment(row.body) for row in chunk]))
                info = self.link.publish(self._topic(station), payload)
                self.inflight[info.mid] = [row.id for row in chunk]
