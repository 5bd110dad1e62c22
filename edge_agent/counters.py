"""Turning raw PLC readings into contract samples: counter wrap and reset, duplicates, time order.

Why the agent publishes a count that only grows: a 16-bit PLC counter wraps every 65,536 units and
an operator may reset it at shift start; downstream every delta would have to guess which happened.
The agent sees each read in order, so it decides once, here, and keeps the offset on disk; the rule
is shopfloor.counters' (the one the analysis and the boards apply to the published counts):

- raw value went down, and the way round the counter's width is a plausible step (at most
  `max_step` units since the last read): a wrap, the offset grows by 2**width;
- raw value went down otherwise: a reset; the units counted before it are kept (offset += last raw).

Time order matters as much: two samples of a station with the same millisecond would be one point in
InfluxDB. A reading that carries the station's own timestamp (a file line) and is not newer than the
last one is a duplicate read and is dropped; a reading stamped by the agent's clock after that clock
stepped back is moved to 1 ms after the last sample, so nothing is overwritten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edge_agent.outbox import StationState
from edge_agent.sources.base import Reading
from shopfloor.contract import MAX_TS_MS, Sample
from shopfloor.counters import RESET, WRAP, step
from shopfloor.reasons import while_stopped

log = logging.getLogger("shopfloor.agent")


@dataclass(slots=True)
class Counter:
    """One cumulative PLC counter of `width` bits (0: never wraps)."""

    width: int
    max_step: int
    last_raw: int | None = None
    offset: int = 0
    wraps: int = 0
    resets: int = 0

    def update(self, raw: int) -> int:
        """The cumulative value for a new raw reading."""
        if raw < 0 or (self.width and raw >= 1 << self.width):
            top = (1 << self.width) - 1 if self.width else "2**63"
            raise ValueError(f"counter value {raw} is outside 0..{top}")
        last = self.last_raw
        units, kind = step(last, raw, widths=(self.width,) if self.width else (), max_step=self.max_step)
        if last is not None:  # the cumulative value grows by exactly the rule's units
            self.offset += last + units - raw
        self.wraps += kind == WRAP
        self.resets += kind == RESET
        self.last_raw = raw
        return self.offset + raw

    def saved(self) -> dict[str, int]:
        return {"last_raw": -1 if self.last_raw is None else self.last_raw, "offset": self.offset}

    @classmethod
    def restored(cls, width: int, max_step: int, saved: dict[str, int] | None) -> Counter:
        if not saved:
            return cls(width, max_step)
        last = saved.get("last_raw", -1)
        return cls(width, max_step, None if last < 0 else last, saved.get("offset", 0))


class StationTrack:
    """One station's sequence, time order and counters; its state is saved with each sample."""

    def __init__(self, station: str, state: StationState, *, count_width: int, scrap_width: int,
                 max_step: int):
        self.station = station
        self.next_seq = state.next_seq
        self.last_ts = state.last_ts
        self.count = Counter.restored(count_width, max_step, state.counters.get("count"))
        self.scrap = Counter.restored(scrap_width, max_step, state.counters.get("scrap"))
        self.duplicates = 0
        self.clock_steps = 0

    def sample(self, reading: Reading, read_ms: int) -> Sample | None:
        """The next sample for a reading taken at `read_ms` (agent clock), or None for a duplicate."""
        ts = reading.ts_ms if reading.ts_ms is not None else read_ms
        if not 0 <= ts <= MAX_TS_MS:  # the collector would refuse it after the outbox let it go
            raise ValueError(f"timestamp {ts} ms is outside 1970..2255: is the clock or the ts unit wrong?")
        if ts <= self.last_ts:
            if reading.ts_ms is not None:
                self.duplicates += 1
                return None
            self.clock_steps += 1
            log.warning("station %s: the agent's clock went back %d ms; stamping 1 ms after the last sample",
                        self.station, self.last_ts - ts)
            ts = self.last_ts + 1
        wraps, resets = self.count.wraps, self.count.resets
        sample: Sample = {"ts": ts, "seq": self.next_seq, "count": self.count.update(reading.count),
                          "queue": max(0, reading.queue)}
        if reading.scrap is not None:
            sample["scrap"] = self.scrap.update(reading.scrap)
        if reading.state is not None:
            sample["state"] = reading.state  # type: ignore[typeddict-item]
        if (reason := while_stopped(reading.reason, reading.state)) is not None:
            sample["reason"] = reason  # a code latched while the station runs is stale: not sent
        if self.count.wraps != wraps:
            log.info("station %s: count wrapped at %d bits; cumulative count goes on", self.station,
                     self.count.width)
        if self.count.resets != resets:
            log.info("station %s: count was reset on the PLC; cumulative count goes on", self.station)
        self.next_seq += 1
        self.last_ts = ts
        return sample

    def state(self) -> StationState:
        return StationState(self.next_seq, self.last_ts,
                            {"count": self.count.saved(), "scrap": self.scrap.saved()})
