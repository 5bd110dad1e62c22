"""One thread per station that reads its source on the interval and retries a failing one with backoff.

Why a thread each: a PLC that times out must not delay the other stations' samples, and blocking
field libraries (pymodbus, asyncua's sync client) are simplest driven from a plain thread. A poller
never touches the outbox or MQTT: it hands `Polled` and `Health` events to the agent's main thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.config import Station
from edge_agent.sources import Reading, Source, SourceError, open_source

log = logging.getLogger("shopfloor.agent")


@dataclass(frozen=True, slots=True)
class Polled:
    station: str
    readings: list[Reading]
    read_ms: int  # the agent's clock when the read finished


@dataclass(frozen=True, slots=True)
class Health:
    station: str
    problem: str | None  # None: the source works again


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class StationPoller(threading.Thread):
    def __init__(self, station: Station, interval_s: float, retry_max_s: float,
                 emit: Callable[[object], None], stop: threading.Event):
        super().__init__(name=f"poll-{station.id}", daemon=True)
        self.station = station
        self.interval_s = interval_s
        self.retry_max_s = retry_max_s
        self._emit = emit
        self._halt = stop

    def _retry_delay(self, failures: int) -> float:
        """1 interval (at least 0.5 s), doubling per failure, capped at `source_retry_max_s`."""
        return min(self.retry_max_s, max(self.interval_s, 0.5) * 2 ** min(failures - 1, 16))

    def run(self) -> None:
        source: Source | None = None
        problem: str | None = None
        failures = 0
        next_tick = time.monotonic()
        while not self._halt.is_set():
            try:
                if source is None:
                    source = open_source(self.station)
                readings = source.read()
            except Exception as error:  # any library error is this station's problem, never the agent's
                failures += 1
                text = (str(error) if isinstance(error, SourceError)
                        else f"{error.__class__.__name__}: {error}")
                if text != problem:
                    log.warning("station %s: %s (retrying with backoff)", self.station.id, text)
                    problem = text
                    self._emit(Health(self.station.id, problem))
                if source is not None:
                    _close(source)
                    source = None
                if self._halt.wait(self._retry_delay(failures)):
                    break
                next_tick = time.monotonic()
                continue
            if problem is not None:
                log.info("station %s: source works again", self.station.id)
                problem, failures = None, 0
                self._emit(Health(self.station.id, None))
            if readings:
                self._emit(Polled(self.station.id, readings, now_ms()))
            next_tick += self.interval_s
            now = time.monotonic()
            if next_tick < now:  # a slow read: skip the ticks it missed instead of bursting
                next_tick += ((now - next_tick) // self.interval_s + 1) * self.interval_s
            self._halt.wait(next_tick - now)
        if source is not None:
            _close(source)


def _close(source: Source) -> None:
    try:
        source.close()
    except Exception as error:  # a source that fails to close must not stop the poller
        log.debug("closing a source failed: %s", error)
